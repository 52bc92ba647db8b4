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

from vosapp.io.udp_wire import MAX_DATAGRAM, UdpWire
from vosapp.net import Address, is_ip_literal

if TYPE_CHECKING:
    from vosapp.io.group_commit import GroupCommit
    from vosapp.switch.core import SwitchCore

log = logging.getLogger(__name__)

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
    """One bound UDP socket feeding :meth:`SwitchCore.receive`. The work per datagram, in and
    out, is its :class:`~vosapp.io.udp_wire.UdpWire`'s (compiled); what needs asyncio is
    here."""

    def __init__(self, core: SwitchCore, max_message_size: int = MAX_DATAGRAM) -> None:
        self.core = core
        self.max_message_size = max_message_size
        self.wire = UdpWire(core, max_message_size)
        self.wire.on_error = self.error_received
        # asyncio calls the protocol's datagram_received for every wake-up of the socket: the
        # wire's compiled method itself, without a Python frame in between.
        self.datagram_received = self.wire.datagram_received  # type: ignore[method-assign]
        #: host name -> (address, expiry on the loop clock)
        self._resolved: dict[str, tuple[str, float]] = {}
        #: host name -> datagrams (and ports) waiting for its resolution
        self._waiting: dict[str, list[tuple[bytes, int]]] = {}
        self._resolving: set[asyncio.Task[None]] = set()

    # What the runtime reads and sets, kept on the wire.
    @property
    def transport(self) -> asyncio.DatagramTransport | None:
        return cast("asyncio.DatagramTransport | None", self.wire.transport)

    @property
    def local(self) -> Address:
        return self.wire.local

    @property
    def batch(self) -> GroupCommit | None:
        """The runtime's group commit around the datagrams of one wake-up (None: each write
        commits on its own)."""
        return self.wire.batch

    @batch.setter
    def batch(self, batch: GroupCommit | None) -> None:
        self.wire.batch = batch

    @property
    def probe_source(self) -> Address | None:
        """The runtime's receive-delay probe: its datagrams go to ``on_probe``, not the core."""
        return self.wire.probe_source

    @probe_source.setter
    def probe_source(self, source: Address | None) -> None:
        self.wire.probe_source = source

    @property
    def on_probe(self) -> Callable[[bytes], None] | None:
        return self.wire.on_probe

    @on_probe.setter
    def on_probe(self, callback: Callable[[bytes], None] | None) -> None:
        self.wire.on_probe = callback

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
        protocol.wire.sock = sock
        return protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The Protocol API types it as a BaseTransport; a datagram endpoint gets a datagram one.
        self.wire.transport = transport
        sockname = transport.get_extra_info("sockname")
        self.wire.local = (sockname[0], sockname[1])
        sock = transport.get_extra_info("socket")
        if sock is not None:
            enlarge_receive_buffer(sock, RECEIVE_BUFFER)

    def connection_lost(self, exc: Exception | None) -> None:
        self.wire.closed = True

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable etc. arrive here on some platforms; never fatal.
        log.debug("UDP error: %s", exc)

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
        self.wire.sendto(data, destination)

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
                self.wire.sendto(data, (address, port))

    def close(self) -> None:
        for task in list(self._resolving):
            task.cancel()
        self.wire.closed = True
        if self.transport is not None:
            self.transport.close()
