#!/usr/bin/env bash
# Authenticated REGISTER per second over UDP loopback, measured by SIPp, with Kamailio as the
# baseline in the same run (issue #14; target: vosapp >= 0.5 x Kamailio with one worker).
#
#   bash bench/registrar.sh [CALLS] [RATE]     (defaults: 30000 registrations offered at 20000/s)
#
# Both servers are offered more than they can take (RATE is far above either's capacity and
# at most LIMIT registrations are in flight: a closed loop, so an overloaded server is slowed
# down, not flooded), so each rate is that server's capacity and the ratio compares
# capacities; a run where Kamailio's rate is close to RATE says RATE was too low.
#
# Each SIPp call is one full registration: REGISTER -> 401 -> REGISTER with digest
# (qop=auth, MD5) -> 200 (bench/registrar_sipp.xml), for 1000 distinct users taken in turn from
# an injection file. Reported: successful registrations per second (= authenticated REGISTER/s),
# failed calls (must be 0), and p50/p99 of the authenticated REGISTER -> 200 time (SIPp
# -trace_rtt, millisecond resolution).
# 1. vosapp serve (UDP only, one Python process, trace in memory, bindings + audit in SQLite).
# 2. Kamailio (Debian package `kamailio`, which this script installs with apt-get when it is
#    missing, before the first pass; a bench prerequisite only, not needed by the tests;
#    bench/kamailio-registrar.cfg: children=1, bindings in memory), skipped with a note when
#    that fails. This is "what you would otherwise use"; the "ratio vosapp/kamailio" lines and
#    the target compare with it.
# 3. Kamailio with vosapp's durability: the same cfg with -A WITH_SQLITE, usrloc db_mode 1
#    (write-through: each save() inserts or updates the binding's row, autocommitted, before
#    the 200) through db_sqlite (Debian package `kamailio-sqlite-modules`, installed with
#    Kamailio when missing, as root or with sudo -n: bench/common.sh install_debian_packages;
#    skipped with a note when that fails) on a fresh file in the same temporary folder as
#    vosapp's store, created from Kamailio's shipped schema
#    (/usr/share/kamailio/db_sqlite/{standard,usrloc}-create.sql).
#    Same SQLite settings as vosapp's store: journal_mode WAL, synchronous NORMAL (db_sqlite
#    cannot set synchronous itself; the cfg sets it through sqlops on the same pooled
#    connection and logs it: without it SQLite's default FULL would fsync every commit;
#    KAM_SQLITE_SYNCHRONOUS=FULL measures that instead),
#    default wal_autocheckpoint (1000 pages); one commit per REGISTER on both. What differs:
#    vosapp's commit is a transaction (BEGIN IMMEDIATE, read the AOR's bindings, upsert,
#    COMMIT), Kamailio's one autocommitted UPDATE (INSERT for a new contact) after it checked
#    its in-memory copy (db_mode 1 writes through, it never reads back). Printed: the rows and
#    distinct users in its location table after the run, and "ratio vosapp/kamailio-sqlite"
#    (wall and per CPU-second).
# 4. With WORKERS=N (N > 1): a second pass where SIPp sends each registration from a socket of
#    its own (-t un), so that the kernel's SO_REUSEPORT hash can spread them: vosapp with one
#    process, vosapp with N processes on one port (bench/reuseport_serve.py, one SQLite store),
#    and Kamailio, all with -t un: the gain a second process on the second core gives.
# 5. Python's floor (bench/python_floor_registrar.py): a socket loop answering 401/200 with no
#    parse, digest check, policy or store, same SIPp load: the least a Python registrar costs.
# 6. The Python minimum (bench/python_minimum_registrar.py): the Kamailio cfg's work per
#    registration (parse, digest, bind, 200) in one Python function, bindings in memory, then
#    written through to SQLite, then in memory from an asyncio loop, then in SQLite with
#    vosapp's group commit: how close any Python registrar of that shape comes to Kamailio.
# Paste the output into docs/benchmarks.md ("Registrar").
set -euo pipefail
cd "$(dirname "$0")/.."
CALLS=${1:-30000}
RATE=${2:-20000}
LIMIT=${LIMIT:-100}          # registrations in flight at most (SIPp -l)
SUSTAINED=${SUSTAINED:-300}  # a second vosapp pass at this offered rate: latency below saturation
USERS=${USERS:-1000}
WORKERS=${WORKERS:-1}        # > 1: also measure that many SO_REUSEPORT vosapp processes
# PROFILE=FILE: py-spy (pip install py-spy) samples vosapp's saturated pass into FILE (collapsed
# stacks, native frames) and bench/stacks.py sums it; py-spy costs the server some CPU, so the
# rates of that pass are not comparable with a run without it.
PROFILE=${PROFILE:-}
# synchronous of the Kamailio SQLite baseline: NORMAL like vosapp's store; FULL is SQLite's
# default, what db_sqlite gives without the cfg's PRAGMA (an fsync of the WAL per commit)
KAM_SQLITE_SYNCHRONOUS=${KAM_SQLITE_SYNCHRONOUS:-NORMAL}
PY=${PY:-.venv/bin/python}
SCENARIO="$PWD/bench/registrar_sipp.xml"
source bench/common.sh
command -v sipp >/dev/null || { echo "sipp not installed (apt-get install sip-tester)"; exit 1; }

WORK=$(mktemp -d)
SERVE_PID=""; KAM_PID=""; KSQL_PID=""; WORKER_PIDS=""
cleanup() {
  stop_process "$SERVE_PID"
  stop_process "$KAM_PID"
  stop_process "$KSQL_PID"
  for pid in $WORKER_PIDS; do stop_process "$pid"; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# The baselines' packages, installed before any pass so that apt-get does not run between them
# (a fresh machine has neither; without them the bench measures vosapp alone and says so).
install_debian_packages "$WORK/apt.log" kamailio kamailio-sqlite-modules || true

# 1000 accounts (user 20000.., password pw-<user>) for vosapp, and the SIPp injection file.
"$PY" bench/registrar_setup.py accounts "$WORK" "$USERS"

# --- vosapp
start_serve "$WORK/serve" --config "$WORK/switch.toml"
PORT=$SERVE_PORT
SPY_PID=""
if [ -n "$PROFILE" ]; then
  "$(dirname "$PY")/py-spy" record --native -r 100 -f raw -o "$PROFILE" --pid "$SERVE_PID" \
      >"$WORK/py-spy.log" 2>&1 &
  SPY_PID=$!
  sleep 1
fi
read -r V_RATE V_FAILED V_ELAPSED V_OK V_P50 V_P99 V_CPU V_SYS < <(registrar_measure "$PORT" "$RATE" "$CALLS" "$SERVE_PID")
[ -z "$SPY_PID" ] || { kill -INT "$SPY_PID"; wait "$SPY_PID" || true; "$PY" bench/stacks.py "$PROFILE" 60; }
# Memory after the saturated pass: the process's peak and current resident set (VmHWM, VmRSS).
V_MEM=$(awk '/^VmHWM|^VmRSS/ { printf "%s %d MB ", $1, $2 / 1024 }' "/proc/$SERVE_PID/status")
read -r S_RATE S_FAILED S_ELAPSED S_OK S_P50 S_P99 S_CPU S_SYS < <(registrar_measure "$PORT" "$SUSTAINED" $((SUSTAINED * 10)) "$SERVE_PID")
BOUND=$("$PY" -c "
import sqlite3, time, sys
db = sqlite3.connect('$WORK/data/vosapp.sqlite')
print(db.execute('SELECT COUNT(DISTINCT aor) FROM registrar_bindings WHERE expires_at > ?', (time.time(),)).fetchone()[0])")
kill -TERM "$SERVE_PID"; wait "$SERVE_PID" 2>/dev/null || true; SERVE_PID=""

echo "Authenticated REGISTER over UDP loopback: $CALLS registrations of $USERS users offered at $RATE/s, at most $LIMIT in flight"
echo "vosapp serve : $V_RATE REGISTER/s ($V_OK ok, $V_FAILED failed, ${V_ELAPSED}s) p50 ${V_P50} ms p99 ${V_P99} ms; $V_CPU per CPU-second (kernel: $V_SYS of it); $BOUND users bound in SQLite; after it: $V_MEM"
echo "vosapp serve : at $SUSTAINED/s offered: $S_RATE REGISTER/s ($S_OK ok, $S_FAILED failed) p50 ${S_P50} ms p99 ${S_P99} ms; $S_CPU per CPU-second"

# --- Kamailio baseline
if command -v kamailio >/dev/null; then
  start_kamailio "$WORK/kamailio.log"
  KAM_PID=$KAM_STARTED_PID; KAM_PIDS=$KAM_STARTED_PIDS; KPORT=$KAM_STARTED_PORT
  read -r K_RATE K_FAILED K_ELAPSED K_OK K_P50 K_P99 K_CPU K_SYS < <(registrar_measure "$KPORT" "$RATE" "$CALLS" "$KAM_PIDS")
  echo "kamailio     : $K_RATE REGISTER/s ($K_OK ok, $K_FAILED failed, ${K_ELAPSED}s) p50 ${K_P50} ms p99 ${K_P99} ms; $K_CPU per CPU-second (all its processes; kernel: $K_SYS of it) [baseline, children=1, usrloc in memory]"
  RATIO=$("$PY" -c "print(f'{$V_RATE / max($K_RATE, 1):.2f}')")
  echo "ratio vosapp/kamailio (wall): $RATIO   target: >= 0.5, 0 failures"
  CPU_RATIO=$RATIO
  if [ "$K_CPU" != "-" ]; then
    CPU_RATIO=$("$PY" -c "print(f'{$V_CPU / $K_CPU:.2f}')")
    echo "ratio vosapp/kamailio (per CPU-second): $CPU_RATIO"
    # How much of a core each server used (rate / per CPU-second). A server below ~0.9 was
    # not the bottleneck: SIPp was (it shares the machine's 2 cores with the server), so that
    # server's wall rate is SIPp's limit, not its capacity, and the wall ratio overstates
    # vosapp; the per CPU-second ratio is then the capacity ratio, and the one judged.
    V_BUSY=$("$PY" -c "print(f'{$V_RATE / max($V_CPU, 1):.2f}')")
    K_BUSY=$("$PY" -c "print(f'{$K_RATE / max($K_CPU, 1):.2f}')")
    echo "busy: vosapp $V_BUSY of a core, kamailio $K_BUSY of a core (all its processes)"
    if "$PY" -c "import sys; sys.exit(not $K_BUSY < 0.9)"; then
      echo "kamailio was not saturated ($K_BUSY of a core): its wall rate is SIPp's limit; capacity ratio = per CPU-second ratio $CPU_RATIO"
      RATIO=$CPU_RATIO
    fi
  fi
  if [ "$V_FAILED" != "0" ] || "$PY" -c "import sys; sys.exit($RATIO >= 0.5)"; then echo "BELOW TARGET ($RATIO)"; fi
else
  echo "kamailio     : not installed and apt-get install -y kamailio failed ($(tail -n 1 "$WORK/apt.log" 2>/dev/null)) - no baseline"
fi

# --- Kamailio with vosapp's durability: usrloc write-through (db_mode 1) to SQLite, WAL
KAM_MODULES=/usr/lib/x86_64-linux-gnu/kamailio/modules  # the cfg's mpath
KAM_SCHEMA=/usr/share/kamailio/db_sqlite                 # shipped by kamailio-sqlite-modules
if ! command -v kamailio >/dev/null; then
  :  # noted above
elif [ ! -e "$KAM_MODULES/db_sqlite.so" ] || [ ! -e "$KAM_SCHEMA/usrloc-create.sql" ]; then
  echo "kamailio sqlite: db_sqlite or its schema not installed and apt-get install -y kamailio-sqlite-modules failed ($(tail -n 1 "$WORK/apt.log" 2>/dev/null)) - no write-through baseline"
else
  KDB="$WORK/kamailio-location.sqlite"
  # The location table from Kamailio's own schema files, WAL like vosapp's store
  "$PY" bench/registrar_setup.py kamailio-location "$KDB" "$KAM_SCHEMA"
  start_kamailio "$WORK/kamailio-sqlite.log" -A WITH_SQLITE -A "DBFILE=\"$KDB\"" \
                 -A "DBURL=\"sqlite:///$KDB\"" -A "SQLCON=\"ul=>sqlite:///$KDB\"" \
                 -A "SYNCHRONOUS=\"$KAM_SQLITE_SYNCHRONOUS\""
  KSQL_PID=$KAM_STARTED_PID
  read -r KS_RATE KS_FAILED KS_ELAPSED KS_OK KS_P50 KS_P99 KS_CPU KS_SYS < <(registrar_measure "$KAM_STARTED_PORT" "$RATE" "$CALLS" "$KAM_STARTED_PIDS")
  stop_process "$KSQL_PID"; KSQL_PID=""
  # What landed on disk (read after Kamailio stopped), and the synchronous setting its
  # connection reported (the cfg logs it before the first save()).
  KS_STORED=$("$PY" -c "
import sqlite3
db = sqlite3.connect('$KDB')
rows, users = db.execute('SELECT COUNT(*), COUNT(DISTINCT username) FROM location').fetchone()
print(f'{rows} rows, {users} users in location, journal_mode {db.execute(\"PRAGMA journal_mode\").fetchone()[0]}')")
  KS_SYNC=$(sed -n 's/.*usrloc sqlite connection: synchronous=\([0-9]*\).*/\1/p' "$WORK/kamailio-sqlite.log" | head -n 1)
  echo "kamailio sqlite: $KS_RATE REGISTER/s ($KS_OK ok, $KS_FAILED failed, ${KS_ELAPSED}s) p50 ${KS_P50} ms p99 ${KS_P99} ms; $KS_CPU per CPU-second (all its processes; kernel: $KS_SYS of it) [baseline, children=1, usrloc db_mode 1: write-through to SQLite, synchronous=${KS_SYNC:-?} (1 NORMAL, 2 FULL)]; $KS_STORED"
  echo "ratio vosapp/kamailio-sqlite (wall): $("$PY" -c "print(f'{$V_RATE / max($KS_RATE, 1):.2f}')")"
  [ "$KS_CPU" != "-" ] && echo "ratio vosapp/kamailio-sqlite (per CPU-second): $("$PY" -c "print(f'{$V_CPU / $KS_CPU:.2f}')")"
fi

# --- SO_REUSEPORT workers: one socket per registration at SIPp (-t un), same run
if [ "$WORKERS" -gt 1 ]; then
  start_serve "$WORK/serve-un" --config "$WORK/switch.toml" --no-control
  read -r U1_RATE U1_FAILED _ _ U1_P50 U1_P99 U1_CPU U1_SYS < <(registrar_measure "$SERVE_PORT" "$RATE" "$CALLS" "$SERVE_PID" un)
  stop_process "$SERVE_PID"; SERVE_PID=""
  WPORT=$(free_port)
  for n in $(seq "$WORKERS"); do
    "$PY" bench/reuseport_serve.py serve --listen "127.0.0.1:$WPORT" --udp-only --no-trace-store \
          --no-control --log-level WARNING --config "$WORK/switch.toml" \
          >"$WORK/worker$n.out" 2>"$WORK/worker$n.log" &
    WORKER_PIDS="$WORKER_PIDS $!"
    served_port "$WORK/worker$n.out" "$WORK/worker$n.log" >/dev/null || exit 1
  done
  read -r UN_RATE UN_FAILED _ _ UN_P50 UN_P99 UN_CPU UN_SYS < <(registrar_measure "$WPORT" "$RATE" "$CALLS" "$WORKER_PIDS" un)
  for pid in $WORKER_PIDS; do stop_process "$pid"; done; WORKER_PIDS=""
  echo "SIPp -t un (a socket per registration):"
  echo "vosapp 1 process   : $U1_RATE REGISTER/s ($U1_FAILED failed) p50 ${U1_P50} ms p99 ${U1_P99} ms; $U1_CPU per CPU-second"
  echo "vosapp $WORKERS processes : $UN_RATE REGISTER/s ($UN_FAILED failed) p50 ${UN_P50} ms p99 ${UN_P99} ms; $UN_CPU per CPU-second (all workers)"
  echo "gain of $WORKERS SO_REUSEPORT processes (wall): $("$PY" -c "print(f'{$UN_RATE / max($U1_RATE, 1):.2f}')")"
  if [ -n "$KAM_PID" ]; then
    read -r KU_RATE KU_FAILED _ _ KU_P50 KU_P99 KU_CPU KU_SYS < <(registrar_measure "$KPORT" "$RATE" "$CALLS" "$KAM_PIDS" un)
    echo "kamailio           : $KU_RATE REGISTER/s ($KU_FAILED failed) p50 ${KU_P50} ms p99 ${KU_P99} ms; $KU_CPU per CPU-second"
    echo "ratio vosapp $WORKERS processes / kamailio one worker (wall): $("$PY" -c "print(f'{$UN_RATE / max($KU_RATE, 1):.2f}')")"
  fi
fi

# --- Python's floor: bench/python_floor_registrar.py, a blocking socket loop that answers
# 401/200 by copying five header lines (no parse, digest check, policy, store, transaction,
# trace, event loop). What any registrar in Python costs at least per registration; it puts
# the "per CPU-second" ratios against Kamailio in proportion.
FLOOR_PORT=$(free_port)
"$PY" bench/python_floor_registrar.py "$FLOOR_PORT" >"$WORK/floor.out" 2>"$WORK/floor.log" &
FLOOR_PID=$!
WORKER_PIDS="$WORKER_PIDS $FLOOR_PID"  # stopped by cleanup whatever happens
served_port "$WORK/floor.out" "$WORK/floor.log" >/dev/null || exit 1
read -r F_RATE F_FAILED _ _ F_P50 F_P99 F_CPU F_SYS < <(registrar_measure "$FLOOR_PORT" "$RATE" "$CALLS" "$FLOOR_PID")
stop_process "$FLOOR_PID"
echo "python floor : $F_RATE REGISTER/s ($F_FAILED failed) p50 ${F_P50} ms p99 ${F_P99} ms; $F_CPU per CPU-second [bench/python_floor_registrar.py: no parse, digest, policy, store]"
echo "ratio vosapp/python floor (per CPU-second): $("$PY" -c "print(f'{$V_CPU / max($F_CPU, 1):.2f}')")"
if [ -n "${K_CPU:-}" ] && [ "$K_CPU" != "-" ]; then
  echo "ratio python floor/kamailio (per CPU-second): $("$PY" -c "print(f'{$F_CPU / $K_CPU:.2f}')")"
fi

# --- The Python minimum: bench/python_minimum_registrar.py does per registration the work the
# Kamailio cfg does (parse, Max-Forwards, stateless nonce, digest qop=auth, bind, 200) in one
# function, in memory and then written through to SQLite like the Kamailio SQLite baseline:
# how close to Kamailio any Python registrar of that shape comes, so how much of the 0.5 target
# is Python's and how much vosapp's. vosapp does more per registration (RFC 3261 transactions,
# the auth policy of SPEC §2, nonce state, trace, audit, group commit); none of that is here.
# The third pass serves the in-memory minimum from an asyncio loop with drained reads, as
# vosapp/io/udp.py does: what vosapp's runtime shape costs before any of vosapp's own work.
# The fourth commits as vosapp does: one transaction per batch of queued datagrams (up to 32),
# the batch's answers sent after its COMMIT (--group-commit): vosapp's durability at vosapp's
# price, so "python minimum (sqlite, group commit)/kamailio" says what a registrar of this
# shape that keeps "committed before the 200" reaches on the day.
for M_STORE in memory sqlite "memory, asyncio" "sqlite, group commit"; do
  M_PORT=$(free_port)
  M_ARGS=()
  M_FILE="$WORK/minimum-$(echo "$M_STORE" | tr -c 'a-z\n' -).sqlite"
  [ "$M_STORE" = sqlite ] && M_ARGS=(--sqlite "$M_FILE")
  [ "$M_STORE" = "memory, asyncio" ] && M_ARGS=(--asyncio)
  [ "$M_STORE" = "sqlite, group commit" ] && M_ARGS=(--sqlite "$M_FILE" --group-commit)
  "$PY" bench/python_minimum_registrar.py "$M_PORT" "${M_ARGS[@]}" >"$WORK/minimum.out" \
        2>"$WORK/minimum.log" &
  M_PID=$!
  WORKER_PIDS="$WORKER_PIDS $M_PID"
  served_port "$WORK/minimum.out" "$WORK/minimum.log" >/dev/null || exit 1
  read -r M_RATE M_FAILED _ _ M_P50 M_P99 M_CPU M_SYS < <(registrar_measure "$M_PORT" "$RATE" "$CALLS" "$M_PID")
  stop_process "$M_PID"
  echo "python minimum ($M_STORE): $M_RATE REGISTER/s ($M_FAILED failed) p50 ${M_P50} ms p99 ${M_P99} ms; $M_CPU per CPU-second (kernel: $M_SYS of it) [bench/python_minimum_registrar.py: the Kamailio cfg's work, bindings in $M_STORE]"
  if [ -f "$M_FILE" ]; then  # what a SQLite pass left committed, read by another connection
    echo "  its SQLite file: $("$PY" -c "import sqlite3, sys
print(sqlite3.connect(sys.argv[1]).execute('SELECT COUNT(*), COUNT(DISTINCT aor) FROM location').fetchone())" "$M_FILE") (rows, users) bound"
  fi
  echo "ratio vosapp/python minimum ($M_STORE) (per CPU-second): $("$PY" -c "print(f'{$V_CPU / max($M_CPU, 1):.2f}')")"
  if [ -n "${K_CPU:-}" ] && [ "$K_CPU" != "-" ]; then
    echo "ratio python minimum ($M_STORE)/kamailio (per CPU-second): $("$PY" -c "print(f'{$M_CPU / $K_CPU:.2f}')")"
  fi
  if [ "${M_STORE#sqlite}" != "$M_STORE" ] && [ -n "${KS_CPU:-}" ] && [ "$KS_CPU" != "-" ]; then
    echo "ratio python minimum ($M_STORE)/kamailio-sqlite (per CPU-second): $("$PY" -c "print(f'{$M_CPU / $KS_CPU:.2f}')")"
  fi
done
