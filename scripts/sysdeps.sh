#!/usr/bin/env bash
# Installs the Debian packages vosapp needs, only when missing.
# As root: apt-get installs them. Otherwise: says the exact command and stops.
set -euo pipefail

# libbcg729-0: G.729 codec (ctypes binding in vosapp.media.codecs.g729)
# sip-tester:  the real `sipp` binary for interop and load tests
# tshark:      decodes our pcap exports in tests (optional in the switch itself)
# chromium:    kaleido renders ladder diagrams to SVG/PNG with a headless browser
# gcc:         builds the C extensions (vosapp/media/codecs/_g729lane.c, vosapp/io/_rtphub.c; setup.py)
# valgrind:    counts instructions per registration and per call (bench/registrar_instructions.py,
#              bench/calls_instructions.py, and their tests)
# strace:      counts system calls per registration (bench/registrar_syscalls.sh, and its test)
# python3-venv is only needed where the system python lacks venv/ensurepip, python3-dev
# (Python.h, for the C extensions) where it lacks its headers
PACKAGES=(libbcg729-0 sip-tester tshark chromium gcc valgrind strace)
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  PACKAGES+=(python3-venv)
fi
if ! python3 -c 'import os, sysconfig, sys
sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
    >/dev/null 2>&1; then
  PACKAGES+=(python3-dev)
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -ne 0 ]]; then
  echo "vosapp needs these Debian packages: ${missing[*]}" >&2
  echo "install them with:  sudo apt-get install -y ${missing[*]}" >&2
  echo "then run make again." >&2
  exit 1
fi
echo "installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
