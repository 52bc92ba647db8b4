"""Scripted SIP phones on the virtual network for the B2BUA tests: a caller (UAC) and
vendors (UAS) that answer with a script of (delay, status) steps; a media backend without
sockets (:class:`FakeMedia`)."""

from __future__ import annotations

from collections.abc import Sequence

from vosapp.config import Config, parse_config
from vosapp.io.virtual import Packet, VirtualEndpoint, VirtualNetwork, VirtualSwitch
from vosapp.sip import (
    CSeq,
    NameAddr,
    Request,
    Response,
    SipUri,
    Via,
    make_response,
    new_branch,
    new_tag,
    parse,
)
from vosapp.sip.sdp import G729, PCMA, PCMU, Codec, NoCommonCodec, answer, build_offer
from vosapp.store import Store

SWITCH = ("10.0.0.1", 5060)
CALLER = ("10.0.0.2", 5060)
VENDOR_A = ("10.0.0.9", 5060)
VENDOR_B = ("10.0.0.10", 5060)
VENDOR_C = ("10.0.0.11", 5060)


def make_config(extra: str = "", *, mapping: str = "", routing: str | None = None) -> Config:
    if routing is None:
        routing = f"""
[[routing_gateway]]
name = "vendor-a"
address = "{VENDOR_A[0]}:{VENDOR_A[1]}"
prefixes = ["00"]
priority = 1
[[routing_gateway]]
name = "vendor-b"
address = "{VENDOR_B[0]}:{VENDOR_B[1]}"
prefixes = ["00"]
priority = 2
"""
    return parse_config(f"""
[switch]
sip_listen = "{SWITCH[0]}:{SWITCH[1]}"
[parameters]
{extra}
[[account]]
user = "1001"
password = "secret-1001"
[[mapping_gateway]]
name = "customer"
addresses = ["{CALLER[0]}"]
{mapping}
{routing}
""")


def vendor_c_routing(settings: str = "") -> str:
    """The ``[[routing_gateway]]`` table of VENDOR_C ("vendor-c", every number) with the
    gateway ``settings`` (TOML lines), for ``make_config(routing=...)``."""
    return f"""
[[routing_gateway]]
name = "vendor-c"
address = "{VENDOR_C[0]}:{VENDOR_C[1]}"
{settings}
"""


def start_switch(net: VirtualNetwork, cfg: Config, store: Store | None = None
                 ) -> VirtualSwitch:
    switch = net.add_switch(SWITCH, config=cfg, params=cfg.parameters, store=store,
                            features=["registrar", "b2bua"])
    switch.start()
    return switch


class Vendor:
    """A UAS: answers each INVITE with ``script`` [(delay, status[, with_sdp])]; 200 to BYE;
    200 + 487 to CANCEL (when not answered yet)."""

    def __init__(self, net: VirtualNetwork, address: tuple[str, int],
                 script: Sequence[tuple] = ((0.0, 100), (0.05, 180), (0.1, 200)),
                 extra_headers: Sequence[tuple[str, str]] = (),
                 accept: Sequence[Codec] = (PCMA, PCMU, G729),
                 answer_sdp: bytes | None = None, hold_reinvites: bool = False) -> None:
        self.net = net
        self.accept = list(accept)  # an INVITE offering none of these gets 488
        self.answer_sdp = answer_sdp  # answered as is (a vendor that ignores the offer)
        self.hold_reinvites = hold_reinvites  # re-INVITEs wait for answer_held()
        self.held: list[tuple[Request, tuple[str, int]]] = []
        self.responses: list[Response] = []
        self.extra_headers = list(extra_headers)
        self.endpoint: VirtualEndpoint = net.add_endpoint(address)
        self.endpoint.on_receive = self._on
        self.script = list(script)
        self.invites: list[Request] = []
        self.requests: list[Request] = []
        self.tag = new_tag()
        self.answered = False
        self.timers: list = []

    def _on(self, packet: Packet) -> None:
        message = parse(packet.data)
        if not isinstance(message, Request):
            self.responses.append(message)
            if message.cseq.method == "INVITE" and 200 <= message.status < 300:
                self.endpoint.send(self.request("ACK", message.cseq.number), packet.source)
            return
        self.requests.append(message)
        if message.method == "INVITE" and not message.to.tag:
            self.invites.append(message)
            if not self._acceptable(message):
                self.endpoint.send(self._response(message, 488, False), packet.source)
                return
            for step in self.script:
                delay, status = step[0], step[1]
                with_sdp = step[2] if len(step) > 2 else status == 200
                self.timers.append(self.net.clock.call_later(
                    delay, lambda s=status, w=with_sdp, m=message, src=packet.source:
                    self._respond(m, s, w, src)))
        elif message.method == "INVITE" and message.to.tag and self.hold_reinvites:
            if all(r.cseq.number != message.cseq.number for r, _ in self.held):
                self.held.append((message, packet.source))  # not a retransmission
        elif message.method in ("BYE", "INFO", "UPDATE") or (
                message.method == "INVITE" and message.to.tag):
            with_sdp = message.method == "INVITE" or (message.method == "UPDATE"
                                                      and bool(message.body))
            self.endpoint.send(self._response(message, 200, with_sdp), packet.source)
        elif message.method == "CANCEL":
            self.endpoint.send(self._response(message, 200, False), packet.source)
            if not self.answered:
                for timer in self.timers:
                    timer.cancel()
                invite = self.invites[-1]
                self.endpoint.send(self._response(invite, 487, False), packet.source)

    def _response(self, request: Request, status: int, with_sdp: bool) -> Response:
        response = make_response(request, status, to_tag=self.tag if status > 100 else None)
        if 101 <= status < 300:
            response.headers.add("Contact", f"<sip:vendor@{self.endpoint.address[0]}:"
                                 f"{self.endpoint.address[1]}>")
        if 200 <= status < 300 and request.method == "INVITE":
            for name, value in self.extra_headers:
                response.headers.add(name, value)
        if with_sdp:
            sdp = build_offer(self.endpoint.address[0], 30000, [PCMA])
            if request.body:
                sdp = answer(request.body, self.accept, address=self.endpoint.address[0],
                             port=30000).sdp
            response.headers.add("Content-Type", "application/sdp")
            response.body = bytes(sdp)
            if self.answer_sdp is not None and not request.to.tag:
                response.body = self.answer_sdp
        return response

    def _acceptable(self, invite: Request) -> bool:
        if not invite.body or self.answer_sdp is not None:
            return True
        try:
            answer(invite.body, self.accept, address="10.0.0.99", port=30000)
        except NoCommonCodec:
            return False
        return True

    def request(self, method: str, cseq: int, body: bytes = b"") -> Request:
        """A request from the vendor inside its dialog with the switch."""
        invite = self.invites[-1]
        host, port = self.endpoint.address
        return Request.build(method, invite.contacts[0].uri,
                             via=Via("UDP", host, port, {"branch": new_branch()}),
                             from_=NameAddr(invite.to.uri, None, {"tag": self.tag}),
                             to=invite.from_, call_id=invite.call_id, cseq=CSeq(cseq, method),
                             body=body, content_type="application/sdp" if body else None)

    def answer_held(self, status: int = 200) -> None:
        """Answer the re-INVITEs held back (``hold_reinvites``)."""
        held, self.held = self.held, []
        for request, source in held:
            self.endpoint.send(self._response(request, status, status == 200), source)

    def _respond(self, request: Request, status: int, with_sdp: bool, source) -> None:
        if self.answered:
            return
        if status >= 200:
            self.answered = True
        self.endpoint.send(self._response(request, status, with_sdp), source)

    def methods(self) -> list[str]:
        return [r.method for r in self.requests]


class Caller:
    """A UAC: INVITE, ACK for 2xx, BYE/CANCEL on demand, 200 to an incoming BYE."""

    def __init__(self, net: VirtualNetwork, address: tuple[str, int] = CALLER) -> None:
        self.net = net
        self.endpoint = net.add_endpoint(address)
        self.endpoint.on_receive = self._on
        self.responses: list[Response] = []
        self.requests: list[Request] = []
        self.invite: Request | None = None
        self.remote_tag: str | None = None
        self.cseq = 1

    def call(self, number: str = "0044123", *, sdp: bool = True, codecs=(PCMA, PCMU),
             headers: Sequence[tuple[str, str]] = (), sdp_address: str | None = None
             ) -> Request:
        host, port = self.endpoint.address
        body = bytes(build_offer(sdp_address or host, 40000, list(codecs))) if sdp else b""
        self.invite = Request.build(
            "INVITE", SipUri(user=number, host=SWITCH[0], port=SWITCH[1]),
            via=Via("UDP", host, port, {"branch": new_branch(), "rport": None}),
            from_=NameAddr(SipUri(user="1001", host=host), "Alice", {"tag": new_tag()}),
            to=NameAddr(SipUri(user=number, host=SWITCH[0])), cseq=1,
            contact=NameAddr(SipUri(user="1001", host=host, port=port)), headers=headers,
            body=body, content_type="application/sdp" if body else None)
        self.endpoint.send(self.invite, SWITCH)
        return self.invite

    def _on(self, packet: Packet) -> None:
        message = parse(packet.data)
        if isinstance(message, Response):
            self.responses.append(message)
            if message.cseq.method == "INVITE" and 200 <= message.status < 300:
                self.remote_tag = message.to.tag
                self.endpoint.send(self._in_dialog("ACK", cseq=message.cseq.number),
                                   SWITCH)
            elif message.cseq.method == "INVITE" and message.status >= 300:
                invite = self.invite
                ack = Request.build("ACK", invite.uri, via=invite.top_via, from_=invite.from_,
                                    to=message.to, call_id=invite.call_id,
                                    cseq=CSeq(invite.cseq.number, "ACK"))
                self.endpoint.send(ack, SWITCH)
            return
        self.requests.append(message)
        if message.method in ("BYE", "INFO", "INVITE"):
            response = make_response(message, 200)
            if message.method == "INVITE" and message.body:  # a re-offer: answer it
                response.headers.add("Content-Type", "application/sdp")
                response.body = bytes(answer(message.body, [PCMA, PCMU, G729],
                                             address=self.endpoint.address[0], port=40000).sdp)
            self.endpoint.send(response, packet.source)

    def _in_dialog(self, method: str, cseq: int | None = None, body: bytes = b"") -> Request:
        assert self.invite is not None
        host, port = self.endpoint.address
        if cseq is None:
            self.cseq += 1
            cseq = self.cseq
        to = NameAddr(self.invite.to.uri, None, {"tag": self.remote_tag} if self.remote_tag
                      else {})
        return Request.build(method, self.invite.uri,
                             via=Via("UDP", host, port, {"branch": new_branch(), "rport": None}),
                             from_=self.invite.from_, to=to, call_id=self.invite.call_id,
                             cseq=CSeq(cseq, method), body=body,
                             content_type="application/sdp" if body else None)

    def bye(self) -> None:
        self.endpoint.send(self._in_dialog("BYE"), SWITCH)

    def cancel(self) -> None:
        assert self.invite is not None
        cancel = Request.build("CANCEL", self.invite.uri, via=self.invite.top_via,
                               from_=self.invite.from_, to=self.invite.to,
                               call_id=self.invite.call_id,
                               cseq=CSeq(self.invite.cseq.number, "CANCEL"))
        self.endpoint.send(cancel, SWITCH)

    def statuses(self, method: str = "INVITE") -> list[int]:
        return [r.status for r in self.responses if r.cseq.method == method]

    def final(self) -> Response | None:
        finals = [r for r in self.responses if r.cseq.method == "INVITE" and r.status >= 200]
        return finals[-1] if finals else None


class FakeMedia:
    """A media backend without sockets: records what the B2BUA asks for."""

    def __init__(self) -> None:
        self.sessions: list[FakeSession] = []

    def allocate(self) -> FakeSession:
        session = FakeSession(len(self.sessions))
        self.sessions.append(session)
        return session


class FakeSession:
    def __init__(self, n: int) -> None:
        self.local_a = ("10.0.0.1", 20000 + 4 * n)
        self.local_b = ("10.0.0.1", 20002 + 4 * n)
        self.started = None
        self.closed = False
        self.relatched: list = []
        self.directions: dict[str, str] = {}

    def start(self, a, b, *, dtmf, on_info_send):  # type: ignore[no-untyped-def]
        self.started = (a, b, dtmf)
        return "relay" if a.codec == b.codec else "transcode"

    def info_received(self, side, content_type, body):  # type: ignore[no-untyped-def]
        pass

    def relatch(self, side, remote):  # type: ignore[no-untyped-def]
        self.relatched.append((side, remote))

    def set_direction(self, side, direction):  # type: ignore[no-untyped-def]
        self.directions[side] = direction

    def dtmf_methods(self) -> list[str]:
        return []

    def close(self) -> None:
        self.closed = True


def register_phone(switch: VirtualSwitch, user: str, address: tuple[str, int], *,
                   q: float | None = None, received: tuple[str, int] | None = None,
                   transport: str = "udp", path: tuple[str, ...] = (),
                   call_id: str = "phone-registration") -> str:
    """A live binding of ``user`` at ``address`` in the switch's registrar (what its REGISTER
    would store; ``received``: the source it came from, when behind NAT). One Call-ID for
    every contact of an account: the registrar keeps them side by side (RFC 3261 §10.3)."""
    from vosapp.switch.registrar import ContactRequest

    contact = f"sip:{user}@{address[0]}:{address[1]}"
    registrar = switch.app.registrar
    assert registrar is not None
    registrar.registrar.register(user, [ContactRequest(contact, q=q)], expires_header=3600,
                                 call_id=call_id, cseq=1, replace=False,
                                 source=received or address, transport=transport, path=path)
    return contact
