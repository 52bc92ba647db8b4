"""Digest authentication (RFC 7616 / RFC 2617) — vectors, server outcomes, client, fuzz."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vosapp.clock import ManualClock
from vosapp.sip.digest import (
    _FAST_PARAM,
    _HASH_CONSTRUCTORS,
    _PARSE_IN_C,
    Challenge,
    Credentials,
    DigestClient,
    DigestError,
    DigestServer,
    VerifyOutcome,
    _hash_constructor,
    _parse_params_fast,
    _scan_params,
    answer,
    compute_ha1,
    compute_response,
    parse_challenge,
    parse_credentials,
)

SECRET = b"0123456789abcdef0123456789abcdef"

# RFC 7616 §3.9.1 (password "Circle of Life", lower-case "of" per verified erratum 4495)
RFC7616_CHALLENGE = (
    'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=SHA-256, '
    'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
    'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
)
RFC7616_MD5_CREDENTIALS = (
    'Digest username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html", '
    'algorithm=MD5, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", nc=00000001, '
    'cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", qop=auth, '
    'response="8ca523f5e9506fed4657c9700eebdbec", '
    'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
)
RFC7616_SHA256_RESPONSE = "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
RFC7616_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"

# RFC 2617 §3.5 (password "Circle Of Life")
RFC2617_CREDENTIALS = (
    'Digest username="Mufasa", realm="testrealm@host.com", '
    'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", qop=auth, '
    'nc=00000001, cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1", '
    'opaque="5ccc069c403ebaf9f0171e9517f40e41"'
)


# ---------------------------------------------------------------------------------- vectors


def test_rfc7616_challenge_parses() -> None:
    challenge = parse_challenge(RFC7616_CHALLENGE)
    assert challenge.realm == "http-auth@example.org"
    assert challenge.qop == ("auth", "auth-int")
    assert challenge.algorithm == "SHA-256"
    assert challenge.nonce == "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
    assert challenge.opaque == "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
    assert not challenge.stale


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [("MD5", "8ca523f5e9506fed4657c9700eebdbec"), ("SHA-256", RFC7616_SHA256_RESPONSE)],
)
def test_rfc7616_vectors_via_client(algorithm: str, expected: str) -> None:
    challenge = Challenge(
        realm="http-auth@example.org",
        nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
        opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS",
        algorithm=algorithm,
        qop=("auth", "auth-int"),
    )
    credentials = answer(
        challenge, "GET", "/dir/index.html", "Mufasa", "Circle of Life",
        nc=1, cnonce=RFC7616_CNONCE,
    )
    assert credentials.response == expected
    assert credentials.qop == "auth"
    assert "nc=00000001" in str(credentials)
    assert parse_credentials(str(credentials)) == credentials


def test_rfc7616_md5_credentials_parse_and_recompute() -> None:
    credentials = parse_credentials(RFC7616_MD5_CREDENTIALS)
    assert credentials.username == "Mufasa"
    assert credentials.nc == 1
    assert credentials.qop == "auth"
    ha1 = compute_ha1("MD5", "Mufasa", credentials.realm, "Circle of Life")
    response = compute_response(
        algorithm="MD5", ha1=ha1, nonce=credentials.nonce, method="GET", uri=credentials.uri,
        qop="auth", nc=credentials.nc, cnonce=credentials.cnonce,
    )
    assert response == credentials.response


def test_rfc2617_example() -> None:
    credentials = parse_credentials(RFC2617_CREDENTIALS)
    assert credentials.algorithm == "MD5"  # absent means MD5
    ha1 = compute_ha1("MD5", "Mufasa", "testrealm@host.com", "Circle Of Life")
    assert compute_response(
        algorithm="MD5", ha1=ha1, nonce=credentials.nonce, method="GET",
        uri="/dir/index.html", qop="auth", nc=1, cnonce="0a4f113b",
    ) == "6629fae49393a05397450978507c4ef1"


def test_rfc2069_form_without_qop() -> None:
    challenge = Challenge(realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
                          qop=())
    credentials = answer(challenge, "GET", "/dir/index.html", "Mufasa", "CircleOfLife")
    assert credentials.response == "1949323746fe6a43ef61f9606e7febea"
    assert credentials.qop is None and credentials.nc is None and credentials.cnonce is None
    assert "qop" not in str(credentials)


# ---------------------------------------------------------------------------------- parsing


def test_parse_is_lenient_about_case_spacing_and_quoting() -> None:
    value = (
        'digest  REALM = "vos" ,, nonce=abc , algorithm="md5-sess", qop=auth,stale=TRUE,'
        ' foo="b\\"ar"'
    )
    challenge = parse_challenge(value)
    assert challenge.realm == "vos"
    assert challenge.nonce == "abc"
    assert challenge.algorithm == "MD5-sess"
    assert challenge.qop == ("auth",)
    assert challenge.stale
    assert challenge.extra == (("foo", 'b"ar'),)
    assert parse_challenge(str(challenge)) == challenge


def test_challenge_format_quotes_and_escapes() -> None:
    challenge = Challenge(realm='a "b" \\c', nonce="n", opaque="o", stale=True)
    text = str(challenge)
    assert text.startswith("Digest ")
    assert 'realm="a \\"b\\" \\\\c"' in text
    assert "stale=true" in text and "algorithm=MD5" in text and 'qop="auth"' in text
    assert parse_challenge(text) == challenge


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("", "scheme"),
        ('Basic realm="x"', "scheme"),
        ('Digest realm="x', "syntax"),
        ('Digest realm="x\\', "syntax"),
        ('Digest realm="x", nonce', "syntax"),
        ('Digest realm="x", nonce=', "syntax"),
        ('Digest realm="x" nonce="y"', "syntax"),
        ('Digest realm="x", realm="y", nonce="n"', "duplicate"),
        ('Digest nonce="n"', "missing"),
        ('Digest realm="x"', "missing"),
        ('Digest realm="x", nonce="n", algorithm=SHA-1', "unknown-algorithm"),
        ('Digest realm="x", nonce="n", qop=""', "unknown-qop"),
        ('Digest realm="x\r\n", nonce="n"', "syntax"),
        ('Digestrealm="x", nonce="n"', "scheme"),
    ],
)
def test_malformed_challenges(value: str, code: str) -> None:
    with pytest.raises(DigestError) as info:
        parse_challenge(value)
    assert info.value.code == code
    assert info.value.reason


GOOD_CREDENTIALS = (
    'Digest username="alice", realm="vos", nonce="n", uri="sip:vos", response="abc", '
    'qop=auth, nc=00000001, cnonce="c"'
)


@pytest.mark.parametrize(("raw", "nc"), [
    ("00000001", 1), ("000000ff", 255), ("000000FF", 255), ("00000100", 256),
    ("ffffffff", 0xFFFFFFFF), ("1", 1), ("00000000", 0)])
def test_nc_reads_as_hex_whether_looked_up_or_parsed(raw: str, nc: int) -> None:
    """The usual counts are looked up by their text, the others parsed: the same values."""
    assert parse_credentials(GOOD_CREDENTIALS.replace("nc=00000001", f"nc={raw}")).nc == nc


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (GOOD_CREDENTIALS.replace('username="alice", ', ""), "missing"),
        (GOOD_CREDENTIALS.replace('response="abc", ', ""), "missing"),
        (GOOD_CREDENTIALS.replace('uri="sip:vos", ', ""), "missing"),
        (GOOD_CREDENTIALS.replace(', cnonce="c"', ""), "missing"),
        (GOOD_CREDENTIALS.replace("nc=00000001, ", ""), "missing"),
        (GOOD_CREDENTIALS.replace("nc=00000001", "nc=0000000g"), "bad-nc"),
        (GOOD_CREDENTIALS.replace("nc=00000001", "nc=000000001"), "bad-nc"),
        (GOOD_CREDENTIALS.replace("qop=auth", "qop=auth-conf"), "unknown-qop"),
        (GOOD_CREDENTIALS + ", algorithm=SHA-512", "unknown-algorithm"),
        (GOOD_CREDENTIALS + ', uri="sip:x"', "duplicate"),
        (GOOD_CREDENTIALS[:-1], "syntax"),
    ],
)
def test_malformed_credentials(value: str, code: str) -> None:
    with pytest.raises(DigestError) as info:
        parse_credentials(value)
    assert info.value.code == code


def test_credentials_round_trip() -> None:
    credentials = parse_credentials(GOOD_CREDENTIALS + ', opaque="o", x-vendor=1')
    assert credentials.extra == (("x-vendor", "1"),)
    assert parse_credentials(str(credentials)) == credentials


def test_parsed_credentials_are_what_the_constructor_builds() -> None:
    # every field, nothing else; compiled (vosapp/compiled.py) or run as source
    parsed = parse_credentials(GOOD_CREDENTIALS + ', opaque="o", x-vendor=1')
    built = Credentials(**{field.name: getattr(parsed, field.name)
                           for field in dataclasses.fields(Credentials)})
    assert type(parsed) is Credentials
    assert dataclasses.asdict(parsed) == dataclasses.asdict(built)
    assert parsed == built and hash(parsed) == hash(built)
    # read-only: tests/foundation/test_records.py (to mypy, and at run time when compiled)


def test_format_refuses_header_injection() -> None:
    with pytest.raises(DigestError):
        str(Credentials("a\r\nVia: x", "r", "n", "u", "resp"))


# ---------------------------------------------------------------------------------- server


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def server(clock: ManualClock) -> DigestServer:
    return DigestServer("vos.lab", SECRET, clock, nonce_lifetime=60.0)


def _login(server: DigestServer, password: str = "s3cret", *, method: str = "REGISTER",
           algorithm: str = "MD5", nc: int = 1) -> Credentials:
    challenge = parse_challenge(str(server.challenge(algorithm=algorithm)))
    return answer(challenge, method, "sip:vos.lab", "alice", password, nc=nc)


@pytest.mark.parametrize("algorithm", ["MD5", "MD5-sess", "SHA-256", "SHA-256-sess"])
def test_round_trip_each_algorithm(server: DigestServer, algorithm: str) -> None:
    credentials = _login(server, algorithm=algorithm)
    result = server.verify(str(credentials), "REGISTER", "s3cret")
    assert result.ok and result.outcome is VerifyOutcome.OK
    assert result.username == "alice" and not result.stale


@pytest.mark.parametrize("method", ["REGISTER", "INVITE"])
def test_wrong_password(server: DigestServer, method: str) -> None:
    credentials = _login(server, "guess", method=method)
    result = server.verify(credentials, method, "s3cret")
    assert result.outcome is VerifyOutcome.WRONG_PASSWORD
    assert not result.ok


def test_method_is_part_of_the_digest(server: DigestServer) -> None:
    credentials = _login(server, method="REGISTER")
    assert server.verify(credentials, "INVITE", "s3cret").outcome is VerifyOutcome.WRONG_PASSWORD


def test_lookup_and_ha1(server: DigestServer) -> None:
    users = {"alice": "s3cret"}
    assert server.verify(_login(server), "REGISTER", users.get).ok
    assert server.verify(_login(server), "REGISTER", lambda _u: None).outcome is (
        VerifyOutcome.UNKNOWN_USER
    )
    ha1 = compute_ha1("MD5", "alice", "vos.lab", "s3cret")
    assert server.verify(_login(server), "REGISTER", ha1=ha1).ok


def test_stale_nonce_after_lifetime(server: DigestServer, clock: ManualClock) -> None:
    credentials = _login(server)
    clock.advance(61.0)
    result = server.verify(credentials, "REGISTER", "s3cret")
    assert result.outcome is VerifyOutcome.STALE_NONCE and result.stale
    assert server.challenge(stale=True).stale
    assert "stale=true" in str(server.challenge(stale=True))


def test_expired_nonce_with_wrong_password_is_a_wrong_password(
    server: DigestServer, clock: ManualClock
) -> None:
    # RFC 7616 §3.3: stale=true only when the digest itself is valid
    credentials = _login(server, "guess")
    clock.advance(61.0)
    assert server.verify(credentials, "REGISTER", "s3cret").outcome is (
        VerifyOutcome.WRONG_PASSWORD
    )


def test_nonce_still_valid_just_before_lifetime(server: DigestServer, clock: ManualClock) -> None:
    credentials = _login(server)
    clock.advance(59.0)
    assert server.verify(credentials, "REGISTER", "s3cret").ok


def test_nonce_count_replay(server: DigestServer) -> None:
    client = DigestClient("alice", "s3cret")
    first = client.authorize(server.challenge(), "REGISTER", "sip:vos.lab")
    assert server.verify(first, "REGISTER", "s3cret").ok
    assert server.verify(first, "REGISTER", "s3cret").outcome is VerifyOutcome.REPLAYED_NC
    second = client.reauthorize("REGISTER", "sip:vos.lab")
    assert second is not None and second.nc == 2 and second.nonce == first.nonce
    assert server.verify(second, "REGISTER", "s3cret").ok
    # an older nc arriving late is a replay too (nc must strictly increase per nonce)
    assert server.verify(first, "REGISTER", "s3cret").outcome is VerifyOutcome.REPLAYED_NC
    # nc may skip values
    skipped = answer(server_challenge_for(first), "REGISTER", "sip:vos.lab", "alice", "s3cret",
                     nc=10)
    assert server.verify(skipped, "REGISTER", "s3cret").ok


def server_challenge_for(credentials: Credentials) -> Challenge:
    return Challenge(realm=credentials.realm, nonce=credentials.nonce, opaque=credentials.opaque)


def test_wrong_password_does_not_consume_nc(server: DigestServer) -> None:
    challenge = server.challenge()
    bad = answer(challenge, "REGISTER", "sip:vos.lab", "alice", "guess", nc=1)
    good = answer(challenge, "REGISTER", "sip:vos.lab", "alice", "s3cret", nc=1)
    assert server.verify(bad, "REGISTER", "s3cret").outcome is VerifyOutcome.WRONG_PASSWORD
    assert server.verify(good, "REGISTER", "s3cret").ok


def test_forged_nonce(server: DigestServer, clock: ManualClock) -> None:
    forged = Challenge(realm="vos.lab", nonce="AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                       opaque=server.opaque)
    credentials = answer(forged, "REGISTER", "sip:vos.lab", "alice", "s3cret")
    assert server.verify(credentials, "REGISTER", "s3cret").outcome is VerifyOutcome.FORGED_NONCE
    # a nonce signed with another secret is forged too
    other = DigestServer("vos.lab", b"another secret, 32 bytes long!!!", clock)
    credentials = answer(other.challenge(), "REGISTER", "sip:vos.lab", "alice", "s3cret")
    assert server.verify(credentials, "REGISTER", "s3cret").outcome is VerifyOutcome.FORGED_NONCE
    # a tampered nonce (one character changed) is forged
    genuine = server.challenge()
    flipped = genuine.nonce[:-2] + ("A" if genuine.nonce[-2] != "A" else "B") + genuine.nonce[-1]
    credentials = answer(
        Challenge(realm="vos.lab", nonce=flipped), "REGISTER", "sip:vos.lab", "alice", "s3cret"
    )
    assert server.verify(credentials, "REGISTER", "s3cret").outcome is VerifyOutcome.FORGED_NONCE


def test_the_nonce_signature_covers_the_realm(clock: ManualClock) -> None:
    # same secret, another realm: its nonces, answered for this realm, are not this realm's
    elsewhere = DigestServer("elsewhere.lab", SECRET, clock)
    here = DigestServer("vos.lab", SECRET, clock)
    theirs = elsewhere.challenge()
    credentials = answer(Challenge(realm="vos.lab", nonce=theirs.nonce, opaque=here.opaque),
                         "REGISTER", "sip:vos.lab", "alice", "s3cret")
    assert here.verify(credentials, "REGISTER", "s3cret").outcome is VerifyOutcome.FORGED_NONCE


@pytest.mark.parametrize("secret", [bytes(range(16)), bytes(range(32)), bytes(range(200))])
def test_secrets_of_any_length_sign_nonces(secret: bytes, clock: ManualClock) -> None:
    # the nonce MAC's key is derived from the secret, which may be longer than BLAKE2s's 32
    # key bytes; a restarted server with the same secret finds its old nonces genuine (stale)
    server = DigestServer("vos.lab", secret, clock)
    credentials = answer(server.challenge(), "REGISTER", "sip:vos.lab", "alice", "s3cret")
    assert server.verify(credentials, "REGISTER", "s3cret").ok
    restarted = DigestServer("vos.lab", secret, clock)
    credentials = answer(server.challenge(), "REGISTER", "sip:vos.lab", "alice", "s3cret")
    assert restarted.verify(credentials, "REGISTER", "s3cret").outcome is \
        VerifyOutcome.STALE_NONCE
    other = DigestServer("vos.lab", secret[::-1] + b"x", clock)
    assert other.verify(credentials, "REGISTER", "s3cret").outcome is VerifyOutcome.FORGED_NONCE


def test_remembered_ha1_follows_the_password(server: DigestServer) -> None:
    # H(username:realm:password) is remembered per server by (algorithm, user, password): a
    # changed password is checked against the new one at once, never a remembered H()
    users = {"alice": "s3cret"}
    for _ in range(2):  # the second time from the memo
        assert server.verify(_login(server), "REGISTER", users.get).ok
    users["alice"] = "n3w"
    assert server.verify(_login(server), "REGISTER", users.get).outcome is (
        VerifyOutcome.WRONG_PASSWORD)
    assert server.verify(_login(server, "n3w"), "REGISTER", users.get).ok
    # a user that goes away is unknown at once; one that appears is checked at once
    users.clear()
    assert server.verify(_login(server, "n3w"), "REGISTER", users.get).outcome is (
        VerifyOutcome.UNKNOWN_USER)
    assert server.verify(_login(server, "n3w"), "REGISTER", users.get).outcome is (
        VerifyOutcome.UNKNOWN_USER)
    users["alice"] = "s3cret"
    assert server.verify(_login(server), "REGISTER", users.get).ok


def test_remembered_ha1_is_bounded(server: DigestServer) -> None:
    # one entry per (algorithm, user, password) seen, known or not, emptied when full: a flood
    # of invented user names cannot grow it
    from vosapp.sip import digest

    challenge = parse_challenge(str(server.challenge()))
    for n in range(digest._HA1_MEMO_SIZE + 10):
        credentials = answer(challenge, "REGISTER", "sip:vos.lab", f"u{n}", "x", nc=1)
        assert server.verify(credentials, "REGISTER", lambda _u: None).outcome is (
            VerifyOutcome.UNKNOWN_USER)
        assert len(server._ha1_memo) <= digest._HA1_MEMO_SIZE


def test_remembered_ha2_gives_the_computed_response() -> None:
    # H(method:uri) is remembered (bounded, emptied when full): with more distinct values
    # than it holds, each response is still the one computed from scratch (RFC 7616 §3.4.1)
    import hashlib

    from vosapp.sip import digest

    def expected(algorithm: str, method: str, uri: str, qop: str | None) -> str:
        def h(text: str) -> str:
            name = "md5" if algorithm.startswith("MD5") else "sha256"
            return hashlib.new(name, text.encode()).hexdigest()
        ha1 = h("alice:vos.lab:s3cret")
        if algorithm.endswith("-sess"):
            ha1 = h(f"{ha1}:n0nce:c0ffee")
        ha2 = h(f"{method}:{uri}")
        if qop is None:
            return h(f"{ha1}:n0nce:{ha2}")
        return h(f"{ha1}:n0nce:00000007:c0ffee:{qop}:{ha2}")

    for round_ in range(2):  # the second round finds some of them remembered
        for n in range(digest._HA2_MEMO_SIZE + 300):
            # each URI with both methods and all four algorithms
            algorithm = ("MD5", "SHA-256", "MD5-sess", "SHA-256-sess")[n // 2 % 4]
            method = ("REGISTER", "INVITE")[n % 2]
            uri = f"sip:{n // 8}@vos.lab"
            qop = None if n % 3 == 0 else "auth"
            ha1 = compute_ha1(algorithm, "alice", "vos.lab", "s3cret")
            got = compute_response(algorithm=algorithm, ha1=ha1, nonce="n0nce", method=method,
                                   uri=uri, qop=qop, nc=7, cnonce="c0ffee")
            assert got == expected(algorithm, method, uri, qop), (round_, n)
            assert len(digest._HA2_MEMO) <= digest._HA2_MEMO_SIZE


def test_wrong_opaque_is_forged(server: DigestServer) -> None:
    challenge = server.challenge()
    bad = Challenge(realm=challenge.realm, nonce=challenge.nonce, opaque="nope")
    credentials = answer(bad, "REGISTER", "sip:vos.lab", "alice", "s3cret")
    assert server.verify(credentials, "REGISTER", "s3cret").outcome is VerifyOutcome.FORGED_NONCE


def test_nonce_from_a_previous_run_is_stale(clock: ManualClock) -> None:
    before = DigestServer("vos.lab", SECRET, clock)
    after = DigestServer("vos.lab", SECRET, clock)  # same secret, restarted
    credentials = answer(before.challenge(), "REGISTER", "sip:vos.lab", "alice", "s3cret")
    assert after.verify(credentials, "REGISTER", "s3cret").outcome is VerifyOutcome.STALE_NONCE


def test_wrong_realm(server: DigestServer) -> None:
    challenge = server.challenge()
    other = Challenge(realm="elsewhere", nonce=challenge.nonce, opaque=challenge.opaque)
    credentials = answer(other, "REGISTER", "sip:vos.lab", "alice", "s3cret")
    assert server.verify(credentials, "REGISTER", "s3cret").outcome is VerifyOutcome.WRONG_REALM


def test_algorithm_must_match_the_challenge(server: DigestServer) -> None:
    challenge = server.challenge(algorithm="MD5")
    switched = Challenge(realm="vos.lab", nonce=challenge.nonce, opaque=challenge.opaque,
                         algorithm="SHA-256")
    credentials = answer(switched, "REGISTER", "sip:vos.lab", "alice", "s3cret")
    assert server.verify(credentials, "REGISTER", "s3cret").outcome is (
        VerifyOutcome.UNKNOWN_ALGORITHM
    )


def test_disabled_and_unknown_algorithms(clock: ManualClock) -> None:
    md5_only = DigestServer("vos.lab", SECRET, clock, algorithms=("MD5",))
    with pytest.raises(ValueError):
        md5_only.challenge(algorithm="SHA-256")
    other = DigestServer("vos.lab", SECRET, clock)
    credentials = answer(other.challenge(algorithm="SHA-256"), "REGISTER", "sip:vos.lab",
                         "alice", "s3cret")
    assert md5_only.verify(credentials, "REGISTER", "s3cret").outcome is (
        VerifyOutcome.UNKNOWN_ALGORITHM
    )
    raw = str(credentials).replace("algorithm=SHA-256", "algorithm=SHA-1")
    assert md5_only.verify(raw, "REGISTER", "s3cret").outcome is VerifyOutcome.UNKNOWN_ALGORITHM


def test_malformed_header_is_an_outcome(server: DigestServer) -> None:
    result = server.verify('Digest username="alice", realm="vos.lab"', "REGISTER", "s3cret")
    assert result.outcome is VerifyOutcome.MALFORMED
    assert "missing" in result.detail


def test_qop_missing_is_refused_unless_allowed(clock: ManualClock) -> None:
    strict = DigestServer("vos.lab", SECRET, clock)
    challenge = strict.challenge()
    legacy = Challenge(realm="vos.lab", nonce=challenge.nonce, opaque=challenge.opaque, qop=())
    credentials = answer(legacy, "REGISTER", "sip:vos.lab", "alice", "s3cret")
    assert strict.verify(credentials, "REGISTER", "s3cret").outcome is VerifyOutcome.MALFORMED
    lenient = DigestServer("vos.lab", SECRET, clock, require_qop=False)
    credentials = answer(
        Challenge(realm="vos.lab", nonce=lenient.challenge().nonce, qop=()),
        "REGISTER", "sip:vos.lab", "alice", "s3cret",
    )
    assert lenient.verify(credentials, "REGISTER", "s3cret").ok


def test_auth_int_covers_the_body(clock: ManualClock) -> None:
    server = DigestServer("vos.lab", SECRET, clock, qop=("auth-int",))
    body = b"v=0\r\n"
    credentials = answer(server.challenge(), "INVITE", "sip:bob@vos.lab", "alice", "s3cret",
                         body=body)
    assert credentials.qop == "auth-int"
    assert server.verify(credentials, "INVITE", "s3cret", body=b"v=1\r\n").outcome is (
        VerifyOutcome.WRONG_PASSWORD
    )
    assert server.verify(credentials, "INVITE", "s3cret", body=body).ok


def test_qop_not_offered(server: DigestServer) -> None:
    challenge = server.challenge()
    widened = Challenge(realm="vos.lab", nonce=challenge.nonce, opaque=challenge.opaque,
                        qop=("auth-int",))
    credentials = answer(widened, "REGISTER", "sip:vos.lab", "alice", "s3cret")
    assert server.verify(credentials, "REGISTER", "s3cret").outcome is VerifyOutcome.MALFORMED


def test_uri_mismatch(server: DigestServer) -> None:
    credentials = _login(server)
    assert server.verify(credentials, "REGISTER", "s3cret",
                         request_uri="sip:other").outcome is VerifyOutcome.URI_MISMATCH
    assert server.verify(credentials, "REGISTER", "s3cret", request_uri="sip:vos.lab").ok


def test_uppercase_hex_response_accepted(server: DigestServer) -> None:
    credentials = _login(server)
    shouting = dataclasses.replace(credentials, response=credentials.response.upper())
    assert server.verify(shouting, "REGISTER", "s3cret").ok


def test_replay_table_is_bounded(clock: ManualClock) -> None:
    server = DigestServer("vos.lab", SECRET, clock, max_nonces=3)
    first = server.challenge()
    for _ in range(5):
        server.challenge()
    assert server.tracked_nonces() == 3
    # a forgotten (evicted) but otherwise valid nonce is stale, never accepted twice
    credentials = answer(first, "REGISTER", "sip:vos.lab", "alice", "s3cret")
    assert server.verify(credentials, "REGISTER", "s3cret").outcome is VerifyOutcome.STALE_NONCE


def test_expired_nonces_are_pruned(server: DigestServer, clock: ManualClock) -> None:
    for _ in range(10):
        server.challenge()
    clock.advance(120.0)
    server.challenge()
    assert server.tracked_nonces() == 1


def test_expired_nonces_leave_once_a_second_and_are_refused_meanwhile(clock: ManualClock
                                                                      ) -> None:
    """The table is swept for expired nonces at most once a second (a look per nonce issued
    made two objects each time); one past its lifetime but not swept yet is still stale."""
    server = DigestServer("vos.lab", SECRET, clock, nonce_lifetime=0.5)
    first = server.challenge()
    clock.advance(0.75)
    server.challenge()  # within the second: no sweep, the first nonce is still held
    assert server.tracked_nonces() == 2
    credentials = answer(first, "REGISTER", "sip:vos.lab", "alice", "s3cret")
    result = server.verify(credentials, "REGISTER", "s3cret")
    assert result.outcome is VerifyOutcome.STALE_NONCE and result.detail == "nonce expired"
    assert server.tracked_nonces() == 1  # (and verify let go of it)
    clock.advance(0.5)
    server.challenge()  # past a second: swept, and the second nonce (0.5 s old) stays
    assert server.tracked_nonces() == 2
    clock.advance(0.25)
    server.challenge()  # within a second of that sweep: nothing leaves
    assert server.tracked_nonces() == 3
    clock.advance(1.0)
    server.challenge()
    assert server.tracked_nonces() == 1


def test_nonces_are_base64url_and_odd_ones_are_not_ours(server: DigestServer) -> None:
    """The nonce is RFC 4648 §5 base64url without padding (encoded through binascii, as
    base64.urlsafe_b64encode would); a nonce that is not base64url, or not ASCII, is forged."""
    import base64

    nonce = server.challenge().nonce
    raw = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
    assert base64.urlsafe_b64encode(raw).decode().rstrip("=") == nonce
    assert set(nonce) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    for odd in ("", "====", "%%%%", nonce + "\u00e9", "\u0663" * 44, nonce[:-1]):
        credentials = answer(Challenge(realm="vos.lab", nonce=odd, opaque=server.opaque),
                             "REGISTER", "sip:vos.lab", "alice", "s3cret")
        assert server.verify(credentials, "REGISTER", "s3cret").outcome is (
            VerifyOutcome.FORGED_NONCE), odd


def test_fresh_nonces_differ(server: DigestServer) -> None:
    nonces = {server.challenge().nonce for _ in range(50)}
    assert len(nonces) == 50


@pytest.mark.parametrize("nc", ['""', "123456789", "12g", '"\u0663"', '"0000000\uff11"', "-1"])
def test_nc_must_be_one_to_eight_hex_digits(nc: str) -> None:
    value = ('Digest username="a", realm="r", nonce="n", uri="sip:r", response="0", '
             f'qop=auth, cnonce="c", nc={nc}')
    with pytest.raises(DigestError) as raised:
        parse_credentials(value)
    assert raised.value.code == "bad-nc"


@pytest.mark.parametrize(("nc", "count"), [("1", 1), ("0000000a", 10), ("FFFFFFFF", 2**32 - 1)])
def test_nc_hex_digits(nc: str, count: int) -> None:
    value = ('Digest username="a", realm="r", nonce="n", uri="sip:r", response="0", '
             f'qop=auth, cnonce="c", nc={nc}')
    assert parse_credentials(value).nc == count


@pytest.mark.parametrize("qop", [("auth",), ("auth", "auth-int"), ()])
def test_challenge_value_is_the_challenge_as_text(clock: ManualClock,
                                                  qop: tuple[str, ...]) -> None:
    # The 401's fast path (challenge_value) writes what str(challenge()) writes, and its
    # nonces verify like any other.
    server = DigestServer('lab "realm"', SECRET, clock, qop=qop, require_qop=bool(qop))
    for algorithm in ("MD5", "SHA-256"):
        for stale in (False, True):
            value = server.challenge_value(stale=stale, algorithm=algorithm)
            nonce = parse_challenge(value).nonce
            assert value == str(Challenge(realm=server.realm, nonce=nonce,
                                          opaque=server.opaque, algorithm=algorithm,
                                          qop=server.qop, stale=stale))
            credentials = answer(value, "REGISTER", "sip:lab", "alice", "pw")
            assert server.verify(credentials, "REGISTER", "pw").ok


def test_server_rejects_bad_configuration(clock: ManualClock) -> None:
    with pytest.raises(ValueError):
        DigestServer("r", b"short", clock)
    with pytest.raises(ValueError):
        DigestServer("r", SECRET, clock, nonce_lifetime=0)
    with pytest.raises(ValueError):
        DigestServer("r", SECRET, clock, algorithms=("SHA-1",))


# ---------------------------------------------------------------------------------- client


def test_client_new_nonce_restarts_nc(server: DigestServer) -> None:
    client = DigestClient("alice", "s3cret")
    assert client.reauthorize("REGISTER", "sip:vos.lab") is None
    first = client.authorize(str(server.challenge()), "REGISTER", "sip:vos.lab")
    again = client.reauthorize("REGISTER", "sip:vos.lab", realm="vos.lab")
    assert again is not None and again.nc == 2
    assert client.nc_for(first.nonce) == 2
    fresh = client.authorize(server.challenge(stale=True), "REGISTER", "sip:vos.lab")
    assert fresh.nc == 1 and fresh.nonce != first.nonce
    assert client.reauthorize("REGISTER", "sip:vos.lab", realm="other") is None


def test_client_407_for_invite(server: DigestServer) -> None:
    # 401 and 407 differ only in header names; the computation is the same
    client = DigestClient("alice", "s3cret")
    proxy_authenticate = str(server.challenge())
    credentials = client.authorize(proxy_authenticate, "INVITE", "sip:1002@vos.lab")
    assert server.verify(str(credentials), "INVITE", "s3cret").ok


def test_client_userhash() -> None:
    challenge = Challenge(realm="r", nonce="n", userhash=True, algorithm="SHA-256")
    credentials = answer(challenge, "REGISTER", "sip:r", "alice", "pw")
    assert credentials.userhash and len(credentials.username) == 64
    assert "userhash=true" in str(credentials)


def test_client_rejects_unanswerable_challenge() -> None:
    with pytest.raises(DigestError):
        answer(Challenge(realm="r", nonce="n", qop=("auth-conf",)), "REGISTER", "sip:r", "a", "p")
    with pytest.raises(DigestError):
        answer(Challenge(realm="r", nonce="n"), "REGISTER", "sip:r", "a", "p", nc=0)


# ---------------------------------------------------------------------------------- fuzz

_ALPHABET = st.sampled_from(list('Digest realm="nonce,=\\ qop auth algorithm MD5 nc 0aG\t\r\n')) | (
    st.characters()
)


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=_ALPHABET, max_size=120))
def test_fuzz_parsers_raise_only_digest_error(text: str) -> None:
    for parser in (parse_challenge, parse_credentials):
        try:
            parsed = parser(text)
        except DigestError:
            continue
        assert parser(str(parsed)) == parsed  # anything accepted round-trips


def _fast_params_one_match_at_a_time(text: str) -> dict[str, str] | None:
    """The fast path's rule spelt out: a text without a backslash (escapes are the
    scanner's), successive _FAST_PARAM matches, back to back."""
    if len(text) <= 6 or text[6] not in " \t" or text[:6].lower() != "digest" or "\\" in text:
        return None
    params: dict[str, str] = {}
    pos = 6
    for match in _FAST_PARAM.finditer(text, 6):
        if match.start() != pos:
            return None
        pos = match.end()
        name, quoted, token = match.groups()
        if name.lower() in params:
            return None
        params[name.lower()] = quoted if quoted is not None else token
    return params if pos == len(text) else None


_PARAM_PIECES = st.sampled_from(['Digest ', 'digest\t', 'realm', 'nc', '=', '"', '""', '\\',
                                 ',', ', ', ' ', '\t', 'a', 'b1', '"x y"', '"\\"', 'é', '(',
                                 '=""', '=tok', '="q,v"', 'REALM', 'nc=1', ',,'])


@settings(max_examples=1000, deadline=None)
@given(st.lists(_PARAM_PIECES, max_size=16).map("".join))
def test_fuzz_fast_param_path_agrees_with_the_scanner(text: str) -> None:
    text = text.strip(" \t")
    fast = _parse_params_fast(text)
    assert fast == _fast_params_one_match_at_a_time(text)
    if fast is not None:
        assert fast == _scan_params(text, "x")
    _c_pass_agrees(text, fast)


def _c_pass_agrees(text: str, fast: dict[str, str] | None) -> None:
    """The C pass takes a subset of the regex pass's texts and gives the same dict."""
    assert _PARSE_IN_C is not None, "vosapp.sip._scan is not built: run `make setup`"
    in_c = _PARSE_IN_C(text)
    if in_c is not None:
        assert in_c == fast == _scan_params(text, "x"), text


@settings(max_examples=1000, deadline=None)
@given(st.text(alphabet=st.sampled_from(list('Digest ="\t,aZ9-!~(é\x00')), max_size=60))
def test_fuzz_c_param_pass_agrees_with_the_regex_pass(tail: str) -> None:
    for text in (f"Digest {tail}".strip(" \t"), f"Digest a={tail}".strip(" \t")):
        _c_pass_agrees(text, _parse_params_fast(text))


def test_fast_param_path_takes_the_usual_credentials() -> None:
    assert _parse_params_fast(RFC7616_MD5_CREDENTIALS) == _scan_params(RFC7616_MD5_CREDENTIALS,
                                                                       "x")
    assert _parse_params_fast('Digest a="", b=c,d="e f"') == {"a": "", "b": "c", "d": "e f"}


# SIPp's [authentication] of bench/registrar_sipp.xml, as the registrar bench sends it
SIPP_CREDENTIALS = (
    'Digest username="user0001",realm="vosapp",cnonce="6b8b4567",nc=00000001,qop=auth,'
    'uri="sip:127.0.0.1:5060",nonce="AZRh2wAAAADk1pYbc0e5CiuK6a8LEVNgOyQ-QjdsF1-WCXrE",'
    'response="4d7f8c4bde1e1bb4e13ce2d1a42b7b5f",algorithm=MD5,'
    'opaque="5e6f0d9f1f0c43a7a8f2d0b1d2c3e4f5"')


def test_the_c_param_pass_is_built_and_takes_the_usual_credentials() -> None:
    """vosapp.sip._scan is built (setup.py) and takes what phones send: if it stopped,
    every authenticated request would pay the regex pass again, 4-5 x the instructions
    (docs/benchmarks.md, thirty-sixth round)."""
    assert _PARSE_IN_C is not None, "vosapp.sip._scan is not built: run `make setup`"
    for text in (RFC7616_MD5_CREDENTIALS, SIPP_CREDENTIALS, 'Digest a="", b=c,d="e f"',
                 'digest\tqop="auth,auth-int" , REALM = r', str(answer(
                     Challenge(realm="r", nonce="n", qop=("auth",)), "REGISTER", "sip:r",
                     "alice", "pw"))):
        assert _PARSE_IN_C(text) == _scan_params(text, "x"), text


@pytest.mark.parametrize("text", [
    'Digest a=b,', 'Digest a=b,,c=d', 'Digest ,a=b', 'Digest a=b, A=c', 'Digest a b=c',
    'Digest a=', 'Digest =b', 'Digest a=b c', 'Digest a(=b', 'Digest a=\u00e9', 'Digest a="\u00e9"',
    'Digest a="x', 'Digest a="x"y', 'Digest a=x"', 'Digest a="\\"', 'Digest', 'Digest a',
    'Basic a=b', 'Digesta=b', 'Digest ' + "n" * 65 + '=v',
])
def test_the_c_param_pass_leaves_other_shapes_to_the_regex_pass(text: str) -> None:
    assert _PARSE_IN_C is not None
    assert _PARSE_IN_C(text) is None
    fast = _parse_params_fast(text)
    assert fast is None or fast == _scan_params(text, "x")


def test_the_c_param_pass_takes_only_str() -> None:
    assert _PARSE_IN_C is not None
    with pytest.raises(TypeError):
        _PARSE_IN_C(b"Digest a=b")  # type: ignore[arg-type]


def test_hashes_are_pythons_own_where_it_has_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """hashlib's MD5 and SHA-256 are OpenSSL 3 objects that fetch their algorithm anew each
    time, twice the instructions of Python's own (docs/benchmarks.md, thirty-sixth round);
    a Python built without its own has hashlib's, with the same digests."""
    import _md5
    import _sha256
    import hashlib
    import sys
    assert _HASH_CONSTRUCTORS["md5"] is _md5.md5
    assert _HASH_CONSTRUCTORS["sha256"] is _sha256.sha256
    for name, own in _HASH_CONSTRUCTORS.items():
        assert own(b"Mufasa:x").hexdigest() == hashlib.new(name, b"Mufasa:x").hexdigest()
    monkeypatch.setitem(sys.modules, "_md5", None)  # import _md5 now raises ImportError
    assert _hash_constructor("md5") is hashlib.md5


@settings(max_examples=200, deadline=None)
@given(
    st.text(min_size=0, max_size=20),
    st.text(min_size=0, max_size=20),
    st.sampled_from(["MD5", "MD5-sess", "SHA-256", "SHA-256-sess"]),
    st.integers(min_value=1, max_value=0xFFFFFFFF),
)
def test_fuzz_round_trip_any_user_and_password(
    username: str, password: str, algorithm: str, nc: int
) -> None:
    clock = ManualClock()
    server = DigestServer("vos.lab", SECRET, clock)
    forbidden = set("\r\n\x00")
    challenge = parse_challenge(str(server.challenge(algorithm=algorithm)))
    credentials = answer(challenge, "REGISTER", "sip:vos.lab", username, password, nc=nc)
    if forbidden & set(username):
        with pytest.raises(DigestError):
            str(credentials)
        return
    result = server.verify(str(credentials), "REGISTER", password)
    assert result.ok, result
    assert result.username == username


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_fuzz_verify_never_raises(text: str) -> None:
    server = DigestServer("vos.lab", SECRET, ManualClock())
    result = server.verify(text, "REGISTER", "pw")
    assert result.outcome is not VerifyOutcome.OK


def test_verify_needs_a_secret(server: DigestServer) -> None:
    with pytest.raises(TypeError):
        server.verify(_login(server), "REGISTER")


def test_choose_challenge_takes_the_first_supported() -> None:
    from vosapp.sip.digest import choose_challenge

    values = [
        'Basic realm="x"',
        'Digest realm="vos", nonce="a", algorithm=SHA-512-256',
        'Digest realm="vos", nonce="b", algorithm=SHA-256',
        'Digest realm="vos", nonce="c", algorithm=MD5',
    ]
    assert choose_challenge(values).nonce == "b"
    with pytest.raises(DigestError, match="no usable"):
        choose_challenge(values[:2])
    with pytest.raises(DigestError):
        choose_challenge([])


def test_non_ascii_response_and_opaque_do_not_crash(server: DigestServer) -> None:
    credentials = _login(server)
    for field_name in ("response", "opaque"):
        tampered = dataclasses.replace(credentials, **{field_name: "é\u2603"})
        result = server.verify(str(tampered), "REGISTER", "s3cret")
        assert result.outcome in (VerifyOutcome.WRONG_PASSWORD, VerifyOutcome.FORGED_NONCE)


def test_stale_flow_end_to_end(server: DigestServer, clock: ManualClock) -> None:
    client = DigestClient("alice", "s3cret")
    assert server.verify(client.authorize(server.challenge(), "REGISTER", "sip:vos.lab"),
                         "REGISTER", "s3cret").ok
    clock.advance(3600.0)  # the phone re-registers an hour later on the same nonce
    refresh = client.reauthorize("REGISTER", "sip:vos.lab")
    assert refresh is not None
    result = server.verify(refresh, "REGISTER", "s3cret")
    assert result.stale
    retry = client.authorize(str(server.challenge(stale=True)), "REGISTER", "sip:vos.lab")
    assert retry.nc == 1
    assert server.verify(retry, "REGISTER", "s3cret").ok


def test_server_rejects_bad_realm(clock: ManualClock) -> None:
    for realm in ("", "a\r\nb"):
        with pytest.raises(ValueError, match="realm"):
            DigestServer(realm, SECRET, clock)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["username", "realm", "nonce", "uri", "response", "cnonce", "opaque"]),
    st.text(max_size=40).filter(lambda v: not set(v) & set("\r\n\x00")),
    st.text(alphabet=st.characters(blacklist_characters="\r\n\x00"), min_size=1, max_size=20),
)
def test_fuzz_tampered_credentials_are_refused(field_name: str, value: str, realm: str) -> None:
    server = DigestServer(realm, SECRET, ManualClock())
    challenge = parse_challenge(str(server.challenge()))
    credentials = answer(challenge, "REGISTER", "sip:x", "alice", "pw")
    tampered = dataclasses.replace(credentials, **{field_name: value})
    result = server.verify(str(tampered), "REGISTER", {"alice": "pw"}.get)
    if tampered == credentials:
        assert result.ok
    else:
        assert not result.ok


def test_client_reauthorize_defaults_to_most_recent_realm() -> None:
    client = DigestClient("alice", "pw")
    client.authorize(Challenge(realm="a", nonce="n1"), "REGISTER", "sip:a")
    client.authorize(Challenge(realm="b", nonce="n2"), "REGISTER", "sip:b")
    client.authorize(Challenge(realm="a", nonce="n1"), "REGISTER", "sip:a")
    again = client.reauthorize("REGISTER", "sip:a")
    assert again is not None and again.realm == "a" and again.nc == 3


# ---------------------------------------------------------------------------------- interop
# Independent client implementations answering our challenges: the Python standard library's
# HTTP digest handler (HTTP, MD5 only) and sipvicious (the SIP scanner/cracker used in the lab).


def test_interop_urllib_digest_client(server: DigestServer) -> None:
    import urllib.request

    handler = urllib.request.HTTPDigestAuthHandler()
    handler.add_password("vos.lab", "http://vos.lab/", "alice", "s3cret")
    request = urllib.request.Request("http://vos.lab/dir/index.html")
    challenge_text = str(server.challenge())
    fields = urllib.request.parse_keqv_list(
        urllib.request.parse_http_list(challenge_text.removeprefix("Digest "))
    )
    header = "Digest " + handler.get_authorization(request, fields)
    result = server.verify(header, "GET", "s3cret", request_uri="/dir/index.html")
    assert result.ok, result


@pytest.mark.parametrize(("password", "outcome"), [("s3cret", VerifyOutcome.OK),
                                                   ("123456", VerifyOutcome.WRONG_PASSWORD)])
def test_interop_sipvicious_client(server: DigestServer, password: str,
                                   outcome: VerifyOutcome) -> None:
    svhelper = pytest.importorskip("sipvicious.libs.svhelper")
    challenge = server.challenge()
    auth = {"username": "alice", "realm": challenge.realm, "password": password,
            "nonce": challenge.nonce, "opaque": challenge.opaque, "algorithm": "md5",
            "qop": ",".join(challenge.qop)}
    header = svhelper.challengeResponse(auth, "REGISTER", "sip:vos.lab")
    assert server.verify(header, "REGISTER", "s3cret").outcome is outcome
