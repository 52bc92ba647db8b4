"""Scripted 100rel phones for the PRACK tests (RFC 3262): a vendor that sends reliable
provisionals and a caller that PRACKs them, on the virtual network."""

from __future__ import annotations

from collections.abc import Sequence

from tests.switch.b2bua_harness import SWITCH, VENDOR_A, Caller, Vendor
from vosapp.io.virtual import Packet, VirtualNetwork
from vosapp.sip import NameAddr, Request, Response, SipUri, Via, make_response, new_branch, parse

VENDOR_RSEQ = 777


class RelVendor(Vendor):
    """A UAS that sends the provisionals in ``reliable`` with ``Require: 100rel`` and RSeq
    777, 778 ...; answers PRACK "200 PRACK ok" (and UPDATE 200); can send UPDATE itself."""

    def __init__(self, net: VirtualNetwork, script: Sequence[tuple],
                 reliable: Sequence[int] = (183,)) -> None:
        super().__init__(net, VENDOR_A, script=script)
        self.reliable = set(reliable)
        self.rseq = VENDOR_RSEQ
        self.last_rseq: dict[int, int] = {}  # status -> RSeq (a repeat resends the same)
        self.peer: tuple[str, int] | None = None
        self.answers: list[Response] = []

    def _on(self, packet: Packet) -> None:
        message = parse(packet.data)
        self.peer = packet.source
        if isinstance(message, Response):
            self.answers.append(message)
            return
        if message.method == "PRACK":
            self.requests.append(message)
            self.endpoint.send(make_response(message, 200, "PRACK ok"), packet.source)
            return
        super()._on(packet)

    def _response(self, request: Request, status: int, with_sdp: bool) -> Response:
        response = super()._response(request, status, with_sdp)
        if status in self.reliable:
            if status not in self.last_rseq:
                self.last_rseq[status] = self.rseq
                self.rseq += 1
            response.headers.add("Require", "100rel")
            response.headers.add("RSeq", str(self.last_rseq[status]))
        return response

    def update(self) -> None:
        """UPDATE to the switch in the early dialog of the last INVITE."""
        invite = self.invites[-1]
        host, port = self.endpoint.address
        request = Request.build(
            "UPDATE", invite.contacts[0].uri,
            via=Via("UDP", host, port, {"branch": new_branch()}),
            from_=NameAddr(invite.to.uri, None, {"tag": self.tag}), to=invite.from_,
            call_id=invite.call_id, cseq=1, contact=NameAddr(SipUri(host=host, port=port)))
        self.endpoint.send(request, self.peer or SWITCH)


class RelCaller(Caller):
    """A UAC that PRACKs reliable provisionals (after ``prack_delay``; None: never), answers
    UPDATE 200 and records when each response arrived."""

    def __init__(self, net: VirtualNetwork, prack_delay: float | None = 0.0,
                 prack_body: bytes = b"") -> None:
        super().__init__(net)
        self.prack_delay = prack_delay
        self.prack_body = prack_body
        self.arrivals: list[tuple[float, Response]] = []

    def _on(self, packet: Packet) -> None:
        message = parse(packet.data)
        if isinstance(message, Request) and message.method == "UPDATE":
            self.requests.append(message)
            self.endpoint.send(make_response(message, 200), packet.source)
            return
        super()._on(packet)
        if not isinstance(message, Response):
            return
        self.arrivals.append((self.net.clock.now(), message))
        if (message.cseq.method == "INVITE" and message.headers.get("RSeq")
                and self.prack_delay is not None):
            self.remote_tag = message.to.tag
            rack = f"{message.headers.get('RSeq')} {message.cseq.number} INVITE"
            self.net.clock.call_later(self.prack_delay, lambda: self.prack(rack))

    def prack(self, rack: str) -> None:
        request = self._in_dialog("PRACK", body=self.prack_body)
        request.headers.add("RAck", rack)
        self.endpoint.send(request, SWITCH)

    def update(self) -> None:
        self.endpoint.send(self._in_dialog("UPDATE"), SWITCH)

    def provisionals(self) -> list[Response]:
        return [r for r in self.responses if r.cseq.method == "INVITE" and r.status in
                range(101, 200)]
