"""Parsing SIP messages from bytes: whole datagrams (:func:`parse`) and TCP streams
(:class:`StreamParser`), RFC 3261 §7 and §18.3.

The hot path splits the header block into (key, name, value, source) fields and validates only
what a server needs to answer safely (start line, Via, From, To, Call-ID, CSeq, Max-Forwards,
Content-Length, request Contact); other values stay text until a typed accessor asks.
Every failure is a :class:`SipParseError` carrying the status to answer and the headers parsed
so far.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final, NoReturn

from vosapp.sip.headers import (
    CSEQ_MEMO,
    MEMO_LIMIT,
    MEMO_LONGEST,
    NAME_ADDR_LIST_MEMO,
    NAME_ADDR_MEMO,
    VIAS_MEMO,
    HeaderField,
    HeaderMemo,
    Headers,
    canonical_key,
    is_token,
    keep_bounded,
    scan_in_c,
)
from vosapp.sip.message import Request, Response, _as_bytes
from vosapp.sip.uri import AbsoluteUri, SipParseError, parse_any_uri

__all__ = ["MAX_MESSAGE_SIZE", "SUPPORTED_URI_SCHEMES", "StreamParser", "parse"]

MAX_MESSAGE_SIZE: Final = 65536
"""Largest message accepted (bytes). UDP cannot carry more (RFC 3261 §18.1.1 / IP limit)."""

# Request-URI schemes the switch serves; anything else is 416 (RFC 3261 §8.2.2.1), answered
# by the core: the parser accepts any well-formed absolute URI (RFC 4475 §3.2.2, §3.2.3).
SUPPORTED_URI_SCHEMES: Final = frozenset({"sip", "sips", "tel"})

_SINGLE: Final = frozenset({"from", "to", "call-id", "cseq", "max-forwards", "content-length"})
#: Max-Forwards values as they are usually written (0-255 without leading zeros): valid
#: without the checks and the int() the others get (~1,500 instructions a request).
_USUAL_MAX_FORWARDS: Final = frozenset(str(hops) for hops in range(256))
_VERSION_RE: Final = re.compile(r"SIP/\d+\.\d+", re.IGNORECASE)
#: The methods of RFC 3261 and its extensions, tokens all: a request line's method found here
#: needs no regex pass (is_token's fullmatch cost ~1,900 instructions a request).
_TOKEN_METHODS: Final = frozenset({
    "INVITE", "ACK", "BYE", "CANCEL", "REGISTER", "OPTIONS", "PRACK", "UPDATE", "INFO",
    "SUBSCRIBE", "NOTIFY", "REFER", "MESSAGE", "PUBLISH"})
_CALL_ID_RE: Final = re.compile(r"[A-Za-z0-9\-.!%*_+`'~()<>:\\\"/\[\]?{}]+"
                         r"(?:@[A-Za-z0-9\-.!%*_+`'~()<>:\\\"/\[\]?{}]+)?")
# Header names already seen to be tokens → their lookup key (bounded; names repeat a lot).
_KEY_CACHE: Final[dict[str, str]] = {}


def _key_of(name: str, headers_so_far: list[HeaderField]) -> str:
    key = _KEY_CACHE.get(name)
    if key is not None:
        return key
    if not is_token(name):
        raise SipParseError(400, f"bad header name {name!r}",
                            Headers._from_parsed(headers_so_far) if headers_so_far else None)
    key = canonical_key(name)
    if len(_KEY_CACHE) < 4096:
        _KEY_CACHE[name] = key
    return key


def _split_head(data: bytes) -> tuple[str, bytes]:
    start = 0
    n = len(data)
    # §7.5: CRLFs before the start line are ignored (keep-alives, stream leftovers).
    while start < n and data[start] in (13, 10):
        start += 1
    end = data.find(b"\r\n\r\n", start)
    if end < 0:
        # Be robust on datagrams that lose the final empty line (RFC 4475 baddn.dat ends so):
        # headers ending in CRLF with nothing after them are a message without body.
        if data.endswith(b"\r\n") and n - start > 2:
            return data[start:-2].decode("utf-8", "surrogateescape"), b""
        raise SipParseError(400, "no empty line ends the header block")
    return data[start:end].decode("utf-8", "surrogateescape"), data[end + 4:]


#: The header block split into its start line and fields in C (vosapp/sip/_scan.c), when
#: every line has the common shape (a colon, a name the key cache holds, no lone CR or LF);
#: the same result as the split, the CR/LF check and _parse_fields below, which decide
#: everything else (tests/sip/test_scan.py).
_HEAD_IN_C: Final[Callable[[str, dict[str, str]], tuple[str, list[HeaderField]] | None]
                  | None] = scan_in_c("head_fields")


def _parse_fields(lines: list[str]) -> list[HeaderField]:
    """Split header lines into [key, name, value, source] fields (fast path, no folding)."""
    fields: list[HeaderField] = []
    append = fields.append
    cache = _KEY_CACHE
    for line in lines:
        name, colon, value = line.partition(":")
        key = cache.get(name)
        if key is None or not colon:
            if not colon or not line or line[0] in " \t":
                return _parse_fields_slow(lines)
            name = name.rstrip(" \t")
            key = _key_of(name, fields)
        append([key, name, value.strip(" \t"), line])
    return fields


def _parse_fields_slow(lines: list[str]) -> list[HeaderField]:
    fields: list[HeaderField] = []
    last: HeaderField | None = None
    for line in lines:
        if not line:
            continue
        first = line[0]
        if first == " " or first == "\t":
            # Line folding (§7.3.1): continuation joins the previous value with one SP.
            if last is None:
                raise SipParseError(400, "header block starts with a continuation line")
            continuation = line.strip(" \t")
            last[2] = f"{last[2]} {continuation}" if last[2] else continuation
            last[3] = f"{last[3]}\r\n{line}"
            continue
        name, colon, value = line.partition(":")
        if not colon:
            raise SipParseError(400, f"header line without ':' {line[:60]!r}",
                                Headers._from_parsed(fields) if fields else None)
        name = name.rstrip(" \t")
        last = [_key_of(name, fields), name, value.strip(" \t"), line]
        fields.append(last)
    return fields


# Fast validators: each accepts a strict subset of what the full grammar functions accept, so
# common values are checked by one regex match; anything else goes through the full parser,
# which either accepts it or raises the precise error.
# Every repeat is possessive or atomic (``*+``, ``++``, ``(?>...)``): what follows each one can
# never start with a character it could have taken (a host label ends before "." or ":", a
# user part before "@"), so giving characters back could not find another match. Without the
# backtracking the matches cost 30-45 % less (docs/benchmarks.md, twentieth round);
# tests/sip/test_fast_patterns.py checks they accept exactly what the backtracking ones did.
# A run of plain characters is one repeat (``[...]++``), not one alternation per character.
_TOKEN: Final = r"[A-Za-z0-9\-.!%*_+`'~]++"
_QUOTED: Final = r'"(?:[^"\\\r\n]++|\\[^\r\n])*+"'
# 0-65535: the first alternative that fits, kept (atomic); a digit after it means a longer
# number, which no shorter choice could have made valid
_PORT: Final = r"(?>6553[0-5]|655[0-2]\d|65[0-4]\d\d|6[0-4]\d{3}|[1-5]\d{4}|\d{1,4})(?!\d)"
# a label: letters and digits, inner hyphens (RFC 3261 §25.1 domainlabel)
_LABEL: Final = r"[A-Za-z0-9]++(?:-++[A-Za-z0-9]++)*+"
_HOSTNAME: Final = rf"{_LABEL}(?:\.{_LABEL})*+\.?"
_HOST: Final = rf"(?:{_HOSTNAME}|\[[0-9A-Fa-f.]*+:[0-9A-Fa-f:.]*+\])"
_PCHARS: Final = r"(?:[A-Za-z0-9\-_.!~*'()\[\]/:&+$]++|%[0-9A-Fa-f]{2})++"
_URI_PARAMS: Final = rf"(?:;{_PCHARS}(?:={_PCHARS})?)*+"
_USER: Final = r"(?:[A-Za-z0-9\-_.!~*'()&=+$]++|%[0-9A-Fa-f]{2})++"
_HDR_PARAMS: Final = (rf"(?:[ \t]*+;[ \t]*+{_TOKEN}(?:[ \t]*+=[ \t]*+(?:{_TOKEN}|{_QUOTED}"
               r"|\[[0-9A-Fa-f:.]++\]))?)*+[ \t]*+")
_FAST_NAME_ADDR: Final = re.compile(
    rf"(?:(?:{_QUOTED}[ \t]*+|(?:{_TOKEN}[ \t]++)*+(?:{_TOKEN}[ \t]*+)?)"
    rf"<sips?:(?:{_USER}@)?{_HOST}(?::{_PORT})?{_URI_PARAMS}>"
    rf"|sips?:(?:{_USER}@)?{_HOST}(?::{_PORT})?){_HDR_PARAMS}")
_FAST_SIP_URI: Final = re.compile(rf"sips?:(?:{_USER}@)?{_HOST}(?::{_PORT})?{_URI_PARAMS}")
_FAST_VIA: Final = re.compile(rf"SIP/2\.0/{_TOKEN}[ \t]++{_HOST}(?::{_PORT})?{_HDR_PARAMS}")


def _valid_call_id(text: str) -> bool:
    if not (_CALL_ID_IN_C(text) if _CALL_ID_IN_C is not None
            else _CALL_ID_RE.fullmatch(text) is not None):
        raise SipParseError(400, f"bad Call-ID {text!r}")
    return True


# The value of a From or To text's ``;tag=`` parameter when the text can be known by its
# shape (tag_span says where).
_TAG_VALUE_RE: Final = re.compile(r";tag=([A-Za-z0-9\-.!%*_+`'~]++)(?=;|\Z)")


def tag_span(text: str) -> tuple[int, int] | None:
    """Where the tag value of a From or To text is, when the text can be known by its shape:
    a ``;tag=`` after the text's last ``>`` (the name-addr's end), the only one there, with
    no ``"`` after that ``>``, its value a token ended by ``;`` or the text's end. None
    otherwise. In a valid text those say the value is the tag parameter's, a token among
    plain header parameters: another token in its place parses the same (RFC 3261 §25.1
    from-param, generic-param). vosapp.sip._scan.tag_span is held to it
    (tests/sip/test_scan.py)."""
    close = text.rfind(">")
    if close < 0 or text.find('"', close) >= 0:
        return None
    at = text.find(";tag=", close)
    if at < 0 or text.find(";tag=", at + 1) >= 0:
        return None
    found = _TAG_VALUE_RE.match(text, at)
    return found.span(1) if found is not None else None


#: _CALL_ID_RE's fullmatch as a bool, in C (vosapp/sip/_scan.c): a new Call-ID's regex
#: pass cost ~2,600 instructions (docs/benchmarks.md, forty-first round).
_CALL_ID_IN_C: Final[Callable[[str], bool] | None] = scan_in_c("call_id_ok")
#: tag_span in C: the same spans (tests/sip/test_scan.py).
_TAG_SPAN_IN_C: Final[Callable[[str], tuple[int, int] | None] | None] = scan_in_c("tag_span")
#: The shapes (the text with its tag value cut out) of From texts found valid. A From's tag
#: is new in every dialog and every REGISTER's Call-ID (RFC 3261 §8.1.1.3), the rest of it is
#: the same in each one a client sends: a text whose shape was valid is valid (tag_span), and
#: the name-addr regex, ~7,300 instructions a new From, is not run again (docs/benchmarks.md,
#: forty-first round).
_VALID_FROM_SHAPES: Final[dict[str, bool]] = {}


def _valid_from(text: str) -> bool:
    if text in NAME_ADDR_MEMO:
        return True
    shape = ""
    if len(text) <= MEMO_LONGEST:
        span = _TAG_SPAN_IN_C(text) if _TAG_SPAN_IN_C is not None else tag_span(text)
        if span is not None:
            shape = text[:span[0]] + text[span[1]:]
            if shape in _VALID_FROM_SHAPES:
                return True
    if _FAST_NAME_ADDR.fullmatch(text) is None:
        NAME_ADDR_MEMO.parsed(text)  # the full parse: raises when the text is malformed
    if shape:
        keep_bounded(_VALID_FROM_SHAPES, shape, True, MEMO_LIMIT)
    return True


# Call-ID and From texts found valid, so that the next message carrying the same text is not
# matched again: a REGISTER retried with credentials keeps its Call-ID and From tag (RFC 3261
# §8.1.3.5, §22.2), a phone keeps its Call-ID for every refresh (§10.2), and a call's every
# message and response carries its Call-ID. A text that fails raises and is not kept.
_VALID_CALL_IDS: Final = HeaderMemo(_valid_call_id)
_VALID_FROMS: Final = HeaderMemo(_valid_from)


def _check_head(fields: list[HeaderField], headers: Headers, method: str | None) -> None:
    """Validate what a server needs to answer safely (RFC 3261 §8.2, RFC 4475 §3.1.2)."""
    first: dict[str, str] = {}
    vias: list[str] = []
    contacts: list[str] = []
    for entry in fields:
        key = entry[0]
        if key == "via":
            vias.append(entry[2])
        elif key == "contact":
            contacts.append(entry[2])
        elif key not in first:
            first[key] = entry[2]
        elif key in _SINGLE:
            raise SipParseError(400, f"more than one {entry[1]} header", headers)
    if not vias:
        raise SipParseError(400, "missing mandatory Via header", headers)
    # The first-value index of Headers.get, built here for free (the accessors use it).
    first["via"] = vias[0]
    if contacts:
        first["contact"] = contacts[0]
    headers._first = first
    # (four tests, not a loop over a tuple: compiled, the tuple was built for every message)
    if "from" not in first or "to" not in first or "call-id" not in first \
            or "cseq" not in first:
        missing = next(key for key in ("from", "to", "call-id", "cseq") if key not in first)
        raise SipParseError(400, f"missing mandatory {missing} header", headers)
    # CSeq, To and the top Via are read for every message (transaction and dialog matching):
    # parsed here through the memo, once, rather than checked by a regex and parsed later.
    # The fast regexes accept a subset of what the parsers do, so nothing else changes.
    cseq_method = CSEQ_MEMO.parsed(first["cseq"]).method
    if method is not None and cseq_method != method:
        raise SipParseError(400, f"CSeq method {cseq_method} does not match {method}", headers)
    try:
        _VALID_CALL_IDS.parsed(first["call-id"])
        # To and the top Via in full (above). From and any further Via lines: a text the
        # memo holds has parsed before (valid, no regex pass); else the fast check, and the
        # full parser (remembered) when that says nothing.
        _VALID_FROMS.parsed(first["from"])
        NAME_ADDR_MEMO.parsed(first["to"])
        VIAS_MEMO.parsed(vias[0])
        for value in vias[1:]:
            if value not in VIAS_MEMO and _FAST_VIA.fullmatch(value) is None:
                VIAS_MEMO.parsed(value)
        if method is not None:
            # a phone's Contact is the same in each REGISTER: remembered by the accessor
            for value in contacts:
                if value != "*" and value not in NAME_ADDR_LIST_MEMO \
                        and _FAST_NAME_ADDR.fullmatch(value) is None:
                    NAME_ADDR_LIST_MEMO.parsed(value)
    except SipParseError as error:
        raise SipParseError(error.status, error.reason, headers) from None
    max_forwards = first.get("max-forwards")
    if max_forwards is not None and max_forwards not in _USUAL_MAX_FORWARDS and (
            not max_forwards.isdigit() or not max_forwards.isascii()
            or len(max_forwards.lstrip("0")) > 3 or int(max_forwards) > 255):
        raise SipParseError(400, f"Max-Forwards must be 0-255, got {max_forwards!r}", headers)


# Request-URIs found valid, by text, with their scheme: a registrar's URI is in every REGISTER
# and a gateway's in every INVITE sent to it (bounded as the header memos are).
_REQUEST_URI_SCHEMES: Final[dict[str, str]] = {}


def _request_uri_scheme(uri_text: str, headers: Headers) -> str:
    """The scheme of a Request-URI not remembered, once it is found valid."""
    if _FAST_SIP_URI.fullmatch(uri_text):
        scheme = "sips" if uri_text[3] == "s" else "sip"
    else:
        try:
            uri = parse_any_uri(uri_text)
        except SipParseError as error:
            raise SipParseError(error.status, error.reason, headers) from None
        if not isinstance(uri, AbsoluteUri) and uri.headers:
            # §19.1.1 table: URI headers are not allowed in a Request-URI.
            raise SipParseError(400, "headers in the Request-URI", headers)
        scheme = uri.scheme
    if len(uri_text) <= MEMO_LONGEST:
        keep_bounded(_REQUEST_URI_SCHEMES, uri_text, scheme, MEMO_LIMIT)
    return scheme


def parse(data: bytes, *, max_size: int = MAX_MESSAGE_SIZE,
          uri_schemes: frozenset[str] | None = None) -> Request | Response:
    """Parse one SIP message from a datagram (or a framed stream message).

    Body framing follows §18.3 for datagrams: with Content-Length the body is that many bytes
    (extra bytes are discarded, fewer is an error); without it, the rest of the datagram.
    Raises :class:`SipParseError` with the status to answer: 400 malformed, 413 body too large,
    416 unsupported Request-URI scheme, 505 unsupported SIP version, 513 message too large.
    ``uri_schemes`` lists the Request-URI schemes served (lower case); None (the default)
    accepts any syntactically valid absolute URI, kept as an :class:`AbsoluteUri` (scheme and
    raw text): RFC 4475 §3.2.2/§3.2.3 want such a message parsed, then answered 416.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"parse() needs bytes, got {type(data).__name__}")
    data = _as_bytes(data)
    too_large = len(data) > max_size
    try:
        head, rest = _split_head(data[: max_size + 1] if too_large else data)
    except SipParseError:
        if too_large:
            raise SipParseError(513, f"message of {len(data)} bytes exceeds {max_size}") from None
        raise
    scanned = _HEAD_IN_C(head, _KEY_CACHE) if _HEAD_IN_C is not None else None
    if scanned is not None:
        start_line, fields = scanned
    else:
        lines = head.split("\r\n")
        for line in lines:
            # A bare CR or LF would let two parsers disagree on where a line ends. (A search
            # of each line is a memchr; counting both characters over the block cost 3x as
            # much.)
            if "\r" in line or "\n" in line:
                raise SipParseError(400, "bare CR or LF in the header block")
        start_line = lines[0]
        del lines[0]
        fields = _parse_fields(lines)
    headers = Headers._from_parsed(fields)

    message: Request | Response
    if start_line.startswith("SIP/"):
        version, _, status_reason = start_line.partition(" ")
        status_text, _, reason = status_reason.partition(" ")
        if version != "SIP/2.0":
            raise SipParseError(505, f"unsupported version {version!r}", headers)
        if len(status_text) != 3 or not status_text.isdigit() or not status_text.isascii() \
                or not 100 <= int(status_text) <= 699:
            raise SipParseError(400, f"bad status code {status_text[:20]!r}", headers)
        _check_head(fields, headers, None)
        message = Response(int(status_text), reason, headers)
    else:
        parts = start_line.split(" ")
        if len(parts) != 3 or not all(parts):
            if len(parts) >= 3 and _VERSION_RE.fullmatch(parts[-1]) and \
                    parts[-1].upper() != "SIP/2.0":
                raise SipParseError(505, f"unsupported version {parts[-1]!r}", headers)
            raise SipParseError(400, f"malformed request line {start_line[:80]!r}", headers)
        method, uri_text, version = parts
        # The ABNF literal "SIP" is case-insensitive (RFC 5234 §2.3); we always send upper case.
        if version != "SIP/2.0" and version.upper() != "SIP/2.0":
            if _VERSION_RE.fullmatch(version) and version.upper() != "SIP/2.0":
                raise SipParseError(505, f"unsupported version {version!r}", headers)
            raise SipParseError(400, f"bad version {version!r}", headers)
        if method not in _TOKEN_METHODS and not is_token(method):
            raise SipParseError(400, f"bad method {method!r}", headers)
        scheme = _REQUEST_URI_SCHEMES.get(uri_text)
        if scheme is None:
            scheme = _request_uri_scheme(uri_text, headers)
        if uri_schemes is not None and scheme not in uri_schemes:
            raise SipParseError(416, f"unsupported URI scheme {scheme!r}", headers)
        _check_head(fields, headers, method)
        message = Request._from_wire(method, uri_text, headers)

    length_text = headers.get("content-length")
    if length_text is None:
        body = rest
    else:
        if not length_text.isdigit() or not length_text.isascii():
            raise SipParseError(400, f"bad Content-Length {length_text!r}", headers)
        length = int(length_text)
        if length > max_size:
            raise SipParseError(413, f"body of {length} bytes is too large", headers)
        if length > len(rest):
            if too_large:
                raise SipParseError(513, f"message exceeds {max_size} bytes", headers)
            raise SipParseError(400, f"Content-Length {length} exceeds the {len(rest)} "
                                "bytes received", headers)
        body = rest[:length]
    if too_large:
        raise SipParseError(513, f"message exceeds {max_size} bytes", headers)
    message.body = body
    return message


_CONTENT_LENGTH_RE: Final = re.compile(rb"\r\n(?:content-length|l)[ \t]*:[ \t]*([^\r]*)", re.IGNORECASE)


class StreamParser:
    """Frames SIP messages out of a TCP byte stream by Content-Length (RFC 3261 §18.3).

    ``feed(data)`` returns the messages completed so far. CRLFs between messages (keep-alives,
    RFC 5626 §3.5.1) are skipped. A message without Content-Length, a header block or body over
    ``max_size``, or an unreadable Content-Length leaves the stream unframed: ``feed`` raises
    :class:`SipParseError` and :attr:`broken` becomes True (close the connection). A well-framed
    message that fails to parse raises too, but the stream stays usable; messages completed
    before it in the same call are returned by the next ``feed`` (``feed(b"")`` works).
    """

    def __init__(self, *, max_size: int = MAX_MESSAGE_SIZE) -> None:
        self._buffer = bytearray()
        self._pending: list[Request | Response] = []
        self.max_size = max_size
        self.broken = False

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a complete message."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Request | Response]:
        if self.broken:
            raise SipParseError(400, "stream already unframed by an earlier error")
        buffer = self._buffer
        buffer += data
        out = self._pending
        self._pending = []
        while True:
            skip = 0
            while skip < len(buffer) and buffer[skip] in (13, 10):
                skip += 1
            if skip:
                del buffer[:skip]
            if not buffer:
                break
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > self.max_size:
                    self._break(513, "header block exceeds the message size limit", out)
                break
            head = bytes(buffer[:end + 2])
            match = _CONTENT_LENGTH_RE.search(head)
            if match is None:
                self._break(400, "message on a stream without Content-Length", out)
            length_text = match.group(1).strip()
            if not length_text.isdigit():
                self._break(400, f"bad Content-Length {length_text!r} on a stream", out)
            total = end + 4 + int(length_text)
            if total > self.max_size:
                self._break(513, f"message of {total} bytes exceeds {self.max_size}", out)
            if len(buffer) < total:
                break
            raw = bytes(buffer[:total])
            del buffer[:total]
            try:
                out.append(parse(raw, max_size=self.max_size))
            except SipParseError:
                self._pending = out
                raise
        return out

    def _break(self, status: int, reason: str, done: list[Request | Response]) -> NoReturn:
        self.broken = True
        self._pending = done
        self._buffer.clear()
        raise SipParseError(status, reason)
