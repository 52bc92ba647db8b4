#!/usr/bin/env bash
# Where the switch's CPU goes on media calls (issue #14 part 2): one bench/media_calls.py step
# of N calls through this checkout's `vosapp serve`, py-spy (native frames) on the switch for
# DURATION s of the hold, then its samples by category (bcg729, system calls, the C hub and
# lane, each Python layer): bench/media_profile.py.
#
#   flock /work/wt/bench.lock bash bench/media_profile.sh transcode 50 /tmp/prof
#   (env: PY=.venv/bin/python DURATION=8 RATE=250; py-spy must be on PATH or next to PY)
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${1:?usage: media_profile.sh MODE N OUT}
N=${2:?usage: media_profile.sh MODE N OUT}
OUT=${3:?usage: media_profile.sh MODE N OUT}
PY=${PY:-.venv/bin/python}
SPY=$(command -v py-spy || echo "$(dirname "$PY")/py-spy")
DURATION=${DURATION:-8}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
echo "uptime: $(uptime)"
"$PY" bench/media_calls.py --mode "$MODE" --steps "$N" --hold $((DURATION + 7)) --no-refine \
  >"$OUT.log" 2>&1 &
BENCH=$!
SWITCH=""
for _ in $(seq 60); do
  SWITCH=$(pgrep -P "$BENCH" -f "vosapp.cli serve" | head -1 || true)
  [ -n "$SWITCH" ] && break
  sleep 1
done
[ -n "$SWITCH" ] || { echo "no switch process"; kill "$BENCH"; exit 1; }
sleep $((N / 50 + 6))  # set-up at 50 calls/s, then into the hold
"$SPY" record --native --rate "${RATE:-250}" --duration "$DURATION" -p "$SWITCH" -f raw \
  -o "$OUT.raw" >/dev/null 2>&1
wait "$BENCH"
grep -E "^\| $MODE \|" "$OUT.log" | tail -2
"$PY" bench/media_profile.py "$OUT.raw"
