#!/usr/bin/env bash
# The live registrar before and after a change, in one run: bench/registrar.sh's saturated pass
# (authenticated REGISTERs over UDP loopback, offered faster than either server takes them)
# against the vosapp of revision REV and the vosapp of this checkout in turn, then against
# Kamailio, PAIRS times. Which vosapp goes first alternates from pair to pair (a loaded machine
# moves absolute figures; compare within a pair), and each pair has its own Kamailio pass for
# the ratio of the target (issue #14: vosapp >= 0.5 x Kamailio per CPU-second).
#
# Usage: bash bench/registrar_ab.sh REV [PAIRS] [CALLS]     (defaults: 6 pairs of 30000)
#
# REV's tree is taken with git archive and gets its compiled modules built in place (as
# bench/code_ab.sh does), so both sides run compiled. BEFORE=DIR measures the checkout in DIR
# as it is instead of REV (it must be built already). Both sides run under this checkout's
# interpreter (PY, default .venv/bin/python) and share one SQLite store and its 1000 users,
# bound by the first pass. Printed per pair: registrations per CPU-second of each server
# (with its wall rate and failed calls), after / before, and each vosapp / Kamailio.
# KAMAILIO=0 leaves Kamailio out (not installed, no pass: "-" in its columns).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
usage="usage: bash bench/registrar_ab.sh REV [PAIRS] [CALLS]"
rev=${1:?$usage}
PAIRS=${2:-6}
CALLS=${3:-30000}
RATE=${RATE:-20000}
LIMIT=${LIMIT:-100}
PY=${PY:-$root/.venv/bin/python}
SCENARIO="$root/bench/registrar_sipp.xml"
cd "$root"
source bench/common.sh
command -v sipp >/dev/null || { echo "sipp not installed (apt-get install sip-tester)"; exit 1; }

WORK=$(mktemp -d)
SERVE_PID=""; KAM_PID=""
trap 'stop_process "$SERVE_PID"; stop_process "$KAM_PID"; rm -rf "$WORK"' EXIT
if [[ -n ${BEFORE:-} ]]; then
  before=$(cd "$BEFORE" && pwd)
  before_label=$before
else
  before="$WORK/before"
  before_label=$rev
  mkdir -p "$before"
  git -C "$root" archive "$rev" | tar -x -C "$before"
  (cd "$before" && "$PY" setup.py -q build_ext --inplace >"$WORK/build.log" 2>&1) ||
    echo "note: $rev's compiled modules did not build; it runs its sources" >&2
fi
KAMAILIO=${KAMAILIO:-1}
[[ $KAMAILIO = 0 ]] || install_debian_packages "$WORK/apt.log" kamailio || true
"$PY" bench/registrar_setup.py accounts "$WORK" 1000

# The vosapp of the checkout $1 (its own sources and compiled modules: python -m puts the
# working directory first on sys.path), measured.
vosapp_pass() {
  cd "$1"
  start_serve "$WORK/serve" --config "$WORK/switch.toml"
  cd "$root"
  registrar_measure "$SERVE_PORT" "$RATE" "$CALLS" "$SERVE_PID"
  stop_process "$SERVE_PID"; SERVE_PID=""
}
kamailio_pass() {
  if [[ $KAMAILIO = 0 ]] || ! command -v kamailio >/dev/null; then echo "- - - - - - - -"; return; fi
  start_kamailio "$WORK/kamailio.log"
  KAM_PID=$KAM_STARTED_PID
  registrar_measure "$KAM_STARTED_PORT" "$RATE" "$CALLS" "$KAM_STARTED_PIDS"
  stop_process "$KAM_PID"; KAM_PID=""
}

echo "Live registrar, $CALLS registrations of 1000 users offered at $RATE/s (at most $LIMIT in flight) per pass; before: $before_label, after: $root ($(git -C "$root" rev-parse --short HEAD))"
echo "pair | first | before per CPU-s (wall/s, failed) | after per CPU-s (wall/s, failed) | Kamailio per CPU-s (wall/s, failed) | after/before | before/Kamailio | after/Kamailio | load average"
for pair in $(seq "$PAIRS"); do
  load=$(cut -d' ' -f1 /proc/loadavg)
  if ((pair % 2)); then
    b=$(vosapp_pass "$before"); a=$(vosapp_pass "$root"); first=before
  else
    a=$(vosapp_pass "$root"); b=$(vosapp_pass "$before"); first=after
  fi
  k=$(kamailio_pass)
  read -r br bf _ _ _ _ bc _ <<<"$b"; read -r ar af _ _ _ _ ac _ <<<"$a"
  read -r kr kf _ _ _ _ kc _ <<<"$k"
  "$PY" - "$pair" "$first" "$bc" "$br" "$bf" "$ac" "$ar" "$af" "$kc" "$kr" "$kf" "$load" <<'PY'
import sys
pair, first, bc, br, bf, ac, ar, af, kc, kr, kf, load = sys.argv[1:]
def ratio(x: str, y: str) -> str:
    try:
        return f"{float(x) / float(y):.3f}"
    except (ValueError, ZeroDivisionError):
        return "-"
print(f"{pair} | {first} | {bc} ({br}, {bf}) | {ac} ({ar}, {af}) | {kc} ({kr}, {kf}) | "
      f"{ratio(ac, bc)} | {ratio(bc, kc)} | {ratio(ac, kc)} | {load}")
PY
done
