"""SIP and SIPS URIs (RFC 3261 §19.1, §25.1) with IPv6 references (RFC 5118).

``parse_uri`` turns text into a :class:`SipUri` (``sip:``/``sips:``) or, for any other syntactically
valid absolute URI, an :class:`AbsoluteUri` kept opaque. A :class:`SipUri` built by the parser
remembers its exact source text so ``str()`` reproduces it byte-for-byte (forwarding must not
rewrite what it does not understand); one built in code, or changed with :meth:`SipUri.replace`,
is serialized from its fields.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any, Final
from urllib.parse import quote, unquote

__all__ = [
    "AbsoluteUri",
    "SipParseError",
    "SipUri",
    "parse_any_uri",
    "parse_uri",
]


class SipParseError(ValueError):
    """A SIP message (or part of one) that does not follow the grammar.

    ``status`` is the response a server should answer with (400, 413, 416, 505 …, RFC 3261 §21),
    ``reason`` says what was wrong in words a person can act on. ``headers`` holds whatever
    header fields were parsed before the error (a :class:`vosapp.sip.headers.Headers`), or
    ``None``, so a server can still copy Via/From/To/Call-ID/CSeq into its error response.
    """

    def __init__(self, status: int, reason: str, headers: Any = None) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.headers = headers


# RFC 3261 §25.1 character classes.
_UNRESERVED: Final = "A-Za-z0-9\\-_.!~*'()"
_USER_RE: Final = re.compile(rf"(?:[{_UNRESERVED}&=+$,;?/]|%[0-9A-Fa-f]{{2}})+")
_PASSWORD_RE: Final = re.compile(rf"(?:[{_UNRESERVED}&=+$,]|%[0-9A-Fa-f]{{2}})*")
_PARAMCHARS_RE: Final = re.compile(rf"(?:[{_UNRESERVED}\[\]/:&+$]|%[0-9A-Fa-f]{{2}})+")
_HNV_RE: Final = re.compile(rf"(?:[{_UNRESERVED}\[\]/?:+$]|%[0-9A-Fa-f]{{2}})*")
_HOSTNAME_RE: Final = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?"
                          r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?)*\.?")
_IPV6_RE: Final = re.compile(r"[0-9A-Fa-f:.]+")
_SCHEME_RE: Final = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*")
# absoluteURI opaque part / hier part: uric chars (RFC 2396 as used by RFC 3261 §25.1).
_URIC_RE: Final = re.compile(r"(?:[A-Za-z0-9\-_.!~*'();/?:@&=+$,\[\]]|%[0-9A-Fa-f]{2})+")

# Characters left unescaped when serializing a user part set in code (§25.1 ``user``).
_USER_SAFE: Final = "-_.!~*'()&=+$,;?/"
_PASSWORD_SAFE: Final = "-_.!~*'()&=+$,"


@dataclass(slots=True, eq=False)
class AbsoluteUri:
    """A URI of a scheme other than sip/sips (``tel:``, ``im:``, ``urn:`` …), kept as text."""

    scheme: Final[str]
    text: Final[str]

    def __init__(self, scheme: str, text: str) -> None:
        self.scheme, self.text = scheme, text

    def __deepcopy__(self, memo: dict[int, object]) -> AbsoluteUri:
        return self  # immutable; a compiled (mypyc) class has no default copy protocol

    def __str__(self) -> str:
        return self.text

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AbsoluteUri):
            return NotImplemented
        return self.text.lower() == other.text.lower()

    def __hash__(self) -> int:
        return hash(self.text.lower())


@dataclass(slots=True, eq=False)
class SipUri:
    """A ``sip:`` or ``sips:`` URI.

    ``user`` and ``password`` are stored unescaped (``%40`` → ``@``) so code can compare them;
    ``host`` is bare (an IPv6 address without brackets); ``params`` maps lower-cased names to
    values (``None`` for a flag such as ``;lr``); ``headers`` is a list of (name, value) with
    values unescaped. Equality follows RFC 3261 §19.1.4 closely enough for routing: scheme, user,
    password case-sensitive; host case-insensitive; port; the params ``user``, ``ttl``,
    ``method``, ``maddr``, ``transport``; headers.

    Build one in code: ``SipUri(host="192.0.2.1", user="1001", port=5060,
    params={"transport": "tcp"})``. Its fields are read-only (``Final``: to mypy, and at run time
    when compiled); :meth:`replace` makes a changed copy.
    """

    host: Final[str]
    user: Final[str | None]
    port: Final[int | None]
    params: Final[dict[str, str | None]]
    headers: Final[list[tuple[str, str]]]
    scheme: Final[str]
    password: Final[str | None]
    # The parsed source text, passed by the parser alone (its grammar has checked the fields).
    # Not Final: mypyc reads a Final with a class-level value as a constant; init=False keeps
    # it out of dataclasses.replace (a replaced URI is written from its fields).
    _raw: str | None = field(default=None, init=False, repr=False)

    def __init__(self, host: str, user: str | None = None, port: int | None = None,
                 params: dict[str, str | None] | None = None,
                 headers: list[tuple[str, str]] | None = None, scheme: str = "sip",
                 password: str | None = None, _raw: str | None = None) -> None:
        if _raw is None:
            # Built in code: check what the parser's grammar checks (§25.1).
            lowered = scheme.lower()
            if lowered not in ("sip", "sips"):
                raise SipParseError(416, f"SipUri scheme must be sip or sips, not {scheme!r}")
            scheme = lowered
            if not host:
                raise SipParseError(400, "SIP URI without a host")
            if port is not None and not 0 <= port <= 65535:
                raise SipParseError(400, f"SIP URI port {port} outside 0-65535")
        self.host, self.user, self.port = host, user, port
        self.params = {} if params is None else params
        self.headers = [] if headers is None else headers
        self.scheme, self.password, self._raw = scheme, password, _raw

    def copy(self) -> SipUri:
        """A copy with its own ``params`` and ``headers`` (the only mutable parts); the
        parsed text is kept."""
        return SipUri(self.host, self.user, self.port, dict(self.params), list(self.headers),
                      self.scheme, self.password, self._raw)

    def __deepcopy__(self, memo: dict[int, object]) -> SipUri:
        return self.copy()  # a compiled (mypyc) class has no default copy protocol

    # -- convenient views -------------------------------------------------------------------
    @property
    def transport(self) -> str | None:
        """The ``transport`` parameter, lower-cased, or None."""
        value = self.params.get("transport")
        return value.lower() if value else None

    @property
    def lr(self) -> bool:
        """True for a loose-routing URI (``;lr``, RFC 3261 §16.12)."""
        return "lr" in self.params

    @property
    def maddr(self) -> str | None:
        return self.params.get("maddr")

    @property
    def hostport(self) -> str:
        """``host[:port]`` with IPv6 brackets, as written on the wire."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"

    def aor(self) -> str:
        """The address-of-record key ``sip:user@host`` (no port, params or headers; host
        lower-cased) used by registrars (RFC 3261 §10.3 step 5)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        user = f"{_escape(self.user, _USER_SAFE)}@" if self.user is not None else ""
        return f"{self.scheme}:{user}{host.lower()}"

    def replace(self, **changes: Any) -> SipUri:
        """A copy with some fields changed (serialized from fields, not from source text)."""
        return replace(self, **changes)

    # -- wire form --------------------------------------------------------------------------
    def __str__(self) -> str:
        if self._raw is not None:
            return self._raw
        parts = [self.scheme, ":"]
        if self.user is not None:
            parts.append(_escape(self.user, _USER_SAFE))
            if self.password is not None:
                parts.append(":" + _escape(self.password, _PASSWORD_SAFE))
            parts.append("@")
        parts.append(self.hostport)
        for name, value in self.params.items():
            parts.append(f";{name}" if value is None else f";{name}={value}")
        if self.headers:
            parts.append("?" + "&".join(f"{_escape(n, _HNV_SAFE)}={_escape(v, _HNV_SAFE)}"
                                         for n, v in self.headers))
        return "".join(parts)

    def _key(self) -> tuple[Any, ...]:
        picked = tuple(sorted((k, (v or "").lower()) for k, v in self.params.items()
                              if k in ("user", "ttl", "method", "maddr", "transport")))
        return (self.scheme, self.user, self.password, self.host.lower(), self.port, picked,
                tuple(sorted(self.headers)))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SipUri):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())


_HNV_SAFE: Final = "-_.!~*'()[]/?:+$"


def _escape(text: str, safe: str) -> str:
    # surrogateescape: a user part unescaped from invalid UTF-8 (%FF) escapes back to itself.
    return quote(text, safe=safe, errors="surrogateescape")


def _unescape(text: str) -> str:
    # %00 is legal (RFC 4475 escnull); keep undecodable bytes recoverable.
    return unquote(text, errors="surrogateescape") if "%" in text else text


def _parse_host(hostport: str, whole: str) -> tuple[str, int | None]:
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise SipParseError(400, f"unterminated IPv6 reference in URI {whole!r}")
        host = hostport[1:end]
        if not _IPV6_RE.fullmatch(host) or ":" not in host:
            raise SipParseError(400, f"bad IPv6 reference in URI {whole!r}")
        rest = hostport[end + 1:]
    else:
        host, colon, port_text = hostport.partition(":")
        rest = colon + port_text
        if not _HOSTNAME_RE.fullmatch(host):
            raise SipParseError(400, f"bad host {host!r} in URI {whole!r}")
    port: int | None = None
    if rest:
        if not rest.startswith(":") or not rest[1:].isdigit() or not rest[1:].isascii():
            raise SipParseError(400, f"bad port in URI {whole!r}")
        port = int(rest[1:])
        if port > 65535:
            raise SipParseError(400, f"port {port} outside 0-65535 in URI {whole!r}")
    return host, port


# Common shape, parsed with one match: user@host[:port][;params] with plain characters only.
# Possessive repeats, runs of plain characters as one repeat, and a host label as letters and
# digits joined by hyphens: the same matches and groups as the backtracking form, for less
# (vosapp/sip/parser.py's fast validators; tests/sip/test_fast_patterns.py).
_FAST_REST_RE: Final = re.compile(
    r"(?:((?:[A-Za-z0-9\-_.!~*'()&=+$]++|%[0-9A-Fa-f]{2})++)@)?"
    r"([A-Za-z0-9]++(?:-++[A-Za-z0-9]++)*+(?:\.[A-Za-z0-9]++(?:-++[A-Za-z0-9]++)*+)*+)"
    r"(?::([0-9]{1,5}+))?((?:;[A-Za-z0-9\-_.!~*'()\[\]/:&+$]++(?:=[A-Za-z0-9\-_.!~*'()\[\]/:&+$]++)?)*+)")


def _parse_sip(text: str, scheme: str, rest: str) -> SipUri:
    match = _FAST_REST_RE.fullmatch(rest)
    if match is not None:
        user, host, port_text, param_text = match.groups()
        port = int(port_text) if port_text is not None else None
        if port is None or port <= 65535:
            params: dict[str, str | None] = {}
            if param_text:
                for item in param_text[1:].split(";"):
                    name, eq, value = item.partition("=")
                    params[name.lower()] = value if eq else None
            # With its text: the match has checked the fields.
            return SipUri(host, _unescape(user) if user is not None else None, port, params, [],
                          scheme, None, text)
    return _parse_sip_full(text, scheme, rest)


def _parse_sip_full(text: str, scheme: str, rest: str) -> SipUri:
    # Headers start at the first '?' after the host; user parts may hold '?', so locate the
    # userinfo first: no unescaped '@' is legal after it (§25.1), so the first '@' ends it.
    user = password = None
    at = rest.find("@")
    if at >= 0:
        userinfo = rest[:at]
        name, colon, pw = userinfo.partition(":")
        if not _USER_RE.fullmatch(name):
            raise SipParseError(400, f"bad user part in URI {text!r}")
        if colon and not _PASSWORD_RE.fullmatch(pw):
            raise SipParseError(400, f"bad password part in URI {text!r}")
        user = _unescape(name)
        password = _unescape(pw) if colon else None
        rest = rest[at + 1:]
    rest, qmark, header_text = rest.partition("?")
    hostport, *param_items = rest.split(";")
    host, port = _parse_host(hostport, text)
    params: dict[str, str | None] = {}
    for item in param_items:
        name, eq, value = item.partition("=")
        if not _PARAMCHARS_RE.fullmatch(name) or (eq and not _PARAMCHARS_RE.fullmatch(value)):
            raise SipParseError(400, f"bad parameter {item!r} in URI {text!r}")
        params[name.lower()] = value if eq else None
    headers: list[tuple[str, str]] = []
    if qmark:
        for item in header_text.split("&"):
            name, eq, value = item.partition("=")
            if not name or not eq or not _HNV_RE.fullmatch(name) or not _HNV_RE.fullmatch(value):
                raise SipParseError(400, f"bad header {item!r} in URI {text!r}")
            headers.append((_unescape(name), _unescape(value)))
    return SipUri(host, user, port, params, headers, scheme, password, text)


def parse_any_uri(text: str) -> SipUri | AbsoluteUri:
    """Parse a URI of any scheme: SIP/SIPS strictly, others as opaque :class:`AbsoluteUri`.

    Raises :class:`SipParseError` (400) for text that is no URI at all.
    """
    scheme, colon, rest = text.partition(":")
    if not colon or not _SCHEME_RE.fullmatch(scheme):
        raise SipParseError(400, f"not a URI: {text!r}")
    lowered = scheme.lower()
    if lowered in ("sip", "sips"):
        return _parse_sip(text, lowered, rest)
    if not _URIC_RE.fullmatch(rest):
        raise SipParseError(400, f"bad characters in URI {text!r}")
    return AbsoluteUri(lowered, text)


def parse_uri(text: str) -> SipUri:
    """Parse a ``sip:``/``sips:`` URI. Raises :class:`SipParseError`: 416 for another scheme
    (RFC 3261 §21.4.17 Unsupported URI Scheme), 400 for a malformed URI."""
    uri = parse_any_uri(text)
    if not isinstance(uri, SipUri):
        raise SipParseError(416, f"unsupported URI scheme {uri.scheme!r}")
    return uri
