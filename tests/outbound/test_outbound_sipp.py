"""Loopback: `vosapp serve` registers with SIPp playing the carrier's registrar (SPEC §3).

SIPp starts first on an ephemeral UDP port with a scenario from tests/sipp/outbound_*.xml; a
temporary config makes a routing gateway register to it; `vosapp serve` runs as a subprocess.
The scenarios check the digest answers themselves (<verifyauth>), so "sipp exited 0" means the
carrier saw exactly the expected, correctly authenticated REGISTERs.
"""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support import (
    SCENARIOS,
    free_port,
    needs_sipp,
    run_vosapp,
    serve,
    sipp_logs,
    start_sipp,
    write_config,
)
from tests.support.sipp import stop_sipp

pytestmark = [pytest.mark.sipp, needs_sipp]

USER, PASSWORD = "gw-user", "s3cret-pass"  # as in the scenarios' <verifyauth>


def outbound_config(directory: Path, carrier_port: int, send_unregister: bool,
                    transport: str = "udp") -> Path:
    return write_config(
        directory, {"SS_SIP_USER_AGENT_SEND_UNREGISTER": "On" if send_unregister else "Off"},
        {}, name="outbound.toml", extra=f"""
[[routing_gateway]]
name = "sipp-carrier"
address = "127.0.0.1:{carrier_port}"
transport = "{transport}"
[routing_gateway.register]
sip_proxy = "127.0.0.1:{carrier_port}"
auth_user = "{USER}"
password = "{PASSWORD}"
host_name = "127.0.0.1"
""")


@contextmanager
def sipp_registrar(scenario: Path, port: int, cwd: Path,
                   transport: str = "udp") -> Iterator[subprocess.Popen[str]]:
    """SIPp as the carrier's registrar on ``port``; killed on exit if still running."""
    process = start_sipp(scenario, cwd=cwd, local_port=port, timeout=40, extra=["-trace_msg"],
                         transport="u1" if transport == "udp" else "t1")
    try:
        yield process
    finally:
        stop_sipp(process)


def wait_for_state(data_dir: Path, wanted: str, timeout: float = 20.0) -> None:
    """Poll the status row the switch writes on every change (read-only SQLite)."""
    deadline = time.monotonic() + timeout
    state = None
    while time.monotonic() < deadline:
        try:
            with sqlite3.connect(f"file:{data_dir / 'vosapp.sqlite'}?mode=ro", uri=True) as db:
                row = db.execute("SELECT state FROM outbound_status").fetchone()
            state = row[0] if row else None
        except sqlite3.Error:
            state = None
        if state == wanted:
            return
        time.sleep(0.05)
    raise AssertionError(f"registration state {state!r}, expected {wanted!r}")


def vosapp_status(config: Path, cwd: Path) -> list[dict[str, object]]:
    result = run_vosapp("status", "--json", "--config", str(config), cwd=cwd, check=True)
    return json.loads(result.stdout)


def sipp_failure(process: subprocess.Popen[str], cwd: Path) -> str:
    return f"sipp rc={process.returncode}\n{sipp_logs(cwd)}"


def sent_registers(cwd: Path) -> list[str]:
    """The REGISTERs sipp received, from its -trace_msg log."""
    [log] = cwd.glob("*_messages.log")
    text = log.read_text(errors="replace")
    return [block for block in re.split(r"-{10,}", text) if "REGISTER sip:" in block
            and "received" in block]


def proxy_auth_scenario(directory: Path) -> Path:
    """The registrar scenario challenging with 407 / Proxy-Authenticate instead of 401.

    SIPp's <verifyauth> only reads Authorization, so here the scenario checks that
    Proxy-Authorization carries the user and the fresh nonce; the digest arithmetic for 407 is
    verified in tests/switch/test_outbound_virtual.py.
    """
    text = (SCENARIOS / "outbound_registrar.xml").read_text()
    text = (text.replace("SIP/2.0 401 Unauthorized", "SIP/2.0 407 Proxy Authentication Required")
            .replace("WWW-Authenticate:", "Proxy-Authenticate:")
            .replace('regexp="Authorization: Digest', 'regexp="Proxy-Authorization: Digest'))
    text = re.sub(r'<verifyauth assign_to="(auth\d)"[^>]*/>',
                  r'<ereg regexp="Proxy-Authorization: Digest username=.gw-user." '
                  r'search_in="msg" check_it="true" assign_to="\1"/>', text)
    text = re.sub(r'<nop test="auth\d" next="(\w+)"/>', r'<nop next="\1"/>', text)
    text = text.replace('<Reference variables="', '<Reference variables="auth1,auth2,')
    path = directory / "outbound_registrar_407.xml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("transport, code", [("udp", 401), ("tcp", 401), ("udp", 407)])
def test_unregister_on_sigterm_is_authenticated(tmp_path: Path, transport: str,
                                                code: int) -> None:
    port = free_port(transport)
    config = outbound_config(tmp_path, port, send_unregister=True, transport=transport)
    data_dir = tmp_path / "data"
    scenario = (SCENARIOS / "outbound_registrar.xml" if code == 401
                else proxy_auth_scenario(tmp_path))
    with sipp_registrar(scenario, port, tmp_path, transport) as sipp, \
            serve(config, udp_only=transport == "udp") as served:
        switch = served.process
        wait_for_state(data_dir, "registered")
        [row] = vosapp_status(config, tmp_path)
        assert row["state"] == "registered" and row["granted_expires"] == 3600
        assert row["last_response"] == "200 OK" and row["proxy"] == f"127.0.0.1:{port}"
        switch.send_signal(signal.SIGTERM)
        assert switch.wait(timeout=20) == 0
        stderr = switch.stderr.read()  # type: ignore[union-attr]
        sipp.wait(timeout=20)
        assert sipp.returncode == 0, sipp_failure(sipp, tmp_path) + stderr
    assert "outbound sipp-carrier: unregistered (200 OK)" in stderr
    registers = sent_registers(tmp_path)
    assert len(registers) == 4
    final = registers[-1]
    assert re.search(r"^Expires: 0\s*$", final, re.MULTILINE)
    header = "Authorization" if code == 401 else "Proxy-Authorization"
    assert f"\n{header}: Digest" in final
    assert f'username="{USER}"' in final
    call_ids = {re.findall(r"^Call-ID: (\S+)", r, re.MULTILINE)[0] for r in registers}
    assert len(call_ids) == 1
    [row] = vosapp_status(config, tmp_path)  # what the stopped switch left in the store
    assert row["state"] == "unregistered" and row["cseq"] == 4
    if transport == "tcp":
        assert "SIP/2.0/TCP" in final and ";transport=tcp" in final
    human = run_vosapp("status", "--config", str(config), cwd=tmp_path, check=True).stdout
    assert "sipp-carrier: unregistered" in human and f"127.0.0.1:{port}" in human


def run_off_scenario(tmp_path: Path, *, send_unregister: bool) -> tuple[int, str, str]:
    """The "no unregister may arrive" registrar against a switch; (sipp rc, why, stderr)."""
    port = free_port()
    config = outbound_config(tmp_path, port, send_unregister=send_unregister)
    scenario = tmp_path / "outbound_registrar_off.xml"
    scenario.write_text((SCENARIOS / "outbound_registrar_off.xml").read_text()
                        .replace("WAIT_MS", "3000"))
    with sipp_registrar(scenario, port, tmp_path) as sipp, serve(config) as served:
        switch = served.process
        wait_for_state(tmp_path / "data", "registered")
        switch.send_signal(signal.SIGTERM)
        assert switch.wait(timeout=20) == 0
        stderr = switch.stderr.read()  # type: ignore[union-attr]
        sipp.wait(timeout=20)
    return sipp.returncode, sipp_failure(sipp, tmp_path), stderr


def test_no_unregister_when_off(tmp_path: Path) -> None:
    returncode, why, stderr = run_off_scenario(tmp_path, send_unregister=False)
    assert returncode == 0, why + stderr
    assert len(sent_registers(tmp_path)) == 2
    assert "unregister not sent (SS_SIP_USER_AGENT_SEND_UNREGISTER=Off)" in stderr
    [row] = vosapp_status(tmp_path / "outbound.toml", tmp_path)
    assert row["state"] == "stopped"


def test_off_scenario_notices_an_unregister(tmp_path: Path) -> None:
    """Control: the scenario of the Off test does fail when an unregister arrives."""
    returncode, _why, stderr = run_off_scenario(tmp_path, send_unregister=True)
    assert returncode == 1
    unregisters = [r for r in sent_registers(tmp_path)[2:]
                   if re.search(r"^Expires: 0\s*$", r, re.MULTILINE)]
    assert unregisters  # it arrived (and was retransmitted: sipp aborted, did not answer)
    assert "unregistering from" in stderr
