#!/usr/bin/env bash
# bench/registrar_profile.py before and after a change, in one run: the vosapp of revision REV
# and the vosapp of this checkout, measured by this checkout's bench/registrar_profile.py, back
# to back, ROUNDS times (a loaded machine moves absolute figures; compare within a round).
#
# Usage: bash bench/registrar_profile_ab.sh REV [ROUNDS]      (PYTHON=... to pick the interpreter)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
rev=${1:?usage: bash bench/registrar_profile_ab.sh REV [ROUNDS]}
rounds=${2:-3}
python=${PYTHON:-$root/.venv/bin/python}
before=$(mktemp -d)
trap 'rm -rf "$before"' EXIT
git -C "$root" archive "$rev" | tar -x -C "$before"
for round in $(seq "$rounds"); do
  order=("$before" "$root")
  if ((round % 2 == 0)); then order=("$root" "$before"); fi  # load drifts: alternate who goes first
  for code in "${order[@]}"; do
    label=$([ "$code" = "$root" ] && echo "this checkout" || echo "$rev")
    echo "=== round $round: $label (load average $(cut -d' ' -f1-3 /proc/loadavg))"
    "$python" "$root/bench/registrar_profile.py" --code "$code" 2>&1
  done
done
