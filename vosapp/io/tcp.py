"""asyncio TCP transport: Content-Length framing (RFC 3261 §18.3), bounded connections.

Each connection is framed here (header block up to CRLFCRLF, then Content-Length bytes of
body) and each complete message is handed to :meth:`SwitchCore.receive` as bytes, so UDP and
TCP share one parse path. CRLF keep-alives between messages (RFC 5626 §3.5.1) are skipped.
Limits, so that no single source can hold every slot (issue 12; docs/security.md):

- ``max_message_size`` per message (a peer that exceeds it is disconnected: there is no way to
  resynchronise a stream);
- ``message_timeout``: an accepted connection must deliver its first complete message within
  this many seconds, and any partial message must complete within as long from its first
  byte (slowloris: a connection that drips bytes is closed, however often it drips);
- ``max_per_source`` accepted connections per source IP (more are closed at once);
- ``max_connections`` open at once. When they are all taken, a connection from a source that
  holds fewer than the busiest source still gets in: the busiest source's least recently
  active connection is closed for it. Otherwise the newcomer is closed;
- ``idle_timeout`` seconds without traffic closes a connection.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import TYPE_CHECKING, cast

from vosapp.net import Address

if TYPE_CHECKING:
    from vosapp.switch.core import SwitchCore

log = logging.getLogger(__name__)

_CONTENT_LENGTH = re.compile(rb"^(?:content-length|l)[ \t]*:[ \t]*(\d+)[ \t]*$",
                             re.IGNORECASE | re.MULTILINE)


class FramingError(Exception):
    """The stream cannot be split into SIP messages (missing or oversized length)."""


def split_messages(buffer: bytearray, max_message_size: int) -> list[bytes]:
    """Remove and return every complete message at the front of ``buffer`` (§18.3)."""
    out: list[bytes] = []
    while True:
        start = 0
        while start < len(buffer) and buffer[start] in b"\r\n":
            start += 1
        if start:
            del buffer[:start]
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(buffer) > max_message_size:
                raise FramingError(f"header block over {max_message_size} bytes")
            return out
        head = bytes(buffer[:end])
        # Folded or not, Content-Length is one logical header; on a stream it is mandatory.
        match = _CONTENT_LENGTH.search(head.replace(b"\r\n ", b" ").replace(b"\r\n\t", b" "))
        if match is None:
            raise FramingError("message without Content-Length on a stream transport")
        length = int(match.group(1))
        total = end + 4 + length
        if total > max_message_size:
            raise FramingError(f"message of {total} bytes over the {max_message_size}-byte limit")
        if len(buffer) < total:
            return out
        out.append(bytes(buffer[:total]))
        del buffer[:total]


class TcpConnection(asyncio.Protocol):
    def __init__(self, server: TcpTransport, *, accepted: bool) -> None:
        self.server = server
        #: Accepted from a peer (True) or opened by the switch (False): only accepted
        #: connections owe a first message and count against the per-source cap.
        self.accepted = accepted
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.peer: Address = ("", 0)
        self.local: Address = ("", 0)
        self.last_active = 0.0
        self._idle: asyncio.TimerHandle | None = None
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The Protocol API types it as a BaseTransport; a stream connection gets a Transport.
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        sock = transport.get_extra_info("sockname")
        self.peer = (peer[0], peer[1])
        self.local = (sock[0], sock[1])
        if not self.server._admit(self):
            transport.close()
            return
        self._touch()
        if self.accepted:
            self._arm_deadline("no complete message")

    def _touch(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
        loop = asyncio.get_running_loop()
        self.last_active = loop.time()
        self._idle = loop.call_later(self.server.idle_timeout, self._on_idle)

    def _on_idle(self) -> None:
        self.server.core.trace.event("TCP connection closed after idle timeout",
                                     src=self.peer, transport="TCP")
        self.close()

    def _arm_deadline(self, what: str) -> None:
        loop = asyncio.get_running_loop()
        self._deadline = loop.call_later(self.server.message_timeout, self._on_deadline, what)

    def _on_deadline(self, what: str) -> None:
        self._deadline = None
        self.server.core.trace.event(f"TCP connection closed: {what} within "
                                     f"{self.server.message_timeout:g} s",
                                     src=self.peer, transport="TCP")
        self.close()

    def data_received(self, data: bytes) -> None:
        self._touch()
        self.buffer += data
        try:
            messages = split_messages(self.buffer, self.server.max_message_size)
        except FramingError as exc:
            self.server.core.trace.event(f"TCP stream from {self.peer[0]}:{self.peer[1]} "
                                         f"closed: {exc}", src=self.peer, transport="TCP")
            self.close()
            return
        if messages and self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        if self.buffer.strip(b"\r\n") and self._deadline is None:
            self._arm_deadline("a partial message not completed")  # counted from now
        for message in messages:
            self.server.core.receive(message, self.peer, "TCP", self.local)

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self._idle, self._deadline):
            if timer is not None:
                timer.cancel()
        self.server._forget(self)

    def send(self, data: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            raise OSError(f"TCP connection to {self.peer[0]}:{self.peer[1]} is closed")
        self._touch()
        self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class TcpTransport:
    """A listening TCP socket plus outbound connections, keyed by peer address."""

    def __init__(self, core: SwitchCore, *, max_message_size: int = 65_535,
                 max_connections: int = 1024, idle_timeout: float = 300.0,
                 max_per_source: int = 32, message_timeout: float = 20.0) -> None:
        self.core = core
        self.max_message_size = max_message_size
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self.max_per_source = max_per_source
        self.message_timeout = message_timeout
        self.connections: dict[Address, TcpConnection] = {}
        #: Every open connection by peer IP, in admission order.
        self._by_source: dict[str, dict[TcpConnection, None]] = {}
        self._open = 0
        self.server: asyncio.Server | None = None
        self.local: Address = ("", 0)
        self._connecting: dict[Address, asyncio.Task[None]] = {}
        self._queued: dict[Address, list[bytes]] = {}

    async def listen(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: TcpConnection(self, accepted=True),
                                               host, port, reuse_address=True)
        sock = self.server.sockets[0].getsockname()
        self.local = (sock[0], sock[1])

    def _admit(self, connection: TcpConnection) -> bool:
        host = connection.peer[0]
        held = len(self._by_source.get(host, ()))
        if connection.accepted and held >= self.max_per_source:
            return self._refuse(connection, f"{host} already has {held} open")
        if self._open >= self.max_connections and not self._make_room_for(held):
            return self._refuse(connection, f"{self.max_connections} open")
        self.connections[connection.peer] = connection
        self._by_source.setdefault(host, {})[connection] = None
        self._open += 1
        return True

    def _refuse(self, connection: TcpConnection, why: str) -> bool:
        self.core.trace.event(f"TCP connection refused: {why}", src=connection.peer,
                              transport="TCP")
        return False

    def _make_room_for(self, held: int) -> bool:
        """Close the least recently active connection of the busiest source, if that source
        holds more than the newcomer's (``held``): a new source always gets a slot."""
        busiest = max(self._by_source.values(), key=len, default={})
        if len(busiest) <= held:
            return False
        victim = min(busiest, key=lambda c: c.last_active)
        self.core.trace.event(f"TCP connection closed to make room: {victim.peer[0]} holds "
                              f"{len(busiest)} of {self.max_connections}", src=victim.peer,
                              transport="TCP")
        self._forget(victim)
        victim.close()
        return True

    def _forget(self, connection: TcpConnection) -> None:
        if self.connections.get(connection.peer) is connection:
            del self.connections[connection.peer]
        mine = self._by_source.get(connection.peer[0])
        if mine is not None and connection in mine:  # not yet forgotten (see _make_room_for)
            del mine[connection]
            self._open -= 1
            if not mine:
                del self._by_source[connection.peer[0]]

    def send(self, data: bytes, destination: Address) -> None:
        """Write on the connection to ``destination``, connecting first when there is none."""
        destination = (destination[0], int(destination[1]))
        connection = self.connections.get(destination)
        if connection is not None:
            connection.send(data)
            return
        # A response whose connection has closed goes to the peer's sent-by port (§18.2.2).
        destination = self.core.reply_fallback.get(destination, destination)
        connection = self.connections.get(destination)
        if connection is not None:
            connection.send(data)
            return
        self._queued.setdefault(destination, []).append(data)
        if destination not in self._connecting:
            loop = asyncio.get_running_loop()
            self._connecting[destination] = loop.create_task(self._connect(destination))

    async def _connect(self, destination: Address) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, connection = await asyncio.wait_for(
                loop.create_connection(lambda: TcpConnection(self, accepted=False),
                                       *destination), timeout=10)
        except (TimeoutError, OSError) as exc:
            self._queued.pop(destination, None)
            self.core.trace.event(f"TCP connect to {destination[0]}:{destination[1]} failed: "
                                  f"{exc}", dst=destination, transport="TCP")
            self.core.transport_failed(destination, "TCP", str(exc) or "connect failed")
            return
        finally:
            self._connecting.pop(destination, None)
        queued = self._queued.pop(destination, [])
        if connection.transport is None or connection.transport.is_closing():
            # refused by our own connection limit (see _admit)
            self.core.transport_failed(destination, "TCP", "too many TCP connections")
            return
        # The connection registers under its peername, which may differ in form (IPv6).
        self.connections[destination] = connection
        for data in queued:
            connection.send(data)

    async def close(self) -> None:
        for task in list(self._connecting.values()):
            task.cancel()
        for connection in list(self.connections.values()):
            connection.close()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
