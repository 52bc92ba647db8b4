"""make_response copies the request's Via, From, To, Call-ID and CSeq field lines as received
and builds their first-value index in the same pass (issue #14); the To tag is written into
the one To line directly. The result is what the earlier copy-then-``set`` gave, byte for
byte, on well-formed requests and on the partial headers of a parse error."""

from __future__ import annotations

import pytest

from vosapp.sip import (
    Headers,
    Request,
    Response,
    SipParseError,
    SipUri,
    make_response,
    parse,
)
from vosapp.sip.headers import NAME_ADDR_MEMO
from vosapp.sip.message import make_error_response

from .test_header_index import NAMES, scanned

BASE = (
    "INVITE sip:bob@192.0.2.4 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds;rport=5060;received=192.0.2.1\r\n"
    "v: SIP/2.0/UDP  192.0.2.9;branch=z9hG4bKother , SIP/2.0/TCP h.example;branch=z9hG4bK3\r\n"
    "Max-Forwards: 70\r\n"
    "{to}\r\n"
    "f:   Alice <sip:alice@example.com>;tag=1928301774\r\n"
    "i: a84b4c76e66710@pc33\r\n"
    "CSeq:314159 INVITE\r\n"
    "Subject: not copied\r\n"
    "Content-Length: 0\r\n\r\n"
)
TOS = ["To: Bob <sip:bob@example.com>", "t: <sip:bob@example.com>",
       "To: Bob <sip:bob@example.com>;tag=already", "TO:  \"B\" <sip:bob@example.com> ;x=1"]


def reference(request: Request, status: int, reason: str | None = None, *,
              to_tag: str | None = None) -> bytes:
    """The response as make_response built it before: copy the lines, then set the To."""
    fields = [list(entry) for entry in request.headers._fields
              if entry[0] in ("via", "from", "to", "call-id", "cseq")]
    headers = Headers._from_parsed(fields)
    if to_tag is not None:
        to_value = headers.get("To")
        if to_value is not None:
            try:
                has_tag = NAME_ADDR_MEMO(to_value).tag is not None
            except SipParseError:
                has_tag = True
            if not has_tag:
                headers.set("To", f"{to_value};tag={to_tag}")
    return bytes(Response(status, reason, headers))


def assert_index_agrees(headers: Headers) -> None:
    assert headers._first is not None
    for name in NAMES:
        assert headers.get(name) == scanned(headers, name), name


@pytest.mark.parametrize("to", TOS)
@pytest.mark.parametrize("to_tag", [None, "srv1"])
def test_same_bytes_as_copy_then_set(to: str, to_tag: str | None) -> None:
    request = parse(BASE.format(to=to).encode())
    assert isinstance(request, Request)
    response = make_response(request, 180, to_tag=to_tag)
    assert bytes(response) == reference(request, 180, to_tag=to_tag)
    assert_index_agrees(response.headers)
    # the copied lines are the request's own source text
    for line in (("v: SIP/2.0/UDP  192.0.2.9;branch=z9hG4bKother , SIP/2.0/TCP h.example;"
                  "branch=z9hG4bK3"), "f:   Alice <sip:alice@example.com>;tag=1928301774",
                 "CSeq:314159 INVITE"):
        assert f"\r\n{line}\r\n".encode() in bytes(response)
    # the response's lines are its own: changing them leaves the request as it was
    before = bytes(request)
    response.headers.set("To", "<sip:other@example.com>;tag=9")
    response.headers.replace_first("Via", "SIP/2.0/UDP 192.0.2.77;branch=z9hG4bKz")
    assert bytes(request) == before


def test_two_to_lines_of_a_parse_error_are_set_as_before() -> None:
    data = BASE.format(to="To: <sip:bob@example.com>\r\nTo: <sip:carol@example.com>").encode()
    with pytest.raises(SipParseError) as caught:
        parse(data)
    error = caught.value
    response = make_error_response(error, to_tag="x1")
    assert response is not None
    dummy = Request("OPTIONS", SipUri(host="invalid"), error.headers)
    reason = "Bad Request - " + error.reason
    assert bytes(response) == reference(dummy, 400, reason, to_tag="x1")
    assert response.headers.get_all("To") == ["<sip:bob@example.com>;tag=x1"]
    assert_index_agrees(response.headers)


def test_unreadable_to_is_left_alone() -> None:
    headers = Headers([("Via", "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKa"), ("From", "<sip:a@b>;tag=1"),
                       ("To", "<<broken"), ("Call-ID", "c@h"), ("CSeq", "1 OPTIONS")])
    request = Request("OPTIONS", SipUri(host="invalid"), headers)
    response = make_response(request, 400, to_tag="t")
    assert response.headers.get("To") == "<<broken"
    assert bytes(response) == reference(request, 400, to_tag="t")


def test_a_tag_with_a_line_break_is_refused_as_set_refuses_it() -> None:
    request = parse(BASE.format(to=TOS[0]).encode())
    assert isinstance(request, Request)
    with pytest.raises(ValueError):
        make_response(request, 200, to_tag="a\r\nX-Injected: 1")


def test_changing_a_response_never_changes_its_request() -> None:
    """The response holds its request's field lines themselves (not copies): every change
    Headers makes puts a new line in place, so the request's bytes stay what it received."""
    request = parse(BASE.format(to=TOS[0]).encode())
    assert isinstance(request, Request)
    received = bytes(request)
    response = make_response(request, 200, to_tag="t1")
    headers = response.headers
    headers.replace_first("Via", "SIP/2.0/UDP 198.51.100.1;branch=z9hG4bKchanged")
    headers.set("From", "<sip:someone@example.com>;tag=9")
    headers.set("Call-ID", "changed")
    headers.add("CSeq", "1 INVITE")
    assert headers.remove_first("CSeq") == "314159 INVITE"
    headers.remove("Via")
    assert bytes(request) == received
    assert request.headers.get("To") == "Bob <sip:bob@example.com>"
    assert request.call_id == "a84b4c76e66710@pc33" and request.cseq.number == 314159
