"""Requests inside an answered call: ACK from the caller, BYE from either side (and the
switch's own hang-up), re-INVITE, INFO and UPDATE relayed on the other leg's dialog (or
answered by the switch itself when the media relay is in the path), and DTMF sent as SIP
INFO by the relay. Part of the call handler (:class:`~vosapp.switch.call.B2bua`)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from vosapp.sip.dialog import DialogError
from vosapp.sip.sdp import PCMA, SdpError, answer
from vosapp.sip.transaction import DeliverRequest, DeliverResponse, TimedOut, TransportFailed
from vosapp.switch.call.session_timer import SDP
from vosapp.switch.call.state import CallState

if TYPE_CHECKING:
    from vosapp.net import Address
    from vosapp.sip import NameAddr, Request, Via
    from vosapp.sip.dialog import Dialog
    from vosapp.sip.transaction import ServerTransaction
    from vosapp.switch.call.journal import CallJournal
    from vosapp.switch.call.legs import Attempt, Call
    from vosapp.switch.core import SwitchCore

log = logging.getLogger(__name__)


class InDialog:
    """The in-dialog part of the call handler."""

    core: SwitchCore
    journal: CallJournal
    dialogs: dict[tuple[str, str], tuple[Call, str]]
    _byes_pending: set[str]

    if TYPE_CHECKING:  # provided by the handler
        def _via(self, transport: str) -> Via: ...
        def _contact(self, transport: str) -> NameAddr: ...
        def _end(self, call: Call) -> None: ...
        def _peer_refreshed(self, call: Call, side: str) -> None: ...
        def _early_lookup(self, request: Request) -> tuple[Call, str] | None: ...

    def _a_txn_event(self, call: Call, event: Any) -> None:
        if isinstance(event, DeliverRequest) and event.request.method == "ACK":
            self._caller_ack(call, event.request)

    def on_ack(self, request: Request, source: Address, transport: str) -> None:
        found = self._lookup(request)
        if found is not None and found[1] == "a":
            self._caller_ack(found[0], request)

    def _caller_ack(self, call: Call, ack: Request) -> None:
        if call.a_acked:
            return
        call.a_acked = True
        if call.a_retransmit is not None:
            call.a_retransmit.cancel()
            call.a_retransmit = None
        if call.ack_pending and call.b_ack is not None and call.answered is not None:
            call.ack_pending = False
            answer = ack
            if not ack.body and call.a_early is not None and call.a_early.prack_answer is not None:
                answer = call.a_early.prack_answer  # RFC 3262 §5: answered in the PRACK
            if answer.body:
                call.legs["b"].sdp_sent = answer.body
                call.b_ack.body = answer.body
                call.b_ack.headers.set("Content-Type",
                                       answer.headers.get("Content-Type") or SDP)
            self.core.send_stateless(call.b_ack, call.answered.destination,
                                     call.answered.transport)

    def _lookup(self, request: Request) -> tuple[Call, str] | None:
        try:
            return self.dialogs.get((request.call_id, request.to.tag or ""))
        except Exception:  # noqa: BLE001
            return None

    def _leg(self, call: Call, side: str) -> tuple[Dialog | None, Address, str]:
        """The leg's dialog and where its requests go; every request built on a leg comes
        through here first, so the journal saves the CSeq ceiling in time. Before the answer,
        the early dialogs (RFC 3262 PRACK, RFC 3311 UPDATE): on leg "b" the first branch of the
        fork that has one."""
        self.journal.sync_leg(call, side)
        if side == "a":
            early = call.a_early.dialog if call.a_early is not None else None
            return call.legs["a"].dialog or early, call.a_source, call.a_transport
        attempt = call.answered or next(
            (a for a in call.fork.live if a.b_early is not None), None)
        assert attempt is not None
        return call.legs["b"].dialog or attempt.b_early, attempt.destination, attempt.transport

    def on_bye(self, request: Request, txn: ServerTransaction) -> None:
        found = self._lookup(request)
        if found is None:
            txn.respond(self.core.make_response(request, 481))
            return
        call, side = found
        self.hangup(call, side, "caller hung up" if side == "a" else "callee hung up")
        txn.respond(self.core.make_response(request, 200))

    def hangup(self, call: Call, from_side: str | None, reason: str,
               bye_headers: Sequence[tuple[str, str]] = ()) -> None:
        """End a confirmed call: the CDR closed, then BYE (with ``bye_headers``, e.g. an
        RFC 3326 Reason) to every leg except ``from_side``."""
        if call.state is not CallState.CONFIRMED:
            return
        call.goto(CallState.ENDED)
        call.record.end_reason = reason
        self._end(call)
        for side in ("a", "b"):
            if side == from_side:
                continue
            dialog, destination, transport = self._leg(call, side)
            if dialog is None:
                continue
            try:
                bye = dialog.create_request("BYE", via=self._via(transport),
                                            headers=bye_headers)
                self._byes_pending.add(bye.call_id)
                self.core.send_request(bye, destination, transport,
                                       self._bye_listener(bye.call_id))
            except (DialogError, OSError) as exc:
                log.warning("BYE on leg %s failed: %s", side, exc)

    def _bye_listener(self, call_id: str) -> Callable[[Any], None]:
        def settled(event: Any) -> None:
            final = isinstance(event, DeliverResponse) and event.response.status >= 200
            if final or isinstance(event, (TimedOut, TransportFailed)):
                self._byes_pending.discard(call_id)

        return settled

    def on_in_dialog(self, request: Request, txn: ServerTransaction) -> None:
        found = self._lookup(request) or self._early_lookup(request)
        early_update = request.method == "UPDATE" and found is not None and (
            found[0].state is CallState.ROUTING)  # RFC 3311 §5.1: UPDATE in an early dialog
        if found is None or not (found[0].state is CallState.CONFIRMED or early_update):
            txn.respond(self.core.make_response(request, 481))
            return
        call, side = found
        attempt = call.answered or self._early_attempt(call, side, request)
        if attempt is None:
            txn.respond(self.core.make_response(request, 481))
            return
        if side == "b" and call.answered is None:
            dialog = attempt.b_early  # the early dialog of the branch it came on
        else:
            dialog, _dest, _transport = self._leg(call, side)
        if dialog is None or not dialog.receive_request(request):
            txn.respond(self.core.make_response(request, 500))
            return
        self.journal.sync_leg(call, side)  # a target refresh moved the remote target
        if request.method in ("INVITE", "UPDATE"):
            self._peer_refreshed(call, side)
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
        self._relay_in_dialog(call, side, request, txn)

    @staticmethod
    def _early_attempt(call: Call, side: str, request: Request) -> Attempt | None:
        """Before the answer: the branch whose early dialog ``request`` came in on (leg "b"),
        or the first branch that has an early dialog (a request from the caller)."""
        early = [a for a in call.fork.live if a.b_early is not None]
        if side == "b":
            return next((a for a in early if a.b_early is not None
                         and a.b_early.local_tag == request.to.tag), None)
        return early[0] if early else None

    def _relay_in_dialog(self, call: Call, side: str, request: Request,
                         txn: ServerTransaction, *,
                         headers: Iterable[tuple[str, str]] = (),
                         to: tuple[Dialog | None, Address, str] | None = None) -> None:
        """The request on the other leg's dialog (``to``: a given dialog, destination and
        transport instead), with extra ``headers``; its final answer relayed back."""
        other = "b" if side == "a" else "a"
        other_dialog, destination, transport = to or self._leg(call, other)
        if other_dialog is None:
            txn.respond(self.core.make_response(request, 481))
            return
        content_type = request.headers.get("Content-Type")
        out = other_dialog.create_request(
            request.method, via=self._via(transport), contact=self._contact(transport),
            body=request.body, content_type=content_type if request.body else None,
            headers=headers)

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
                        call.legs[side].sdp_sent = response.body
                    other_dialog.update_from_response(response)
                    ack = other_dialog.ack_for_2xx(out, via=self._via(transport))
                    self.core.send_stateless(ack, destination, transport)
                    reply.headers.add("Contact", str(self._contact(txn.transport)))
                txn.respond(reply)
            elif isinstance(event, (TimedOut, TransportFailed)) and not txn.final_sent:
                txn.respond(self.core.make_response(request, 408))

        if request.method == "INVITE" and request.body:
            call.legs[other].sdp_sent = request.body
        self.core.send_request(out, destination, transport, relay_response)

    def _local_reinvite(self, call: Call, side: str, request: Request,
                        txn: ServerTransaction) -> None:
        """Media proxy in the path: answer the re-INVITE with the relay's SDP (hold,
        refresh, moved media); the leg is re-latched to the new address."""
        attempt = call.answered
        assert attempt is not None and attempt.media is not None
        local = attempt.media.local_a if side == "a" else attempt.media.local_b
        spec_answer = attempt.a_answer if side == "a" else attempt.b_answer
        codec = spec_answer.codec if spec_answer is not None else PCMA
        body = b""
        remote = None
        if request.body:
            try:
                settings = (call.caller.gateway.settings if side == "a"
                            else attempt.target.settings)
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
            call.legs[side].sdp_sent = body
        timer = call.legs[side].session_timer
        if timer is not None and not timer.liveness and request.headers.get("Session-Expires"):
            reply.headers.add("Session-Expires", timer.header())
            reply.headers.add("Require", "timer")
        txn.respond(reply)

    def _send_info(self, call: Call, side: str, info: Any) -> None:
        if call.state is not CallState.CONFIRMED:
            return
        dialog, destination, transport = self._leg(call, side)
        if dialog is None:
            return
        request = dialog.create_request("INFO", via=self._via(transport), body=info.body,
                                        content_type=info.content_type)
        self.core.send_request(request, destination, transport)


__all__ = ["InDialog"]
