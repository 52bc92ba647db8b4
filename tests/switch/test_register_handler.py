"""REGISTER through the real SwitchCore (sans-IO, virtual time): docs/behaviour.md §2 on the
wire."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from vosapp.clock import ManualClock
from vosapp.config import Account
from vosapp.params import Params
from vosapp.sip import Response, parse
from vosapp.sip.digest import answer, parse_challenge
from vosapp.store import Store
from vosapp.switch.core import SwitchCore
from vosapp.switch.registrar import RegistrarService, build_registrar_service

SWITCH = ("127.0.0.1", 5060)
PHONE = ("192.0.2.20", 5062)
ACCOUNTS = {
    "alice": Account(user="alice", password="s3cret"),
    "lan": Account(user="lan", password="pw", networks=(
        __import__("ipaddress").ip_network("10.0.0.0/8"),)),
}


@dataclass
class Rig:
    core: SwitchCore
    clock: ManualClock
    service: RegistrarService
    sent: list[tuple[bytes, tuple[str, int]]] = field(default_factory=list)
    branches: itertools.count = field(default_factory=lambda: itertools.count(1))

    def send(self, text: str, source: tuple[str, int] = PHONE) -> Response | None:
        before = len(self.sent)
        self.core.receive(text.replace("\n", "\r\n").encode(), source, "UDP")
        replies = self.sent[before:]
        if not replies:
            return None
        message = parse(replies[-1][0])
        assert isinstance(message, Response)
        return message

    def register(self, user: str = "alice", *, call_id: str = "reg-1", cseq: int = 1,
                 contact: str | None = "<sip:alice@192.0.2.20:5062>", expires: int | None = 600,
                 auth: tuple[str, str] | None = None, extra: str = "",
                 source: tuple[str, int] = PHONE, branch: str | None = None) -> Response | None:
        """``branch``: the same one again makes the request a retransmission."""
        branch = branch or f"z9hG4bK-{next(self.branches)}"
        lines = ["REGISTER sip:127.0.0.1 SIP/2.0",
                 f"Via: SIP/2.0/UDP {source[0]}:{source[1]};branch={branch};rport",
                 "Max-Forwards: 70",
                 f"From: <sip:{user}@127.0.0.1>;tag=ft1",
                 f"To: <sip:{user}@127.0.0.1>",
                 f"Call-ID: {call_id}",
                 f"CSeq: {cseq} REGISTER"]
        if contact is not None:
            lines.append(f"Contact: {contact}")
        if expires is not None:
            lines.append(f"Expires: {expires}")
        if auth is not None:
            lines.append(f"{auth[0]}: {auth[1]}")
        if extra:
            lines.append(extra)
        lines += ["Content-Length: 0", "", ""]
        return self.send("\n".join(lines), source)

    def login(self, user: str = "alice", password: str = "s3cret", *, call_id: str = "reg-1",
              cseq: int = 1, **kw) -> Response | None:
        """REGISTER, answer the challenge; returns the final response (or None)."""
        first = self.register(user, call_id=call_id, cseq=cseq, **kw)
        if first is None or first.status not in (401, 407):
            return first
        header = "WWW-Authenticate" if first.status == 401 else "Proxy-Authenticate"
        answer_header = "Authorization" if first.status == 401 else "Proxy-Authorization"
        challenge = parse_challenge(first.headers.get(header))
        credentials = answer(challenge, "REGISTER", "sip:127.0.0.1", user, password)
        return self.register(user, call_id=call_id, cseq=cseq + 1,
                             auth=(answer_header, str(credentials)), **kw)


def make_rig(tmp_path: Path, **changes: object) -> Rig:
    clock = ManualClock()
    core = SwitchCore(clock=clock, params=Params.defaults().replace(**changes))
    core.local_addresses["UDP"] = SWITCH
    store = Store.open(tmp_path)
    service = build_registrar_service(core, accounts=ACCOUNTS.get, store=store, realm="lab")
    rig = Rig(core, clock, service)
    core.attach_sender(lambda data, dst, transport: rig.sent.append((data, dst)))
    core.start()
    return rig


@pytest.fixture()
def rig(tmp_path: Path) -> Rig:
    return make_rig(tmp_path)


def test_register_with_digest_binds_contact(rig: Rig) -> None:
    challenge = rig.register()
    assert challenge is not None and challenge.status == 401
    assert 'realm="lab"' in challenge.headers.get("WWW-Authenticate")
    ok = rig.login(call_id="reg-2")
    assert ok is not None and ok.status == 200
    (contact,) = ok.headers.get_all("Contact")
    assert contact.startswith("<sip:alice@192.0.2.20:5062>;expires=")
    assert ok.headers.get("Date")
    (binding,) = rig.service.registrar.bindings("alice")
    assert (binding.received_host, binding.received_port) == PHONE


def test_407_mode_uses_proxy_headers(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, SS_SIP_AUTHENTICATION_CODE=407)
    first = rig.register()
    assert first is not None and first.status == 407
    assert first.headers.get("Proxy-Authenticate") and not first.headers.get("WWW-Authenticate")
    ok = rig.login(call_id="p2")
    assert ok is not None and ok.status == 200


def test_interval_too_brief_carries_min_expires(rig: Rig) -> None:
    response = rig.login(expires=5)
    assert response is not None and response.status == 423
    assert response.headers.get("Min-Expires") == "60"


def test_fetch_and_star(rig: Rig) -> None:
    rig.login(call_id="a")
    fetched = rig.login(call_id="a", cseq=3, contact=None, expires=None)
    assert fetched is not None and fetched.status == 200
    assert len(fetched.headers.get_all("Contact")) == 1
    removed = rig.login(call_id="a", cseq=5, contact="*", expires=0)
    assert removed is not None and removed.status == 200
    assert removed.headers.get_all("Contact") == []


def test_wrong_password_until_suspension_then_refused_without_check(rig: Rig) -> None:
    statuses = []
    for i in range(6):
        response = rig.login(password="guess", call_id=f"bf-{i}")
        assert response is not None
        statuses.append(response.status)
    assert statuses[:5] == [401] * 5 and statuses[5] == 403
    # Suspended: even the right password is refused.
    refused = rig.login(call_id="right")
    assert refused is not None and refused.status == 403
    assert "suspended" in (refused.reason or "")
    rig.clock.advance(181)
    assert rig.login(call_id="later").status == 200  # type: ignore[union-attr]


def test_reply_unauthorized_off_is_silent_even_when_suspended(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, SS_REPLY_UNAUTHORIZED=False)
    assert rig.register() is None
    assert rig.register(auth=("Authorization", ('Digest username="alice", realm="lab", '
                              'nonce="forged", uri="sip:127.0.0.1", response="00"'))) is None
    assert rig.sent == []


def test_unknown_user_and_wrong_network_look_like_wrong_password(rig: Rig) -> None:
    wrong = rig.login(password="nope", call_id="w")
    unknown = rig.login("mallory", "x", call_id="u",
                        contact="<sip:mallory@192.0.2.20:5062>")
    outside = rig.login("lan", "pw", call_id="n", contact="<sip:lan@192.0.2.20:5062>")
    assert wrong.status == unknown.status == outside.status == 401  # type: ignore[union-attr]
    inside = rig.login("lan", "pw", call_id="n2", contact="<sip:lan@10.1.1.1>",
                       source=("10.1.1.1", 5060))
    assert inside is not None and inside.status == 200
    reasons = [e.reason for e in rig.service.authenticator.policy.journal.events()]
    assert {"wrong_password", "unknown_user", "network_denied"} <= set(reasons)


def test_credentials_for_another_aor_are_forbidden(rig: Rig) -> None:
    first = rig.register("bob")
    challenge = parse_challenge(first.headers.get("WWW-Authenticate"))  # type: ignore
    creds = answer(challenge, "REGISTER", "sip:127.0.0.1", "alice", "s3cret")
    response = rig.register("bob", cseq=2, auth=("Authorization", str(creds)),
                            contact="<sip:bob@192.0.2.20>")
    assert response is not None and response.status == 403


@pytest.mark.parametrize("header", [
    'Digest username="alice"',  # partial
    "Basic YWxpY2U6czNjcmV0",  # wrong scheme
    ('Digest username="alice", realm="lab", nonce="x", uri="sip:127.0.0.1", response="1",'
    ' algorithm=ROT13'),
    "Digest " + "a=b, " * 2000 + "c=d",
])
def test_bad_authorization_headers_get_a_4xx_never_200(rig: Rig, header: str) -> None:
    response = rig.register(auth=("Authorization", header))
    assert response is not None and 400 <= response.status < 500
    assert rig.service.registrar.bindings("alice") == []


def test_replayed_and_wrong_realm_are_rechallenged(rig: Rig) -> None:
    first = rig.register()
    challenge = parse_challenge(first.headers.get("WWW-Authenticate"))  # type: ignore
    creds = answer(challenge, "REGISTER", "sip:127.0.0.1", "alice", "s3cret")
    assert rig.register(cseq=2, auth=("Authorization", str(creds))).status == 200  # type: ignore
    replay = rig.register(cseq=3, auth=("Authorization", str(creds)))
    assert replay is not None and replay.status == 401
    text = str(creds).replace('realm="lab"', 'realm="other"')
    assert rig.register(cseq=4, auth=("Authorization", text)).status == 401  # type: ignore


def test_absurd_expires_and_many_contacts(rig: Rig) -> None:
    clamped = rig.login(expires=10**40)
    assert clamped is not None and clamped.status == 200
    assert clamped.headers.get("Contact").endswith("expires=3600")
    many = ", ".join(f"<sip:alice@192.0.2.{i}>" for i in range(50))
    response = rig.login(call_id="many", contact=many)
    assert response is not None and response.status == 403
    bad = rig.login(call_id="bad", expires=None, contact="<sip:alice@h>;expires=-3")
    assert bad is not None and bad.status == 400


def test_param_change_applies_to_new_sessions(rig: Rig) -> None:
    assert rig.register(call_id="old").status == 401  # type: ignore[union-attr]
    rig.core.params = rig.core.params.replace(SS_SIP_AUTHENTICATION_CODE=407,
                                              SS_AUTHENTICATION_MAX_RETRY=0)
    assert rig.register(call_id="new").status == 407  # type: ignore[union-attr]
    # The session opened before the change keeps 401.
    assert rig.register(call_id="old", cseq=2, auth=("Authorization", (
        'Digest username="alice", realm="lab", nonce="forged", uri="sip:127.0.0.1", '
        'response="00", qop=auth, nc=00000001, cnonce="x"'))).status == 401  # type: ignore


# -- the INVITE hook (what the B2BUA calls) ---------------------------------------------------

def invite_rig(tmp_path: Path, **changes: object) -> Rig:
    rig = make_rig(tmp_path, **changes)
    authenticator = rig.service.authenticator

    def on_invite(request, txn) -> None:  # type: ignore[no-untyped-def]
        result = authenticator.authenticate(request, txn.source)
        if not result.accepted:
            authenticator.finish(result, request, txn, rig.core.make_response)
            return
        txn.respond(rig.core.make_response(request, 486, f"Busy ({result.username})"))

    rig.core.add_request_handler("INVITE", on_invite)
    return rig


def send_invite(rig: Rig, *, call_id: str, cseq: int = 1, auth: str | None = None) -> Response:
    branch = f"z9hG4bK-inv{next(rig.branches)}"
    lines = ["INVITE sip:2000@127.0.0.1 SIP/2.0",
             f"Via: SIP/2.0/UDP {PHONE[0]}:{PHONE[1]};branch={branch};rport",
             "Max-Forwards: 70", "From: <sip:alice@127.0.0.1>;tag=if1",
             "To: <sip:2000@127.0.0.1>", f"Call-ID: {call_id}", f"CSeq: {cseq} INVITE",
             "Contact: <sip:alice@192.0.2.20:5062>"]
    if auth:
        lines.append(auth)
    lines += ["Content-Length: 0", "", ""]
    response = rig.send("\n".join(lines))
    assert response is not None
    return response


def test_invite_hook_407_then_accepted_with_proxy_authorization(tmp_path: Path) -> None:
    rig = invite_rig(tmp_path, SS_SIP_AUTHENTICATION_CODE=407)
    challenge = send_invite(rig, call_id="inv-1")
    assert challenge.status == 407
    creds = answer(parse_challenge(challenge.headers.get("Proxy-Authenticate")), "INVITE",
                   "sip:2000@127.0.0.1", "alice", "s3cret")
    final = send_invite(rig, call_id="inv-1", cseq=2, auth=f"Proxy-Authorization: {creds}")
    assert (final.status, final.reason) == (486, "Busy (alice)")


def test_invite_and_register_failures_count_together_per_terminal(rig: Rig,
                                                                   tmp_path: Path) -> None:
    rig = invite_rig(tmp_path / "inv")
    for i in range(3):
        assert rig.login(password="bad", call_id=f"r{i}").status == 401  # type: ignore
    statuses = []
    for i in range(3):
        challenge = send_invite(rig, call_id=f"i{i}")
        creds = answer(parse_challenge(challenge.headers.get("WWW-Authenticate")), "INVITE",
                       "sip:2000@127.0.0.1", "alice", "bad")
        statuses.append(send_invite(rig, call_id=f"i{i}", cseq=2,
                                    auth=f"Authorization: {creds}").status)
    assert statuses == [401, 401, 403]  # the 6th failed password suspends the terminal
    assert send_invite(rig, call_id="after").status == 403


def test_expired_nonce_gets_stale_true_and_costs_nothing(rig: Rig) -> None:
    first = rig.register(call_id="s")
    challenge = parse_challenge(first.headers.get("WWW-Authenticate"))  # type: ignore
    creds = answer(challenge, "REGISTER", "sip:127.0.0.1", "alice", "s3cret")
    assert rig.register(call_id="s", cseq=2, auth=("Authorization", str(creds))).status == 200  # type: ignore
    rig.clock.advance(301)  # past the digest nonce lifetime (300 s)
    again = answer(challenge, "REGISTER", "sip:127.0.0.1", "alice", "s3cret", nc=2)
    stale = rig.register(call_id="s", cseq=3, auth=("Authorization", str(again)))
    assert stale is not None and stale.status == 401
    assert parse_challenge(stale.headers.get("WWW-Authenticate")).stale
    assert rig.service.authenticator.policy.failures("alice", PHONE[0]) == 0
    # A wrong password on the stale nonce is a wrong password, not "stale".
    wrong = answer(challenge, "REGISTER", "sip:127.0.0.1", "alice", "nope", nc=3)
    response = rig.register(call_id="s", cseq=4, auth=("Authorization", str(wrong)))
    assert response is not None and not parse_challenge(
        response.headers.get("WWW-Authenticate")).stale
    assert rig.service.authenticator.policy.failures("alice", PHONE[0]) == 1


def test_reply_unauthorized_off_still_serves_valid_credentials_on_an_honoured_nonce(
        rig: Rig) -> None:
    first = rig.register(call_id="pre")  # challenged while SS_REPLY_UNAUTHORIZED is On
    challenge = parse_challenge(first.headers.get("WWW-Authenticate"))  # type: ignore
    rig.core.params = rig.core.params.replace(SS_REPLY_UNAUTHORIZED=False)
    creds = answer(challenge, "REGISTER", "sip:127.0.0.1", "alice", "s3cret")
    ok = rig.register(call_id="new", auth=("Authorization", str(creds)))
    assert ok is not None and ok.status == 200
    # The same nonce once it is no longer honoured: stale -> silence, not a challenge.
    rig.clock.advance(301)
    late = answer(challenge, "REGISTER", "sip:127.0.0.1", "alice", "s3cret", nc=2)
    assert rig.register(call_id="late", auth=("Authorization", str(late))) is None


def test_a_register_without_credentials_is_challenged_statelessly(rig: Rig) -> None:
    """RFC 3261 §26.3.2.4: the challenge holds no transaction, so a retransmission of the
    REGISTER is a new request and gets a challenge of its own (another nonce); either can be
    answered, and neither counts against the terminal (docs/behaviour.md §2.3)."""
    first = rig.register(call_id="reg-retransmitted", branch="z9hG4bK-fixed")
    again = rig.register(call_id="reg-retransmitted", branch="z9hG4bK-fixed")  # Timer E
    assert first is not None and again is not None and first.status == again.status == 401
    nonces = [parse_challenge(r.headers.get("WWW-Authenticate")).nonce for r in (first, again)]
    assert nonces[0] != nonces[1]
    assert len(rig.core.transactions.servers) == 0
    assert rig.core.stats.retransmissions_absorbed == 0  # nothing left to absorb it

    credentials = answer(parse_challenge(first.headers.get("WWW-Authenticate")), "REGISTER",
                         "sip:127.0.0.1", "alice", "s3cret")

    def authenticated() -> Response | None:
        return rig.register(call_id="reg-retransmitted", cseq=2, branch="z9hG4bK-auth",
                            auth=("Authorization", str(credentials)))

    ok = authenticated()
    assert ok is not None and ok.status == 200
    policy = rig.service.authenticator.policy
    assert policy.failures("alice", PHONE[0]) == 0

    # A REGISTER with credentials keeps its transaction: its retransmission is absorbed and
    # gets the same 200 again. Handled a second time, its nonce count would be a replay.
    sent = len(rig.sent)
    resent = authenticated()
    assert resent is not None and resent.status == 200
    assert rig.sent[sent][0] == rig.sent[sent - 1][0]  # the very bytes of the first 200
    assert rig.core.stats.retransmissions_absorbed == 1
    assert len(rig.core.transactions.servers) == 1


def test_reply_unauthorized_changed_at_run_time_reaches_the_next_request(rig: Rig) -> None:
    """The core reads SS_REPLY_UNAUTHORIZED when its parameters change, not per response
    (docs/benchmarks.md, thirty-seventh round): each change reaches the next request, both
    ways, for an unknown source's OPTIONS (answered, then silence, then answered again)."""
    options = ("OPTIONS sip:127.0.0.1 SIP/2.0\n"
               "Via: SIP/2.0/UDP 192.0.2.20:5062;branch=z9hG4bK-opt{n}\n"
               "Max-Forwards: 70\nFrom: <sip:scan@192.0.2.20>;tag=o{n}\n"
               "To: <sip:127.0.0.1>\nCall-ID: opt{n}\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n")
    first = rig.send(options.format(n=1))
    assert first is not None and first.status == 200
    rig.core.params = rig.core.params.replace(SS_REPLY_UNAUTHORIZED=False)
    assert rig.send(options.format(n=2)) is None
    assert rig.core.stats.stealth_dropped == 1
    rig.core.params = rig.core.params.replace(SS_REPLY_UNAUTHORIZED=True)
    third = rig.send(options.format(n=3))
    assert third is not None and third.status == 200
    assert rig.core.stats.stealth_dropped == 1
