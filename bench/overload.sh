#!/usr/bin/env bash
# Overload (issue 12 item 6): calls offered past capacity must be shed with 503 + Retry-After,
# not collapse into timeouts and retransmissions.
#
#   bash bench/overload.sh [STEP_SECONDS] [START_RATE] [RATE_STEP]   (defaults: 10 50 50)
#
# A SIPp caller from a trusted address (bench/overload_uac.xml: INVITE, 200, ACK, 1 s call,
# BYE) through `vosapp serve` (UDP only, trace in memory, CDRs in SQLite) to a SIPp vendor
# (tests/sipp/call_uas.xml: 100, 180, 200, ACK, BYE, 200).
# 1. Step search: offer START_RATE, START_RATE+RATE_STEP, ... calls/s for STEP_SECONDS each
#    until a step is not clean (a failed call, a 503, or fewer than 95 % answered); capacity =
#    the best goodput of the clean steps.
# 2. Offer twice that capacity for OVER_SECONDS (default 20) and report goodput (answered
#    calls per second of offer) against capacity, failed calls, INVITE retransmissions, 503s.
# 3. No call left half-open: the vendor has no failed call (every leg it answered got its ACK
#    and BYE) and every answered call has its CDR row (CDR rows with status 200 = calls the
#    caller saw answered).
# Paste the output into docs/benchmarks.md ("Overload"), with the load average it prints.
# KEEP_WORK=1 keeps the SIPp screens, the switch's log and its CDR database for inspection.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
STEP_SECONDS=${1:-10}
START_RATE=${2:-50}
RATE_STEP=${3:-50}
MAX_RATE=${MAX_RATE:-1000}
OVER_SECONDS=${OVER_SECONDS:-20}
PY=${PY:-.venv/bin/python}
source bench/common.sh
command -v sipp >/dev/null || { echo "sipp not installed (apt-get install sip-tester)"; exit 1; }

WORK=$(mktemp -d)
SERVE_PID=""; UAS_PID=""
cleanup() {
  stop_process "$UAS_PID"
  stop_process "$SERVE_PID"
  if [ -n "${KEEP_WORK:-}" ]; then echo "work files kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

UAS_PORT=$(free_port)
cat >"$WORK/switch.toml" <<TOML
[switch]
data_dir = "$WORK/data"
[[mapping_gateway]]
name = "load"
addresses = ["127.0.0.1"]
[[routing_gateway]]
name = "vendor"
address = "127.0.0.1:$UAS_PORT"
TOML

mkdir -p "$WORK/uas"
(cd "$WORK/uas" && exec sipp -sf "$REPO/tests/sipp/call_uas.xml" \
   -i 127.0.0.1 -p "$UAS_PORT" -mp "$(free_port)" -nostdin -trace_screen \
   >uas.out 2>&1) &
UAS_PID=$!
"$PY" -m vosapp.cli serve --config "$WORK/switch.toml" --listen 127.0.0.1:0 --udp-only \
      --no-trace-store --log-level WARNING >"$WORK/serve.out" 2>"$WORK/serve.log" &
SERVE_PID=$!
PORT=$(served_port "$WORK/serve.out" "$WORK/serve.log")

# Offers $1 calls/s for $2 s; prints "rate answered failed refused503 invite_retrans elapsed
# goodput cpu_seconds".
offer() {
  local rate=$1 seconds=$2 dir="$WORK/uac-$1-$2" start end cpu0 cpu1
  mkdir -p "$dir"
  cpu0=$(cpu_seconds "$SERVE_PID"); start=$(date +%s.%N)
  (cd "$dir" && sipp "127.0.0.1:$PORT" -sf "$REPO/bench/overload_uac.xml" -s 0044123 \
       -i 127.0.0.1 -p 0 -mp "$(free_port)" -m $((rate * seconds)) -r "$rate" -l 100000 \
       -nostdin -timeout $((seconds + 60)) -timeout_error >sipp.txt 2>&1) || true
  end=$(date +%s.%N); cpu1=$(cpu_seconds "$SERVE_PID")
  "$PY" - "$dir/sipp.txt" "$rate" "$seconds" "$start" "$end" "$cpu0" "$cpu1" <<'PYEOF'
import re, sys
text = open(sys.argv[1], errors="replace").read()
rate, seconds = int(sys.argv[2]), int(sys.argv[3])
def call_count(label):
    found = re.findall(label + r"\s*\|\s*\d+\s*\|\s*(\d+)", text)
    return int(found[-1]) if found else 0
def row(pattern):  # the last screen's message-table row: [messages, retransmissions, ...]
    found = re.findall(r"^\s*" + pattern + r"\s+(?:E-RTD\d\s+)?(\d+)\s+(\d+)", text, re.M)
    return [int(v) for v in found[-1]] if found else [0, 0]
ok, failed = call_count("Successful call"), call_count("Failed call")
refused = row(r"503 <-+")[0]
answered = row(r"200 <-+")[0]  # the first 200 row is the INVITE's
retrans = row(r"INVITE -+>")[1]
elapsed = float(sys.argv[5]) - float(sys.argv[4])
cpu = float(sys.argv[7]) - float(sys.argv[6])
print(rate, answered, failed, refused, retrans, f"{elapsed:.1f}", f"{answered / seconds:.0f}",
      f"{cpu:.1f}")
PYEOF
}

# Warm-up (not counted): the first calls import the call path and open the CDR store.
read -r _ WARM _ < <(offer 5 4)
TOTAL_ANSWERED=$WARM
sleep 2
echo "Overload over UDP loopback; load average at start: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) CPUs"
echo "step search, $STEP_SECONDS s per step (rate answered failed 503s INVITE-retrans elapsed goodput server-CPU-s):"
CAPACITY=0
rate=$START_RATE
while [ "$rate" -le "$MAX_RATE" ]; do
  read -r R ANS FAIL REF RETR EL GOOD CPU < <(offer "$rate" "$STEP_SECONDS")
  TOTAL_ANSWERED=$((TOTAL_ANSWERED + ANS))
  echo "  $R/s: $ANS answered, $FAIL failed, $REF x 503, $RETR INVITE retransmissions, ${EL}s, goodput $GOOD/s, server CPU ${CPU}s"
  if [ "$FAIL" -gt 0 ] || [ "$REF" -gt 0 ] || [ $((ANS * 100)) -lt $((rate * STEP_SECONDS * 95)) ]; then
    break
  fi
  [ "$GOOD" -gt "$CAPACITY" ] && CAPACITY=$GOOD
  rate=$((rate + RATE_STEP))
done
[ "$CAPACITY" -gt 0 ] || { echo "no clean step: lower START_RATE"; exit 1; }
OVER=$((CAPACITY * 2))
sleep 3  # let the last step's calls end
read -r R ANS FAIL REF RETR EL GOOD CPU < <(offer "$OVER" "$OVER_SECONDS")
TOTAL_ANSWERED=$((TOTAL_ANSWERED + ANS))
echo "capacity (best clean step): $CAPACITY calls/s"
echo "offered $OVER/s (2x) for ${OVER_SECONDS}s: $ANS answered, $FAIL failed, $REF x 503 (Retry-After), $RETR INVITE retransmissions, ${EL}s"
echo "goodput $GOOD/s = $((GOOD * 100 / CAPACITY)) % of capacity; server CPU ${CPU}s"

sleep 5
kill -USR1 "$UAS_PID" 2>/dev/null || true
for _ in $(seq 50); do kill -0 "$UAS_PID" 2>/dev/null || break; sleep 0.2; done
kill -TERM "$UAS_PID" 2>/dev/null || true; wait "$UAS_PID" 2>/dev/null || true; UAS_PID=""
kill -TERM "$SERVE_PID"; wait "$SERVE_PID" 2>/dev/null || true; SERVE_PID=""
"$PY" - "$WORK" "$TOTAL_ANSWERED" <<'PYEOF'
import glob, re, sqlite3, sys
work, answered = sys.argv[1], int(sys.argv[2])
screens = glob.glob(f"{work}/uas/*_screen.log")
text = open(screens[0], errors="replace").read() if screens else ""
def received(method):
    found = re.findall(r"^\s*-+> " + method + r"\s+(\d+)", text, re.M)
    return int(found[-1]) if found else None
def calls(label):
    found = re.findall(label + r"\s*\|\s*\d+\s*\|\s*(\d+)", text)
    return int(found[-1]) if found else None
acks, byes = received("ACK"), received("BYE")
vendor_failed = calls("Failed call")
print(f"vendor: {received('INVITE')} INVITEs, {calls('Successful call')} successful and "
      f"{vendor_failed} failed calls (a failed vendor call is a leg it answered and never saw "
      "end with ACK + BYE)")
db = sqlite3.connect(f"{work}/data/vosapp.sqlite")
rows = db.execute("SELECT COUNT(*) FROM cdr WHERE status = 200").fetchone()[0]
open_rows = db.execute("SELECT COUNT(*) FROM cdr WHERE answer_time IS NOT NULL "
                       "AND end_time < answer_time").fetchone()[0]
print(f"half-open check: vendor got {acks} ACKs and {byes} BYEs; caller saw {answered} answered; "
      f"{rows} CDR rows with status 200 ({open_rows} inconsistent)")
print("no call left half-open" if acks is not None and acks == byes and rows == answered
      and not open_rows and vendor_failed == 0
      else "HALF-OPEN CALLS OR LOST CDRs (see above)")
PYEOF
