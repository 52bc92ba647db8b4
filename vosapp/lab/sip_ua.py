"""A small SIP user agent for the lab: one UDP socket, the SIP core's transactions, calls.

:class:`UserAgent` is the common part of the lab phone (:mod:`vosapp.lab.phones`), vendor
(:mod:`vosapp.lab.vendor`) and carrier (:mod:`vosapp.lab.carrier`). It owns:

* a :class:`~vosapp.sip.transaction.TransactionLayer` on a :class:`~vosapp.clock.Clock`
  (``clock=`` or the event loop's real time): every request it sends is a client
  transaction (RFC 3261 §17.1: Timers A/B/E/F/K retransmit and time out), every request it
  receives a server transaction (§17.2), so retransmissions are the core's, never this
  module's;
* the calls (:class:`~vosapp.lab.calls.Call`), looked up by Call-ID for in-dialog requests;
* the incoming-call hook: :attr:`UserAgent.on_incoming` or ``await ua.next_call()``.

What it receives that is not SIP (a NAT keep-alive) is kept in :attr:`UserAgent.keepalives`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Self, cast

from vosapp.clock import Clock
from vosapp.io.clock import LoopClock
from vosapp.net import Address
from vosapp.sip import (
    NameAddr,
    Request,
    Response,
    SipParseError,
    SipUri,
    Via,
    make_response,
    new_branch,
    new_tag,
    parse,
)
from vosapp.sip.transaction import (
    ClientTransaction,
    DeliverResponse,
    SentResponse,
    ServerTransaction,
    TimedOut,
    TimerSettings,
    TransactionLayer,
    TransportFailed,
    TUEvent,
)

if TYPE_CHECKING:
    from vosapp.lab.calls import Call

__all__ = ["Address", "UaError", "UserAgent", "is_loopback"]

T1 = 0.5
#: Codecs a lab endpoint offers/accepts unless told otherwise (preference order).
DEFAULT_CODECS = ("PCMA", "PCMU", "G729", "G723", "G722")


class UaError(RuntimeError):
    """A lab user agent was used wrongly (not open, already closed, bad address)."""


def is_loopback(host: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def check_address(address: object, what: str) -> Address:
    if not isinstance(address, tuple) or len(address) != 2:
        raise UaError(f"{what} must be (host, port), not {address!r}")
    return (str(address[0]), int(address[1]))


class _SipSocket(asyncio.DatagramProtocol):
    def __init__(self, on_datagram: Callable[[bytes, Address], None]) -> None:
        self.on_datagram = on_datagram
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)  # a datagram endpoint's

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.on_datagram(data, (addr[0], int(addr[1])))

    def error_received(self, exc: Exception) -> None:  # ICMP port unreachable etc.
        pass


class UserAgent:
    """A SIP UA on ``host:port`` (port 0: any free port).

    Parameters
    ----------
    user : str
        The user part of this UA's From and Contact.
    host, port : bind address (loopback only: this is a lab tool).
    domain : str, optional
        Host part of this UA's address-of-record (default: ``host``).
    codecs : names
        What calls offer and accept, in preference order.
    telephone_event_pt : int or None
        RFC 4733 payload type offered (None: no telephone-event).
    clock : Clock, optional
        Time for transactions and media pacing (default: the running loop's real time).
    t1 : float
        RFC 3261 T1 (retransmission base) of this UA's transactions.
    """

    def __init__(self, user: str, *, host: str = "127.0.0.1", port: int = 0,
                 domain: str | None = None, codecs: Iterable[str] = DEFAULT_CODECS,
                 telephone_event_pt: int | None = 101, clock: Clock | None = None,
                 t1: float = T1, user_agent: str = "vosapp-lab") -> None:
        if not is_loopback(host):
            raise UaError(f"lab user agents bind loopback only, not {host!r}")
        self.user = user
        self.host = host
        self.port = port
        self.domain = domain or host
        self.codecs = tuple(codecs)
        if not self.codecs:
            raise UaError("a lab user agent needs at least one codec")
        self.telephone_event_pt = telephone_event_pt
        self.t1 = t1
        self.user_agent = user_agent
        self._clock = clock
        self.transactions: TransactionLayer | None = None
        #: Every SIP response received, in order (provisional ones included).
        self.responses: list[Response] = []
        #: Every SIP request received (retransmissions excluded), in order.
        self.requests: list[Request] = []
        #: Datagrams that were not SIP (e.g. the NAT keep-alive text, SS_SIP_NAT_KEEP_ALIVE_*).
        self.keepalives: list[bytes] = []
        #: Every call this UA placed or received, in order.
        self.calls: list[Call] = []
        #: Called with each new incoming :class:`~vosapp.lab.calls.Call` (may be a coroutine).
        self.on_incoming: Callable[[Call], Any] | None = None
        self._by_call_id: dict[str, Call] = {}
        self._incoming: asyncio.Queue[Call] = asyncio.Queue()
        self._socket: _SipSocket | None = None
        self._closed = False
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- socket ------------------------------------------------------------------------
    @property
    def clock(self) -> Clock:
        if self._clock is None:
            raise UaError(f"{self.user}: open() first")
        return self._clock

    @property
    def address(self) -> Address:
        """The UA's own (host, port)."""
        if self._socket is None or self._socket.transport is None:
            raise UaError(f"{type(self).__name__} {self.user} is not open")
        sockname = self._socket.transport.get_extra_info("sockname")
        return (sockname[0], int(sockname[1]))

    async def open(self) -> Self:
        if self._closed:
            raise UaError(f"{type(self).__name__} {self.user} was closed; make a new one")
        if self._socket is None:
            loop = asyncio.get_running_loop()
            if self._clock is None:
                self._clock = LoopClock(loop)
            self.transactions = TransactionLayer(self._clock, TimerSettings(t1=self.t1),
                                                 self._transmit)
            _, protocol = await loop.create_datagram_endpoint(
                lambda: _SipSocket(self._on_datagram), local_addr=(self.host, self.port))
            self._socket = protocol
        return self

    def close(self) -> None:
        """Stop every call's media, end every transaction (their timers too), close."""
        self._closed = True
        for call in self.calls:
            call.close_media()
        if self.transactions is not None:
            handles: list[ClientTransaction | ServerTransaction] = [
                *self.transactions.clients.values(), *self.transactions.servers.values()]
            for handle in handles:
                self.transactions.transport_error(handle, "the lab user agent closed")
        for task in self._tasks:
            task.cancel()
        if self._socket is not None and self._socket.transport is not None:
            self._socket.transport.close()
        self._socket = None

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def spawn(self, coro: Any) -> None:
        """Run a coroutine in the background, owned by this UA (cancelled on close)."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- building ----------------------------------------------------------------------
    def via(self) -> Via:
        host, port = self.address
        return Via("UDP", host, port, {"branch": new_branch(), "rport": None})

    def contact(self) -> NameAddr:
        host, port = self.address
        return NameAddr(SipUri(host=host, port=port, user=self.user))

    def aor(self, user: str | None = None, domain: str | None = None) -> NameAddr:
        return NameAddr(SipUri(host=domain or self.domain, user=user or self.user))

    def headers(self, *extra: tuple[str, str]) -> list[tuple[str, str]]:
        return [("User-Agent", self.user_agent), *extra]

    # -- sending -----------------------------------------------------------------------
    @property
    def sent(self) -> int:
        """How many SIP requests went on the wire (retransmissions included)."""
        return self._sent

    _sent = 0

    def _transmit(self, message: Request | Response | SentResponse, destination: Address,
                  transport: str = "UDP") -> None:
        if self._socket is None or self._socket.transport is None:
            raise OSError("the lab user agent's socket is closed")
        self._socket.transport.sendto(bytes(message), destination)
        if isinstance(message, Request):
            self._sent += 1

    def send_stateless(self, message: Request | Response, destination: Address) -> None:
        """ACK for a 2xx and 2xx retransmissions: sent outside transactions (§13.2.2.4)."""
        try:
            self._transmit(message, destination)
        except OSError:
            pass

    def send_request(self, request: Request, destination: Address,
                     on_response: Callable[[TUEvent], None]) -> None:
        """Start a client transaction; ``on_response`` gets its TU events."""
        if self.transactions is None:
            raise UaError(f"{self.user}: open() first")
        self.transactions.send_request(request, destination, "UDP", on_response)

    async def request(self, request: Request, destination: Address,
                      timeout: float | None = None) -> Response | None:
        """Send ``request`` in a client transaction; its final response, or None when the
        transaction timed out (Timer F) or ``timeout`` seconds passed (the transaction is
        then ended: the lab gave up)."""
        await self.open()
        future: asyncio.Future[Response | None] = asyncio.get_running_loop().create_future()

        def listener(event: TUEvent) -> None:
            if future.done():
                return
            if isinstance(event, DeliverResponse) and event.response.status >= 200:
                future.set_result(event.response)
            elif isinstance(event, (TimedOut, TransportFailed)):
                future.set_result(None)

        assert self.transactions is not None
        handle = self.transactions.send_request(request, destination, "UDP", listener)
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            self.transactions.transport_error(handle, "the lab stopped waiting")
            return None

    # -- receiving ---------------------------------------------------------------------
    def _on_datagram(self, data: bytes, source: Address) -> None:
        try:
            message = parse(data)
        except SipParseError:
            self.keepalives.append(data)
            return
        assert self.transactions is not None
        try:
            if isinstance(message, Response):
                self.responses.append(message)
                if self.transactions.receive_response(message) is None:
                    self._stray_response(message)
                return
            handle = self.transactions.match_request(message)
            if handle is not None:
                self.transactions.receive_retransmission(handle, message)
                return
            self.requests.append(message)
            if message.method == "ACK":
                call = self._by_call_id.get(message.call_id)
                if call is not None:
                    call.on_ack(message)
                return
            server = self.transactions.create_server(message, source, "UDP", source)
            self._on_request(message, server)
        except SipParseError:
            self.keepalives.append(data)  # unreadable headers: kept, never fatal

    def _stray_response(self, response: Response) -> None:
        """A 2xx to an INVITE after its transaction ended: the call re-ACKs it (§13.2.2.4)."""
        call = self._by_call_id.get(response.call_id)
        if call is not None and response.cseq.method == "INVITE" and response.status < 300:
            call.on_invite_2xx(response)

    def _on_request(self, request: Request, server: Any) -> None:
        call = self._by_call_id.get(request.call_id)
        if request.method == "INVITE" and (call is None or request.to.tag is None):
            if call is not None:  # same Call-ID, no To tag: a loop or a fork (§8.2.2.2)
                server.respond(make_response(request, 482, to_tag=new_tag()))
            elif not request.contacts or request.from_.tag is None:
                # §12.1.1: no dialog without the peer's Contact and From tag
                server.respond(make_response(request, 400, "Missing Contact or From tag",
                                             to_tag=new_tag()))
            else:
                self._new_incoming(request, server)
        elif call is not None and request.method in ("INVITE", "BYE", "CANCEL", "INFO",
                                                     "PRACK", "UPDATE", "OPTIONS"):
            call.on_request(request, server)
        elif request.method == "OPTIONS":
            server.respond(make_response(request, 200, to_tag=new_tag()))
        elif request.method in ("BYE", "CANCEL", "INFO", "PRACK"):
            server.respond(make_response(request, 481, to_tag=new_tag()))
        else:
            server.respond(make_response(request, 501, to_tag=new_tag()))

    # -- calls -------------------------------------------------------------------------
    def add_call(self, call: Call) -> None:
        self.calls.append(call)
        self._by_call_id[call.call_id] = call

    def _new_incoming(self, request: Request, server: Any) -> None:
        from vosapp.lab.calls import Call

        call = Call.incoming(self, request, server)
        self.add_call(call)
        self.incoming_call(call)

    def incoming_call(self, call: Call) -> None:
        """What a new incoming call does: ring, then :attr:`on_incoming` or the queue of
        :meth:`next_call`. The vendor overrides this to answer by itself."""
        call.ring()
        if self.on_incoming is not None:
            result = self.on_incoming(call)
            if asyncio.iscoroutine(result):
                self.spawn(result)
        else:
            self._incoming.put_nowait(call)

    async def next_call(self, timeout: float | None = 30.0) -> Call:
        """The next incoming call (ringing), waiting up to ``timeout`` seconds."""
        await self.open()
        return await asyncio.wait_for(self._incoming.get(), timeout)

    async def dial(self, number: str, destination: Address, *, domain: str | None = None,
                   password: str | None = None, codecs: Iterable[str] | None = None,
                   headers: Iterable[tuple[str, str]] = ()) -> Call:
        """Send an INVITE for ``number`` to ``destination``; returns the call (ringing)."""
        from vosapp.lab.calls import Call

        await self.open()
        call = Call.outgoing(self, number, check_address(destination, "destination"),
                             domain=domain or destination[0], password=password,
                             codecs=tuple(codecs) if codecs is not None else self.codecs,
                             headers=list(headers))
        self.add_call(call)
        await call.start()
        return call

    def __repr__(self) -> str:
        where = "closed" if self._socket is None else "{}:{}".format(*self.address)
        return f"<{type(self).__name__} {self.user} at {where}, {len(self.calls)} calls>"
