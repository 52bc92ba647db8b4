"""The real ``sipp`` binary with the scenarios of tests/sipp/ (loopback only).

SIPp exits 0 when every call of its scenario ran exactly as written, 1 when one failed; with
``-trace_err`` it writes ``*_errors.log`` into its working directory, with ``-trace_msg``
``*_messages.log`` (:func:`sipp_logs` collects both for a failure message).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.ports import free_media_port, free_port
from tests.support.serving import PASSWORD, ROOT, USER, Served

SCENARIOS = ROOT / "tests" / "sipp"

needs_sipp = pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp not installed")


def sipp_args(scenario: Path | str, *, remote: str | None = None, local_port: int | None = None,
              transport: str = "u1", calls: int = 1, rate: int | None = None,
              timeout: float = 30.0, timeout_error: bool = True, ip: str = "127.0.0.1",
              extra: Sequence[str] = ()) -> list[str]:
    """The sipp command line: ``scenario`` is a path, or a file name in tests/sipp/;
    ``remote`` HOST:PORT for a client (None for a server); ``local_port`` None lets the
    system choose; ``timeout`` the global timeout in seconds; ``ip`` the local address
    (another loopback address plays a second host, e.g. a trusted carrier)."""
    path = Path(scenario) if Path(scenario).is_absolute() else SCENARIOS / scenario
    args = ["sipp", *([remote] if remote else []), "-sf", str(path), "-i", ip,
            "-t", transport, "-m", str(calls), "-nostdin", "-timeout", f"{int(timeout)}s",
            "-trace_err"]
    if local_port is not None:
        args += ["-p", str(local_port)]
    if "-mp" not in extra:  # SIPp's default media port 6000 would collide between SIPps
        args += ["-mp", str(free_media_port())]
    if rate is not None:
        args += ["-r", str(rate)]
    if timeout_error:
        args.append("-timeout_error")
    return args + list(extra)


def run_sipp(scenario: Path | str, *, cwd: Path, remote: str | None = None,
             local_port: int | None = None, transport: str = "u1", calls: int = 1,
             rate: int | None = None, timeout: float = 30.0, timeout_error: bool = True,
             extra: Sequence[str] = ()) -> subprocess.CompletedProcess[str]:
    """Run sipp to completion (at most ``timeout`` + 15 s); returns the finished process."""
    args = sipp_args(scenario, remote=remote, local_port=local_port, transport=transport,
                     calls=calls, rate=rate, timeout=timeout, timeout_error=timeout_error,
                     extra=extra)
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout + 15,
                          check=False, cwd=cwd)


def start_sipp(scenario: Path | str, *, cwd: Path, remote: str | None = None,
               local_port: int | None = None, transport: str = "u1", calls: int = 1,
               timeout: float = 30.0, ip: str = "127.0.0.1",
               extra: Sequence[str] = ()) -> subprocess.Popen[str]:
    """Start sipp in the background (a UAS or registrar waiting for the switch, or a UAC
    running beside others); :func:`finish_sipp` waits for it."""
    args = sipp_args(scenario, remote=remote, local_port=local_port, transport=transport,
                     calls=calls, timeout=timeout, ip=ip, extra=extra)
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=cwd)


def stop_sipp(process: subprocess.Popen[str]) -> None:
    """Kill a sipp that is still running (test teardown)."""
    if process.poll() is None:
        process.kill()
        process.wait()


def finish_sipp(process: subprocess.Popen[str], name: str, cwd: Path,
                timeout: float = 40.0) -> None:
    """Wait for a background sipp; AssertionError with its logs unless it exited 0."""
    try:
        _out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        _out, err = process.communicate()
    if process.returncode != 0:
        raise AssertionError(f"sipp {name} exited {process.returncode}: {err[-2000:]}\n"
                             f"{sipp_logs(cwd)}")


def sipp_logs(cwd: Path) -> str:
    """The tails of the error and message logs sipp wrote into ``cwd``."""
    errors = "".join(p.read_text(errors="replace")[-3000:] for p in cwd.glob("*errors.log"))
    messages = "".join(p.read_text(errors="replace")[-4000:] for p in cwd.glob("*_messages.log"))
    return f"{errors}\n{messages}"


@dataclass
class SippRun:
    returncode: int
    messages: str  # the -trace_msg log
    stdout: str

    def statuses(self) -> list[int]:
        """Status codes SIPp received, in order."""
        return [int(code) for code in re.findall(r"^SIP/2\.0 (\d{3})", self.messages, re.MULTILINE)]


def register_with_sipp(served: Served, scenario: str, workdir: Path, *, user: str = USER,
                       password: str = PASSWORD, calls: int = 1, extra: Sequence[str] = (),
                       timeout: float = 30.0, transport: str = "u1") -> SippRun:
    """Run ``tests/sipp/<scenario>`` with ``user``'s credentials for ``calls`` sequential
    calls (one at a time) against a served switch; return what happened on the wire."""
    injection = workdir / f"users-{time.monotonic_ns()}.csv"
    injection.write_text(f"SEQUENTIAL\n{user};[authentication username={user} "
                         f"password={password}]\n")
    message_file = workdir / f"messages-{time.monotonic_ns()}.log"
    result = run_sipp(scenario, cwd=workdir, remote=f"{served.host}:{served.port}",
                      local_port=free_port(), transport=transport, calls=calls,
                      timeout=timeout, timeout_error=False,
                      extra=["-inf", str(injection), "-l", "1", "-trace_msg",
                             "-message_file", str(message_file), *extra])
    messages = message_file.read_text(errors="replace") if message_file.exists() else ""
    return SippRun(result.returncode, messages, result.stdout + result.stderr)
