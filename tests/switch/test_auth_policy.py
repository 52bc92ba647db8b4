"""docs/behaviour.md §2 policy in virtual time: every parameter, their combinations, and the
arithmetic."""

from __future__ import annotations

import itertools

import pytest

from vosapp.clock import ManualClock
from vosapp.params import Params
from vosapp.switch.auth import (
    Action,
    AuthPolicy,
    AuthRequest,
    MemoryJournal,
    Reason,
    Verdict,
    source_allowed,
)

SRC = "192.0.2.10"


def make(**changes: object) -> tuple[AuthPolicy, ManualClock, MemoryJournal]:
    clock = ManualClock()
    journal = MemoryJournal()
    return AuthPolicy(Params.defaults().replace(**changes), clock, journal), clock, journal


def req(call_id: str = "c1", user: str = "alice", method: str = "REGISTER",
        host: str = SRC) -> AuthRequest:
    return AuthRequest(method=method, call_id=call_id, user=user, source_host=host,
                       source_port=5060)


def test_no_credentials_is_challenged_with_401_by_default() -> None:
    policy, _, _ = make()
    decision = policy.decide(req(), Verdict.NO_CREDENTIALS)
    assert decision.action is Action.CHALLENGE
    assert decision.status == 401
    assert decision.challenge_header == "WWW-Authenticate"
    assert decision.credentials_header == "Authorization"


def test_authentication_code_407_uses_proxy_authenticate() -> None:
    policy, _, _ = make(SS_SIP_AUTHENTICATION_CODE=407)
    decision = policy.decide(req(), Verdict.NO_CREDENTIALS)
    assert (decision.status, decision.challenge_header) == (407, "Proxy-Authenticate")
    assert decision.credentials_header == "Proxy-Authorization"
    wrong = policy.decide(req(), Verdict.WRONG_PASSWORD)
    assert wrong.status == 407


def test_valid_credentials_accepted_and_session_closed() -> None:
    policy, _, journal = make()
    policy.decide(req(), Verdict.NO_CREDENTIALS)
    assert policy.open_sessions() == 1
    assert policy.decide(req(), Verdict.OK).action is Action.ACCEPT
    assert policy.open_sessions() == 0
    assert journal.events == []


@pytest.mark.parametrize("retry", [0, 1, 3, 6])
def test_session_retry_rechallenges_then_403(retry: int) -> None:
    # Terminal ceiling out of the way so only SS_SIP_AUTHENTICATION_RETRY acts.
    policy, _, journal = make(SS_SIP_AUTHENTICATION_RETRY=retry, SS_AUTHENTICATION_MAX_RETRY=0,
                              SS_ENDPOINT_REGISTER_RETRY=0)
    policy.decide(req(), Verdict.NO_CREDENTIALS)
    for _ in range(retry):
        assert policy.decide(req(), Verdict.WRONG_PASSWORD).action is Action.CHALLENGE
    final = policy.decide(req(), Verdict.WRONG_PASSWORD)
    assert (final.action, final.status, final.reason) == (Action.REJECT, 403,
                                                         Reason.RETRIES_EXHAUSTED)
    assert journal.reasons().count("wrong_password") == retry + 1
    assert journal.reasons()[-1] == "retries_exhausted"
    # A new request in the same Call-ID starts a new session.
    assert policy.decide(req(), Verdict.NO_CREDENTIALS).action is Action.CHALLENGE


def test_session_timeout_rejects_whatever_retries_remain() -> None:
    policy, clock, journal = make(SS_SIP_AUTHENTICATION_TIMEOUT=10)
    policy.decide(req(), Verdict.NO_CREDENTIALS)
    clock.advance(10.5)
    decision = policy.decide(req(), Verdict.OK)
    assert (decision.action, decision.status, decision.reason) == (
        Action.REJECT, 403, Reason.SESSION_TIMEOUT)
    assert journal.reasons() == ["session_timeout"]


def test_whichever_limit_comes_first() -> None:
    # Slow guesser: timeout first.
    policy, clock, _ = make(SS_SIP_AUTHENTICATION_RETRY=6, SS_SIP_AUTHENTICATION_TIMEOUT=5,
                            SS_AUTHENTICATION_MAX_RETRY=0)
    policy.decide(req(), Verdict.NO_CREDENTIALS)
    outcomes = []
    for _ in range(6):
        clock.advance(2)
        outcomes.append(policy.decide(req(), Verdict.WRONG_PASSWORD).reason)
    assert Reason.SESSION_TIMEOUT in outcomes
    assert Reason.RETRIES_EXHAUSTED not in outcomes
    # Fast guesser: retries first.
    policy, clock, _ = make(SS_SIP_AUTHENTICATION_RETRY=2, SS_SIP_AUTHENTICATION_TIMEOUT=60,
                            SS_AUTHENTICATION_MAX_RETRY=0, SS_ENDPOINT_REGISTER_RETRY=0)
    policy.decide(req(), Verdict.NO_CREDENTIALS)
    reasons = [policy.decide(req(), Verdict.WRONG_PASSWORD).reason for _ in range(3)]
    assert reasons[-1] is Reason.RETRIES_EXHAUSTED


def test_param_change_applies_to_new_sessions_only() -> None:
    policy, _, _ = make(SS_SIP_AUTHENTICATION_RETRY=5, SS_AUTHENTICATION_MAX_RETRY=0,
                        SS_ENDPOINT_REGISTER_RETRY=0)
    policy.decide(req("old"), Verdict.NO_CREDENTIALS)
    policy.set_params(policy.params.replace(SS_SIP_AUTHENTICATION_RETRY=0,
                                            SS_SIP_AUTHENTICATION_CODE=407))
    # The open session keeps retry 5 and code 401.
    old = policy.decide(req("old"), Verdict.WRONG_PASSWORD)
    assert (old.action, old.status) == (Action.CHALLENGE, 401)
    # A new session has retry 0: first failure is final.
    assert policy.decide(req("new"), Verdict.NO_CREDENTIALS).status == 407
    assert policy.decide(req("new"), Verdict.WRONG_PASSWORD).status == 403


def test_terminal_suspension_across_call_ids_and_refusal_without_password_check() -> None:
    policy, clock, journal = make(SS_AUTHENTICATION_MAX_RETRY=3,
                                  SS_AUTHENTICATION_FAILED_SUSPEND=60)
    decisions = [policy.decide(req(f"c{i}", method="INVITE"), Verdict.WRONG_PASSWORD)
                 for i in range(3)]
    assert [d.action for d in decisions] == [Action.CHALLENGE, Action.CHALLENGE, Action.REJECT]
    assert decisions[-1].reason is Reason.SUSPENDED
    assert len(journal.suspensions) == 1
    # Suspended: refused before any password check, even with the right one.
    assert policy.screen(req("x", method="INVITE")) is not None
    refused = policy.decide(req("x", method="INVITE"), Verdict.OK)
    assert (refused.action, refused.status, refused.reason) == (Action.REJECT, 403,
                                                               Reason.SUSPENDED)
    # Another source address for the same user is another terminal.
    assert policy.decide(req("y", host="192.0.2.99"), Verdict.OK).action is Action.ACCEPT
    clock.advance(59)
    assert policy.is_suspended("alice", SRC)
    clock.advance(1.01)
    assert not policy.is_suspended("alice", SRC)
    assert policy.decide(req("z"), Verdict.OK).action is Action.ACCEPT


def test_success_resets_the_terminal_counter() -> None:
    policy, _, _ = make(SS_AUTHENTICATION_MAX_RETRY=3)
    for i in range(2):
        policy.decide(req(f"a{i}"), Verdict.WRONG_PASSWORD)
    assert policy.failures("alice", SRC) == 2
    policy.decide(req("ok"), Verdict.OK)
    assert policy.failures("alice", SRC) == 0


def test_max_retry_zero_disables_terminal_suspension() -> None:
    policy, _, journal = make(SS_AUTHENTICATION_MAX_RETRY=0, SS_ENDPOINT_REGISTER_RETRY=0,
                              SS_SIP_AUTHENTICATION_RETRY=0)
    for i in range(50):
        policy.decide(req(f"c{i}", method="INVITE"), Verdict.WRONG_PASSWORD)
    assert journal.suspensions == []


def test_register_pair_suspends_register_only() -> None:
    policy, clock, journal = make(SS_AUTHENTICATION_MAX_RETRY=0, SS_ENDPOINT_REGISTER_RETRY=2,
                                  SS_ENDPOINT_REGISTER_SUSPEND=30)
    policy.decide(req("r1"), Verdict.WRONG_PASSWORD)
    tripped = policy.decide(req("r2"), Verdict.WRONG_PASSWORD)
    assert tripped.reason is Reason.REGISTER_SUSPENDED and tripped.status == 403
    assert policy.decide(req("r3"), Verdict.OK).reason is Reason.REGISTER_SUSPENDED
    # INVITE from the same terminal is not affected by the registration pair.
    assert policy.decide(req("i1", method="INVITE"), Verdict.OK).action is Action.ACCEPT
    clock.advance(31)
    assert policy.decide(req("r4"), Verdict.OK).action is Action.ACCEPT
    assert [s.scope.value for s in journal.suspensions] == ["register"]


def test_register_suspend_zero_disables_register_pair() -> None:
    policy, _, journal = make(SS_AUTHENTICATION_MAX_RETRY=0, SS_ENDPOINT_REGISTER_RETRY=1,
                              SS_ENDPOINT_REGISTER_SUSPEND=0, SS_SIP_AUTHENTICATION_RETRY=0)
    for i in range(5):
        policy.decide(req(f"r{i}"), Verdict.WRONG_PASSWORD)
    assert journal.suspensions == []


def test_reply_unauthorized_off_drops_everything_but_valid_credentials() -> None:
    policy, _, journal = make(SS_REPLY_UNAUTHORIZED=False, SS_AUTHENTICATION_MAX_RETRY=2)
    assert policy.decide(req(), Verdict.NO_CREDENTIALS).action is Action.DROP
    assert policy.decide(req(), Verdict.WRONG_PASSWORD).action is Action.DROP
    assert policy.decide(req(), Verdict.MALFORMED).action is Action.DROP
    tripped = policy.decide(req("c2"), Verdict.WRONG_PASSWORD)  # 2nd failure: suspended
    assert (tripped.action, tripped.reason) == (Action.DROP, Reason.SUSPENDED)
    # Suspended and silent: even the right password is dropped, with an audit entry.
    assert policy.decide(req("c3"), Verdict.OK).action is Action.DROP
    assert "suspended" in journal.reasons()
    # Another terminal with valid credentials on an honoured nonce is served.
    assert policy.decide(req("c4", user="bob"), Verdict.OK).action is Action.ACCEPT
    # Every drop was logged.
    assert "challenge" in journal.reasons()


def test_unknown_user_is_indistinguishable_from_wrong_password() -> None:
    policy, _, journal = make()
    wrong = policy.decide(req("a", user="alice"), Verdict.WRONG_PASSWORD)
    unknown = policy.decide(req("b", user="nobody"), Verdict.UNKNOWN_USER)
    denied = policy.decide(req("c", user="carol"), Verdict.NETWORK_DENIED)
    assert (wrong.action, wrong.status) == (unknown.action, unknown.status) == (
        denied.action, denied.status)
    assert journal.reasons() == ["wrong_password", "unknown_user", "network_denied"]
    # ...and unknown users get suspended like anyone else.
    for i in range(5):
        policy.decide(req(f"u{i}", user="nobody"), Verdict.UNKNOWN_USER)
    assert policy.is_suspended("nobody", SRC)


@pytest.mark.parametrize("verdict", [Verdict.FORGED_NONCE, Verdict.REPLAYED_NC,
                                     Verdict.WRONG_REALM, Verdict.UNKNOWN_ALGORITHM])
def test_bad_nonce_realm_algorithm_consume_session_retries_not_terminal(
        verdict: Verdict) -> None:
    policy, _, journal = make(SS_SIP_AUTHENTICATION_RETRY=2)
    outcomes = [policy.decide(req(), verdict) for _ in range(3)]
    assert [o.action for o in outcomes] == [Action.CHALLENGE, Action.CHALLENGE, Action.REJECT]
    assert outcomes[-1].reason is Reason.RETRIES_EXHAUSTED
    assert policy.failures("alice", SRC) == 0
    assert verdict.value in journal.reasons()


def test_malformed_gets_400_and_an_audit_entry() -> None:
    policy, _, journal = make()
    decision = policy.decide(req(), Verdict.MALFORMED)
    assert (decision.action, decision.status) == (Action.REJECT, 400)
    assert journal.reasons() == ["malformed"]


def test_stale_nonce_rechallenges_with_stale_flag_without_counting() -> None:
    policy, _, journal = make(SS_SIP_AUTHENTICATION_RETRY=0)
    for _ in range(3):
        decision = policy.decide(req(), Verdict.STALE_NONCE)
        assert decision.action is Action.CHALLENGE and decision.stale
    assert journal.events == []


def test_unsuspend_by_user_or_address_and_via_journal() -> None:
    policy, _, journal = make(SS_AUTHENTICATION_MAX_RETRY=1)
    policy.decide(req("a", user="alice"), Verdict.WRONG_PASSWORD)
    policy.decide(req("b", user="bob"), Verdict.WRONG_PASSWORD)
    assert len(policy.suspensions()) == 2
    assert policy.unsuspend("alice") == 1
    assert not policy.is_suspended("alice", SRC)
    # Another process lifts by address: the journal says so, the policy honours it.
    journal.lifted_targets.add(SRC)
    assert not policy.is_suspended("bob", SRC)


def test_restore_suspensions_from_a_previous_run() -> None:
    policy, _, journal = make(SS_AUTHENTICATION_MAX_RETRY=1)
    policy.decide(req(), Verdict.WRONG_PASSWORD)
    saved = journal.suspensions[0]
    clock2 = ManualClock(start=500.0, wall_origin=saved.since_wall + 100)  # 100 s later
    policy2 = AuthPolicy(Params.defaults(), clock2)
    policy2.restore([saved])
    assert policy2.is_suspended("alice", SRC)
    clock2.advance(79)
    assert policy2.is_suspended("alice", SRC)
    clock2.advance(2)
    assert not policy2.is_suspended("alice", SRC)


def test_memory_is_bounded() -> None:
    policy, clock, _ = make()
    policy = AuthPolicy(Params.defaults(), clock, max_sessions=100, max_terminals=50)
    for i in range(1000):
        policy.decide(req(f"c{i}", user=f"u{i}"), Verdict.NO_CREDENTIALS)
        policy.decide(req(f"d{i}", user=f"u{i}"), Verdict.WRONG_PASSWORD)
    assert policy.open_sessions() <= 100


def test_verdict_from_digest_result_by_name() -> None:
    class Fake:
        name = "STALE_NONCE"
    assert Verdict.from_digest(Fake()) is Verdict.STALE_NONCE
    with pytest.raises(ValueError, match="no authentication verdict"):
        Verdict.from_digest("BANANA")


def test_source_networks() -> None:
    assert source_allowed("10.1.2.3", [])
    assert source_allowed("10.1.2.3", ["10.0.0.0/8"])
    assert not source_allowed("192.0.2.1", ["10.0.0.0/8", "127.0.0.1/32"])
    assert not source_allowed("not-an-ip", ["10.0.0.0/8"])


# -- the article's arithmetic (docs/behaviour.md §2.5)
# ----------------------------------------------------

def brute_force_hour(policy: AuthPolicy, clock: ManualClock, rtt: float = 0.05) -> tuple[int, int]:
    """A fast attacker guessing one user's password for one simulated hour.

    Returns (passwords actually checked, responses received). Each request costs ``rtt``; a
    refusal or silence makes the attacker start a new session at once (or after 1 s of timeout
    when nothing came back).
    """
    guesses = responses = 0
    end = clock.now() + 3600
    calls = itertools.count()
    while clock.now() < end:
        call_id = f"bf-{next(calls)}"
        request = req(call_id)
        first = policy.decide(request, Verdict.NO_CREDENTIALS)
        clock.advance(rtt if first.responds else 1.0)
        responses += first.responds
        if first.action is not Action.CHALLENGE:
            continue
        while clock.now() < end:
            if policy.screen(request) is not None:
                decision = policy.decide(request, Verdict.WRONG_PASSWORD)
            else:
                guesses += 1  # the password is checked now
                decision = policy.decide(request, Verdict.WRONG_PASSWORD)
            responses += decision.responds
            clock.advance(rtt if decision.responds else 1.0)
            if decision.action is not Action.CHALLENGE:
                break
    return guesses, responses


def test_defaults_allow_at_most_about_113_guesses_per_hour() -> None:
    policy, clock, _ = make()
    guesses, _ = brute_force_hour(policy, clock)
    assert 100 <= guesses <= 120, guesses


def test_retry_3_suspend_600_allows_at_most_20_guesses_per_hour() -> None:
    policy, clock, _ = make(SS_SIP_AUTHENTICATION_RETRY=3, SS_AUTHENTICATION_MAX_RETRY=3,
                            SS_AUTHENTICATION_FAILED_SUSPEND=600)
    guesses, _ = brute_force_hour(policy, clock)
    assert 15 <= guesses <= 20, guesses


def test_reply_unauthorized_off_gives_zero_responses() -> None:
    policy, clock, journal = make(SS_REPLY_UNAUTHORIZED=False)
    guesses, responses = brute_force_hour(policy, clock)
    assert responses == 0
    assert guesses == 0  # never challenged, so it never got a nonce to guess with
    assert journal.events  # but every attempt was logged


def test_refusals_of_a_suspended_terminal_are_audited_sparingly() -> None:
    policy, clock, journal = make(SS_AUTHENTICATION_MAX_RETRY=1)
    policy.decide(req("a"), Verdict.WRONG_PASSWORD)
    before = len(journal.events)
    for i in range(1000):
        assert policy.screen(req(f"x{i}")) is not None
        clock.advance(0.01)  # 10 s of flooding
    refusal_rows = journal.events[before:]
    assert 1 <= len(refusal_rows) <= 2
    assert refusal_rows[0].reason == "suspended"


def test_a_flood_of_other_users_cannot_evict_a_suspension() -> None:
    clock = ManualClock()
    policy = AuthPolicy(Params.defaults().replace(SS_AUTHENTICATION_MAX_RETRY=1), clock,
                        max_terminals=10)
    policy.decide(req("a", user="alice"), Verdict.WRONG_PASSWORD)
    assert policy.is_suspended("alice", SRC)
    # 500 other names, each leaving terminal state behind (no suspensions for them).
    policy.set_params(policy.params.replace(SS_AUTHENTICATION_MAX_RETRY=0))
    for i in range(500):
        policy.decide(req(f"f{i}", user=f"junk{i}"), Verdict.UNKNOWN_USER)
    assert policy.is_suspended("alice", SRC)


# -- every combination of the docs/behaviour.md §2 parameters against one script
# ---------------------------

@pytest.mark.parametrize("code", [401, 407])
@pytest.mark.parametrize("reply", [True, False])
@pytest.mark.parametrize("retry", [0, 2, 6])
@pytest.mark.parametrize("max_retry", [0, 3, 6])
@pytest.mark.parametrize(("register_retry", "register_suspend"), [(0, 0), (2, 60), (6, 0)])
@pytest.mark.parametrize("method", ["REGISTER", "INVITE"])
def test_parameter_matrix(code: int, reply: bool, retry: int, max_retry: int,
                          register_retry: int, register_suspend: int, method: str) -> None:
    """One session: challenge, then wrong passwords until the switch stops re-challenging,
    then the right password in a new session. Checked against docs/behaviour.md §2 as a model."""
    policy, clock, _ = make(SS_SIP_AUTHENTICATION_CODE=code, SS_REPLY_UNAUTHORIZED=reply,
                            SS_SIP_AUTHENTICATION_RETRY=retry,
                            SS_AUTHENTICATION_MAX_RETRY=max_retry,
                            SS_ENDPOINT_REGISTER_RETRY=register_retry,
                            SS_ENDPOINT_REGISTER_SUSPEND=register_suspend)
    first = policy.decide(req("s1", method=method), Verdict.NO_CREDENTIALS)
    decisions = [first]
    failures = 0
    while decisions[-1].action is Action.CHALLENGE or (not reply and failures <= retry):
        clock.advance(0.5)
        decisions.append(policy.decide(req("s1", method=method), Verdict.WRONG_PASSWORD))
        failures += 1
        if decisions[-1].action in (Action.REJECT,) or failures > 20:
            break
        if not reply and decisions[-1].reason in (Reason.SUSPENDED, Reason.REGISTER_SUSPENDED,
                                                  Reason.RETRIES_EXHAUSTED):
            break
    register_pair = method == "REGISTER" and register_retry > 0 and register_suspend > 0
    ceilings = [retry + 1]  # the session's own limit: failure retry+1 ends it
    if max_retry:
        ceilings.append(max_retry)
    if register_pair:
        ceilings.append(register_retry)
    assert failures == min(ceilings)
    if reply:
        challenges = [d for d in decisions if d.action is Action.CHALLENGE]
        assert all(d.status == code for d in challenges)
        assert decisions[-1].status == 403
    else:
        assert all(d.action is Action.DROP for d in decisions)
    # The right password afterwards, in a new session from the same terminal.
    suspended = (max_retry and failures == max_retry) or (
        register_pair and failures == register_retry)
    right = policy.decide(req("s2", method=method), Verdict.OK)
    if suspended:
        assert right.action is (Action.REJECT if reply else Action.DROP)
        clock.advance(3600)
        right = policy.decide(req("s3", method=method), Verdict.OK)
    assert right.action is Action.ACCEPT


def test_decide_screened_is_decide_after_a_screen_that_let_the_request_through() -> None:
    # InboundAuthenticator screens, verifies, then calls decide_screened: the same decisions,
    # audit rows and suspensions as decide (which screens itself) until the terminal is
    # suspended; from then on screen refuses first, as decide would.
    verdicts = [Verdict.NO_CREDENTIALS, Verdict.WRONG_PASSWORD, Verdict.OK,
                *[Verdict.NO_CREDENTIALS, Verdict.WRONG_PASSWORD] * 6, Verdict.OK]
    plain, _, plain_journal = make(SS_AUTHENTICATION_MAX_RETRY=5)
    screened, _, screened_journal = make(SS_AUTHENTICATION_MAX_RETRY=5)
    for n, verdict in enumerate(verdicts):
        request = req(call_id=f"c{n // 2}")
        expected = plain.decide(request, verdict)
        refused = screened.screen(request)
        got = refused if refused is not None else screened.decide_screened(request, verdict)
        assert got == expected, n
    assert [(e.reason, e.detail) for e in screened_journal.events] == [
        (e.reason, e.detail) for e in plain_journal.events]
    # the run got as far as a suspension, and past it
    assert len(screened_journal.suspensions) == len(plain_journal.suspensions) == 1
    assert got.reason is Reason.SUSPENDED
