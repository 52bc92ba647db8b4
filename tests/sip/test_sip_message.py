"""Parser, serializer and builders of vosapp.sip beyond the RFC 4475 corpus: grammar details,
size limits, the TCP stream framer, make_response and the UAC builder."""

from __future__ import annotations

import copy
import dataclasses

import pytest

from vosapp.sip import (
    CSeq,
    Headers,
    NameAddr,
    Request,
    Response,
    SipParseError,
    SipUri,
    StreamParser,
    Via,
    make_error_response,
    make_response,
    new_branch,
    new_call_id,
    new_tag,
    parse,
    parse_name_addr,
    parse_uri,
)

REGISTER = (
    b"REGISTER sip:registrar.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: \"Alice\" <sip:1001@registrar.example.com>;tag=a73kszlfl\r\n"
    b"To: <sip:1001@registrar.example.com>\r\n"
    b"Call-ID: 1j9FpLxk3uxtm8tn@192.0.2.10\r\n"
    b"CSeq: 1826 REGISTER\r\n"
    b"Contact: <sip:1001@192.0.2.10:5060;transport=udp>;expires=3600, <sip:1001@[2001:db8::1]>\r\n"
    b"X-Custom:   keep   this  exactly \r\n"
    b"Expires: 3600\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)


def request(data: bytes = REGISTER) -> Request:
    message = parse(data)
    assert isinstance(message, Request)
    return message


# ---- typed accessors ---------------------------------------------------------------------
def test_typed_accessors_of_a_register() -> None:
    m = request()
    assert m.method == "REGISTER"
    assert m.call_id == "1j9FpLxk3uxtm8tn@192.0.2.10"
    assert m.cseq == CSeq(1826, "REGISTER")
    via = m.top_via
    assert (via.transport, via.host, via.port, via.branch, via.rport) == (
        "UDP", "192.0.2.10", 5060, "z9hG4bK776asdhds", True)
    assert m.from_.display == "Alice" and m.from_.tag == "a73kszlfl"
    assert m.to.tag is None
    assert [c.uri.host for c in m.contacts] == ["192.0.2.10", "2001:db8::1"]  # type: ignore
    assert m.contacts[0].expires == 3600
    assert m.contacts[0].uri.transport == "udp"  # type: ignore[union-attr]
    assert not m.contact_star
    assert m.max_forwards == 70 and m.expires == 3600
    assert m.headers.get("x-custom") == "keep   this  exactly"


def test_unknown_headers_and_odd_spacing_are_forwarded_byte_for_byte() -> None:
    m = request()
    m.headers.set("Max-Forwards", "69")
    wire = bytes(m)
    assert b"X-Custom:   keep   this  exactly \r\n" in wire
    assert b"Max-Forwards: 69\r\n" in wire
    assert bytes(request()) == REGISTER


def test_content_length_follows_the_body() -> None:
    m = request()
    m.body = b"hello"
    wire = bytes(m)
    assert b"Content-Length: 5\r\n" in wire and wire.endswith(b"\r\n\r\nhello")
    assert parse(wire).body == b"hello"
    m.headers.remove("Content-Length")
    assert b"Content-Length: 5\r\n" in bytes(m)


def test_compact_forms_and_case_insensitive_names() -> None:
    data = (b"OPTIONS sip:a@example.com SIP/2.0\r\nv: SIP/2.0/TCP h.example.com;branch=z9hG4bK1\r\n"
            b"f: <sip:b@example.com>;tag=1\r\nt: <sip:a@example.com>\r\ni: cid\r\n"
            b"cSeQ: 1 OPTIONS\r\nm: <sip:b@h.example.com>\r\nk: timer\r\nc: text/plain\r\n"
            b"l: 2\r\n\r\nhi")
    m = request(data)
    assert m.headers.get("Via") == m.headers.get("V") == "SIP/2.0/TCP h.example.com;branch=z9hG4bK1"
    assert m.headers.get("SUPPORTED") == "timer"
    assert m.content_type == "text/plain" and m.body == b"hi"
    assert "call-id" in m.headers and "I" in m.headers and "Route" not in m.headers


def test_folding_joins_continuation_lines() -> None:
    data = REGISTER.replace(b"Expires: 3600\r\n", b"Subject: first\r\n  second\r\n\tthird\r\n")
    m = request(data)
    assert m.headers.get("Subject") == "first second third"
    assert b"Subject: first\r\n  second\r\n\tthird\r\n" in bytes(m)


def test_comma_separated_and_repeated_headers() -> None:
    data = REGISTER.replace(b"Expires: 3600\r\n",
                            b"Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n"
                            b"Route: <sip:p3.example.com;lr>\r\nAllow: INVITE, ACK\r\n"
                            b"Allow: BYE\r\nVia: SIP/2.0/TCP p.example.com;branch=z9hG4bK2, "
                            b"SIP/2.0/UDP [2001:db8::2]:5080;branch=z9hG4bK3\r\n")
    m = request(data)
    assert [r.uri.host for r in m.routes] == [  # type: ignore[union-attr]
        "p1.example.com", "p2.example.com", "p3.example.com"]
    assert m.headers.get_all("Allow") == ["INVITE, ACK", "BYE"]
    assert m.headers.get_list("Allow") == ["INVITE", "ACK", "BYE"]
    assert [(v.host, v.port) for v in m.vias] == [
        ("192.0.2.10", 5060), ("p.example.com", None), ("2001:db8::2", 5080)]


def test_quoted_strings_with_escapes_and_commas() -> None:
    data = REGISTER.replace(b'"Alice"', b'"Smith, \\"Al\\" \\\\ co"')
    m = request(data)
    assert m.from_.display == 'Smith, "Al" \\ co'
    again = NameAddr(m.from_.uri, m.from_.display, m.from_.params)
    assert parse_name_addr_roundtrip(str(again)) == m.from_


def parse_name_addr_roundtrip(text: str) -> NameAddr:
    from vosapp.sip import parse_name_addr
    return parse_name_addr(text)


def test_contact_star() -> None:
    data = REGISTER.replace(b"Contact: <sip:1001@192.0.2.10:5060;transport=udp>;expires=3600, "
                            b"<sip:1001@[2001:db8::1]>", b"Contact: *").replace(
                                b"Expires: 3600", b"Expires: 0")
    m = request(data)
    assert m.contact_star and m.contacts == [] and m.expires == 0


def test_authorization_headers_are_raw() -> None:
    value = ('Digest username="1001", realm="vos", nonce="abc,def", uri="sip:r.example.com", '
             'response="0123456789abcdef0123456789abcdef"')
    m = request(REGISTER.replace(b"Expires: 3600", f"Authorization: {value}".encode()))
    assert m.authorization == [value]
    assert m.headers.get("authorization") == value


# ---- URIs ---------------------------------------------------------------------------------
def test_uri_parts_escaping_and_wire_form() -> None:
    uri = parse_uri("sips:alice%20b:pw@Example.COM:5061;transport=TCP;lr;maddr=10.0.0.1?"
                    "subject=hi%20there&priority=urgent")
    assert (uri.scheme, uri.user, uri.password, uri.host, uri.port) == (
        "sips", "alice b", "pw", "Example.COM", 5061)
    assert uri.transport == "tcp" and uri.lr and uri.maddr == "10.0.0.1"
    assert uri.headers == [("subject", "hi there"), ("priority", "urgent")]
    assert str(uri) == ("sips:alice%20b:pw@Example.COM:5061;transport=TCP;lr;maddr=10.0.0.1?"
                        "subject=hi%20there&priority=urgent")
    built = SipUri(host="example.com", user="alice b", port=5061, scheme="sips",
                   params={"transport": "tcp"})
    assert str(built) == "sips:alice%20b@example.com:5061;transport=tcp"
    assert parse_uri(str(built)) == built
    assert uri.aor() == "sips:alice%20b@example.com"


def test_uri_comparison_rules() -> None:
    # RFC 3261 §19.1.4: host is case-insensitive, escaped and unescaped user are equal.
    assert parse_uri("sip:%61lice@EXAMPLE.com") == parse_uri("sip:alice@example.com")
    assert parse_uri("sip:alice@example.com") != parse_uri("sip:Alice@example.com")
    assert parse_uri("sip:a@h;transport=tcp") != parse_uri("sip:a@h")


def test_ipv6_references() -> None:  # RFC 5118
    uri = parse_uri("sip:[2001:db8::10]:5070")
    assert (uri.host, uri.port, uri.hostport) == ("2001:db8::10", 5070, "[2001:db8::10]:5070")
    via = Via("UDP", "2001:db8::9:1", 6050, {"branch": "z9hG4bK1", "received": "[2001:db8::9]"})
    assert str(via) == "SIP/2.0/UDP [2001:db8::9:1]:6050;branch=z9hG4bK1;received=[2001:db8::9]"
    assert via.received == "2001:db8::9"


@pytest.mark.parametrize("text,status", [
    ("mailto:a@example.com", 416), ("nonsense", 400), ("sip:", 400),
    ("sip:a@host:99999", 400), ("sip:a@[2001:db8::1", 400), ("sip:a b@h", 400),
    ("sip:a@h;x=\"q\"", 400), ("sip:a@-bad-.example.com", 400),
])
def test_bad_uris(text: str, status: int) -> None:
    with pytest.raises(SipParseError) as caught:
        parse_uri(text)
    assert caught.value.status == status


def test_a_uri_built_in_code_is_checked_and_a_replaced_one_forgets_its_text() -> None:
    built = SipUri(host="192.0.2.1", user="1001", port=5060, params={"transport": "tcp"},
                   scheme="SIP")
    assert built.scheme == "sip" and built.headers == [] and built.password is None
    for changes, status in (({"scheme": "tel"}, 416), ({"host": ""}, 400),
                            ({"port": 65536}, 400), ({"port": -1}, 400)):
        with pytest.raises(SipParseError) as caught:
            built.replace(**changes)
        assert caught.value.status == status
    parsed = parse_uri("sip:Alice@Example.COM;LR")
    for twin in (parsed.copy(), copy.deepcopy(parsed)):  # the parsed text kept
        assert str(twin) == "sip:Alice@Example.COM;LR" and twin == parsed
        assert twin.params is not parsed.params
    for moved in (parsed.replace(port=5062), dataclasses.replace(parsed, port=5062)):
        assert str(moved) == "sip:Alice@Example.COM:5062;lr"  # from its fields


# ---- errors -------------------------------------------------------------------------------
@pytest.mark.parametrize("mutation,status", [
    ((b"SIP/2.0\r\n", b"SIP/3.0\r\n"), 505),
    ((b"REGISTER sip:registrar.example.com", b"REGISTER tel:+15551234"), None),
    ((b"SIP/2.0\r\n", b"sip/2.0\r\n"), None),
    ((b"SIP/2.0\r\n", b"SIP/2.0/UDP\r\n"), 400),
    # An unknown scheme parses (RFC 4475 §3.2.2); the core answers it 416.
    ((b"REGISTER sip:registrar.example.com", b"REGISTER mailto:x@example.com"), None),
    ((b"CSeq: 1826 REGISTER", b"CSeq: 1826 INVITE"), 400),
    ((b"CSeq: 1826 REGISTER", b"CSeq: 2147483648 REGISTER"), 400),
    ((b"CSeq: 1826 REGISTER", b"CSeq: -1 REGISTER"), 400),
    ((b"Max-Forwards: 70", b"Max-Forwards: 256"), 400),
    ((b"Max-Forwards: 70", b"Max-Forwards: seventy"), 400),
    ((b"Max-Forwards: 70", b"Max-Forwards: 255"), None),  # the usual texts, looked up
    ((b"Max-Forwards: 70", b"Max-Forwards: 0"), None),
    ((b"Max-Forwards: 70", b"Max-Forwards: 0070"), None),  # the others, checked
    ((b"Max-Forwards: 70", b"Max-Forwards: 00256"), 400),
    ((b"Max-Forwards: 70", "Max-Forwards: \u0667".encode()), 400),  # a digit, not ASCII
    ((b"Content-Length: 0", b"Content-Length: 10"), 400),
    ((b"Content-Length: 0", b"Content-Length: 0x1"), 400),
    ((b"Call-ID: 1j9FpLxk3uxtm8tn@192.0.2.10\r\n", b""), 400),
    ((b"To: <sip:1001@registrar.example.com>\r\n", b""), 400),
    ((b"X-Custom:", b"X Custom:"), 400),
    ((b"X-Custom:", b"X-Custom"), 400),
    ((b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\rX: y\r\n"), 400),
    ((b"Via: SIP/2.0/UDP 192.0.2.10:5060", b"Via: SIP/2.0/UDP 192.0.2.10:99999"), 400),
    ((b"Contact: <sip:1001@192.0.2.10:5060", b"Contact: <sip:1001@192.0.2.10:5060 "), 400),
    # a method outside the known ones is checked as a token (RFC 3261 §25.1 Method)
    ((b"REGISTER sip:", b"REGISTER@ sip:"), 400),
    ((b"REGISTER sip:", b"X-NEW.method! sip:"), 400),  # a token, but the CSeq says REGISTER
])
def test_error_statuses(mutation: tuple[bytes, bytes], status: int | None) -> None:
    data = REGISTER.replace(*mutation)
    assert data != REGISTER
    if status is None:
        assert isinstance(parse(data), Request)
        return
    with pytest.raises(SipParseError) as caught:
        parse(data)
    assert caught.value.status == status


@pytest.mark.parametrize("name", ["From", "To", "Call-ID", "CSeq"])
def test_a_missing_mandatory_header_is_named(name: str) -> None:
    lines = REGISTER.split(b"\r\n")
    data = b"\r\n".join(line for line in lines if not line.startswith(name.encode() + b":"))
    with pytest.raises(SipParseError, match=f"missing mandatory {name.lower()} header"):
        parse(data)


def test_bad_response_status_lines() -> None:
    base = (b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@h>;tag=1\r\n"
            b"To: <sip:b@h>;tag=2\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\r\n")
    assert isinstance(parse(base), Response)
    for bad in (b"SIP/2.0 99 Low", b"SIP/2.0 700 High", b"SIP/2.0 2000 OK", b"SIP/2.0 abc OK"):
        with pytest.raises(SipParseError) as caught:
            parse(base.replace(b"SIP/2.0 200 OK", bad))
        assert caught.value.status == 400


def test_size_limits() -> None:
    big_body = REGISTER.replace(b"Content-Length: 0", b"Content-Length: 70000") + b"x" * 70000
    with pytest.raises(SipParseError) as caught:
        parse(big_body)
    assert caught.value.status == 413 and caught.value.headers is not None
    huge_head = REGISTER.replace(b"Expires: 3600", b"X-Pad: " + b"p" * 70000)
    with pytest.raises(SipParseError) as caught:
        parse(huge_head)
    assert caught.value.status == 513
    assert parse(REGISTER, max_size=len(REGISTER)).call_id
    with pytest.raises(SipParseError) as caught:
        parse(REGISTER, max_size=100)
    assert caught.value.status == 513


def test_leading_crlf_and_extra_datagram_bytes() -> None:
    assert bytes(parse(b"\r\n\r\n" + REGISTER + b"garbage")) == REGISTER


@pytest.mark.parametrize("old, new", [
    (b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\rX-Hidden: 1\r\n"),  # bare CR in a value
    (b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\nX-Hidden: 1\r\n"),  # bare LF
    (b" SIP/2.0\r\n", b" SIP/2.0\n\r\n"),  # on the start line
    (b"Expires: 3600\r\n", b"Expires: 3600\r\r\n"),  # CR before the line's CRLF
])
def test_a_bare_cr_or_lf_in_the_header_block_is_a_400(old: bytes, new: bytes) -> None:
    # Two parsers splitting lines differently would disagree on what the message says.
    with pytest.raises(SipParseError, match="bare CR or LF") as caught:
        parse(REGISTER.replace(old, new, 1))
    assert caught.value.status == 400


def test_methods_taken_without_the_token_check_are_tokens() -> None:
    from vosapp.sip import parser
    from vosapp.sip.headers import is_token

    assert parser._TOKEN_METHODS and all(is_token(method) for method in parser._TOKEN_METHODS)
    data = REGISTER.replace(b"REGISTER", b"X-NEW.method!")
    assert request(data).method == "X-NEW.method!"  # any other token still parses


def test_parse_rejects_non_bytes() -> None:
    with pytest.raises(TypeError):
        parse(REGISTER.decode())  # type: ignore[arg-type]


# ---- stream framing -----------------------------------------------------------------------
def test_stream_parser_frames_split_and_joined_messages() -> None:
    invite = bytes(Request.build(
        "INVITE", "sip:1002@example.com", via=Via("TCP", "192.0.2.1", 5060,
                                                  {"branch": new_branch()}),
        from_=NameAddr(parse_uri("sip:1001@example.com"), params={"tag": new_tag()}),
        to=NameAddr(parse_uri("sip:1002@example.com")), cseq=1,
        body=b"v=0\r\n", content_type="application/sdp"))
    stream = StreamParser()
    wire = b"\r\n\r\n" + REGISTER + b"\r\n\r\n" + invite + REGISTER
    out: list[Request | Response] = []
    for i in range(0, len(wire), 13):
        out += stream.feed(wire[i:i + 13])
    assert [m.method for m in out] == ["REGISTER", "INVITE", "REGISTER"]  # type: ignore
    assert out[1].body == b"v=0\r\n"
    assert stream.buffered == 0
    assert stream.feed(invite[:-2]) == [] and stream.buffered == len(invite) - 2
    assert len(stream.feed(invite[-2:])) == 1


def test_stream_without_content_length_is_broken() -> None:
    stream = StreamParser()
    with pytest.raises(SipParseError) as caught:
        stream.feed(REGISTER.replace(b"Content-Length: 0\r\n", b""))
    assert caught.value.status == 400 and stream.broken
    with pytest.raises(SipParseError):
        stream.feed(REGISTER)


def test_stream_bad_message_does_not_lose_earlier_ones() -> None:
    stream = StreamParser()
    bad = REGISTER.replace(b"CSeq: 1826 REGISTER", b"CSeq: 1826 INVITE")
    with pytest.raises(SipParseError) as caught:
        stream.feed(REGISTER + bad + REGISTER)
    assert caught.value.status == 400 and not stream.broken
    assert len(stream.feed(b"")) == 2  # the one before and the one after the bad message


def test_stream_size_limit() -> None:
    stream = StreamParser(max_size=1000)
    with pytest.raises(SipParseError) as caught:
        stream.feed(b"OPTIONS sip:a@h SIP/2.0\r\nX: " + b"y" * 2000)
    assert caught.value.status == 513 and stream.broken
    stream = StreamParser(max_size=1000)
    with pytest.raises(SipParseError):
        stream.feed(REGISTER.replace(b"Content-Length: 0", b"Content-Length: 5000"))


# ---- builders -----------------------------------------------------------------------------
def test_make_response_copies_rfc3261_8_2_6_headers() -> None:
    m = request()
    response = make_response(m, 200, to_tag="srv1")
    assert (response.status, response.reason) == (200, "OK")
    assert response.headers.get_all("Via") == m.headers.get_all("Via")
    assert response.from_ == m.from_ and response.to.tag == "srv1"
    assert response.call_id == m.call_id and response.cseq == m.cseq
    assert "Contact" not in response.headers
    wire = bytes(response)
    assert wire.endswith(b"Content-Length: 0\r\n\r\n")
    assert parse(wire) == response
    tagged = make_response(m, 486)
    assert tagged.reason == "Busy Here" and tagged.to.tag is None
    # A To that already has a tag keeps it.
    m.to = NameAddr(m.to.uri, params={"tag": "old"})
    assert make_response(m, 200, to_tag="new").to.tag == "old"
    assert make_response(m, 299).reason == "Success"
    assert make_response(m, 480, "Gone Fishing").reason == "Gone Fishing"


def test_make_error_response_from_a_parse_error() -> None:
    with pytest.raises(SipParseError) as caught:
        parse(REGISTER.replace(b"SIP/2.0\r\n", b"SIP/3.0\r\n", 1))
    response = make_error_response(caught.value, to_tag="x")
    assert response is not None and response.status == 505
    assert response.reason == "Version Not Supported"
    assert parse(bytes(response)).to.tag == "x"


def test_request_build_for_uac_code() -> None:
    via = Via("UDP", "192.0.2.1", 5060, {"branch": new_branch(), "rport": None})
    request_ = Request.build(
        "INVITE", SipUri(host="gw.example.com", user="13800138000"), via=via,
        from_=NameAddr(SipUri(host="example.com", user="1001"), "Alice", {"tag": new_tag()}),
        to=NameAddr(SipUri(host="example.com", user="13800138000")),
        call_id=new_call_id("192.0.2.1"), cseq=7,
        contact=NameAddr(SipUri(host="192.0.2.1", user="1001", port=5060)),
        headers=[("Supported", "timer"), ("X-Lab", "1")],
        body=b"v=0\r\n", content_type="application/sdp")
    parsed = parse(bytes(request_))
    assert isinstance(parsed, Request)
    assert parsed == request_
    assert parsed.top_via.branch == via.branch and parsed.top_via.rport is True
    assert parsed.cseq == CSeq(7, "INVITE") and parsed.max_forwards == 70
    assert parsed.from_.display == "Alice" and parsed.call_id.endswith("@192.0.2.1")
    assert parsed.headers.get("x-lab") == "1"
    with pytest.raises(ValueError):
        Request.build("INVITE", "sip:a@h", via=via, from_=parsed.from_, to=parsed.to,
                      body=b"x")
    with pytest.raises(ValueError):
        Request.build("INVITE", "sip:a@h", via=via, from_=parsed.from_, to=parsed.to,
                      cseq=CSeq(1, "BYE"))


def test_fresh_identifiers() -> None:
    branches = {new_branch() for _ in range(100)}
    assert len(branches) == 100 and all(b.startswith("z9hG4bK") for b in branches)
    assert len({new_tag() for _ in range(100)}) == 100
    assert len({new_call_id() for _ in range(100)}) == 100


def test_headers_collection_api() -> None:
    headers = Headers([("Via", "SIP/2.0/UDP a;branch=z9hG4bK1"), ("Route", "<sip:r1;lr>")])
    headers.add("v", "SIP/2.0/UDP b;branch=z9hG4bK2", first=True)
    assert headers.get_all("VIA") == ["SIP/2.0/UDP b;branch=z9hG4bK2",
                                      "SIP/2.0/UDP a;branch=z9hG4bK1"]
    assert headers.remove_first("via") == "SIP/2.0/UDP b;branch=z9hG4bK2"
    headers.set("Route", "<sip:r2;lr>")
    assert headers.items() == [("Via", "SIP/2.0/UDP a;branch=z9hG4bK1"), ("Route", "<sip:r2;lr>")]
    assert headers.remove("route") == 1 and len(headers) == 1 and headers.count("v") == 1
    assert headers.get("Missing", "dflt") == "dflt"
    with pytest.raises(ValueError):
        headers.add("Bad Name", "x")
    with pytest.raises(ValueError):
        headers.set("X", "a\r\nInjected: yes")


def test_request_uri_can_be_replaced() -> None:
    m = request()
    assert m.uri == parse_uri("sip:registrar.example.com")
    m.uri = SipUri(host="192.0.2.99", port=5080)
    assert bytes(m).startswith(b"REGISTER sip:192.0.2.99:5080 SIP/2.0\r\n")
    with pytest.raises(TypeError):
        m.uri = "sip:x@y"  # type: ignore[assignment]


def test_replace_first_keeps_order_and_other_lines() -> None:
    data = REGISTER.replace(b"Max-Forwards: 70\r\n",
                            b"Via: SIP/2.0/UDP p.example.com;branch=z9hG4bK9\r\nMax-Forwards: 70\r\n")
    m = request(data)
    top = m.top_via
    top.params["received"] = "2001:db8::7"  # bare IPv6, RFC 3261 §20.42 / RFC 5118 §4.5
    top.params["rport"] = "5061"
    m.headers.replace_first("Via", str(top))
    again = request(bytes(m))
    assert again.top_via.received == "2001:db8::7" and again.top_via.rport == 5061
    assert again.vias[1].host == "p.example.com"
    assert b"Via: SIP/2.0/UDP p.example.com;branch=z9hG4bK9\r\n" in bytes(m)
    with pytest.raises(KeyError):
        m.headers.replace_first("Route", "<sip:x>")


def test_invalid_utf8_escapes_survive_unescaping_and_reescaping() -> None:
    uri = parse_uri("sip:%ff%41@h?x=%fe")
    assert uri.user == "\udcffA"
    assert uri.aor() == "sip:%FFA@h"
    moved = uri.replace(port=5062)
    assert str(moved) == "sip:%FFA@h:5062?x=%FE"
    assert parse_uri(str(moved)) == moved


def test_uri_and_name_addr_copies_share_nothing_mutable() -> None:
    # The dialog layer copies From/To for every request it builds (NameAddr.copy,
    # SipUri.copy): a copy must be equal, print the same, and own its params and headers.
    for text in ('"Al" <sip:1001@192.0.2.1:5070;transport=udp;lr>;tag=a1',
                 "<sips:bob:pw@example.com?subject=hi>"):
        original = parse_name_addr(text)
        twin = original.copy()
        assert twin == original and str(twin) == str(original)
        assert isinstance(twin.uri, SipUri) and isinstance(original.uri, SipUri)
        assert twin.uri is not original.uri and type(twin.uri) is SipUri
        twin.uri.params["maddr"] = "203.0.113.1"
        twin.uri.headers.append(("x", "y"))
        twin.params["tag"] = "other"
        assert "maddr" not in original.uri.params and ("x", "y") not in original.uri.headers
        assert original.tag != "other" and twin.uri != original.uri


def test_deepcopy_is_an_independent_equal_message() -> None:
    # explicit __deepcopy__ (a compiled class has no default copy protocol): same bytes,
    # nothing shared that can change; a parsed Request-URI stays lazy until read
    wire = (b"INVITE sip:1001@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bKdc\r\n"
            b"From: <sip:a@192.0.2.9>;tag=1\r\nTo: <sip:1001@192.0.2.1>\r\nCall-ID: dc\r\n"
            b"CSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
    parsed = parse(wire)
    assert isinstance(parsed, Request)
    built = Request("OPTIONS", "sip:1002@192.0.2.1;transport=udp")
    for message in (parsed, built, make_response(parsed, 180, to_tag="t")):
        twin = copy.deepcopy(message)
        assert bytes(twin) == bytes(message) and twin is not message
        twin.headers.set("Subject", "changed")
        assert "Subject" not in message.headers
    twin = copy.deepcopy(built)
    assert isinstance(twin, Request) and twin.uri == built.uri
    twin.uri.params["transport"] = "tcp"  # type: ignore[union-attr]
    assert built.uri.params["transport"] == "udp"  # type: ignore[union-attr]
