"""The control channel serves at most ``max_connections`` connections at a time (loopback)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from vosapp.io.control import MAX_CONNECTIONS, ControlServer, SwitchControl
from vosapp.io.runtime import Switch

ROOT = Path(__file__).resolve().parents[2]


async def request(address: tuple[str, int], token: str) -> tuple[int, dict[str, Any], bytes]:
    reader, writer = await asyncio.open_connection(*address)
    writer.write(f"GET /v1/status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
                 "\r\n".encode())
    await writer.drain()
    data = await reader.read()
    writer.close()
    head, _, payload = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(payload), head


async def until(predicate, limit: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    for _ in range(int(limit / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


def test_extra_connections_get_503_and_are_closed(tmp_path: Path) -> None:
    async def scenario() -> None:
        switch = Switch.from_config(ROOT / "data" / "lab.toml", data_dir=tmp_path / "data",
                                    port=0, transports=("UDP",))
        await switch.start()
        server = await ControlServer(SwitchControl(switch), max_connections=2).start()
        idle = []
        try:
            for _ in range(2):  # two clients that connect and say nothing (yet)
                idle.append(await asyncio.open_connection(*server.address))
            await until(lambda: server.active == 2)
            status, body, head = await request(server.address, server.token)
            assert status == 503 and body["type"] == "busy" and "at most 2" in body["error"]
            assert b"Retry-After: 1" in head and server.refused == 1
            _, writer = idle.pop()
            writer.close()
            await until(lambda: server.active == 1)
            status, body, _ = await request(server.address, server.token)
            assert status == 200 and body["sip_address"] == list(switch.sip_address)
            await until(lambda: server.active == 1)  # the served one is released
        finally:
            for _, writer in idle:
                writer.close()
            await server.close()
            await switch.stop()

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_default_cap_and_validation() -> None:
    assert MAX_CONNECTIONS == 32
    with pytest.raises(ValueError, match="at least 1"):
        ControlServer(object.__new__(SwitchControl), max_connections=0)
