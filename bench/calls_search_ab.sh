#!/usr/bin/env bash
# Before/after of a change on the calls step search (issue #14): bench/calls.sh's vosapp search
# (ONLY=vosapp or WHAT=digest) for BASE (another checkout, e.g. `git worktree add /tmp/base
# <commit>`, its compiled parts built) and for this checkout, in the order base, this, this,
# base; the step lines of each. Where calls_ab.sh compares one fixed rate, this finds where
# each build stops being clean: a change that only pays under load (batching) shows here.
#
#   BASE=/tmp/base bash bench/calls_search_ab.sh     (env: START=450 MAX=900 WHAT=vosapp)
set -euo pipefail
cd "$(dirname "$0")/.."
: "${BASE:?BASE=<checkout of the commit to compare against>}"
PY=$(realpath -s "${PY:-.venv/bin/python}")
WHAT=${WHAT:-vosapp}
AFTER=$PWD
BASE=$(realpath "$BASE")
for who in base this this base; do
  if [ "$who" = base ]; then dir=$BASE; else dir=$AFTER; fi
  echo "== $who ($dir)"
  (cd "$dir" && PYTHONPATH="$dir" PY="$PY" ONLY=$WHAT VOSAPP_START=${START:-450} \
     MAX_RATE=${MAX:-900} STEP_SECONDS=10 bash bench/calls.sh 2>&1 | grep -E "^  $WHAT ") ||
    echo "(no step line)"
done
