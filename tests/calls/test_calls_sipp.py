"""Loopback calls (SPEC §4): SIPp uac (digest for account 1001) → `vosapp serve` → SIPp uas.

Each SIPp exits 0 only when its scenario ran exactly (tests/sipp/call_*.xml), so "both exited
0" means the switch relayed every message the scenario expects. The CDR is read back with
`vosapp cdr list --json`.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

pytestmark = [pytest.mark.sipp,
              pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp not installed")]

SCENARIOS = Path(__file__).resolve().parents[1] / "sipp"
READY = re.compile(r"vosapp listening on (\S+):(\d+)")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(directory: Path, vendor_ports: list[int]) -> Path:
    routing = "".join(f"""
[[routing_gateway]]
name = "vendor-{i + 1}"
address = "127.0.0.1:{port}"
prefixes = ["00"]
priority = {i + 1}
""" for i, port in enumerate(vendor_ports))
    path = directory / "calls.toml"
    path.write_text(f"""
[switch]
sip_listen = "127.0.0.1:5060"  # overridden by --listen 127.0.0.1:0
data_dir = "data"

[parameters]
SS_SIP_TIMEOUT_INVITE = 5

[[account]]
user = "1001"
password = "secret-1001"

[[mapping_gateway]]
name = "customer"
accounts = ["1001"]
{routing}
""")
    return path


@contextmanager
def serve(config: Path, cwd: Path) -> Iterator[tuple[subprocess.Popen[str], int]]:
    args = [sys.executable, "-m", "vosapp.cli", "serve", "--config", str(config),
            "--listen", "127.0.0.1:0", "--udp-only"]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               cwd=cwd, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        deadline = time.monotonic() + 30
        port = None
        while time.monotonic() < deadline:
            ready, _, _ = select.select([process.stdout], [], [], 0.2)
            if ready:
                match = READY.search(process.stdout.readline())  # type: ignore[union-attr]
                if match:
                    port = int(match.group(2))
                    break
            if process.poll() is not None:
                raise RuntimeError(f"vosapp serve exited: {process.stderr.read()}")  # type: ignore[union-attr]
        if port is None:
            raise RuntimeError("vosapp serve did not start in time")
        yield process, port
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def sipp(scenario: str, cwd: Path, port: int, *extra: str) -> subprocess.Popen[str]:
    args = ["sipp", *extra, "-sf", str(SCENARIOS / scenario), "-i", "127.0.0.1",
            "-p", str(port), "-mp", str(free_port()), "-m", "1", "-nostdin", "-timeout", "30",
            "-timeout_error", "-trace_err"]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=cwd)


def finish(process: subprocess.Popen[str], name: str, cwd: Path) -> None:
    try:
        _out, err = process.communicate(timeout=40)
    except subprocess.TimeoutExpired:
        process.kill()
        _out, err = process.communicate()
    if process.returncode != 0:
        errors = "".join(p.read_text(errors="replace")[-3000:] for p in cwd.glob("*errors.log"))
        raise AssertionError(f"sipp {name} exited {process.returncode}: {err[-2000:]}\n"
                             f"{errors}")


def cdrs(config: Path, cwd: Path) -> list[dict]:
    result = subprocess.run([sys.executable, "-m", "vosapp.cli", "cdr", "list", "--json",
                             "--config", str(config)], capture_output=True, text=True,
                            cwd=cwd, check=True)
    return json.loads(result.stdout)


def run_call(tmp_path: Path, uac: str, uas: list[str], spare: list[int] = (),
             uac_args: Sequence[str] = ()) -> list[dict]:
    ports = [free_port() for _ in uas]
    config = write_config(tmp_path, [*ports, *spare])
    vendors = [sipp(scenario, tmp_path, port) for scenario, port in zip(uas, ports,
                                                                         strict=True)]
    try:
        with serve(config, tmp_path) as (_process, switch_port):
            caller = sipp(uac, tmp_path, free_port(), f"127.0.0.1:{switch_port}",
                          "-s", "0044123", "-au", "1001", "-ap", "secret-1001", *uac_args)
            finish(caller, uac, tmp_path)
            for process, name in zip(vendors, uas, strict=True):
                finish(process, name, tmp_path)
            time.sleep(0.3)
    finally:
        for process in vendors:
            if process.poll() is None:
                process.kill()
                process.wait()
    return cdrs(config, tmp_path)


def test_basic_call_with_bye(tmp_path: Path) -> None:
    [row] = run_call(tmp_path, "call_uac.xml", ["call_uas.xml"])
    assert row["status"] == 200 and row["end_reason"] == "caller hung up"
    assert row["account"] == "1001" and row["mapping_gateway"] == "customer"
    assert row["gateways_tried"] == ["vendor-1:200"]
    assert row["caller_codec"] == "PCMA" and row["media_mode"] == "direct"
    assert row["answer_time"] >= row["setup_time"]


def test_busy_does_not_fail_over(tmp_path: Path) -> None:
    # a second vendor is configured; 486 is final for routing, so it must receive nothing
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as second:
        second.bind(("127.0.0.1", 0))
        second.setblocking(False)
        [row] = run_call(tmp_path, "call_uac_busy.xml", ["call_uas_busy.xml"],
                         spare=[second.getsockname()[1]])
        with pytest.raises(BlockingIOError):
            second.recv(65535)
    assert row["status"] == 486 and row["gateways_tried"] == ["vendor-1:486"]


def test_503_fails_over_to_the_second_vendor(tmp_path: Path) -> None:
    [row] = run_call(tmp_path, "call_uac.xml", ["call_uas_503.xml", "call_uas.xml"])
    assert row["status"] == 200
    assert row["gateways_tried"] == ["vendor-1:503", "vendor-2:200"]


def test_cancel(tmp_path: Path) -> None:
    [row] = run_call(tmp_path, "call_uac_cancel.xml", ["call_uas_cancel.xml"])
    assert row["status"] == 487 and row["end_reason"] == "cancelled by caller"
