"""asyncio UDP transport for the switch core (RFC 3261 §18 over datagrams).

Destinations are IP addresses, except a gateway or proxy configured by host name: a name is
never handed to ``sendto`` (which would resolve it with a blocking call on the event loop and
stall every other request). It is resolved in a worker thread, with a timeout, and cached;
datagrams wait meanwhile, and a name that does not resolve fails their transactions.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from vosapp.net import Address, is_ip_literal

if TYPE_CHECKING:
    from vosapp.io.group_commit import GroupCommit
    from vosapp.switch.core import SwitchCore

log = logging.getLogger(__name__)

#: Largest UDP payload over IPv4; anything larger cannot arrive anyway.
MAX_DATAGRAM = 65_507
#: Resolving a configured host name: the longest wait, how long an answer is reused, and
#: how many datagrams may wait for one name.
RESOLVE_TIMEOUT = 5.0
RESOLVE_TTL = 300.0
MAX_WAITING = 64
#: Receive buffer asked for the SIP socket. Linux's default (212,992 bytes of accounted memory,
#: ~2 KiB per small datagram) holds ~100 datagrams: at 200 calls/s, ~1,400 datagrams/s, any
#: pause of the loop over ~70 ms (a GC pass, a WAL checkpoint) dropped requests and responses
#: that then waited for their retransmission (T1 = 500 ms, RFC 3261 §17.1.1.1). 4 MiB holds
#: seconds of that traffic; Kamailio and FreeSWITCH raise theirs likewise.
RECEIVE_BUFFER = 4 * 1024 * 1024
#: Datagrams handled per wake-up of the loop. asyncio reads one datagram per turn of its loop
#: (an epoll_wait, a callback); under load more are already queued, and reading them at once
#: saves that turn for each. Bounded, so timers and the other sockets still get their turn.
DRAIN_BATCH = 32
#: SO_REUSEPORT on the SIP socket: only bench/reuseport_serve.py sets it (several processes
#: on one port, a measurement, not a feature).
REUSE_PORT = False


def enlarge_receive_buffer(sock: Any, size: int) -> int:
    """Ask for a ``size``-byte receive buffer; the kernel caps SO_RCVBUF at net.core.rmem_max,
    which SO_RCVBUFFORCE may exceed with CAP_NET_ADMIN. Returns what the socket got (Linux
    reports twice the size asked: the doubling covers its bookkeeping); logs a warning with
    the sysctl to raise when it is less than asked."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
    got = int(sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))
    full = 2 * size  # what Linux reports for the whole size granted (socket(7))
    force = getattr(socket, "SO_RCVBUFFORCE", None)
    if got < full and force is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, force, size)
            got = int(sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))
        except OSError:  # EPERM without CAP_NET_ADMIN: keep what SO_RCVBUF gave
            pass
    if got < full:
        log.warning("UDP receive buffer %d bytes, asked %d: a pause of the switch may drop "
                    "SIP datagrams under load; raise net.core.rmem_max (sysctl) to %d",
                    got, size, size)
    return got


class UdpTransport(asyncio.DatagramProtocol):
    """One bound UDP socket feeding :meth:`SwitchCore.receive`."""

    def __init__(self, core: SwitchCore, max_message_size: int = MAX_DATAGRAM) -> None:
        self.core = core
        self.max_message_size = max_message_size
        self.transport: asyncio.DatagramTransport | None = None
        self.local: Address = ("", 0)
        #: The bound socket, read directly for the datagrams queued behind the one asyncio
        #: delivers (:data:`DRAIN_BATCH`).
        self._sock: socket.socket | None = None
        #: The runtime's group commit around the datagrams of one wake-up (None: each write
        #: commits on its own).
        self.batch: GroupCommit | None = None
        #: host name -> (address, expiry on the loop clock)
        self._resolved: dict[str, tuple[str, float]] = {}
        #: host name -> datagrams (and ports) waiting for its resolution
        self._waiting: dict[str, list[tuple[bytes, int]]] = {}
        self._resolving: set[asyncio.Task[None]] = set()
        #: The runtime's receive-delay probe: its datagrams go to ``on_probe``, not the core.
        self.probe_source: Address | None = None
        self.on_probe: Callable[[bytes], None] | None = None

    @classmethod
    async def bind(cls, core: SwitchCore, host: str, port: int,
                   max_message_size: int = MAX_DATAGRAM) -> UdpTransport:
        loop = asyncio.get_running_loop()
        if is_ip_literal(host):  # the usual case: no resolver call
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            address: tuple[Any, ...] = (host, port)
        else:
            family, _, _, _, address = (await loop.getaddrinfo(
                host, port, type=socket.SOCK_DGRAM, flags=socket.AI_PASSIVE))[0]
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            if REUSE_PORT:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(address)
            _, protocol = await loop.create_datagram_endpoint(
                lambda: cls(core, max_message_size), sock=sock)
        except BaseException:
            sock.close()
            raise
        protocol._sock = sock
        return protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The Protocol API types it as a BaseTransport; a datagram endpoint gets a datagram one.
        self.transport = cast(asyncio.DatagramTransport, transport)
        sockname = transport.get_extra_info("sockname")
        self.local = (sockname[0], sockname[1])
        sock = transport.get_extra_info("socket")
        if sock is not None:
            enlarge_receive_buffer(sock, RECEIVE_BUFFER)

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        batch = self.batch
        if batch is None:
            self._drain(data, addr)
            return
        batch.begin()
        try:
            self._drain(data, addr)
        finally:
            batch.end()

    def _drain(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self._handle(data, addr)
        sock = self._sock
        if sock is None:
            return
        for _ in range(DRAIN_BATCH - 1):
            if self.transport is None or self.transport.is_closing():
                return
            try:
                data, addr = sock.recvfrom(MAX_DATAGRAM + 1)
            except (BlockingIOError, InterruptedError):
                return  # the queue is empty: back to the loop
            except OSError as exc:  # e.g. an ICMP error queued on the socket
                self.error_received(exc)
                return
            self._handle(data, addr)

    def _handle(self, data: bytes, addr: tuple[Any, ...]) -> None:
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

    def sends_at_once(self, destination: Address) -> bool:
        """Whether :meth:`send` would hand ``data`` to the socket now, without resolving a
        name first, and so cannot fail later than now (asyncio reports socket errors through
        ``error_received``)."""
        return (self.transport is not None and not self.transport.is_closing()
                and is_ip_literal(destination[0]))

    def send_datagram(self, data: bytes, destination: Address) -> None:
        """Send to an IP address (:meth:`sends_at_once` said so); nothing when closed since."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(data, destination)

    def send(self, data: bytes, destination: Address) -> None:
        if self.transport is None or self.transport.is_closing():
            raise OSError("UDP transport is closed")
        host, port = destination
        if not is_ip_literal(host):
            loop = asyncio.get_running_loop()
            address, expiry = self._resolved.get(host, ("", 0.0))
            if expiry <= loop.time():
                self._wait_for(host, data, port, loop)
                return
            destination = (address, port)
        self.transport.sendto(data, destination)

    def _wait_for(self, host: str, data: bytes, port: int,
                  loop: asyncio.AbstractEventLoop) -> None:
        waiting = self._waiting.get(host)
        if waiting is None:
            self._waiting[host] = [(data, port)]
            task = loop.create_task(self._resolve(host))
            self._resolving.add(task)  # the loop keeps only a weak reference to a task
            task.add_done_callback(self._resolving.discard)
        elif len(waiting) < MAX_WAITING:
            waiting.append((data, port))
        else:
            raise OSError(f"{MAX_WAITING} datagrams already wait for {host} to resolve")

    async def _resolve(self, host: str) -> None:
        loop = asyncio.get_running_loop()
        assert self.transport is not None  # send() checked it before scheduling this
        family = self.transport.get_extra_info("socket").family
        try:
            # loop.getaddrinfo runs the blocking resolver in the default executor.
            answers = await asyncio.wait_for(
                loop.getaddrinfo(host, None, family=family, type=socket.SOCK_DGRAM),
                RESOLVE_TIMEOUT)
            address = str(answers[0][4][0])
        except (OSError, TimeoutError, IndexError) as exc:
            reason = f"cannot resolve {host}: {str(exc) or 'no answer in time'}"
            self.core.trace.event(reason, transport="UDP")
            for _, port in self._waiting.pop(host, []):
                self.core.transport_failed((host, port), "UDP", reason)
            return
        self._resolved[host] = (address, loop.time() + RESOLVE_TTL)
        for data, port in self._waiting.pop(host, []):
            if self.transport is not None and not self.transport.is_closing():
                self.transport.sendto(data, (address, port))

    def close(self) -> None:
        for task in list(self._resolving):
            task.cancel()
        if self.transport is not None:
            self.transport.close()
