"""The call-side SS_* timers in virtual time (notebook 08, docs/behaviour.md §2.6, §4.2–§4.4).

A switch with the B2BUA feature (the registrar for the NAT keep-alive) on a
:class:`~vosapp.io.virtual.VirtualNetwork` (no media relay), a scripted caller
(:class:`VirtualCaller`, a trusted mapping gateway) and scripted vendors
(:class:`ScriptedVendor`, routing gateways tried in order). Everything runs on one :class:`~vosapp.clock.ManualClock`, so a 32 s retransmission schedule or a 90 s session
timer takes milliseconds and comes out the same every time.

* :func:`call_lab` -- the switch, caller and vendors, wired from SS_* values and per-gateway
  settings; :class:`CallLab` runs time, draws the ladder (``ladder()``), reads the CDR and
  the times at which the switch sent something (``sent_times``).
* :func:`retransmission_schedule` -- when the switch sends (and re-sends) an INVITE to a
  vendor that never answers, for a given ``SS_SIP_RESEND_INTERVAL`` (RFC 3261 T1).
* :func:`nat_keepalive_lab` -- a phone behind NAT registers; the switch then keeps its NAT
  mapping open (``SS_SIP_NAT_KEEP_ALIVE_PERIOD`` / ``_MESSAGE``).
"""

from __future__ import annotations

import functools
import itertools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from vosapp.config import parse_config
from vosapp.io.virtual import Packet, VirtualEndpoint, VirtualNetwork, VirtualSwitch
from vosapp.net import Address
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
from vosapp.sip.digest import answer as digest_answer
from vosapp.sip.digest import parse_challenge
from vosapp.sip.sdp import PCMA, PCMU, build_offer
from vosapp.switch.cdr import CdrRecord
from vosapp.trace import TraceRecord

__all__ = [
    "ANSWER",
    "CALLER",
    "NAT_PHONE",
    "SILENT",
    "SWITCH",
    "VENDORS",
    "CallLab",
    "NatKeepAlive",
    "ScriptedVendor",
    "VirtualCaller",
    "call_lab",
    "expected_invite_schedule",
    "nat_keepalive_lab",
    "retransmission_schedule",
]

SWITCH: Address = ("10.0.0.1", 5060)
CALLER: Address = ("10.0.0.2", 5060)
#: Routing gateways in the order the switch tries them (all route prefix "00").
VENDORS: dict[str, Address] = {"vendor-a": ("10.0.0.9", 5060), "vendor-b": ("10.0.0.10", 5060)}
#: A phone behind NAT: its Contact says 192.168.1.20:5060, its packets come from here.
NAT_PHONE: Address = ("203.0.113.7", 40001)
NAT_PHONE_CONTACT = "192.168.1.20:5060"
PHONE_USER, PHONE_PASSWORD = "1001", "lab-1001-secret"

#: Vendor scripts: (delay after the INVITE, status[, with SDP]) steps.
ANSWER: tuple[tuple[Any, ...], ...] = ((0.0, 100), (0.05, 180), (0.1, 200))
SILENT: tuple[tuple[Any, ...], ...] = ()


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(str(value))


class _VirtualUa:
    """An endpoint on the virtual network that keeps what it received, parsed, with times."""

    def __init__(self, net: VirtualNetwork, address: Address) -> None:
        self.net = net
        self.endpoint: VirtualEndpoint = net.add_endpoint(address)
        self.endpoint.on_receive = self._on_packet
        #: (virtual time, request) for every request received, retransmissions included.
        self.requests: list[tuple[float, Request]] = []
        self.responses: list[Response] = []

    @property
    def address(self) -> Address:
        return self.endpoint.address

    def _on_packet(self, packet: Packet) -> None:
        try:
            message = parse(packet.data)
        except ValueError:
            return  # not SIP (a NAT keep-alive): kept in endpoint.received only
        if isinstance(message, Response):
            self.responses.append(message)
            self.on_response(message, packet.source)
        else:
            self.requests.append((packet.time, message))
            self.on_request(message, packet.source)

    def on_response(self, response: Response, source: Address) -> None:
        pass

    def on_request(self, request: Request, source: Address) -> None:
        pass

    def offer(self) -> bytes:
        return bytes(build_offer(self.address[0], 40000, [PCMA, PCMU]))

    def reply(self, request: Request, status: int, source: Address, *,
              to_tag: str | None = None, body: bytes = b"",
              headers: Iterable[tuple[str, str]] = ()) -> None:
        response = make_response(request, status, to_tag=to_tag)
        for name, value in headers:
            response.headers.add(name, value)
        if body:
            response.headers.add("Content-Type", "application/sdp")
            response.body = body
        self.endpoint.send(response, source)

    def methods(self) -> list[str]:
        return [request.method for _, request in self.requests]

    def received(self, method: str) -> list[Request]:
        return [request for _, request in self.requests if request.method == method]


class ScriptedVendor(_VirtualUa):
    """A routing gateway: answers a new INVITE with ``script`` [(delay, status[, sdp])]; 200
    to in-dialog requests (re-INVITE with its SDP); 200 + 487 to CANCEL before its final.

    ``session_timer``: its 2xx accepts the Session-Expires the INVITE offered, with the
    switch as refresher (RFC 4028 §9: ``refresher=uac``, ``Require: timer``); else it
    ignores session timers, as a UAS without them does.
    """

    def __init__(self, net: VirtualNetwork, address: Address,
                 script: Sequence[tuple[Any, ...]] = ANSWER, session_timer: bool = False
                 ) -> None:
        super().__init__(net, address)
        self.script = list(script)
        self.session_timer = session_timer
        self.tag = new_tag()
        self.final_sent = False
        self._pending: list[Any] = []

    @property
    def invites(self) -> list[Request]:
        """Initial INVITEs received (retransmissions included)."""
        return [r for r in self.received("INVITE") if not r.to.tag]

    def on_request(self, request: Request, source: Address) -> None:
        contact = [("Contact", f"<sip:vendor@{self.address[0]}:{self.address[1]}>")]
        if request.method == "INVITE" and not request.to.tag:
            if len(self.invites) > 1:
                return  # a retransmission: the script already runs
            for step in self.script:
                self._pending.append(self.net.clock.call_later(
                    step[0], functools.partial(self._step, request, source, *step[1:])))
        elif request.method == "CANCEL":
            self.reply(request, 200, source)
            if not self.final_sent:
                for timer in self._pending:
                    timer.cancel()
                self.final_sent = True
                self.reply(self.invites[0], 487, source, to_tag=self.tag)
        elif request.method != "ACK":  # BYE, re-INVITE, INFO, UPDATE, OPTIONS
            body = self.offer() if request.method == "INVITE" else b""
            self.reply(request, 200, source, body=body, headers=contact)

    def _step(self, invite: Request, source: Address, status: int,
              with_sdp: bool | None = None) -> None:
        if self.final_sent:
            return
        self.final_sent = status >= 200
        sdp = status == 200 if with_sdp is None else with_sdp
        headers = [("Contact", f"<sip:vendor@{self.address[0]}:{self.address[1]}>")] \
            if status > 100 else []
        offered = invite.headers.get("Session-Expires")
        if 200 <= status < 300 and self.session_timer and offered:
            headers += [("Session-Expires", f"{offered.split(';')[0]};refresher=uac"),
                        ("Require", "timer")]
        self.reply(invite, status, source, to_tag=self.tag if status > 100 else None,
                   body=self.offer() if sdp else b"", headers=headers)


class VirtualCaller(_VirtualUa):
    """The caller, a trusted mapping gateway: INVITE (ACKs its final), BYE on demand, 200 to
    whatever the switch asks in the dialog (with its SDP for a re-INVITE)."""

    def __init__(self, net: VirtualNetwork, address: Address = CALLER,
                 switch: Address = SWITCH) -> None:
        super().__init__(net, address)
        self.switch = switch
        self.invite: Request | None = None
        self.remote_tag: str | None = None
        self._cseq = itertools.count(2)

    def call(self, number: str = "0044123", *, display: str | None = "Alice",
             headers: Sequence[tuple[str, str]] = ()) -> Request:
        host, port = self.address
        self.invite = Request.build(
            "INVITE", SipUri(user=number, host=self.switch[0], port=self.switch[1]),
            via=Via("UDP", host, port, {"branch": new_branch(), "rport": None}),
            from_=NameAddr(SipUri(user=PHONE_USER, host=host), display, {"tag": new_tag()}),
            to=NameAddr(SipUri(user=number, host=self.switch[0])), cseq=1,
            contact=NameAddr(SipUri(user=PHONE_USER, host=host, port=port)), headers=headers,
            body=self.offer(), content_type="application/sdp")
        self.endpoint.send(self.invite, self.switch)
        return self.invite

    def _in_dialog(self, method: str, number: int) -> Request:
        assert self.invite is not None, "call() first"
        host, port = self.address
        return Request.build(
            method, self.invite.uri, via=Via("UDP", host, port, {"branch": new_branch()}),
            from_=self.invite.from_, call_id=self.invite.call_id, cseq=CSeq(number, method),
            to=NameAddr(self.invite.to.uri, None, {"tag": self.remote_tag or ""}))

    def on_response(self, response: Response, source: Address) -> None:
        if response.cseq.method != "INVITE" or response.status < 200 or self.invite is None:
            return
        if response.status < 300:
            self.remote_tag = response.to.tag
            self.endpoint.send(self._in_dialog("ACK", self.invite.cseq.number), self.switch)
        else:  # §17.1.1.3: the ACK of a failure is hop-by-hop, on the INVITE's branch
            ack = Request.build("ACK", self.invite.uri, via=self.invite.top_via,
                                from_=self.invite.from_, to=response.to,
                                call_id=self.invite.call_id,
                                cseq=CSeq(self.invite.cseq.number, "ACK"))
            self.endpoint.send(ack, self.switch)

    def on_request(self, request: Request, source: Address) -> None:
        if request.method != "ACK":
            body = self.offer() if request.method == "INVITE" else b""
            self.reply(request, 200, source, body=body)

    def bye(self) -> None:
        self.endpoint.send(self._in_dialog("BYE", next(self._cseq)), self.switch)

    def statuses(self, method: str = "INVITE") -> list[int]:
        return [r.status for r in self.responses if r.cseq.method == method]

    @property
    def final(self) -> Response | None:
        finals = [r for r in self.responses if r.cseq.method == "INVITE" and r.status >= 200]
        return finals[-1] if finals else None


def lab_config_text(parameters: Mapping[str, object] = {},
                    gateways: Mapping[str, Mapping[str, object]] = {},
                    routed: Iterable[str] = ()) -> str:
    """The config of the call lab: account 1001, the caller as a trusted mapping gateway, the
    ``routed`` :data:`VENDORS` as routing gateways for prefix "00", tried in :data:`VENDORS`
    order (``gateways``: their settings, such as ``{"vendor-a": {"privacy": "Id"}}``).
    Unknown names are an error."""
    routed = set(routed)
    unknown = (set(gateways) | routed) - set(VENDORS)
    if unknown:
        raise ValueError(f"unknown gateway(s) {sorted(unknown)}; the lab has {list(VENDORS)}")
    lines = ["[switch]", f'sip_listen = "{SWITCH[0]}:{SWITCH[1]}"', "[parameters]"]
    lines += [f"{name} = {_toml(value)}" for name, value in parameters.items()]
    lines += ["[[account]]", f'user = "{PHONE_USER}"', f'password = "{PHONE_PASSWORD}"',
              "[[mapping_gateway]]", 'name = "caller"', f'addresses = ["{CALLER[0]}"]']
    for priority, (name, (host, port)) in enumerate(VENDORS.items(), start=1):
        if name not in routed:
            continue
        lines += ["[[routing_gateway]]", f'name = "{name}"', f'address = "{host}:{port}"',
                  'prefixes = ["00"]', f"priority = {priority}"]
        lines += [f"{key} = {_toml(value)}" for key, value in gateways.get(name, {}).items()]
    return "\n".join(lines) + "\n"


@dataclass
class CallLab:
    """A switch, a caller and the vendors on one virtual network (see :func:`call_lab`)."""

    net: VirtualNetwork
    switch: VirtualSwitch
    caller: VirtualCaller
    vendors: dict[str, ScriptedVendor]
    names: dict[str | Address, str] = field(default_factory=dict)

    @property
    def now(self) -> float:
        return self.net.clock.now()

    def run(self, seconds: float) -> CallLab:
        self.net.run(seconds)
        return self

    def records(self) -> list[TraceRecord]:
        return list(self.switch.trace.records())

    def sent_times(self, method: str, to: str | Address) -> list[float]:
        """Virtual times at which the switch sent a ``method`` request (retransmissions
        included) to vendor name / address ``to``."""
        destination = VENDORS[to] if isinstance(to, str) and to in VENDORS else to
        if destination == "caller":
            destination = CALLER
        return [r.mono for r in self.records() if r.direction == "out"
                and r.status is None and r.method == method
                and tuple(r.dst) == tuple(destination)]

    def events(self) -> list[tuple[float, str]]:
        return [(r.mono, r.note) for r in self.records() if r.direction == "event"]

    @property
    def cdr(self) -> CdrRecord | None:
        b2bua = self.switch.app.b2bua
        assert b2bua is not None  # call_lab always installs the call feature
        recent = b2bua.cdr.recent
        return recent[-1] if recent else None

    def ladder(self, title: str, **options: Any) -> Any:
        """The plotly ladder of everything the switch sent and received (``options`` go to
        :class:`~vosapp.lab.ladder.Ladder`: ``method=``, ``since=`` …)."""
        from vosapp.lab.ladder import Ladder, figure

        ladder = Ladder(self.records(), names=self.names,
                        columns=["caller", "switch", *self.vendors], **options)
        return figure(ladder, title=title)


def call_lab(parameters: Mapping[str, object] = {}, *,
             vendors: Mapping[str, Sequence[tuple[Any, ...]]] = {"vendor-a": ANSWER},
             gateways: Mapping[str, Mapping[str, object]] = {},
             session_timers: Iterable[str] = (),
             latency: float = 0.005) -> CallLab:
    """A started switch (B2BUA, no media relay; ``parameters`` = SS_* values) with the caller and
    one :class:`ScriptedVendor` per entry of ``vendors`` (name → script), each a routing
    gateway (``gateways``: its settings); the vendors named in ``session_timers`` accept the
    switch's session timer (see :class:`ScriptedVendor`)."""
    net = VirtualNetwork(latency=latency)
    config = parse_config(lab_config_text(parameters, gateways, vendors))
    switch = net.add_switch(SWITCH, config=config, params=config.parameters,
                            features=["b2bua"])
    switch.start()
    timed = set(session_timers)
    lab_vendors = {name: ScriptedVendor(net, VENDORS[name], script, name in timed)
                   for name, script in vendors.items()}
    names: dict[str | Address, str] = {f"{CALLER[0]}:{CALLER[1]}": "caller",
                                         f"{SWITCH[0]}:{SWITCH[1]}": "switch"}
    names.update({f"{host}:{port}": name for name, (host, port) in VENDORS.items()})
    return CallLab(net, switch, VirtualCaller(net), lab_vendors, names)


# ------------------------------------------------------------------ retransmissions

def expected_invite_schedule(resend_interval_ms: int) -> tuple[list[float], float]:
    """RFC 3261 §17.1.1.2: INVITE copies at 0, T1, 3·T1, 7·T1 … (Timer A doubles, no T2 cap
    for INVITE) until Timer B = 64·T1 ends the transaction. Returns (send times, Timer B)."""
    t1 = resend_interval_ms / 1000.0
    timer_b = 64 * t1
    times = [round(t1 * (2 ** n - 1), 6) for n in range(7)]
    return [t for t in times if t < timer_b], timer_b


def retransmission_schedule(resend_interval_ms: int) -> tuple[list[float], CallLab]:
    """Call a vendor that never answers with ``SS_SIP_RESEND_INTERVAL`` = ``resend_interval_ms``
    (and an INVITE timeout long enough not to cut the schedule short); returns the times (from
    the first) at which the switch sent the INVITE, and the lab."""
    lab = call_lab({"SS_SIP_RESEND_INTERVAL": resend_interval_ms, "SS_SIP_TIMEOUT_INVITE": 300},
                   vendors={"vendor-a": SILENT})
    lab.caller.call()
    _, timer_b = expected_invite_schedule(resend_interval_ms)
    lab.run(timer_b + 2.0)
    times = lab.sent_times("INVITE", "vendor-a")
    return [round(t - times[0], 6) for t in times], lab


# ------------------------------------------------------------------ NAT keep-alive

@dataclass
class NatKeepAlive:
    """A phone behind NAT registered with a switch (see :func:`nat_keepalive_lab`)."""

    net: VirtualNetwork
    switch: VirtualSwitch
    phone: VirtualEndpoint
    registered_at: float

    def run(self, seconds: float) -> NatKeepAlive:
        self.net.run(seconds)
        return self

    def keepalives(self) -> list[tuple[float, bytes]]:
        """(virtual time, payload) of what reached the phone after its registration."""
        return [(p.time, p.data) for p in self.phone.received if p.time > self.registered_at]

    def ladder(self, title: str) -> Any:
        from vosapp.lab.ladder import Ladder, figure

        names: dict[str | Address, str] = {f"{NAT_PHONE[0]}:{NAT_PHONE[1]}": "phone (NAT)",
                                             f"{SWITCH[0]}:{SWITCH[1]}": "switch"}
        # events=False: the registrar's own notes (its temporary store) are not the point here
        return figure(Ladder(self.switch.trace.records(), names=names, events=False),
                      title=title)


def nat_keepalive_lab(parameters: Mapping[str, object] = {}, *,
                      latency: float = 0.005) -> NatKeepAlive:
    """A switch and phone 1001 registering from :data:`NAT_PHONE` with a Contact of
    192.168.1.20 (so the registrar sees it behind NAT; docs/behaviour.md §2.6). Registered
    (digest answered) when this returns."""
    net = VirtualNetwork(latency=latency)
    config = parse_config(lab_config_text(parameters))
    switch = net.add_switch(SWITCH, config=config, params=config.parameters,
                            features=["registrar"])
    switch.start()
    phone = net.add_endpoint(NAT_PHONE)
    call_id, tag, host = new_tag() + "@lab", new_tag(), SWITCH[0]

    def register(cseq: int, authorization: str | None) -> Response:
        request = Request.build(
            "REGISTER", SipUri(host=host),
            via=Via("UDP", "192.168.1.20", 5060, {"branch": new_branch(),
                                                           "rport": None}),
            from_=NameAddr(SipUri(user=PHONE_USER, host=host), None, {"tag": tag}),
            to=NameAddr(SipUri(user=PHONE_USER, host=host)), call_id=call_id, cseq=cseq,
            contact=NameAddr(SipUri(user=PHONE_USER, host=NAT_PHONE_CONTACT.split(":")[0],
                                    port=int(NAT_PHONE_CONTACT.split(":")[1]))),
            headers=[("Expires", "3600")] + ([("Authorization", authorization)]
                                             if authorization else []))
        seen = len(phone.received)
        phone.send(request, SWITCH)
        net.run(0.1)
        response = phone.received[seen].parse()
        assert isinstance(response, Response)
        return response

    challenge = register(1, None)
    if challenge.status != 401:
        raise RuntimeError(f"expected a 401 challenge, got {challenge.status}")
    credentials = digest_answer(parse_challenge(challenge.headers.get("WWW-Authenticate") or ""),
                                "REGISTER", f"sip:{host}", PHONE_USER, PHONE_PASSWORD)
    accepted = register(2, str(credentials))
    if accepted.status != 200:
        raise RuntimeError(f"registration failed: {accepted.status}")
    return NatKeepAlive(net, switch, phone, net.clock.now())
