"""The control channel: token, loopback only, clear errors; a real `vosapp serve` attached to."""

from __future__ import annotations

import asyncio
import json
import stat
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest

from vosapp.io.control import (
    CONTROL_FILE,
    ControlError,
    ControlServer,
    SwitchControl,
    read_control_file,
)
from vosapp.io.runtime import Switch
from vosapp.lab.attach import BackgroundSwitch, LabSwitch, attach
from vosapp.lab.phones import LabPhone
from vosapp.params import ParameterError

ROOT = Path(__file__).resolve().parents[2]
LAB_CONFIG = ROOT / "data" / "lab.toml"


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 60))


async def http(address: tuple[str, int], method: str, path: str, *, token: str | None = None,
               body: bytes | None = None, raw: bytes | None = None) -> tuple[int, dict[str, Any]]:
    """A minimal asyncio HTTP client (the server runs on this same loop)."""
    reader, writer = await asyncio.open_connection(*address)
    if raw is None:
        head = f"{method} {path} HTTP/1.1\r\nHost: x\r\n"
        if token is not None:
            head += f"Authorization: Bearer {token}\r\n"
        if body is not None:
            head += f"Content-Length: {len(body)}\r\nContent-Type: application/json\r\n"
        raw = head.encode() + b"\r\n" + (body or b"")
    writer.write(raw)
    await writer.drain()
    data = await reader.read()
    writer.close()
    head, _, payload = data.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    return status, json.loads(payload)


async def started(tmp_path: Path) -> tuple[Switch, ControlServer]:
    switch = Switch.from_config(LAB_CONFIG, data_dir=tmp_path / "data", port=0,
                                transports=("UDP",))
    await switch.start()
    server = await ControlServer(SwitchControl(switch)).start()
    return switch, server


def test_token_required_and_compared(tmp_path: Path) -> None:
    async def scenario() -> None:
        switch, server = await started(tmp_path)
        try:
            status, body = await http(server.address, "GET", "/v1/status")
            assert status == 401 and body["type"] == "unauthorized"
            assert "control.json" in body["error"]
            status, body = await http(server.address, "GET", "/v1/status", token="guess")
            assert (status, body["error"]) == (401, "wrong control token")
            status, body = await http(server.address, "GET", "/v1/status", token=server.token)
            assert status == 200 and body["sip_address"] == list(switch.sip_address)
        finally:
            await server.close()
            await switch.stop()

    run(scenario())


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "localhost.example"])
def test_refuses_to_bind_anything_but_loopback(host: str) -> None:
    control = object.__new__(SwitchControl)
    with pytest.raises(ControlError, match="loopback") as caught:
        ControlServer(control, host=host)
    assert caught.value.kind == "not-loopback"


def test_bad_requests_get_clear_errors(tmp_path: Path) -> None:
    async def scenario() -> None:
        switch, server = await started(tmp_path)
        token, address = server.token, server.address
        try:
            cases = [
                ("GET", "/v1/nothing", None, 404, "no such endpoint"),
                ("DELETE", "/v1/params", None, 405, "takes GET or POST"),
                ("POST", "/v1/params", b"{not json", 400, "not JSON"),
                ("POST", "/v1/params", b'{"value": 3}', 400, "lacks 'name'"),
                ("POST", "/v1/params", b'{"name": "SS_NOPE", "value": 3}', 400,
                 "not a known parameter"),
                ("POST", "/v1/params",
                 b'{"name": "SS_AUTHENTICATION_FAILED_SUSPEND", "value": 5}', 400,
                 "out of range; allowed: 60-3600 s"),
                ("GET", "/v1/trace?since=abc", None, 400, "expected an integer"),
                ("GET", "/v1/auth/events?limit=0", None, 400, "limit='0'"),
            ]
            for method, path, body, status, text in cases:
                got, answer = await http(address, method, path, token=token, body=body)
                assert got == status, (path, answer)
                assert text in answer["error"], (path, answer)
            got, answer = await http(address, "", "", raw=b"HELLO\r\n\r\n")
            assert got == 400 and "request line" in answer["error"]
            big = b"x" * (70 * 1024)
            got, answer = await http(address, "POST", "/v1/params", token=token, body=big)
            assert got == 413
            # the switch still answers after all that
            got, answer = await http(address, "GET", "/v1/params", token=token)
            assert got == 200 and answer["values"]["SS_SIP_AUTHENTICATION_RETRY"] == 6
        finally:
            await server.close()
            await switch.stop()

    run(scenario())


def test_set_param_is_validated_persisted_and_applied(tmp_path: Path) -> None:
    async def scenario() -> None:
        switch, server = await started(tmp_path)
        try:
            got, answer = await http(server.address, "POST", "/v1/params", token=server.token,
                                     body=b'{"name": "SS_REPLY_UNAUTHORIZED", "value": "Off"}')
            assert got == 200 and answer["value"] is False
            assert answer["applies_to"] == "new sessions" and answer["persisted"]
            assert switch.core.params["SS_REPLY_UNAUTHORIZED"] is False
            assert switch.store is not None
            history = switch.store.param_history("SS_REPLY_UNAUTHORIZED")
            assert [(h.old, h.new, h.by) for h in history] == [(True, False, "control")]
            got, answer = await http(server.address, "POST", "/v1/params/reset",
                                     token=server.token, body=b'{"name": null}')
            assert answer["reset"] == ["SS_REPLY_UNAUTHORIZED"]
            assert switch.core.params["SS_REPLY_UNAUTHORIZED"] is True
        finally:
            await server.close()
            await switch.stop()

    run(scenario())


def test_control_file_is_private(tmp_path: Path) -> None:
    async def scenario() -> None:
        switch, server = await started(tmp_path)
        try:
            path = server.write_file(tmp_path / "data")
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
            info = read_control_file(tmp_path / "data")
            assert (info["address"], info["port"], info["token"]) == (*server.address,
                                                                      server.token)
            server.remove_file(tmp_path / "data")
            assert not path.exists()
            with pytest.raises(ControlError, match="is `vosapp serve` running"):
                read_control_file(tmp_path / "data")
        finally:
            await server.close()
            await switch.stop()

    run(scenario())


@pytest.mark.parametrize("content", ['["address", "port", "token"]',
                                     '"address port token"', "{not json"])
def test_a_control_file_that_is_not_a_json_object_is_refused(tmp_path: Path,
                                                             content: str) -> None:
    (tmp_path / CONTROL_FILE).write_text(content)
    with pytest.raises(ControlError) as caught:
        read_control_file(tmp_path)
    assert (caught.value.status, caught.value.kind) == (400, "bad-control-file")


def test_lab_switch_in_kernel_has_the_same_surface(tmp_path: Path) -> None:
    async def scenario() -> None:
        lab = await LabSwitch.start(LAB_CONFIG, data_dir=tmp_path / "data",
                                    transports=("UDP",))
        try:
            async with LabPhone("1001", "lab-1001-secret", lab.address) as phone:
                assert (await phone.register()).status == 200  # type: ignore[union-attr]
            assert [b["aor"] for b in lab.bindings()] == ["1001"]
            assert lab.set_param("SS_SIP_AUTHENTICATION_RETRY", "3") == 3
            with pytest.raises(ParameterError, match="0-999"):
                lab.set_param("SS_SIP_AUTHENTICATION_RETRY", 1000)
            assert lab.params["SS_SIP_AUTHENTICATION_RETRY"] == 3
            assert lab.param_history()[-1]["by"] == "lab"
            methods = [r.method for r in lab.trace_records() if r.direction == "in"]
            assert methods.count("REGISTER") == 2
            async with LabPhone("1001", "wrong", lab.address) as phone:
                assert (await phone.register()).status == 401  # type: ignore[union-attr]
            assert [e["reason"] for e in lab.auth_events()] == ["wrong_password"]
            assert lab.suspended() == []
        finally:
            await lab.stop()

    run(scenario())


def test_background_serve_attach_observe_and_stop_gracefully(tmp_path: Path) -> None:
    data = tmp_path / "serve-data"
    background = BackgroundSwitch.spawn(data, LAB_CONFIG)
    try:
        remote = attach(data)
        assert remote.address == background.sip_address
        assert stat.S_IMODE((data / "control.json").stat().st_mode) == 0o600

        followed: list[Any] = []

        async def register() -> Any:
            unsubscribe = remote.trace.subscribe(followed.append)  # background poller
            async with LabPhone("1002", "lab-1002-secret", background.sip_address) as phone:
                good = await phone.register(expires=300)
            async with LabPhone("1001", "wrong", background.sip_address) as phone:
                bad = await phone.register()
            for _ in range(100):
                if sum(r.method == "REGISTER" and r.direction == "in" for r in followed) == 4:
                    break
                await asyncio.sleep(0.05)
            unsubscribe()
            return good, bad

        good, bad = run(register())
        assert sum(r.method == "REGISTER" and r.direction == "in" for r in followed) == 4
        assert (good.status, bad.status) == (200, 401)
        assert [b["aor"] for b in remote.bindings()] == ["1002"]
        reasons = [e["reason"] for e in remote.auth_events(limit=100)]
        assert "wrong_password" in reasons
        assert remote.set_param("SS_SIP_AUTHENTICATION_CODE", "407") == 407
        assert remote.params["SS_SIP_AUTHENTICATION_CODE"] == 407
        with pytest.raises(ParameterError, match="401 Unauthorized / 407"):
            remote.set_param("SS_SIP_AUTHENTICATION_CODE", 402)
        records = remote.trace_records()
        assert sum(r.method == "REGISTER" and r.direction == "in" for r in records) == 4
        assert len(remote.trace.records()) == len(records)
        newer = remote.trace_records(since=len(records))
        assert newer == []
        assert remote.registrations() == []  # lab.toml registers no gateway upstream
        run(remote.stop())
        assert background.wait(15) == 0
        assert not (data / "control.json").exists()
        assert "stopped" in background.log
    finally:
        background.terminate()


def test_no_control_option_and_sigterm_cleanup(tmp_path: Path) -> None:
    quiet = BackgroundSwitch.spawn(tmp_path / "quiet", LAB_CONFIG, extra_args=("--no-control",))
    try:
        assert not (tmp_path / "quiet" / "control.json").exists()
        with pytest.raises(ControlError, match="without --no-control"):
            attach(tmp_path / "quiet")
    finally:
        assert quiet.terminate() == 0
    loud = BackgroundSwitch.spawn(tmp_path / "loud", LAB_CONFIG)
    try:
        assert (tmp_path / "loud" / "control.json").exists()
    finally:
        assert loud.terminate() == 0  # SIGTERM is a graceful stop too
    assert not (tmp_path / "loud" / "control.json").exists()


def test_connections_from_non_loopback_peers_are_refused() -> None:
    class FakeWriter:
        def __init__(self) -> None:
            self.data = b""

        def get_extra_info(self, name: str) -> Any:
            return ("192.0.2.7", 40000) if name == "peername" else None

        def write(self, data: bytes) -> None:
            self.data += data

        async def drain(self) -> None:
            pass

        def close(self) -> None:
            pass

        async def wait_closed(self) -> None:
            pass

    async def scenario() -> bytes:
        server = ControlServer(object.__new__(SwitchControl), token="t")
        reader = asyncio.StreamReader()
        reader.feed_data(b"GET /v1/status HTTP/1.1\r\nAuthorization: Bearer t\r\n\r\n")
        reader.feed_eof()
        writer = FakeWriter()
        await server._client(reader, writer)  # type: ignore[arg-type]
        return writer.data

    reply = run(scenario())
    assert reply.startswith(b"HTTP/1.1 403") and b"only loopback clients" in reply
