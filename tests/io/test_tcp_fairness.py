"""Issue 12 item 2: one source cannot take every TCP slot (loopback, small test caps).

A per-source connection cap, a deadline for a complete message (the first one on an accepted
connection, and any partial one: slowloris), and when every slot is taken a new source still
gets one: the least recently active connection of the source holding the most is closed.
"""

from __future__ import annotations

import asyncio
from typing import Any

from vosapp.io.runtime import Switch
from vosapp.sip import Response, parse


def options(call_id: str) -> bytes:
    return (f"OPTIONS sip:127.0.0.1 SIP/2.0\r\n"
            f"Via: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bK{call_id}\r\n"
            "Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=p\r\nTo: <sip:127.0.0.1>\r\n"
            f"Call-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").encode()


Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def connect(address: tuple[str, int], source: str = "127.0.0.1") -> Stream:
    return await asyncio.open_connection(*address, local_addr=(source, 0))


async def ask(stream: Stream, call_id: str) -> int:
    reader, writer = stream
    writer.write(options(call_id))
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    response = parse(head)
    assert isinstance(response, Response)
    return response.status


async def closed_by_server(stream: Stream, within: float = 10.0) -> bool:
    try:
        return await asyncio.wait_for(stream[0].read(), within) == b""
    except ConnectionError:
        return True
    except TimeoutError:
        return False


def run(scenario, **options: Any) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        async with Switch(host="127.0.0.1", port=0, transports=("TCP",), features=[],
                          persist_trace=False, **options) as switch:
            streams: list[Stream] = []
            try:
                await scenario(switch, streams)
            finally:
                for _, writer in streams:
                    writer.close()

    asyncio.run(asyncio.wait_for(main(), 90))


def test_one_source_gets_at_most_its_per_source_cap() -> None:
    async def scenario(switch: Switch, streams: list[Stream]) -> None:
        for _ in range(5):
            streams.append(await connect(switch.sip_address))
        assert [await closed_by_server(s, 5.0) for s in streams[3:]] == [True, True]
        for i, stream in enumerate(streams[:3]):
            assert await ask(stream, f"kept{i}") == 200
        other = await connect(switch.sip_address, "127.0.0.2")
        streams.append(other)
        assert await ask(other, "other") == 200

    run(scenario, tcp_max_per_source=3)


def test_silent_and_dripping_connections_are_closed_after_the_message_deadline() -> None:
    async def scenario(switch: Switch, streams: list[Stream]) -> None:
        silent = await connect(switch.sip_address)
        dripping = await connect(switch.sip_address)
        talking = await connect(switch.sip_address)
        streams.extend([silent, dripping, talking])
        assert await ask(talking, "t1") == 200
        message = options("drip")
        for i in range(40):  # a byte every 0.25 s: 10 s, far past the 2 s deadline
            if dripping[1].is_closing() or dripping[0].at_eof():
                break
            dripping[1].write(message[i:i + 1])
            await asyncio.sleep(0.25)
        assert await closed_by_server(dripping)
        assert await closed_by_server(silent)
        # A connection whose messages were complete is only subject to the idle timeout.
        assert await ask(talking, "t2") == 200

    run(scenario, tcp_message_timeout=2.0)


def test_a_new_source_gets_a_slot_when_one_source_holds_them_all() -> None:
    async def scenario(switch: Switch, streams: list[Stream]) -> None:
        for _ in range(4):
            streams.append(await connect(switch.sip_address))
        assert await ask(streams[0], "busy") == 200  # the most recently active of the four
        newcomer = await connect(switch.sip_address, "127.0.0.2")
        streams.append(newcomer)
        assert await ask(newcomer, "new") == 200
        # one of 127.0.0.1's idle ones made room, not the one that just talked
        assert await closed_by_server(streams[1], 5.0)
        assert await ask(streams[0], "still") == 200
        # 127.0.0.1 still holds the most: its next connection is refused, nothing evicted
        extra = await connect(switch.sip_address)
        streams.append(extra)
        assert await closed_by_server(extra, 5.0)
        assert await ask(newcomer, "new2") == 200

    run(scenario, max_tcp_connections=4, tcp_max_per_source=4)
