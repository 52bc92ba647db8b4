"""The call and attempt state machines (vosapp.switch.call.state): every move in the tables
is taken by a real call on the virtual network, and a move not in a table raises."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import pytest

from tests.switch.b2bua_harness import VENDOR_A, VENDOR_B, Caller, Vendor, make_config, start_switch
from tests.switch.prack_harness import RelCaller
from vosapp.io.virtual import VirtualNetwork
from vosapp.switch.call import Attempt, Call
from vosapp.switch.call.reliable import ReliableProvisional
from vosapp.switch.call.state import (
    ATTEMPT_TRANSITIONS,
    CALL_TRANSITIONS,
    RELIABLE_TRANSITIONS,
    AttemptState,
    CallState,
    IllegalTransition,
    ReliableState,
    check_transition,
)

Move = tuple[str, object, object]


@pytest.fixture
def moves(monkeypatch: pytest.MonkeyPatch) -> set[Move]:
    """Every state move the B2BUA makes while the test runs ("call"/"attempt", old, new)."""
    seen: set[Move] = set()

    def spy(kind: str, goto: Callable) -> Callable:  # type: ignore[type-arg]
        def recorded(self, new) -> None:  # type: ignore[no-untyped-def]
            old = self.state
            goto(self, new)
            seen.add((kind, old, new))
        return recorded

    monkeypatch.setattr(Call, "goto", spy("call", Call.goto))
    monkeypatch.setattr(Attempt, "goto", spy("attempt", Attempt.goto))
    monkeypatch.setattr(ReliableProvisional, "goto", spy("reliable", ReliableProvisional.goto))
    return seen


class TooSmallVendor(Vendor):
    """422 with a larger Min-SE to its first INVITE (after a 100 when ``trying``), then the
    default script (RFC 4028 §6 retry)."""

    def __init__(self, net: VirtualNetwork, address: tuple[str, int], *, trying: bool) -> None:
        super().__init__(net, address, script=[(0.0, 100), (0.05, 200)])
        self.trying = trying

    def _respond(self, request, status, with_sdp, source) -> None:  # type: ignore[no-untyped-def]
        if self.invites.index(request) == 0:
            if status == 100 and self.trying:
                self.endpoint.send(self._response(request, 100, False), source)
            if status == 200 or (status == 100 and not self.trying):
                response = self._response(request, 422, False)
                response.headers.add("Min-SE", "1800")
                self.endpoint.send(response, source)
            return
        super()._respond(request, status, with_sdp, source)


def run_call(vendors: Callable[[VirtualNetwork], object], *, cancel_at: float | None = None,
             bye: bool = False, seconds: float = 2.0,
             caller: Callable[[VirtualNetwork], Caller] = Caller,
             headers: Sequence[tuple[str, str]] = ()) -> tuple[Caller, list[Vendor]]:
    net = VirtualNetwork(latency=0.001)
    start_switch(net, make_config("SS_SIP_SESSION_TTL = 300"))
    made = vendors(net)
    caller = caller(net)
    caller.call(headers=headers)
    if cancel_at is not None:
        net.run(cancel_at)
        caller.cancel()
    net.run(seconds)
    if bye:
        caller.bye()
        net.run(1.0)
    return caller, list(made) if isinstance(made, (list, tuple)) else [made]  # type: ignore[list-item]


def test_every_transition_in_the_tables_is_taken_by_real_calls(moves: set[Move]) -> None:
    # 100, 180, 200, BYE: CALLING -> PROCEEDING -> ANSWERED; ROUTING -> CONFIRMED -> ENDED
    caller, _ = run_call(lambda net: Vendor(net, VENDOR_A), bye=True)
    assert caller.statuses() == [100, 180, 200] and caller.statuses("BYE") == [200]
    # 200 straight away: CALLING -> ANSWERED
    caller, _ = run_call(lambda net: Vendor(net, VENDOR_A, script=[(0.0, 200)]), bye=True)
    assert caller.statuses() == [100, 200]
    # 503 (CALLING -> FAILED), then 100 + 486 on the next gateway (PROCEEDING -> FAILED);
    # the call ends unanswered (ROUTING -> ENDED)
    caller, _ = run_call(lambda net: [Vendor(net, VENDOR_A, script=[(0.0, 503)]),
                                      Vendor(net, VENDOR_B, script=[(0.0, 100), (0.05, 486)])])
    assert caller.statuses() == [100, 486]
    # caller CANCEL before any provisional (CALLING -> CANCELLING): the CANCEL to the vendor
    # waits for its 180 (§9.1)
    caller, (vendor,) = run_call(lambda net: Vendor(net, VENDOR_A, script=[(0.3, 180)]),
                                 cancel_at=0.1)
    assert caller.statuses() == [100, 487]
    assert vendor.methods()[:2] == ["INVITE", "CANCEL"]
    # caller CANCEL before any provisional, then the vendor answers 200 (CANCELLING ->
    # HUNG_UP): its late 2xx is ACKed and BYEd (a fork's losing branch does the same)
    caller, (vendor,) = run_call(lambda net: Vendor(net, VENDOR_A, script=[(0.3, 200)]),
                                 cancel_at=0.1)
    assert caller.statuses() == [100, 487]
    assert vendor.methods() == ["INVITE", "ACK", "BYE"]
    # no answer within SS_SIP_TIMEOUT_INVITE (10 s): CALLING -> FAILED, the next gateway
    # answers; the first one's 200 comes anyway (FAILED -> HUNG_UP): ACKed and BYEd
    caller, (late, _) = run_call(lambda net: [Vendor(net, VENDOR_A, script=[(11.0, 200)]),
                                              Vendor(net, VENDOR_B)], seconds=13.0)
    assert caller.statuses() == [100, 180, 200]
    assert late.methods()[-2:] == ["ACK", "BYE"]
    # caller CANCEL while ringing: PROCEEDING -> CANCELLING
    caller, (vendor,) = run_call(lambda net: Vendor(net, VENDOR_A, script=[(0.0, 180)]),
                                 cancel_at=0.1)
    assert caller.statuses() == [100, 180, 487] and "CANCEL" in vendor.methods()
    # 422 with a larger Min-SE, straight away and after a 100: CALLING/PROCEEDING -> CALLING
    for trying in (False, True):
        caller, (vendor,) = run_call(
            lambda net, t=trying: TooSmallVendor(net, VENDOR_A, trying=t), bye=True)
        assert caller.statuses() == [100, 200] and len(vendor.invites) == 2

    # RFC 3262, caller requiring 100rel: 180 sent reliably (QUEUED -> UNACKED) and PRACKed
    # (UNACKED -> PRACKED); then a 180 and a 183 back to back and a 200 before any PRACK: the
    # 183 waits (QUEUED -> OVERTAKEN), the 180 is overtaken (UNACKED -> OVERTAKEN)
    require = [("Require", "100rel")]
    caller, _ = run_call(lambda net: Vendor(net, VENDOR_A), caller=RelCaller, headers=require)
    assert caller.statuses() == [100, 180, 200] and caller.statuses("PRACK") == [200]
    caller, _ = run_call(lambda net: Vendor(net, VENDOR_A, script=[
        (0.0, 180), (0.01, 183, False), (0.05, 200)]),
        caller=lambda net: RelCaller(net, prack_delay=None), headers=require)
    assert caller.statuses() == [100, 180, 200]
    # never PRACKed: UNACKED -> TIMED_OUT after 64*T1, 504
    caller, _ = run_call(lambda net: Vendor(net, VENDOR_A, script=[(0.0, 180)]),
                         caller=lambda net: RelCaller(net, prack_delay=None), headers=require,
                         seconds=40.0)
    assert caller.statuses()[-1] == 504

    table: set[Move] = {("call", old, new) for old, news in CALL_TRANSITIONS.items()
                        for new in news}
    table |= {("attempt", old, new) for old, news in ATTEMPT_TRANSITIONS.items()
              for new in news}
    table |= {("reliable", old, new) for old, news in RELIABLE_TRANSITIONS.items()
              for new in news}
    assert moves == table


@pytest.mark.parametrize(("table", "states"), [(CALL_TRANSITIONS, CallState),
                                               (ATTEMPT_TRANSITIONS, AttemptState),
                                               (RELIABLE_TRANSITIONS, ReliableState)])
def test_a_move_not_in_the_table_raises(table, states) -> None:  # type: ignore[no-untyped-def]
    assert set(table) == set(states)  # every state has a row
    for old, new in itertools.product(states, states):
        if new in table[old]:
            assert check_transition(table, "x", old, new) is new
        else:
            with pytest.raises(IllegalTransition, match=f"{old.value} -> {new.value}"):
                check_transition(table, "x", old, new)


def test_an_ended_call_cannot_be_answered_and_keeps_its_state() -> None:
    call = Call.__new__(Call)
    call.state = CallState.ENDED
    with pytest.raises(IllegalTransition, match="call: no transition ended -> confirmed"):
        call.goto(CallState.CONFIRMED)
    assert call.state is CallState.ENDED
    attempt = Attempt.__new__(Attempt)
    attempt.state = AttemptState.FAILED
    with pytest.raises(IllegalTransition, match="attempt: no transition failed -> answered"):
        attempt.goto(AttemptState.ANSWERED)
    assert attempt.state is AttemptState.FAILED and attempt.done


def test_a_prack_after_the_give_up_cannot_revive_the_provisional() -> None:
    provisional = ReliableProvisional.__new__(ReliableProvisional)
    provisional.state = ReliableState.TIMED_OUT
    with pytest.raises(IllegalTransition,
                       match="reliable provisional: no transition timed out -> pracked"):
        provisional.goto(ReliableState.PRACKED)
    assert provisional.state is ReliableState.TIMED_OUT
