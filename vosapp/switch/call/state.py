"""Call and attempt states: one transition table per machine, checked on every move.

The model is :mod:`vosapp.sip.transaction` (``TRANSITIONS`` and ``_goto``): a move that is not
in the table raises :class:`IllegalTransition`, so a handler that would, say, answer an ended
call fails loudly in the tests instead of corrupting the call.
"""

from __future__ import annotations

from enum import Enum
from typing import TypeVar

from vosapp.enums import IdentityEnum

S = TypeVar("S", bound=Enum)


class IllegalTransition(RuntimeError):
    """A state machine was asked for a move its table does not list."""


class CallState(IdentityEnum):
    ROUTING = "routing"  # caller's INVITE taken, trying its forks (gateways, phone contacts)
    CONFIRMED = "confirmed"  # a vendor answered and the caller got its 2xx
    ENDED = "ended"  # final answer sent or BYE done; the CDR is written


CALL_TRANSITIONS: dict[CallState, frozenset[CallState]] = {
    CallState.ROUTING: frozenset({CallState.CONFIRMED, CallState.ENDED}),
    CallState.CONFIRMED: frozenset({CallState.ENDED}),
    CallState.ENDED: frozenset(),
}


class AttemptState(IdentityEnum):
    CALLING = "calling"  # INVITE sent to a routing gateway, nothing back yet
    PROCEEDING = "proceeding"  # a provisional came (a CANCEL may now be sent, §9.1)
    ANSWERED = "answered"  # the vendor's 2xx was taken for the call
    FAILED = "failed"  # final non-2xx, transaction timeout, transport failure
    CANCELLING = "cancelling"  # abandoned by the switch: CANCEL sent, or due at the first 1xx
    HUNG_UP = "hung up"  # answered (2xx) after it was abandoned or failed: ACKed and BYEd (§15)


ATTEMPT_TRANSITIONS: dict[AttemptState, frozenset[AttemptState]] = {
    # CALLING -> CALLING: the RFC 4028 §6 retry after a 422 starts the INVITE over
    AttemptState.CALLING: frozenset({AttemptState.CALLING, AttemptState.PROCEEDING,
                                     AttemptState.ANSWERED, AttemptState.FAILED,
                                     AttemptState.CANCELLING}),
    AttemptState.PROCEEDING: frozenset({AttemptState.CALLING, AttemptState.ANSWERED,
                                        AttemptState.FAILED, AttemptState.CANCELLING}),
    AttemptState.ANSWERED: frozenset(),
    # A 2xx can still come after the switch gave the INVITE up (SS_SIP_TIMEOUT_INVITE or
    # Timer B: no CANCEL was possible before a provisional, §9.1): ACKed and BYEd.
    AttemptState.FAILED: frozenset({AttemptState.HUNG_UP}),
    # A fork's losing branch (RFC 3261 §16.7: another branch's 2xx won) or a cancelled
    # attempt can still answer: its 2xx is ACKed and BYEd.
    AttemptState.CANCELLING: frozenset({AttemptState.HUNG_UP}),
    AttemptState.HUNG_UP: frozenset(),
}

#: Attempt states after which its responses no longer drive the call.
ATTEMPT_DONE = frozenset({AttemptState.ANSWERED, AttemptState.FAILED, AttemptState.CANCELLING,
                          AttemptState.HUNG_UP})


class ReliableState(IdentityEnum):
    """One reliable provisional the switch sends the caller (RFC 3262 §3)."""

    QUEUED = "queued"  # waits: no second reliable provisional before the first is PRACKed
    UNACKED = "unacked"  # sent with RSeq; resent at T1, 2*T1, 4*T1 ... until its PRACK
    PRACKED = "pracked"  # the caller's PRACK carried its RAck
    OVERTAKEN = "overtaken"  # a final response went out first (§3 allows it): resending stops
    TIMED_OUT = "timed out"  # no PRACK within 64*T1: the INVITE is rejected with a 5xx


RELIABLE_TRANSITIONS: dict[ReliableState, frozenset[ReliableState]] = {
    ReliableState.QUEUED: frozenset({ReliableState.UNACKED, ReliableState.OVERTAKEN}),
    ReliableState.UNACKED: frozenset({ReliableState.PRACKED, ReliableState.OVERTAKEN,
                                      ReliableState.TIMED_OUT}),
    ReliableState.PRACKED: frozenset(),
    ReliableState.OVERTAKEN: frozenset(),
    ReliableState.TIMED_OUT: frozenset(),
}


def check_transition(table: dict[S, frozenset[S]], what: str, old: S, new: S) -> S:
    """``new`` when ``table`` allows ``old -> new``; raises :class:`IllegalTransition`."""
    if new not in table[old]:
        raise IllegalTransition(f"{what}: no transition {old.value} -> {new.value}")
    return new


__all__ = ["ATTEMPT_DONE", "ATTEMPT_TRANSITIONS", "CALL_TRANSITIONS", "RELIABLE_TRANSITIONS",
           "AttemptState", "CallState", "IllegalTransition", "ReliableState",
           "check_transition"]
