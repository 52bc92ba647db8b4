"""Hostile REGISTERs: never a crash (500), never a binding without the right password."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.switch.test_register_handler import Rig, make_rig
from vosapp.sip.digest import answer, parse_challenge

_rig: Rig | None = None


def rig() -> Rig:
    """One switch for all examples; counters off so every example reaches the digest check."""
    global _rig
    if _rig is None:
        _rig = make_rig(Path(tempfile.mkdtemp(prefix="vosapp-fuzz-")),
                        SS_AUTHENTICATION_MAX_RETRY=0, SS_ENDPOINT_REGISTER_RETRY=0,
                        SS_SIP_AUTHENTICATION_RETRY=999, SS_SIP_AUTHENTICATION_TIMEOUT=3600)
    return _rig


header_text = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126,
                                             exclude_characters="\r\n"), max_size=200)
digest_like = st.builds(
    lambda pairs: "Digest " + ", ".join(f"{k}={v}" for k, v in pairs),
    st.lists(st.tuples(st.sampled_from(["username", "realm", "nonce", "uri", "response",
                                        "algorithm", "qop", "nc", "cnonce", "opaque", "x"]),
                       st.one_of(header_text.map(lambda t: '"' + t.replace('"', "") + '"'),
                                 st.from_regex(r"[A-Za-z0-9-]{0,20}", fullmatch=True))),
             max_size=12))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(contact=st.one_of(st.none(), header_text, st.just("*")),
       expires=st.one_of(st.none(), header_text, st.integers(-5, 10**12).map(str)),
       authorization=st.one_of(st.none(), header_text, digest_like))
def test_hostile_register_gets_a_4xx_or_silence(contact: str | None, expires: str | None,
                                                authorization: str | None) -> None:
    r = rig()
    extra = f"Expires: {expires}" if expires is not None else ""
    response = r.register(contact=contact, expires=None, extra=extra,
                          auth=("Authorization", authorization) if authorization else None,
                          call_id=f"fuzz-{len(r.sent)}")
    if response is not None:
        assert response.status != 500, response.reason
        assert response.status != 200  # no valid credentials were ever sent
    assert r.service.registrar.bindings("alice") == []


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(password=st.text(max_size=20).filter(lambda p: p != "s3cret"),
       uri=st.sampled_from(["sip:127.0.0.1", "sip:evil", ""]),
       algorithm=st.sampled_from(["MD5", "SHA-256", "MD5-sess"]),
       nc=st.integers(1, 2**32 - 1))
def test_real_nonce_wrong_answer_never_binds(password: str, uri: str, algorithm: str,
                                             nc: int) -> None:
    r = rig()
    call_id = f"real-{len(r.sent)}"
    challenged = r.register(call_id=call_id)
    assert challenged is not None and challenged.status == 401
    challenge = parse_challenge(challenged.headers.get("WWW-Authenticate"))
    creds = str(answer(challenge, "REGISTER", uri, "alice", password, nc=nc))
    creds = creds.replace("algorithm=MD5", f"algorithm={algorithm}")
    response = r.register(call_id=call_id, cseq=2, auth=("Authorization", creds))
    assert response is not None and response.status in (400, 401, 403)
    assert r.service.registrar.bindings("alice") == []
