"""Attempts the switch gave up (INVITE or progress timeout, failover, a CANCEL from the
caller, another fork branch won, the call ended): the CANCEL (§9.1: not before a
provisional), and no vendor leg left half-open: a 2xx that still comes is ACKed and BYEd once
per dialog, its retransmissions ACKed again (§13.2.2.4). Responses no client transaction
took any more are matched to their attempt by Call-ID and From tag until 64*T1 after the
call ended (:meth:`AbandonedAttempts.on_stray_response`). Part of the call handler
(:class:`~vosapp.switch.call.B2bua`)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from vosapp.sip import CSeq, Request
from vosapp.sip.dialog import Dialog, DialogError
from vosapp.sip.transaction import build_ack
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
    #: (Call-ID, From tag) of our INVITEs -> their call and attempt
    invites: dict[tuple[str, str], tuple[Call, Attempt]]

    if TYPE_CHECKING:  # provided by the handler and its other parts
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
            self.on_vendor_response(call, attempt, response)
        elif branch == attempt.invite.top_via.branch:  # the final of the INVITE we sent last
            self.core.send_stateless(build_ack(attempt.invite, response), attempt.destination,
                                     attempt.transport)

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

