#!/usr/bin/env bash
# System calls per authenticated registration: vosapp serve and Kamailio (the registrar
# baseline of bench/registrar.sh, children=1, bindings in memory) under the same SIPp load,
# each counted by `strace -c -f` attached to all its processes for the measured pass.
#
#   bash bench/registrar_syscalls.sh [CALLS]     (default: 10000 registrations)
#
# A system call costs the kernel's time, which the instruction counts (bench/
# registrar_instructions.py: user space only) do not see and the per-CPU-second figures of
# bench/registrar.sh do. strace slows each call down, so the rates of these passes mean
# nothing; the counts do: calls per registration, the same at any speed. Each server first
# binds every user once (not counted), as in bench/registrar.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
CALLS=${1:-10000}
RATE=${RATE:-20000}
LIMIT=${LIMIT:-100}
USERS=${USERS:-1000}
PY=${PY:-.venv/bin/python}
SCENARIO="$PWD/bench/registrar_sipp.xml"
source bench/common.sh
command -v sipp >/dev/null || { echo "sipp not installed (apt-get install sip-tester)"; exit 1; }

WORK=$(mktemp -d)
SERVE_PID=""; KAM_PID=""
cleanup() { stop_process "$SERVE_PID"; stop_process "$KAM_PID"; rm -rf "$WORK"; }
trap cleanup EXIT
install_debian_packages "$WORK/apt.log" strace kamailio || true
command -v strace >/dev/null || { echo "strace not installed (apt-get install strace)"; exit 1; }
"$PY" bench/registrar_setup.py accounts "$WORK" "$USERS"

# `registrations PORT CALLS`: SIPp's registrations against 127.0.0.1:PORT (fails on none ok).
registrations() {
  local dir="$WORK/sipp-$1-$2-$RANDOM"
  mkdir -p "$dir"
  (cd "$dir" && sipp "127.0.0.1:$1" -sf "$SCENARIO" -inf "$WORK/users.csv" -t u1 \
       -i 127.0.0.1 -m "$2" -r "$RATE" -l "$LIMIT" -nostdin -timeout 300 -timeout_error \
       >"$dir/sipp.txt" 2>&1) || { echo "SIPp failed against port $1:"; tail -5 "$dir/sipp.txt"; exit 1; }
}

# `counted NAME PORT PIDS...`: bind every user, then CALLS registrations with strace -c -f
# attached to PIDS; the summary goes to $WORK/NAME.strace.
counted() {
  local name=$1 port=$2 strace_pid attach=()
  shift 2
  registrations "$port" "$USERS"
  for pid in "$@"; do attach+=(-p "$pid"); done
  strace -c -f -o "$WORK/$name.strace" "${attach[@]}" 2>"$WORK/$name.strace.log" &
  strace_pid=$!
  sleep 1  # attached
  registrations "$port" "$CALLS"
  kill -INT "$strace_pid"
  wait "$strace_pid" || true
  SUMMARIES+=("$name=$WORK/$name.strace")
}

SUMMARIES=()
start_serve "$WORK/serve" --config "$WORK/switch.toml"
counted vosapp "$SERVE_PORT" "$SERVE_PID"
stop_process "$SERVE_PID"; SERVE_PID=""

if command -v kamailio >/dev/null; then
  start_kamailio "$WORK/kamailio.log"
  KAM_PID=$KAM_STARTED_PID
  # shellcheck disable=SC2086 # one argument per process
  counted kamailio "$KAM_STARTED_PORT" $KAM_STARTED_PIDS
else
  echo "kamailio: not installed and apt-get install -y kamailio failed - vosapp alone"
fi
"$PY" bench/syscall_counts.py "$CALLS" "${SUMMARIES[@]}"
