"""Load protection (issue 12 items 4 and 6), sans-IO in virtual time: the per-source limiter,
the ``[limits]`` table, bounded transactions and auth sessions under a flood of distinct
requests, and the overload gate's 503 + Retry-After for new INVITEs only."""

from __future__ import annotations

import dataclasses

import pytest

from tests.switch.b2bua_harness import VENDOR_A, Caller, Vendor, make_config, start_switch
from vosapp.config import ConfigError, Limits, parse_config
from vosapp.io.virtual import VirtualNetwork
from vosapp.switch.auth import AuthPolicy
from vosapp.switch.core import SwitchCore
from vosapp.switch.limits import SHED_FLOOR, Admission, OverloadGate, SourceLimiter

# ------------------------------------------------------------------ the per-source limiter


def test_source_trips_past_threshold_and_other_sources_pass() -> None:
    limiter = SourceLimiter(Limits(source_window=2.0, source_threshold=5, source_block=10))
    verdicts = [limiter.check("192.0.2.1", 0.01 * i) for i in range(7)]
    assert verdicts == [Admission.ADMIT] * 5 + [Admission.TRIPPED, Admission.DROP]
    assert limiter.check("192.0.2.2", 0.1) is Admission.ADMIT
    assert limiter.blocked(0.1) == ["192.0.2.1"]


def test_block_lasts_while_the_flood_goes_on_then_lifts() -> None:
    unblocked: list[tuple[str, int]] = []
    limiter = SourceLimiter(Limits(source_window=1.0, source_threshold=3, source_block=5),
                            on_unblock=lambda host, dropped: unblocked.append((host, dropped)))
    now = 0.0
    while now < 20.0:  # 10 messages a second for 20 s: blocked all along
        verdict = limiter.check("192.0.2.1", now)
        assert verdict is (Admission.ADMIT if now < 0.3 else
                           Admission.TRIPPED if now == 0.3 else Admission.DROP), now
        now = round(now + 0.1, 3)
    assert limiter.blocked(23.9) == ["192.0.2.1"]  # source_block after its last full window
    assert limiter.check("192.0.2.1", 26.0) is Admission.ADMIT
    assert unblocked == [("192.0.2.1", 197)]  # the tripping message and the 196 after it


def test_exempt_sources_and_threshold_zero_are_never_limited() -> None:
    limiter = SourceLimiter(Limits(source_threshold=1), exempt=lambda host: host == "10.1.1.1")
    assert {limiter.check("10.1.1.1", 0.0) for _ in range(100)} == {Admission.ADMIT}
    off = SourceLimiter(Limits(source_threshold=0))
    assert {off.check("10.1.1.2", 0.0) for _ in range(100)} == {Admission.ADMIT}


def test_limiter_state_is_bounded_under_spoofed_sources() -> None:
    limiter = SourceLimiter(Limits(source_threshold=10), max_sources=1000)
    for i in range(50_000):
        limiter.check(f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", 0.0)
    assert len(limiter) <= 1000


# ------------------------------------------------------------------ the [limits] table


def test_limits_table_is_read_and_validated() -> None:
    cfg = parse_config("[limits]\nsource_threshold = 50\nsource_window = 0.5\n"
                       "max_calls_in_setup = 0\n")
    assert cfg.limits == dataclasses.replace(Limits(), source_threshold=50, source_window=0.5,
                                             max_calls_in_setup=0)
    assert parse_config("").limits == Limits()
    for text, key in [("[limits]\nsource_treshold = 5\n", "source_treshold"),
                      ("[limits]\nsource_threshold = -1\n", "source_threshold"),
                      ("[limits]\nretry_after = 0\n", "retry_after"),
                      ("[limits]\nmax_server_transactions = 1.5\n", "max_server_transactions"),
                      ("[limits]\nsource_window = true\n", "source_window")]:
        with pytest.raises(ConfigError) as caught:
            parse_config(text)
        assert caught.value.table == "limits" and caught.value.key == key, caught.value


# ------------------------------------------------------------------ bounded memory


def _register_flood(credentials: str) -> tuple[SwitchCore, AuthPolicy, list[bytes], int]:
    """10,000 REGISTERs with distinct Call-IDs from many sources, all within one transaction
    lifetime, against caps of 1,000 server transactions and 500 auth sessions: (core, policy,
    the start of every answer, the most server transactions seen)."""
    limits = dataclasses.replace(Limits(), max_server_transactions=1000,
                                 max_auth_sessions=500)
    cfg = dataclasses.replace(parse_config('[[account]]\nuser = "alice"\npassword = "pw"\n'),
                              limits=limits)
    net = VirtualNetwork()
    switch = net.add_switch(("10.0.0.1", 5060), config=cfg, features=["registrar"])
    switch.start()
    core = switch.core
    answered: list[bytes] = []
    core.attach_sender(lambda data, destination, transport: answered.append(data[:12]))
    most = 0
    for i in range(10_000):
        source = (f"10.9.{i >> 8 & 255}.{i & 255}", 5060)
        core.receive((f"REGISTER sip:10.0.0.1 SIP/2.0\r\n"
                      f"Via: SIP/2.0/UDP {source[0]}:5060;branch=z9hG4bK{i};rport\r\n"
                      "Max-Forwards: 70\r\nFrom: <sip:alice@10.0.0.1>;tag=1\r\n"
                      f"To: <sip:alice@10.0.0.1>\r\nCall-ID: flood-{i}\r\nCSeq: 1 REGISTER\r\n"
                      f"Contact: <sip:alice@10.9.0.1>\r\n{credentials}"
                      "Content-Length: 0\r\n\r\n").encode(), source, "UDP")
        if i % 500 == 0:
            net.run(0.01)
            most = max(most, len(core.transactions.servers))
    return core, switch.app.registrar.authenticator.policy, answered, most


def test_flood_of_distinct_registers_without_credentials_holds_no_transaction() -> None:
    # Before the caps every one of them kept a transaction and an auth session (the 120 ->
    # 714 MB RSS of issue 12). Since they are challenged statelessly (RFC 3261 §26.3.2.4)
    # they keep no transaction at all; the sessions stay within their cap.
    core, policy, answered, most = _register_flood("")
    assert len(core.transactions.servers) == 0 and most == 0
    assert core.transactions.evicted == 0
    assert policy.open_sessions() <= 500
    assert len(answered) == 10_000 and set(answered) == {b"SIP/2.0 401 "}


def test_flood_of_distinct_registers_with_credentials_keeps_transactions_bounded() -> None:
    # Forged credentials (a nonce the switch never issued) keep their transaction: the
    # transaction cap holds it at 1,000 (ten times that offered proves the bound).
    core, policy, answered, most = _register_flood(
        'Authorization: Digest username="alice", realm="vosapp", nonce="forged", '
        'uri="sip:10.0.0.1", response="00000000000000000000000000000000"\r\n')
    assert len(core.transactions.servers) <= 1000 and most <= 1000
    assert policy.open_sessions() <= 500
    assert core.transactions.evicted >= 9000
    assert len(answered) == 10_000 and set(answered) == {b"SIP/2.0 401 "}


# ------------------------------------------------------------------ the overload gate


def test_gate_signals() -> None:
    gate = OverloadGate(Limits(max_calls_in_setup=30, overload_receive_delay=0.5))
    assert gate.overloaded(29) == ""
    assert "30 calls in setup" in gate.overloaded(30)
    gate.report_receive_delay(0.8)
    assert "wait 800 ms" in gate.overloaded(SHED_FLOOR)
    # A delay with only a few calls in setup is a stall, not load: nothing is shed.
    assert gate.overloaded(SHED_FLOOR - 1) == ""
    gate.report_receive_delay(0.3)  # hysteresis: open again only under half the limit
    assert "wait 300 ms" in gate.overloaded(SHED_FLOOR)
    gate.report_receive_delay(0.2)
    assert gate.overloaded(SHED_FLOOR) == "" and gate.refused == 3


def _overload_rig(**limits: object):  # type: ignore[no-untyped-def]
    net = VirtualNetwork()
    cfg = make_config()
    cfg = dataclasses.replace(cfg, limits=dataclasses.replace(cfg.limits, **limits))
    switch = start_switch(net, cfg)
    return net, switch


def test_overload_answers_new_invites_503_retry_after_and_keeps_the_call_up() -> None:
    net, switch = _overload_rig(retry_after=7)
    vendor = Vendor(net, VENDOR_A)
    established = Caller(net)
    established.call()
    net.run(1.0)
    assert established.statuses() == [100, 180, 200]
    ringing = [Caller(net, ("10.0.0.2", 6000 + i)) for i in range(SHED_FLOOR)]
    for caller in ringing:  # calls in setup: the vendor never answers them
        caller.call()
    net.run(0.5)
    def calls_routed() -> int:  # distinct vendor INVITEs (the unanswered ones are resent)
        return len({invite.call_id for invite in vendor.invites})

    routed = calls_routed()
    switch.core.overload.report_receive_delay(2.0)  # forced: the runtime measures it on sockets
    late = Caller(net, ("10.0.0.2", 5070))
    late.call()
    net.run(1.0)
    final = late.final()
    assert final is not None and final.status == 503
    assert final.headers.get("Retry-After") == "7"
    assert calls_routed() == routed  # refused before routing: the vendor saw nothing new
    assert any("overload: new INVITEs answered 503" in (r.note or "")
               for r in switch.trace.records())
    established.bye()  # in-dialog requests go on during overload
    net.run(1.0)
    assert established.statuses("BYE") == [200] and vendor.methods()[-1] == "BYE"
    switch.core.overload.report_receive_delay(0.0)  # recovers by itself
    again = Caller(net, ("10.0.0.2", 5080))
    again.call()
    net.run(1.0)
    assert calls_routed() == routed + 1 and 503 not in again.statuses()  # routed again
    assert switch.core.stats.overload_refused == 1


def test_calls_in_setup_limit_sheds_the_excess_and_recovers() -> None:
    net, _switch = _overload_rig(max_calls_in_setup=2)
    Vendor(net, VENDOR_A, script=((0.0, 100), (0.05, 180), (5.0, 200)))  # slow answers
    callers = [Caller(net, ("10.0.0.2", 5100 + i)) for i in range(4)]
    for caller in callers:
        caller.call()
        net.run(0.2)
    net.run(1.0)
    assert [c.final().status if c.final() else None for c in callers] == [None, None, 503, 503]
    net.run(5.0)  # the first call in setup is answered (the scripted vendor answers once)
    assert callers[0].statuses()[-1] == 200  # and there is room again
    late = Caller(net, ("10.0.0.2", 5200))
    late.call()
    net.run(0.3)
    assert late.statuses() == [100]  # admitted and routed, no 503


def test_a_cancelled_virtual_timer_lets_go_of_its_callback() -> None:
    # Evicted transactions cancel their timers; in virtual time the heap entry stays until
    # its time comes, and it must not keep the transaction alive meanwhile (asyncio's
    # Handle.cancel drops its callback the same way).
    import gc
    import weakref

    from vosapp.clock import ManualClock

    class Held:
        def fire(self) -> None:
            raise AssertionError("a cancelled timer fired")

    clock = ManualClock()
    held = Held()
    handle = clock.call_later(32.0, held.fire)
    ref = weakref.ref(held)
    handle.cancel()
    del held
    gc.collect()
    assert ref() is None
    assert clock.advance(64.0) == 0
