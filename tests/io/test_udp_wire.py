"""The SIP UDP socket's per-datagram path (vosapp.io.udp_wire): asyncio's callback and the
switch core's sender reach the compiled wire directly, and the wire sends what it can and
hands the rest to the runtime, over real loopback sockets."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import types
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.io.test_runtime_loopback import options
from vosapp import compiled
from vosapp.clock import ManualClock
from vosapp.io import udp_wire
from vosapp.io.runtime import Switch
from vosapp.io.udp_wire import UdpWire
from vosapp.switch.core import SwitchCore


@contextlib.asynccontextmanager
async def udp_switch_and_peer(tmp_path: Path) -> AsyncIterator[tuple[Switch, socket.socket]]:
    """A switch on UDP only, and a peer's socket on loopback (reads time out after 5 s)."""
    switch = Switch(host="127.0.0.1", port=0, data_dir=tmp_path, features=[],
                    transports=("UDP",))
    await switch.start()
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    peer.settimeout(5)
    try:
        assert switch.udp is not None
        yield switch, peer
    finally:
        peer.close()
        await switch.stop()


def test_the_datagram_path_is_compiled_code_when_built(tmp_path: Path) -> None:
    """Compiled, the protocol's ``datagram_received`` and the core's sender are the wire's
    compiled methods: no Python frame between asyncio, the socket and the compiled core."""
    if compiled.why_sources() is not None:
        pytest.skip(f"running from the sources: {compiled.why_sources()}")

    async def scenario() -> None:
        async with udp_switch_and_peer(tmp_path) as (switch, _):
            assert switch.udp is not None
            assert type(switch.udp.datagram_received) is types.BuiltinMethodType
            assert type(switch.udp.wire.send) is types.BuiltinMethodType
            assert switch.core._sender == switch.udp.wire.send

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_answers_go_out_through_the_wire_and_the_rest_through_the_runtime(
        tmp_path: Path) -> None:
    """A UDP answer to an address is sent by the wire itself; a TCP message goes to the
    runtime's sender (here with no TCP transport: its error); once the socket is closed, a
    UDP send fails with the runtime's error too."""

    async def scenario() -> None:
        async with udp_switch_and_peer(tmp_path) as (switch, client):
            assert switch.udp is not None
            wire = switch.udp.wire
            handed_on: list[tuple[str, str]] = []
            runtime_send = wire.other
            assert runtime_send is not None

            def other(data: bytes, destination: tuple[str, int], transport: str) -> None:
                handed_on.append((destination[0], transport))
                runtime_send(data, destination, transport)

            wire.other = other
            port = client.getsockname()[1]
            client.sendto(options(port, branch="z9hG4bKwire1",
                                  call_id="wire-1@test"), switch.sip_address)
            answer = await asyncio.get_running_loop().run_in_executor(
                None, client.recv, 65_536)
            assert answer.startswith(b"SIP/2.0 200")
            assert handed_on == []  # the wire sent it
            with pytest.raises(OSError, match="no TCP transport is open"):
                switch.core.send_raw(b"x", ("127.0.0.1", port), "TCP")
            assert handed_on == [("127.0.0.1", "TCP")]
            switch.udp.close()
            with pytest.raises(OSError, match="UDP transport is closed"):
                switch.core.send_raw(b"x", ("127.0.0.1", port), "UDP")
            assert handed_on[-1] == ("127.0.0.1", "UDP")

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_the_address_memo_answers_as_the_check_and_stays_bounded() -> None:
    wire = UdpWire(SwitchCore(clock=ManualClock()))
    assert wire.is_address("127.0.0.1")
    assert wire.is_address("[2001:db8::1]")
    assert wire.is_address("2001:db8::1")
    assert not wire.is_address("gateway.vosapp.test")
    assert not wire.is_address("gateway.vosapp.test")  # remembered, same answer
    assert not wire.is_address("")
    for n in range(udp_wire.ADDRESS_MEMO_SIZE + 10):
        assert wire.is_address(f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}")
    # emptied when full: never more than its size, whatever the number of peers
    assert len(wire._addresses) <= udp_wire.ADDRESS_MEMO_SIZE


class RefusingSocket:
    """The SIP socket as the wire sees it, refusing the sends numbered in ``refuse`` as a
    full send buffer does (EAGAIN): Linux's loopback never refuses a UDP datagram, so the
    refusal is played here, and everything else goes to the real socket."""

    def __init__(self, sock: socket.socket, refuse: set[int]) -> None:
        self.sock = sock
        self.refuse = refuse
        self.sends = 0

    def recvfrom(self, size: int) -> tuple[bytes, tuple[str, int]]:
        return self.sock.recvfrom(size)  # type: ignore[no-any-return]

    def sendto(self, data: bytes, destination: tuple[str, int]) -> int:
        self.sends += 1
        if self.sends in self.refuse:
            raise BlockingIOError(11, "Resource temporarily unavailable")
        return self.sock.sendto(data, destination)


def test_a_datagram_the_socket_refuses_goes_through_asyncio_in_order(tmp_path: Path) -> None:
    """The wire sends on the socket itself; a datagram the socket refuses goes to asyncio's
    transport (which sends it when the socket takes it), and none overtakes another."""

    async def scenario() -> list[bytes]:
        async with udp_switch_and_peer(tmp_path) as (switch, receiver):
            assert switch.udp is not None
            wire = switch.udp.wire
            refusing = RefusingSocket(wire.sock, refuse={2, 3, 5})
            wire.sock = refusing
            destination = receiver.getsockname()
            for n in range(1, 9):
                switch.core.send_raw(b"datagram %d" % n, destination, "UDP")
            switch.core.send_raw(b"", destination, "UDP")  # as asyncio: an empty one is not sent
            loop = asyncio.get_running_loop()
            return [await loop.run_in_executor(None, receiver.recv, 100) for _ in range(8)]

    got = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert got == [b"datagram %d" % n for n in range(1, 9)]


def test_a_socket_error_on_send_is_reported_not_raised(tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    """As asyncio's transport does: an error the socket gives for one datagram (here EINVAL,
    port 0) goes to the protocol's ``error_received`` and the switch goes on."""

    async def scenario() -> bytes:
        async with udp_switch_and_peer(tmp_path) as (switch, client):
            with caplog.at_level(logging.DEBUG, logger="vosapp.io.udp"):
                switch.core.send_raw(b"nowhere", ("127.0.0.1", 0), "UDP")
            port = client.getsockname()[1]
            client.sendto(options(port, branch="z9hG4bKwire2", call_id="wire-2@test"),
                          switch.sip_address)
            return await asyncio.get_running_loop().run_in_executor(None, client.recv, 65_536)

    answer = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert "UDP error" in caplog.text and "Invalid argument" in caplog.text
    assert answer.startswith(b"SIP/2.0 200")
