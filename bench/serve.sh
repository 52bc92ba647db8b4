# Sourced by the shell benchmarks: `start_serve OUT_PREFIX ARGS...` runs
# `$PY -m vosapp.cli serve --listen 127.0.0.1:0 --udp-only --no-trace-store ARGS...` in the
# background (output in OUT_PREFIX.out, log in OUT_PREFIX.log), waits for its listening line
# and sets SERVE_PID and SERVE_PORT; exits the script with the log when it does not start.
start_serve() {
  local prefix=$1
  shift
  "$PY" -m vosapp.cli serve --listen 127.0.0.1:0 --udp-only --no-trace-store \
        --log-level WARNING "$@" >"$prefix.out" 2>"$prefix.log" &
  SERVE_PID=$!
  for _ in $(seq 150); do grep -q "listening on" "$prefix.out" 2>/dev/null && break; sleep 0.1; done
  SERVE_PORT=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$prefix.out")
  [ -n "$SERVE_PORT" ] || { echo "vosapp serve did not start:"; cat "$prefix.log"; exit 1; }
}
