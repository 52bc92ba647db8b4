"""The SIP UDP socket's per-datagram work, written for compiled code: what
:class:`vosapp.io.udp.UdpTransport` does with every datagram it reads and every one the
switch sends.

Each datagram in and out of a registration passed through several small Python functions
here (the protocol's callback and its drain loop, the runtime's sender, the group commit's
hold, the check that a destination is an address): interpreted frames around the compiled
core. This module is compiled with the switch's request path (vosapp/compiled.py), so the
core's sender and asyncio's callback reach compiled code directly (docs/benchmarks.md,
thirty-fourth round). What needs asyncio itself (binding, resolving host names, closing)
stays in vosapp/io/udp.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from vosapp.net import Address, AddressObject, is_ip_literal
from vosapp.sip.headers import keep_bounded

if TYPE_CHECKING:
    from vosapp.io.group_commit import GroupCommit
    from vosapp.switch.core import Sender, SwitchCore

#: Largest UDP payload over IPv4; anything larger cannot arrive anyway.
MAX_DATAGRAM: Final = 65_507
#: Datagrams handled per wake-up of the loop. asyncio reads one datagram per turn of its loop
#: (an epoll_wait, a callback); under load more are already queued, and reading them at once
#: saves that turn for each. Bounded, so timers and the other sockets still get their turn.
DRAIN_BATCH: Final = 32
#: Hosts remembered as IP literals or not (:meth:`UdpWire.is_address`), emptied when full:
#: a switch sends to a few peers again and again, but an address per client is unbounded.
ADDRESS_MEMO_SIZE: Final = 4096


class UdpWire:
    """One bound UDP socket's datagrams: into :meth:`SwitchCore.receive`, out of the core's
    sender. :class:`~vosapp.io.udp.UdpTransport` owns it and fills in the socket."""

    def __init__(self, core: SwitchCore, max_message_size: int = MAX_DATAGRAM) -> None:
        self.core = core
        self.max_message_size = max_message_size
        #: The bound socket, read directly for the datagrams queued behind the one asyncio
        #: delivers (:data:`DRAIN_BATCH`); None until bound.
        self.sock: Any = None
        #: asyncio's datagram transport over it; None until connected.
        self.transport: Any = None
        #: Closed by the switch or lost (the protocol's ``close``/``connection_lost``): what
        #: ``transport.is_closing()`` says, kept here so that a send asks no Python method.
        self.closed = False
        #: The socket refused a datagram (its buffer full): asyncio's transport holds it, and
        #: every later one goes through the transport until it has sent all it holds.
        self.queued = False
        self.local: Address = ("", 0)
        #: The runtime's group commit around the datagrams of one wake-up (None: each write
        #: commits on its own).
        self.batch: GroupCommit | None = None
        #: The runtime's receive-delay probe: its datagrams go to ``on_probe``, not the core.
        self.probe_source: Address | None = None
        self.on_probe: Callable[[bytes], None] | None = None
        #: The protocol's ``error_received``: an error queued on the socket (ICMP).
        self.on_error: Callable[[Exception], None] | None = None
        #: The runtime's sender, for what :meth:`send` does not send itself (TCP, a host name
        #: to resolve, a closed socket's error).
        self.other: Sender | None = None
        #: host -> whether it is an IP literal (:data:`ADDRESS_MEMO_SIZE`)
        self._addresses: dict[str, bool] = {}

    # -- in ---------------------------------------------------------------------------------
    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        """asyncio's callback (the protocol's ``datagram_received`` is this method): the
        datagram, then those queued behind it, inside one group commit."""
        batch = self.batch
        if batch is None:
            self.drain(data, addr)
            return
        batch.begin()
        try:
            self.drain(data, addr)
        finally:
            batch.end()

    def drain(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.handle(data, addr)
        sock = self.sock
        if sock is None:
            return
        for _ in range(DRAIN_BATCH - 1):
            if not self.is_open():
                return
            try:
                data, addr = sock.recvfrom(MAX_DATAGRAM + 1)
            except (BlockingIOError, InterruptedError):
                return  # the queue is empty: back to the loop
            except OSError as exc:  # e.g. an ICMP error queued on the socket
                if self.on_error is not None:
                    self.on_error(exc)
                return
            self.handle(data, addr)

    def handle(self, data: bytes, addr: tuple[Any, ...]) -> None:
        source: Address = (addr[0], addr[1])
        if source == self.probe_source and self.on_probe is not None:
            self.on_probe(data)
            return
        if len(data) > self.max_message_size:
            self.core.trace.event(f"UDP datagram of {len(data)} bytes over the "
                                  f"{self.max_message_size}-byte limit dropped",
                                  src=source, transport="UDP")
            return
        self.core.receive(data, source, "UDP", self.local)

    # -- out --------------------------------------------------------------------------------
    def is_open(self) -> bool:
        return self.transport is not None and not self.closed

    def is_address(self, host: str) -> bool:
        """Whether ``host`` is an IP literal (``vosapp.net.is_ip_literal``), remembered."""
        known = self._addresses.get(host)
        if known is None:
            known = is_ip_literal(host)
            keep_bounded(self._addresses, host, known, ADDRESS_MEMO_SIZE)
        return known

    def sends_at_once(self, destination: AddressObject) -> bool:
        """Whether a datagram to ``destination`` goes to the socket now, without resolving a
        name first, and so cannot fail later than now (asyncio reports socket errors through
        ``error_received``)."""
        return self.is_open() and self.is_address(destination[0])

    def send_datagram(self, data: bytes, destination: AddressObject) -> None:
        """Send to an IP address (:meth:`sends_at_once` said so); nothing when closed since."""
        if self.is_open():
            self.sendto(data, destination)

    def sendto(self, data: bytes, destination: AddressObject) -> None:
        """What asyncio's ``transport.sendto`` does, on the socket directly while the
        transport holds nothing (its Python method, for every datagram, is what this saves):
        an empty datagram is not sent, a socket error goes to ``error_received``, and a
        datagram the socket refuses goes to the transport, which keeps it, and those after
        it, in order until the socket takes them."""
        if not data:
            return
        transport = self.transport
        sock = self.sock
        if sock is None:  # not bound yet (UdpTransport.bind sets it): asyncio's way
            transport.sendto(data, destination)
            return
        if self.queued:
            if transport.get_write_buffer_size():
                transport.sendto(data, destination)
                return
            self.queued = False
        try:
            sock.sendto(data, destination)
        except (BlockingIOError, InterruptedError):
            self.queued = True
            transport.sendto(data, destination)
        except OSError as exc:
            if self.on_error is not None:
                self.on_error(exc)

    def send(self, data: bytes, destination: AddressObject, transport: str) -> None:
        """The switch core's sender. A UDP datagram to an address goes here: held for the
        group commit when it follows a write (vosapp.io.group_commit), or to the socket.
        Anything else goes to the runtime's sender (:attr:`other`)."""
        if transport == "UDP":
            batch = self.batch
            if batch is not None and batch.hold(data, destination):
                return
            if self.sends_at_once(destination):
                self.sendto(data, destination)
                return
        if self.other is None:
            raise OSError(f"no {transport} transport is open")
        self.other(data, destination, transport)
