"""Property tests (hypothesis): generated messages round-trip through bytes; arbitrary and
mutated bytes never raise anything but SipParseError, in datagrams or on a stream."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vosapp.sip import (
    NameAddr,
    Request,
    Response,
    SipParseError,
    SipUri,
    StreamParser,
    Via,
    make_response,
    parse,
)

CORPUS = [p.read_bytes() for p in sorted((Path(__file__).parent / "rfc4475").glob("*.dat"))]
FAST = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])

TOKEN_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~"
tokens = st.text(TOKEN_CHARS, min_size=1, max_size=12)
labels = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8)
hostnames = st.lists(labels, min_size=1, max_size=3).map(".".join)
ipv4 = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t)))
ipv6 = st.lists(st.integers(0, 0xFFFF), min_size=8, max_size=8).map(
    lambda xs: ":".join(f"{x:x}" for x in xs))
hosts = st.one_of(hostnames, ipv4, ipv6)
ports = st.none() | st.integers(1, 65535)
# Users may hold anything: the URI escapes what the grammar does not allow.
users = st.none() | st.text(st.characters(blacklist_categories=["Cs"]), min_size=1,
                            max_size=10)
uri_params = st.dictionaries(st.text("abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=6),
                             st.none() | tokens.filter(lambda s: "%" not in s
                                                       and "`" not in s), max_size=3)
sip_uris = st.builds(SipUri, host=hosts, user=users, port=ports, params=uri_params,
                     scheme=st.sampled_from(["sip", "sips"]))
displays = st.none() | st.text(st.characters(blacklist_categories=["Cs", "Cc"]), max_size=15)
header_params = st.dictionaries(st.text("abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=6)
                                .filter(lambda s: s != "tag"),
                                st.none() | tokens, max_size=3)
name_addrs = st.builds(NameAddr, uri=sip_uris, display=displays, params=header_params)
vias = st.builds(Via, transport=st.sampled_from(["UDP", "TCP", "TLS", "SCTP"]), host=hosts,
                 port=ports, params=st.fixed_dictionaries(
                     {"branch": tokens.map(lambda t: "z9hG4bK" + t)},
                     optional={"rport": st.none(), "received": ipv4}))
values = st.text(st.characters(blacklist_categories=["Cs", "Cc"]), max_size=30).map(
    lambda s: s.strip(" \t"))
extra_headers = st.lists(st.tuples(tokens.map(lambda t: "X-" + t), values), max_size=5)
bodies = st.binary(max_size=200)


@st.composite
def requests(draw: st.DrawFn) -> Request:
    method = draw(st.sampled_from(["INVITE", "REGISTER", "OPTIONS", "BYE", "MESSAGE"]) | tokens)
    body = draw(bodies)
    from_ = draw(name_addrs)
    from_.tag = draw(tokens)
    return Request.build(
        method, draw(sip_uris), via=draw(st.lists(vias, min_size=1, max_size=3)),
        from_=from_, to=draw(name_addrs), call_id=draw(tokens),
        cseq=draw(st.integers(0, 2**31 - 1)),
        contact=draw(st.none() | st.lists(name_addrs, min_size=1, max_size=2)),
        max_forwards=draw(st.integers(0, 255)), headers=draw(extra_headers), body=body,
        content_type="application/octet-stream" if body else None)


@FAST
@given(requests())
def test_generated_requests_round_trip(request: Request) -> None:
    wire = bytes(request)
    parsed = parse(wire)
    assert isinstance(parsed, Request)
    assert parsed == request
    assert bytes(parsed) == wire
    # The typed values survive too.
    assert parsed.from_ == request.from_
    assert parsed.to == request.to
    assert parsed.vias == request.vias
    assert parsed.contacts == request.contacts
    assert parsed.uri == request.uri


@FAST
@given(requests(), st.integers(100, 699), tokens)
def test_responses_round_trip(request: Request, status: int, tag: str) -> None:
    response = make_response(request, status, to_tag=tag)
    parsed = parse(bytes(response))
    assert isinstance(parsed, Response)
    assert parsed == response and parsed.to.tag == (request.to.tag or tag)


def parse_or_error(data: bytes) -> None:
    try:
        message = parse(data)
    except SipParseError as error:
        assert 400 <= error.status <= 599
        return
    # Whatever parses serializes and parses again to the same message.
    assert parse(bytes(message)) == message


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_only_raise_sip_parse_error(data: bytes) -> None:
    parse_or_error(data)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(CORPUS), st.lists(st.tuples(st.integers(0, 10_000),
                                                   st.binary(max_size=4),
                                                   st.integers(0, 4)), max_size=4))
def test_mutated_torture_messages_only_raise_sip_parse_error(
        data: bytes, edits: list[tuple[int, bytes, int]]) -> None:
    mutated = bytearray(data)
    for position, insert, delete in edits:
        position %= len(mutated) + 1
        mutated[position:position + delete] = insert
    parse_or_error(bytes(mutated))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(CORPUS) | st.binary(max_size=50), max_size=4),
       st.integers(1, 64))
def test_stream_parser_only_raises_sip_parse_error(chunks: list[bytes], size: int) -> None:
    stream = StreamParser(max_size=4096)
    wire = b"".join(chunks)
    for i in range(0, len(wire), size):
        try:
            stream.feed(wire[i:i + size])
        except SipParseError:
            if stream.broken:
                return


def random_case(draw: st.DrawFn, name: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(name), max_size=len(name)))
    return "".join(c.upper() if f else c.lower() for c, f in zip(name, flips, strict=True))


@st.composite
def formatted_fields(draw: st.DrawFn, long: str, compact: str | None, value: str) -> str:
    """One header line in any legal spelling: long or compact name in any case, LWS before
    and after the colon, the value possibly folded at a space (RFC 3261 §7.3.1)."""
    name = draw(st.sampled_from([long, compact] if compact else [long]))
    name = random_case(draw, name)
    before = draw(st.sampled_from(["", " ", "\t", "  "]))
    after = draw(st.sampled_from(["", " ", "  ", "\t"]))
    head, space, tail = value.partition(" ")
    if space and head and tail and tail[0] not in " \t" and draw(st.booleans()):
        # Folding turns CRLF + LWS into one SP: fold only where the value has exactly one.
        value = f"{head}\r\n{draw(st.sampled_from([' ', '  ', chr(9)]))}{tail}"
    return f"{name}{before}:{after}{value}"


@FAST
@given(st.data(), requests())
def test_any_legal_spelling_parses_to_the_same_values_and_bytes(data: st.DataObject,
                                                                built: Request) -> None:
    names = {"via": ("Via", "v"), "from": ("From", "f"), "to": ("To", "t"),
             "call-id": ("Call-ID", "i"), "cseq": ("CSeq", None),
             "max-forwards": ("Max-Forwards", None), "contact": ("Contact", "m"),
             "content-type": ("Content-Type", "c"), "content-length": ("Content-Length", "l")}
    lines = [f"{built.method} {built.uri} SIP/2.0"]
    for key, _name, value, _raw in built.headers._fields:
        long, compact = names.get(key, (_name, None))  # type: ignore[arg-type]
        lines.append(data.draw(formatted_fields(long, compact, value)))  # type: ignore[arg-type]
    lines.append(data.draw(formatted_fields("Content-Length", "l", str(len(built.body)))))
    wire = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape") + built.body
    parsed = parse(wire)
    assert isinstance(parsed, Request)
    assert parsed == built  # same values whatever the spelling
    assert bytes(parsed) == wire  # and forwarded byte-for-byte
