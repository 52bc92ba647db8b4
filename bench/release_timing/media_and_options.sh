#!/usr/bin/env bash
# Relayed media and SIP churn in one switch, with the free-memory releases timed: runs
# bench/media_calls.py (relay mode, CALLS calls held HOLD s) with this folder's sitecustomize,
# and while the calls are held SIPp sends OPTIONS at RATE/s to the same switch for HOLD-5 s.
# Prints the media step's line, SIPp's counts and the releases' pauses (ms).
#
# Usage: PERIOD=1 bash bench/release_timing/media_and_options.sh   (env: RATE=2000 CALLS=200
#        HOLD=60; PERIOD=-1: the same schedule without releasing; LOG=FILE for the releases)
# Run it alone: it finds the switch as the one `vosapp serve` media_calls.py started.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
PERIOD=${PERIOD:-1} RATE=${RATE:-2000} CALLS=${CALLS:-200} HOLD=${HOLD:-60}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
LOG=${LOG:-$work/releases.log}
PYTHONPATH="$root/bench/release_timing:$root" RELEASE_LOG=$LOG PERIOD=$PERIOD \
  .venv/bin/python bench/media_calls.py --mode relay --steps "$CALLS" --no-refine \
  --hold "$HOLD" >"$work/media.out" 2>&1 &
media=$!
pid=""
for _ in $(seq 150); do
  pid=$(pgrep -f "vosapp.cli serve --listen 127.0.0.1:0 .*--config .*/relay.toml" | head -1) || true
  [ -n "$pid" ] && break
  sleep 0.2
done
[ -n "$pid" ] || { echo "the switch did not start"; cat "$work/media.out"; exit 1; }
sleep 1
# its SIP port: the one of its UDP sockets outside the RTP range that answers an OPTIONS
port=""
for candidate in $(ss -lunpH | grep "pid=$pid," | awk '{print $4}' | sed 's/.*://' \
                   | awk '$1 < 41000 || $1 > 44999'); do
  if sipp "127.0.0.1:$candidate" -sf tests/sipp/options_uac.xml -t u1 -m 1 -nostdin \
       -timeout 3 -timeout_error >/dev/null 2>&1; then
    port=$candidate
    break
  fi
done
[ -n "$port" ] || { echo "no SIP port found for switch $pid"; exit 1; }
sleep $(( CALLS / 50 + 2 ))  # the calls set up (50/s)
sipp "127.0.0.1:$port" -sf tests/sipp/options_uac.xml -t u1 -m $(( RATE * (HOLD - 5) )) \
     -r "$RATE" -l 200 -nostdin -timeout $(( HOLD + 30 )) -timeout_error >"$work/sipp.out" 2>&1 \
  || echo "SIPp: exit status $?"
wait "$media" || true
grep -m1 "^| relay" "$work/media.out" || cat "$work/media.out"
grep -E "Successful call|Failed call" "$work/sipp.out" | tail -2
sort -n -k2 "$LOG" | awk '{p[NR] = $2} END {printf "releases %d, pause ms: min %s, p50 %s, max %s\n", NR, p[1], p[int((NR + 1) / 2)], p[NR]}'
