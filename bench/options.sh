#!/usr/bin/env bash
# OPTIONS answered per second over UDP loopback, measured by SIPp (issue #3; target >= 5,000/s).
#
#   bash bench/options.sh [CALLS] [RATE]     (defaults: 20000 calls offered at 20000/s)
#
# 1. `vosapp serve` (UDP only, trace in memory) is flooded by SIPp's OPTIONS scenario
#    (tests/sipp/options_uac.xml: expects 200 with OPTIONS in Allow); SIPp reports the
#    completed-call rate and the failed calls (must be 0).
# 2. Baseline, same run, same scenario and rate: SIPp against a SIPp UAS that answers OPTIONS
#    with 200 (C++, no parsing beyond what SIPp needs): the ceiling of this measuring rig.
# Prints both rates and the ratio; paste the lines into docs/benchmarks.md ("OPTIONS").
set -euo pipefail
cd "$(dirname "$0")/.."
CALLS=${1:-20000}
RATE=${2:-20000}
LIMIT=${LIMIT:-200}          # max outstanding OPTIONS (SIPp -l): a closed loop, no drops
PY=${PY:-.venv/bin/python}
UAC=tests/sipp/options_uac.xml
source bench/common.sh
command -v sipp >/dev/null || { echo "sipp not installed (apt-get install sip-tester)"; exit 1; }

WORK=$(mktemp -d)
SERVE_PID=""; UAS_PID=""
cleanup() {
  stop_process "$SERVE_PID"
  stop_process "$UAS_PID"
  rm -rf "$WORK"
}
trap cleanup EXIT


# Runs the UAC against $1:$2 (server process $3); prints
# "rate failed elapsed ok per_cpu_second" (rate = successful calls / wall seconds;
# per_cpu_second = successful calls / CPU seconds the server used: the one-core capacity,
# independent of how busy the machine is).
measure() {
  local host=$1 port=$2 pid=$3 out start end cpu0 cpu1
  out="$WORK/sipp-$port.txt"
  cpu0=$(cpu_seconds "$pid")
  start=$(date +%s.%N)
  sipp "$host:$port" -sf "$UAC" -t u1 -m "$CALLS" -r "$RATE" -l "$LIMIT" -nostdin \
       -timeout 120 -timeout_error >"$out" 2>&1 || true
  end=$(date +%s.%N)
  cpu1=$(cpu_seconds "$pid")
  "$PY" - "$out" "$start" "$end" "$cpu0" "$cpu1" <<'PYEOF'
import re, sys
text = open(sys.argv[1], errors="replace").read()
def count(label):
    m = re.findall(label + r"\s*\|\s*\d+\s*\|\s*(\d+)", text)
    return int(m[-1]) if m else 0
ok, failed = count("Successful call"), count("Failed call")
elapsed = float(sys.argv[3]) - float(sys.argv[2])
cpu = max(float(sys.argv[5]) - float(sys.argv[4]), 1e-3)
print(f"{ok / elapsed:.0f} {failed} {elapsed:.2f} {ok} {ok / cpu:.0f}")
PYEOF
}

# --- vosapp
SERVE_LOG="$WORK/serve.log"
# One source at 20,000/s is a flood by design here: the per-source limiter is off.
printf '[limits]\nsource_threshold = 0\n' >"$WORK/switch.toml"
"$PY" -m vosapp.cli serve --config "$WORK/switch.toml" --listen 127.0.0.1:0 --udp-only \
      --no-trace-store --data-dir "$WORK/data" --log-level WARNING >"$WORK/serve.out" 2>"$SERVE_LOG" &
SERVE_PID=$!
PORT=$(served_port "$WORK/serve.out" "$SERVE_LOG")
read -r V_RATE V_FAILED V_ELAPSED V_OK V_CPU < <(measure 127.0.0.1 "$PORT" "$SERVE_PID")

# --- baseline: SIPp UAS answering OPTIONS
cat >"$WORK/uas.xml" <<'XML'
<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="OPTIONS UAS">
  <recv request="OPTIONS"/>
  <send>
    <![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Allow: OPTIONS, ACK, CANCEL
      Accept: application/sdp
      Supported:
      Content-Length: 0

    ]]>
  </send>
</scenario>
XML
UAS_PORT=$(free_port)
# -deadcall_wait 0: otherwise SIPp silently swallows a retransmitted OPTIONS whose 200 was
# lost (it keeps finished calls 33 s), and the UAC fails that call after its retransmissions.
sipp -sf "$WORK/uas.xml" -i 127.0.0.1 -p "$UAS_PORT" -t u1 -nostdin -deadcall_wait 0 -bg \
     >"$WORK/uas.out" 2>&1 || true
UAS_PID=$(sed -n 's/.*PID=\[\([0-9]*\)\].*/\1/p' "$WORK/uas.out")
[ -n "$UAS_PID" ] || { echo "sipp UAS did not start:"; cat "$WORK/uas.out"; exit 1; }
sleep 0.5
read -r B_RATE B_FAILED B_ELAPSED B_OK B_CPU < <(measure 127.0.0.1 "$UAS_PORT" "$UAS_PID")

RATIO=$("$PY" -c "print(f'{$V_RATE / max($B_RATE, 1):.2f}')")
CPU_RATIO=$("$PY" -c "print(f'{$V_CPU / max($B_CPU, 1):.2f}')")
echo "OPTIONS over UDP loopback, $CALLS calls offered at $RATE/s, at most $LIMIT outstanding;"
echo "$(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
echo "vosapp serve : $V_RATE OPTIONS/s wall, $V_CPU per CPU-second ($V_OK answered 200, $V_FAILED failed, ${V_ELAPSED}s)"
echo "sipp uas     : $B_RATE OPTIONS/s wall, $B_CPU per CPU-second ($B_OK answered 200, $B_FAILED failed, ${B_ELAPSED}s) [baseline]"
echo "ratio vosapp/baseline: $RATIO wall, $CPU_RATIO per CPU-second   target: >= 5000 OPTIONS/s, 0 failures"
if [ "$V_FAILED" != "0" ] || [ "$V_RATE" -lt 5000 ]; then echo "BELOW TARGET (wall-clock rate)"; fi
