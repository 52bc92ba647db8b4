#!/usr/bin/env bash
# bench/media.py before and after a change, in one run: the vosapp of revision REV and the
# vosapp of this checkout, measured by this checkout's bench/media.py, back to back, ROUNDS
# times (a loaded machine moves absolute figures; compare ratios within a round).
#
# Usage: bash bench/media_ab.sh REV [ROUNDS]      (PYTHON=... to pick the interpreter)
#
# LOCK=FILE holds an flock on FILE during each round (its two runs back to back) and releases
# it in between, so that other benchmarks on a shared machine can take turns.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
rev=${1:?usage: bash bench/media_ab.sh REV [ROUNDS]}
rounds=${2:-3}
python=${PYTHON:-$root/.venv/bin/python}
before=$(mktemp -d)
trap 'rm -rf "$before"' EXIT
git -C "$root" archive "$rev" | tar -x -C "$before"
if [[ -n ${LOCK:-} ]]; then exec {lock_fd}>"$LOCK"; fi
for round in $(seq "$rounds"); do
  if [[ -n ${LOCK:-} ]]; then flock "$lock_fd"; fi
  order=("$before" "$root")
  if ((round % 2 == 0)); then order=("$root" "$before"); fi  # load drifts: alternate who goes first
  for code in "${order[@]}"; do
    label=$([ "$code" = "$root" ] && echo "this checkout" || echo "$rev")
    echo "=== round $round: $label (load average $(cut -d' ' -f1-3 /proc/loadavg))"
    "$python" "$root/bench/media.py" --code "$code" 2>&1
  done
  if [[ -n ${LOCK:-} ]]; then flock -u "$lock_fd"; fi
done
