"""A digest username that is not UTF-8 (issue: `\\xc3\\x28` got 500, a traceback and no audit
row) is a bad credential like any other: answered per the auth policy, audited with the bytes
that arrived, and the switch keeps serving the next REGISTER."""

from __future__ import annotations

import socket
from dataclasses import replace
from pathlib import Path

import pytest

from tests.support.serving import PASSWORD, USER, Served, serve, write_config
from vosapp.sip import parse
from vosapp.sip.digest import Challenge, answer, parse_challenge
from vosapp.store import Store
from vosapp.switch.registrar import SqliteAuthJournal

pytestmark = pytest.mark.timeout(120)

BAD_USER = b"\xc3\x28"  # a UTF-8 lead byte followed by a non-continuation byte


def register(sock: socket.socket, served: Served, call_id: str, cseq: int,
             authorization: bytes = b"", user: str = USER) -> object:
    port = sock.getsockname()[1]
    head = (f"REGISTER sip:{served.host} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-{call_id}-{cseq};rport\r\n"
            f"From: <sip:{user}@{served.host}>;tag=t-{call_id}\r\n"
            f"To: <sip:{user}@{served.host}>\r\nCall-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\n"
            f"Contact: <sip:{user}@127.0.0.1:{port}>\r\nMax-Forwards: 70\r\n").encode()
    if authorization:
        head += b"Authorization: " + authorization + b"\r\n"
    sock.sendto(head + b"Content-Length: 0\r\n\r\n", (served.host, served.port))
    while True:  # skip anything that is not the final answer to this request
        response = parse(sock.recv(65535))
        if response.call_id == call_id and response.status >= 200:
            return response


def wrong_answer_as(username: bytes, challenge: Challenge, host: str) -> bytes:
    """Well-formed Digest credentials for ``challenge`` (wrong password) naming ``username``."""
    placeholder = "user-placeholder"
    credentials = str(answer(challenge, "REGISTER", f"sip:{host}", placeholder, "wrong"))
    return credentials.encode().replace(placeholder.encode(), username)


def test_non_utf8_digest_username_is_a_bad_credential_audited_losslessly(tmp_path: Path) -> None:
    with serve(write_config(tmp_path)) as served, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(10)
        challenged = register(sock, served, "bad-utf8", 1)
        assert challenged.status == 401
        challenge = parse_challenge(challenged.headers.get("WWW-Authenticate"))
        # With the switch's own nonce, then with a forged one: both are wrong credentials.
        forged = replace(challenge, nonce="forged-nonce")
        for cseq, used in ((2, challenge), (3, forged)):
            refused = register(sock, served, "bad-utf8", cseq,
                               wrong_answer_as(BAD_USER, used, served.host))
            assert refused.status in (401, 403), (refused.status, refused.reason)

        # The switch still serves: the real account registers from the same address.
        first = register(sock, served, "good", 1)
        challenge = parse_challenge(first.headers.get("WWW-Authenticate"))
        credentials = str(answer(challenge, "REGISTER", f"sip:{served.host}", USER, PASSWORD))
        assert register(sock, served, "good", 2, credentials.encode()).status == 200

    with Store.open(served.data_dir) as store:
        events = SqliteAuthJournal(store).events(limit=100)
    bad = [event for event in events if event.call_id == "bad-utf8"]
    assert bad, events
    assert {event.user for event in bad} == {"\\xc3("}  # the bytes that arrived, escaped
