"""The shared header parse memo (HeaderMemo): each distinct From/To/Via/CSeq/Contact text is
parsed once for all messages. What the accessors and the parser answer must not change: equal
values, copies that callers may change without touching other messages, the same errors for
malformed text, and a bounded memory."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.sip.test_sip_properties import FAST, TOKEN_CHARS, name_addrs, tokens, vias
from vosapp.sip import NameAddr, Request, SipParseError, Via, parse, parser
from vosapp.sip.headers import (
    _WRITTEN_AS_PARSED_VIA,
    NAME_ADDR_LIST_MEMO,
    NAME_ADDR_MEMO,
    VIAS_MEMO,
    HeaderMemo,
    ViaMemo,
    parse_cseq,
    parse_name_addr,
    parse_name_addr_list,
    parse_vias,
)

INVITE = (
    b"INVITE sip:0044123@192.0.2.1:5060 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.10:5061;branch=z9hG4bK-memo-1;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: \"Memo\" <sip:memo@192.0.2.10:5061>;tag=from-memo-1\r\n"
    b"To: <sip:0044123@192.0.2.1:5060>\r\n"
    b"Call-ID: memo-call-1@192.0.2.10\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Contact: <sip:memo@192.0.2.10:5061;transport=udp>;expires=60\r\n"
    b"Record-Route: <sip:proxy.example.com;lr>, <sip:p2.example.com;lr>\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)


def _response_echoing(invite: bytes, to_tag: str) -> bytes:
    """A 180 as a UAS sends it: Via, From, Call-ID, CSeq copied byte for byte."""
    head = invite.split(b"\r\n\r\n")[0].split(b"\r\n")[1:]
    copied = [line for line in head if line.split(b":")[0] in
              (b"Via", b"From", b"Call-ID", b"CSeq")]
    to = next(line for line in head if line.startswith(b"To:"))
    return b"\r\n".join([b"SIP/2.0 180 Ringing", *copied, to + b";tag=" + to_tag.encode(),
                         b"Contact: <sip:uas@192.0.2.20>", b"Content-Length: 0", b"", b""])


def test_accessors_equal_a_fresh_parse_on_first_and_later_reads() -> None:
    for _ in range(2):  # the second message finds every text in the memo
        request = parse(INVITE)
        headers = request.headers
        assert request.from_ == parse_name_addr(headers.get("From") or "")
        assert request.to == parse_name_addr(headers.get("To") or "")
        assert request.top_via == parse_vias(headers.get("Via") or "")[0]
        assert request.vias == parse_vias(headers.get("Via") or "")
        assert request.cseq == parse_cseq("1 INVITE")
        assert request.contacts == parse_name_addr_list(headers.get("Contact") or "")
        assert request.record_routes == parse_name_addr_list(
            headers.get("Record-Route") or "")
        response = parse(_response_echoing(INVITE, "uas-tag"))
        assert response.top_via == request.top_via
        assert response.from_ == request.from_
        assert response.to.tag == "uas-tag"


def test_changing_a_returned_value_touches_no_other_read_or_message() -> None:
    first, second = parse(INVITE), parse(INVITE)
    via = first.top_via
    via.params["received"] = "198.51.100.7"
    from_ = first.from_
    from_.tag = "changed"
    contact = first.contacts[0]
    contact.params["expires"] = "0"
    route = first.record_routes[0]
    route.params["x"] = "y"
    assert "received" not in first.top_via.params
    assert "received" not in second.top_via.params
    assert first.from_.tag == second.from_.tag == "from-memo-1"
    assert first.contacts[0].params["expires"] == "60"
    assert "x" not in second.record_routes[0].params
    assert "received" not in second.vias[0].params


def test_a_changed_header_is_read_from_its_new_text() -> None:
    request = parse(INVITE)
    assert request.to.tag is None
    request.headers.set("To", "<sip:0044123@192.0.2.1:5060>;tag=now")
    assert request.to.tag == "now"
    request.headers.replace_first("Via", "SIP/2.0/TCP 203.0.113.5:5070;branch=z9hG4bKnew")
    assert (request.top_via.transport, request.top_via.port) == ("TCP", 5070)


@pytest.mark.parametrize(("name", "bad"), [
    ("From", b"From: <sip:memo@192.0.2.10 ;tag=x"),
    ("To", b"To: \"unterminated <sip:0044123@192.0.2.1>"),
    ("Via", b"Via: SIP/2.0/UDP 192.0.2.10:99999;branch=z9hG4bK-memo-1"),
    ("CSeq", b"CSeq: 99999999999 INVITE"),
    ("Contact", b"Contact: <sip:memo@192.0.2.10:5061;transport=udp;expires=60"),
])
def test_malformed_text_fails_the_same_way_every_time(name: str, bad: bytes) -> None:
    line = next(line for line in INVITE.split(b"\r\n") if line.startswith(name.encode() + b":"))
    data = INVITE.replace(line, bad)
    errors = []
    for _ in range(3):
        parse(INVITE)  # valid neighbours fill the memo meanwhile
        with pytest.raises(SipParseError) as caught:
            parse(data)
        errors.append((caught.value.status, caught.value.reason))
    assert errors[0][0] == 400
    assert errors == [errors[0]] * 3
    value = bad.split(b":", 1)[1].strip().decode()
    assert value not in NAME_ADDR_MEMO and value not in VIAS_MEMO
    assert value not in NAME_ADDR_LIST_MEMO


def test_a_request_contact_is_checked_by_the_memo_its_accessor_fills() -> None:
    request = parse(INVITE)
    value = request.headers.get("Contact") or ""
    assert request.contacts == parse_name_addr_list(value) and value in NAME_ADDR_LIST_MEMO
    assert parse(INVITE).contacts == request.contacts  # checked by the memo this time


def _with_request_uri(uri: str) -> bytes:
    return INVITE.replace(b"INVITE sip:0044123@192.0.2.1:5060 SIP/2.0",
                          b"INVITE " + uri.encode() + b" SIP/2.0")


@pytest.mark.parametrize(("uri", "status"), [
    ("sip:0044123@192.0.2.1:99999", 400),  # port over 65535
    ("sip:0044123@192.0.2.1?subject=x", 400),  # §19.1.1: no headers in a Request-URI
    ("sip:0044123@bad_host", 400),
])
def test_a_bad_request_uri_fails_every_time_and_is_not_remembered(uri: str,
                                                                   status: int) -> None:
    errors = []
    for _ in range(3):
        parse(INVITE)
        with pytest.raises(SipParseError) as caught:
            parse(_with_request_uri(uri))
        errors.append((caught.value.status, caught.value.reason))
    assert errors[0][0] == status and errors == [errors[0]] * 3
    assert uri not in parser._REQUEST_URI_SCHEMES


@pytest.mark.parametrize(("uri", "scheme"), [
    ("sip:0044123@192.0.2.1:5060", "sip"),
    ("sips:0044123@192.0.2.1", "sips"),
    ("SIP:0044123@192.0.2.1;user=phone", "sip"),  # full parse: the scheme is case-insensitive
    ("tel:+44123", "tel"),  # RFC 4475 §3.2.2/§3.2.3: parsed, then answered 416 by the core
])
def test_a_remembered_request_uri_is_still_checked_against_the_schemes_served(
        uri: str, scheme: str) -> None:
    data = _with_request_uri(uri)
    for _ in range(2):  # the second parse finds the URI remembered
        request = parse(data)
        assert isinstance(request, Request) and str(request.uri) == uri
        assert parser._REQUEST_URI_SCHEMES[uri] == scheme
        with pytest.raises(SipParseError) as caught:
            parse(data, uri_schemes=frozenset({"sip", "sips", "tel"} - {scheme}))
        assert caught.value.status == 416
        parse(data, uri_schemes=frozenset({scheme}))


def test_the_memo_is_bounded_and_parses_again_after_forgetting() -> None:
    calls: list[str] = []

    def count(text: str) -> str:
        calls.append(text)
        return text.upper()

    memo = HeaderMemo(count, limit=3)
    assert [memo(t) for t in ("a", "b", "a", "c")] == ["A", "B", "A", "C"]
    assert calls == ["a", "b", "c"]
    memo("d")  # full: forgets, then remembers "d"
    assert len(memo) <= 3 and "d" in memo
    assert memo("a") == "A" and calls[-1] == "a"
    long_text = "x" * 513  # over the default 512: parsed, answered, not kept
    assert memo(long_text) == long_text.upper() and long_text not in memo
    assert memo(long_text) == long_text.upper() and calls[-2:] == [long_text, long_text]


def test_a_long_header_value_is_read_but_not_remembered() -> None:
    display = "d" * 600
    data = INVITE.replace(b'"Memo" <sip:memo', b'"' + display.encode() + b'" <sip:memo')
    request = parse(data)
    assert request.from_.display == display and request.from_tag == "from-memo-1"
    assert (request.headers.get("From") or "") not in NAME_ADDR_MEMO


def test_tag_and_branch_views_equal_the_copying_accessors() -> None:
    request = parse(INVITE)
    response = parse(_response_echoing(INVITE, "uas-tag"))
    for message in (request, response):
        assert message.from_tag == message.from_.tag
        assert message.to_tag == message.to.tag
        assert message.via_branch == message.top_via.branch
        assert message.from_uri == message.from_.uri and message.to_uri == message.to.uri
    assert (request.to_tag, response.to_tag) == (None, "uas-tag")
    assert getattr(request.to_uri, "user", None) == "0044123"
    # the views are the shared parse, not copies (what makes them cheap)
    assert request.to_uri is request.to_uri and request.from_uri is response.from_uri
    assert request.via_branch == "z9hG4bK-memo-1"
    no_branch = parse(INVITE.replace(b";branch=z9hG4bK-memo-1", b""))
    assert no_branch.via_branch is None
    request.headers.remove("From")
    with pytest.raises(SipParseError) as caught:
        _ = request.from_tag
    assert caught.value.status == 400


def _parse_or_error(parse: object, text: str) -> object:
    try:
        return [(str(via), via) for via in parse(text)]  # type: ignore[operator]
    except SipParseError as error:
        return (error.status, error.reason)


_MARK, _EXTRA = "zMARKz", "zEXTRAz"


@FAST
@given(st.data(), vias, tokens, tokens)
def test_a_via_read_by_its_shape_equals_its_parse(data: st.DataObject, via: Via, first: str,
                                                   second: str) -> None:
    """Two Via texts that differ only where the branch was (their shape the same): the second
    is answered from the first's parse with its own branch, and must equal what parsing it
    gives, or fail as parsing it does (mutated texts: quotes, commas, spaces, a second
    branch parameter and the like must keep the memo from taking the shape)."""
    via.params["branch"] = _MARK
    # a second branch parameter, or one inside quotes or another Via value, that reads as
    # the first text's branch in both texts
    extra = data.draw(st.sampled_from(["", f";branch={_EXTRA}", f';x="y;branch={_EXTRA} z"',
                                       f", SIP/2.0/UDP g;branch={_EXTRA}"]))
    marked = data.draw(_mutations(str(via) + extra)).replace(_EXTRA, first)
    texts = [marked.replace(_MARK, first), marked.replace(_MARK, second)]
    memo = ViaMemo()
    for text in texts:
        assert _parse_or_error(memo, text) == _parse_or_error(parse_vias, text)
        assert _parse_or_error(memo, text) == _parse_or_error(parse_vias, text)  # remembered
        # what the switch's received/rport stamp asks (vosapp/switch/core.py _stamp_via),
        # answered from the shape for the second text: as the pattern answers
        written = _WRITTEN_AS_PARSED_VIA.fullmatch(text) is not None
        assert memo.written_as_parsed(text) is written


@pytest.mark.parametrize(("template", "text", "branch"), [
    # the usual top Via: the shape is taken
    ("SIP/2.0/UDP 192.0.2.10:5061;branch=z9hG4bK-1;rport",
     "SIP/2.0/UDP 192.0.2.10:5061;branch=z9hG4bK-2;rport", "z9hG4bK-2"),
    # not taken: the last of two branch parameters wins, the first would be cut out
    ("SIP/2.0/UDP h;branch=z9hG4bK-1;branch=z9hG4bK-1",
     "SIP/2.0/UDP h;branch=z9hG4bK-2;branch=z9hG4bK-1", "z9hG4bK-1"),
    # not taken: ";branch=" inside a quoted value is not the branch parameter
    ('SIP/2.0/UDP h;x="a;branch=b1 c";branch=b1',
     'SIP/2.0/UDP h;x="a;branch=b2 c";branch=b1', "b1"),
    # not taken: two Via values on one line
    ("SIP/2.0/UDP h;branch=z9hG4bK-1, SIP/2.0/UDP g;branch=z9hG4bK-9",
     "SIP/2.0/UDP h;branch=z9hG4bK-2, SIP/2.0/UDP g;branch=z9hG4bK-9", "z9hG4bK-2"),
])
def test_the_shape_is_taken_only_where_it_answers_as_the_parser(template: str, text: str,
                                                                 branch: str) -> None:
    memo = ViaMemo()
    memo(template)
    answer = memo(text)
    assert answer == parse_vias(text) and answer[0].branch == branch
    assert [str(via) for via in answer] == [str(via) for via in parse_vias(text)]
    # the answers are new values: changing one leaves the template's parse as it was
    answer[0].params["branch"] = "changed"
    assert memo(template) == parse_vias(template)


def test_texts_read_by_their_shape_are_not_kept_and_answer_in_any_order() -> None:
    """A text read by its shape is a request's new branch: only the last one is held (its
    top Via and its stamp ask again while it is handled), the memo keeps none of them, and
    any text asked again after others, or first, still gets its own parse."""
    memo = ViaMemo()
    texts = [f"SIP/2.0/UDP 192.0.2.10:5061;branch=z9hG4bK-{n};rport" for n in range(4)]
    memo(texts[0])  # the shape's first text: parsed, and kept as any parsed text is
    for text in texts[1:] + texts[1:][::-1] + [texts[2], texts[2]]:
        assert memo(text) == parse_vias(text)
        assert memo.written_as_parsed(text) is True
    assert len(memo) == 1 and all(text not in memo for text in texts[1:])
    assert memo.written_as_parsed("SIP/2.0/udp h;branch=b") is False  # lower-case transport
    assert ViaMemo().written_as_parsed("") is False
    with pytest.raises(SipParseError):
        ViaMemo()("")  # the empty slot of a new memo answers nothing


def test_a_top_via_with_a_new_branch_is_read_from_its_shape() -> None:
    request = parse(INVITE)
    again = parse(INVITE.replace(b"z9hG4bK-memo-1", b"z9hG4bK-memo-2"))
    assert (request.via_branch, again.via_branch) == ("z9hG4bK-memo-1", "z9hG4bK-memo-2")
    assert again.top_via == Via("UDP", "192.0.2.10", 5061,
                                {"branch": "z9hG4bK-memo-2", "rport": None})
    assert "SIP/2.0/UDP 192.0.2.10:5061;branch=;rport" in VIAS_MEMO._shapes


def test_a_call_id_and_from_found_valid_are_known_to_the_next_message() -> None:
    """A REGISTER retried with credentials carries its Call-ID and From as the first one did:
    the parser remembers the texts it found valid (no second pattern match), never one it
    refused, and answers for a remembered text what it answered the first time."""
    first = parse(INVITE)
    call_id, from_text = first.headers.get("Call-ID"), first.headers.get("From")
    assert call_id in parser._VALID_CALL_IDS and from_text in parser._VALID_FROMS
    again = parse(INVITE.replace(b"CSeq: 1 INVITE", b"CSeq: 2 INVITE"))
    assert (again.call_id, again.from_tag) == (first.call_id, first.from_tag)
    good_from = b'From: "Memo" <sip:memo@192.0.2.10:5061>;tag=from-memo-1'
    for bad_line, good_line in ((b"Call-ID: bad call id", b"Call-ID: memo-call-1@192.0.2.10"),
                                (b"From: <sip:memo@>;tag=x", good_from)):
        for _ in range(2):
            with pytest.raises(SipParseError) as refused:
                parse(INVITE.replace(good_line, bad_line))
            assert refused.value.status == 400
        value = bad_line.partition(b": ")[2].decode()
        assert value not in parser._VALID_CALL_IDS and value not in parser._VALID_FROMS


# The parser now parses To, the top Via and CSeq in full where it used to try a fast regex
# first and parse only when that failed. Same answers, because every text a fast regex
# accepts the full parser accepts too (the CSeq with the same method).
_FAST_CSEQ = re.compile(rf"([0-9]{{1,9}})[ \t]+({parser._TOKEN})")
_NOISE = st.sampled_from(list(' \t;:,<>"@=[]/\\?%.-0123456789aZ\x7f') + ["sip:", "SIP/2.0/"])


def _mutations(value: str) -> st.SearchStrategy[str]:
    edits = st.lists(st.tuples(st.integers(0, len(value)), _NOISE, st.booleans()), max_size=3)

    def apply(changes: list[tuple[int, str, bool]]) -> str:
        text = value
        for at, noise, replace in changes:
            at = min(at, len(text))
            text = text[:at] + noise + text[at + (1 if replace else 0):]
        return text

    return edits.map(apply)


@FAST
@given(st.data(), name_addrs)
def test_a_to_the_fast_regex_accepts_parses_in_full(data: st.DataObject,
                                                    address: NameAddr) -> None:
    value = data.draw(_mutations(str(address)))
    if parser._FAST_NAME_ADDR.fullmatch(value):
        parse_name_addr(value)


@FAST
@given(st.data(), vias)
def test_a_via_the_fast_regex_accepts_parses_in_full(data: st.DataObject, via: Via) -> None:
    value = data.draw(_mutations(str(via)))
    if parser._FAST_VIA.fullmatch(value):
        parse_vias(value)


@FAST
@given(st.data(), st.integers(0, 2**31 + 5), tokens)
def test_a_cseq_the_fast_regex_accepts_parses_in_full(data: st.DataObject, number: int,
                                                      method: str) -> None:
    value = data.draw(_mutations(f"{number} {method}"))
    match = _FAST_CSEQ.fullmatch(value)
    if match:
        assert parse_cseq(value).method == match.group(2)


def _from_valid(text: str) -> bool:
    """The From check without memos: the name-addr regex, else the full parse."""
    if parser._FAST_NAME_ADDR.fullmatch(text) is not None:
        return True
    try:
        parse_name_addr(text)
    except SipParseError:
        return False
    return True


def _valid_from_answer(text: str) -> bool:
    try:
        return parser._valid_from(text)
    except SipParseError:
        return False


@FAST
@given(st.data(), name_addrs, tokens,
       st.text(TOKEN_CHARS + ' \t;"<>@=,\u00e9', min_size=0, max_size=6))
def test_a_from_known_by_its_shape_is_valid_as_the_parser_says(
        data: st.DataObject, addr: NameAddr, first: str, second: str) -> None:
    """Two From texts that differ only in the tag value: once the first is found valid, the
    second may be answered from its shape (vosapp.sip.parser.tag_span), and must be valid or
    refused exactly as the regex and the parser say (mutated texts: quotes, a second tag, a
    tag inside the URI, spaces, values that are no tokens)."""
    addr.params.pop("tag", None)
    marked = data.draw(_mutations(f"{addr};tag={_MARK}"))
    texts = [marked.replace(_MARK, first), marked.replace(_MARK, second)]
    NAME_ADDR_MEMO._results.clear()
    parser._VALID_FROM_SHAPES.clear()
    for text in texts:
        assert _valid_from_answer(text) is _from_valid(text), text


def test_a_new_from_tag_is_known_by_its_shape() -> None:
    for memo in (parser._VALID_FROMS._results, NAME_ADDR_MEMO._results,
                 parser._VALID_FROM_SHAPES):
        memo.clear()
    first = parse(INVITE)
    assert first.from_tag is not None
    shape = '"Memo" <sip:memo@192.0.2.10:5061>;tag='
    assert [key for key in parser._VALID_FROM_SHAPES if key.startswith('"Memo"')] == [shape]
    again = parse(INVITE.replace(first.from_tag.encode(), b"another-tag-2"))
    assert again.from_tag == "another-tag-2" and again.from_uri == first.from_uri
