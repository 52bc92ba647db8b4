"""The vendor leg of a call attempt: the responses to the switch's INVITE (provisionals and
the call-progress timers, SS_SIP_TIMEOUT_INVITE, the 422 retry of RFC 4028 §6, the codec
conversion re-offer), and the 2xx that answers the call (media, dialogs, the caller's 2xx
retransmitted until its ACK). Part of the call handler (:class:`~vosapp.switch.call.B2bua`);
responses for attempts the switch gave up go to :mod:`vosapp.switch.call.abandoned`."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from vosapp.sip import CSeq
from vosapp.sip.dialog import Dialog, DialogError
from vosapp.sip.sdp import SdpError
from vosapp.sip.transaction import DeliverResponse, TimedOut, TransportFailed
from vosapp.switch.call.negotiation import (
    AnswerRefused,
    MediaRefused,
    answer_media,
    checked_answer,
    conversion_plan,
    vendor_offer,
)
from vosapp.switch.call.session_timer import (
    SDP,
    caller_session_timer,
    session_expires,
    vendor_session_timer,
)
from vosapp.switch.call.state import AttemptState, CallState

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from vosapp.sip import Request, Response, Via
    from vosapp.switch.call.journal import CallJournal
    from vosapp.switch.call.legs import Attempt, Call, EndedCall
    from vosapp.switch.call.media import MediaBackend
    from vosapp.switch.call.session_timer import LegTimer
    from vosapp.switch.core import SwitchCore


class VendorLeg:
    """The vendor-response part of the call handler."""

    core: SwitchCore
    journal: CallJournal
    dialogs: dict[tuple[str, str], tuple[Call, str]]

    if TYPE_CHECKING:  # provided by the handler and its other parts
        @property
        def media(self) -> MediaBackend: ...
        def event(self, call: Call, text: str) -> None: ...
        def _via(self, transport: str) -> Via: ...
        def _a_response(self, call: Call, status: int, reason: str | None = None, *,
                        body: bytes = b"", warning: str | None = None,
                        warning_code: int = 305) -> Response: ...
        def _timer(self, attempt: Attempt, delay: float, callback: Callable[[], None]
                   ) -> None: ...
        def _stop_timer(self, attempt: Attempt) -> None: ...
        def _close_media(self, attempt: Attempt) -> None: ...
        def fail(self, call: Call, status: int, reason: str, end_reason: str, *,
                 warning: str | None = None, warning_code: int = 305) -> None: ...
        def _branch_failed(self, call: Call, attempt: Attempt, status: int, what: str,
                           response: Response | None, *,
                           invite_timeout: bool = False) -> None: ...
        def _abandon(self, attempt: Attempt) -> None: ...
        def _abandon_live(self, call: Call) -> None: ...
        def _ack_and_bye(self, attempt: Attempt, response: Response) -> None: ...
        def on_given_up_response(self, call: Call | EndedCall, attempt: Attempt,
                                 response: Response) -> None: ...
        def _vendor_provisional(self, call: Call, attempt: Attempt, response: Response
                                ) -> tuple[bool, int | None]: ...
        def _provisional_to_caller(self, call: Call, attempt: Attempt, response: Response,
                                   vendor_rseq: int | None) -> None: ...
        def _early_answered(self, call: Call, attempt: Attempt) -> None: ...
        def _send_info(self, call: Call, side: str, info: Any) -> None: ...
        def hangup(self, call: Call, from_side: str | None, reason: str,
                   bye_headers: Sequence[tuple[str, str]] = ()) -> None: ...
        def _start_session_timers(self, call: Call,
                                  timers: dict[str, LegTimer | None]) -> None: ...

    def on_vendor_event(self, call: Call, attempt: Attempt, event: Any) -> None:
        if isinstance(event, DeliverResponse):
            self.on_vendor_response(call, attempt, event.response)
        elif isinstance(event, (TimedOut, TransportFailed)):
            if attempt.done or attempt not in call.fork.attempts or (
                    call.state is not CallState.ROUTING):
                return
            what = "timeout" if isinstance(event, TimedOut) else "transport failure"
            attempt.goto(AttemptState.FAILED)
            self._branch_failed(call, attempt, 408, what, None,
                                invite_timeout=isinstance(event, TimedOut))

    def on_vendor_response(self, call: Call, attempt: Attempt, response: Response) -> None:
        status = response.status
        stale = (attempt.done or attempt not in call.fork.attempts
                 or call.state is CallState.ENDED)
        if status >= 200 and status < 300:
            dialog = call.legs["b"].dialog
            if attempt is call.answered and dialog is not None and (
                    response.to_tag == dialog.remote_tag):
                # §13.2.2.4: a retransmitted 2xx is ACKed again (a late offer's ACK waits
                # for the caller's answer)
                if call.b_ack is not None and not call.ack_pending:
                    self.core.send_stateless(call.b_ack, attempt.destination, attempt.transport)
                return
            if stale:
                self.on_given_up_response(call, attempt, response)
                return
            self.on_vendor_answer(call, attempt, response)
            return
        if stale:
            self.on_given_up_response(call, attempt, response)
            return
        if status < 200:
            first = attempt.state is AttemptState.CALLING
            if first:
                attempt.goto(AttemptState.PROCEEDING)
            self._on_provisional(call, attempt, response, first)
            return
        # final failure
        if status == 422 and self._retry_422(call, attempt, response):
            return
        if status in (488, 606) and self._reoffer_for_conversion(call, attempt):
            return
        attempt.goto(AttemptState.FAILED)
        self._branch_failed(call, attempt, status, f"{status}", response)

    def _on_provisional(self, call: Call, attempt: Attempt, response: Response,
                        first: bool) -> None:
        """Call-progress timers (SS_SIP_TIMEOUT_*) and the provisional relayed to the caller
        (with the relay's SDP when the vendor sent early media)."""
        status = response.status
        params = call.params
        if status == 100:
            if first:
                self._timer(attempt, params["SS_SIP_TIMEOUT_TRYING"],
                            lambda: self.on_progress_timeout(call, attempt, "trying"))
            return
        keep, vendor_rseq = self._vendor_provisional(call, attempt, response)
        if not keep:
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
                self.event(call, f"early media SDP from {attempt.target.name} ignored: {exc}")
                body = b""
        self._provisional_to_caller(call, attempt,
                                    self._a_response(call, status, response.reason, body=body),
                                    vendor_rseq)

    def _retry_422(self, call: Call, attempt: Attempt, response: Response) -> bool:
        """RFC 4028 §6: 422 Session Interval Too Small with a Min-SE above what we asked →
        the same INVITE again on the same gateway (same Call-ID and tags, new CSeq and Via
        branch) with Session-Expires and Min-SE raised to the Min-SE; once per attempt."""
        min_se = session_expires(response.headers.get("Min-SE"))
        asked = session_expires(attempt.invite.headers.get("Session-Expires"))
        if attempt.retried_422 or min_se is None or (asked is not None
                                                     and min_se[0] <= asked[0]):
            return False
        attempt.retried_422 = True
        call.record.gateways_tried.append(f"{attempt.target.name}:422")
        invite = copy.deepcopy(attempt.invite)
        invite.headers.set("Session-Expires", str(min_se[0]))
        invite.headers.set("Min-SE", str(min_se[0]))
        self.event(call, f"{attempt.target.name} answered 422 (Min-SE {min_se[0]}): INVITE "
                   "again with Session-Expires raised (RFC 4028 §6)")
        self._invite_again(call, attempt, invite)
        return True

    def _reoffer_for_conversion(self, call: Call, attempt: Attempt) -> bool:
        """docs/behaviour.md §5 "Allow codec conversion": the vendor refused the first offer for its codecs
        (488/606) → the same gateway gets its own codec through the relay, which transcodes
        (:func:`~vosapp.switch.call.negotiation.conversion_plan`), before any failover."""
        plan = conversion_plan(attempt.plan, call.offer, call.caller.gateway.settings,
                               attempt.target.settings)
        if plan is None or attempt.media_started:  # early media already runs on the old codecs
            return False
        call.record.gateways_tried.append(f"{attempt.target.name}:488")
        try:
            if attempt.media is None:
                attempt.media = self.media.allocate()
        except Exception as exc:  # noqa: BLE001 - no relay: the 488 stands
            self.event(call, f"no relay for codec conversion: {exc}")
            return False
        offer = vendor_offer(call.offer, call.a_invite.body, plan, attempt.target.settings,
                             attempt.media.local_b)
        invite = copy.deepcopy(attempt.invite)
        invite.body = offer.body
        invite.headers.set("Content-Type", SDP)
        attempt.plan, attempt.offer = plan, offer.sdp
        self.event(call, f"{attempt.target.name} refused the offer: offering "
                   f"{plan.b_codecs[0].encoding if plan.b_codecs else '?'} through the relay "
                   "(codec conversion)")
        self._invite_again(call, attempt, invite)
        return True

    def _invite_again(self, call: Call, attempt: Attempt, invite: Request) -> None:
        """``invite`` (a copy of the attempt's) again on the same gateway after a final
        refusal: same Call-ID and tags, new CSeq and Via branch; not a failover."""
        self._stop_timer(attempt)
        invite.headers.set("Via", self.core.new_via(attempt.transport))
        invite.headers.set("CSeq", str(CSeq(attempt.invite.cseq.number + 1, "INVITE")))
        attempt.invite = invite
        attempt.b_early, attempt.b_rseq = None, None  # a new INVITE: its own early dialog
        attempt.goto(AttemptState.CALLING)
        attempt.txn = self.core.send_request(
            invite, attempt.destination, attempt.transport,
            lambda event: self.on_vendor_event(call, attempt, event))
        self._timer(attempt, call.params["SS_SIP_TIMEOUT_INVITE"],
                    lambda: self.on_invite_timeout(call, attempt))

    def on_invite_timeout(self, call: Call, attempt: Attempt) -> None:
        attempt.timer = None
        if attempt.state is not AttemptState.CALLING or call.state is not CallState.ROUTING:
            return
        # FAILED first: the transport error below reports back synchronously and is ignored.
        attempt.goto(AttemptState.FAILED)
        if attempt.txn is not None and not attempt.txn.terminated:
            # Nothing came back at all: stop retransmitting (no CANCEL before a provisional,
            # §9.1); the transaction ends as if the transport had failed.
            self.core.transactions.transport_error(attempt.txn, "SS_SIP_TIMEOUT_INVITE")
        self._branch_failed(call, attempt, 408, "timeout", None, invite_timeout=True)

    def on_progress_timeout(self, call: Call, attempt: Attempt, what: str) -> None:
        attempt.timer = None
        if attempt.done or call.state is not CallState.ROUTING:
            return
        self._abandon(attempt)
        self._close_media(attempt)
        call.record.gateways_tried.append(f"{attempt.target.name}:{what} timeout")
        if call.fork.live:  # other contacts of the phone still ring: only this one gives up
            call.fork.consider(408, None, attempt.target.name)
            self.event(call, f"{attempt.target.name}: {what} timeout; waiting for the other "
                       "branches")
            return
        self.fail(call, 408, f"Request Timeout ({what} timeout)", f"{what} timeout")

    # ---------------------------------------------------------------- answer
    def _answer_body(self, call: Call, attempt: Attempt, vendor_sdp: bytes) -> bytes:
        """The SDP for the caller from the vendor's answer (starts the relay when used)."""
        plan = attempt.plan
        if not plan.relay:
            call.record.media_mode = "direct"
            if attempt.b_answer is None and call.offer is not None and attempt.offer is not None:
                attempt.b_answer = checked_answer(vendor_sdp, attempt.offer)
                name = attempt.b_answer.codec.encoding
                call.record.caller_codec = call.record.callee_codec = name
                if attempt.b_answer.telephone_event_pt is not None:
                    call.record.dtmf_method = "RFC2833 (end to end)"
            return vendor_sdp
        if attempt.a_answer is not None:  # the relay already runs (early media)
            return bytes(attempt.a_answer.sdp)
        assert attempt.media is not None and attempt.offer is not None
        assert call.offer is not None
        media = answer_media(plan, call.offer, attempt.offer, vendor_sdp,
                             mapping=call.caller.gateway.settings,
                             routing=attempt.target.settings, relay_a=attempt.media.local_a,
                             caller_host=call.a_source[0],
                             vendor_host=attempt.destination[0])
        mode = attempt.media.start(media.a_spec, media.b_spec, dtmf=media.dtmf,
                                   on_info_send=lambda side, info: self._send_info(
                                       call, side, info))
        attempt.a_answer, attempt.b_answer = media.a_answer, media.b_answer
        call.record.media_mode = mode
        call.record.caller_codec = media.a_spec.codec
        call.record.callee_codec = media.b_spec.codec
        if media.a_spec.dtmf_payload_type is not None and (
                media.b_spec.dtmf_payload_type is not None):
            call.record.dtmf_method = "RFC2833 (relayed)"
        self.event(call, f"media relay {mode}: caller {media.a_spec.codec} "
                   f"{attempt.media.local_a[1]} <-> vendor {media.b_spec.codec} "
                   f"{attempt.media.local_b[1]}")
        return bytes(media.a_answer.sdp)

    def on_vendor_answer(self, call: Call, attempt: Attempt, response: Response) -> None:
        attempt.goto(AttemptState.ANSWERED)
        self._stop_timer(attempt)
        call.answered = attempt
        call.record.gateways_tried.append(f"{attempt.target.name}:{response.status}")
        call.record.callee_contact = attempt.target.contact
        self._abandon_live(call)  # §16.7: the first 2xx wins; CANCEL the other branches
        try:
            dialog = Dialog.from_uac(attempt.invite, response)
        except DialogError as exc:
            self._ack_and_bye(attempt, response)
            self.fail(call, 502, "Bad Gateway", f"unusable 2xx from {attempt.target.name}: "
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
                self.event(call, f"answer from {attempt.target.name} refused: {reason}")
                # 399: the vendor's answer is at fault, not the caller's media (305)
                self.fail(call, 488, "Not Acceptable Here", f"488 {reason}", warning=reason,
                          warning_code=399 if isinstance(exc, AnswerRefused) else 305)
                return
        call.legs["b"].dialog = dialog
        self.dialogs[(dialog.call_id, dialog.local_tag)] = (call, "b")
        call.b_ack = dialog.ack_for_2xx(attempt.invite, via=self._via(attempt.transport))
        final = self._a_response(call, 200, response.reason, body=body)
        a_timer = caller_session_timer(call.a_invite, call.params)
        if a_timer is not None and not a_timer.liveness:
            final.headers.add("Session-Expires", a_timer.header())
            final.headers.add("Require", "timer")
        call.legs["a"].sdp_sent = body
        call.legs["b"].sdp_sent = attempt.invite.body
        call.legs["a"].sdp_received = call.a_invite.body
        call.legs["b"].sdp_received = response.body
        call.legs["a"].dialog = Dialog.from_uas(call.a_invite, final)
        self.dialogs[(call.call_id, call.a_tag)] = (call, "a")
        self._early_answered(call, attempt)
        call.goto(CallState.CONFIRMED)
        call.record.answer_time = self.core.clock.wall()
        call.record.status = 200
        call.a_final = final
        self.journal.answered(call)  # committed before the vendor's ACK and the caller's 2xx
        if late_offer:
            call.ack_pending = True  # the caller's ACK carries the answer for the vendor
        else:
            self.core.send_stateless(call.b_ack, attempt.destination, attempt.transport)
        call.a_txn.respond(final)
        self.event(call, f"answered by {attempt.target.name}")
        self._schedule_2xx_retransmit(call, self.core.transactions.timers.t1)
        self._start_session_timers(call, {"a": a_timer,
                                          "b": vendor_session_timer(response, call.params)})

    def _schedule_2xx_retransmit(self, call: Call, interval: float,
                                 elapsed: float = 0.0) -> None:
        """§13.3.1.4: resend the 2xx at T1, 2*T1 ... capped at T2 until the ACK comes; no
        ACK within 64*T1 → BYE both legs."""
        timers = self.core.transactions.timers
        if call.a_acked or call.state is not CallState.CONFIRMED or call.a_transport != "UDP":
            return

        def again() -> None:
            if call.a_acked or call.state is not CallState.CONFIRMED or call.a_final is None:
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

