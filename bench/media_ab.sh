#!/usr/bin/env bash
# bench/media.py before and after a change, in one run (bench/code_ab.sh: the vosapp of
# revision REV and of this checkout, back to back, ROUNDS times; LOCK=FILE, PYTHON=...).
#
# Usage: bash bench/media_ab.sh REV [ROUNDS]
exec bash "$(dirname "$0")/code_ab.sh" media "$@"
