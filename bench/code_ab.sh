#!/usr/bin/env bash
# A Python bench before and after a change, in one run: the vosapp of revision REV and the
# vosapp of this checkout, each measured by this checkout's bench/SCRIPT.py (`--code DIR`),
# back to back, ROUNDS times, alternating which goes first (a loaded machine moves absolute
# figures; compare within a round). bench/media_ab.sh and bench/registrar_profile_ab.sh are
# this script for bench/media.py and bench/registrar_profile.py.
#
# Usage: bash bench/code_ab.sh SCRIPT REV [ROUNDS]      (PYTHON=... to pick the interpreter;
#        BENCH_ARGS="..." for more options of SCRIPT, the same on both sides)
#
# REV "pure" measures this checkout twice instead: "before" with VOSAPP_PURE_PYTHON=1 (the
# SIP layer's sources, vosapp/sip/compiled.py), "after" as installed (compiled).
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
args=${BENCH_ARGS:-}  # split into words on purpose: several options
if [[ $rev = pure ]]; then
  before=$root
  before_env=VOSAPP_PURE_PYTHON=1
  before_label="this checkout, sources (VOSAPP_PURE_PYTHON=1)"
else
  before=$(mktemp -d)
  trap 'rm -rf "$before"' EXIT
  before_env=VOSAPP_PURE_PYTHON=
  before_label=$rev
  git -C "$root" archive "$rev" | tar -x -C "$before"
  if [[ -f $before/setup.py ]]; then
    (cd "$before" && "$python" setup.py -q build_ext --inplace >/dev/null 2>&1) ||
      echo "note: $rev's C extension did not build; it runs its ctypes fallback" >&2
  fi
fi
if [[ -n ${LOCK:-} ]]; then exec {lock_fd}>"$LOCK"; fi
measure() {  # $1 = before|after
  if [[ $1 = before ]]; then
    echo "=== round $round: $before_label (load average $(cut -d' ' -f1-3 /proc/loadavg))"
    env "$before_env" "$python" "$root/bench/$script.py" --code "$before" $args 2>&1
  else
    echo "=== round $round: this checkout (load average $(cut -d' ' -f1-3 /proc/loadavg))"
    env VOSAPP_PURE_PYTHON= "$python" "$root/bench/$script.py" --code "$root" $args 2>&1
  fi
}
for round in $(seq "$rounds"); do
  if [[ -n ${LOCK:-} ]]; then flock "$lock_fd"; fi
  if ((round % 2 == 0)); then measure after; measure before  # load drifts: alternate
  else measure before; measure after; fi
  if [[ -n ${LOCK:-} ]]; then flock -u "$lock_fd"; fi
done
