"""One call, its fork and attempts: the data the handler keeps per call, with each state
machine's moves checked against its table (:mod:`vosapp.switch.call.state`).

Shape: a :class:`Call` tries the steps of its :class:`~vosapp.switch.call.targets.Destination`
one after the other (failover). The step being tried is a :class:`Fork`: one
:class:`Attempt` per target, all in parallel (one for a routing gateway; one per live
contact for a registered phone). The first 2xx makes its attempt ``Call.answered``; the other
attempts are abandoned (CANCEL)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from vosapp.switch.call.state import (
    ATTEMPT_DONE,
    ATTEMPT_TRANSITIONS,
    CALL_TRANSITIONS,
    AttemptState,
    CallState,
    check_transition,
)

if TYPE_CHECKING:
    from vosapp.clock import TimerHandle
    from vosapp.net import Address
    from vosapp.params import Params
    from vosapp.sip import Request, Response
    from vosapp.sip.dialog import Dialog
    from vosapp.sip.sdp import Answer, SessionDescription
    from vosapp.sip.transaction import ClientTransaction, ServerTransaction
    from vosapp.switch.call.media import MediaSession
    from vosapp.switch.call.negotiation import MediaPlan
    from vosapp.switch.call.reliable import CallerEarly
    from vosapp.switch.call.session_timer import LegTimer
    from vosapp.switch.call.targets import Destination, Target
    from vosapp.switch.cdr import CdrRecord
    from vosapp.switch.routing import Caller


@dataclass(eq=False)  # compared by identity (``attempt in fork.attempts``)
class Attempt:
    """One INVITE to one target: a routing gateway or one contact of a phone."""

    target: Target
    invite: Request
    plan: MediaPlan
    offer: SessionDescription | None  # the SDP we sent the vendor
    txn: ClientTransaction | None = None
    timer: TimerHandle | None = None  # the call-progress timer (SS_SIP_TIMEOUT_*)
    state: AttemptState = AttemptState.CALLING
    cancel_sent: bool = False  # a CANCEL went out (once per attempt)
    retried_422: bool = False  # RFC 4028 §6: one retry with Session-Expires = Min-SE
    media: MediaSession | None = None
    b_answer: Answer | None = None
    a_answer: Answer | None = None  # the relay's answer to the caller, once the relay runs
    # RFC 3262 §4, this attempt's early dialog with the vendor: PRACKs and early UPDATEs go
    # in it; b_rseq is the RSeq of the vendor's last in-order reliable provisional.
    b_early: Dialog | None = None
    b_rseq: int | None = None
    #: the ACK of each 2xx dialog (by the vendor's To tag) the switch hung up: a
    #: retransmitted 2xx gets the same ACK again and no second BYE (§13.2.2.4)
    late_acks: dict[str, Request] = field(default_factory=dict)

    def goto(self, new: AttemptState) -> None:
        self.state = check_transition(ATTEMPT_TRANSITIONS, "attempt", self.state, new)

    def let_go(self) -> None:
        """Its call ended: keep what late responses need (the INVITE and its transaction,
        the state, the late ACKs); the SDP, the answers, the early dialog and the closed
        relay go."""
        self.offer = self.b_answer = self.a_answer = None
        self.b_early = None
        self.media = None

    @property
    def done(self) -> bool:
        """Its responses no longer drive the call."""
        return self.state in ATTEMPT_DONE

    @property
    def media_started(self) -> bool:
        return self.a_answer is not None

    @property
    def destination(self) -> Address:
        return self.target.destination

    @property
    def transport(self) -> str:
        return self.target.transport


@dataclass
class Fork:
    """The attempts of one step, sent in parallel (RFC 3261 §16.6); ``best`` is the best
    final failure so far with the target's name (§16.7 step 6: a 6xx, else the lowest class;
    a timeout or transport failure counts as 408 without a response)."""

    attempts: list[Attempt] = field(default_factory=list)
    best: tuple[int, Response | None, str] | None = None
    timed_out: bool = False  # the last failure was an INVITE timeout (SS_SIP_TIMEOUT_INVITE)
    sending: bool = False  # INVITEs still going out: a failure reported at once waits

    @property
    def live(self) -> list[Attempt]:
        return [a for a in self.attempts if not a.done]

    def consider(self, status: int, response: Response | None, name: str) -> None:
        def rank(status: int, response: Response | None, _name: str = "") -> tuple[int, int]:
            # a real response beats a timeout of the same class
            return (0 if status >= 600 else status // 100, 1 if response is None else 0)

        if self.best is None or rank(status, response) < rank(*self.best):
            self.best = (status, response, name)


@dataclass
class Leg:
    """One side of a call: "a" (the caller) or "b" (the vendor). What the switch keeps per
    leg once the call is answered; per-leg protocol state goes here."""

    side: str
    dialog: Dialog | None = None
    sdp_sent: bytes = b""  # the SDP last sent on this leg (refresh re-INVITEs resend it)
    sdp_received: bytes = b""  # the endpoint's SDP last taken (a repeat is a refresh)
    session_timer: LegTimer | None = None  # RFC 4028
    offer_out: bool = False  # our re-INVITE/UPDATE waits for its answer (glare, §14.1)
    offer_in: bool = False  # the endpoint's re-INVITE/UPDATE is being handled (§14.2)
    reinvite_2xx: Response | None = None  # our 2xx to its re-INVITE, resent until the ACK
    reinvite_txn: ServerTransaction | None = None
    reinvite_retransmit: TimerHandle | None = None
    on_reinvite_ack: Callable[[Request], None] | None = None  # the far leg's deferred ACK


def _legs() -> dict[str, Leg]:
    return {"a": Leg("a"), "b": Leg("b")}


@dataclass
class Call:
    """A caller's INVITE (leg "a"), the fork being tried, and the attempt that answered
    (leg "b")."""

    a_invite: Request
    a_txn: ServerTransaction
    a_tag: str
    a_source: Address
    a_transport: str
    caller: Caller
    callee: str
    record: CdrRecord
    offer: SessionDescription | None
    params: Params  # read when the call starts (docs/behaviour.md §1: new sessions only)
    destination: Destination | None = None
    index: int = 0  # the next step of the destination
    fork: Fork = field(default_factory=Fork)
    answered: Attempt | None = None  # the attempt whose 2xx was taken (leg "b")
    state: CallState = CallState.ROUTING
    b_ack: Request | None = None
    ack_pending: bool = False  # late offer: the vendor's ACK waits for the caller's
    a_final: Response | None = None
    a_retransmit: TimerHandle | None = None  # the 2xx to the caller, until its ACK
    a_acked: bool = False
    last_failure: str = ""
    media_refused: str = ""
    legs: dict[str, Leg] = field(default_factory=_legs)
    a_early: CallerEarly | None = None  # the caller's early dialog and our RSeq space in it
    #: (Call-ID, From tag) of every INVITE sent for the call: their responses are still
    #: matched after the client transaction is gone (see ``B2bua.on_stray_response``)
    invite_keys: list[tuple[str, str]] = field(default_factory=list)
    #: the handler's listener on ``a_txn`` (the caller's ACK, §13.3.1.4), taken off at the
    #: end so that the transaction, kept 64*T1 longer (RFC 6026 Timer L), lets go of the call
    #: (and dropped here then: it closes over the call)
    a_listener: Callable[[Any], None] | None = None

    def goto(self, new: CallState) -> None:
        self.state = check_transition(CALL_TRANSITIONS, "call", self.state, new)

    @property
    def call_id(self) -> str:
        return self.a_invite.call_id


@dataclass(eq=False, slots=True)
class EndedCall:
    """What the handler keeps of a call once it ended, for the late responses to its INVITEs
    (until 64*T1 after the end: a vendor retransmits its 2xx until ACKed, §13.3.1.4, and an
    attempt given up may still answer, RFC 6026 Timer M). The call's own graph (legs,
    dialogs, messages, SDP, CDR record) is freed at its end, not 32 s later
    (docs/benchmarks.md, "Ended calls freed at their end")."""

    call_id: str
    callee: str
    #: the attempt that answered, the vendor's To tag of its dialog and the ACK of its 2xx
    #: (its bytes): a retransmission of that 2xx gets the same ACK again, and nothing else
    #: (§13.2.2.4)
    answered: Attempt | None
    answered_tag: str | None
    b_ack: bytes | None

    @classmethod
    def of(cls, call: Call) -> EndedCall:
        dialog = call.legs["b"].dialog
        return cls(call.call_id, call.callee, call.answered,
                   dialog.remote_tag if dialog is not None else None,
                   None if call.ack_pending or call.b_ack is None else bytes(call.b_ack))


__all__ = ["Attempt", "Call", "EndedCall", "Fork", "Leg"]
