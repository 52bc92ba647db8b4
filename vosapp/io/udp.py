"""asyncio UDP transport for the switch core (RFC 3261 §18 over datagrams)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vosapp.switch.core import SwitchCore

log = logging.getLogger(__name__)

Address = tuple[str, int]
#: Largest UDP payload over IPv4; anything larger cannot arrive anyway.
MAX_DATAGRAM = 65_507


class UdpTransport(asyncio.DatagramProtocol):
    """One bound UDP socket feeding :meth:`SwitchCore.receive`."""

    def __init__(self, core: SwitchCore, max_message_size: int = MAX_DATAGRAM) -> None:
        self.core = core
        self.max_message_size = max_message_size
        self.transport: asyncio.DatagramTransport | None = None
        self.local: Address = ("", 0)
        #: The runtime's receive-delay probe: its datagrams go to ``on_probe``, not the core.
        self.probe_source: Address | None = None
        self.on_probe: Callable[[bytes], None] | None = None

    @classmethod
    async def bind(cls, core: SwitchCore, host: str, port: int,
                   max_message_size: int = MAX_DATAGRAM) -> UdpTransport:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_datagram_endpoint(
            lambda: cls(core, max_message_size), local_addr=(host, port))
        return protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sockname = transport.get_extra_info("sockname")
        self.local = (sockname[0], sockname[1])

    def datagram_received(self, data: bytes, addr: tuple) -> None:  # type: ignore[override]
        source = (addr[0], addr[1])
        if source == self.probe_source and self.on_probe is not None:
            self.on_probe(data)
            return
        if len(data) > self.max_message_size:
            self.core.trace.event(f"UDP datagram of {len(data)} bytes over the "
                                  f"{self.max_message_size}-byte limit dropped",
                                  src=source, transport="UDP")
            return
        self.core.receive(data, source, "UDP", self.local)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable etc. arrive here on some platforms; never fatal.
        log.debug("UDP error: %s", exc)

    def send(self, data: bytes, destination: Address) -> None:
        if self.transport is None or self.transport.is_closing():
            raise OSError("UDP transport is closed")
        self.transport.sendto(data, destination)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
