"""RFC 4475 torture tests: every valid message parses to the values the RFC describes; every
invalid one raises SipParseError with the status the RFC asks for. Files are byte-exact copies
of the RFC's appendix tarball (tests/sip/rfc4475/*.dat)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vosapp.sip import (
    AbsoluteUri,
    Request,
    Response,
    SipParseError,
    SipUri,
    StreamParser,
    make_error_response,
    parse,
)

DATA = Path(__file__).parent / "rfc4475"


def load(name: str) -> bytes:
    return (DATA / f"{name}.dat").read_bytes()


def test_all_49_messages_are_here() -> None:
    assert len(list(DATA.glob("*.dat"))) == 49


# ---- invalid messages (RFC 4475 §3.1.2, §3.2) and the response each one calls for -----------
INVALID = {
    "badinv01": 400,    # §3.1.2.1 extraneous header field separators in Via/Contact
    "clerr": 400,       # §3.1.2.2 Content-Length larger than the message
    "ncl": 400,         # §3.1.2.3 negative Content-Length
    "scalar02": 400,    # §3.1.2.4 overlarge CSeq / Max-Forwards in a request
    "scalarlg": 400,    # §3.1.2.5 overlarge values in a response (dropped by the receiver)
    "quotbal": 400,     # §3.1.2.6 unterminated quoted display name
    "ltgtruri": 400,    # §3.1.2.7 <> around the Request-URI
    "lwsruri": 400,     # §3.1.2.8 LWS inside the Request-URI
    "lwsstart": 400,    # §3.1.2.9 several SP between request-line elements
    "trws": 400,        # §3.1.2.10 SP at the end of the request line
    "escruri": 400,     # §3.1.2.11 escaped headers in the Request-URI
    "regbadct": 400,    # §3.1.2.13 unbracketed Contact URI with '?'
    "badaspec": 400,    # §3.1.2.14 LWS inside <addr-spec>
    "baddn": 400,       # §3.1.2.15 non-token display name without quotes
    "badvers": 505,     # §3.1.2.16 SIP/7.0
    "mismatch01": 400,  # §3.1.2.17 CSeq method differs from the request line
    "mismatch02": 400,  # §3.1.2.18 unknown method, CSeq mismatch
    "bigcode": 400,     # §3.1.2.19 status code 4294967301 (response: dropped)
    "insuf": 400,       # §3.2.1 missing To/From/Call-ID/Max-Forwards
    "multi01": 400,     # §3.2.8 several values in single-value headers
    "mcl01": 400,       # §3.2.9 several Content-Length values
}


@pytest.mark.parametrize("name,status", sorted(INVALID.items()))
def test_invalid_message_gets_the_rfc_status(name: str, status: int) -> None:
    with pytest.raises(SipParseError) as caught:
        parse(load(name))
    assert caught.value.status == status
    assert caught.value.reason


@pytest.mark.parametrize("name", ["badinv01", "quotbal", "mismatch01", "badvers",
                                  "mismatch02", "escruri", "clerr", "ncl", "trws"])
def test_invalid_requests_still_yield_an_error_response(name: str) -> None:
    # RFC 3261 §8.2.6: the response copies Via, From, To, Call-ID and CSeq as received.
    with pytest.raises(SipParseError) as caught:
        parse(load(name))
    headers = caught.value.headers
    response = make_error_response(caught.value, to_tag="err1")
    assert response is not None
    assert response.status == caught.value.status
    wire = bytes(response)
    assert wire.startswith(f"SIP/2.0 {caught.value.status} ".encode())
    for header in ("Via", "Call-ID", "CSeq", "From"):
        assert headers.get(header).encode() + b"\r\n" in wire


def test_no_error_response_without_the_headers_to_address_it() -> None:
    with pytest.raises(SipParseError) as caught:
        parse(load("insuf"))  # no From, To, Call-ID
    assert make_error_response(caught.value) is None


@pytest.mark.parametrize("name,scheme,text", [
    ("novelsc", "soap.beep", "soap.beep://192.0.2.103:3002"),
    ("unkscm", "nobodyknowsthisscheme", "nobodyKnowsThisScheme:totallyopaquecontent")])
def test_unknown_request_uri_schemes_parse(name: str, scheme: str, text: str) -> None:
    # §3.2.2/§3.2.3: a parser must accept these as well formed; the switch core answers 416
    # (tests/switch/test_conformance_rfc4475.py). A caller may still ask the parser to refuse.
    data = load(name)
    message = parse(data)
    assert isinstance(message, Request)
    assert isinstance(message.uri, AbsoluteUri)
    assert message.uri.scheme == scheme
    assert str(message.uri) == text
    with pytest.raises(SipParseError) as caught:
        parse(data, uri_schemes=frozenset({"sip", "sips", "tel"}))
    assert caught.value.status == 416


# ---- valid messages (RFC 4475 §3.1.1, §3.2, §3.3) -------------------------------------------
def req(name: str) -> Request:
    message = parse(load(name))
    assert isinstance(message, Request)
    return message


def test_wsinv_short_tortuous_invite() -> None:  # §3.1.1.1
    m = req("wsinv")
    assert m.method == "INVITE"
    assert isinstance(m.uri, SipUri)
    assert m.uri.user == "vivekg" and m.uri.host == "chair-dnrc.example.com"
    assert "unknownparam" in m.uri.params
    assert m.to.tag == "1918181833n"
    assert str(m.to.uri) == "sip:vivekg@chair-dnrc.example.com"
    assert m.from_.display == 'J Rosenberg \\"'
    assert m.from_.tag == "98asjd8"
    assert m.max_forwards == 68
    assert m.call_id == "wsinv.ndaksdj@192.0.2.1"
    assert (m.cseq.number, m.cseq.method) == (9, "INVITE")
    vias = m.vias
    assert [(v.transport, v.host, v.branch) for v in vias] == [
        ("UDP", "192.0.2.2", "390skdjuw"),
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    assert m.headers.get("Subject") == ""
    assert m.headers.get("NewFangledHeader") == "newfangled value continued newfangled value"
    assert m.headers.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    assert m.routes[0].uri.lr  # type: ignore[union-attr]
    (contact,) = m.contacts
    assert contact.display == 'Quoted string ""'
    assert contact.params == {"newparam": "newvalue", "secondparam": None, "q": "0.33"}
    assert contact.q == 0.33
    assert len(m.body) == 150 and m.body.startswith(b"v=0")


def test_intmeth_wide_range_of_valid_characters() -> None:  # §3.1.1.2
    m = req("intmeth")
    assert m.method == "!interesting-Method0123456789_*+`.%indeed'~"
    assert m.cseq.method == m.method
    assert isinstance(m.uri, SipUri)
    assert m.uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert m.uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert m.to.display == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert m.from_.display == "token1~` token2'+_ token3*%!.-"
    assert m.from_.tag == "_token~1'+`*%!-."
    assert m.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert m.top_via.branch == "z9hG4bK-.!%66*_+`'~"
    assert m.headers.get("extensionHeader-!.%*+_`'~") == "\ufeff大停電"


def test_esc01_valid_use_of_percent_escaping() -> None:  # §3.1.1.3
    m = req("esc01")
    assert m.uri.user == "sips:user@example.com"  # type: ignore[union-attr]
    assert m.to.uri.user == "user"  # type: ignore[union-attr]
    assert m.from_.uri.user == "I have spaces"  # type: ignore[union-attr]
    assert m.headers.get("Content-Type") == "application/sdp"
    (contact,) = m.contacts
    assert contact.uri.user == "caller"  # type: ignore[union-attr]
    assert contact.uri.params == {"%6c%72": None, "n%61me": "v%61lue%25%34%31"}  # type: ignore


def test_escnull_escaped_nulls_in_uris() -> None:  # §3.1.1.4
    m = req("escnull")
    assert m.to.uri.user == "null-\x00-null"  # type: ignore[union-attr]
    assert [c.uri.user for c in m.contacts] == ["\x00", "\x00\x00"]  # type: ignore[union-attr]
    assert m.body == b""


def test_esc02_percent_is_not_an_escape_in_tokens() -> None:  # §3.1.1.5
    m = req("esc02")
    assert m.method == "RE%47IST%45R"  # not REGISTER: tokens are not unescaped
    assert m.to.display == "%Z%45"
    assert m.top_via.branch == "z9hG4bK209%fzsnel234"
    # "C%6Fntact" is an unknown header, not a Contact.
    assert [c.uri.host for c in m.contacts] == ["host1.example.com", "host3.example.com"]  # type: ignore
    assert m.headers.get("C%6Fntact") == "<sip:alias2@host2.example.com>"


def test_lwsdisp_no_lws_between_display_and_laquot() -> None:  # §3.1.1.6
    m = req("lwsdisp")
    assert m.from_.display == "caller"
    assert m.from_.tag == "323"


def test_longreq_long_values() -> None:  # §3.1.1.7
    m = req("longreq")
    assert len(m.vias) == 34
    assert m.vias[0].host == "sip33.example.com"
    assert m.to.display is not None and "extremeextreme" in m.to.display
    assert m.to.uri.port == 6000  # type: ignore[union-attr]
    assert m.from_.uri.user.startswith("amazinglylongcallername")  # type: ignore[union-attr]
    assert m.call_id.startswith("longreq.onereally")
    assert m.headers.get("Unknown-LongLongLongLongLongLongLongLongLongLongLongLongLongLong"
                         "LongLongLongLongLongLong-Name") is not None


def test_dblreq_second_request_in_the_datagram_is_ignored() -> None:  # §3.1.1.8
    m = req("dblreq")
    assert m.method == "REGISTER"
    assert m.body == b""  # Content-Length: 0; the INVITE after it is discarded (§18.3)
    assert m.call_id == "dblreq.0ha0isndaksdj99sdfafnl3lk233412"


def test_semiuri_semicolon_in_the_user_part() -> None:  # §3.1.1.9
    m = req("semiuri")
    assert m.uri.user == "user;par=u@example.net"  # type: ignore[union-attr]
    assert m.uri.host == "example.com"  # type: ignore[union-attr]
    assert m.uri.params == {}  # type: ignore[union-attr]
    assert m.headers.get_list("Accept") == [
        "application/sdp", "application/pkcs7-mime", "multipart/mixed", "multipart/signed",
        "message/sip", "message/sipfrag"]


def test_transports_various_via_transports() -> None:  # §3.1.1.10
    m = req("transports")
    assert [v.transport for v in m.vias] == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]
    assert m.call_id == "transports.kijh4akdnaqjkwendsasfdj"


def test_mpart01_multipart_body() -> None:  # §3.1.1.11
    m = req("mpart01")
    assert m.content_type == "multipart/mixed;boundary=7a9cbec02ceef655"
    assert len(m.body) == 553
    assert m.top_via.rport is True


def test_unreason_utf8_reason_phrase() -> None:  # §3.1.1.12
    m = parse(load("unreason"))
    assert isinstance(m, Response)
    assert m.status == 200
    assert m.reason == "= 2**3 * 5**2 но сто девяносто девять - простое"
    assert len(m.body) == 154


def test_noreason_empty_reason_phrase() -> None:  # §3.1.1.13
    m = parse(load("noreason"))
    assert isinstance(m, Response)
    assert (m.status, m.reason) == (100, "")


@pytest.mark.parametrize("name", ["badbranch", "baddate"])
def test_tolerated_oddities(name: str) -> None:
    # §3.3.? badbranch: "z9hG4bK" alone is a valid (if unwise) branch. §3.1.2.12 baddate: a
    # non-GMT Date may be rejected but an element may also be robust and ignore it; the
    # switch never reads Date, so it is accepted as is.
    m = req(name)
    if name == "badbranch":
        assert m.top_via.branch == "z9hG4bK"
    else:
        assert m.headers.get("Date") == "Fri, 01 Jan 2010 16:00:00 EST"


def test_transaction_layer_semantics_messages_parse() -> None:  # §3.2.5 - §3.2.15
    assert req("bext01").headers.get_list("Require") == [
        "nothingSupportsThis", "nothingSupportsThisEither"]
    assert req("invut").content_type == "application/unknownformat"
    assert req("regaut01").authorization == ["NoOneKnowsThisScheme opaque-data=here"]
    zeromf = req("zeromf")
    assert zeromf.max_forwards == 0
    (c1,) = req("cparam01").contacts
    assert c1.params == {"unknownparam": None} and c1.uri.params == {}  # type: ignore
    (c2,) = req("cparam02").contacts
    assert c2.params == {} and c2.uri.params == {"unknownparam": None}  # type: ignore
    (c3,) = req("regescrt").contacts
    assert c3.uri.headers == [("Route", "<sip:sip.example.com>")]  # type: ignore
    assert req("sdp01").headers.get("Accept") == "text/nobodyKnowsThis"


def test_unksm2_unknown_schemes_in_headers() -> None:  # §3.2.4
    m = req("unksm2")
    assert m.to.uri == AbsoluteUri("isbn", "isbn:2983792873")
    assert isinstance(m.from_.uri, AbsoluteUri) and m.from_.uri.scheme == "http"
    assert str(m.contacts[0].uri) == "name:John_Smith"


def test_bcast_response_with_broadcast_via() -> None:  # §3.2.10
    m = parse(load("bcast"))
    assert isinstance(m, Response)
    assert m.vias[1].host == "255.255.255.255"


def test_inv2543_rfc2543_style_invite() -> None:  # §3.3.1
    m = req("inv2543")
    assert m.top_via.branch is None
    assert m.max_forwards is None
    assert m.from_.tag is None
    # addr-spec form: ";user=phone" belongs to the header, not the URI (RFC 3261 §20.10).
    assert m.to.params == {"user": "phone"}
    assert m.record_routes[0].uri.maddr == "ss1.example.com"  # type: ignore[union-attr]
    assert m.body.startswith(b"v=0")


VALID = sorted(p.stem for p in DATA.glob("*.dat") if p.stem not in INVALID)


@pytest.mark.parametrize("name", VALID)
def test_valid_message_round_trips_byte_for_byte(name: str) -> None:
    data = load(name)
    message = parse(data)
    again = parse(bytes(message))
    assert again == message
    # Unchanged header lines come out exactly as received (folding, odd spacing included).
    head = data.split(b"\r\n\r\n", 1)[0]
    out_head = bytes(message).split(b"\r\n\r\n", 1)[0]
    for line in head.split(b"\r\n")[1:]:
        if line[:1] not in (b" ", b"\t") and not line.lower().startswith((b"content-length",
                                                                           b"l:", b"l :")):
            assert line in out_head


@pytest.mark.parametrize("name", sorted(p.stem for p in DATA.glob("*.dat")))
def test_every_message_through_the_stream_parser(name: str) -> None:
    data = load(name)
    stream = StreamParser()
    try:
        messages = []
        for i in range(0, len(data), 7):  # byte dribble
            messages += stream.feed(data[i:i + 7])
    except SipParseError as error:
        assert 400 <= error.status < 600
        return
    # Only messages with a Content-Length frame on a stream.
    assert len(messages) <= 1
