"""The header block's scan in C (vosapp/sip/_scan.c ``head_fields``) against the parser's Python
path: wherever the C scan answers, it answers what the Python path gives; everything else it
leaves to the Python path, whose errors are what a sender sees. The message writer of the same
module (``message_bytes``) against Message's Python writer likewise, and the Via branch's
span (``branch_span``) against the regex it stands for. (The Digest auth-param scan is tested
with the digest parsers, tests/sip/test_digest.py.)"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vosapp.sip import headers, message, parser
from vosapp.sip.headers import Headers
from vosapp.sip.message import Message, Request, make_response
from vosapp.sip.parser import SipParseError, parse

REGISTER = (
    "REGISTER sip:127.0.0.1:5060 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-1-1;rport\r\n"
    "From: <sip:user0001@127.0.0.1>;tag=1SIPpTag001\r\n"
    "To: <sip:user0001@127.0.0.1>\r\n"
    "Call-ID: 1-4242@127.0.0.1\r\n"
    "CSeq: 2 REGISTER\r\n"
    "Contact: <sip:user0001@127.0.0.1:5061>\r\n"
    "Max-Forwards: 70\r\n"
    "Expires: 3600\r\n"
    "Authorization: Digest username=\"user0001\",realm=\"vosapp\",nonce=\"n\",uri=\"sip:x\","
    "response=\"00\"\r\n"
    "Content-Length: 0"
)


def python_path(head: str) -> tuple[str, list[list[str]]] | None:
    """What parse() does without the C scan: split at CRLF, refuse a lone CR or LF (None
    here), the start line, then _parse_fields (which fills the key cache as it goes)."""
    lines = head.split("\r\n")
    if any("\r" in line or "\n" in line for line in lines):
        return None
    try:
        return lines[0], parser._parse_fields(lines[1:])
    except SipParseError:
        return None


def test_the_scan_is_built_and_takes_a_phones_register() -> None:
    """setup.py builds vosapp.sip._scan; if it stopped, every message would be split in Python
    again (docs/benchmarks.md, thirty-sixth round)."""
    assert parser._HEAD_IN_C is not None, "vosapp.sip._scan is not built: run `make setup`"
    expected = python_path(REGISTER)  # meets every name once: the cache then holds them
    assert expected is not None
    assert parser._HEAD_IN_C(REGISTER, parser._KEY_CACHE) == expected
    message = parse((REGISTER + "\r\n\r\n").encode())
    assert message.headers.get("call-id") == "1-4242@127.0.0.1"
    assert message.headers.get("authorization", "").startswith("Digest username=")



def test_a_name_met_before_is_the_same_str_each_time() -> None:
    """The scan keeps the (1-byte) names it has met with their keys, in 64 slots: a second
    message's field names and keys are the first one's objects, not new strings looked up
    again (docs/benchmarks.md, thirty-seventh round). The slots belong to the key cache they
    came from: another cache empties them, and a name beyond the 64th is looked up in the
    cache as before."""
    assert parser._HEAD_IN_C is not None
    assert python_path(REGISTER) is not None  # every name in the key cache
    first = parser._HEAD_IN_C(REGISTER, parser._KEY_CACHE)
    second = parser._HEAD_IN_C(REGISTER, parser._KEY_CACHE)
    assert first is not None and second is not None and first == second
    assert all(a[0] is b[0] and a[1] is b[1] for a, b in zip(first[1], second[1]))
    # another cache: its own keys, and the names it lacks are the Python path's
    assert parser._HEAD_IN_C(REGISTER, {"Via": "via"}) is None
    assert parser._HEAD_IN_C("A\r\nVia: x", {"Via": "v2"}) == ("A", [["v2", "Via", "x", "Via: x"]])
    assert parser._HEAD_IN_C(REGISTER, parser._KEY_CACHE) == first
    # more names than the slots hold, twice: the later ones found in the cache each time
    head = "A sip:x SIP/2.0\r\n" + "\r\n".join(f"X-Many-{n}: {n}" for n in range(100))
    expected = python_path(head)
    assert expected is not None
    assert parser._HEAD_IN_C(head, parser._KEY_CACHE) == expected
    assert parser._HEAD_IN_C(head, parser._KEY_CACHE) == expected


@pytest.mark.parametrize("head", [
    "A sip:x SIP/2.0\r\nVia: a\rb",         # a lone CR
    "A sip:x SIP/2.0\r\nVia: a\nb",         # a lone LF
    "A sip:x SIP/2.0\r\nVia a",             # no colon
    "A sip:x SIP/2.0\r\nVia : a",           # a space before the colon: the Python path's
    "A sip:x SIP/2.0\r\nVia: a\r\n b",      # a folded line
    "A sip:x SIP/2.0\r\nVia: a\r\n",        # an empty last line
    "A sip:x SIP/2.0\r\nX-Never-Seen-Before-Scan: a",  # a name the cache does not hold
    "A sip:x SIP/2.0\r\nVi(a: a",           # not a name
])
def test_other_shapes_are_left_to_the_python_path(head: str) -> None:
    python_path("A sip:x SIP/2.0\r\nVia: a")  # "Via" in the cache
    assert parser._HEAD_IN_C is not None
    assert parser._HEAD_IN_C(head, parser._KEY_CACHE) is None


def test_values_are_stripped_of_spaces_and_tabs_only() -> None:
    python_path("A\r\nSubject: a\r\nVia: a")
    assert parser._HEAD_IN_C is not None
    assert parser._HEAD_IN_C("A\r\nSubject: \t x \x0b\t \r\nVia:a", parser._KEY_CACHE) == (
        "A", [["subject", "Subject", "x \x0b", "Subject: \t x \x0b\t "],
              ["via", "Via", "a", "Via:a"]])


def test_text_beyond_latin1_and_escaped_bytes() -> None:
    head = "A sip:x SIP/2.0\r\nSubject: caf\u00e9 \u2603\r\nVia: \udc80x"  # surrogateescape
    expected = python_path(head)
    assert parser._HEAD_IN_C is not None
    assert parser._HEAD_IN_C(head, parser._KEY_CACHE) == expected


def test_wrong_arguments_raise_type_error() -> None:
    assert parser._HEAD_IN_C is not None
    with pytest.raises(TypeError):
        parser._HEAD_IN_C(b"A", {})  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        parser._HEAD_IN_C("A\r\nVia: a", {"Via": 1})  # type: ignore[dict-item]


_PIECES = st.sampled_from([
    "INVITE sip:a@b SIP/2.0", "SIP/2.0 200 OK", "\r\n", "\r\n", "\r\n", "\r", "\n", ":", ": ",
    " ", "\t", "Via", "v", "From", "f", "To", "Call-ID", "i", "CSeq", "Contact", "m",
    "Max-Forwards", "X-Lab", "Subject", "value", "a=b;c", "\u00e9", "\u2603", "\udc80", "(",
    "Content-Length: 0", "Via: SIP/2.0/UDP h;branch=z9hG4bK1",
])


@settings(max_examples=1500, deadline=None)
@given(st.lists(_PIECES, max_size=20).map("".join))
def test_fuzz_the_scan_agrees_with_the_python_path(head: str) -> None:
    expected = python_path(head)  # first: it fills the key cache with the names it meets
    assert parser._HEAD_IN_C is not None
    scanned = parser._HEAD_IN_C(head, parser._KEY_CACHE)
    if scanned is not None:
        assert scanned == expected, head


# -- the message writer (message_bytes, behind Message.__bytes__) ------------------------------

def written_both_ways(start: Message, fields: list[list[str]], body: bytes
                      ) -> tuple[bytes | None, bytes]:
    """message_bytes on ``start``'s start line with ``fields`` and ``body``, and what the
    Python writer (Message._write) writes for the same message."""
    assert message._WRITE_IN_C is not None, "vosapp.sip._scan is not built: run `make setup`"
    start.headers = Headers._from_parsed(fields)
    start.body = body
    return message._WRITE_IN_C(start._start_line(), fields, body), start._write(body)


def test_the_writer_is_built_and_writes_a_register_and_its_responses() -> None:
    """setup.py builds the writer into vosapp.sip._scan; Message.__bytes__ uses it, and what
    it writes is the Python writer's bytes: a parsed REGISTER (each line as received), its
    401 and 200 (copied lines, new ones written from name and value), with a body."""
    request = parse((REGISTER + "\r\n\r\n").encode())
    assert isinstance(request, Request)
    for msg in (request, make_response(request, 401, "Unauthorized"),
                make_response(request, 200, "OK")):
        msg.headers.set("WWW-Authenticate", 'Digest realm="vosapp", nonce="abc"')
        for body in (b"", b"v=0\r\n"):
            msg.body = body
            assert message._WRITE_IN_C is not None
            written = message._WRITE_IN_C(msg._start_line(), msg.headers._fields, body)
            assert written is not None and written == bytes(msg) == msg._write(body)
    assert bytes(request).startswith(b"REGISTER sip:127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/")


@pytest.mark.parametrize("fields", [
    [["content-length", "Content-Length", "0", "Content-Length: 0"]],  # as received
    [["content-length", "Content-Length", "99", "Content-Length: 99"]],  # wrong: rewritten
    [["content-length", "l", "0", "l: 0"],
     ["content-length", "Content-Length", "7", "Content-Length: 7"]],  # the second dropped
    [["via", "Via", "SIP/2.0/UDP h", ""]],  # no Content-Length: added
    [["x-a", "X-A", "", ""], ["x-b", "X-B", "b", "X-B:b"]],  # an empty value; a line as is
    [],
])
def test_content_length_and_lines_as_the_python_writer_writes_them(
        fields: list[list[str]]) -> None:
    for body in (b"", b"0123456789"):
        scanned, expected = written_both_ways(make_response(parse(
            (REGISTER + "\r\n\r\n").encode()), 200, "OK"), [list(f) for f in fields], body)
        assert scanned == expected


@pytest.mark.parametrize("fields", [
    [["subject", "Subject", "caf\u00e9", ""]],  # Latin-1: UTF-8 encoded by Python
    [["subject", "Subject", "\u2603", "Subject: \u2603"]],
    [["subject", "Subject", "x\udc80", ""]],  # a byte the parser escaped
    [["subject", "Subject", "x"]],  # not four items
    [("subject", "Subject", "x", "")],  # not a list
])
def test_other_texts_and_shapes_are_left_to_the_python_writer(
        fields: list[list[str]]) -> None:
    request = parse((REGISTER + "\r\n\r\n").encode())
    assert message._WRITE_IN_C is not None
    assert message._WRITE_IN_C(request._start_line(), fields, b"") is None
    assert message._WRITE_IN_C("caf\u00e9 sip:x SIP/2.0", [], b"") is None
    assert message._WRITE_IN_C("A", [], bytearray(b"x")) is None  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        message._WRITE_IN_C("A", [])  # type: ignore[call-arg]
    if len(fields[0]) == 4 and isinstance(fields[0], list):
        request.headers = Headers._from_parsed([list(f) for f in fields])
        assert bytes(request) == request._write(b"")  # the Python writer's, through bytes()


_FIELD_PIECES = st.sampled_from(["Via", "content-length", "Content-Length", "l", "0", "12",
                                 "x", " ", ":", "a=b", "", "\u00e9", "\udc80"])


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.lists(_FIELD_PIECES, min_size=4, max_size=4), max_size=8),
       st.binary(max_size=20))
def test_fuzz_the_writer_agrees_with_the_python_writer(fields: list[list[str]],
                                                       body: bytes) -> None:
    scanned, expected = written_both_ways(make_response(parse(
        (REGISTER + "\r\n\r\n").encode()), 200, "OK"), fields, body)
    if scanned is not None:
        assert scanned == expected
    elif all(text.isascii() for field in fields for text in field):
        raise AssertionError(f"ASCII fields left to Python: {fields!r}")


# -- the Via branch's value (branch_span, behind headers.ViaMemo) ------------------------------

@pytest.mark.parametrize(("text", "span"), [
    ("SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-1-1;rport", (34, 45)),
    ("SIP/2.0/UDP h;branch=z9hG4bK1", (21, 29)),
    ("SIP/2.0/UDP h;branch=z9hG4bK1 ;x", (21, 29)),
    ("SIP/2.0/UDP h;branch=\tz", None),  # a value starts at once
    ("SIP/2.0/UDP h;branch=a,b;branch=c", (32, 33)),  # the first one that ends right
    ("SIP/2.0/UDP h;BRANCH=a", None),  # the regex's case, exactly
    ("SIP/2.0/UDP h;branch=", None),
    ("", None),
    ("SIP/2.0/UDP \u00e9;branch=\u2603;branch=ok", (30, 32)),  # wider text: still characters
    ("SIP/2.0/UDP h;branch=a\udc80", None),
])
def test_the_branch_span_is_the_regex_span(text: str, span: tuple[int, int] | None) -> None:
    assert headers._BRANCH_SPAN_IN_C is not None, "vosapp.sip._scan is not built: run `make setup`"
    assert headers.branch_span(text) == span
    assert headers._BRANCH_SPAN_IN_C(text) == span


_VIA_PIECES = st.sampled_from([
    "SIP/2.0/UDP ", "h", ":5060", ";", ";branch=", "branch", "=", "z9hG4bK", "-.!%*_+`'~",
    " ", "\t", ",", '"', "#", "\u00e9", "\u2603", "\udc80", "\x00", ";rport", "a" * 40,
])


@settings(max_examples=1500, deadline=None)
@given(st.lists(_VIA_PIECES, max_size=16).map("".join))
def test_fuzz_the_branch_span_agrees_with_the_regex(text: str) -> None:
    assert headers._BRANCH_SPAN_IN_C is not None
    assert headers._BRANCH_SPAN_IN_C(text) == headers.branch_span(text), text


def test_the_branch_span_wants_a_str() -> None:
    assert headers._BRANCH_SPAN_IN_C is not None
    with pytest.raises(TypeError, match="needs a str"):
        headers._BRANCH_SPAN_IN_C(b";branch=x")  # type: ignore[arg-type]


# -- a Call-ID's check and a From's tag value (behind parser._valid_call_id, _valid_from) ----

_CALL_ID_PIECES = st.sampled_from([
    "a", "Z", "9", "@", "-.!%*_+`'~", "()<>:\\\"/[]?{}", " ", "\t", ";", ",", "=", "#", "&",
    "\u00e9", "\u2603", "\udc80", "\x00", "\n", "127.0.0.1", "1-4242",
])


@pytest.mark.parametrize("text", [
    "1-4242@127.0.0.1", "a", "a@b", "@b", "a@", "a@b@c", "", "a b", "a\n", "\u00e9",
    "()<>:\\\"/[]?{}@-.!%*_+`'~", "a;b", "a\x00",
])
def test_the_call_id_check_is_the_regex(text: str) -> None:
    assert parser._CALL_ID_IN_C is not None, "vosapp.sip._scan is not built: run `make setup`"
    assert parser._CALL_ID_IN_C(text) is (parser._CALL_ID_RE.fullmatch(text) is not None)


@settings(max_examples=1500, deadline=None)
@given(st.lists(_CALL_ID_PIECES, max_size=12).map("".join))
def test_fuzz_the_call_id_check_agrees_with_the_regex(text: str) -> None:
    assert parser._CALL_ID_IN_C is not None
    assert parser._CALL_ID_IN_C(text) is (parser._CALL_ID_RE.fullmatch(text) is not None), text


@pytest.mark.parametrize(("text", "span"), [
    ("<sip:20000@127.0.0.1>;tag=4242SIPpTag1", (26, 38)),
    ('"Alice" <sip:a@h>;tag=x-1;foo=bar', (22, 25)),
    ('"a>b" <sip:a@h>;tag=x', (20, 21)),
    ("<sip:a@h>;tag=x;tag=y", None),  # two tags: not by its shape
    ('<sip:a@h>;x="q";tag=y', None),  # a quote after the name-addr
    ("<sip:a@h;tag=y>", None),  # a URI parameter, not the header's
    ("sip:a@h;tag=y", None),  # no name-addr
    ("<sip:a@h>;tag=", None), ("<sip:a@h>;tag=x y", None), ("<sip:a@h>;tag=x ;y", None),
    ("<sip:a@h>;TAG=x", None), ("<sip:a@h>;tag=\u00e9", None), ("", None),
    ("\u2603<sip:a@h>;tag=ok", (15, 17)),  # wider text: still characters
])
def test_the_tag_span(text: str, span: tuple[int, int] | None) -> None:
    assert parser._TAG_SPAN_IN_C is not None, "vosapp.sip._scan is not built: run `make setup`"
    assert parser.tag_span(text) == span
    assert parser._TAG_SPAN_IN_C(text) == span


_FROM_PIECES = st.sampled_from([
    "<sip:a@h>", "<", ">", ";tag=", ";", "tag", "=", "x", "-.!%*_+`'~", '"', " ", "\t", ",",
    "\u00e9", "\u2603", "\udc80", "\x00", ";foo=bar", "sip:", "@",
])


@settings(max_examples=1500, deadline=None)
@given(st.lists(_FROM_PIECES, max_size=14).map("".join))
def test_fuzz_the_tag_span_agrees_with_python(text: str) -> None:
    assert parser._TAG_SPAN_IN_C is not None
    assert parser._TAG_SPAN_IN_C(text) == parser.tag_span(text), text


def test_the_new_checks_want_a_str() -> None:
    assert parser._CALL_ID_IN_C is not None and parser._TAG_SPAN_IN_C is not None
    with pytest.raises(TypeError, match="needs a str"):
        parser._CALL_ID_IN_C(b"a@b")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="needs a str"):
        parser._TAG_SPAN_IN_C(b"<sip:a@h>;tag=x")  # type: ignore[arg-type]


def test_a_scan_missing_from_the_built_module_leaves_the_python_path() -> None:
    """An extension built before a scan was written (an old build in a checkout) has no such
    function: the parser runs its Python path instead of failing to import."""
    assert headers.scan_in_c("no_such_scan") is None
