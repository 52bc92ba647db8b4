"""The first-value index of Headers (issue #14): ``get`` answers from a dict the parser hands
over (or the first ``get`` builds) and every change drops it, so it always gives what a scan
of the field lines gives; the message accessors read it directly and keep their errors."""

from __future__ import annotations

import pytest

from vosapp.sip import Headers, NameAddr, Request, SipParseError, SipUri, Via, parse
from vosapp.sip.dialog import Dialog
from vosapp.sip.headers import canonical_key

INVITE = (
    b"INVITE sip:bob@192.0.2.4 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds\r\n"
    b"v: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bKother\r\n"
    b"Max-Forwards: 70\r\n"
    b"t: Bob <sip:bob@example.com>\r\n"
    b"From: Alice <sip:alice@example.com>;tag=1928301774\r\n"
    b"i: a84b4c76e66710@pc33\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"m: <sip:alice@192.0.2.1>\r\n"
    b"Record-Route: <sip:p1.example.com;lr>\r\n"
    b"Record-Route: <sip:p2.example.com;lr>\r\n"
    b"X-Custom: one\r\n"
    b"x-custom: two\r\n"
    b"Content-Length: 0\r\n\r\n"
)

NAMES = ["Via", "v", "VIA", "From", "f", "To", "t", "Call-ID", "i", "call-id", "CSeq",
         "Contact", "m", "Record-Route", "X-Custom", "X-CUSTOM", "Max-Forwards",
         "Content-Length", "l", "Route", "Subject", "Nothing-Here"]


def scanned(headers: Headers, name: str) -> str | None:
    """What ``get`` answered before the index: the first field line with the name's key."""
    key = canonical_key(name)
    return next((entry[2] for entry in headers._fields if entry[0] == key), None)


def assert_index_agrees(headers: Headers) -> None:
    for name in NAMES:
        assert headers.get(name) == scanned(headers, name), name
    assert headers.get("Nothing-Here", "fallback") == "fallback"


def test_parser_hands_over_an_index_that_agrees_with_a_scan() -> None:
    message = parse(INVITE)
    assert message.headers._first is not None  # built while checking, not on first get
    assert_index_agrees(message.headers)
    assert message.headers.get("Via") == "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds"
    assert message.headers.get("Contact") == "<sip:alice@192.0.2.1>"
    assert message.headers.get("x-custom") == "one"


@pytest.mark.parametrize("change", [
    lambda h: h.add("X-Custom", "zero", first=True),
    lambda h: h.add("Subject", "new"),
    lambda h: h.add("Via", "SIP/2.0/UDP 192.0.2.7;branch=z9hG4bKtop", first=True),
    lambda h: h.set("To", "<sip:carol@example.com>;tag=9"),
    lambda h: h.set("X-Custom", "only"),
    lambda h: h.replace_first("Via", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKx;received=1"),
    lambda h: h.remove("X-Custom"),
    lambda h: h.remove("Via"),
    lambda h: h.remove_first("X-Custom"),
    lambda h: h.remove_first("Record-Route"),
    lambda h: h.remove_first("Via"),
    lambda h: h.remove_first("Subject"),
    lambda h: h.set("Subject", "appended"),
    lambda h: h.remove("Nothing-Here"),
])
def test_every_change_keeps_get_equal_to_a_scan(change) -> None:  # type: ignore[no-untyped-def]
    headers = parse(INVITE).headers
    headers.get("From")  # the index is in use before the change
    change(headers)
    # Kept up to date in place, not dropped (the stamped Via and a response's To tag would
    # otherwise cost a rebuild of the index per message).
    assert headers._first is not None
    assert_index_agrees(headers)


def test_a_change_that_fails_leaves_the_index_as_it_was() -> None:
    headers = parse(INVITE).headers
    before = dict(headers._index())
    with pytest.raises(ValueError):
        headers.set("To", "bad\r\nvalue")
    with pytest.raises(ValueError):
        headers.add("Bad Name", "x")
    with pytest.raises(KeyError):
        headers.replace_first("Route", "<sip:x>")
    assert headers._first == before
    assert_index_agrees(headers)


def test_copy_has_its_own_index() -> None:
    headers = parse(INVITE).headers
    twin = headers.copy()
    twin.set("Call-ID", "changed@host")
    assert headers.get("Call-ID") == "a84b4c76e66710@pc33"
    assert twin.get("i") == "changed@host"
    assert_index_agrees(headers)
    assert_index_agrees(twin)


def test_built_headers_agree_with_a_scan() -> None:
    headers = Headers([("Via", "SIP/2.0/UDP h;branch=z9hG4bK1"), ("f", "<sip:a@h>;tag=1"),
                       ("Via", "SIP/2.0/UDP g;branch=z9hG4bK2")])
    assert_index_agrees(headers)
    headers.add("From", "<sip:b@h>;tag=2", first=True)
    assert headers.get("f") == "<sip:b@h>;tag=2"
    assert_index_agrees(headers)


def test_accessors_follow_changes_and_keep_their_errors() -> None:
    request = parse(INVITE)
    assert isinstance(request, Request)
    assert request.call_id == "a84b4c76e66710@pc33"
    assert (request.cseq.number, request.from_tag, request.to_tag) == (314159, "1928301774",
                                                                        None)
    assert request.via_branch == "z9hG4bK776asdhds"
    request.headers.set("To", "Bob <sip:bob@example.com>;tag=abc")
    request.headers.replace_first("Via", "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKnew")
    assert (request.to_tag, request.via_branch, request.top_via.host) == ("abc",
                                                                         "z9hG4bKnew",
                                                                         "192.0.2.1")
    for name, read in (("Call-ID", lambda: request.call_id), ("CSeq", lambda: request.cseq),
                       ("From", lambda: request.from_tag), ("To", lambda: request.to),
                       ("Via", lambda: request.top_via)):
        request.headers.remove(name)
        with pytest.raises(SipParseError) as caught:
            read()
        assert (caught.value.status, caught.value.reason) == (400, f"missing {name} header")


def test_build_takes_a_formatted_contact_like_a_name_addr() -> None:
    contact = NameAddr(uri=SipUri(host="192.0.2.1", port=5060))
    via = Via("UDP", "192.0.2.1", 5060, {"branch": "z9hG4bK1"})
    from_ = NameAddr(uri=SipUri(host="h", user="a"), params={"tag": "1"})
    to = NameAddr(uri=SipUri(host="h", user="b"))
    typed = Request.build("INVITE", "sip:b@h", via=via, from_=from_, to=to, call_id="c@h",
                          contact=contact)
    text = Request.build("INVITE", "sip:b@h", via=via, from_=from_, to=to, call_id="c@h",
                         contact=str(contact))
    assert bytes(typed) == bytes(text)
    assert text.contacts == [contact]


def test_in_dialog_requests_leave_the_dialog_uris_untouched() -> None:
    request = parse(INVITE)
    assert isinstance(request, Request)
    response = parse(b"SIP/2.0 200 OK\r\n"
                     b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds\r\n"
                     b"To: Bob <sip:bob@example.com>;tag=a6c85cf\r\n"
                     b"From: Alice <sip:alice@example.com>;tag=1928301774\r\n"
                     b"Call-ID: a84b4c76e66710@pc33\r\n"
                     b"CSeq: 314159 INVITE\r\n"
                     b"Contact: <sip:bob@192.0.2.4>\r\n"
                     b"Content-Length: 0\r\n\r\n")
    dialog = Dialog.from_uac(request, response)  # type: ignore[arg-type]
    before = (str(dialog.local_uri), str(dialog.remote_uri))
    bye = dialog.create_request("BYE", via=Via("UDP", "192.0.2.1", 5060,
                                               {"branch": "z9hG4bKbye"}))
    assert bye.headers.get("From") == "\"Alice\" <sip:alice@example.com>;tag=1928301774"
    assert bye.headers.get("To") == "\"Bob\" <sip:bob@example.com>;tag=a6c85cf"
    assert (str(dialog.local_uri), str(dialog.remote_uri)) == before
    assert dialog.local_uri.tag is None and dialog.remote_uri.tag is None
