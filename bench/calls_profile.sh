#!/usr/bin/env bash
# The call path under a profiler (issue #14): `vosapp serve` under cProfile while SIPp places
# CALLS calls at RATE calls/s through it (bench/calls.sh's caller, callee and trusted config;
# no RTP, media proxy Off). Prints the top functions by own time and by cumulative time; with
# PROFILER=pyinstrument (pip install pyinstrument), a sampling profile instead (less distorted:
# cProfile inflates the cost of many small Python calls), its text tree in OUT; with
# PROFILER=py-spy (pip install py-spy), py-spy samples the running server from outside with
# its native frames (compiled modules, the interpreter, syscalls) and writes collapsed stacks
# to OUT, summed by own and by inclusive time (bench/stacks.py).
#
#   bash bench/calls_profile.sh        (env: CALLS=1500 RATE=60 TOP=40 OUT=/tmp/vosapp-calls.prof
#                                       PROFILER=cProfile DIGEST=)
# DIGEST=1: the caller's mapping gateway by account, every INVITE challenged (bench/calls.sh's
# "digest" row). TRACE_STORE_MB=N: the switch stores its SIP trace within N MB, as `vosapp
# serve` does by default (256), instead of --no-trace-store (as bench/common.sh's start_serve).
set -euo pipefail
cd "$(dirname "$0")/.."
CALLS=${CALLS:-1500}
RATE=${RATE:-60}
TOP=${TOP:-40}
PY=${PY:-.venv/bin/python}
UAC="$PWD/bench/calls_uac.xml"
source bench/common.sh
OUT=$(realpath -m "${OUT:-${TMPDIR:-/tmp}/vosapp-calls.prof}")
command -v sipp >/dev/null || { echo "sipp not installed (apt-get install sip-tester)"; exit 1; }
WORK=$(mktemp -d)
SERVER_PID=""
cleanup() { stop_process "$SERVER_PID"; [ -n "${KEEP:-}" ] || rm -rf "$WORK"; }
[ -z "${KEEP:-}" ] || echo "KEEP: files in $WORK"
trap cleanup EXIT
UAS="$WORK/call_uas.xml"
"$PY" bench/sipp_stats.py uas-scenario "$UAS"   # bench/calls.sh's callee
UAS_PORT=$(free_port)
if [ -n "${DIGEST:-}" ]; then MAPPING='accounts = ["1001"]'; AUTH=(-au 1001 -ap secret-1001)
else MAPPING='addresses = ["127.0.0.1/32"]'; AUTH=(); fi
write_calls_config "$WORK/trusted.toml" "$WORK/data" "$MAPPING" "$UAS_PORT"
PROFILER=${PROFILER:-cProfile}
case $PROFILER in
  cProfile) PROFILE=(-m cProfile -o "$OUT") ;;
  pyinstrument) PROFILE=(-m pyinstrument -r text --show-all -o "$OUT") ;;
  py-spy) PROFILE=() ;;
  *) echo "PROFILER must be cProfile, pyinstrument or py-spy"; exit 1 ;;
esac
TRACE=(--no-trace-store)
[ -z "${TRACE_STORE_MB:-}" ] || TRACE=(--trace-store-mb "$TRACE_STORE_MB")
"$PY" "${PROFILE[@]}" -m vosapp.cli serve --listen 127.0.0.1:0 --udp-only \
      "${TRACE[@]}" --log-level WARNING --config "$WORK/trusted.toml" \
      >"$WORK/serve.out" 2>"$WORK/serve.log" &
SERVER_PID=$!
PORT=$(served_port "$WORK/serve.out" "$WORK/serve.log")
mkdir -p "$WORK/uas" "$WORK/uac"
(cd "$WORK/uas" && exec setsid sipp -sf "$UAS" -i 127.0.0.1 -p "$UAS_PORT" -t u1 -m "$CALLS" \
     -mp "$(free_port)" -nostdin -timeout 120 >sipp.txt 2>&1) &
UAS_PID=$!
sleep 0.3
SPY_PID=""
if [ "$PROFILER" = py-spy ]; then
  "$(dirname "$PY")/py-spy" record --native -r 200 -f raw -o "$OUT" \
      --pid "$SERVER_PID" >"$WORK/py-spy.log" 2>&1 &
  SPY_PID=$!
  sleep 1
fi
CPU0=$(cpu_seconds "$SERVER_PID")
(cd "$WORK/uac" && setsid sipp "127.0.0.1:$PORT" -sf "$UAC" -s 0044123 -t u1 -i 127.0.0.1 \
     -mp "$(free_port)" -m "$CALLS" -r "$RATE" -nostdin -timeout 120 "${AUTH[@]}" >sipp.txt 2>&1) || true
for _ in $(seq 30); do kill -0 "$UAS_PID" 2>/dev/null || break; sleep 0.1; done
kill -TERM "$UAS_PID" 2>/dev/null || true
wait "$UAS_PID" 2>/dev/null || true
CPU1=$(cpu_seconds "$SERVER_PID")
[ -z "$SPY_PID" ] || { kill -INT "$SPY_PID"; wait "$SPY_PID" || true; }
grep -E "Successful call|Failed call" "$WORK/uac/sipp.txt" | tail -2 || true
echo "server CPU under the profiler: $("$PY" -c "print(round($CPU1 - $CPU0, 2))") s for $CALLS calls"
stop_process "$SERVER_PID"; SERVER_PID=""
if [ "$PROFILER" = py-spy ]; then "$PY" bench/stacks.py "$OUT" "$TOP"; exit 0; fi
[ "$PROFILER" = cProfile ] || { echo "profile: $OUT"; exit 0; }
"$PY" - "$OUT" "$TOP" <<'PYEOF'
import pstats, sys
stats = pstats.Stats(sys.argv[1])
stats.sort_stats("tottime").print_stats(int(sys.argv[2]))
stats.sort_stats("cumulative").print_stats(int(sys.argv[2]))
PYEOF
