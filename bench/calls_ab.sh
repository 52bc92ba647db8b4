#!/usr/bin/env bash
# Before/after of a change on the calls bench (issue #14): vosapp of BASE (another checkout,
# e.g. `git worktree add /tmp/base <commit>`) against this checkout, one bench/calls.sh step
# of RATE calls/s each (after its warm-up step), alternating which goes first, ROUNDS rounds.
# Compare the server_calls_per_cpu_s column (the 10th figure) within one run.
#
#   BASE=/tmp/base bash bench/calls_ab.sh     (env: RATE=150 ROUNDS=2 WHAT=vosapp|digest)
#
# BEFORE_ENV="NAME=VALUE ..." is added to the environment of the "before" runs only: e.g.
# `BASE=. BEFORE_ENV=VOSAPP_PURE_PYTHON=1 bash bench/calls_ab.sh` compares this checkout's
# compiled SIP layer with its sources (vosapp/sip/compiled.py).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${BASE:?BASE=<checkout of the commit to compare against>}"
RATE=${RATE:-150}
ROUNDS=${ROUNDS:-2}
WHAT=${WHAT:-vosapp}
PY=$(realpath -s "${PY:-.venv/bin/python}")
AFTER=$PWD
BASE=$(realpath "$BASE")

run() {  # $1 = label, $2 = checkout, $3 = extra environment ("" or NAME=VALUE ...)
  local line
  # shellcheck disable=SC2086  # $3: NAME=VALUE words on purpose
  line=$(cd "$2" && env $3 PYTHONPATH="$2" PY="$PY" ONLY=$WHAT VOSAPP_START=$RATE \
         MAX_RATE=$RATE STEP_SECONDS=10 bash bench/calls.sh 2>&1 | grep -E "^  $WHAT ") ||
    line="(no step line)"
  echo "$1 $line"
}

echo "step lines: offered ok failed retrans uas_ok uas_failed uas_retrans setup_p50_ms setup_p99_ms server_calls_per_cpu_s clean"
for round in $(seq "$ROUNDS"); do
  if [ $((round % 2)) = 1 ]; then run before "$BASE" "${BEFORE_ENV:-}"; run after "$AFTER" ""
  else run after "$AFTER" ""; run before "$BASE" "${BEFORE_ENV:-}"; fi
done
echo "load average $(cut -d' ' -f1-3 /proc/loadavg)"
