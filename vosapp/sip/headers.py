"""SIP header fields: the :class:`Headers` collection and the typed values of the headers the
switch reasons about (RFC 3261 §7.3, §20, §25).

Headers are stored as a list of fields in arrival order, each with the name as written, the
unfolded value and the exact source text; a field nobody changes is serialized from its source
text, byte-for-byte (what a forwarding element must do for headers it does not understand).
Typed values (:class:`Via`, :class:`NameAddr`, :class:`CSeq`) are parsed on demand.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final, Generic, TypeAlias, TypeVar

from vosapp.sip.uri import AbsoluteUri, SipParseError, SipUri, parse_any_uri

__all__ = [
    "COMPACT_FORMS",
    "CSeq",
    "HeaderMemo",
    "Headers",
    "NameAddr",
    "Via",
    "canonical_key",
    "parse_cseq",
    "parse_name_addr",
    "parse_name_addr_list",
    "parse_params",
    "parse_vias",
    "split_list",
]

# Compact forms: RFC 3261 §7.3.3 and the extensions that define one (Event/Allow-Events RFC 6665,
# Refer-To RFC 3515, Referred-By RFC 3892, Session-Expires RFC 4028, Identity RFC 4474,
# Accept/Reject-Contact and Request-Disposition RFC 3841).
COMPACT_FORMS: Final[dict[str, str]] = {
    "i": "call-id", "m": "contact", "e": "content-encoding", "l": "content-length",
    "c": "content-type", "f": "from", "s": "subject", "k": "supported", "t": "to",
    "v": "via", "o": "event", "u": "allow-events", "r": "refer-to", "b": "referred-by",
    "x": "session-expires", "y": "identity", "a": "accept-contact", "j": "reject-contact",
    "d": "request-disposition", "n": "identity-info",
}


# name as written → lookup key, for names already seen (bounded; a few dozen names repeat).
_CANONICAL: Final[dict[str, str]] = {}


def canonical_key(name: str) -> str:
    """The lookup key of a header name: lower-cased, compact form expanded (``v`` → ``via``)."""
    key = _CANONICAL.get(name)
    if key is not None:
        return key
    key = name.lower()
    if len(key) == 1:
        key = COMPACT_FORMS.get(key, key)
    if len(_CANONICAL) < 4096 and isinstance(name, str):
        _CANONICAL[name] = key
    return key


_TOKEN_RE: Final = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
# gen-value = token / host / quoted-string (§25.1); a host may be an IPv6 reference, and Via
# ``received`` is a bare IPv6address (§20.42, RFC 5118 §4.5), so bare IPv6 is accepted too.
_GEN_VALUE_RE: Final = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+|\[[0-9A-Fa-f:.]+\]|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*")
# Parameters without quotes or whitespace, checked in one match (fast path of parse_params).
# Possessive repeats: nothing that follows a run can start with a character of its class (as in
# vosapp/sip/parser.py's fast validators; tests/sip/test_fast_patterns.py).
_PLAIN_PARAMS_RE: Final = re.compile(r"(?:;[A-Za-z0-9\-.!%*_+`'~]++(?:=(?:[A-Za-z0-9\-.!%*_+`'~]++"
                              r"|\[[0-9A-Fa-f:.]++\]))?)++")


# ---------------------------------------------------------------------------------------------
# The collection
# ---------------------------------------------------------------------------------------------
# One field line: [key, name as written, value, source text ("" once set in code)]. A list:
# the parser joins folded continuation lines into it in place (RFC 3261 §7.3.1). Once parsed
# it is never changed in place (a change puts a new list in its place), so messages share
# lines: a response holds its request's Via, From, To, Call-ID and CSeq lines themselves.
HeaderField: TypeAlias = list[str]


class Headers:
    """Case-insensitive, order-preserving SIP header fields with compact-form aliases.

    ``get("Via")``, ``get("v")`` and ``get("VIA")`` find the same field. Each field line is one
    entry: a header sent as two lines (``Via: a`` / ``Via: b``) has two entries while
    ``Via: a, b`` has one — :meth:`get_all` returns field lines, :meth:`get_list` the
    comma-separated elements across all lines.
    """

    __slots__ = ("_fields", "_first")

    def __init__(self, items: Iterable[tuple[str, str]] | None = None) -> None:
        self._fields: list[HeaderField] = []
        #: key → value of its first field line, built on the first :meth:`get` (the parser
        #: hands over the one it builds while checking) and kept up to date by every change
        #: (a dropped index cost a rebuild per stamped Via or response To tag): a message's
        #: accessors read the same few headers dozens of times per call.
        self._first: dict[str, str] | None = None
        if items is not None:
            for name, value in items:
                self.add(name, value)

    @staticmethod
    def _from_parsed(fields: list[HeaderField],
                     first: dict[str, str] | None = None) -> Headers:
        """Headers over field lines a parser or copy pass already built, with the first-value
        index that pass built too (None: built on the first read)."""
        # a static method, not a class method: compiled, Headers() is a direct call of its
        # constructor, and cls() a generic call of the type (~400 instructions)
        headers = Headers()
        headers._fields = fields
        headers._first = first
        return headers

    def _index(self) -> dict[str, str]:
        first: dict[str, str] = {}
        for entry in self._fields:
            if entry[0] not in first:
                first[entry[0]] = entry[2]
        self._first = first
        return first

    # -- reading ----------------------------------------------------------------------------
    def get(self, name: str, default: str | None = None) -> str | None:
        """The value of the first field named ``name`` (any case, compact or long), or default."""
        # the most called method of a message (every typed accessor): the name cache inline
        return self.first_by_key(_CANONICAL.get(name) or canonical_key(name), default)

    def first_by_key(self, key: str, default: str | None = None) -> str | None:
        """:meth:`get` for a lookup key already folded (lower case, long form): one dict
        lookup in the first-value index."""
        first = self._first
        if first is None:
            first = self._index()
        return first.get(key, default)

    def get_all(self, name: str) -> list[str]:
        """The values of every field line named ``name``, in order."""
        key = canonical_key(name)
        return [entry[2] for entry in self._fields if entry[0] == key]

    def get_list(self, name: str) -> list[str]:
        """The comma-separated elements of every ``name`` field (RFC 3261 §7.3.1), quotes and
        angle brackets respected. Do not use on Authorization-style headers."""
        out: list[str] = []
        for value in self.get_all(name):
            out.extend(split_list(value))
        return out

    def count(self, name: str) -> int:
        key = canonical_key(name)
        return sum(1 for entry in self._fields if entry[0] == key)

    def items(self) -> list[tuple[str, str]]:
        """(name as written, value) for every field line, in order."""
        return [(entry[1], entry[2]) for entry in self._fields]

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = canonical_key(name)
        return any(entry[0] == key for entry in self._fields)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.items())

    def __len__(self) -> int:
        return len(self._fields)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return [(e[0], e[2]) for e in self._fields] == [(e[0], e[2]) for e in other._fields]

    def __repr__(self) -> str:
        return f"Headers({self.items()!r})"

    def copy(self) -> Headers:
        return Headers._from_parsed([list(entry) for entry in self._fields],
                                    None if self._first is None else dict(self._first))

    def __deepcopy__(self, memo: dict[int, object]) -> Headers:
        # explicit: the field lines hold only str, and a compiled (mypyc) class has no
        # default copy protocol to fall back on
        return self.copy()

    # -- writing ----------------------------------------------------------------------------
    def add(self, name: str, value: str, *, first: bool = False) -> None:
        """Append a field (or put it before all others with ``first=True``, as a proxy adds its
        Via, RFC 3261 §16.6 step 8)."""
        _check_field(name, value)
        key = canonical_key(name)
        entry = [key, name, value, ""]
        index = self._first
        if first:
            self._fields.insert(0, entry)
            if index is not None:
                index[key] = value
        else:
            self._fields.append(entry)
            if index is not None and key not in index:
                index[key] = value

    def set(self, name: str, value: str) -> None:
        """Replace every ``name`` field by one field with ``value``, where the first one was
        (or at the end)."""
        _check_field(name, value)
        key = canonical_key(name)
        if self._first is not None:
            self._first[key] = value
        for index, entry in enumerate(self._fields):
            if entry[0] == key:
                self._fields[index] = [key, name, value, ""]
                self._fields[index + 1:] = [e for e in self._fields[index + 1:] if e[0] != key]
                return
        self._fields.append([key, name, value, ""])

    def replace_first(self, name: str, value: str) -> None:
        """Replace the value of the first ``name`` field line in place (as a proxy rewrites the
        top Via, RFC 3261 §18.2.1); other lines keep their position and bytes. KeyError when
        there is no such field."""
        _check_field(name, value)
        key = canonical_key(name)
        for index, entry in enumerate(self._fields):
            if entry[0] == key:
                self._fields[index] = [key, entry[1], value, ""]
                if self._first is not None:
                    self._first[key] = value
                return
        raise KeyError(name)

    def remove(self, name: str) -> int:
        """Remove every ``name`` field; returns how many were removed."""
        key = canonical_key(name)
        if self._first is not None:
            self._first.pop(key, None)
        before = len(self._fields)
        self._fields = [entry for entry in self._fields if entry[0] != key]
        return before - len(self._fields)

    def remove_first(self, name: str) -> str | None:
        """Remove the first ``name`` field line and return its value (None when absent)."""
        key = canonical_key(name)
        fields = self._fields
        for index, entry in enumerate(fields):
            if entry[0] == key:
                del fields[index]
                first = self._first
                if first is not None:
                    # the next line of that name (if any) is now the first one
                    following = next((e[2] for e in fields[index:] if e[0] == key), None)
                    if following is None:
                        del first[key]
                    else:
                        first[key] = following
                return entry[2]
        return None


# Header names already checked to be tokens (bounded; names set in code are few).
_VALID_NAMES: Final[set[str]] = set()


def _check_field(name: str, value: str) -> None:
    if type(name) is not str or name not in _VALID_NAMES:
        if not isinstance(name, str) or not _TOKEN_RE.fullmatch(name):
            raise ValueError(f"header name must be a token, got {name!r}")
        if len(_VALID_NAMES) < 4096:
            _VALID_NAMES.add(name)
    if not isinstance(value, str) or "\r" in value or "\n" in value:
        raise ValueError(f"header value for {name} must be a str without CR/LF, got {value!r}")


# ---------------------------------------------------------------------------------------------
# Lexical helpers
# ---------------------------------------------------------------------------------------------
def _skip_quoted(text: str, start: int) -> int:
    """Index just past the quoted-string opening at ``text[start] == '"'`` (§25.1 quoted-pair
    escapes honoured). Raises 400 when it is not terminated."""
    i = start + 1
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
        elif c == '"':
            return i + 1
        else:
            i += 1
    raise SipParseError(400, f"unterminated quoted string in {text!r}")


def _unquote(quoted: str) -> str:
    inner = quoted[1:-1]
    return re.sub(r"\\(.)", r"\1", inner, flags=re.DOTALL) if "\\" in inner else inner


def split_list(value: str, sep: str = ",") -> list[str]:
    """Split ``value`` at ``sep`` outside quoted strings and ``<...>``; elements stripped."""
    if sep not in value:
        return [value.strip()]
    if '"' not in value and "<" not in value:
        return [part.strip() for part in value.split(sep)]
    parts: list[str] = []
    start = 0
    i = 0
    n = len(value)
    in_angle = False
    while i < n:
        c = value[i]
        if c == '"' and not in_angle:
            i = _skip_quoted(value, i)
            continue
        if c == "<":
            in_angle = True
        elif c == ">":
            in_angle = False
        elif c == sep and not in_angle:
            parts.append(value[start:i].strip())
            start = i + 1
        i += 1
    parts.append(value[start:].strip())
    return parts


def parse_params(text: str, context: str) -> dict[str, str | None]:
    """Parse ``;name[=value]...`` header parameters (§25.1 generic-param). Names are lower-cased;
    values are kept as written (a quoted-string keeps its quotes); a flag maps to None."""
    params: dict[str, str | None] = {}
    text = text.strip()
    if not text:
        return params
    if _PLAIN_PARAMS_RE.fullmatch(text):
        for item in text[1:].split(";"):
            name, eq, value = item.partition("=")
            params[name.lower()] = value if eq else None
        return params
    if text[0] != ";":
        raise SipParseError(400, f"unexpected {text!r} in {context}")
    for item in split_list(text[1:], ";"):
        name, eq, value = item.partition("=")
        name = name.strip()
        if not _TOKEN_RE.fullmatch(name):
            raise SipParseError(400, f"bad parameter {item!r} in {context}")
        if eq:
            value = value.strip()
            if value.startswith('"'):
                if _skip_quoted(value, 0) != len(value):
                    raise SipParseError(400, f"bad quoted parameter {item!r} in {context}")
            elif not _GEN_VALUE_RE.fullmatch(value):
                raise SipParseError(400, f"bad parameter value {item!r} in {context}")
            params[name.lower()] = value
        else:
            params[name.lower()] = None
    return params


def _format_params(params: dict[str, str | None]) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())


# ---------------------------------------------------------------------------------------------
# Typed values
# ---------------------------------------------------------------------------------------------
@dataclass
class NameAddr:
    """A From/To/Contact/Route/Record-Route value: ``"display" <uri>;params`` (§20.10, §25.1).

    ``display`` is the display name unquoted (None when absent); ``uri`` a :class:`SipUri` (or an
    :class:`AbsoluteUri` for other schemes); ``params`` the header parameters (``tag``,
    ``expires``, ``q`` …). ``str()`` always writes the bracketed name-addr form.
    """

    uri: SipUri | AbsoluteUri
    display: str | None = None
    params: dict[str, str | None] = field(default_factory=dict)

    def __init__(self, uri: SipUri | AbsoluteUri, display: str | None = None,
                 params: dict[str, str | None] | None = None) -> None:
        self.uri, self.display = uri, display
        self.params = {} if params is None else params

    def copy(self) -> NameAddr:
        """A copy sharing nothing mutable with this value (the dialog layer copies From/To for
        every request it builds: ``copy.deepcopy`` cost ~0.1 ms each)."""
        uri = self.uri.copy() if isinstance(self.uri, SipUri) else self.uri
        return NameAddr(uri=uri, display=self.display, params=dict(self.params))

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    @tag.setter
    def tag(self, value: str | None) -> None:
        if value is None:
            self.params.pop("tag", None)
        else:
            self.params["tag"] = value

    @property
    def expires(self) -> int | None:
        """The Contact ``expires`` parameter as an int (None when absent or not a number)."""
        value = self.params.get("expires")
        return int(value) if value is not None and value.isdigit() else None

    @property
    def q(self) -> float | None:
        value = self.params.get("q")
        try:
            return float(value) if value is not None else None
        except ValueError:
            return None

    def __str__(self) -> str:
        display = ""
        if self.display is not None:
            escaped = self.display.replace("\\", "\\\\").replace('"', '\\"')
            display = f'"{escaped}" '
        return f"{display}<{self.uri}>{_format_params(self.params)}"


_SIMPLE_NAME_ADDR_RE: Final = re.compile(r'(?:"([^"\\\r\n]*)"[ \t]*)?<([^<>" \t\r\n]+)>(.*)', re.DOTALL)


def parse_name_addr(value: str) -> NameAddr:
    """Parse one name-addr or addr-spec with its header parameters. Raises 400 on bad syntax
    (unbalanced quotes, non-token display names, LWS inside ``<>``, an unbracketed URI holding
    ``?`` or ``,`` — §20.10)."""
    text = value.strip()
    match = _SIMPLE_NAME_ADDR_RE.fullmatch(text)
    if match is not None:
        # Common shape ["display"] <uri>;params, same result as the general path below.
        display_text, uri_text, rest = match.groups()
        return NameAddr(uri=parse_any_uri(uri_text), display=display_text,
                        params=parse_params(rest, value))
    display: str | None = None
    if text.startswith('"'):
        end = _skip_quoted(text, 0)
        display = _unquote(text[:end])
        rest = text[end:].lstrip()
        if not rest.startswith("<"):
            raise SipParseError(400, f"quoted display name not followed by <URI> in {value!r}")
        text = rest
    lt = text.find("<")
    semi = text.find(";")
    quote_at = text.find('"')
    if lt >= 0 and (semi < 0 or lt < semi) and (quote_at < 0 or lt < quote_at):
        if display is None and lt > 0:
            words = text[:lt].split()
            if not all(_TOKEN_RE.fullmatch(word) for word in words):
                raise SipParseError(400, f"display name must be tokens or quoted in {value!r}")
            display = " ".join(words)
        gt = text.find(">", lt)
        if gt < 0:
            raise SipParseError(400, f"missing '>' in {value!r}")
        uri_text = text[lt + 1:gt]
        if not uri_text or uri_text != uri_text.strip() or " " in uri_text or "\t" in uri_text:
            raise SipParseError(400, f"whitespace inside <URI> in {value!r}")
        rest = text[gt + 1:]
    else:
        uri_text, _, rest = text.partition(";")
        if rest:
            rest = ";" + rest
        uri_text = uri_text.strip()
        if "?" in uri_text or "," in uri_text or " " in uri_text:
            raise SipParseError(400, f"a URI with '?', ',' or spaces must be in <> in {value!r}")
    uri = parse_any_uri(uri_text)
    return NameAddr(uri=uri, display=display, params=parse_params(rest, value))


def parse_name_addr_list(value: str) -> list[NameAddr]:
    """Parse a comma-separated list of name-addr values (Contact, Route, Record-Route)."""
    return [parse_name_addr(part) for part in _nonempty_elements(value, "address list")]


def _nonempty_elements(value: str, what: str) -> list[str]:
    parts = split_list(value)
    if any(not part for part in parts):
        raise SipParseError(400, f"empty element in {what} {value!r}")
    return parts


@dataclass
class Via:
    """One Via value: ``SIP/2.0/UDP host:port;branch=...`` (§20.42, RFC 3581 rport).

    ``params`` maps lower-cased names to values (None for a flag). Build one in code as
    ``Via("UDP", "192.0.2.1", 5060, {"branch": new_branch(), "rport": None})``.
    """

    transport: str
    host: str
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    protocol: str = "SIP/2.0"

    def __init__(self, transport: str, host: str, port: int | None = None,
                 params: dict[str, str | None] | None = None,
                 protocol: str = "SIP/2.0") -> None:
        self.transport, self.host, self.port = transport, host, port
        self.params = {} if params is None else params
        self.protocol = protocol

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @property
    def received(self) -> str | None:
        """The ``received`` address, bare (RFC 5118 §4.5: IPv6 may arrive in brackets)."""
        value = self.params.get("received")
        if value is not None and value.startswith("[") and value.endswith("]"):
            return value[1:-1]
        return value

    @property
    def rport(self) -> int | bool | None:
        """RFC 3581: None when absent, True when requested without a value, else the port."""
        if "rport" not in self.params:
            return None
        value = self.params["rport"]
        if value is None or not value.isdigit():
            return True
        return int(value)

    @property
    def sent_by(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.protocol}/{self.transport} {self.sent_by}{_format_params(self.params)}"


# ``SIP/2.0/UDP host[:port];params`` with a plain host name or IPv4 address: the common shape,
# read in one match (same result as the general path, which handles everything else).
_FAST_ONE_VIA_RE: Final = re.compile(r"SIP/2\.0/([A-Za-z0-9\-.!%*_+`'~]++)[ \t]++([A-Za-z0-9\-.]++)"
                              r"(?::([0-9]{1,5}+))?[ \t]*+(;.*)?")


def _parse_one_via(text: str) -> Via:
    fast = _FAST_ONE_VIA_RE.fullmatch(text)
    if fast is not None:
        transport, host, port_text, param_text = fast.groups()
        port = int(port_text) if port_text is not None else None
        if port is None or port <= 65535:
            return Via(transport=transport.upper(), host=host, port=port,
                       params=parse_params(param_text if param_text and len(param_text) > 1
                                           else "", "Via"), protocol="SIP/2.0")
    pieces = text.split("/", 2)
    if len(pieces) != 3:
        raise SipParseError(400, f"bad Via {text!r}")
    name, version, rest = pieces[0].strip(), pieces[1].strip(), pieces[2].lstrip()
    if not _TOKEN_RE.fullmatch(name) or not _TOKEN_RE.fullmatch(version):
        raise SipParseError(400, f"bad Via protocol in {text!r}")
    transport_match = _TOKEN_RE.match(rest)
    if transport_match is None:
        raise SipParseError(400, f"bad Via transport in {text!r}")
    transport = transport_match.group()
    sent_by, _, param_text = rest[transport_match.end():].partition(";")
    if param_text:
        param_text = ";" + param_text
    sent_by = sent_by.strip()
    if not sent_by:
        raise SipParseError(400, f"Via without sent-by in {text!r}")
    host, port = _parse_sent_by(sent_by, text)
    return Via(transport=transport.upper(), host=host, port=port,
               params=parse_params(param_text, "Via"), protocol=f"{name}/{version}")


def _parse_sent_by(sent_by: str, context: str) -> tuple[str, int | None]:
    if sent_by.startswith("["):
        end = sent_by.find("]")
        host = sent_by[1:end] if end > 0 else ""
        if not host or not re.fullmatch(r"[0-9A-Fa-f:.]+", host):
            raise SipParseError(400, f"bad IPv6 sent-by in Via {context!r}")
        port_text = sent_by[end + 1:].strip()
    else:
        host, _, port_text = sent_by.partition(":")
        host = host.strip()
        port_text = ":" + port_text if _ else ""
        if not re.fullmatch(r"[A-Za-z0-9\-.]+", host):
            raise SipParseError(400, f"bad sent-by host in Via {context!r}")
    if not port_text:
        return host, None
    port_text = port_text.removeprefix(":").strip()
    if not port_text.isdigit() or not port_text.isascii() or int(port_text) > 65535:
        raise SipParseError(400, f"bad sent-by port in Via {context!r}")
    return host, int(port_text)


def parse_vias(value: str) -> list[Via]:
    """Parse one Via field line (possibly several comma-separated values)."""
    return [_parse_one_via(part) for part in _nonempty_elements(value, "Via")]


@dataclass(slots=True, unsafe_hash=True)
class CSeq:
    """``CSeq: 4711 INVITE`` (§20.16): number below 2**31 and the method."""

    number: Final[int]
    method: Final[str]

    def __init__(self, number: int, method: str) -> None:
        self.number, self.method = number, method

    def __str__(self) -> str:
        return f"{self.number} {self.method}"


def parse_cseq(value: str) -> CSeq:
    """Parse a CSeq value; 400 on a non-numeric or overlarge number (≥ 2**31, RFC 3261 §8.1.1.5)
    or a bad method."""
    parts = value.split()
    if len(parts) != 2 or not parts[0].isdigit() or not parts[0].isascii():
        raise SipParseError(400, f"bad CSeq {value!r}")
    if len(parts[0]) > 10 or int(parts[0]) >= 2**31:
        raise SipParseError(400, f"CSeq number {parts[0]} is not below 2**31")
    if not _TOKEN_RE.fullmatch(parts[1]):
        raise SipParseError(400, f"bad CSeq method {parts[1]!r}")
    return CSeq(int(parts[0]), parts[1])


def is_token(text: str) -> bool:
    """True when ``text`` is a non-empty RFC 3261 token."""
    return _TOKEN_RE.fullmatch(text) is not None


# ---------------------------------------------------------------------------------------------
# Parse results shared by messages
# ---------------------------------------------------------------------------------------------
_Parsed = TypeVar("_Parsed")
_Key = TypeVar("_Key", bound=Hashable)
_Kept = TypeVar("_Kept")


#: How many texts a memo keeps, and the longest text it keeps (HeaderMemo, the parser's
#: Request-URIs, digest's H(A2)).
MEMO_LIMIT: Final = 1024
MEMO_LONGEST: Final = 512


def keep_bounded(table: dict[_Key, _Kept], key: _Key, value: _Kept, limit: int) -> None:
    """``table[key] = value``, ``table`` emptied first when it holds ``limit`` entries
    (bounded: forgetting costs a parse, never a wrong answer)."""
    if len(table) >= limit:
        table.clear()
    table[key] = value


class HeaderMemo(Generic[_Parsed]):
    """A header parser's results by header text, shared by every message (bounded).

    The same From, To, Via and CSeq text crosses the switch several times per call (a
    vendor's 100, 180 and 200 echo the INVITE's Via, From and To; a caller's ACK and BYE
    repeat its From), so each distinct text is parsed once, not once per message and read.
    A text that fails to parse raises as the parser does and is not remembered. The repeats
    come within a call's few messages, so a small memo does: what it holds are tracked objects
    the cyclic GC walks (cf. docs/benchmarks.md on retained parse results). Results are
    shared: callers treat them as read-only and hand out copies of the mutable ones (the
    typed accessors of :class:`~vosapp.sip.message.Message` do).
    """

    __slots__ = ("_limit", "_longest", "_parse", "_results")

    def __init__(self, parse: Callable[[str], _Parsed], limit: int = MEMO_LIMIT,
                 longest: int = MEMO_LONGEST) -> None:
        self._parse = parse
        self._results: dict[str, _Parsed] = {}
        self._limit = limit
        #: Longer texts are parsed every time, never kept: a flood of distinct large header
        #: values must not hold limit x 64 KB of text.
        self._longest = longest

    def __call__(self, text: str) -> _Parsed:
        return self.parsed(text)

    def parsed(self, text: str) -> _Parsed:
        """``text`` parsed, or its remembered parse. The compiled SIP layer calls this
        rather than the memo itself: compiled, ``memo(text)`` is a generic call through the
        type's ``__call__`` slot, ``memo.parsed(text)`` a direct one."""
        result = self._results.get(text)
        return result if result is not None else self._parse_and_keep(text)

    def _parse_and_keep(self, text: str) -> _Parsed:
        """A text not remembered: parsed, and kept unless it is longer than ``longest``."""
        result = self._parse(text)
        if len(text) <= self._longest:
            keep_bounded(self._results, text, result, self._limit)
        return result

    def __contains__(self, text: str) -> bool:
        """Whether ``text`` is remembered (and so known to parse)."""
        return text in self._results

    def __len__(self) -> int:
        return len(self._results)


# The value of a ``;branch=`` parameter: a token up to the next ``;``, a blank or the end
# (ViaMemo's guards decide whether it is the Via's branch).
_BRANCH_VALUE_RE: Final = re.compile(r";branch=([A-Za-z0-9\-.!%*_+`'~]++)(?=[; \t]|\Z)")


def branch_span(text: str) -> tuple[int, int] | None:
    """Where the value :data:`_BRANCH_VALUE_RE` finds in ``text`` is (None: nowhere); the
    reference vosapp.sip._scan.branch_span is held to (tests/sip/test_scan.py)."""
    found = _BRANCH_VALUE_RE.search(text)
    return found.span(1) if found is not None else None


def scan_in_c(name: str) -> Any:
    """vosapp.sip._scan's function ``name`` (vosapp/sip/_scan.c), else None: the module not
    built (setup.py builds it when it can), or built before the function was written. Each
    caller keeps the Python path that the function stands for, and takes it on None."""
    try:
        from vosapp.sip import _scan
    except ImportError:
        return None
    return getattr(_scan, name, None)


#: The branch value found in C (vosapp/sip/_scan.c), the same span as :func:`branch_span`:
#: a regex search, its span and its group cost ~3,500 instructions a request compiled
#: (docs/benchmarks.md, thirty-eighth round).
_BRANCH_SPAN_IN_C: Final[Callable[[str], tuple[int, int] | None] | None] = scan_in_c(
    "branch_span")

# One Via value written exactly as ``str(Via)`` writes its parse (``SIP/2.0/UDP host[:port]``,
# upper-case transport, one space, lower-case parameter names with plain values, no
# whitespace): the switch can append its received/rport stamp to such a text as sent.
# Possessive repeats (nothing that follows a run can start with a character of its class):
# the same matches for less, as vosapp/sip/parser.py's fast validators.
_WRITTEN_AS_PARSED_VIA: Final = re.compile(
    r"SIP/2\.0/[A-Z0-9\-.!%*_+`'~]++ [A-Za-z0-9\-.]++(?::(?:0|[1-9][0-9]{0,4}+))?"
    r"(?:;[a-z0-9\-.!%*_+`'~]++(?:=(?:[A-Za-z0-9\-.!%*_+`'~]++|\[[0-9A-Fa-f:.]++\]))?)*+")


class ViaMemo(HeaderMemo[list[Via]]):
    """:class:`HeaderMemo` for Via lines, which also knows them by their shape.

    A top Via's branch is new in every transaction (RFC 3261 §8.1.1.7), so its text is never
    in the memo, though the rest of it is the same in every request a client sends. A text
    missing from the memo is looked up with its branch value cut out: when that shape parsed
    before, the result is the shape's parse with this branch, without parsing the text again.

    Only for a single Via value (no comma) without quotes, whose every ``;`` starts a distinct
    parameter and whose one ``branch`` parameter is the one cut out: then the two texts differ
    in that token alone and the parser reads both the same way but for the branch. Whether
    the text is written as ``str()`` of its parse writes it (:meth:`written_as_parsed`) is
    then the same for both texts too (a branch value and a plain parameter value are both a
    token), so it is also known from the shape.
    """

    __slots__ = ("_last", "_shapes")

    def __init__(self, limit: int = MEMO_LIMIT, longest: int = MEMO_LONGEST) -> None:
        super().__init__(parse_vias, limit, longest)
        #: shape -> (its Via, whether its texts are written as str() of their parse)
        self._shapes: dict[str, tuple[Via, bool]] = {}
        #: The text last read by its shape, its result, and what written_as_parsed() answers
        #: for it: one tuple, replaced whole (another thread may read). Such a text is a
        #: request's new branch, asked for again while that request is handled (its top
        #: Via, its stamp) and hardly ever after: kept in the memo it was a dict entry, a
        #: list, a Via and its parameters per request, held until the memo filled and
        #: walked once by the young GC (docs/benchmarks.md, forty-first round).
        self._last: tuple[str, list[Via], bool] = ("", [], False)

    def parsed(self, text: str) -> list[Via]:
        results = self._results
        result = results.get(text)
        if result is not None:
            return result
        last = self._last
        if last[0] == text and last[1]:  # (a result is never empty; the first slot's is)
            return last[1]
        span = (_BRANCH_SPAN_IN_C(text) if _BRANCH_SPAN_IN_C is not None
                else branch_span(text))
        if span is None or len(text) > self._longest:
            return self._parse_and_keep(text)
        start, end = span
        shape = text[:start] + text[end:]
        value = text[start:end]
        known = self._shapes.get(shape)
        if known is None:
            result = self._parse_and_keep(text)
            via = result[0]
            params = via.params
            if (len(result) == 1 and params.get("branch") == value
                    and len(params) == text.count(";") and '"' not in text):
                written = _WRITTEN_AS_PARSED_VIA.fullmatch(text) is not None
                keep_bounded(self._shapes, shape, (via, written), self._limit)
            return result
        template, written = known
        params = dict(template.params)
        params["branch"] = value
        result = [Via(template.transport, template.host, template.port, params,
                      template.protocol)]
        self._last = (text, result, written)
        return result

    def written_as_parsed(self, text: str) -> bool:
        """Whether ``text`` is one Via value written exactly as ``str()`` of its parse writes
        it: known without a regex pass for the text this memo last read by its shape (the
        top Via of a new request from a client seen before, stamped while it is handled)."""
        last = self._last
        if last[0] == text and last[1]:
            return last[2]
        return _WRITTEN_AS_PARSED_VIA.fullmatch(text) is not None


NAME_ADDR_MEMO: Final = HeaderMemo(parse_name_addr)
NAME_ADDR_LIST_MEMO: Final = HeaderMemo(parse_name_addr_list)
VIAS_MEMO: Final = ViaMemo()
CSEQ_MEMO: Final = HeaderMemo(parse_cseq)
