"""RFC 4475 messages through the real SwitchCore with the registrar installed (issue 12 item 8).

What the switch answers on the wire, not what the parser thinks: 420 Bad Extension with
``Unsupported`` (RFC 3261 §8.2.2.3) on OPTIONS, INVITE and REGISTER alike; 400 for a REGISTER
whose To is not a SIP/SIPS URI (unksm2); an unknown Authorization scheme is ignored and the
request challenged (regaut01); a Request-URI of an unknown scheme parses and is answered 416
(unkscm, novelsc).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from vosapp.config import parse_config
from vosapp.io.virtual import VirtualNetwork
from vosapp.sip import AbsoluteUri, Request, Response, parse
from vosapp.switch import registrar
from vosapp.switch.core import SUPPORTED_OPTION_TAGS

DATA = Path(__file__).parent.parent / "sip" / "rfc4475"
SWITCH = ("10.0.0.1", 5060)
PHONE = ("10.0.0.2", 5070)
CONFIG = parse_config('[[account]]\nuser = "j.user"\npassword = "pw"\n')


def rfc_message(name: str) -> bytes:
    # The RFC's messages travel over TCP/TLS or to example hosts; over our virtual UDP the
    # answer goes back to the source (rport), so only the Via transport and rport change.
    data = (DATA / f"{name}.dat").read_bytes()
    head, sep, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    for i, line in enumerate(lines):
        if line.lower().startswith(b"via:"):
            lines[i] = (b"Via: SIP/2.0/UDP " + f"{PHONE[0]}:{PHONE[1]}".encode()
                        + b";branch=z9hG4bK" + name.encode() + b";rport")
    return b"\r\n".join(lines) + sep + body


def answer_to(data: bytes) -> Response:
    net = VirtualNetwork()
    switch = net.add_switch(SWITCH, config=CONFIG, features=[registrar.install])
    switch.start()
    phone = net.add_endpoint(PHONE)
    phone.send(data, SWITCH)
    net.run(0.5)
    [reply] = [p.parse() for p in phone.received]
    assert isinstance(reply, Response)
    return reply


def test_bext01_options_with_unknown_require_is_420_listing_only_require_tags() -> None:
    reply = answer_to(rfc_message("bext01"))
    assert reply.status == 420 and reply.reason == "Bad Extension"
    # §8.2.2.3: Unsupported lists the Require tags; Proxy-Require is a proxy's business.
    assert reply.headers.get_list("Unsupported") == ["nothingSupportsThis",
                                                     "nothingSupportsThisEither"]


def _with_require(method: str, require: str) -> bytes:
    return (f"{method} sip:j.user@10.0.0.1 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {PHONE[0]}:{PHONE[1]};branch=z9hG4bK-{method};rport\r\n"
            "Max-Forwards: 70\r\nFrom: <sip:j.user@10.0.0.1>;tag=1\r\n"
            f"To: <sip:j.user@10.0.0.1>\r\nCall-ID: req-{method}\r\nCSeq: 1 {method}\r\n"
            f"Require: {require}\r\nContact: <sip:j.user@10.0.0.2:5070>\r\n"
            "Content-Length: 0\r\n\r\n").encode()


@pytest.mark.parametrize("method", ["OPTIONS", "REGISTER", "INVITE"])
def test_unknown_require_is_420_on_every_method(method: str) -> None:
    # INVITE has no handler here; the check runs before any handler, so with the B2BUA
    # installed it is the same (tests/switch/test_overload.py serves INVITE).
    if method == "INVITE":
        net = VirtualNetwork()
        switch = net.add_switch(SWITCH, config=CONFIG, features=[registrar.install])
        switch.core.add_request_handler("INVITE", lambda request, txn: txn.respond(
            switch.core.make_response(request, 486)))
        switch.start()
        phone = net.add_endpoint(PHONE)
        phone.send(_with_require(method, "foo, timer"), SWITCH)
        net.run(0.5)
        reply = phone.received[0].parse()
    else:
        reply = answer_to(_with_require(method, "foo, timer"))
    assert isinstance(reply, Response)
    assert reply.status == 420
    assert reply.headers.get_list("Unsupported") == ["foo"]


def test_supported_tags_alone_pass_and_options_advertise_them() -> None:
    reply = answer_to(_with_require("OPTIONS", ", ".join(SUPPORTED_OPTION_TAGS)))
    assert reply.status == 200
    assert reply.headers.get_list("Supported") == list(SUPPORTED_OPTION_TAGS)


def test_unksm2_register_with_non_sip_to_is_400_not_401() -> None:
    reply = answer_to(rfc_message("unksm2"))
    assert reply.status == 400
    assert "WWW-Authenticate" not in reply.headers


def test_regaut01_unknown_authorization_scheme_is_ignored_and_challenged() -> None:
    reply = answer_to(rfc_message("regaut01"))
    assert reply.status == 401
    assert reply.headers.get("WWW-Authenticate").startswith("Digest ")


@pytest.mark.parametrize("name", ["unkscm", "novelsc"])
def test_unknown_request_uri_scheme_parses_and_is_answered_416(name: str) -> None:
    message = parse(rfc_message(name))
    assert isinstance(message, Request) and isinstance(message.uri, AbsoluteUri)
    assert str(message.uri) == (DATA / f"{name}.dat").read_bytes().split(b" ")[1].decode()
    reply = answer_to(rfc_message(name))
    assert reply.status == 416 and reply.reason == "Unsupported URI Scheme"


def test_tel_request_uri_is_served() -> None:
    data = rfc_message("unkscm").replace(b"nobodyKnowsThisScheme:totallyopaquecontent",
                                         b"tel:+15551234")
    assert answer_to(data).status == 200

