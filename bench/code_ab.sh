#!/usr/bin/env bash
# A Python bench before and after a change, in one run: the vosapp of revision REV and the
# vosapp of this checkout, each measured by this checkout's bench/SCRIPT.py (`--code DIR`),
# back to back, ROUNDS times, alternating which goes first (a loaded machine moves absolute
# figures; compare within a round). bench/media_ab.sh and bench/registrar_profile_ab.sh are
# this script for bench/media.py and bench/registrar_profile.py.
#
# Usage: bash bench/code_ab.sh SCRIPT REV [ROUNDS]      (PYTHON=... to pick the interpreter)
#
# REV's tree gets its C extension built in place when it has a setup.py (otherwise it would
# run the ctypes fallback of the G.729 lane and the comparison would flatter this checkout).
# LOCK=FILE holds an flock on FILE during each round (its two runs back to back) and releases
# it in between, so that other benchmarks on a shared machine can take turns.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
usage="usage: bash bench/code_ab.sh SCRIPT REV [ROUNDS]"
script=${1:?$usage}
rev=${2:?$usage}
rounds=${3:-3}
python=${PYTHON:-$root/.venv/bin/python}
before=$(mktemp -d)
trap 'rm -rf "$before"' EXIT
git -C "$root" archive "$rev" | tar -x -C "$before"
if [[ -f $before/setup.py ]]; then
  (cd "$before" && "$python" setup.py -q build_ext --inplace >/dev/null 2>&1) ||
    echo "note: $rev's C extension did not build; it runs its ctypes fallback" >&2
fi
if [[ -n ${LOCK:-} ]]; then exec {lock_fd}>"$LOCK"; fi
for round in $(seq "$rounds"); do
  if [[ -n ${LOCK:-} ]]; then flock "$lock_fd"; fi
  order=("$before" "$root")
  if ((round % 2 == 0)); then order=("$root" "$before"); fi  # load drifts: alternate who goes first
  for code in "${order[@]}"; do
    label=$([ "$code" = "$root" ] && echo "this checkout" || echo "$rev")
    echo "=== round $round: $label (load average $(cut -d' ' -f1-3 /proc/loadavg))"
    "$python" "$root/bench/$script.py" --code "$code" 2>&1
  done
  if [[ -n ${LOCK:-} ]]; then flock -u "$lock_fd"; fi
done
