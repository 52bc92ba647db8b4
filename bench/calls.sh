#!/usr/bin/env bash
# Calls per second through a B2BUA over UDP loopback: an RFC 7501-style step search (issue #14).
#
#   bash bench/calls.sh            (env: STEP_SECONDS=10 STEP=25 VOSAPP_START=100
#                                   SIPPY_START=50 MAX_RATE=1000 WARMUP_RATE=20
#                                   ONLY="vosapp digest sippy")
#
# SIPp bench/calls_uac.xml (INVITE, 100/180, 200, ACK, BYE at once, 200; a 401 is answered
# with digest) -> B2BUA -> SIPp tests/sipp/call_uas.xml (as sipp_stats.py uas_scenario changes
# it). No RTP, media proxy Off. Each step offers RATE calls/s for STEP_SECONDS to a B2BUA that
# keeps running; the step is clean when no call failed at either SIPp, nothing was
# retransmitted, and the UAS completed and was ACKed for every call the UAC placed (RFC 7501
# section 4). A step at WARMUP_RATE comes first and is not counted. The
# search raises RATE by STEP until a step is not clean and
# reports the highest clean step and the first unclean one. Searched, one after the other:
#   vosapp : `vosapp serve --udp-only --no-trace-store` (TRACE_STORE_MB=256: the trace stored,
#            as vosapp serve does by default; bench/common.sh), a trusted mapping gateway
#            (addresses = 127.0.0.1/32) for the UAC, a routing gateway to the UAS.
#   digest : the same, the mapping gateway by account: every INVITE is challenged (401).
#   sippy  : Sippy B2BUA 2.5 (`b2bua -f -u -A 0 -s UAS`: no auth, no accounting), the Python
#            reference B2BUA, from PyPI `sippy` in a bench-only virtual environment created in
#            SIPPY_VENV (default ~/.cache/vosapp-bench/sippy-2.5; needs network the first time);
#            its per-message log off (SIPPY_LOG=stderr turns it on).
# The caller ignores (and counts: "stray") a message its scenario does not expect within a call
# instead of failing the call (sipp_stats.py UAC_FLAGS): Sippy's sender threads let a 180
# overtake its 200 at times, which a UA drops (RFC 3261 17.1.1.2). Before 2026-12-03 such a
# call failed the step: Sippy's clean steps were 25-50/s then, 100-125/s since. The callee
# likewise (UAS_FLAGS): the same threads let the caller's BYE overtake its ACK at times; the
# call ends at the BYE and the late ACK is ignored and counted, and a step is clean only if
# every call's ACK reached the callee (before 2026-12-06 such a call failed the step).
# Server CPU per call (per CPU-second column) is measured from /proc too: on a shared machine
# the wall-clock rates move with other people's load; compare only within one run.
# After each step line, in brackets: the load average, receive-buffer drops (the switch's
# socket and the others), the caller SIPp's CPU share, the CPU time the hypervisor stole and
# how often the switch was preempted; under it, bench/backlog_sampler.py's line (the switch's
# receive queue, and what the switch and a canary did while datagrams waited).
# Prerequisites: sipp (apt-get install sip-tester), python3 with venv + pip for Sippy.
set -euo pipefail
cd "$(dirname "$0")/.."
STEP_SECONDS=${STEP_SECONDS:-10}
STEP=${STEP:-25}
VOSAPP_START=${VOSAPP_START:-100}
SIPPY_START=${SIPPY_START:-50}
MAX_RATE=${MAX_RATE:-1000}
WARMUP_RATE=${WARMUP_RATE:-20}
ONLY=${ONLY:-vosapp digest sippy}
# TOML lines for the switch's [parameters] table, e.g. "SS_SIP_RESEND_INTERVAL = 100" (T1 of
# RFC 3261 in ms: completed transactions then last 64*T1 = 6.4 s instead of 32 s)
SWITCH_PARAMETERS=${SWITCH_PARAMETERS:-}
PY=${PY:-.venv/bin/python}
SIPPY_VENV=${SIPPY_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/vosapp-bench/sippy-2.5}
UAC="$PWD/bench/calls_uac.xml"
STATS="$PWD/bench/sipp_stats.py"
source bench/common.sh
command -v sipp >/dev/null || { echo "sipp not installed (apt-get install sip-tester)"; exit 1; }
# Both SIPps' socket buffers. SIPp sets its own to 64 KiB unless told (-buff_size): ~60 small
# datagrams, a few milliseconds at 8,000+ messages a second, so a SIPp that lost its CPU for
# a moment dropped messages on its own receive buffer and the step failed on retransmissions
# that were the load generator's (seen at 775-850 calls/s: "receive-buffer drops: ... others
# N" below). The kernel caps the size at net.core.rmem_max / wmem_max.
SIPP_BUFFER=${SIPP_BUFFER:-4194304}
# The caller SIPp's CPU time per step through GNU time (Debian package `time`), when installed:
# the caller paces the calls and handles most messages (all of them twice with digest), so a
# step it could not keep up with says so ("caller SIPp CPU" below). Not the UAS: it is stopped
# with SIGTERM when calls never came, which must reach SIPp itself.
TIMED=(); [ -x /usr/bin/time ] && TIMED=(/usr/bin/time -f "%e %U %S")

WORK=$(mktemp -d)
# The tests' vendor, as sipp_stats.py uas_scenario changes it: no ";transport=UDP" in its
# Contact (Sippy 2.5 sends nothing to it), and a BYE that overtook the ACK ends the call.
UAS="$WORK/call_uas.xml"
"$PY" "$STATS" uas-scenario "$UAS"
# the SIPps' options of sipp_stats.py (UAC_FLAGS, UAS_FLAGS), read once for every step
read -r -a UAC_FLAGS <<<"$("$PY" "$STATS" uac-flags)"
read -r -a UAS_FLAGS <<<"$("$PY" "$STATS" uas-flags)"
SERVER_PID=""
stop_server() {
  if [ -n "$SERVER_PID" ]; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
  fi
}
cleanup() { stop_server; [ -n "${KEEP:-}" ] || rm -rf "$WORK"; }
trap cleanup EXIT
[ -z "${KEEP:-}" ] || echo "KEEP: files in $WORK"

UAS_PORT=$(free_port)

# vosapp serve on a config whose mapping gateway is trusted by address ($1 = trusted) or by
# account 1001 with digest ($1 = digest); sets SERVER_PID and SERVER_PORT.
start_vosapp() {
  local mapping config="$WORK/$1.toml"
  if [ "$1" = trusted ]; then mapping='addresses = ["127.0.0.1/32"]'; else mapping='accounts = ["1001"]'; fi
  write_calls_config "$config" "$WORK/data-$1" "$mapping" "$UAS_PORT"
  [ -z "$SWITCH_PARAMETERS" ] || printf '\n[parameters]\n%s\n' "$SWITCH_PARAMETERS" >>"$config"
  start_serve "$WORK/serve-$1" --config "$config"
  SERVER_PID=$SERVE_PID; SERVER_PORT=$SERVE_PORT
}

start_sippy() {
  if [ ! -x "$SIPPY_VENV/bin/b2bua" ]; then
    python3 -m venv "$SIPPY_VENV" && "$SIPPY_VENV/bin/pip" install -q 'sippy==2.5.*' \
      || { echo "could not install sippy 2.5 into $SIPPY_VENV"; exit 1; }
  fi
  SERVER_PORT=$(free_port)
  # its own session: Sippy stopping signals its process group, which would end this script
  # SIPLOG_BEND=none: no per-message log (Sippy writes every message to stderr by default;
  # vosapp runs with its trace store off and logs warnings only). SIPPY_LOG=stderr for it.
  SIPLOG_BEND=${SIPPY_LOG:-none} setsid "$SIPPY_VENV/bin/b2bua" -f -u -A 0 -l 127.0.0.1 -p "$SERVER_PORT" -s "127.0.0.1:$UAS_PORT" \
      -L "$WORK/b2bua.log" -P "$WORK/b2bua.pid" --b2bua_socket="$WORK/b2bua.sock" \
      >"$WORK/b2bua.out" 2>&1 &
  SERVER_PID=$!
  sleep 2
  kill -0 "$SERVER_PID" 2>/dev/null || { echo "sippy b2bua did not start:"; cat "$WORK/b2bua.out"; exit 1; }
}

# Datagrams the kernel dropped because a receive buffer was full: all UDP sockets of the
# machine (RcvbufErrors of /proc/net/snmp), and the one socket bound to 127.0.0.1:$1 (the
# drops column of /proc/net/udp; 0 when none is bound).
rcvbuf_errors() { awk '/^Udp: [0-9]/ { print $6 }' /proc/net/snmp; }
socket_drops() {
  awk -v port="$(printf '%04X' "$1")" '$2 == "0100007F:" port { print $NF; found = 1 }
       END { if (!found) print 0 }' /proc/net/udp
}

# Time the hypervisor gave to others while this VM wanted its CPUs (the steal column of
# /proc/stat, all CPUs, USER_HZ ticks of 10 ms), and how often the switch was preempted
# (nonvoluntary_ctxt_switches of /proc/PID/status): what a pause of the switch would show when
# it is not the switch's own doing.
# bench/backlog_sampler.py adds a line under each step: the switch's largest receive queue,
# and over its longest stretch with over 64 KiB waiting, the switch's CPU share and its main
# thread's states (R running or runnable, S asleep, D in uninterruptible I/O).
steal_ticks() { awk '/^cpu / { print $9 }' /proc/stat; }
preemptions() { awk '/^nonvoluntary_ctxt_switches/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

# One step at $2 calls/s against the running server ($1 = label, extra UAC args after $2);
# prints the sipp_stats.py step line. Writes "switch N others M" to the step's folder, file
# drops: datagrams dropped on full receive buffers during the step, on the switch's socket and
# on all others (the two SIPps: nothing else on this machine receives that much).
run_step() {
  local label=$1 rate=$2 calls dir cpu0 cpu1 uas_pid
  shift 2
  calls=$((rate * STEP_SECONDS))
  dir="$WORK/$label-$rate"; mkdir -p "$dir/uas"
  # its own session: a SIPp leaving by its -timeout must not take this shell with it.
  # UAS_FLAGS (sipp_stats.py): an ACK that comes after its call's BYE is ignored and counted.
  (cd "$dir/uas" && exec setsid sipp -sf "$UAS" -i 127.0.0.1 -p "$UAS_PORT" -t u1 -m "$calls" \
       "${UAS_FLAGS[@]}" -buff_size "$SIPP_BUFFER" \
       -mp "$(free_port)" -nostdin -timeout $((STEP_SECONDS + 60)) -trace_stat -stf stats.csv \
       -fd 3600 >sipp.txt 2>&1) &
  uas_pid=$!
  sleep 0.3
  cpu0=$(cpu_seconds "$SERVER_PID")
  local all0 switch0 all1 switch1 steal0 steal1 preempt0 preempt1
  all0=$(rcvbuf_errors); switch0=$(socket_drops "$SERVER_PORT")
  steal0=$(steal_ticks); preempt0=$(preemptions "$SERVER_PID")
  # the switch's receive queue and what the switch did meanwhile, every 50 ms of the step
  "$PY" bench/backlog_sampler.py "$SERVER_PID" "$SERVER_PORT" >"$dir/backlog" 2>&1 &
  local sampler=$!
  # UAC_FLAGS (sipp_stats.py): a stray message within a call is ignored and counted, not
  # fatal. timeout: SIPp's own -timeout does not end a run whose calls wait for a message.
  (cd "$dir" && setsid timeout -k 5 $((STEP_SECONDS + 70)) "${TIMED[@]}" ${TIMED:+-o time.txt} \
       sipp "127.0.0.1:$SERVER_PORT" \
       -sf "$UAC" -s 0044123 -t u1 -i 127.0.0.1 "${UAC_FLAGS[@]}" -buff_size "$SIPP_BUFFER" \
       -mp "$(free_port)" -m "$calls" -r "$rate" -nostdin -timeout $((STEP_SECONDS + 50)) \
       -trace_stat -stf stats.csv -fd 3600 -trace_rtt -rtt_freq 1 "$@" >sipp.txt 2>&1) || true
  # the UAS ends by itself after the last call; one that is still waiting for calls that
  # never came is told to stop (SIGTERM: SIPp writes its statistics and exits)
  for _ in $(seq 30); do kill -0 "$uas_pid" 2>/dev/null || break; sleep 0.1; done
  kill -TERM "$uas_pid" 2>/dev/null || true
  wait "$uas_pid" 2>/dev/null || true
  cpu1=$(cpu_seconds "$SERVER_PID")
  kill -TERM "$sampler" 2>/dev/null || true
  wait "$sampler" 2>/dev/null || true
  all1=$(rcvbuf_errors); switch1=$(socket_drops "$SERVER_PORT")
  steal1=$(steal_ticks); preempt1=$(preemptions "$SERVER_PID")
  echo "switch $((switch1 - switch0)) others $((all1 - all0 - (switch1 - switch0)))" >"$dir/drops"
  echo "; stolen $(((steal1 - steal0) * 10)) ms; switch preempted $((preempt1 - preempt0))x" \
       >"$dir/steal"
  "$PY" "$STATS" step "$dir" "$dir/uas" "$("$PY" -c "print($cpu1 - $cpu0)")"
}

# "; caller SIPp CPU: X" (its CPU seconds per second of its run) for step folder $1, or
# nothing without GNU time.
sipp_cpu() {
  [ -s "$1/time.txt" ] || return 0
  awk 'NF == 3 { printf "; caller SIPp CPU: %.2f of a core", ($2 + $3) / ($1 > 0 ? $1 : 1) }' \
      "$1/time.txt"
}

# Step search for $1 (label) from $2 calls/s, extra UAC args after; prints one line per step
# and sets BEST (highest clean rate, 0 if none) and NEXT (the first unclean step's line).
search() {
  local label=$1 rate=$2 line
  shift 2
  BEST=0; BEST_LINE="-"; NEXT="-"
  # warm-up, not counted: the first calls of a fresh Python process are slow
  run_step "$label-warmup" "$WARMUP_RATE" "$@" >/dev/null
  while [ "$rate" -le "$MAX_RATE" ]; do
    line=$(run_step "$label" "$rate" "$@")
    printf '  %-7s %5s/s  %s   (load %s; receive-buffer drops: %s%s%s)\n' "$label" "$rate" \
           "$line" "$(cut -d' ' -f1 /proc/loadavg)" \
           "$(cat "$WORK/$label-$rate/drops" 2>/dev/null)" "$(sipp_cpu "$WORK/$label-$rate")" \
           "$(cat "$WORK/$label-$rate/steal" 2>/dev/null)"
    printf '            %s\n' "$(cat "$WORK/$label-$rate/backlog" 2>/dev/null)"
    if [ "${line##* }" = yes ]; then BEST=$rate; BEST_LINE=$line; else NEXT="$rate/s: $line"; break; fi
    rate=$((rate + STEP))
  done
}

echo "SIPp socket buffers: -buff_size $SIPP_BUFFER (net.core.rmem_max $(cat /proc/sys/net/core/rmem_max), wmem_max $(cat /proc/sys/net/core/wmem_max))"
echo "vosapp's SIP trace: $([ -n "${TRACE_STORE_MB:-}" ] && echo "stored within $TRACE_STORE_MB MB (TRACE_STORE_MB)" || echo "not stored (--no-trace-store)")"
echo "step lines: offered ok failed retrans uas_ok uas_failed uas_retrans setup_p50_ms setup_p99_ms server_calls_per_cpu_s stray clean"
declare -A RESULT DETAIL CLEAN_LINE
for what in $ONLY; do
  case $what in
    vosapp) start_vosapp trusted; search vosapp "$VOSAPP_START" ;;
    digest) start_vosapp digest; search digest "$VOSAPP_START" -au 1001 -ap secret-1001 ;;
    sippy)  start_sippy; search sippy "$SIPPY_START" ;;
    *) echo "unknown: $what"; exit 1 ;;
  esac
  stop_server
  RESULT[$what]=$BEST; DETAIL[$what]=$NEXT; CLEAN_LINE[$what]=$BEST_LINE
done

echo
echo "Calls per second, UDP loopback, ${STEP_SECONDS}s steps of $STEP calls/s; $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
printf '| %-40s | %18s | %s |\n' "B2BUA" "highest clean step" "clean step line / next step"
for what in $ONLY; do
  case $what in
    vosapp) name="vosapp serve (trusted address)" ;;
    digest) name="vosapp serve (digest on every INVITE)" ;;
    sippy)  name="Sippy B2BUA 2.5 (b2bua -f -u -A 0)" ;;
  esac
  printf '| %-40s | %16s/s | %s ; next %s |\n' "$name" "${RESULT[$what]}" "${CLEAN_LINE[$what]}" "${DETAIL[$what]}"
done
if [ -n "${RESULT[sippy]:-}" ] && [ "${RESULT[sippy]}" -gt 0 ]; then
  for what in vosapp digest; do
    [ -n "${RESULT[$what]:-}" ] || continue
    echo "ratio $what/sippy: $("$PY" -c "print(f'{${RESULT[$what]} / ${RESULT[sippy]}:.2f}')")"
    # per CPU-second at each one's clean step (field 10 of the step line): the server's
    # one-core capacity, which the machine's neighbours move less than the steps
    mine=$(echo "${CLEAN_LINE[$what]}" | cut -d' ' -f10); theirs=$(echo "${CLEAN_LINE[sippy]}" | cut -d' ' -f10)
    if [ "$mine" != "-" ] && [ "$theirs" != "-" ]; then
      echo "ratio $what/sippy per CPU-second: $("$PY" -c "print(f'{$mine / $theirs:.2f}')")"
    fi
  done
  echo "targets: vosapp >= 3 x sippy, digest >= 2 x sippy"
fi
