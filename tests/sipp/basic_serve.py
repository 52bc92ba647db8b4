"""Helpers for SIPp tests: run `vosapp serve` as a subprocess on an ephemeral port, run sipp.

Shared by the tests in this folder (import as ``from basic_serve import ...``).
"""

from __future__ import annotations

import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
READY = re.compile(r"vosapp listening on (\S+):(\d+)")

needs_sipp = pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp not installed")


@contextmanager
def serve(data_dir: Path, *extra: str, config: Path | None = None,
          timeout: float = 30.0) -> Iterator[tuple[str, int, subprocess.Popen[str]]]:
    """Start ``vosapp serve --listen 127.0.0.1:0``; yield (host, port, process); SIGTERM it."""
    args = [sys.executable, "-m", "vosapp.cli", "serve", "--listen", "127.0.0.1:0",
            "--data-dir", str(data_dir), *extra]
    if config is not None:
        args += ["--config", str(config)]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=env, cwd=data_dir)
    try:
        deadline = time.monotonic() + timeout
        line = ""
        while time.monotonic() < deadline:
            ready, _, _ = select.select([process.stdout], [], [], 0.2)
            if ready:
                line = process.stdout.readline()  # type: ignore[union-attr]
                match = READY.search(line)
                if match:
                    break
            if process.poll() is not None:
                raise RuntimeError(f"vosapp serve exited: {process.stderr.read()}")  # type: ignore[union-attr]
        else:
            raise RuntimeError("vosapp serve did not print its listening line in time")
        yield match.group(1), int(match.group(2)), process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def run_sipp(scenario: Path, host: str, port: int, *, transport: str = "u1", calls: int = 10,
             rate: int = 100, extra: Sequence[str] = (), cwd: Path | None = None,
             timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run sipp as a client (local port chosen by the system); returns the finished process.

    sipp exits 0 when every call succeeded, 1 when at least one failed.
    """
    args = ["sipp", f"{host}:{port}", "-sf", str(scenario), "-t", transport, "-m", str(calls),
            "-r", str(rate), "-nostdin", "-timeout", str(int(timeout / 2)), "-timeout_error",
            "-trace_err", *extra]
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False,
                          cwd=cwd)
