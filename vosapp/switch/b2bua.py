"""The call feature (docs/behaviour.md §4–§6): a back-to-back user agent between a mapping gateway
(the caller, leg "a") and routing gateways (the vendor, leg "b").

Theory of operation
-------------------
An INVITE without a To tag from a mapping gateway starts a :class:`Call`. The caller is a
*trusted* mapping gateway when the source address is in its ``addresses`` (no digest,
docs/behaviour.md §2.1); otherwise the registrar feature's
:class:`~vosapp.switch.auth.InboundAuthenticator` challenges it (401/407, 403, or silence with
SS_REPLY_UNAUTHORIZED=Off) and the account must belong to a mapping gateway. 100 Trying goes out at
once.

Routing (:mod:`vosapp.switch.routing`) gives the routing gateways in order (longest prefix,
priority, config order). Each *attempt* is a new INVITE (new Call-ID, From tag, Via branch;
From/To user parts kept) sent in its own client transaction; the legs exchange call-control
events (trying, progress, answer, failure) rather than raw SIP, as in Sippy's B2BUA.

Failover rule (vosapp's choice; the sources only say "on error"): 408, 480 and every 5xx
from a gateway, a transaction timeout/transport failure, and SS_SIP_TIMEOUT_INVITE expiring
without any response, move the call to the next gateway. Every other final status (3xx, 4xx
such as 404/486/487/488, 6xx) is final for routing and is relayed to the caller. With
SS_SIP_USER_AGENT_STOP_SWITCH_AFTER_INVITE_TIMEOUT=On an INVITE timeout ends the call (408)
instead. When every gateway failed the caller gets 503; no route at all gives 404.

Call-progress timeouts (per attempt, parameters read when the call starts, docs/behaviour.md §1):
after 100 Trying with no further progress SS_SIP_TIMEOUT_TRYING; after 180 SS_SIP_TIMEOUT_RINGING;
after 183 without SDP SS_SIP_TIMEOUT_SESSION_PROGRESS, with SDP ..._SESSION_PROGRESS_SDP.
Expiry cancels the vendor leg and ends the call with 408 (no failover: the vendor did answer).

Dialog handling: provisional and final responses are relayed with one To tag of ours on the
caller's side. A 2xx from the vendor is ACKed by the switch (at once when the caller's INVITE
carried the offer; with a late offer when the caller's ACK brings the answer), and the 2xx to
the caller is retransmitted until its ACK (§13.3.1.4). CANCEL from the caller: 487 to the
caller and CANCEL to the vendor (deferred until the vendor sent a provisional, §9.1; a late 2xx
is ACKed and BYEd). BYE from either side: 200, and BYE on the other leg. re-INVITE, INFO and
UPDATE are relayed on the other leg's dialog and the answer relayed back (SDP untouched when
the media flows end to end); with the media proxy in the path the switch answers a re-INVITE
itself with the relay's SDP and re-latches the leg (the other leg is not disturbed).

Media (docs/behaviour.md §5) — :class:`MediaPlan`: with both gateways on Auto negotiation and no
reason to relay, the SDP passes through untouched. The relay (media proxy) is used when either
gateway says media_proxy=On, or (neither says Off and) transcoding or DTMF conversion is needed, or
the caller's SDP address differs from its signalling source (NAT). Softswitch specified offers each
side only its gateway's codec; two different specified codecs need Allow codec conversion on
both gateways and a relay, else 488 with a Warning saying why. Relays come from a
:class:`MediaBackend` (the asyncio one in :mod:`vosapp.io.call_media`, which the runtime leaves
on the core as ``media_backend_factory``: this module never imports ``vosapp.io``) and are
closed when the call ends.

Session timers (RFC 4028), per leg: the vendor INVITE offers ``Session-Expires:
SS_SIP_SESSION_TTL`` with ``Supported: timer``; the vendor's 2xx decides the refresher
(refresher=uac or none → the switch; uas → the vendor). On the caller leg the caller's own
Session-Expires is accepted with it as refresher (``Require: timer`` in the 200); a
timer-capable caller without one gets the switch as refresher. The refresher side sends a
re-INVITE with the SDP last sent on that leg every interval / SS_SIP_SESSION_UPDATE_SEGMENT;
the watching side hangs up when no refresh came within interval - min(32, interval/3) (§10).
An unanswered refresh (or 408/481) hangs up at once with SS_SIP_SESSION_TIMEOUT_EARLY_HANGUP=On,
else when the session expires. Legs without session timers get a liveness re-INVITE every
SS_SIP_NO_TIMER_REINVITE_INTERVAL seconds when that is set (no answer → hang up). Each leg's
timer is independent (a refresh on one leg is not forwarded as such).

A 422 (Session Interval Too Small) with a larger Min-SE is retried once on the same gateway
(same Call-ID, new CSeq) with Session-Expires and Min-SE raised to it (§6); not a failover.

G.729 modes (docs/behaviour.md §5, each gateway's ``g729_mode``) apply to the SDP the switch writes:
the vendor offer (built by the relay; forwarded or restricted without it, only ``G729``'s
``annexb=no`` is applied since RTP then uses the caller's payload types) per the routing
gateway (:func:`g729_codecs`, :func:`g729_rewrite_offer`,
:func:`vosapp.sip.sdp.g729_offer`), the relay's answer to the caller per the mapping gateway
(:func:`vosapp.sip.sdp.answer` ``g729_mode``). Without the relay the vendor's answer reaches
the caller unchanged.

Not done: PRACK/100rel, forking (only the first early dialog of the vendor is followed), 2xx
retransmission for relayed re-INVITEs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

from vosapp.sip import CSeq, NameAddr, Request, Response, SipUri, make_response, new_tag, parse_vias
from vosapp.sip.dialog import Dialog, DialogError
from vosapp.sip.sdp import (
    G722,
    G723,
    G729,
    PCMA,
    PCMU,
    Answer,
    Attribute,
    Codec,
    SdpError,
    SessionDescription,
    answer,
    build_offer,
    g729_offer,
    read_answer,
)
from vosapp.sip.transaction import DeliverRequest, DeliverResponse, TimedOut, TransportFailed
from vosapp.switch.cdr import CdrRecord, CdrWriter
from vosapp.switch.routing import Caller, best_prefix, gateway_by_account, gateway_by_address
from vosapp.switch.routing import route as route_number

if TYPE_CHECKING:
    from vosapp.config import RoutingGateway
    from vosapp.params import GatewaySettings
    from vosapp.sip.transaction import ClientTransaction, ServerTransaction
    from vosapp.switch.core import SwitchCore

log = logging.getLogger(__name__)

Address = tuple[str, int]

#: Statuses after which the next routing gateway is tried (see the module docstring).
FAILOVER_STATUSES = frozenset({408, 480})
SDP = "application/sdp"
SPECIFIED: dict[str, Codec] = {"PCMA": PCMA, "PCMU": PCMU, "G729": G729, "G723": G723,
                               "G722": G722}
#: sdp encoding family -> vosapp.media.codecs name
MEDIA_CODEC = {"pcma": "PCMA", "pcmu": "PCMU", "g729": "G729", "g723": "G723", "g722": "G722"}


def is_failover(status: int) -> bool:
    """Whether a final status from a routing gateway moves the call to the next gateway."""
    return status in FAILOVER_STATUSES or 500 <= status <= 599


# ------------------------------------------------------------------------------ media


class MediaRefused(Exception):
    """The call cannot get media as configured: answer 488 with this reason (Warning 305)."""


@dataclass(frozen=True)
class LegSpec:
    """One leg of a relay, as negotiated (the backend turns it into its own leg config)."""

    codec: str  # vosapp.media.codecs name
    ptime: int
    payload_type: int
    dtmf_payload_type: int | None
    remote: Address | None


class MediaSession(Protocol):
    local_a: Address
    local_b: Address

    def start(self, a: LegSpec, b: LegSpec, *, dtmf: dict[str, Any],
              on_info_send: Callable[[str, Any], None] | None) -> str: ...

    def info_received(self, side: str, content_type: str, body: bytes) -> None: ...

    def relatch(self, side: str, remote: Address | None) -> None: ...

    def dtmf_methods(self) -> list[str]: ...

    def close(self) -> None: ...


class MediaBackend(Protocol):
    def allocate(self) -> MediaSession: ...


@dataclass
class MediaPlan:
    """How one attempt's media is handled (decided before the vendor INVITE is sent)."""

    relay: bool
    transcode: bool
    reason: str
    a_codecs: list[Codec]  # what the caller may be answered with
    b_codecs: list[Codec] | None  # offered to the vendor (None: the caller's offer as is)
    dtmf_conversion: bool = False


def _specified_codec(settings: GatewaySettings) -> Codec:
    codec = SPECIFIED[settings.specified_codec]
    if codec is G729 and settings.g729_mode == "G729":
        codec = replace(codec, fmtp="annexb=no")  # docs/behaviour.md §5: G729 mode = no Annex B
    return codec


def _family(codec: Codec) -> str:
    return codec.family


def _dtmf_needs_conversion(settings: GatewaySettings) -> bool:
    return settings.dtmf_send in ("SIP INFO", "Inband") or settings.dtmf_receive in (
        "SIP INFO", "Inband")


def plan_media(offer: SessionDescription | None, source_host: str, mapping: GatewaySettings,
               routing: GatewaySettings) -> MediaPlan:
    """docs/behaviour.md §5 for one attempt; raises :class:`MediaRefused` when the call cannot
    proceed."""
    offered: list[Codec] = []
    audio = offer.first_audio() if offer is not None else None
    if audio is not None:
        offered = [c for c in audio.codecs() if c.encoding.lower() != "telephone-event"]
    supported = [c for c in offered if c.family in MEDIA_CODEC]
    if mapping.codec_mode == "Softswitch specified":
        wanted = _specified_codec(mapping)
        a_codecs = [c for c in offered if c.matches(wanted, g729_variants=True)]
        if offer is not None and not a_codecs:
            raise MediaRefused(f"the caller did not offer its gateway's specified codec "
                               f"{mapping.specified_codec}")
    else:
        a_codecs = supported or offered
    if routing.codec_mode == "Softswitch specified":
        b_codecs: list[Codec] | None = [_specified_codec(routing)]
    else:
        b_codecs = None if mapping.codec_mode != "Softswitch specified" else [
            replace(c) for c in a_codecs]
    transcode = False
    if b_codecs is not None and a_codecs and not any(
            b.matches(a, g729_variants=True) for b in b_codecs for a in a_codecs):
        transcode = True
        if not (mapping.allow_codec_conversion and routing.allow_codec_conversion):
            raise MediaRefused(
                f"codec conversion needed ({a_codecs[0].encoding} to {b_codecs[0].encoding}) "
                "but Allow codec conversion is off on "
                + ("both gateways" if not (mapping.allow_codec_conversion
                                           or routing.allow_codec_conversion)
                   else "the " + ("mapping" if not mapping.allow_codec_conversion
                                  else "routing") + " gateway"))
        if "Off" in (mapping.media_proxy, routing.media_proxy):
            raise MediaRefused("codec conversion needs the media proxy, which is Off")
        if not supported:
            raise MediaRefused("no codec of the caller's offer can be transcoded")
        a_codecs = [c for c in a_codecs if c.family in MEDIA_CODEC]
    reason = ""
    if "On" in (mapping.media_proxy, routing.media_proxy):
        reason = "media proxy On"
    elif "Off" not in (mapping.media_proxy, routing.media_proxy):
        if transcode:
            reason = "transcoding"
        elif _dtmf_needs_conversion(mapping) or _dtmf_needs_conversion(routing):
            reason = "DTMF conversion"
        elif offer is not None and audio is not None:
            connection = offer.connection_of(audio)
            if connection is not None and connection.address.split("/")[0] != source_host:
                reason = "caller SDP address differs from its signalling source (NAT)"
    relay = bool(reason) and offer is not None
    if relay and not transcode:
        if not supported:
            raise MediaRefused("no codec of the caller's offer can be relayed")
        a_codecs = [c for c in a_codecs if c.family in MEDIA_CODEC] or a_codecs
        if b_codecs is None:
            b_codecs = [replace(c) for c in a_codecs]
    return MediaPlan(relay=relay, transcode=transcode, reason=reason, a_codecs=a_codecs,
                     b_codecs=b_codecs,
                     dtmf_conversion=relay and (_dtmf_needs_conversion(mapping)
                                                or _dtmf_needs_conversion(routing)))


def restrict_offer(offer: SessionDescription, codecs: list[Codec]) -> SessionDescription:
    """The caller's offer with only ``codecs`` (and telephone-event) left on its audio line:
    Softswitch specified without the media proxy (the addresses stay the caller's)."""
    import copy

    result = copy.deepcopy(offer)
    audio = result.first_audio()
    if audio is None:
        return result
    keep = {str(c.payload_type) for c in audio.codecs()
            if c.encoding.lower() == "telephone-event"
            or any(c.matches(w, g729_variants=True) for w in codecs)}
    audio.formats = [f for f in audio.formats if f in keep]
    audio.attributes = [
        a for a in audio.attributes
        if a.name.lower() not in ("rtpmap", "fmtp")
        or (a.value or "").split(" ", 1)[0] in keep]
    return result


def _free_dynamic_pt(used: set[int]) -> int:
    return next(pt for pt in range(96, 128) if pt not in used)


def g729_codecs(codecs: list[Codec], mode: str, peer: list[Codec],
                used: set[int] | None = None) -> list[Codec]:
    """``codecs`` to offer with their G.729 entries replaced per the routing gateway's G.729
    mode (:func:`~vosapp.sip.sdp.g729_offer`); ``peer`` is the caller's offer (Annex B),
    ``used`` payload types a new dynamic one must avoid."""
    if mode == "Auto" or not any(c.family == "g729" for c in codecs):
        return codecs
    taken = {c.payload_type for c in codecs if c.payload_type is not None} | (used or set())
    result: list[Codec] = []
    for codec in codecs:
        if codec.family != "g729":
            result.append(codec)
        elif not any(c.family == "g729" for c in result):
            result.extend(g729_offer(mode, peer, dynamic_pt=_free_dynamic_pt(taken)))
    return result


def g729_rewrite_offer(offer: SessionDescription, mode: str) -> SessionDescription:
    """The caller's offer forwarded without the relay, per the routing gateway's G.729 mode:
    RTP flows end to end, so only payload types the caller offered can be used — ``G729``
    sets ``annexb=no`` on its G.729 entries; the other modes leave them as offered (Annex B
    follows the peer; the second name of G729&G729a needs the relay's own payload type).
    The same object when nothing changes."""
    import copy

    audio = offer.first_audio()
    if mode != "G729" or audio is None:
        return offer
    fmtp = g729_offer(mode)[0].fmtp
    pts = {str(c.payload_type) for c in audio.codecs()
           if c.family == "g729" and c.fmtp != fmtp}
    if not pts:
        return offer
    result = copy.deepcopy(offer)
    audio = result.first_audio()
    assert audio is not None
    attributes: list[Attribute] = []
    for attribute in audio.attributes:
        pt = (attribute.value or "").split(" ", 1)[0]
        name = attribute.name.lower()
        if name == "fmtp" and pt in pts:
            continue
        attributes.append(attribute)
        if name == "rtpmap" and pt in pts:
            attributes.append(Attribute("fmtp", f"{pt} {fmtp}"))
    for pt in pts - {(a.value or "").split(" ", 1)[0] for a in attributes
                     if a.name.lower() == "fmtp"}:
        attributes.append(Attribute("fmtp", f"{pt} {fmtp}"))  # static PT 18 without rtpmap
    audio.attributes = attributes
    return result


# ------------------------------------------------------------------------------ calls


@dataclass
class Attempt:
    gateway: RoutingGateway
    invite: Request
    plan: MediaPlan
    offer: SessionDescription | None  # the SDP we sent the vendor
    txn: ClientTransaction | None = None
    timer: Any = None
    progressed: bool = False  # any 1xx seen (CANCEL allowed, §9.1)
    done: bool = False
    cancel_pending: bool = False
    cancel_sent: bool = False
    retried_422: bool = False  # RFC 4028 §6: one retry with Session-Expires = Min-SE
    media: MediaSession | None = None
    media_started: bool = False
    b_answer: Answer | None = None
    a_answer: Answer | None = None

    @property
    def destination(self) -> Address:
        return (self.gateway.host, self.gateway.port)

    @property
    def transport(self) -> str:
        return self.gateway.transport.upper()


@dataclass
class LegTimer:
    """RFC 4028 on one leg: who refreshes, how often, and the timers."""

    interval: float  # Session-Expires (or the liveness interval)
    we_refresh: bool
    liveness: bool = False  # SS_SIP_NO_TIMER_REINVITE_INTERVAL: no Session-Expires sent
    refresh_handle: Any = None
    expiry_handle: Any = None
    last_ok: float = 0.0
    refreshes: int = 0

    def cancel(self) -> None:
        for handle in (self.refresh_handle, self.expiry_handle):
            if handle is not None:
                handle.cancel()
        self.refresh_handle = self.expiry_handle = None


def session_expires(value: str | None) -> tuple[int, str | None] | None:
    """``Session-Expires: 1800;refresher=uac`` → (1800, "uac"); None when absent/bad."""
    if not value:
        return None
    head, *params = value.split(";")
    try:
        delta = int(head.strip())
    except ValueError:
        return None
    refresher = None
    for param in params:
        name, _, val = param.partition("=")
        if name.strip().lower() == "refresher":
            refresher = val.strip().lower() or None
    return delta, refresher


def _supports_timer(message: Request | Response) -> bool:
    values = message.headers.get_all("Supported") + message.headers.get_all("Require")
    return any(token.strip().lower() == "timer" for v in values for token in v.split(","))


@dataclass
class Call:
    a_invite: Request
    a_txn: ServerTransaction
    a_tag: str
    a_source: Address
    a_transport: str
    caller: Caller
    callee: str
    record: CdrRecord
    offer: SessionDescription | None
    params: Any
    gateways: list[RoutingGateway] = field(default_factory=list)
    index: int = 0
    attempt: Attempt | None = None
    state: str = "routing"  # routing -> confirmed -> ended
    a_dialog: Dialog | None = None
    b_dialog: Dialog | None = None
    b_ack: Request | None = None
    ack_pending: bool = False  # late offer: the vendor's ACK waits for the caller's
    a_final: Response | None = None
    a_retransmit: Any = None
    a_acked: bool = False
    last_failure: str = ""
    media_refused: str = ""
    #: RFC 4028 per leg ("a"/"b"); the SDP last sent on each leg (for refresh re-INVITEs)
    session_timers: dict[str, LegTimer] = field(default_factory=dict)
    sdp_sent: dict[str, bytes] = field(default_factory=dict)

    @property
    def call_id(self) -> str:
        return self.a_invite.call_id


class B2bua:
    """The call feature of one :class:`~vosapp.switch.core.SwitchCore` (``core.b2bua``)."""

    def __init__(self, core: SwitchCore, *, cdr: CdrWriter | None = None,
                 media: MediaBackend | None = None) -> None:
        self.core = core
        self.cdr = cdr if cdr is not None else CdrWriter(core.store)
        self._media = media
        self.calls: dict[str, Call] = {}  # by the caller's Call-ID
        self._byes_pending: set[str] = set()  # Call-IDs of BYEs without a final answer
        #: (Call-ID, our tag) -> (call, side) for in-dialog requests
        self.dialogs: dict[tuple[str, str], tuple[Call, str]] = {}

    # ---------------------------------------------------------------- wiring
    def install(self) -> None:
        core = self.core
        core.add_request_handler("INVITE", self.on_invite)
        core.add_request_handler("BYE", self.on_bye)
        for method in ("INFO", "UPDATE"):
            core.add_request_handler(method, self.on_in_dialog)
        core.add_ack_handler(self.on_ack)
        core.add_stop_hook(self.on_stop)

    @property
    def media(self) -> MediaBackend:
        if self._media is None:
            # Media sockets belong to the runtime (vosapp.io); it leaves a factory on the core.
            factory = self.core.media_backend_factory
            if factory is None:
                raise MediaRefused("this runtime has no media relay (needs the asyncio runtime)")
            self._media = factory(self.core)
        return self._media

    @media.setter
    def media(self, backend: MediaBackend | None) -> None:
        self._media = backend

    def event(self, call: Call, text: str) -> None:
        self.core.trace.event(f"call {call.callee}: {text}", call_id=call.call_id)
        log.info("call %s (%s): %s", call.call_id, call.callee, text)

    # ---------------------------------------------------------------- helpers
    def _via(self, transport: str) -> Any:
        return parse_vias(self.core.new_via(transport))[0]

    def _contact(self, transport: str) -> NameAddr:
        host, port = self.core.local_address(transport)
        return NameAddr(uri=SipUri(host=host, port=port))

    def _a_response(self, call: Call, status: int, reason: str | None = None, *,
                    body: bytes = b"", warning: str | None = None) -> Response:
        response = make_response(call.a_invite, status, reason, to_tag=call.a_tag)
        response.headers.add("Server", "vosapp/0.1")
        if 101 <= status <= 299:
            response.headers.add("Contact", str(self._contact(call.a_transport)))
        if warning:
            host = self.core.local_address(call.a_transport)[0]
            response.headers.add("Warning", f'305 {host} "{warning}"')
        if body:
            response.headers.add("Content-Type", SDP)
            response.body = body
        return response

    def _timer(self, attempt: Attempt, delay: float, callback: Callable[[], None]) -> None:
        if attempt.timer is not None:
            attempt.timer.cancel()
        attempt.timer = self.core.clock.call_later(delay, callback)

    def _stop_timer(self, attempt: Attempt) -> None:
        if attempt.timer is not None:
            attempt.timer.cancel()
            attempt.timer = None

    # ---------------------------------------------------------------- new calls
    def on_invite(self, request: Request, txn: ServerTransaction) -> None:
        if request.to.tag:
            self.on_in_dialog(request, txn)
            return
        core = self.core
        config = core.config
        mapping = gateway_by_address(config, txn.source[0])
        if mapping is not None:
            caller = Caller(mapping, None, True)
        else:
            service = getattr(core, "registrar_service", None)
            if service is None:
                txn.respond(core.make_response(request, 403, "Forbidden (no mapping gateway)"))
                return
            result = service.authenticator.authenticate(request, txn.source)
            if not result.accepted:
                service.authenticator.finish(result, request, txn, core.make_response)
                return
            user = result.username or ""
            mapping = gateway_by_account(config, user)
            if mapping is None:
                txn.respond(core.make_response(
                    request, 403, "Forbidden (account not in any mapping gateway)"))
                return
            caller = Caller(mapping, user, False)
        txn.respond(core.make_response(request, 100))
        callee = str(getattr(request.uri, "user", None) or getattr(request.to.uri, "user", "")
                     or "")
        caller_user = str(getattr(request.from_.uri, "user", None) or "")
        offer = None
        if request.body:
            try:
                offer = SessionDescription.parse(request.body)
            except SdpError as exc:
                response = make_response(request, 400, "Bad Request (unreadable SDP)",
                                         to_tag=new_tag())
                response.headers.add("Warning", f'399 vosapp "{exc.reason}"')
                txn.respond(response)
                return
        record = CdrRecord(call_id=request.call_id, caller=caller_user, callee=callee,
                           source=f"{txn.source[0]}:{txn.source[1]}",
                           setup_time=core.clock.wall(), mapping_gateway=mapping.name,
                           account=caller.account)
        call = Call(a_invite=request, a_txn=txn, a_tag=new_tag(), a_source=txn.source,
                    a_transport=txn.transport, caller=caller, callee=callee, record=record,
                    offer=offer, params=core.params)
        self.calls[call.call_id] = call
        txn.cancel_listeners.append(lambda cancel: self.on_caller_cancel(call))
        txn.add_listener(lambda event: self._a_txn_event(call, event))
        self.event(call, f"INVITE from {caller_user} via {mapping.name}"
                   f"{' (trusted address)' if caller.trusted else f' (account {caller.account})'}")
        if best_prefix(callee, mapping.prefixes) is None:
            self.fail(call, 403, "Forbidden (number not allowed for this mapping gateway)",
                      "prefix not allowed")
            return
        call.gateways = route_number(config, callee)
        if not call.gateways:
            self.fail(call, 404, "Not Found (no route)", "no route")
            return
        self.next_gateway(call)

    def next_gateway(self, call: Call) -> None:
        while call.state == "routing" and call.index < len(call.gateways):
            gateway = call.gateways[call.index]
            call.index += 1
            try:
                plan = plan_media(call.offer, call.a_source[0],
                                  call.caller.gateway.settings, gateway.settings)
            except MediaRefused as exc:
                call.media_refused = str(exc)
                call.record.gateways_tried.append(f"{gateway.name}:488")
                self.event(call, f"gateway {gateway.name} skipped: {exc}")
                continue
            try:
                self.send_attempt(call, gateway, plan)
            except Exception as exc:
                log.exception("INVITE to %s failed", gateway.name)
                call.record.gateways_tried.append(f"{gateway.name}:error")
                call.last_failure = str(exc)
                continue
            return
        if call.state != "routing":
            return
        if call.media_refused and len(call.record.gateways_tried) == sum(
                t.endswith(":488") for t in call.record.gateways_tried):
            self.fail(call, 488, "Not Acceptable Here", f"488 {call.media_refused}",
                      warning=call.media_refused)
        else:
            self.fail(call, 503, "Service Unavailable (all gateways failed)",
                      "all gateways failed" + (f": {call.last_failure}"
                                               if call.last_failure else ""))

    def send_attempt(self, call: Call, gateway: RoutingGateway, plan: MediaPlan) -> None:
        core = self.core
        a = call.a_invite
        settings = gateway.settings
        transport = gateway.transport.upper()
        host, _port = core.local_address(transport)
        display = a.from_.display if settings.display_from else None
        from_ = NameAddr(uri=SipUri(user=call.record.caller or None, host=host),
                         display=display, params={"tag": new_tag()})
        target = SipUri(user=call.callee or None, host=gateway.host, port=gateway.port)
        to = NameAddr(uri=SipUri(user=call.callee or None, host=gateway.host))
        headers: list[tuple[str, str]] = []
        privacy = a.headers.get("Privacy")
        if settings.privacy == "Passthrough" and privacy:
            headers.append(("Privacy", privacy))
        elif settings.privacy in ("Id", "None"):
            headers.append(("Privacy", settings.privacy.lower()))
        pai = a.headers.get("P-Asserted-Identity")
        if settings.p_asserted_identity == "Passthrough" and pai:
            headers.append(("P-Asserted-Identity", pai))
        elif settings.p_asserted_identity == "From caller":
            headers.append(("P-Asserted-Identity",
                            str(NameAddr(uri=SipUri(user=call.record.caller or None,
                                                    host=host)))))
        # RFC 4028 §7.1: offer a session timer (SS_SIP_SESSION_TTL); the vendor picks the
        # refresher in its 2xx.
        headers += [("Supported", "timer"),
                    ("Session-Expires", str(call.params["SS_SIP_SESSION_TTL"])),
                    ("Min-SE", "90")]
        attempt = Attempt(gateway=gateway, invite=None, plan=plan, offer=None)  # type: ignore[arg-type]
        body = b""
        if plan.relay:
            attempt.media = self.media.allocate()
            assert plan.b_codecs is not None and call.offer is not None
            audio = call.offer.first_audio()
            peer_te = audio is not None and audio.telephone_event_pt is not None
            from vosapp.media.dtmf.convert import advertise_telephone_event

            te = settings.rfc2833_payload if advertise_telephone_event(
                settings.use_peer_rfc2833, peer_te) else None
            ptime = (audio.ptime if audio is not None else None) or 20
            codecs = [c if c.payload_type is not None else replace(c, payload_type=96)
                      for c in plan.b_codecs]
            peer = [c for c in (audio.codecs() if audio is not None else [])
                    if c.family == "g729"]
            codecs = g729_codecs(codecs, settings.g729_mode, peer,
                                 {te} if te is not None else set())
            attempt.offer = build_offer(attempt.media.local_b[0], attempt.media.local_b[1],
                                        codecs, telephone_event_pt=te, ptime=ptime)
            body = bytes(attempt.offer)
        elif call.offer is not None:
            forwarded = (restrict_offer(call.offer, plan.b_codecs)
                         if plan.b_codecs is not None else call.offer)
            attempt.offer = g729_rewrite_offer(forwarded, settings.g729_mode)
            body = (bytes(attempt.offer) if plan.b_codecs is not None
                    or attempt.offer is not forwarded else a.body)
        max_forwards = max(0, (a.max_forwards if a.max_forwards is not None else 70) - 1)
        invite = Request.build("INVITE", target, via=self._via(transport), from_=from_, to=to,
                               cseq=1, contact=self._contact(transport),
                               max_forwards=max_forwards, headers=headers, body=body,
                               content_type=SDP if body else None)
        attempt.invite = invite
        call.attempt = attempt
        call.record.routing_gateway = gateway.name
        self.event(call, f"INVITE to {gateway.name} {gateway.host}:{gateway.port}"
                   + (f" (media relay: {plan.reason})" if plan.relay else ""))
        attempt.txn = core.send_request(invite, attempt.destination, transport,
                                        lambda event: self.on_vendor_event(call, attempt, event))
        timeout = call.params["SS_SIP_TIMEOUT_INVITE"]
        self._timer(attempt, timeout, lambda: self.on_invite_timeout(call, attempt))

    # ---------------------------------------------------------------- vendor leg events
    def on_vendor_event(self, call: Call, attempt: Attempt, event: Any) -> None:
        if isinstance(event, DeliverResponse):
            self.on_vendor_response(call, attempt, event.response)
        elif isinstance(event, (TimedOut, TransportFailed)):
            if attempt.done or attempt is not call.attempt or call.state != "routing":
                return
            what = "timeout" if isinstance(event, TimedOut) else "transport failure"
            self.attempt_failed(call, attempt, what, invite_timeout=isinstance(event, TimedOut))

    def on_vendor_response(self, call: Call, attempt: Attempt, response: Response) -> None:
        status = response.status
        stale = attempt.done or attempt is not call.attempt or call.state == "ended"
        if status >= 200 and status < 300:
            if call.state == "confirmed" and attempt is call.attempt:
                if call.b_ack is not None:  # §13.2.2.4: re-ACK a retransmitted 2xx
                    self.core.send_stateless(call.b_ack, attempt.destination, attempt.transport)
                return
            if stale or attempt.cancel_pending:
                self._ack_and_bye(attempt, response)
                return
            self.on_vendor_answer(call, attempt, response)
            return
        if stale:
            attempt.progressed = True
            if status < 200 and not attempt.cancel_sent:
                self._send_cancel(attempt)  # a late provisional on an abandoned attempt
            return
        if status < 200:
            first = not attempt.progressed
            attempt.progressed = True
            if attempt.cancel_pending:
                self._send_cancel(attempt)
                return
            params = call.params
            if status == 100:
                if first:
                    self._timer(attempt, params["SS_SIP_TIMEOUT_TRYING"],
                                lambda: self.on_progress_timeout(call, attempt, "trying"))
                return
            if status == 180:
                delay, what = params["SS_SIP_TIMEOUT_RINGING"], "ringing"
            elif response.body:
                delay, what = params["SS_SIP_TIMEOUT_SESSION_PROGRESS_SDP"], "session progress"
            else:
                delay, what = params["SS_SIP_TIMEOUT_SESSION_PROGRESS"], "session progress"
            self._timer(attempt, delay, lambda: self.on_progress_timeout(call, attempt, what))
            body = b""
            if response.body:
                try:
                    body = self._answer_body(call, attempt, response.body)
                except (SdpError, MediaRefused) as exc:
                    self.event(call, f"early media SDP from {attempt.gateway.name} "
                               f"ignored: {exc}")
                    body = b""
            call.a_txn.respond(self._a_response(call, status, response.reason, body=body))
            return
        # final failure
        if status == 422 and self._retry_422(call, attempt, response):
            return
        attempt.done = True
        self._stop_timer(attempt)
        call.record.gateways_tried.append(f"{attempt.gateway.name}:{status}")
        self._close_media(attempt)
        if is_failover(status):
            call.last_failure = f"{attempt.gateway.name} {status} {response.reason}"
            self.event(call, f"{attempt.gateway.name} answered {status}: next gateway")
            self.next_gateway(call)
            return
        warning = response.headers.get("Warning")
        response_out = self._a_response(call, status, response.reason)
        if warning:
            response_out.headers.add("Warning", warning)
        if 300 <= status < 400:  # §21.3: a redirect is useless without its Contacts
            for contact in response.headers.get_all("Contact"):
                response_out.headers.add("Contact", contact)
        for name in ("Retry-After", "Reason"):
            value = response.headers.get(name)
            if value:
                response_out.headers.add(name, value)
        self.finish(call, response_out, f"{status} {response.reason} from "
                    f"{attempt.gateway.name}")

    def _retry_422(self, call: Call, attempt: Attempt, response: Response) -> bool:
        """RFC 4028 §6: 422 Session Interval Too Small with a Min-SE above what we asked →
        the same INVITE again on the same gateway (same Call-ID and tags, new CSeq and Via
        branch) with Session-Expires and Min-SE raised to the Min-SE; once per attempt."""
        import copy

        min_se = session_expires(response.headers.get("Min-SE"))
        asked = session_expires(attempt.invite.headers.get("Session-Expires"))
        if attempt.retried_422 or min_se is None or (asked is not None
                                                     and min_se[0] <= asked[0]):
            return False
        attempt.retried_422 = True
        self._stop_timer(attempt)
        call.record.gateways_tried.append(f"{attempt.gateway.name}:422")
        old = attempt.invite
        invite = copy.deepcopy(old)
        invite.headers.set("Via", self.core.new_via(attempt.transport))
        invite.headers.set("CSeq", str(CSeq(old.cseq.number + 1, "INVITE")))
        invite.headers.set("Session-Expires", str(min_se[0]))
        invite.headers.set("Min-SE", str(min_se[0]))
        attempt.invite = invite
        attempt.progressed = False
        self.event(call, f"{attempt.gateway.name} answered 422 (Min-SE {min_se[0]}): INVITE "
                   "again with Session-Expires raised (RFC 4028 §6)")
        attempt.txn = self.core.send_request(
            invite, attempt.destination, attempt.transport,
            lambda event: self.on_vendor_event(call, attempt, event))
        self._timer(attempt, call.params["SS_SIP_TIMEOUT_INVITE"],
                    lambda: self.on_invite_timeout(call, attempt))
        return True

    def attempt_failed(self, call: Call, attempt: Attempt, what: str, *,
                       invite_timeout: bool) -> None:
        attempt.done = True
        self._stop_timer(attempt)
        self._close_media(attempt)
        call.record.gateways_tried.append(f"{attempt.gateway.name}:{what}")
        call.last_failure = f"{attempt.gateway.name} {what}"
        if invite_timeout and call.params["SS_SIP_USER_AGENT_STOP_SWITCH_AFTER_INVITE_TIMEOUT"]:
            self.event(call, f"INVITE timeout on {attempt.gateway.name}; no failover "
                       "(SS_SIP_USER_AGENT_STOP_SWITCH_AFTER_INVITE_TIMEOUT=On)")
            self.fail(call, 408, "Request Timeout", f"INVITE timeout on {attempt.gateway.name}")
            return
        self.event(call, f"{attempt.gateway.name}: {what}; next gateway")
        self.next_gateway(call)

    def on_invite_timeout(self, call: Call, attempt: Attempt) -> None:
        attempt.timer = None
        if attempt.done or attempt.progressed or call.state != "routing":
            return
        attempt.done = True
        if attempt.txn is not None and not attempt.txn.terminated:
            # Nothing came back at all: stop retransmitting (no CANCEL before a provisional,
            # §9.1); the transaction ends as if the transport had failed.
            self.core.transactions.transport_error(attempt.txn, "SS_SIP_TIMEOUT_INVITE")
        attempt.done = False
        self.attempt_failed(call, attempt, "timeout", invite_timeout=True)

    def on_progress_timeout(self, call: Call, attempt: Attempt, what: str) -> None:
        attempt.timer = None
        if attempt.done or call.state != "routing":
            return
        attempt.done = True
        self._send_cancel(attempt)
        self._close_media(attempt)
        call.record.gateways_tried.append(f"{attempt.gateway.name}:{what} timeout")
        self.fail(call, 408, f"Request Timeout ({what} timeout)", f"{what} timeout")

    def _send_cancel(self, attempt: Attempt) -> None:
        if attempt.cancel_sent:
            return
        attempt.cancel_sent = True
        invite = attempt.invite
        cancel = Request.build("CANCEL", invite.uri, via=invite.top_via, from_=invite.from_,
                               to=invite.to, call_id=invite.call_id,
                               cseq=CSeq(invite.cseq.number, "CANCEL"),
                               max_forwards=70)
        try:
            self.core.send_request(cancel, attempt.destination, attempt.transport)
        except Exception as exc:  # noqa: BLE001
            log.warning("CANCEL to %s failed: %s", attempt.gateway.name, exc)

    def _ack_and_bye(self, attempt: Attempt, response: Response) -> None:
        """A 2xx for an attempt we no longer want: ACK it and hang up (§15)."""
        try:
            dialog = Dialog.from_uac(attempt.invite, response)
            ack = dialog.ack_for_2xx(attempt.invite, via=self._via(attempt.transport))
            self.core.send_stateless(ack, attempt.destination, attempt.transport)
            bye = dialog.create_request("BYE", via=self._via(attempt.transport))
            self.core.send_request(bye, attempt.destination, attempt.transport)
        except (DialogError, OSError) as exc:
            log.warning("could not hang up a late answer from %s: %s", attempt.gateway.name,
                        exc)

    # ---------------------------------------------------------------- answer
    def _answer_body(self, call: Call, attempt: Attempt, vendor_sdp: bytes) -> bytes:
        """The SDP for the caller from the vendor's answer (starts the relay when used)."""
        plan = attempt.plan
        if not plan.relay:
            call.record.media_mode = "direct"
            if attempt.b_answer is None and call.offer is not None and attempt.offer is not None:
                try:
                    attempt.b_answer = read_answer(vendor_sdp, attempt.offer)
                    name = attempt.b_answer.codec.encoding
                    call.record.caller_codec = call.record.callee_codec = name
                    if attempt.b_answer.telephone_event_pt is not None:
                        call.record.dtmf_method = "RFC2833 (end to end)"
                except SdpError:
                    pass
            return vendor_sdp
        if attempt.media_started and attempt.a_answer is not None:
            return bytes(attempt.a_answer.sdp)
        assert attempt.media is not None and attempt.offer is not None
        assert call.offer is not None
        b_answer = read_answer(vendor_sdp, attempt.offer)
        mapping = call.caller.gateway.settings
        routing = attempt.gateway.settings
        if plan.transcode:
            a_codecs = plan.a_codecs
        else:
            a_codecs = [c for c in plan.a_codecs if c.matches(b_answer.codec,
                                                              g729_variants=True)]
            if not a_codecs:
                raise MediaRefused(f"the vendor answered {b_answer.codec.encoding}, "
                                   "which the caller cannot use and conversion is off")
        from vosapp.media.dtmf.convert import (
            DtmfConverter,
            DtmfSideSettings,
            advertise_telephone_event,
        )

        offer_audio = call.offer.first_audio()
        caller_te = offer_audio is not None and offer_audio.telephone_event_pt is not None
        te_to_caller = caller_te and advertise_telephone_event(
            mapping.use_peer_rfc2833, b_answer.telephone_event_pt is not None)
        local_a = attempt.media.local_a
        a_answer = answer(call.offer, a_codecs, address=local_a[0], port=local_a[1],
                          telephone_event=te_to_caller,
                          g729_mode=mapping.g729_mode)
        attempt.a_answer, attempt.b_answer = a_answer, b_answer
        a_spec = LegSpec(codec=MEDIA_CODEC[a_answer.codec.family],
                         ptime=a_answer.ptime or 20,
                         payload_type=int(a_answer.codec.payload_type or 0),
                         dtmf_payload_type=a_answer.telephone_event_pt,
                         remote=(a_answer.remote_address or call.a_source[0],
                                 a_answer.remote_port))
        b_spec = LegSpec(codec=MEDIA_CODEC[b_answer.codec.family],
                         ptime=b_answer.ptime or (attempt.offer.first_audio().ptime or 20),  # type: ignore[union-attr]
                         payload_type=int(b_answer.codec.payload_type or 0),
                         dtmf_payload_type=b_answer.telephone_event_pt,
                         remote=(b_answer.remote_address or attempt.gateway.host,
                                 b_answer.remote_port))
        dtmf: dict[str, Any] = {}
        if plan.dtmf_conversion:
            side_a = DtmfSideSettings(receive=mapping.dtmf_receive, send=mapping.dtmf_send,
                                      payload_type=mapping.rfc2833_payload,
                                      use_peer_rfc2833_ability=mapping.use_peer_rfc2833)
            side_b = DtmfSideSettings(receive=routing.dtmf_receive, send=routing.dtmf_send,
                                      payload_type=routing.rfc2833_payload,
                                      use_peer_rfc2833_ability=routing.use_peer_rfc2833)
            dtmf["a"] = DtmfConverter(side_a, side_b,
                                      far_rfc2833=b_spec.dtmf_payload_type is not None)
            dtmf["b"] = DtmfConverter(side_b, side_a,
                                      far_rfc2833=a_spec.dtmf_payload_type is not None)
        mode = attempt.media.start(a_spec, b_spec, dtmf=dtmf,
                                   on_info_send=lambda side, info: self._send_info(
                                       call, side, info))
        attempt.media_started = True
        call.record.media_mode = mode
        call.record.caller_codec = a_spec.codec
        call.record.callee_codec = b_spec.codec
        if a_spec.dtmf_payload_type is not None and b_spec.dtmf_payload_type is not None:
            call.record.dtmf_method = "RFC2833 (relayed)"
        self.event(call, f"media relay {mode}: caller {a_spec.codec} "
                   f"{attempt.media.local_a[1]} <-> vendor {b_spec.codec} "
                   f"{attempt.media.local_b[1]}")
        return bytes(a_answer.sdp)

    def on_vendor_answer(self, call: Call, attempt: Attempt, response: Response) -> None:
        attempt.done = True
        self._stop_timer(attempt)
        call.record.gateways_tried.append(f"{attempt.gateway.name}:{response.status}")
        try:
            dialog = Dialog.from_uac(attempt.invite, response)
        except DialogError as exc:
            self._ack_and_bye(attempt, response)
            self.fail(call, 502, "Bad Gateway", f"unusable 2xx from {attempt.gateway.name}: "
                      f"{exc}")
            return
        body = b""
        late_offer = call.offer is None
        if response.body:
            try:
                body = self._answer_body(call, attempt, response.body)
            except (SdpError, MediaRefused) as exc:
                self._ack_and_bye(attempt, response)
                self._close_media(attempt)
                reason = getattr(exc, "reason", None) or str(exc)
                self.fail(call, 488, "Not Acceptable Here", f"488 {reason}", warning=reason)
                return
        call.b_dialog = dialog
        self.dialogs[(dialog.call_id, dialog.local_tag)] = (call, "b")
        call.b_ack = dialog.ack_for_2xx(attempt.invite, via=self._via(attempt.transport))
        if late_offer:
            call.ack_pending = True  # the caller's ACK carries the answer for the vendor
        else:
            self.core.send_stateless(call.b_ack, attempt.destination, attempt.transport)
        final = self._a_response(call, 200, response.reason, body=body)
        a_timer = self._caller_session_timer(call)
        if a_timer is not None and not a_timer.liveness:
            refresher = "uas" if a_timer.we_refresh else "uac"
            final.headers.add("Session-Expires", f"{int(a_timer.interval)};refresher={refresher}")
            final.headers.add("Require", "timer")
        call.sdp_sent["a"] = body
        call.sdp_sent["b"] = attempt.invite.body
        call.a_dialog = Dialog.from_uas(call.a_invite, final)
        self.dialogs[(call.call_id, call.a_tag)] = (call, "a")
        call.state = "confirmed"
        call.record.answer_time = self.core.clock.wall()
        call.record.status = 200
        call.a_final = final
        call.a_txn.respond(final)
        self.event(call, f"answered by {attempt.gateway.name}")
        self._schedule_2xx_retransmit(call, self.core.transactions.timers.t1)
        b_timer = self._vendor_session_timer(call, response)
        for side, timer in (("a", a_timer), ("b", b_timer)):
            if timer is not None:
                call.session_timers[side] = timer
                timer.last_ok = self.core.clock.now()
                self._arm_session_timer(call, side, timer)

    def _schedule_2xx_retransmit(self, call: Call, interval: float,
                                 elapsed: float = 0.0) -> None:
        """§13.3.1.4: resend the 2xx at T1, 2*T1 ... capped at T2 until the ACK comes; no
        ACK within 64*T1 → BYE both legs."""
        timers = self.core.transactions.timers
        if call.a_acked or call.state != "confirmed" or call.a_transport != "UDP":
            return

        def again() -> None:
            if call.a_acked or call.state != "confirmed" or call.a_final is None:
                return
            if elapsed + interval >= 64 * timers.t1:
                self.event(call, "no ACK for the 200 OK (§13.3.1.4): hanging up")
                self.hangup(call, None, "no ACK from caller")
                return
            try:
                call.a_txn.respond(call.a_final)
            except Exception:  # noqa: BLE001 - transaction already gone
                return
            self._schedule_2xx_retransmit(call, min(interval * 2, timers.t2),
                                          elapsed + interval)

        call.a_retransmit = self.core.clock.call_later(interval, again)

    # ---------------------------------------------------------------- caller side
    def _a_txn_event(self, call: Call, event: Any) -> None:
        if isinstance(event, DeliverRequest) and event.request.method == "ACK":
            self._caller_ack(call, event.request)

    def on_ack(self, request: Request, source: Address, transport: str) -> None:
        try:
            key = (request.call_id, request.to.tag or "")
        except Exception:  # noqa: BLE001
            return
        found = self.dialogs.get(key)
        if found is not None and found[1] == "a":
            self._caller_ack(found[0], request)

    def _caller_ack(self, call: Call, ack: Request) -> None:
        if call.a_acked:
            return
        call.a_acked = True
        if call.a_retransmit is not None:
            call.a_retransmit.cancel()
            call.a_retransmit = None
        if call.ack_pending and call.b_ack is not None and call.attempt is not None:
            call.ack_pending = False
            if ack.body:
                call.sdp_sent["b"] = ack.body
                call.b_ack.body = ack.body
                call.b_ack.headers.set("Content-Type", ack.headers.get("Content-Type") or SDP)
            self.core.send_stateless(call.b_ack, call.attempt.destination,
                                     call.attempt.transport)

    def on_caller_cancel(self, call: Call) -> None:
        if call.state != "routing":
            return
        attempt = call.attempt
        if attempt is not None and not attempt.done:
            attempt.done = True
            self._stop_timer(attempt)
            call.record.gateways_tried.append(f"{attempt.gateway.name}:cancelled")
            if attempt.progressed:
                self._send_cancel(attempt)
            else:
                attempt.cancel_pending = True
            self._close_media(attempt)
        self.fail(call, 487, "Request Terminated", "cancelled by caller")

    # ---------------------------------------------------------------- in-dialog
    def _lookup(self, request: Request) -> tuple[Call, str] | None:
        try:
            return self.dialogs.get((request.call_id, request.to.tag or ""))
        except Exception:  # noqa: BLE001
            return None

    def _leg(self, call: Call, side: str) -> tuple[Dialog | None, Address, str]:
        if side == "a":
            return call.a_dialog, call.a_source, call.a_transport
        assert call.attempt is not None
        return call.b_dialog, call.attempt.destination, call.attempt.transport

    def on_bye(self, request: Request, txn: ServerTransaction) -> None:
        found = self._lookup(request)
        if found is None:
            txn.respond(self.core.make_response(request, 481))
            return
        call, side = found
        txn.respond(self.core.make_response(request, 200))
        self.hangup(call, side, "caller hung up" if side == "a" else "callee hung up")

    def hangup(self, call: Call, from_side: str | None, reason: str) -> None:
        """End a confirmed call: BYE to every leg except ``from_side``."""
        if call.state != "confirmed":
            return
        for side in ("a", "b"):
            if side == from_side:
                continue
            dialog, destination, transport = self._leg(call, side)
            if dialog is None:
                continue
            try:
                bye = dialog.create_request("BYE", via=self._via(transport))
                self._byes_pending.add(bye.call_id)
                self.core.send_request(bye, destination, transport,
                                       self._bye_listener(bye.call_id))
            except (DialogError, OSError) as exc:
                log.warning("BYE on leg %s failed: %s", side, exc)
        call.state = "ended"
        call.record.end_reason = reason
        self._end(call)

    def _bye_listener(self, call_id: str) -> Callable[[Any], None]:
        def settled(event: Any) -> None:
            final = isinstance(event, DeliverResponse) and event.response.status >= 200
            if final or isinstance(event, (TimedOut, TransportFailed)):
                self._byes_pending.discard(call_id)

        return settled

    def on_in_dialog(self, request: Request, txn: ServerTransaction) -> None:
        found = self._lookup(request)
        if found is None or found[0].state != "confirmed":
            txn.respond(self.core.make_response(request, 481))
            return
        call, side = found
        dialog, _dest, _transport = self._leg(call, side)
        if dialog is None or not dialog.receive_request(request):
            txn.respond(self.core.make_response(request, 500))
            return
        if request.method in ("INVITE", "UPDATE"):
            self._peer_refreshed(call, side)
        attempt = call.attempt
        assert attempt is not None
        relay = attempt.media if attempt.media_started else None
        if request.method == "INFO" and relay is not None and attempt.plan.dtmf_conversion:
            content_type = (request.headers.get("Content-Type") or "").split(";")[0].strip()
            try:
                relay.info_received(side, content_type, request.body)
            except Exception as exc:  # noqa: BLE001 - DtmfError: malformed body
                txn.respond(self.core.make_response(request, 400, f"Bad Request ({exc})"))
                return
            txn.respond(self.core.make_response(request, 200))
            return
        if request.method == "INVITE" and relay is not None:
            self._local_reinvite(call, side, request, txn)
            return
        other = "b" if side == "a" else "a"
        other_dialog, destination, transport = self._leg(call, other)
        if other_dialog is None:
            txn.respond(self.core.make_response(request, 481))
            return
        content_type = request.headers.get("Content-Type")
        out = other_dialog.create_request(
            request.method, via=self._via(transport), contact=self._contact(transport),
            body=request.body, content_type=content_type if request.body else None)

        def relay_response(event: Any) -> None:
            if isinstance(event, DeliverResponse):
                response = event.response
                if response.status < 200 or txn.final_sent:
                    return
                reply = self.core.make_response(request, response.status, response.reason)
                if response.body:
                    reply.headers.add("Content-Type",
                                      response.headers.get("Content-Type") or SDP)
                    reply.body = response.body
                if request.method == "INVITE" and response.status < 300:
                    if response.body:
                        call.sdp_sent[side] = response.body
                    other_dialog.update_from_response(response)
                    ack = other_dialog.ack_for_2xx(out, via=self._via(transport))
                    self.core.send_stateless(ack, destination, transport)
                    reply.headers.add("Contact", str(self._contact(txn.transport)))
                txn.respond(reply)
            elif isinstance(event, (TimedOut, TransportFailed)) and not txn.final_sent:
                txn.respond(self.core.make_response(request, 408))

        if request.method == "INVITE" and request.body:
            call.sdp_sent[other] = request.body
        self.core.send_request(out, destination, transport, relay_response)

    def _local_reinvite(self, call: Call, side: str, request: Request,
                        txn: ServerTransaction) -> None:
        """Media proxy in the path: answer the re-INVITE with the relay's SDP (hold,
        refresh, moved media); the leg is re-latched to the new address."""
        attempt = call.attempt
        assert attempt is not None and attempt.media is not None
        local = attempt.media.local_a if side == "a" else attempt.media.local_b
        spec_answer = attempt.a_answer if side == "a" else attempt.b_answer
        codec = spec_answer.codec if spec_answer is not None else PCMA
        body = b""
        remote = None
        if request.body:
            try:
                settings = (call.caller.gateway.settings if side == "a"
                            else attempt.gateway.settings)
                result = answer(request.body, [codec], address=local[0], port=local[1],
                                g729_mode=settings.g729_mode)
            except SdpError as exc:
                response = self.core.make_response(request, 488)
                response.headers.add("Warning", f'305 vosapp "{exc.reason}"')
                txn.respond(response)
                return
            body = bytes(result.sdp)
            if result.remote_address:
                remote = (result.remote_address, result.remote_port)
        attempt.media.relatch(side, remote)
        reply = self.core.make_response(request, 200)
        reply.headers.add("Contact", str(self._contact(txn.transport)))
        if body:
            reply.headers.add("Content-Type", SDP)
            reply.body = body
            call.sdp_sent[side] = body
        timer = call.session_timers.get(side)
        if timer is not None and not timer.liveness and request.headers.get("Session-Expires"):
            refresher = "uas" if timer.we_refresh else "uac"
            reply.headers.add("Session-Expires", f"{int(timer.interval)};refresher={refresher}")
            reply.headers.add("Require", "timer")
        txn.respond(reply)

    def _send_info(self, call: Call, side: str, info: Any) -> None:
        if call.state != "confirmed":
            return
        dialog, destination, transport = self._leg(call, side)
        if dialog is None:
            return
        request = dialog.create_request("INFO", via=self._via(transport), body=info.body,
                                        content_type=info.content_type)
        self.core.send_request(request, destination, transport)

    # ---------------------------------------------------------------- RFC 4028
    def _caller_session_timer(self, call: Call) -> LegTimer | None:
        """The caller leg's session timer (§9): the caller's Session-Expires when it supports
        timers (it refreshes, refresher=uac); a timer-capable caller without one gets ours
        (SS_SIP_SESSION_TTL, we refresh); otherwise the liveness re-INVITE, when set."""
        params = call.params
        invite = call.a_invite
        requested = session_expires(invite.headers.get("Session-Expires"))
        if _supports_timer(invite):
            if requested is not None:
                interval = max(90, requested[0])
                return LegTimer(interval=interval, we_refresh=requested[1] == "uas")
            return LegTimer(interval=params["SS_SIP_SESSION_TTL"], we_refresh=True)
        liveness = params["SS_SIP_NO_TIMER_REINVITE_INTERVAL"]
        if liveness:
            return LegTimer(interval=liveness, we_refresh=True, liveness=True)
        return None

    def _vendor_session_timer(self, call: Call, response: Response) -> LegTimer | None:
        """The vendor leg's session timer from its 2xx (§7.2): refresher=uac (or none
        given) → we refresh; uas → the vendor does and we watch."""
        granted = session_expires(response.headers.get("Session-Expires"))
        if granted is not None:
            return LegTimer(interval=max(90, granted[0]), we_refresh=granted[1] != "uas")
        liveness = call.params["SS_SIP_NO_TIMER_REINVITE_INTERVAL"]
        if liveness:
            return LegTimer(interval=liveness, we_refresh=True, liveness=True)
        return None

    def _arm_session_timer(self, call: Call, side: str, timer: LegTimer) -> None:
        clock = self.core.clock
        timer.cancel()
        if timer.we_refresh:
            period = timer.interval if timer.liveness else (
                timer.interval / call.params["SS_SIP_SESSION_UPDATE_SEGMENT"])
            timer.refresh_handle = clock.call_later(
                period, lambda: self._send_refresh(call, side, timer))
            if not timer.liveness:
                # the session dies at last_ok + interval whatever happens to the refreshes
                remaining = timer.last_ok + timer.interval - clock.now()
                timer.expiry_handle = clock.call_later(
                    max(0.0, remaining), lambda: self._session_expired(call, side))
        else:
            # §10: the refresher's refresh must arrive before interval - min(32, interval/3)
            timer.expiry_handle = clock.call_later(
                timer.interval - min(32, timer.interval / 3),
                lambda: self._session_expired(call, side))

    def _peer_refreshed(self, call: Call, side: str) -> None:
        timer = call.session_timers.get(side)
        if timer is not None and not timer.we_refresh:
            timer.last_ok = self.core.clock.now()
            self._arm_session_timer(call, side, timer)

    def _session_expired(self, call: Call, side: str) -> None:
        if call.state != "confirmed":
            return
        self.event(call, f"session timer expired on the {'caller' if side == 'a' else 'vendor'}"
                   " leg (RFC 4028 §10): hanging up")
        self.hangup(call, None, "session expired")

    def _send_refresh(self, call: Call, side: str, timer: LegTimer) -> None:
        timer.refresh_handle = None
        if call.state != "confirmed":
            return
        dialog, destination, transport = self._leg(call, side)
        if dialog is None:
            return
        body = call.sdp_sent.get(side, b"")
        headers: list[tuple[str, str]] = []
        if not timer.liveness:
            headers = [("Session-Expires", f"{int(timer.interval)};refresher=uac"),
                       ("Supported", "timer")]
        try:
            request = dialog.create_request("INVITE", via=self._via(transport),
                                            contact=self._contact(transport), body=body,
                                            content_type=SDP if body else None,
                                            headers=headers)
        except DialogError:
            return
        timer.refreshes += 1

        def on_event(event: Any) -> None:
            if call.state != "confirmed":
                return
            if isinstance(event, DeliverResponse):
                response = event.response
                if response.status < 200:
                    return
                if response.status < 300:
                    dialog.update_from_response(response)
                    ack = dialog.ack_for_2xx(request, via=self._via(transport))
                    self.core.send_stateless(ack, destination, transport)
                    timer.last_ok = self.core.clock.now()
                    granted = session_expires(response.headers.get("Session-Expires"))
                    if granted is not None and not timer.liveness:
                        timer.interval = max(90, granted[0])
                    self._arm_session_timer(call, side, timer)
                elif response.status in (408, 481):  # §12.2.1.2: the dialog is gone
                    self._refresh_failed(call, side, timer, f"{response.status}")
                else:  # 491 glare, 488 …: the session lives; try again next period
                    self._arm_session_timer(call, side, timer)
            elif isinstance(event, (TimedOut, TransportFailed)):
                self._refresh_failed(call, side, timer, "no answer")

        self.core.send_request(request, destination, transport, on_event)

    def _refresh_failed(self, call: Call, side: str, timer: LegTimer, what: str) -> None:
        leg = "caller" if side == "a" else "vendor"
        if call.params["SS_SIP_SESSION_TIMEOUT_EARLY_HANGUP"] or timer.liveness:
            self.event(call, f"session refresh to the {leg} failed ({what}): hanging up "
                       "(SS_SIP_SESSION_TIMEOUT_EARLY_HANGUP=On)")
            self.hangup(call, None, f"session refresh failed ({what})")
            return
        # Off: keep the call until the session really expires (last_ok + interval)
        self.event(call, f"session refresh to the {leg} failed ({what}); waiting for the "
                   "session to expire (SS_SIP_SESSION_TIMEOUT_EARLY_HANGUP=Off)")
        if timer.refresh_handle is not None:
            timer.refresh_handle.cancel()
            timer.refresh_handle = None

    # ---------------------------------------------------------------- endings
    def fail(self, call: Call, status: int, reason: str, end_reason: str, *,
             warning: str | None = None) -> None:
        """End an unanswered call with a final status to the caller."""
        if call.state != "routing":
            return
        call.state = "ended"
        if not call.a_txn.final_sent:
            try:
                call.a_txn.respond(self._a_response(call, status, reason, warning=warning))
            except Exception as exc:  # noqa: BLE001
                log.warning("final response to the caller failed: %s", exc)
        call.record.status = status
        call.record.end_reason = end_reason
        self.event(call, f"failed: {status} {reason} ({end_reason})")
        self._end(call)

    def finish(self, call: Call, response: Response, end_reason: str) -> None:
        if call.state != "routing":
            return
        call.state = "ended"
        call.a_txn.respond(response)
        call.record.status = response.status
        call.record.end_reason = end_reason
        self.event(call, f"failed: {end_reason}")
        self._end(call)

    def _close_media(self, attempt: Attempt) -> None:
        if attempt.media is not None:
            try:
                attempt.media.close()
            except Exception:
                log.exception("closing a media relay failed")

    def _end(self, call: Call) -> None:
        for timer in call.session_timers.values():
            timer.cancel()
        if call.a_retransmit is not None:
            call.a_retransmit.cancel()
            call.a_retransmit = None
        attempt = call.attempt
        if attempt is not None:
            self._stop_timer(attempt)
            if attempt.media is not None and attempt.media_started:
                methods = attempt.media.dtmf_methods()
                if methods:
                    call.record.dtmf_method = ", ".join(methods)
            self._close_media(attempt)
        call.record.end_time = self.core.clock.wall()
        for key in [k for k, v in self.dialogs.items() if v[0] is call]:
            del self.dialogs[key]
        self.calls.pop(call.call_id, None)
        try:
            self.cdr.write(call.record)
        except Exception:
            log.exception("writing the CDR failed")

    def on_stop(self) -> Callable[[], bool]:
        """Graceful stop: hang up answered calls (the runtime waits, bounded, for the BYEs'
        answers), fail the others with 503."""
        for call in list(self.calls.values()):
            if call.state == "confirmed":
                self.hangup(call, None, "switch stopped")
            elif call.state == "routing":
                if call.attempt is not None and not call.attempt.done:
                    call.attempt.done = True
                    if call.attempt.progressed:
                        self._send_cancel(call.attempt)
                self.fail(call, 503, "Service Unavailable", "switch stopped")
        return lambda: not self._byes_pending


def install(core: SwitchCore) -> None:
    """Feature installer (``vosapp.switch.b2bua:install``); the feature is ``core.b2bua``."""
    b2bua = B2bua(core)
    b2bua.install()
    core.b2bua = b2bua  # type: ignore[attr-defined]


__all__ = ["B2bua", "Call", "LegSpec", "MediaBackend", "MediaPlan", "MediaRefused",
           "MediaSession", "install", "is_failover", "plan_media", "restrict_offer"]
