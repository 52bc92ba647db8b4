#!/usr/bin/env bash
# The interpreter for benches that take PY=... (bench/calls.sh): this checkout's .venv python
# with bench/release_timing first on PYTHONPATH, so its sitecustomize times the releases.
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
export PYTHONPATH="$here:$root${PYTHONPATH:+:$PYTHONPATH}"
exec "$root/.venv/bin/python" "$@"
