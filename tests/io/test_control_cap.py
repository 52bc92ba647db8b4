"""The control channel's connection caps (issue 12 item 5): other local users cannot lock notebooks out of the control channel.

Only a connection that presented the token counts against ``max_connections``; one that has
not sent a complete, authenticated request head within ``auth_timeout`` is closed, and when
``max_unauthenticated`` are waiting the oldest is dropped for the newcomer. A body nested
too deeply for the JSON parser is a 400, not a 500 with a traceback.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from vosapp.io.control import MAX_CONNECTIONS, MAX_UNAUTHENTICATED, ControlServer, SwitchControl
from vosapp.io.runtime import Switch


async def request(address: tuple[str, int], token: str, method: str = "GET",
                  path: str = "/v1/status", body: bytes = b"") -> tuple[int, dict[str, Any]]:
    reader, writer = await asyncio.open_connection(*address)
    writer.write(f"{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
                 f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 20)
    writer.close()
    head, _, payload = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(payload)


async def closed_by_server(reader: asyncio.StreamReader) -> bool:
    try:
        await asyncio.wait_for(reader.read(), 20)
    except ConnectionError:
        pass
    return True


def run(scenario, tmp_path: Path, **options: Any) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        switch = Switch(host="127.0.0.1", port=0, transports=("UDP",), features=[],
                        data_dir=tmp_path)
        await switch.start()
        server = await ControlServer(SwitchControl(switch), **options).start()
        try:
            await scenario(server)
        finally:
            await server.close()
            await switch.stop()

    asyncio.run(asyncio.wait_for(main(), 90))


def test_idle_connections_without_a_token_do_not_take_the_slots(tmp_path: Path) -> None:
    async def scenario(server: ControlServer) -> None:
        idle = [await asyncio.open_connection(*server.address) for _ in range(40)]
        try:
            await asyncio.sleep(0.1)
            answers = [await request(server.address, server.token) for _ in range(12)]
            assert [status for status, _ in answers] == [200] * 12
            # and the idle ones are closed by the server (408 or a bare close), not kept
            for reader, _ in idle:
                assert await closed_by_server(reader)
            assert server.unauthenticated == 0
        finally:
            for _, writer in idle:
                writer.close()

    run(scenario, tmp_path, auth_timeout=1.0)


def test_a_flood_of_unauthenticated_connections_evicts_the_oldest(tmp_path: Path) -> None:
    async def scenario(server: ControlServer) -> None:
        # A long auth_timeout: only eviction can make room here.
        idle = [await asyncio.open_connection(*server.address) for _ in range(10)]
        try:
            status, _ = await request(server.address, server.token)
            assert status == 200
            assert server.unauthenticated <= 4 and server.evicted >= 6
        finally:
            for _, writer in idle:
                writer.close()

    run(scenario, tmp_path, auth_timeout=60.0, max_unauthenticated=4)


def test_authenticated_requests_beyond_the_cap_get_503(tmp_path: Path) -> None:
    async def scenario(server: ControlServer) -> None:
        held = []
        try:
            for _ in range(2):  # authenticated, body announced but not sent yet
                reader, writer = await asyncio.open_connection(*server.address)
                writer.write(f"POST /v1/params HTTP/1.1\r\nAuthorization: Bearer {server.token}"
                             "\r\nContent-Length: 9\r\n\r\n".encode())
                await writer.drain()
                held.append((reader, writer))
            for _ in range(1000):
                if server.active == 2:
                    break
                await asyncio.sleep(0.01)
            assert server.active == 2
            status, body = await request(server.address, server.token)
            assert status == 503 and body["type"] == "busy" and "at most 2" in body["error"]
            held.pop()[1].close()
            for _ in range(1000):
                if server.active == 1:
                    break
                await asyncio.sleep(0.01)
            status, _ = await request(server.address, server.token)
            assert status == 200
        finally:
            for _, writer in held:
                writer.close()

    run(scenario, tmp_path, max_connections=2)


def test_deeply_nested_json_body_is_400_without_traceback(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def scenario(server: ControlServer) -> None:
        body = b"[" * 30_000 + b"]" * 30_000
        status, answer = await request(server.address, server.token, "POST", "/v1/params",
                                       body)
        assert status == 400 and answer["type"] == "bad-request"
        assert "nested" in answer["error"] and "Traceback" not in answer["error"]
        status, _ = await request(server.address, server.token)
        assert status == 200

    with caplog.at_level(logging.ERROR, logger="vosapp.io.control"):
        run(scenario, tmp_path)
    assert not [r for r in caplog.records if r.exc_info]


def test_default_caps_and_validation() -> None:
    assert (MAX_CONNECTIONS, MAX_UNAUTHENTICATED) == (32, 128)
    with pytest.raises(ValueError, match="at least 1"):
        ControlServer(object.__new__(SwitchControl), max_connections=0)
    with pytest.raises(ValueError, match="at least 1"):
        ControlServer(object.__new__(SwitchControl), max_unauthenticated=0)
