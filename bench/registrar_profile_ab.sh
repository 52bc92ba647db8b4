#!/usr/bin/env bash
# bench/registrar_profile.py before and after a change, in one run (bench/code_ab.sh: the
# vosapp of revision REV and of this checkout, back to back, ROUNDS times; LOCK=FILE, PYTHON=...).
#
# Usage: bash bench/registrar_profile_ab.sh REV [ROUNDS]
exec bash "$(dirname "$0")/code_ab.sh" registrar_profile "$@"
