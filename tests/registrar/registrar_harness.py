"""Run `vosapp serve` (subprocess, 127.0.0.1, ephemeral port) and SIPp against it."""

from __future__ import annotations

import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "tests" / "sipp"
READY = re.compile(r"vosapp listening on (\S+):(\d+)")
USER, PASSWORD = "1001", "pw-1001-lab"

needs_sipp = pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp not installed")


def write_config(directory: Path, parameters: Mapping[str, object] | None = None,
                 accounts: Mapping[str, str] | None = None) -> Path:
    lines = ["[switch]", 'sip_listen = "127.0.0.1:5060"', f'data_dir = "{directory / "data"}"',
             "", "[parameters]"]
    for name, value in (parameters or {}).items():
        lines.append(f"{name} = {value!r}" if isinstance(value, int) else f'{name} = "{value}"')
    for user, password in (accounts or {USER: PASSWORD}).items():
        lines += ["", "[[account]]", f'user = "{user}"', f'password = "{password}"']
    path = directory / "switch.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class Served:
    host: str
    port: int
    process: subprocess.Popen[str]
    config: Path
    data_dir: Path


@contextmanager
def serve(config: Path, timeout: float = 30.0, *, tcp: bool = False) -> Iterator[Served]:
    """``vosapp serve --config F --listen 127.0.0.1:0 [--udp-only]``; SIGTERM on exit."""
    args = [sys.executable, "-m", "vosapp.cli", "serve", "--config", str(config),
            "--listen", "127.0.0.1:0", *([] if tcp else ["--udp-only"])]
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=str(ROOT))
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=env, cwd=config.parent)
    try:
        deadline = time.monotonic() + timeout
        match = None
        assert process.stdout is not None
        while match is None:
            if time.monotonic() > deadline:
                raise RuntimeError("vosapp serve did not become ready")
            if process.poll() is not None:
                raise RuntimeError(f"vosapp serve exited: {process.stderr.read()}")  # type: ignore
            ready, _, _ = select.select([process.stdout], [], [], 0.2)
            if ready:
                match = READY.search(process.stdout.readline())
        yield Served(match.group(1), int(match.group(2)), process, config,
                     config.parent / "data")
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class SippRun:
    returncode: int
    messages: str  # the -trace_msg log
    stdout: str

    def statuses(self) -> list[int]:
        """Status codes SIPp received, in order."""
        return [int(code) for code in re.findall(r"^SIP/2\.0 (\d{3})", self.messages, re.MULTILINE)]


def run_sipp(served: Served, scenario: str, workdir: Path, *, user: str = USER,
             password: str = PASSWORD, calls: int = 1, extra: tuple[str, ...] = (),
             timeout: float = 30.0, transport: str = "u1") -> SippRun:
    """Run ``tests/sipp/<scenario>`` for ``calls`` sequential calls; return what happened."""
    injection = workdir / f"users-{time.monotonic_ns()}.csv"
    injection.write_text(f"SEQUENTIAL\n{user};[authentication username={user} "
                         f"password={password}]\n")
    message_file = workdir / f"messages-{time.monotonic_ns()}.log"
    args = ["sipp", f"{served.host}:{served.port}", "-sf", str(SCENARIOS / scenario),
            "-inf", str(injection), "-t", transport, "-m", str(calls), "-l", "1",
            "-i", "127.0.0.1",
            "-p", str(free_udp_port()), "-trace_msg", "-message_file", str(message_file),
            "-timeout", f"{int(timeout)}s", "-nostdin", *extra]
    result = subprocess.run(args, check=False, capture_output=True, text=True,
                            timeout=timeout + 15,
                            cwd=workdir)
    messages = message_file.read_text(errors="replace") if message_file.exists() else ""
    return SippRun(result.returncode, messages, result.stdout + result.stderr)
