"""Reliable provisional responses (RFC 3262, "100rel") and the early dialogs they live in.

Each leg has its own RSeq space: the vendor's RSeq numbers the provisionals it sends the
switch (followed per attempt in :attr:`Attempt.b_rseq`, §4), the switch numbers the ones it
sends the caller (:class:`CallerEarly`, one per caller dialog, so a failover attempt keeps
counting where the previous one stopped).

* Vendor's provisional with ``Require: 100rel`` + ``RSeq``: when the caller supports 100rel
  (``Supported`` or ``Require``), it goes to the caller reliably with the switch's RSeq and the
  caller's PRACK is relayed to the vendor with the RAck rewritten to the vendor's RSeq (SDP
  in either direction rides along: RFC 3262 §5 offer/answer in the 18x and the PRACK).
  Otherwise the switch PRACKs the vendor itself and the caller gets a plain 18x.
  Retransmissions and out-of-order ones (RSeq not last + 1) are dropped (§4).
* Caller with ``Require: 100rel`` whose vendor sends plain 18x: the switch sends them
  reliably, one at a time (§3: no second before the first is PRACKed; later ones wait in
  order), resent at T1, 2*T1, 4*T1 ... (not capped at T2) until the PRACK; none within 64*T1:
  the call ends with 504 and the vendor attempt is cancelled.
* A final response overtakes any unacknowledged reliable provisional (§3): resending stops.
* Late offer with the caller's PRACK answering the SDP of a reliable 18x the switch made from a
  plain one: the answer goes to the vendor in the ACK of its 2xx.
* UPDATE in an early dialog (RFC 3311 §5.1) is relayed to the other leg's early dialog by
  :meth:`InDialog.on_in_dialog`, which finds early dialogs through :meth:`_early_lookup`.

Each reliable provisional sent to the caller is a :class:`ReliableProvisional` whose moves
follow :data:`~vosapp.switch.call.state.RELIABLE_TRANSITIONS`.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from vosapp.sip.dialog import Dialog, DialogError
from vosapp.sip.transaction import TransactionError
from vosapp.switch.call.state import (
    RELIABLE_TRANSITIONS,
    AttemptState,
    CallState,
    ReliableState,
    check_transition,
)

if TYPE_CHECKING:
    from collections.abc import Iterable

    from vosapp.clock import TimerHandle
    from vosapp.net import Address
    from vosapp.sip import Request, Response, Via
    from vosapp.sip.transaction import ServerTransaction
    from vosapp.switch.call.legs import Attempt, Call
    from vosapp.switch.core import SwitchCore

log = logging.getLogger(__name__)

OPTION_TAG = "100rel"


def option_tags(message: Request | Response, *names: str) -> set[str]:
    """The option tags listed in the named headers (``Supported``, ``Require`` ...)."""
    return {tag.strip().lower() for name in names for value in message.headers.get_all(name)
            for tag in value.split(",") if tag.strip()}


def caller_supports_100rel(invite: Request) -> bool:
    return OPTION_TAG in option_tags(invite, "Supported", "Require")


def caller_requires_100rel(invite: Request) -> bool:
    return OPTION_TAG in option_tags(invite, "Require")


def reliable_rseq(response: Response) -> int | None:
    """The RSeq of a reliable provisional (§7.1: ``Require: 100rel`` and a valid ``RSeq``),
    None for an unreliable one."""
    if not 101 <= response.status <= 199 or OPTION_TAG not in option_tags(response, "Require"):
        return None
    value = (response.headers.get("RSeq") or "").strip()
    if not value.isdigit() or not 1 <= int(value) <= 2**32 - 1:
        return None
    return int(value)


def parse_rack(value: str | None) -> tuple[int, int, str] | None:
    """§7.2 ``RAck: response-num CSeq-num Method``; None when malformed."""
    parts = (value or "").split()
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
        return None
    return int(parts[0]), int(parts[1]), parts[2].upper()


@dataclass
class ReliableProvisional:
    """One 18x the switch sends the caller reliably."""

    response: Response
    attempt: Attempt | None  # whose provisional it carries
    vendor_rseq: int | None  # relayed end to end: the vendor's RSeq (the PRACK's RAck)
    rseq: int = 0  # ours, given when it is sent (in order)
    state: ReliableState = ReliableState.QUEUED
    timer: TimerHandle | None = None
    interval: float = 0.0  # the next resend delay: T1, doubling
    elapsed: float = 0.0  # since the first send
    limit: float = 0.0  # 64*T1 (§3)

    def goto(self, new: ReliableState) -> None:
        self.state = check_transition(RELIABLE_TRANSITIONS, "reliable provisional",
                                      self.state, new)

    def stop(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


@dataclass
class CallerEarly:
    """The caller's early dialog (our To tag) and the switch's RSeq space in it."""

    dialog: Dialog
    next_rseq: int = field(default_factory=lambda: secrets.randbelow(2**31 - 1) + 1)  # §3
    sent: list[ReliableProvisional] = field(default_factory=list)
    #: late offer terminated here: the caller's PRACK answered the SDP of our reliable 18x;
    #: the vendor gets that answer in its ACK (its 2xx repeats the offer, RFC 3261 §13.2.1)
    prack_answer: Request | None = None


class ReliableProvisionals:
    """The 100rel part of the call handler (:class:`~vosapp.switch.call.B2bua`)."""

    core: SwitchCore
    calls: dict[str, Call]
    #: (vendor Call-ID, our From tag) -> call, for requests in a vendor's early dialog
    vendor_early: dict[tuple[str, str], Call]

    if TYPE_CHECKING:  # provided by the handler
        def _via(self, transport: str) -> Via: ...
        def event(self, call: Call, text: str) -> None: ...
        def fail(self, call: Call, status: int, reason: str, end_reason: str, *,
                 warning: str | None = None) -> None: ...
        def _abandon(self, attempt: Attempt) -> None: ...
        def _close_media(self, attempt: Attempt) -> None: ...
        def _stop_timer(self, attempt: Attempt) -> None: ...
        def _relay_in_dialog(self, call: Call, side: str, request: Request,
                             txn: ServerTransaction, *,
                             headers: Iterable[tuple[str, str]] = (),
                             to: tuple[Dialog | None, Address, str] | None = None
                             ) -> None: ...

    # ------------------------------------------------------------ vendor side (UAC, §4)
    def _vendor_provisional(self, call: Call, attempt: Attempt, response: Response
                            ) -> tuple[bool, int | None]:
        """A vendor 18x: (keep it, the vendor RSeq to carry to the caller end to end).

        Opens the attempt's early dialog at the first 18x with a To tag; PRACKs a reliable
        one itself when the caller cannot; drops retransmitted/out-of-order ones."""
        if attempt.b_early is None and response.to_tag:
            try:
                attempt.b_early = Dialog.from_uac(attempt.invite, response)
            except DialogError as exc:
                self.event(call, f"no early dialog with {attempt.target.name}: {exc}")
            else:
                self.vendor_early[(attempt.b_early.call_id, attempt.b_early.local_tag)] = call
        rseq = reliable_rseq(response)
        early = attempt.b_early
        if rseq is None or early is None or response.to_tag != early.remote_tag:
            return True, None
        if attempt.b_rseq is not None and rseq != attempt.b_rseq + 1:
            return False, None  # §4: a retransmission (or out of order): not processed again
        attempt.b_rseq = rseq
        if caller_supports_100rel(call.a_invite):
            return True, rseq
        self.event(call, f"{response.status} from {attempt.target.name} is reliable (RSeq "
                   f"{rseq}); the caller does not support 100rel: PRACK sent by the switch")
        self._send_prack(attempt, early, rseq)
        return True, None

    def _send_prack(self, attempt: Attempt, early: Dialog, rseq: int) -> None:
        prack = early.create_request(
            "PRACK", via=self._via(attempt.transport),
            headers=[("RAck", f"{rseq} {attempt.invite.cseq.number} INVITE")])
        try:
            self.core.send_request(prack, attempt.destination, attempt.transport)
        except OSError as exc:
            log.warning("PRACK to %s failed: %s", attempt.target.name, exc)

    # ------------------------------------------------------------ caller side (UAS, §3)
    def _provisional_to_caller(self, call: Call, attempt: Attempt, response: Response,
                               vendor_rseq: int | None) -> None:
        """Send a 18x to the caller: reliably when the vendor's was (and the caller supports
        100rel) or the caller requires it; plainly otherwise."""
        early = call.a_early
        if early is None:
            try:
                early = call.a_early = CallerEarly(Dialog.from_uas(call.a_invite, response))
            except DialogError as exc:
                self.event(call, f"no early dialog with the caller: {exc}")
                if vendor_rseq is not None and attempt.b_early is not None:
                    self._send_prack(attempt, attempt.b_early, vendor_rseq)  # terminated here
        if early is None or (vendor_rseq is None and not caller_requires_100rel(call.a_invite)):
            call.a_txn.respond(response)
            return
        provisional = ReliableProvisional(response, attempt, vendor_rseq)
        early.sent.append(provisional)
        if not any(p.state is ReliableState.UNACKED for p in early.sent):
            self._send_reliable(call, early, provisional)

    def _send_reliable(self, call: Call, early: CallerEarly,
                       provisional: ReliableProvisional) -> None:
        provisional.rseq = early.next_rseq
        early.next_rseq += 1
        response = provisional.response
        response.headers.set("Require", OPTION_TAG)
        response.headers.set("RSeq", str(provisional.rseq))
        provisional.goto(ReliableState.UNACKED)
        t1 = self.core.transactions.timers.t1
        provisional.interval, provisional.limit = t1, 64 * t1
        call.a_txn.respond(response)
        self._arm_resend(call, provisional)

    def _arm_resend(self, call: Call, provisional: ReliableProvisional) -> None:
        """§3: resend at T1, then doubling (no T2 cap); give up 64*T1 after the first send."""
        clock = self.core.clock
        if provisional.elapsed + provisional.interval >= provisional.limit:
            provisional.timer = clock.call_later(provisional.limit - provisional.elapsed,
                                                 lambda: self._no_prack(call, provisional))
        else:
            provisional.timer = clock.call_later(provisional.interval,
                                                 lambda: self._resend(call, provisional))

    def _resend(self, call: Call, provisional: ReliableProvisional) -> None:
        provisional.timer = None
        if provisional.state is not ReliableState.UNACKED or call.state is not CallState.ROUTING:
            return
        provisional.elapsed += provisional.interval
        provisional.interval *= 2
        try:
            call.a_txn.respond(provisional.response)
        except TransactionError:  # the INVITE transaction has moved on: nothing to resend
            return
        self._arm_resend(call, provisional)

    def _no_prack(self, call: Call, provisional: ReliableProvisional) -> None:
        provisional.timer = None
        if provisional.state is not ReliableState.UNACKED or call.state is not CallState.ROUTING:
            return
        provisional.goto(ReliableState.TIMED_OUT)
        for attempt in call.fork.live:  # every branch still ringing is given up
            self._stop_timer(attempt)
            call.record.gateways_tried.append(f"{attempt.target.name}:no PRACK")
            self._abandon(attempt)
            self._close_media(attempt)
        self.fail(call, 504, "Server Time-out (no PRACK)",
                  f"no PRACK for the reliable {provisional.response.status} (RFC 3262 §3)")

    def on_prack(self, request: Request, txn: ServerTransaction) -> None:
        """The caller's PRACK: matched to an unacknowledged reliable provisional by its RAck
        (else 481, §3); relayed to the vendor with the vendor's RSeq when the provisional came
        from a reliable one, answered 200 by the switch otherwise."""
        call = self.calls.get(request.call_id)
        early = call.a_early if call is not None and request.to_tag == call.a_tag else None
        if call is None or early is None:
            txn.respond(self.core.make_response(request, 481))
            return
        if not early.dialog.receive_request(request):
            txn.respond(self.core.make_response(request, 500, "Server Internal Error "
                                                "(CSeq out of order)"))
            return
        rack = parse_rack(request.headers.get("RAck"))
        if rack is None:
            txn.respond(self.core.make_response(request, 400, "Bad Request (RAck)"))
            return
        invite_cseq = call.a_invite.cseq.number
        provisional = next((p for p in early.sent if p.state is ReliableState.UNACKED
                            and rack == (p.rseq, invite_cseq, "INVITE")), None)
        if provisional is None:
            txn.respond(self.core.make_response(request, 481))
            return
        provisional.goto(ReliableState.PRACKED)
        provisional.stop()
        attempt = provisional.attempt
        if (provisional.vendor_rseq is not None and attempt is not None
                and attempt.state is AttemptState.PROCEEDING and attempt.b_early is not None):
            # to the attempt whose provisional it was (with forking, one of several)
            rack_out = f"{provisional.vendor_rseq} {attempt.invite.cseq.number} INVITE"
            self._relay_in_dialog(call, "a", request, txn, headers=[("RAck", rack_out)],
                                  to=(attempt.b_early, attempt.destination, attempt.transport))
        else:
            if request.body and call.offer is None:
                early.prack_answer = request
            txn.respond(self.core.make_response(request, 200))
        queued = next((p for p in early.sent if p.state is ReliableState.QUEUED), None)
        if queued is not None and call.state is CallState.ROUTING:
            self._send_reliable(call, early, queued)

    # ------------------------------------------------------------ early dialogs
    def _early_lookup(self, request: Request) -> tuple[Call, str] | None:
        """(call, side) for a request in an early dialog of a call still routing."""
        try:
            key = (request.call_id, request.to_tag or "")
        except Exception:  # noqa: BLE001 - unreadable headers match nothing
            return None
        call = self.calls.get(key[0])
        if call is not None and call.a_early is not None and key[1] == call.a_tag:
            return call, "a"
        call = self.vendor_early.get(key)
        if call is not None and any(
                attempt.b_early is not None
                and (attempt.b_early.call_id, attempt.b_early.local_tag) == key
                for attempt in call.fork.attempts):
            return call, "b"
        return None

    def _early_answered(self, call: Call, attempt: Attempt) -> None:
        """The call is answered: unacknowledged reliable provisionals are overtaken, and the
        confirmed dialogs continue the early dialogs' CSeq numbers (§12.2.1.1)."""
        self._overtake(call)
        for confirmed, early in ((call.legs["a"].dialog,
                                  call.a_early.dialog if call.a_early else None),
                                 (call.legs["b"].dialog, attempt.b_early)):
            if confirmed is None or early is None or confirmed.id != early.id:
                continue
            confirmed.local_seq = max(confirmed.local_seq or 0, early.local_seq or 0)
            confirmed.remote_seq = max(confirmed.remote_seq or 0, early.remote_seq or 0) or None

    def _overtake(self, call: Call) -> None:
        if call.a_early is None:
            return
        for provisional in call.a_early.sent:
            provisional.stop()
            if provisional.state in (ReliableState.QUEUED, ReliableState.UNACKED):
                provisional.goto(ReliableState.OVERTAKEN)

    def _early_end(self, call: Call) -> None:
        """The call ended: stop resending and forget its vendor early dialogs."""
        self._overtake(call)
        for key in [k for k, v in self.vendor_early.items() if v is call]:
            del self.vendor_early[key]


__all__ = ["OPTION_TAG", "CallerEarly", "ReliableProvisional", "ReliableProvisionals",
           "caller_requires_100rel", "caller_supports_100rel", "option_tags", "parse_rack",
           "reliable_rseq"]
