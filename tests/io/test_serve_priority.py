"""``vosapp serve --realtime-priority N``: the switch under SCHED_RR (vosapp.io.serve).

Other work on the switch's CPU delays relayed media by whole scheduler slices under the normal
scheduler; a real-time switch runs when it has work. Checked in a child process (the test
process keeps its scheduler): the policy is SCHED_RR exactly when raise_priority says it was
set, and a switch started with the option serves under it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.serving import serve

pytestmark = pytest.mark.skipif(not hasattr(os, "SCHED_RR"), reason="no SCHED_RR here")

REPO_ROOT = Path(__file__).resolve().parents[2]


def run_child(code: str) -> str:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=60, check=True)
    return done.stdout.strip()


def test_raise_priority_sets_sched_rr_or_says_it_could_not() -> None:
    out = run_child(
        "import os\n"
        "from vosapp.io.serve import raise_priority\n"
        "before = os.sched_getscheduler(0)\n"
        "ok = raise_priority(3)\n"
        "policy = os.sched_getscheduler(0)\n"
        "print(ok, policy == os.SCHED_RR, policy == before,"
        " os.sched_getparam(0).sched_priority)\n")
    ok, is_rr, unchanged, priority = out.split()
    if ok == "True":
        assert (is_rr, priority) == ("True", "3")
    else:  # not permitted (no CAP_SYS_NICE): the normal scheduler stays
        assert unchanged == "True"


def test_serve_runs_under_sched_rr_when_asked(tmp_path: Path) -> None:
    permitted = run_child("from vosapp.io.serve import raise_priority; print(raise_priority(1))")
    with serve(data_dir=tmp_path, extra=("--realtime-priority", "2")) as served:
        policy = os.sched_getscheduler(served.process.pid)
        priority = os.sched_getparam(served.process.pid).sched_priority
    if permitted == "True":
        assert (policy, priority) == (os.SCHED_RR, 2)
    else:
        assert policy != os.SCHED_RR
