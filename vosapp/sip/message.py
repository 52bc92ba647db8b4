"""SIP requests and responses (RFC 3261 §7), their typed accessors, and builders.

A message is a start line, a :class:`~vosapp.sip.headers.Headers` collection and a body (bytes).
``bytes(message)`` serializes it: untouched header lines come out byte-for-byte as received and
Content-Length is rewritten to match the body (added when missing).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Final

from vosapp.sip.entropy import token_hex
from vosapp.sip.headers import (
    CSEQ_MEMO,
    NAME_ADDR_LIST_MEMO,
    NAME_ADDR_MEMO,
    VIAS_MEMO,
    CSeq,
    HeaderField,
    Headers,
    NameAddr,
    Via,
    scan_in_c,
)
from vosapp.sip.uri import AbsoluteUri, SipParseError, SipUri, parse_any_uri

__all__ = [
    "REASON_PHRASES",
    "Message",
    "Request",
    "Response",
    "make_response",
    "new_branch",
    "new_call_id",
    "new_tag",
]

SIP_VERSION: Final = "SIP/2.0"

# RFC 3261 §21 plus the extension codes a softswitch meets (RFC 3265, 3329, 4028, 4412, 6665).
REASON_PHRASES: Final[dict[int, str]] = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
    183: "Session Progress", 199: "Early Dialog Terminated",
    200: "OK", 202: "Accepted", 204: "No Notification",
    300: "Multiple Choices", 301: "Moved Permanently", 302: "Moved Temporarily",
    305: "Use Proxy", 380: "Alternative Service",
    400: "Bad Request", 401: "Unauthorized", 402: "Payment Required", 403: "Forbidden",
    404: "Not Found", 405: "Method Not Allowed", 406: "Not Acceptable",
    407: "Proxy Authentication Required", 408: "Request Timeout", 410: "Gone",
    412: "Conditional Request Failed", 413: "Request Entity Too Large",
    414: "Request-URI Too Long", 415: "Unsupported Media Type",
    416: "Unsupported URI Scheme", 417: "Unknown Resource-Priority", 420: "Bad Extension",
    421: "Extension Required", 422: "Session Interval Too Small", 423: "Interval Too Brief",
    428: "Use Identity Header", 429: "Provide Referrer Identity", 433: "Anonymity Disallowed",
    480: "Temporarily Unavailable", 481: "Call/Transaction Does Not Exist",
    482: "Loop Detected", 483: "Too Many Hops", 484: "Address Incomplete", 485: "Ambiguous",
    486: "Busy Here", 487: "Request Terminated", 488: "Not Acceptable Here",
    489: "Bad Event", 491: "Request Pending", 493: "Undecipherable",
    494: "Security Agreement Required",
    500: "Server Internal Error", 501: "Not Implemented", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Server Time-out", 505: "Version Not Supported",
    513: "Message Too Large", 580: "Precondition Failure",
    600: "Busy Everywhere", 603: "Decline", 604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
}


def reason_phrase(status: int) -> str:
    """The standard reason phrase of ``status`` (a generic one for unknown codes)."""
    phrase = REASON_PHRASES.get(status)
    if phrase is not None:
        return phrase
    return {1: "Progress", 2: "Success", 3: "Redirection", 4: "Client Error",
            5: "Server Error", 6: "Global Failure"}.get(status // 100, "Unknown")


def new_branch() -> str:
    """A fresh Via branch with the RFC 3261 §8.1.1.7 magic cookie ``z9hG4bK``."""
    return "z9hG4bK" + token_hex(10)


def new_tag() -> str:
    """A fresh From/To tag with at least 32 bits of randomness (§19.3)."""
    return token_hex(6)


def new_call_id(host: str | None = None) -> str:
    """A fresh globally unique Call-ID (§8.1.1.4), optionally ``random@host``."""
    value = token_hex(12)
    return f"{value}@{host}" if host else value


#: Messages written in C (vosapp/sip/_scan.c) when every text is ASCII, byte for byte what
#: Message._write writes (docs/benchmarks.md, thirty-seventh round).
_WRITE_IN_C: Final[Callable[[str, list[HeaderField], bytes], bytes | None] | None] = \
    scan_in_c("message_bytes")


def _as_bytes(data: bytes | bytearray | memoryview) -> bytes:
    """``data`` as bytes: itself when it is (bytes() of bytes is a call of the type,
    ~600 instructions, for every message built)."""
    return data if type(data) is bytes else bytes(data)


class Message:
    """Common part of :class:`Request` and :class:`Response`."""

    headers: Headers
    body: bytes

    def _start_line(self) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    # -- serialization ----------------------------------------------------------------------
    def __bytes__(self) -> bytes:
        body = self.body
        if _WRITE_IN_C is not None:
            written = _WRITE_IN_C(self._start_line(), self.headers._fields, body)
            if written is not None:
                return written
        return self._write(body)

    def _write(self, body: bytes) -> bytes:
        """:meth:`__bytes__` in Python: any text, and the reference the C writer is held to
        (tests/sip/test_scan.py)."""
        length = str(len(body))
        lines = [self._start_line()]
        seen_length = False
        for key, name, value, raw in self.headers._fields:
            if key == "content-length":
                if seen_length:
                    continue
                seen_length = True
                if value != length:
                    raw, value = "", length
            lines.append(raw or f"{name}: {value}")
        if not seen_length:
            lines.append(f"Content-Length: {length}")
        lines.append("\r\n")
        return "\r\n".join(lines).encode("utf-8", "surrogateescape") + body

    # -- typed accessors (parsed on demand; the parser already validated them) -------------
    # Each distinct header text is parsed once for all messages (HeaderMemo): the memo's
    # values are shared, so the accessors of mutable values (Via, NameAddr) return copies.
    def _first_value(self, key: str, name: str) -> str:
        """The first ``key`` value (a lookup key: lower case, long form) straight from the
        headers' first-value index; 400 naming ``name`` when absent. The accessors below
        run dozens of times per call: no name folding, one dict lookup."""
        value = self.headers.first_by_key(key)
        if value is None:
            raise SipParseError(400, f"missing {name} header", self.headers)
        return value

    @property
    def call_id(self) -> str:
        return self._first_value("call-id", "Call-ID")

    @property
    def cseq(self) -> CSeq:
        return CSEQ_MEMO.parsed(self._first_value("cseq", "CSeq"))  # frozen: shared

    def _name_addrs(self, name: str) -> list[NameAddr]:
        """The addresses of every ``name`` line (Route, Record-Route), each a copy."""
        return [_copy_name_addr(value) for line in self.headers.get_all(name)
                for value in NAME_ADDR_LIST_MEMO.parsed(line)]

    @property
    def vias(self) -> list[Via]:
        """Every Via value, top first, across all Via lines."""
        return [_copy_via(via) for line in self.headers.get_all("Via")
                for via in VIAS_MEMO.parsed(line)]

    @property
    def top_via(self) -> Via:
        return _copy_via(VIAS_MEMO.parsed(self._first_value("via", "Via"))[0])

    @property
    def from_(self) -> NameAddr:
        return _copy_name_addr(NAME_ADDR_MEMO.parsed(self._first_value("from", "From")))

    @from_.setter
    def from_(self, value: NameAddr) -> None:
        self.headers.set("From", str(value))

    @property
    def to(self) -> NameAddr:
        return _copy_name_addr(NAME_ADDR_MEMO.parsed(self._first_value("to", "To")))

    @to.setter
    def to(self, value: NameAddr) -> None:
        self.headers.set("To", str(value))

    # Read-only views of the shared parse, for the matching done on every message (§12, §17):
    # no copy of the address or Via is made.
    @property
    def from_tag(self) -> str | None:
        """``from_.tag``."""
        return NAME_ADDR_MEMO.parsed(self._first_value("from", "From")).params.get("tag")

    @property
    def to_tag(self) -> str | None:
        """``to.tag``."""
        return NAME_ADDR_MEMO.parsed(self._first_value("to", "To")).params.get("tag")

    @property
    def via_branch(self) -> str | None:
        """``top_via.branch``."""
        return VIAS_MEMO.parsed(self._first_value("via", "Via"))[0].params.get("branch")

    @property
    def from_uri(self) -> SipUri | AbsoluteUri:
        """``from_.uri`` without the copy ``from_`` makes: the parse every message with this
        From shares, so read it, never change it (nor its params)."""
        return NAME_ADDR_MEMO.parsed(self._first_value("from", "From")).uri

    @property
    def to_uri(self) -> SipUri | AbsoluteUri:
        """``to.uri`` without the copy ``to`` makes (shared, as :attr:`from_uri`): the REGISTER
        path reads the AOR's user from it three times per request."""
        return NAME_ADDR_MEMO.parsed(self._first_value("to", "To")).uri

    @property
    def contact_star(self) -> bool:
        """True for ``Contact: *`` (REGISTER remove-all, §10.2.2)."""
        return any(v.strip() == "*" for v in self.headers.get_all("Contact"))

    @property
    def contacts(self) -> list[NameAddr]:
        """Every Contact address (``*`` excluded; see :attr:`contact_star`)."""
        return [_copy_name_addr(value) for line in self.headers.get_all("Contact")
                if line.strip() != "*" for value in NAME_ADDR_LIST_MEMO.parsed(line)]

    @property
    def routes(self) -> list[NameAddr]:
        return self._name_addrs("Route")

    @property
    def record_routes(self) -> list[NameAddr]:
        return self._name_addrs("Record-Route")

    def _int_header(self, name: str, limit: int) -> int | None:
        value = self.headers.get(name)
        if value is None:
            return None
        value = value.strip()
        if not value.isdigit() or not value.isascii():
            raise SipParseError(400, f"{name} must be a number, got {value!r}", self.headers)
        return min(int(value), limit)

    @property
    def max_forwards(self) -> int | None:
        return self._int_header("Max-Forwards", 255)

    @property
    def expires(self) -> int | None:
        """The Expires header in seconds; values beyond 2**32-1 are clamped (§20.19)."""
        return self._int_header("Expires", 2**32 - 1)

    @property
    def content_type(self) -> str | None:
        return self.headers.get("Content-Type")

    @property
    def authorization(self) -> list[str]:
        """Raw Authorization values (the digest module parses them)."""
        return self.headers.get_all("Authorization")

    @property
    def proxy_authorization(self) -> list[str]:
        return self.headers.get_all("Proxy-Authorization")

    @property
    def www_authenticate(self) -> list[str]:
        return self.headers.get_all("WWW-Authenticate")

    @property
    def proxy_authenticate(self) -> list[str]:
        return self.headers.get_all("Proxy-Authenticate")

    def _comparable(self) -> tuple[str, list[tuple[str, str]], bytes]:
        fields = [(e[0], e[2]) for e in self.headers._fields if e[0] != "content-length"]
        return self._start_line(), fields, self.body

    def __eq__(self, other: object) -> bool:
        """Same start line, header fields (names case-folded, Content-Length ignored: it is
        derived from the body) and body."""
        if type(other) is not type(self):
            return NotImplemented
        return self._comparable() == other._comparable()

    # Mutable and compared by value: unhashable, as a dict is (typeshed types __hash__ as a
    # method, hence the ignore).
    __hash__ = None  # type: ignore[assignment]


def _copy_via(via: Via) -> Via:
    return Via(via.transport, via.host, via.port, dict(via.params), via.protocol)


def _copy_name_addr(value: NameAddr) -> NameAddr:
    # SipUri/AbsoluteUri are frozen and shared; the params dict is the mutable part.
    return NameAddr(value.uri, value.display, dict(value.params))


class Request(Message):
    """A SIP request. ``uri`` is a :class:`SipUri` (or :class:`AbsoluteUri` for tel: etc.);
    a str is parsed."""

    is_request = True
    _uri: SipUri | AbsoluteUri | None
    _uri_text: str | None

    def __init__(self, method: str, uri: SipUri | AbsoluteUri | str,
                 headers: Headers | None = None, body: bytes = b"", *,
                 uri_checked: bool = False) -> None:
        self.method = method
        if uri_checked and isinstance(uri, str):
            # text the parser already validated: the typed URI is built on first access
            self._uri_text = uri
            self._uri = None
        else:
            self._uri_text = None
            self.uri = parse_any_uri(uri) if isinstance(uri, str) else uri
        self.headers = headers if headers is not None else Headers()
        self.body = _as_bytes(body)

    @staticmethod
    def _from_wire(method: str, uri_text: str, headers: Headers,
                   body: bytes = b"") -> Request:
        """A parsed request whose Request-URI text was already validated: the typed URI is
        built on first access (the hot path of the parser does not need it)."""
        # Request(), not a class method's cls(): compiled, a direct call of the constructor
        return Request(method, uri_text, headers, body, uri_checked=True)

    @property
    def uri(self) -> SipUri | AbsoluteUri:
        if self._uri is None:
            assert self._uri_text is not None  # one of the two is always set
            self._uri = parse_any_uri(self._uri_text)
        return self._uri

    @uri.setter
    def uri(self, value: SipUri | AbsoluteUri) -> None:
        if not isinstance(value, (SipUri, AbsoluteUri)):
            raise TypeError(f"Request.uri must be a SipUri or AbsoluteUri, not {value!r}")
        self._uri = value
        self._uri_text = None

    @property
    def uri_scheme(self) -> str:
        """The Request-URI's scheme in lower case, without building the URI object (the
        switch checks it on every request, RFC 3261 §8.2.2.1)."""
        if self._uri is None:
            return str(self._uri_text).partition(":")[0].lower()
        return self._uri.scheme

    def _start_line(self) -> str:
        uri = self._uri_text if self._uri is None else str(self._uri)
        return f"{self.method} {uri} {SIP_VERSION}"

    def __deepcopy__(self, memo: dict[int, object]) -> Request:
        # explicit, as for Headers: a compiled (mypyc) class has no default copy protocol
        if self._uri is None:
            assert self._uri_text is not None
            return Request._from_wire(self.method, self._uri_text, self.headers.copy(),
                                      self.body)
        uri = self._uri.copy() if isinstance(self._uri, SipUri) else self._uri
        return Request(self.method, uri, self.headers.copy(), self.body)

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.uri}>"

    @staticmethod
    def build(method: str, uri: SipUri | AbsoluteUri | str, *,
              via: Via | Iterable[Via], from_: NameAddr, to: NameAddr,
              call_id: str | None = None, cseq: int | CSeq = 1,
              contact: NameAddr | Iterable[NameAddr] | str | None = None,
              max_forwards: int = 70, headers: Iterable[tuple[str, str]] = (),
              body: bytes = b"", content_type: str | None = None) -> Request:
        """Build a request for UAC code (RFC 3261 §8.1.1).

        ``via`` is one :class:`Via` or a list (top first); ``contact`` a :class:`NameAddr`, a
        list of them or one already formatted value; ``cseq`` an int (the method is added)
        or a :class:`CSeq`; ``call_id`` defaults to :func:`new_call_id`; ``headers`` are extra
        (name, value) fields appended after the mandatory ones; ``content_type`` is required
        when ``body`` is not empty. Content-Length is computed on serialization.
        """
        if body and content_type is None:
            raise ValueError("a request with a body needs content_type")
        fields = Headers()
        for one in [via] if isinstance(via, Via) else list(via):
            fields.add("Via", str(one))
        fields.add("Max-Forwards", str(max_forwards))
        fields.add("From", str(from_))
        fields.add("To", str(to))
        fields.add("Call-ID", call_id or new_call_id())
        number = cseq if isinstance(cseq, CSeq) else CSeq(cseq, method)
        if number.method != method:
            raise ValueError(f"CSeq method {number.method} differs from {method}")
        fields.add("CSeq", str(number))
        if isinstance(contact, str):
            fields.add("Contact", contact)  # already formatted (the switch's own, cached)
        elif contact is not None:
            contacts = [contact] if isinstance(contact, NameAddr) else list(contact)
            for name_addr in contacts:
                fields.add("Contact", str(name_addr))
        for name, value in headers:
            fields.add(name, value)
        if content_type is not None:
            fields.add("Content-Type", content_type)
        return Request(method, uri, fields, body)  # (static: a direct call of the constructor)


class Response(Message):
    """A SIP response."""

    is_request = False

    def __init__(self, status: int, reason: str | None = None,
                 headers: Headers | None = None, body: bytes = b"") -> None:
        if not 100 <= status <= 699:
            raise ValueError(f"status must be 100-699, got {status}")
        self.status = status
        self.reason = reason if reason is not None else reason_phrase(status)
        self.headers = headers if headers is not None else Headers()
        self.body = _as_bytes(body)

    def _start_line(self) -> str:
        return f"{SIP_VERSION} {self.status} {self.reason}"

    def __deepcopy__(self, memo: dict[int, object]) -> Response:
        return Response(self.status, self.reason, self.headers.copy(), self.body)

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason}>"


_COPIED: Final = ("via", "from", "to", "call-id", "cseq")


def make_response(request: Request, status: int, reason: str | None = None, *,
                  to_tag: str | None = None) -> Response:
    """A response to ``request`` per RFC 3261 §8.2.6: every Via (in order), From, To, Call-ID
    and CSeq copied; ``to_tag`` added to To unless it already has a tag; no body.

    Works on the partial headers of a :class:`SipParseError` too: pass a Request whose
    headers are ``err.headers`` (see :func:`make_error_response`).
    """
    # The request's field lines as received (name as written, source text: the response
    # carries them byte-for-byte), shared, not copied (headers.HeaderField: a line is never
    # changed in place), and their first-value index built in the same pass.
    fields: list[list[str]] = []
    first: dict[str, str] = {}
    to_at = -1
    to_lines = 0
    for entry in request.headers._fields:
        key = entry[0]
        if key in _COPIED:
            if key not in first:
                first[key] = entry[2]
            if key == "to":
                to_at = len(fields)
                to_lines += 1
            fields.append(entry)
    headers = Headers._from_parsed(fields, first)
    if to_tag is not None and to_lines:
        to_value = first["to"]
        try:
            has_tag = NAME_ADDR_MEMO.parsed(to_value).tag is not None
        except SipParseError:
            has_tag = True  # never touch a To we cannot read
        if not has_tag:
            tagged = f"{to_value};tag={to_tag}"
            if to_lines == 1 and "\r" not in tagged and "\n" not in tagged:
                # what headers.set("To", tagged) does to the one To line, without the scan
                fields[to_at] = ["to", "To", tagged, ""]
                first["to"] = tagged
            else:
                headers.set("To", tagged)  # also the checks and messages of set()
    return Response(status, reason, headers)


def make_error_response(error: SipParseError, *, to_tag: str | None = None) -> Response | None:
    """The response a server sends for a request that failed to parse, or None when the
    parsed headers are too incomplete to address one (RFC 3261 §8.2.6 needs Via, From, To,
    Call-ID and CSeq)."""
    headers = error.headers
    if headers is None or any(name not in headers for name in _COPIED):
        return None
    dummy = Request("OPTIONS", SipUri(host="invalid"), headers)
    reason = None
    if error.status == 400:
        # A human hint in the reason phrase, kept to safe printable ASCII.
        reason = "Bad Request - " + "".join(c for c in error.reason if " " <= c <= "~")[:100]
    return make_response(dummy, error.status, reason, to_tag=to_tag)
