#!/usr/bin/env bash
# The live registrar with two configs of the same build, in one run: bench/registrar.sh's
# saturated pass (authenticated REGISTERs over UDP loopback, offered faster than the switch
# takes them) against `vosapp serve` with the bench's config (A) and with LIMITS added to its
# [limits] table (B), alternating which goes first, PAIRS times. For experiments on what a
# setting costs at capacity (docs/benchmarks.md, fortieth round: the server table's cap).
#
# Usage: LIMITS='max_server_transactions = 1000' bash bench/registrar_config_ab.sh [PAIRS] [CALLS]
#        (defaults: 8 pairs of 30000; LIMITS: lines of TOML, \n between two)
# Printed per pair: registrations per CPU-second of A and B, B / A, and each pass's
# bench/common.sh registrar_measure line.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
PAIRS=${1:-8}
CALLS=${2:-30000}
RATE=${RATE:-20000}
LIMIT=${LIMIT:-100}
LIMITS=${LIMITS:?"set LIMITS, e.g. LIMITS='max_server_transactions = 1000'"}
PY=${PY:-$root/.venv/bin/python}
SCENARIO="$root/bench/registrar_sipp.xml"
cd "$root"
source bench/common.sh
command -v sipp >/dev/null || { echo "sipp not installed (apt-get install sip-tester)"; exit 1; }
WORK=$(mktemp -d)
SERVE_PID=""
trap 'stop_process "$SERVE_PID"; rm -rf "$WORK"' EXIT
"$PY" bench/registrar_setup.py accounts "$WORK" 1000
cp "$WORK/switch.toml" "$WORK/a.toml"
# registrar_setup.py writes "[limits]\nsource_threshold = 0\n": B's lines go after it
"$PY" - "$WORK/switch.toml" "$WORK/b.toml" "$LIMITS" <<'PY'
import sys
text = open(sys.argv[1]).read()
marker = "[limits]\nsource_threshold = 0\n"
assert marker in text, "bench/registrar_setup.py's [limits] table moved"
extra = sys.argv[3].replace("\\n", "\n").rstrip("\n") + "\n"
open(sys.argv[2], "w").write(text.replace(marker, marker + extra))
PY
config_pass() {
  start_serve "$WORK/serve" --config "$1"
  registrar_measure "$SERVE_PORT" "$RATE" "$CALLS" "$SERVE_PID"
  stop_process "$SERVE_PID"; SERVE_PID=""
}
echo "Live registrar, $CALLS registrations of 1000 users offered at $RATE/s per pass; B: [limits] + $LIMITS"
for pair in $(seq "$PAIRS"); do
  if ((pair % 2)); then a=$(config_pass "$WORK/a.toml"); b=$(config_pass "$WORK/b.toml")
  else b=$(config_pass "$WORK/b.toml"); a=$(config_pass "$WORK/a.toml"); fi
  read -r _ _ _ _ _ _ ac _ <<<"$a"; read -r _ _ _ _ _ _ bc _ <<<"$b"
  echo "pair $pair: A $ac B $bc B/A $("$PY" -c "print(round($bc / $ac, 3))")  [A: $a] [B: $b]"
done
