# Shell helpers of the bench scripts, sourced after they set PY (the project's python).

# An absolute path (the scripts run SIPp in other folders); -s keeps the venv's symlink.
PY=$(realpath -s "$PY")

# `install_debian_packages LOG PKG...`: apt-get installs the Debian packages PKG that are not
# installed (a benchmark's baselines, never needed by the tests), as root or with sudo -n; when
# the install fails, it refreshes the package lists and tries once more. Output goes to LOG.
# Returns non-zero when a package is still missing; the caller says so and skips what needs it.
install_debian_packages() {
  local log=$1 pkg missing=() apt
  shift
  for pkg in "$@"; do
    [ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null)" = "install ok installed" ] \
      || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" = 0 ]; then apt=(apt-get); else apt=(sudo -n apt-get); fi
  echo "installing Debian packages for the baselines: ${missing[*]}" >&2
  { DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -q "${missing[@]}" \
    || { "${apt[@]}" update -q && DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -q \
         "${missing[@]}"; }; } >"$log" 2>&1
}

# A UDP port on 127.0.0.1 that nothing listens on.
free_port() { "$PY" -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# CPU seconds (user+system) used so far by process $1 (0 when no pid is given).
cpu_seconds() {
  if [ -n "${1:-}" ]; then awk -v hz="$(getconf CLK_TCK)" '{ printf "%.3f", ($14 + $15) / hz }' "/proc/$1/stat"
  else echo 0; fi
}

# The part of cpu_seconds that process $1 spent in the kernel (stime).
system_seconds() {
  if [ -n "${1:-}" ]; then awk -v hz="$(getconf CLK_TCK)" '{ printf "%.3f", $15 / hz }' "/proc/$1/stat"
  else echo 0; fi
}

# SIGTERM process $1 and reap it (nothing when $1 is empty or the process is gone).
stop_process() { [ -n "${1:-}" ] && kill -TERM "$1" 2>/dev/null && wait "$1" 2>/dev/null || true; }

# The port of a `vosapp serve --listen 127.0.0.1:0` whose stdout goes to file $1, once it
# printed its listening line (up to 10 s); fails showing its log $2 when it did not start.
served_port() {
  local port
  for _ in $(seq 100); do grep -q "listening on" "$1" 2>/dev/null && break; sleep 0.1; done
  port=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$1")
  [ -n "$port" ] || { echo "vosapp serve did not start:" >&2; cat "$2" >&2; return 1; }
  echo "$port"
}

# `start_serve OUT_PREFIX ARGS...` runs `$PY -m vosapp.cli serve --listen 127.0.0.1:0
# --udp-only --no-trace-store ARGS...` in the background (output in OUT_PREFIX.out, log in
# OUT_PREFIX.log), waits for its listening line and sets SERVE_PID and SERVE_PORT; exits the
# script with the log when it does not start. With TRACE_STORE_MB=N in the environment the
# switch stores its SIP trace within N MB (`--trace-store-mb N`), as `vosapp serve` does by
# default (256), instead of `--no-trace-store`.
start_serve() {
  local prefix=$1
  shift
  local trace=(--no-trace-store)
  [ -z "${TRACE_STORE_MB:-}" ] || trace=(--trace-store-mb "$TRACE_STORE_MB")
  "$PY" -m vosapp.cli serve --listen 127.0.0.1:0 --udp-only "${trace[@]}" \
        --log-level WARNING "$@" >"$prefix.out" 2>"$prefix.log" &
  SERVE_PID=$!
  SERVE_PORT=$(served_port "$prefix.out" "$prefix.log") || exit 1
}

# `write_calls_config FILE DATA_DIR MAPPING UAS_PORT`: the calls benches' switch config: account
# 1001, a mapping gateway for the caller (MAPPING: `addresses = [...]` to trust it by address,
# `accounts = ["1001"]` to challenge every INVITE), a routing gateway (prefix 00) to the callee
# on 127.0.0.1:UAS_PORT; media proxy Off (no RTP in these benches).
write_calls_config() {
  cat >"$1" <<TOML
[switch]
sip_listen = "127.0.0.1:5060"
data_dir = "$2"

[[account]]
user = "1001"
password = "secret-1001"

[[mapping_gateway]]
name = "customer"
$3
media_proxy = "Off"

[[routing_gateway]]
name = "vendor"
address = "127.0.0.1:$4"
prefixes = ["00"]
media_proxy = "Off"
TOML
}

# `registrar_measure PORT [RATE] [CALLS] [PIDS] [TRANSPORT]`: bench/registrar_sipp.xml's
# authenticated registrations against 127.0.0.1:PORT (the registrar benches: registrar.sh,
# registrar_ab.sh), at RATE (default $RATE) for CALLS (default $CALLS) with at most $LIMIT in
# flight, the users of $WORK/users.csv, SIPp transport TRANSPORT (u1 or un); PIDS are the
# server's processes, space separated, for the CPU time. Prints "rate failed elapsed ok p50
# p99 per_cpu_second kernel_share" (per_cpu_second = registrations / CPU seconds the server
# used: its capacity per core, independent of how busy the shared machine is; "-" without a
# pid). The caller sets SCENARIO, WORK, LIMIT, RATE and CALLS.
registrar_measure() {
  local port=$1 rate=${2:-$RATE} calls=${3:-$CALLS} pids=${4:-} transport=${5:-u1}
  local dir start end cpu0 cpu1 sys0 sys1
  dir=$(mktemp -d "$WORK/run-$1-${2:-max}-$transport-XXXX")
  cpu0=$(cpu_total "$pids"); sys0=$(cpu_total "$pids" system_seconds)
  start=$(date +%s.%N)
  (cd "$dir" && sipp "127.0.0.1:$port" -sf "$SCENARIO" -inf "$WORK/users.csv" \
       -t "$transport" -max_socket 1000 -i 127.0.0.1 -m "$calls" -r "$rate" -l "$LIMIT" \
       -nostdin -timeout 180 -timeout_error -trace_rtt -rtt_freq 1 -trace_stat \
       -stf stats.csv -fd 3600 >"$dir/sipp.txt" 2>&1) || true
  end=$(date +%s.%N)
  cpu1=$(cpu_total "$pids"); sys1=$(cpu_total "$pids" system_seconds)
  "$PY" bench/sipp_stats.py rate "$dir" "$("$PY" -c "print($end - $start)")" \
        "$("$PY" -c "print($cpu1 - $cpu0)")" "$("$PY" -c "print($sys1 - $sys0)")"
}

# CPU seconds used so far by all the processes in "$1" (0 for none); $2 = system_seconds:
# only their time in the kernel.
cpu_total() {
  local sum=0 pid
  for pid in $1; do sum=$("$PY" -c "print($sum + $("${2:-cpu_seconds}" "$pid"))"); done
  echo "$sum"
}

# `start_kamailio LOG ARGS...`: Kamailio on a free UDP port of 127.0.0.1 with
# bench/kamailio-registrar.cfg and extra command-line ARGS (-A defines); sets KAM_STARTED_PID,
# KAM_STARTED_PIDS (main, UDP worker, timers: all of them, for the CPU time) and
# KAM_STARTED_PORT.
start_kamailio() {
  local log=$1
  shift
  KAM_STARTED_PORT=$(free_port)
  mkdir -p "$log.run"
  kamailio -f bench/kamailio-registrar.cfg "$@" -l "udp:127.0.0.1:$KAM_STARTED_PORT" -D -E \
           -Y "$log.run" -w "$log.run" -m 128 -M 16 >"$log" 2>&1 &
  KAM_STARTED_PID=$!
  sleep 1.5
  KAM_STARTED_PIDS="$KAM_STARTED_PID $(pgrep -P "$KAM_STARTED_PID" | tr '\n' ' ')"
}
