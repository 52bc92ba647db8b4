"""Requests inside an answered call: ACK from the caller, BYE from either side (and the
switch's own hang-up), re-INVITE, INFO and UPDATE relayed on the other leg's dialog, and DTMF
sent as SIP INFO by the relay. Part of the call handler (:class:`~vosapp.switch.call.B2bua`).

Offers inside the call (re-INVITE, UPDATE: hold, resume, moved media) go to the other leg.
Without the media proxy the SDP passes unchanged (the endpoints' own addresses and ``o=``).
With it the other leg gets the relay's SDP for that leg with the originator's direction
(sendonly/recvonly/inactive/sendrecv, the old ``c=0.0.0.0`` read as hold) and that leg's own
``o=`` (version +1), the far side's answer comes back as the relay's answer on the
originator's leg (its own ``o=``, version +1), and the relay re-latches and follows each
endpoint's direction. A repeated offer or a re-INVITE without SDP on a relayed call (a session
refresh) is answered by the switch with the leg's current SDP, unchanged version.

A re-INVITE's 2xx is resent until the ACK (§13.3.1.4); the far leg's ACK goes at once, or
with the originator's ACK when that carries the answer. Glare: an offer arriving on a leg
where the switch's own offer waits gets 491 (§14.1); when the switch's relayed re-INVITE gets
491 it is passed back to the originator, which retries after its own randomized delay (the
switch keeps no offer of its own to retry). Its session-timer refreshes that meet 491 are
retried at the next refresh period."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from vosapp.sip.dialog import DialogError
from vosapp.sip.sdp import SdpError, SessionDescription
from vosapp.sip.transaction import DeliverRequest, DeliverResponse, TimedOut, TransportFailed
from vosapp.switch.call.negotiation import (
    MediaRefused,
    answer_direction,
    checked_answer,
    offered_direction,
    rejecting_answer,
    relay_reanswer,
    relay_reoffer,
    unchanged_offer,
)
from vosapp.switch.call.session_timer import SDP
from vosapp.switch.call.state import CallState

if TYPE_CHECKING:
    from vosapp.net import Address
    from vosapp.sip import Request, Response, Via
    from vosapp.sip.dialog import Dialog
    from vosapp.sip.sdp import Answer
    from vosapp.sip.transaction import ServerTransaction
    from vosapp.switch.call.journal import CallJournal
    from vosapp.switch.call.legs import Attempt, Call
    from vosapp.switch.core import SwitchCore

log = logging.getLogger(__name__)

_OTHER = {"a": "b", "b": "a"}
_NAMES = {"a": "caller", "b": "vendor"}


class InDialog:
    """The in-dialog part of the call handler."""

    core: SwitchCore
    journal: CallJournal
    dialogs: dict[tuple[str, str], tuple[Call, str]]
    _byes_pending: set[str]

    if TYPE_CHECKING:  # provided by the handler
        def _via(self, transport: str) -> Via: ...
        def _contact(self, transport: str) -> str: ...
        def _end(self, call: Call) -> None: ...
        def _peer_refreshed(self, call: Call, side: str) -> None: ...
        def event(self, call: Call, text: str) -> None: ...
        def _early_lookup(self, request: Request) -> tuple[Call, str] | None: ...

    def _a_txn_event(self, call: Call, event: Any) -> None:
        if isinstance(event, DeliverRequest) and event.request.method == "ACK":
            self._caller_ack(call, event.request)

    def on_ack(self, request: Request, source: Address, transport: str) -> None:
        found = self._lookup(request)
        if found is not None:
            self._leg_ack(found[0], found[1], request)

    def _caller_ack(self, call: Call, ack: Request) -> None:
        if call.a_acked:
            return
        call.a_acked = True
        if call.a_retransmit is not None:
            call.a_retransmit.cancel()
            call.a_retransmit = None
        if call.ack_pending:
            answer = ack
            if not ack.body and call.a_early is not None and call.a_early.prack_answer is not None:
                answer = call.a_early.prack_answer  # RFC 3262 §5: answered in the PRACK
            if answer.body:
                call.legs["b"].sdp_sent = call.legs["a"].sdp_received = answer.body
            self._ack_vendor(call, answer.body, answer.headers.get("Content-Type") or SDP)

    def _ack_vendor(self, call: Call, answer: bytes, content_type: str = SDP) -> None:
        """Late offer: the ACK for the vendor's 2xx, kept back until now, goes with
        ``answer`` (the caller's; §13.2.2.4)."""
        if not call.ack_pending or call.b_ack is None or call.answered is None:
            return
        call.ack_pending = False
        if answer:
            call.b_ack.body = answer
            call.b_ack.headers.set("Content-Type", content_type)
        self.core.send_stateless(call.b_ack, call.answered.destination,
                                 call.answered.transport)

    def _lookup(self, request: Request) -> tuple[Call, str] | None:
        try:
            return self.dialogs.get((request.call_id, request.to_tag or ""))
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
        if call.ack_pending and call.answered is not None:
            # Late offer, and the caller's ACK with the answer never came (§13.3.1.4 gave
            # up) or the call ended first: the vendor's 2xx must still be ACKed before the
            # BYE, and that ACK must carry an answer. The switch has none from the caller,
            # so it rejects every offered stream (RFC 3264 §6, port 0): the valid answer
            # §13.2.2.4 asks for when a 2xx offer is not taken and a BYE follows.
            host = self.core.local_address(call.answered.transport)[0]
            self._ack_vendor(call, rejecting_answer(call.legs["b"].sdp_received, host))
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
        if early_update:  # relayed as it is: the early offer/answer is the endpoints' own
            self._relay_in_dialog(call, side, request, txn)
            return
        offer = request.method in ("INVITE", "UPDATE")
        if offer:
            if self._glare(call, side, request, txn):
                return
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
        if offer and relay is not None:
            self._reoffer_through_relay(call, side, request, txn)
        elif offer:
            offer_type = (request.headers.get("Content-Type") or SDP) if request.body else None
            self._forward_offer(call, side, request, txn, request.body, offer_type,
                                lambda response: response.body)
        else:
            self._relay_in_dialog(call, side, request, txn)

    def _glare(self, call: Call, side: str, request: Request, txn: ServerTransaction) -> bool:
        """An offer (re-INVITE, UPDATE) while one is open on the leg: 491 when ours waits
        for its answer there (RFC 3261 §14.1, RFC 3311 §5.2), 500 with a random Retry-After
        of 0-10 s while the endpoint's previous one is still being handled (§14.2)."""
        leg = call.legs[side]
        if leg.offer_out:
            txn.respond(self.core.make_response(request, 491))
            self.event(call, f"{request.method} from the {_NAMES[side]} crossed ours: 491 "
                       "(RFC 3261 §14.1)")
            return True
        if leg.offer_in:
            response = self.core.make_response(request, 500, "Server Internal Error "
                                               "(previous offer still pending)")
            response.headers.add("Retry-After", str(random.randint(0, 10)))
            txn.respond(response)
            return True
        return False

    @staticmethod
    def _early_attempt(call: Call, side: str, request: Request) -> Attempt | None:
        """Before the answer: the branch whose early dialog ``request`` came in on (leg "b"),
        or the first branch that has an early dialog (a request from the caller)."""
        early = [a for a in call.fork.live if a.b_early is not None]
        if side == "b":
            return next((a for a in early if a.b_early is not None
                         and a.b_early.local_tag == request.to_tag), None)
        return early[0] if early else None

    def _relay_in_dialog(self, call: Call, side: str, request: Request,
                         txn: ServerTransaction, *,
                         headers: Iterable[tuple[str, str]] = (),
                         to: tuple[Dialog | None, Address, str] | None = None) -> None:
        """A request without an offer of the switch's making (INFO, PRACK, an early UPDATE)
        on the other leg's dialog (``to``: a given dialog, destination and transport instead),
        with extra ``headers``; its final answer relayed back."""
        other_dialog, destination, transport = to or self._leg(call, _OTHER[side])
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
                txn.respond(reply)
            elif isinstance(event, (TimedOut, TransportFailed)) and not txn.final_sent:
                txn.respond(self.core.make_response(request, 408))

        self.core.send_request(out, destination, transport, relay_response)

    def _forward_offer(self, call: Call, side: str, request: Request, txn: ServerTransaction,
                       body: bytes, content_type: str | None,
                       answer_back: Callable[[Response], bytes]) -> None:
        """The re-INVITE/UPDATE ``request`` as a new one on the other leg's dialog carrying
        ``body``; the far side's final answer relayed back, with ``answer_back(2xx)`` as the
        body of our 2xx. Both legs count as having an offer open until then (glare). For a
        re-INVITE our 2xx is resent until the originator's ACK (§13.3.1.4) and the far leg
        is ACKed at once, or with the originator's ACK when that carries the answer (the
        offer was in the 2xx, §13.2.1)."""
        other = _OTHER[side]
        other_dialog, destination, transport = self._leg(call, other)
        if other_dialog is None:
            txn.respond(self.core.make_response(request, 481))
            return
        leg, far = call.legs[side], call.legs[other]
        invite = request.method == "INVITE"
        out = other_dialog.create_request(
            request.method, via=self._via(transport), contact=self._contact(transport),
            body=body, content_type=content_type)
        leg.offer_in = far.offer_out = True
        acks: list[Request] = []

        def send_ack(ack: Request) -> None:
            acks.append(ack)
            self.core.send_stateless(ack, destination, transport)

        def on_event(event: Any) -> None:
            if isinstance(event, DeliverResponse):
                response = event.response
                if 200 <= response.status < 300 and acks:  # §13.2.2.4: a resent 2xx
                    self.core.send_stateless(acks[0], destination, transport)
                if response.status < 200 or txn.final_sent:
                    return
                far.offer_out = False
                if response.status >= 300 or call.state is not CallState.CONFIRMED:
                    leg.offer_in = False
                    reply = self.core.make_response(request, response.status, response.reason)
                    for name in ("Warning", "Retry-After"):
                        value = response.headers.get(name)
                        if value:
                            reply.headers.add(name, value)
                    txn.respond(reply)  # a 491 passes back: the originator retries (§14.1)
                    return
                other_dialog.update_from_response(response)
                reply_body = answer_back(response)
                if body:
                    far.sdp_sent = body
                if response.body:
                    far.sdp_received = response.body
                if request.body:
                    leg.sdp_received = request.body
                reply = self._offer_reply(call, side, request, txn, reply_body,
                                          response.headers.get("Content-Type"))
                if not invite:
                    leg.offer_in = False
                    txn.respond(reply)
                    return
                ack = other_dialog.ack_for_2xx(out, via=self._via(transport))
                if request.body or not response.body:
                    send_ack(ack)
                else:  # the originator's ACK carries the answer to the far side's offer
                    def relay_ack(caller_ack: Request) -> None:
                        if caller_ack.body:
                            far.sdp_sent = ack.body = caller_ack.body
                            ack.headers.set("Content-Type",
                                            caller_ack.headers.get("Content-Type") or SDP)
                        send_ack(ack)

                    leg.on_reinvite_ack = relay_ack
                self._answer_reinvite(call, side, txn, reply)
            elif isinstance(event, (TimedOut, TransportFailed)):
                far.offer_out = leg.offer_in = False
                if not txn.final_sent:
                    txn.respond(self.core.make_response(request, 408))

        if invite:
            self._watch_reinvite_ack(call, side, txn)
        self.core.send_request(out, destination, transport, on_event)

    def _offer_reply(self, call: Call, side: str, request: Request, txn: ServerTransaction,
                     body: bytes, content_type: str | None = None) -> Response:
        """Our 2xx to an offer on ``side``: Contact, the SDP (remembered as sent on the leg)
        and, for a session refresh, the leg's Session-Expires (RFC 4028 §9)."""
        reply = self.core.make_response(request, 200)
        reply.headers.add("Contact", self._contact(txn.transport))
        if body:
            reply.headers.add("Content-Type", content_type or SDP)
            reply.body = body
            call.legs[side].sdp_sent = body
        timer = call.legs[side].session_timer
        if timer is not None and not timer.liveness and request.headers.get("Session-Expires"):
            reply.headers.add("Session-Expires", timer.header())
            reply.headers.add("Require", "timer")
        return reply

    def _reoffer_through_relay(self, call: Call, side: str, request: Request,
                               txn: ServerTransaction) -> None:
        """Media proxy in the path: a changed offer (hold, resume, moved media) goes to the
        other leg as the relay's SDP with the originator's direction (RFC 3264 §8.4), and the
        far side's answer comes back as the relay's answer; each leg keeps its own ``o=``
        (version +1). A repeated offer or none (a session refresh) is answered here with the
        SDP the leg already has, the other leg undisturbed."""
        attempt = call.answered
        assert attempt is not None and attempt.media is not None
        assert attempt.a_answer is not None and attempt.b_answer is not None
        media = attempt.media
        leg = call.legs[side]
        offer = None
        if request.body:
            try:
                offer = SessionDescription.parse(request.body)
            except SdpError as exc:
                self._refuse_offer(request, txn, exc.reason)
                return
        if offer is None or unchanged_offer(offer, leg.sdp_received):
            reply = self._offer_reply(call, side, request, txn, leg.sdp_sent)
            if request.method == "INVITE":
                leg.offer_in = True
                self._watch_reinvite_ack(call, side, txn)
                self._answer_reinvite(call, side, txn, reply)
            else:
                txn.respond(reply)
            return
        other = _OTHER[side]
        running = {"a": attempt.a_answer.codec, "b": attempt.b_answer.codec}
        local = {"a": media.local_a, "b": media.local_b}
        settings = (call.caller.gateway.settings if side == "a"
                    else attempt.target.settings)
        audio = SessionDescription.parse(leg.sdp_sent).first_audio()

        def reanswer(far_direction: str) -> Answer:
            return relay_reanswer(offer, running[side], local[side], leg.sdp_sent,
                                  far_direction=far_direction,
                                  telephone_event=audio is not None
                                  and audio.telephone_event_pt is not None,
                                  g729_mode=settings.g729_mode)

        try:
            reanswer("sendrecv")  # the running codec must still be offered: else 488 here
        except SdpError as exc:
            self._refuse_offer(request, txn, exc.reason)
            return
        out_sdp = relay_reoffer(offer, call.legs[other].sdp_sent, running[other])
        source, destination = self._leg(call, side)[1], self._leg(call, other)[1]

        def answer_back(response: Response) -> bytes:
            far_direction = "sendrecv"
            try:
                far_answer = checked_answer(response.body, out_sdp)
            except (SdpError, MediaRefused) as exc:
                self.event(call, f"answer from the {_NAMES[other]} to the relayed offer "
                           f"ignored: {exc}")
            else:
                far_direction = far_answer.direction
                media.relatch(other, (far_answer.remote_address or destination[0],
                                      far_answer.remote_port))
                media.set_direction(other, far_direction)
            mine = reanswer(far_direction)
            media.relatch(side, (mine.remote_address or source[0], mine.remote_port))
            media.set_direction(side, answer_direction(mine.direction,
                                                       offered_direction(offer)))
            self.event(call, f"{request.method} from the {_NAMES[side]} "
                       f"({offered_direction(offer)}) relayed; the {_NAMES[other]} answered "
                       f"{far_direction}")
            return bytes(mine.sdp)

        self._forward_offer(call, side, request, txn, bytes(out_sdp), SDP, answer_back)

    def _refuse_offer(self, request: Request, txn: ServerTransaction, reason: str) -> None:
        response = self.core.make_response(request, 488)
        host = self.core.local_address(txn.transport)[0]
        response.headers.add("Warning", f'305 {host} "{reason}"')
        txn.respond(response)

    # ------------------------------------------------------------ re-INVITE 2xx and ACK
    def _watch_reinvite_ack(self, call: Call, side: str, txn: ServerTransaction) -> None:
        def on_event(event: Any) -> None:
            if isinstance(event, DeliverRequest) and event.request.method == "ACK":
                self._leg_ack(call, side, event.request)

        txn.add_listener(on_event)

    def _answer_reinvite(self, call: Call, side: str, txn: ServerTransaction,
                         reply: Response) -> None:
        """Send our 2xx to a re-INVITE and resend it until its ACK (§13.3.1.4)."""
        leg = call.legs[side]
        leg.reinvite_2xx, leg.reinvite_txn = reply, txn
        txn.respond(reply)
        if txn.transport == "UDP":
            self._resend_reinvite_2xx(call, side, self.core.transactions.timers.t1, 0.0)

    def _resend_reinvite_2xx(self, call: Call, side: str, interval: float,
                             elapsed: float) -> None:
        timers = self.core.transactions.timers
        leg = call.legs[side]

        def again() -> None:
            reply, txn = leg.reinvite_2xx, leg.reinvite_txn
            if reply is None or txn is None or call.state is not CallState.CONFIRMED:
                return
            if elapsed + interval >= 64 * timers.t1:
                self.event(call, f"no ACK for the 200 to the {_NAMES[side]}'s re-INVITE "
                           "(§13.3.1.4): hanging up")
                self.hangup(call, None, "no ACK for a re-INVITE")
                return
            try:
                txn.respond(reply)
            except Exception:  # noqa: BLE001 - transaction already gone
                return
            self._resend_reinvite_2xx(call, side, min(interval * 2, timers.t2),
                                      elapsed + interval)

        leg.reinvite_retransmit = self.core.clock.call_later(interval, again)

    def _leg_ack(self, call: Call, side: str, ack: Request) -> None:
        leg = call.legs[side]
        reply = leg.reinvite_2xx
        if reply is None or ack.cseq.number != reply.cseq.number:
            if side == "a":
                self._caller_ack(call, ack)
            return
        leg.reinvite_2xx = leg.reinvite_txn = None
        leg.offer_in = False
        if leg.reinvite_retransmit is not None:
            leg.reinvite_retransmit.cancel()
            leg.reinvite_retransmit = None
        relay_ack, leg.on_reinvite_ack = leg.on_reinvite_ack, None
        if relay_ack is not None:
            relay_ack(ack)

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
