"""SIPp against `vosapp serve` over UDP and TCP: OPTIONS, REGISTER, garbage."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest
from basic_serve import HERE, needs_sipp, run_sipp, serve

pytestmark = [pytest.mark.sipp, needs_sipp]

#: What the switch answers a REGISTER without credentials: 405 (Allow without REGISTER) while
#: no registrar is installed (vosapp.io.runtime.DEFAULT_FEATURES); with the registrar of
#: issue #4, the SS_SIP_AUTHENTICATION_CODE challenge (default 401, docs/behaviour.md §2.1).
REGISTER_WITHOUT_REGISTRAR = 405
REGISTER_WITH_REGISTRAR = 401


def _registrar_installed() -> bool:
    from vosapp.io.runtime import DEFAULT_FEATURES, load_features

    return bool(load_features([n for n in DEFAULT_FEATURES if "registrar" in n]))


def _failure(result: subprocess.CompletedProcess[str], cwd: Path) -> str:
    errors = "".join(p.read_text() for p in cwd.glob("*_errors.log"))
    return f"sipp rc={result.returncode}\n{result.stderr[-2000:]}\n{errors[-3000:]}"


@pytest.mark.parametrize("transport", ["u1", "t1"])
def test_options_answered_200_udp_and_tcp(tmp_path: Path, transport: str) -> None:
    with serve(tmp_path) as (host, port, _):
        result = run_sipp(HERE / "options_uac.xml", host, port, transport=transport, calls=20,
                          rate=200, cwd=tmp_path)
    assert result.returncode == 0, _failure(result, tmp_path)


@pytest.mark.parametrize("transport", ["u1", "t1"])
def test_register_answer_before_registrar(tmp_path: Path, transport: str) -> None:
    expected = REGISTER_WITH_REGISTRAR if _registrar_installed() else REGISTER_WITHOUT_REGISTRAR
    scenario = tmp_path / "register.xml"
    scenario.write_text((HERE / "basic_register_uac.xml").read_text()
                        .replace("EXPECTED_STATUS", str(expected)))
    with serve(tmp_path) as (host, port, _):
        result = run_sipp(scenario, host, port, transport=transport, calls=3, cwd=tmp_path)
    assert result.returncode == 0, _failure(result, tmp_path)


def test_garbage_then_sipp_still_answered(tmp_path: Path) -> None:
    with serve(tmp_path) as (host, port, process):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for junk in (b"\xff" * 1500, b"OPTIONS\r\n\r\n", b"SIP/2.0 999\r\n", b"\r\n"):
            sock.sendto(junk, (host, port))
        sock.close()
        result = run_sipp(HERE / "options_uac.xml", host, port, calls=5, cwd=tmp_path)
        assert process.poll() is None
    assert result.returncode == 0, _failure(result, tmp_path)
    assert process.returncode == 0  # clean stop on SIGTERM
