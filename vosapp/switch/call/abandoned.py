"""Attempts the switch gave up (INVITE or progress timeout, failover, a CANCEL from the
caller, another fork branch won, the call ended): the CANCEL (§9.1: not before a
provisional), and no vendor leg left half-open: a 2xx that still comes is ACKed and BYEd once
per dialog, its retransmissions ACKed again (§13.2.2.4). Responses no client transaction
took any more are matched to their attempt by Call-ID and From tag until 64*T1 after the
call ended (:meth:`AbandonedAttempts.on_stray_response`). From the call's end, those
responses go to its :class:`~vosapp.switch.call.legs.EndedCall`, so that the call itself is
freed at once (:meth:`AbandonedAttempts._let_go`). Part of the call handler
(:class:`~vosapp.switch.call.B2bua`)."""

from __future__ import annotations

import logging
from functools import partial
from typing import TYPE_CHECKING, Any

from vosapp.sip import CSeq, Request
from vosapp.sip.dialog import Dialog, DialogError
from vosapp.sip.transaction import DeliverResponse, build_ack
from vosapp.switch.call.legs import EndedCall
from vosapp.switch.call.negotiation import rejecting_answer
from vosapp.switch.call.session_timer import SDP
from vosapp.switch.call.state import AttemptState

if TYPE_CHECKING:
    from vosapp.net import Address
    from vosapp.sip import Response, Via
    from vosapp.switch.call.legs import Attempt, Call
    from vosapp.switch.core import SwitchCore

log = logging.getLogger(__name__)


class AbandonedAttempts:
    """The given-up-attempts part of the call handler."""

    core: SwitchCore
    #: (Call-ID, From tag) of our INVITEs -> their call (its EndedCall once it ended) and
    #: attempt
    invites: dict[tuple[str, str], tuple[Call | EndedCall, Attempt]]

    if TYPE_CHECKING:  # provided by the handler and its other parts
        def event(self, call: Call | EndedCall, text: str) -> None: ...
        def _via(self, transport: str) -> Via: ...
        def _stop_timer(self, attempt: Attempt) -> None: ...
        def _close_media(self, attempt: Attempt) -> None: ...
        def on_vendor_response(self, call: Call, attempt: Attempt,
                               response: Response) -> None: ...

    def on_stray_response(self, response: Response, source: Address, transport: str) -> None:
        """A response no client transaction took: the INVITE's was ended (SS_SIP_TIMEOUT_INVITE
        stops it at once, Timer B, or RFC 6026 Timer M 64*T1 after its 2xx) but the vendor
        still answers. Matched by Call-ID and From tag (§12.1.2), it goes on to the attempt:
        a 2xx is ACKed (and BYEd when unwanted), a provisional gets its CANCEL. A non-2xx
        final that outlived the transaction is ACKed (§17.1.1.3) so the vendor stops."""
        try:
            found = (self.invites.get((response.call_id, response.from_tag or ""))
                     if response.cseq.method == "INVITE" else None)
            branch = response.via_branch
        except Exception:  # noqa: BLE001 - a header the parser let through unreadable
            found = None
        if found is None:
            self.core.trace.event("stray response discarded (no matching client transaction)",
                                  src=source, transport=transport)
            return
        call, attempt = found
        if response.status < 200 and attempt.state in (AttemptState.ANSWERED,
                                                       AttemptState.HUNG_UP):
            return  # already answered: nothing to CANCEL
        if response.status < 300:
            if isinstance(call, EndedCall):
                self.on_ended_response(call, attempt, response)
            else:
                self.on_vendor_response(call, attempt, response)
        elif branch == attempt.invite.top_via.branch:  # the final of the INVITE we sent last
            self.core.send_stateless(build_ack(attempt.invite, response), attempt.destination,
                                     attempt.transport)

    def on_given_up_response(self, call: Call | EndedCall, attempt: Attempt,
                             response: Response) -> None:
        """A response for an attempt that no longer drives its call: a losing branch (§16.7:
        the first 2xx won), an attempt cancelled or failed (the call moved on or ended), or a
        second dialog of the answered INVITE. A 2xx is ACKed and BYEd, a provisional gets
        the CANCEL; a final failure needs nothing (its transaction ACKs it)."""
        status = response.status
        if 200 <= status < 300:
            if attempt.state in (AttemptState.CANCELLING, AttemptState.FAILED):
                attempt.goto(AttemptState.HUNG_UP)
                self.event(call, f"{attempt.target.name} answered after it was given up: "
                           "ACK and BYE")
            self._ack_and_bye(attempt, response)
        elif status < 200:
            self._send_cancel(attempt)  # a late provisional on an abandoned attempt

    def on_ended_event(self, call: EndedCall, attempt: Attempt, event: Any) -> None:
        """The INVITE client transaction of a call that ended: its responses (a timeout or a
        transport failure changes nothing any more)."""
        if isinstance(event, DeliverResponse):
            self.on_ended_response(call, attempt, event.response)

    def on_ended_response(self, call: EndedCall, attempt: Attempt, response: Response
                          ) -> None:
        """A response to an INVITE of a call that ended: a retransmission of the answered
        2xx gets its ACK again (§13.2.2.4), anything else is a given-up attempt's."""
        if (200 <= response.status < 300 and attempt is call.answered
                and call.answered_tag is not None and response.to_tag == call.answered_tag):
            if call.b_ack is not None:
                self.core.send_raw(call.b_ack, attempt.destination, attempt.transport)
            return
        self.on_given_up_response(call, attempt, response)

    def _let_go(self, call: Call, keys: list[tuple[str, str]]) -> None:
        """At the call's end, the holders kept for 64*T1 let go of it: the entries of its
        INVITEs (``keys``) and their client transactions' listeners (RFC 6026 Accepted,
        Timer M) move to its :class:`EndedCall`; the caller's INVITE transaction (Accepted,
        Timer L) loses the handler's listeners: its ACK or CANCEL changes nothing now
        (in_dialog._caller_ack, on_caller_cancel), unless the vendor's ACK still waits for
        the caller's (late offer)."""
        ended = EndedCall.of(call)
        for key in keys:
            found = self.invites.get(key)
            if found is None:
                continue
            attempt = found[1]
            attempt.let_go()
            self.invites[key] = (ended, attempt)
            if attempt.txn is not None:
                attempt.txn.listeners[:] = [partial(self.on_ended_event, ended, attempt)]
        listener, call.a_listener = call.a_listener, None  # (it closes over the call)
        if not call.ack_pending:
            a_txn = call.a_txn
            a_txn.cancel_listeners = None
            if listener in a_txn.listeners:
                a_txn.listeners.remove(listener)

    def _abandon_live(self, call: Call) -> None:
        """Give up every branch of the fork still running (CANCEL, §16.7)."""
        for attempt in call.fork.live:
            self._stop_timer(attempt)
            call.record.gateways_tried.append(f"{attempt.target.name}:cancelled")
            self._abandon(attempt)
            self._close_media(attempt)

    def _abandon(self, attempt: Attempt) -> None:
        """The switch gives the attempt up: CANCEL now when a provisional came, else at the
        first one (§9.1: no CANCEL before a provisional)."""
        proceeding = attempt.state is AttemptState.PROCEEDING
        attempt.goto(AttemptState.CANCELLING)
        if proceeding:
            self._send_cancel(attempt)

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
            log.warning("CANCEL to %s failed: %s", attempt.target.name, exc)

    def _ack_and_bye(self, attempt: Attempt, response: Response) -> None:
        """A 2xx for an attempt we no longer want: ACK it and hang up (§15), once per dialog;
        a retransmitted 2xx of a dialog already hung up gets the same ACK again
        (§13.2.2.4). An offer in the 2xx (the INVITE had none) is answered in the ACK with
        every stream rejected (§13.2.2.4: a valid answer, then the BYE)."""
        tag = response.to_tag or ""
        try:
            ack = attempt.late_acks.get(tag)
            if ack is not None:
                self.core.send_stateless(ack, attempt.destination, attempt.transport)
                return
            dialog = Dialog.from_uac(attempt.invite, response)
            ack = dialog.ack_for_2xx(attempt.invite, via=self._via(attempt.transport))
            if response.body and not attempt.invite.body:
                host = self.core.local_address(attempt.transport)[0]
                ack.body = rejecting_answer(response.body, host)
                if ack.body:
                    ack.headers.set("Content-Type", SDP)
            attempt.late_acks[tag] = ack
            self.core.send_stateless(ack, attempt.destination, attempt.transport)
            request = dialog.create_request("BYE", via=self._via(attempt.transport))
            self.core.send_request(request, attempt.destination, attempt.transport)
        except (DialogError, OSError) as exc:
            log.warning("could not hang up a late answer from %s: %s", attempt.target.name,
                        exc)

    def _forget_invites(self, keys: list[tuple[str, str]]) -> None:
        for key in keys:
            self.invites.pop(key, None)

