"""SIPp against `vosapp serve` over UDP and TCP: OPTIONS, REGISTER, garbage."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support import SCENARIOS, Served, needs_sipp, run_sipp, serve, sipp_logs
from tests.support.fixtures import SippRunner

pytestmark = [pytest.mark.sipp, needs_sipp]

#: What the switch answers a REGISTER without credentials: 405 (Allow without REGISTER) while
#: no registrar is installed (vosapp.switch.app.FEATURES); with the registrar of
#: issue #4, the SS_SIP_AUTHENTICATION_CODE challenge (default 401, SPEC §2.1).
REGISTER_WITHOUT_REGISTRAR = 405
REGISTER_WITH_REGISTRAR = 401


def _registrar_installed() -> bool:
    from vosapp.switch.app import FEATURES

    return "registrar" in FEATURES


def _failure(result: subprocess.CompletedProcess[str], cwd: Path) -> str:
    return f"sipp rc={result.returncode}\n{result.stderr[-2000:]}\n{sipp_logs(cwd)}"


@pytest.mark.parametrize("transport", ["u1", "t1"])
def test_options_answered_200_udp_and_tcp(tmp_path: Path, transport: str,
                                         served_switch: Callable[..., Served],
                                         sipp: SippRunner) -> None:
    switch = served_switch(data_dir=tmp_path, udp_only=False)
    result = sipp.run("options_uac.xml", remote=f"{switch.host}:{switch.port}",
                      transport=transport, calls=20, rate=200)
    assert result.returncode == 0, _failure(result, tmp_path)


@pytest.mark.parametrize("transport", ["u1", "t1"])
def test_register_answer_before_registrar(tmp_path: Path, transport: str,
                                          served_switch: Callable[..., Served],
                                          sipp: SippRunner) -> None:
    expected = REGISTER_WITH_REGISTRAR if _registrar_installed() else REGISTER_WITHOUT_REGISTRAR
    scenario = tmp_path / "register.xml"
    scenario.write_text((SCENARIOS / "basic_register_uac.xml").read_text()
                        .replace("EXPECTED_STATUS", str(expected)))
    switch = served_switch(data_dir=tmp_path, udp_only=False)
    result = sipp.run(scenario, remote=f"{switch.host}:{switch.port}", transport=transport,
                      calls=3, rate=100)
    assert result.returncode == 0, _failure(result, tmp_path)


def test_garbage_then_sipp_still_answered(tmp_path: Path) -> None:
    with serve(data_dir=tmp_path, udp_only=False) as switch:
        process = switch.process
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for junk in (b"\xff" * 1500, b"OPTIONS\r\n\r\n", b"SIP/2.0 999\r\n", b"\r\n"):
            sock.sendto(junk, (switch.host, switch.port))
        sock.close()
        result = run_sipp("options_uac.xml", remote=f"{switch.host}:{switch.port}", calls=5,
                          rate=100, cwd=tmp_path)
        assert process.poll() is None
    assert result.returncode == 0, _failure(result, tmp_path)
    assert process.returncode == 0  # clean stop on SIGTERM
