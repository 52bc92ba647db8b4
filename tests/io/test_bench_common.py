"""bench/common.sh's start_serve (not a figure): the switch it starts stores its SIP trace only
when TRACE_STORE_MB asks, as the calls bench's runs with the default trace need."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.serving import ROOT, checkout_env


@pytest.mark.parametrize(("budget", "expected"), [
    ("", ["--no-trace-store"]), ("8", ["--trace-store-mb", "8"])])
def test_start_serve_stores_the_trace_only_when_asked(tmp_path: Path, budget: str,
                                                      expected: list[str]) -> None:
    script = (f"cd {ROOT} && source bench/common.sh && "
              f"start_serve {tmp_path}/serve --data-dir {tmp_path}/data && "
              "tr '\\0' ' ' < /proc/$SERVE_PID/cmdline; kill $SERVE_PID; wait $SERVE_PID")
    env = dict(checkout_env(), PY=sys.executable, TRACE_STORE_MB=budget)
    out = subprocess.run(["bash", "-c", script], check=False, env=env, capture_output=True,
                         text=True, timeout=60)
    assert "serve --listen 127.0.0.1:0 --udp-only " in out.stdout, out.stdout + out.stderr
    arguments = out.stdout.split("--udp-only ", 1)[1].split()
    assert arguments[:len(expected)] == expected
    assert ("--no-trace-store" in arguments) == (not budget)
