#!/usr/bin/env bash
# Transcoded (PCMA <-> G.729) and relayed (PCMA <-> PCMA) calls end to end through a real
# `vosapp serve` with RTP both ways (issue #14, part 2): see bench/media_calls.py's docstring.
#
#   bash bench/media_calls.sh                          # both searches, 30 s per step
#   bash bench/media_calls.sh --media-bench --lock /tmp/vosapp-bench.lock
#   bash bench/media_calls.sh --hold 3 --steps 4 --no-refine     # smoke run
#
# Runs this checkout's vosapp (PYTHONPATH) with $PY (default .venv/bin/python).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
echo "uptime: $(uptime)" >&2
exec "$PY" bench/media_calls.py "$@"
