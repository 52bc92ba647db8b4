"""The sans-IO switch core: bytes in, sends out, handlers plugged in per method.

Theory of operation
-------------------
A runtime (``vosapp.io.runtime`` on real sockets, ``vosapp.io.virtual`` on a simulated
network) calls :meth:`SwitchCore.receive` with every datagram / framed stream message and
gives the core a ``sender`` callable that puts bytes on the wire. Timers run on the injected
:class:`~vosapp.clock.Clock`. Nothing here opens a socket or reads the wall clock.

Inbound requests go through the :class:`~vosapp.sip.transaction.TransactionLayer`: a
retransmission is absorbed by its transaction; a new request creates a server transaction and
is handed to the handler registered for its method (``add_request_handler``). A handler
answers with ``txn.respond(response)`` — now or later — or ``txn.drop()`` to say nothing at
all (SS_REPLY_UNAUTHORIZED=Off, docs/behaviour.md §2.1). With no handler, the core answers as RFC
3261 asks of a UAS: OPTIONS → 200 with Allow/Accept/Supported (§11.2), a method it knows but does
not serve → 405 with Allow (§8.2.1), an unknown method → 501 (§8.2.1), Max-Forwards 0 → 483
(§16.3; OPTIONS exempt, §11), CANCEL → matched to its INVITE (§9.2) or 481.

Outbound requests (the registration client, later the B2BUA) go through
:meth:`SwitchCore.send_request`, which returns a ClientTransaction whose listeners receive
responses, timeouts and termination as plain events.

Start and stop hooks let features run work when the switch starts and when it stops
gracefully; a stop hook may return a ``done()`` predicate (e.g. "the Expires: 0 REGISTER got
its final answer"), and the runtime keeps the transports open until every predicate is true or
its bounded wait runs out (docs/behaviour.md §3).
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TypeAlias

from vosapp.config import Limits
from vosapp.net import Address, AddressObject, as_address, same_host
from vosapp.params import REGISTRY, Params
from vosapp.sip import (
    Response,
    SipParseError,
    SipUri,
    Via,
    make_error_response,
    make_response,
    new_branch,
    new_tag,
    parse,
    parse_vias,
)
from vosapp.sip.headers import VIAS_MEMO
from vosapp.sip.parser import SUPPORTED_URI_SCHEMES
from vosapp.sip.transaction import (
    RELIABLE_TRANSPORTS,
    ClientTransaction,
    Listener,
    SentResponse,
    ServerTransaction,
    TimedOut,
    TimerSettings,
    TransactionError,
    TransactionLayer,
    TUEvent,
    server_key,
)
from vosapp.switch.limits import SHED_FLOOR, Admission, OverloadGate, SourceLimiter
from vosapp.trace import Trace

if TYPE_CHECKING:
    from vosapp.clock import Clock
    from vosapp.config import Config
    from vosapp.sip import Request
    from vosapp.store import Store

log: Final = logging.getLogger(__name__)

#: Puts bytes on the wire: ``sender(data, destination, transport)``. May raise OSError.
Sender: TypeAlias = Callable[[bytes, Address, str], None]
#: A request handler: ``handler(request, txn)``; ``txn.source``/``txn.transport`` say where
#: it came from, ``txn.respond(response)`` / ``txn.drop()`` finish it.
RequestHandler: TypeAlias = Callable[["Request", ServerTransaction], None]
#: Receives requests that belong to no transaction: the ACK for a 2xx (§13.2.2.4).
AckHandler: TypeAlias = Callable[["Request", Address, str], None]
#: Receives responses that match no client transaction (2xx retransmissions, §13.2.2.4).
StrayResponseHandler: TypeAlias = Callable[["Response", Address, str], None]
#: Told about parameter changes: ``listener(new_params, {name: (old, new)})``.
ParamsListener: TypeAlias = Callable[[Params, "dict[str, tuple[Any, Any]]"], None]
#: A stop hook starts its graceful work and may return a ``done()`` predicate.
StopHook: TypeAlias = Callable[[], "Callable[[], bool] | None"]

#: What a CRLF keep-alive is made of (CR, LF, tab, space), and the same as ints: what
#: data[0] gives.
_BLANK: Final = b"\r\n\t "
_BLANK_BYTES: Final = frozenset(_BLANK)
#: RFC 3261 and its extensions: methods this switch recognises (405, not 501, when unserved).
_REQUEST_LINE: Final = re.compile(rb"[!-~]+ [!-~]+ SIP/\d")
KNOWN_METHODS: Final = frozenset({
    "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK", "SUBSCRIBE", "NOTIFY",
    "PUBLISH", "INFO", "REFER", "MESSAGE", "UPDATE",
})
#: Served by the core itself whatever handlers exist.
CORE_METHODS: Final = ("OPTIONS", "CANCEL", "ACK")
SERVER_NAME: Final = "vosapp/0.1"
#: RFC 3261 §8.2.2.3 / §19.2: the option tags this switch implements -- what OPTIONS lists in
#: Supported and what a Require is checked against (anything else: 420). "timer" = RFC 4028,
#: "100rel" = RFC 3262 (vosapp.switch.call.reliable).
SUPPORTED_OPTION_TAGS: Final[tuple[str, ...]] = ("timer", "100rel")
ACCEPT: Final = "application/sdp"


@dataclass
class CoreStats:
    received: int = 0
    sent: int = 0
    parse_errors: int = 0
    retransmissions_absorbed: int = 0
    send_errors: int = 0
    flood_dropped: int = 0  # by the per-source limiter
    overload_refused: int = 0  # new INVITEs answered 503 by the overload gate
    stealth_dropped: int = 0  # SS_REPLY_UNAUTHORIZED=Off: unknown sources get nothing


class SwitchCore:
    """Holds Params, Config, Trace, Store, Clock and the TransactionLayer; dispatches requests."""

    def __init__(self, *, clock: Clock, params: Params | None = None,
                 config: Config | None = None, trace: Trace | None = None,
                 store: Store | None = None, sender: Sender | None = None,
                 limits: Limits | None = None) -> None:
        self.clock = clock
        self.config = config
        #: Flood, memory and overload limits (``[limits]``, see vosapp.switch.limits).
        self.limits = limits if limits is not None else (
            config.limits if config is not None else Limits())
        self._params = params if params is not None else (
            config.parameters if config is not None else Params.defaults())
        #: SS_REPLY_UNAUTHORIZED of _params, read when they change, not per response (a
        #: Params lookup is an interpreted call; docs/benchmarks.md, thirty-seventh round).
        self._reply_unauthorized = bool(self._params["SS_REPLY_UNAUTHORIZED"])
        self._params_listeners: list[ParamsListener] = []
        self.trace = trace if trace is not None else Trace(clock=clock)
        if self.trace.clock is None:
            self.trace.clock = clock
        self.store = store
        self._sender = sender
        self.stats = CoreStats()
        self.transactions = TransactionLayer(clock, TimerSettings.from_params(self.params),
                                             self._transmit_message,
                                             max_servers=self.limits.max_server_transactions)
        self.source_limiter = SourceLimiter(self.limits, self.trusted_source,
                                            on_unblock=self._source_unblocked)
        self.overload = OverloadGate(self.limits)
        self._overload_reason = ""
        #: Initial INVITE transactions, pruned of answered ones when counted (calls in setup).
        self._invites_in_setup: list[ServerTransaction] = []
        #: ``known(host)`` predicates: besides trusted gateways, whose requests are answered
        #: with SS_REPLY_UNAUTHORIZED=Off (the registrar adds "has a live binding").
        self.known_sources: list[Callable[[str], bool]] = []
        #: Local (host, port) per transport, set by the runtime once sockets are bound.
        self.local_addresses: dict[str, Address] = {}
        self._handlers: dict[str, RequestHandler] = {}
        self._allow_cache: tuple[tuple[str, ...], str] | None = None
        #: Stream peer → where to connect for a response when its connection has closed
        #: (§18.2.2); read by the TCP transport, bounded to the 10,000 newest peers.
        self.reply_fallback: dict[Address, Address] = {}
        self._ack_handlers: list[AckHandler] = []
        self._stray_handlers: list[StrayResponseHandler] = []
        self._start_hooks: list[Callable[[], None]] = []
        self._stop_hooks: list[StopHook] = []
        self._pending_stop: list[Callable[[], bool]] = []
        self.running = False
        #: The listener of every server transaction: one bound method, not a new one for each
        #: (it lived as long as its transaction, 64*T1).
        self._server_listener: Callable[[TUEvent], None] = self._server_event

    # ------------------------------------------------------------------ plug-in API
    def add_request_handler(self, method: str, handler: RequestHandler) -> None:
        """Serve ``method`` (e.g. "REGISTER") with ``handler(request, txn)``.

        The handler must end the transaction with ``txn.respond(...)`` or ``txn.drop()``
        (possibly later, e.g. from a timer); an exception escaping it is answered 500.
        """
        method = method.upper()
        if method in ("ACK", "CANCEL"):
            raise ValueError(f"{method} is handled by the transaction layer; use "
                             "add_ack_handler / ServerTransaction.add_cancel_listener")
        if method in self._handlers:
            raise ValueError(f"a handler for {method} is already registered")
        self._handlers[method] = handler

    def remove_request_handler(self, method: str) -> None:
        self._handlers.pop(method.upper(), None)

    def add_ack_handler(self, handler: AckHandler) -> None:
        self._ack_handlers.append(handler)

    def add_stray_response_handler(self, handler: StrayResponseHandler) -> None:
        self._stray_handlers.append(handler)

    def add_start_hook(self, hook: Callable[[], None]) -> None:
        self._start_hooks.append(hook)

    def add_stop_hook(self, hook: StopHook) -> None:
        """``hook()`` runs on a graceful stop, before transports close; it may return a
        ``done()`` predicate the runtime waits on (bounded)."""
        self._stop_hooks.append(hook)

    def attach_sender(self, sender: Sender) -> None:
        self._sender = sender

    # ------------------------------------------------------------------ parameters
    @property
    def params(self) -> Params:
        """The parameters *new* sessions and transactions start with (docs/behaviour.md §1)."""
        return self._params

    @params.setter
    def params(self, params: Params) -> None:
        self.update_params(params)

    def add_params_listener(self, listener: ParamsListener) -> None:
        """``listener(params, changes)`` after every :meth:`update_params` that changed
        something; ``changes`` is ``{name: (old, new)}``."""
        self._params_listeners.append(listener)

    def update_params(self, params: Params, *, by: str | None = None
                      ) -> dict[str, tuple[Any, Any]]:
        """Switch to ``params`` for new sessions: the one way parameters change at run time.

        Open transactions, auth sessions and registrations keep the values they started with;
        new transactions get the new T1 (SS_SIP_RESEND_INTERVAL) and the features are told
        through their listeners (e.g. the auth policy). ``by`` names who changed them
        ("store" = reloaded from the store, "control", "lab", ...) for the trace event.
        Returns ``{name: (old, new)}``, empty when nothing changed.
        """
        if not isinstance(params, Params):
            raise TypeError(f"expected Params, got {type(params).__name__}")
        old = self._params
        changes = {name: (old[name], value) for name, value in params.items()
                   if old[name] != value}
        self._params = params
        self._reply_unauthorized = bool(params["SS_REPLY_UNAUTHORIZED"])
        if not changes:
            return changes
        if "SS_SIP_RESEND_INTERVAL" in changes:
            self.transactions.set_timers(TimerSettings.from_params(params))
        for listener in list(self._params_listeners):
            try:
                listener(params, changes)
            except Exception:
                log.exception("parameter listener %r failed", listener)
        listing = ", ".join(f"{name} {REGISTRY[name].format(a)}→{REGISTRY[name].format(b)}"
                            for name, (a, b) in changes.items())
        if by == "store":
            self.trace.event(f"parameters reloaded: {listing}")
        else:
            self.trace.event(f"parameters changed{f' by {by}' if by else ''}: {listing}")
        log.info("parameters changed (%s): %s", by or "api", listing)
        return changes

    @property
    def allow_header(self) -> str:
        """The Allow header value (cached: OPTIONS is the hot path of keep-alive pings)."""
        methods = tuple(sorted(self._handlers))
        if self._allow_cache is None or self._allow_cache[0] != methods:
            self._allow_cache = (methods, ", ".join(self.allowed_methods))
        return self._allow_cache[1]

    @property
    def allowed_methods(self) -> list[str]:
        """The Allow header: methods the core or a handler serves."""
        served = set(CORE_METHODS) | set(self._handlers)
        return sorted(served, key=lambda m: (m not in ("INVITE", "ACK", "CANCEL", "BYE"), m))

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self.running = True
        for hook in self._start_hooks:
            hook()

    def transport_failed(self, destination: Address, transport: str, reason: str) -> None:
        """The runtime could not reach ``destination`` (e.g. TCP connect refused, §17.1.4)."""
        transport = transport.upper()
        for txn in list(self.transactions.clients.values()):
            if txn.destination == tuple(destination) and txn.transport == transport:
                self.transactions.transport_error(txn, reason)

    def begin_stop(self) -> None:
        """Run the stop hooks (once); then poll :meth:`stop_done` while time passes."""
        if not self.running:
            return
        self.running = False
        self._pending_stop = []
        for hook in self._stop_hooks:
            try:
                done = hook()
            except Exception:
                log.exception("stop hook %r failed", hook)
                self.trace.event(f"stop hook {getattr(hook, '__name__', hook)!s} failed")
                continue
            if done is not None:
                self._pending_stop.append(done)

    def stop_done(self) -> bool:
        return all(done() for done in self._pending_stop)

    # ------------------------------------------------------------------ outbound
    def local_address(self, transport: str = "UDP") -> Address:
        transport = transport.upper()
        if transport in self.local_addresses:
            return self.local_addresses[transport]
        if self.local_addresses:
            return next(iter(self.local_addresses.values()))
        if self.config is not None:
            return (self.config.switch.sip_host, self.config.switch.sip_port)
        return ("127.0.0.1", 5060)

    def new_via(self, transport: str = "UDP") -> str:
        """A Via value for a request this switch originates (new branch, rport per RFC 3581)."""
        return str(self.new_top_via(transport))

    def new_top_via(self, transport: str = "UDP") -> Via:
        """:meth:`new_via` as a :class:`Via`, built directly (the call path needs one for
        every request it sends; formatting then parsing the text cost ~60 us each)."""
        host, port = self.local_address(transport)
        return Via(transport.upper(), host, port, {"branch": new_branch(), "rport": None})

    def send_request(self, request: Request, destination: Address, transport: str = "UDP",
                     listener: Listener | None = None) -> ClientTransaction:
        """Send ``request`` in a new client transaction; ``listener`` receives
        DeliverResponse / TimedOut / TransportFailed / Terminated events."""
        return self.transactions.send_request(request, as_address(destination), transport.upper(),
                                              listener)

    def send_stateless(self, message: Request | Response, destination: Address,
                       transport: str = "UDP") -> None:
        """Send outside any transaction (ACK for a 2xx §13.2.2.4, 2xx retransmission, keep-alive)."""
        self._transmit_message(message, as_address(destination), transport.upper())

    def send_raw(self, data: bytes, destination: Address, transport: str = "UDP",
                 note: str = "") -> None:
        """Send bytes as they are: not SIP (NAT keep-alive payload,
        SS_SIP_NAT_KEEP_ALIVE_MESSAGE), or a message serialized before (an ended call's ACK)."""
        self._send(data, as_address(destination), transport.upper(), note)

    def _transmit_message(self, message: Request | Response | SentResponse,
                          destination: Address, transport: str) -> None:
        # the bytes a SentResponse holds, or the writer called directly: bytes() of either
        # would look __bytes__ up through the type first (~600 instructions a message)
        data = message.data if isinstance(message, SentResponse) else message.__bytes__()
        self._send(data, destination, transport, "")

    def _send(self, data: bytes, destination: Address, transport: str, note: str) -> None:
        # Compiled, an Address is a pair kept unboxed, and each call of code that takes an
        # object made a new tuple and port int of it: the destination is boxed once, for the
        # trace and the sender both, and the local address read as the table holds it.
        boxed: AddressObject = destination
        local: AddressObject | None = self.local_addresses.get(transport)
        if local is None:
            local = self.local_address(transport)
        self.trace.message("out", transport, local, boxed, data, note)
        if self._sender is None:
            raise OSError("no transport attached to the switch core")
        try:
            self._sender(data, boxed, transport)
        except OSError as exc:
            self.stats.send_errors += 1
            self.trace.event(f"send to {destination[0]}:{destination[1]} failed: {exc}",
                             transport=transport, dst=destination)
            raise
        self.stats.sent += 1

    # ------------------------------------------------------------------ inbound
    def receive(self, data: bytes, source: Address, transport: str,
                local: Address | None = None) -> None:
        """One datagram or one framed stream message. Never raises on bad input."""
        transport = transport.upper()
        source = (source[0], int(source[1]))
        local = local if local is not None else self.local_address(transport)
        self.stats.received += 1
        admission = self.source_limiter.check(source[0], self.clock.now())
        if admission is not Admission.ADMIT:
            self.stats.flood_dropped += 1
            if admission is Admission.TRIPPED:
                self._source_tripped(source, transport)
            return  # dropped unparsed: the cheapest answer to a flood is none
        # CRLF keep-alives (RFC 5626 §3.5.1) are not messages. A message starts with a token,
        # so only data that starts blank is looked at whole: strip() copied every message
        # (its final CRLF stripped).
        if not data or (data[0] in _BLANK_BYTES and not data.strip(_BLANK)):
            return
        try:
            message = parse(data)
        except SipParseError as exc:
            self.stats.parse_errors += 1
            self.trace.message("in", transport, source, local, data, note=f"unparsable: {exc}")
            self._answer_unparsable(data, exc, source, transport)
            return
        except Exception as exc:
            self.stats.parse_errors += 1
            log.exception("parser failed unexpectedly")
            self.trace.message("in", transport, source, local, data,
                               note=f"parser failure: {exc!r}")
            return
        try:
            top_via = message.top_via  # parsed once, used for matching and routing
        except Exception:  # noqa: BLE001 - reported as a 400 below
            top_via = None
        self.trace.message("in", transport, source, local, data)
        try:
            if isinstance(message, Response):
                if transport == "UDP" and not self._sent_by_us(top_via):
                    self._drop_foreign_response(message, top_via, source, transport)
                    return
                self._receive_response(message, source, transport)
            else:
                self._receive_request(message, source, transport, top_via, local)
        except Exception as exc:
            log.exception("handling a %s from %s failed", _describe(message), source)
            self.trace.event(f"internal error handling {_describe(message)}: {exc!r}",
                             src=source, transport=transport)

    def _sent_by_us(self, via: Via | None) -> bool:
        """RFC 3261 §18.1.2: does the top Via's sent-by name this switch?

        "Ours" is what :meth:`new_via` writes: a (host, port) of :attr:`local_addresses` (or
        :meth:`local_address`'s fallback when none is bound). The port must be equal (absent
        = 5060); the host must be equal (IP addresses compared as addresses, names
        case-insensitively) unless our socket is bound to a wildcard address (0.0.0.0, ::,
        empty), where any host matches: the Via then carries whichever address the runtime
        wrote and the bound one says nothing.
        """
        if via is None:
            return False
        port = via.port or 5060
        host = str(via.host or "").strip("[]")
        candidates = set(self.local_addresses.values()) or {self.local_address("UDP")}
        for our_host, our_port in candidates:
            if int(our_port) != port:
                continue
            our_host = str(our_host).strip("[]")
            if our_host in _WILDCARD_HOSTS or same_host(our_host, host):
                return True
        return False

    def _drop_foreign_response(self, response: Response, via: Via | None, source: Address,
                               transport: str) -> None:
        sent_by = f"{via.host}:{via.port or 5060}" if via is not None else "(no Via)"
        self.trace.event(f"response dropped: top Via sent-by {sent_by} is not this switch "
                         "(RFC 3261 §18.1.2)", src=source, transport=transport,
                         call_id=_safe(response, "call_id"))

    def _receive_response(self, response: Response, source: Address, transport: str) -> None:
        if self.transactions.receive_response(response) is not None:
            return
        if self._stray_handlers:
            for handler in self._stray_handlers:
                handler(response, source, transport)
        else:
            self.trace.event("stray response discarded (no matching client transaction)",
                             src=source, transport=transport, call_id=_safe(response, "call_id"))

    def _receive_request(self, request: Request, source: Address, transport: str,
                         top_via: Via | None, local: Address) -> None:
        # parse() has already checked From, To, Call-ID, CSeq and its method (§8.1.1, §8.2.2).
        if top_via is None:
            self._reply_stateless(request, 400, "Missing Via", source, transport)
            return
        top_via = _stamp_via(request, source, top_via)
        key = server_key(request, top_via)
        existing = self.transactions.match_request(request, key)
        if existing is not None:
            self.stats.retransmissions_absorbed += request.method != "ACK"
            self.transactions.receive_retransmission(existing, request)
            return
        if request.method == "ACK":
            # §17.2.3 / §13.2.2.4: an ACK matching no transaction acknowledges a 2xx: the TU's.
            for handler in self._ack_handlers:
                handler(request, source, transport)
            return
        reply_to = response_address(request, source, transport, top_via)
        if transport in RELIABLE_TRANSPORTS:
            # §18.2.2: if the connection is gone when the response is ready, connect to the
            # received address and the sent-by port instead of the peer's ephemeral port.
            self.reply_fallback[source] = (source[0], top_via.port or 5060)
            if len(self.reply_fallback) > 10_000:
                self.reply_fallback.pop(next(iter(self.reply_fallback)))
        txn = self.transactions.create_server(request, reply_to, transport, source, key,
                                              begin=False)
        txn.local = local
        txn.add_listener(self._server_listener)
        try:
            self._dispatch(request, txn, key, source)
        finally:
            # The abandon timer only for a request still unanswered (most are answered now).
            self.transactions.begin_server(txn)

    def _dispatch(self, request: Request, txn: ServerTransaction, key: tuple[Any, ...],
                  source: Address) -> None:
        if (request.method == "INVITE" and request.to_tag is None
                and self._refused_for_overload(request, txn)):
            return
        max_forwards = request.max_forwards
        if max_forwards is not None and max_forwards <= 0 and request.method != "OPTIONS":
            self._answer(txn, self.make_response(request, 483))
            return
        if request.method == "CANCEL":
            self._receive_cancel(request, txn, key)
            return
        handler = self._handlers.get(request.method)
        if handler is None and request.method != "OPTIONS":
            self._default_handler(request, txn)  # §8.2.1 method inspection comes first
            return
        refusal = self._inspect_headers(request)
        if refusal is not None:
            self._answer(txn, refusal)
            return
        if handler is None:
            self._default_handler(request, txn)
            return
        try:
            handler(request, txn)
        except Exception as exc:
            log.exception("%s handler failed", request.method)
            self.trace.event(f"{request.method} handler failed: {exc!r}", src=source,
                             call_id=request.call_id)
            if not txn.final_sent and not txn.dropped and not txn.terminated:
                txn.respond(self.make_response(request, 500))

    def _inspect_headers(self, request: Request) -> Response | None:
        """RFC 3261 §8.2.2, before any handler (routing, auth) sees the request: 416 for a
        Request-URI scheme the switch does not serve, 420 with Unsupported for an option
        tag it does not implement, 400 for a REGISTER whose To is no SIP/SIPS URI (§10.3:
        only those are addresses of record; RFC 4475 unksm2)."""
        if request.uri_scheme not in SUPPORTED_URI_SCHEMES:
            return self.make_response(request, 416)
        required = request.headers.get_list("Require")
        if required:  # (most requests have none: no comprehension to call then)
            unsupported = [tag for tag in required if tag.lower() not in SUPPORTED_OPTION_TAGS]
            if unsupported:
                response = self.make_response(request, 420)
                response.headers.add("Unsupported", ", ".join(unsupported))
                return response
        if request.method == "REGISTER" and not isinstance(request.to_uri, SipUri):
            return self.make_response(request, 400, "Bad Request (To is not a SIP URI)")
        return None

    def _server_event(self, event: TUEvent) -> None:
        if isinstance(event, TimedOut):
            self.trace.event(f"server transaction gave up: Timer {event.timer.value} "
                             "(no final response from the handler, or no ACK)")

    def _default_handler(self, request: Request, txn: ServerTransaction) -> None:
        if request.method == "OPTIONS":
            self._answer(txn, self.options_response(request))
        elif request.method in KNOWN_METHODS:
            response = self.make_response(request, 405)
            response.headers.add("Allow", self.allow_header)
            self._answer(txn, response)
        else:
            self._answer(txn, self.make_response(request, 501))

    def _answer(self, txn: ServerTransaction, response: Response) -> None:
        """Send an answer the core makes itself -- or nothing at all, docs/behaviour.md §2.1: with
        SS_REPLY_UNAUTHORIZED=Off a source that is neither a trusted gateway nor a registered
        binding gets no response (OPTIONS included), so a scanner learns nothing."""
        if self._stealthy_towards(txn.source[0]):
            txn.drop()
            return
        txn.respond(response)

    def _stealthy_towards(self, host: str) -> bool:
        if self._reply_unauthorized or self.known_source(host):
            return False
        self.stats.stealth_dropped += 1
        return True

    def trusted_source(self, host: str) -> bool:
        """A trusted gateway: in a mapping gateway's ``addresses`` or a routing gateway's host."""
        config = self.config
        if config is None:
            return False
        if any(gateway.host == host for gateway in config.routing_gateways):
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for gateway in config.mapping_gateways
                   for network in gateway.addresses)

    def known_source(self, host: str) -> bool:
        """A trusted gateway or a source a feature vouches for (a registered binding)."""
        return self.trusted_source(host) or any(known(host) for known in self.known_sources)

    def _source_tripped(self, source: Address, transport: str) -> None:
        limits = self.limits
        text = (f"flood: {source[0]} sent more than {limits.source_threshold} messages in "
                f"{limits.source_window:g} s; dropped for {limits.source_block:g} s after its "
                "flood stops ([limits] source_threshold)")
        log.warning("%s", text)
        self.trace.event(text, src=source, transport=transport)

    def _source_unblocked(self, host: str, dropped: int) -> None:
        text = f"flood: {host} unblocked after {dropped} message(s) dropped"
        log.warning("%s", text)
        self.trace.event(text)

    def _refused_for_overload(self, invite: Request, txn: ServerTransaction) -> bool:
        """RFC 3261 §21.5.4 load shedding: 503 + Retry-After for a new INVITE past capacity,
        before routing, authentication or media (vosapp.switch.limits)."""
        reason = self.overload.overloaded(self._calls_in_setup())
        if bool(reason) != bool(self._overload_reason):  # traced when it starts and ends
            text = (f"overload: new INVITEs answered 503 (Retry-After "
                    f"{self.limits.retry_after} s): {reason}" if reason else
                    f"overload over: {self.stats.overload_refused} INVITE(s) refused so far")
            log.warning("%s", text)
            self.trace.event(text)
            self._overload_reason = reason
        if not reason:
            self._invites_in_setup.append(txn)
            return False
        self.stats.overload_refused += 1
        response = self.make_response(invite, 503)
        response.headers.add("Retry-After", str(self.limits.retry_after))
        txn.respond(response)
        return True

    def _calls_in_setup(self) -> int:
        setup = self._invites_in_setup
        # Exact from the smallest count a decision depends on; below it, an upper bound.
        if len(setup) >= min(SHED_FLOOR, self.limits.max_calls_in_setup or SHED_FLOOR):
            setup[:] = [txn for txn in setup
                        if not (txn.final_sent or txn.dropped or txn.terminated)]
        return len(setup)

    def _receive_cancel(self, cancel: Request, txn: ServerTransaction,
                        key: tuple[Any, ...]) -> None:
        invite = self.transactions.find_invite_for_cancel(cancel, key)
        if invite is None:
            self._answer(txn, self.make_response(cancel, 481))  # §9.2
            return
        txn.respond(self.make_response(cancel, 200))
        if invite.final_sent or invite.dropped or invite.terminated:
            return
        if invite.cancel_listeners:
            for listener in list(invite.cancel_listeners):
                listener(cancel)
        else:  # §9.2: nobody is working on the INVITE; the UAS answers 487 itself
            invite.respond(self.make_response(invite.request, 487))

    # ------------------------------------------------------------------ responses
    def make_response(self, request: Request, status: int, reason: str | None = None) -> Response:
        """A response with the §8.2.6 copied headers, a To tag for final answers, Server."""
        # make_response adds the tag only when To has none (§8.2.6.2); 100 never gets one.
        to_tag = new_tag() if status > 100 else None
        response = make_response(request, status, reason, to_tag=to_tag)
        response.headers.add("Server", SERVER_NAME)  # make_response copies only §8.2.6 headers
        return response

    def options_response(self, request: Request) -> Response:
        """§11.2: 200 with Allow, Accept, Supported (and Accept-Encoding/Language)."""
        response = self.make_response(request, 200)
        headers = response.headers
        headers.add("Allow", self.allow_header)
        headers.add("Accept", ACCEPT)
        headers.add("Accept-Encoding", "identity")
        headers.add("Accept-Language", "en")
        headers.add("Supported", ", ".join(SUPPORTED_OPTION_TAGS))
        return response

    def _reply_stateless(self, request: Request, status: int, reason: str, source: Address,
                         transport: str) -> None:
        """Answer a request too broken for a transaction, when the headers allow it (§8.2)."""
        if request.method == "ACK" or self._stealthy_towards(source[0]):
            return  # ACK is never answered; nothing for unknown sources when Off
        try:
            response = self.make_response(request, status, reason)
            self._send(bytes(response), response_address(request, source, transport),
                       transport, "stateless")
        except Exception as exc:  # noqa: BLE001 - without Via/CSeq no response is possible
            self.trace.event(f"no {status} possible for a broken request: {exc}", src=source,
                             transport=transport)

    def _answer_unparsable(self, data: bytes, error: SipParseError, source: Address,
                           transport: str) -> None:
        """§8.2/§21.4.1: answer 400 (or the status the parser asks: 505, 413, 416 …) where a
        response can be addressed: a request line (not a response, not an ACK) and a readable
        top Via, From, To, Call-ID and CSeq. Anything else is dropped (and traced)."""
        first_line = data.split(b"\n", 1)[0]
        response = None
        reason = "not a request"
        if _REQUEST_LINE.match(first_line) and not first_line.startswith(b"ACK "):
            try:
                response = make_error_response(error)
                if response is not None:
                    top = parse_vias(response.headers.get_all("Via")[0])[0]
            except Exception as exc:  # noqa: BLE001 - a malformed partial header block
                response, reason = None, f"unreadable Via ({exc})"
            else:
                reason = "missing Via/From/To/Call-ID/CSeq"
        if response is not None and self._stealthy_towards(source[0]):
            response, reason = None, "SS_REPLY_UNAUTHORIZED=Off, unknown source"
        if response is None:
            self.trace.event(f"unparsable message dropped, no response possible ({reason}): "
                             f"{error}", src=source, transport=transport)
            return
        response.headers.add("Server", SERVER_NAME)
        port = source[1] if (top.rport is not None or transport in RELIABLE_TRANSPORTS) \
            else (top.port or 5060)
        self._send(bytes(response), (source[0], port), transport, "stateless")


# ---------------------------------------------------------------------- helpers


_WILDCARD_HOSTS: Final = frozenset({"", "0.0.0.0", "::"})


def _describe(message: Any) -> str:
    status = getattr(message, "status", None)
    return str(status) if status is not None else str(getattr(message, "method", "?"))


def _safe(message: Any, attribute: str) -> Any:
    try:
        return getattr(message, attribute)
    except Exception:  # noqa: BLE001
        return None


def _stamp_via(request: Request, source: Address, top: Via) -> Via:
    """§18.2.1 + RFC 3581 §4: add ``received`` and fill ``rport`` on the top Via.

    Returns the (possibly updated) top Via; the request's first Via line is rewritten.
    """
    params = top.params
    stamp_received = top.host != source[0]
    fill_rport = "rport" in params and params["rport"] is None
    if not (stamp_received or fill_rport):
        return top
    first = request.headers.get("Via") or ""
    # The text as sent when it reads as str(top) would write it (each parameter once, no
    # received yet): the flag becomes rport=PORT where it stands and received goes last,
    # where the dict update below puts it; the same text as str(top) afterwards, without
    # formatting every parameter again (the usual phone and SIPp Via).
    raw_stampable = ("received" not in params and len(params) == first.count(";")
                     and VIAS_MEMO.written_as_parsed(first))
    params["received"] = source[0]
    if fill_rport:
        params["rport"] = str(source[1])
    if raw_stampable:
        if fill_rport:
            at = (first + ";").index(";rport;")  # present: "rport" is a parameter of first
            first = f"{first[:at]};rport={source[1]}{first[at + 6:]}"
        stamped = f"{first};received={source[0]}"
    elif "," in first:  # several Via values on the first line: keep the others as sent
        rest = parse_vias(first)[1:]
        stamped = ", ".join(str(via) for via in [top, *rest])
    else:
        stamped = str(top)
    # Only the first Via line changes; the others keep their position and bytes.
    request.headers.replace_first("Via", stamped)
    return top


def response_address(request: Request, source: Address, transport: str,
                     top_via: Via | None = None) -> Address:
    """§18.2.2 with RFC 3581: where responses to ``request`` go.

    Reliable transports answer over the connection the request came on (the source). For UDP:
    the ``received`` address (always the packet's source when it differs from sent-by) and the
    ``rport`` (the source port) when the client asked for it, else the sent-by port or 5060.

    A Via ``maddr`` is ignored (as Kamailio and OpenSIPS do): honouring it (§18.2.2) would let
    any packet aim a response at a third address (reflection) or, with a host name, make the
    switch resolve DNS inside its event loop. Responses only ever go to the packet's source IP.
    """
    if transport.upper() in RELIABLE_TRANSPORTS:
        return source
    top = top_via if top_via is not None else request.top_via
    if top.rport is not None:
        return (source[0], source[1])
    return (source[0], top.port or 5060)


__all__ = [
    "KNOWN_METHODS", "SUPPORTED_OPTION_TAGS", "AckHandler", "CoreStats", "RequestHandler", "Sender", "StopHook",
    "StrayResponseHandler", "SwitchCore", "TransactionError", "response_address",
]
