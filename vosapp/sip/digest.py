"""HTTP Digest authentication for SIP (RFC 7616, compatible with RFC 2617 / RFC 3261 §22).

Sans-IO: this module works on header *values* (the text after ``WWW-Authenticate:``,
``Proxy-Authenticate:``, ``Authorization:`` or ``Proxy-Authorization:``) and never on SIP
messages, sockets or the wall clock. The caller chooses 401/WWW-Authenticate or
407/Proxy-Authenticate (SS_SIP_AUTHENTICATION_CODE); the digest computation is the same.

Three parts:

* parsing/formatting: :func:`parse_challenge`, :func:`parse_credentials`, ``str(challenge)``,
  ``str(credentials)``; anything malformed raises :class:`DigestError` and nothing else;
* server: :class:`DigestServer` issues self-validating nonces (MAC-signed timestamp + random,
  so forged nonces are detected without storing every nonce) and verifies credentials,
  returning a :class:`VerifyResult` whose :class:`VerifyOutcome` tells a wrong password apart
  from a stale, forged or replayed nonce (docs/behaviour.md §2: only wrong passwords count as
  failures);
* client: :func:`answer` computes credentials for one challenge and :class:`DigestClient` keeps
  the nonce-count per nonce so that re-REGISTERs can reuse a nonce (RFC 7616 §3.4).
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import importlib
import re
import secrets
import struct
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final, Protocol, TypeAlias, cast

from vosapp.clock import Clock
from vosapp.enums import IdentityEnum
from vosapp.sip.entropy import token_bytes, token_hex
from vosapp.sip.headers import MEMO_LIMIT, keep_bounded, scan_in_c

__all__ = [
    "ALGORITHMS",
    "Challenge",
    "Credentials",
    "DigestClient",
    "DigestError",
    "DigestServer",
    "VerifyOutcome",
    "VerifyResult",
    "answer",
    "choose_challenge",
    "compute_ha1",
    "compute_response",
    "parse_challenge",
    "parse_credentials",
]

# RFC 7616 §6.1 algorithm names (canonical spelling) -> hashlib name.
_HASHES: Final = {"MD5": "md5", "SHA-256": "sha256"}


class _HashObject(Protocol):
    def hexdigest(self) -> str: ...


def _hash_constructor(name: str) -> Callable[[bytes], _HashObject]:
    """CPython's own implementation of hash ``name`` (its ``_md5``/``_sha256`` module), else
    hashlib's. The digests are the same; hashlib's are OpenSSL 3 objects, and each one fetches
    its algorithm anew (EVP_MD_fetch): twice the instructions for one H() of a registration
    (5,078 against 2,572 under callgrind; docs/benchmarks.md, thirty-sixth round). Both are
    faster than hashlib.new. A Python built without its own hashes has only hashlib's."""
    try:
        return cast("Callable[[bytes], _HashObject]",
                    getattr(importlib.import_module(f"_{name}"), name))
    except (ImportError, AttributeError):
        return cast("Callable[[bytes], _HashObject]", getattr(hashlib, name))


_HASH_CONSTRUCTORS: Final[dict[str, Callable[[bytes], _HashObject]]] = {
    "md5": _hash_constructor("md5"), "sha256": _hash_constructor("sha256")}
ALGORITHMS: Final[tuple[str, ...]] = ("MD5", "MD5-sess", "SHA-256", "SHA-256-sess")
#: The hash of each algorithm name as credentials give it (canonical): _hash looks it up
#: instead of cutting "-sess" off first (a method call per H()).
_CONSTRUCTOR_OF: Final[dict[str, Callable[[bytes], _HashObject]]] = {
    name: _HASH_CONSTRUCTORS[_HASHES[name.removesuffix("-sess")]] for name in ALGORITHMS}
_CANONICAL_ALGORITHM: Final = {name.lower(): name for name in ALGORITHMS}
_QOPS: Final = ("auth", "auth-int")


class DigestError(ValueError):
    """A malformed, partial or unsupported Digest header value.

    ``reason`` is a human sentence; ``code`` a stable short token for callers that branch on
    it: ``"syntax"``, ``"duplicate"``, ``"missing"``, ``"bad-nc"``, ``"unknown-algorithm"``,
    ``"unknown-qop"``, ``"scheme"``, ``"invalid"``.
    """

    def __init__(self, reason: str, code: str = "syntax") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


# --------------------------------------------------------------------------------------------
# Parsing (RFC 7235 §2.1 auth-param list; RFC 7230 §3.2.6 quoted-string)

_TCHARS: Final = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_WS: Final = " \t"


# One auth-param with its separator, for the single-pass fast path of _parse_params: name,
# "=", a quoted value or a token, then "," or the end. The fast path takes only texts without
# a backslash, so a quoted value here has no escapes (and "[^"]" is a cheaper class to repeat
# than "[^"\\]"). Anything else (escapes, stray characters, trailing commas) goes through the
# general scanner below.
# Every repeat is possessive (``*+``, ``++``): what follows each one can never match a
# character of its class, so giving characters back could not find another match; without
# the backtracking bookkeeping the pass is ~10 % cheaper.
_TCHAR_CLASS: Final = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]"
_FAST_PARAM_SHAPE: Final = r'[ \t,]*+{name}[ \t]*+=[ \t]*+(?:"{quoted}"|{token})[ \t]*+(?:,|\Z)'
_FAST_PARAM: Final = re.compile(_FAST_PARAM_SHAPE.format(
    name=f"({_TCHAR_CLASS}++)", quoted=r'([^"]*+)', token=f"({_TCHAR_CLASS}++)"))
# _FAST_PARAM, or else any one character: where no auth-param starts, findall yields that
# character in the last group. So one findall pass finds the params and whether they cover the
# text back to back (a fullmatch of the list as atomic auth-params, then a findall, was two
# passes): each search resumes where the previous match ended and tries _FAST_PARAM first, so
# the params found are exactly the successive back-to-back _FAST_PARAM matches.
_FAST_PARAM_OR_GAP: Final = re.compile("(?:" + _FAST_PARAM.pattern + ")|(.)", re.DOTALL)


def _parse_params_fast(text: str) -> dict[str, str] | None:
    """``text`` (stripped) parsed by one regex pass in C when it has the common shape, else
    None (then the general scanner decides, with its precise errors). Same result as the
    scanner."""
    if len(text) <= 6 or text[6] not in _WS or text[:6].lower() != "digest" or "\\" in text:
        return None
    found = _FAST_PARAM_OR_GAP.findall(text, 6)
    # findall gives "" for the alternatives that did not match, and a token is never empty:
    # ``token or quoted`` is the value. A gap (no auth-param where one should start) has no
    # name: the key "". A repeated name leaves fewer keys than matches (the scanner raises
    # "duplicate"). Either way the scanner decides.
    params = {name.lower(): token or quoted for name, quoted, token, _gap in found}
    if "" in params or len(params) != len(found):
        return None
    return params


#: The common shape of an auth-param list split in C (vosapp/sip/_scan.c): a subset of
#: _parse_params_fast's texts, the same dict for them, a fifth of its instructions.
_PARSE_IN_C: Final[Callable[[str], dict[str, str] | None] | None] = scan_in_c("auth_params")


def _parse_params(value: str, what: str) -> dict[str, str]:
    """Split ``Digest a=b, c="d"`` into ``{name_lower: value}`` (quotes and escapes removed;
    RFC 7235 §2.1: a value may be a token or a quoted-string, its meaning is the same)."""
    if not isinstance(value, str):
        raise DigestError(f"{what} must be a str, not {type(value).__name__}", "invalid")
    if "\r" in value or "\n" in value or "\x00" in value:
        raise DigestError(f"{what} contains CR, LF or NUL", "syntax")
    text = value.strip(_WS)
    if _PARSE_IN_C is not None:
        fast = _PARSE_IN_C(text)
        if fast is not None:
            return fast
    fast = _parse_params_fast(text)
    if fast is not None:
        return fast
    return _scan_params(text, what)


def _scan_params(text: str, what: str) -> dict[str, str]:
    """The general auth-param scanner (``text`` stripped), with a precise error for each way
    a value can be malformed."""
    pos = 0
    while pos < len(text) and text[pos] in _TCHARS:
        pos += 1
    scheme = text[:pos]
    if scheme.lower() != "digest":
        shown = scheme or text[:20]
        raise DigestError(f"{what}: scheme is {shown!r}, expected Digest", "scheme")
    if pos < len(text) and text[pos] not in _WS:
        raise DigestError(f"{what}: expected whitespace after the scheme", "syntax")
    params: dict[str, str] = {}
    length = len(text)
    while True:
        # skip whitespace and empty list elements (RFC 7230 §7 allows ", ,")
        while pos < length and text[pos] in _WS + ",":
            pos += 1
        if pos >= length:
            break
        start = pos
        while pos < length and text[pos] in _TCHARS:
            pos += 1
        name = text[start:pos].lower()
        if not name:
            raise DigestError(f"{what}: unexpected {text[pos]!r} at offset {pos}", "syntax")
        while pos < length and text[pos] in _WS:
            pos += 1
        if pos >= length or text[pos] != "=":
            raise DigestError(f"{what}: parameter {name!r} has no '=' value", "syntax")
        pos += 1
        while pos < length and text[pos] in _WS:
            pos += 1
        if pos < length and text[pos] == '"':
            pos += 1
            chars: list[str] = []
            while True:
                if pos >= length:
                    raise DigestError(f"{what}: unterminated quoted value of {name!r}", "syntax")
                ch = text[pos]
                if ch == "\\":
                    if pos + 1 >= length:
                        raise DigestError(
                            f"{what}: unterminated quoted value of {name!r}", "syntax"
                        )
                    chars.append(text[pos + 1])
                    pos += 2
                    continue
                if ch == '"':
                    pos += 1
                    break
                chars.append(ch)
                pos += 1
            item = "".join(chars)
        else:
            start = pos
            while pos < length and text[pos] in _TCHARS:
                pos += 1
            if pos == start:
                raise DigestError(f"{what}: parameter {name!r} has an empty value", "syntax")
            item = text[start:pos]
        if name in params:
            raise DigestError(f"{what}: duplicate parameter {name!r}", "duplicate")
        params[name] = item
        while pos < length and text[pos] in _WS:
            pos += 1
        if pos < length and text[pos] != ",":
            raise DigestError(
                f"{what}: expected ',' after parameter {name!r}, found {text[pos]!r}", "syntax"
            )
    return params


def _algorithm(raw: str | None, what: str) -> str:
    if raw is None:
        return "MD5"  # RFC 7616 §3.3: absent means MD5
    canonical = _CANONICAL_ALGORITHM.get(raw.lower())
    if canonical is None:
        raise DigestError(
            f"{what}: unknown algorithm {raw!r} (supported: {', '.join(ALGORITHMS)})",
            "unknown-algorithm",
        )
    return canonical


def _bool(raw: str | None) -> bool:
    return raw is not None and raw.lower() == "true"


def _quote(text: str) -> str:
    if "\r" in text or "\n" in text or "\x00" in text:
        raise DigestError(f"cannot put CR, LF or NUL into a header value: {text!r}", "invalid")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _token_or_quote(text: str) -> str:
    return text if text and all(ch in _TCHARS for ch in text) else _quote(text)


def _extra_str(extra: tuple[tuple[str, str], ...]) -> list[str]:
    return [f"{name}={_token_or_quote(value)}" for name, value in extra]


@dataclass(frozen=True)
class Challenge:
    """A ``WWW-Authenticate`` / ``Proxy-Authenticate`` Digest challenge (RFC 7616 §3.3).

    ``str(challenge)`` gives the header value. ``qop`` is the offered list (empty for an
    RFC 2069-style challenge); ``extra`` keeps unknown parameters in order.
    """

    realm: str
    nonce: str
    opaque: str | None = None
    algorithm: str = "MD5"
    qop: tuple[str, ...] = ("auth",)
    stale: bool = False
    domain: str | None = None
    userhash: bool = False
    extra: tuple[tuple[str, str], ...] = ()

    def __str__(self) -> str:
        parts = [f"realm={_quote(self.realm)}"]
        if self.domain is not None:
            parts.append(f"domain={_quote(self.domain)}")
        parts.append(f"nonce={_quote(self.nonce)}")
        if self.opaque is not None:
            parts.append(f"opaque={_quote(self.opaque)}")
        if self.stale:
            parts.append("stale=true")
        parts.append(f"algorithm={self.algorithm}")
        if self.qop:
            parts.append(f"qop={_quote(','.join(self.qop))}")
        if self.userhash:
            parts.append("userhash=true")
        parts.extend(_extra_str(self.extra))
        return "Digest " + ", ".join(parts)


@dataclass(slots=True, unsafe_hash=True)
class Credentials:
    """An ``Authorization`` / ``Proxy-Authorization`` Digest response (RFC 7616 §3.4).

    ``nc`` is an int (sent as 8 hex digits); ``qop``, ``cnonce`` and ``nc`` are all None for an
    RFC 2069-style answer. ``str(credentials)`` gives the header value.
    """

    username: Final[str]
    realm: Final[str]
    nonce: Final[str]
    uri: Final[str]
    response: Final[str]
    algorithm: Final[str]
    cnonce: Final[str | None]
    opaque: Final[str | None]
    qop: Final[str | None]
    nc: Final[int | None]
    userhash: Final[bool]
    extra: Final[tuple[tuple[str, str], ...]]

    def __init__(self, username: str, realm: str, nonce: str, uri: str, response: str,
                 algorithm: str = "MD5", cnonce: str | None = None, opaque: str | None = None,
                 qop: str | None = None, nc: int | None = None, userhash: bool = False,
                 extra: tuple[tuple[str, str], ...] = ()) -> None:
        self.username, self.realm, self.nonce = username, realm, nonce
        self.uri, self.response, self.algorithm = uri, response, algorithm
        self.cnonce, self.opaque, self.qop, self.nc = (
            cnonce, opaque, qop, nc)
        self.userhash, self.extra = userhash, extra

    def __str__(self) -> str:
        parts = [
            f"username={_quote(self.username)}",
            f"realm={_quote(self.realm)}",
            f"nonce={_quote(self.nonce)}",
            f"uri={_quote(self.uri)}",
            f"response={_quote(self.response)}",
            f"algorithm={self.algorithm}",
        ]
        if self.cnonce is not None:
            parts.append(f"cnonce={_quote(self.cnonce)}")
        if self.opaque is not None:
            parts.append(f"opaque={_quote(self.opaque)}")
        if self.qop is not None:
            parts.append(f"qop={self.qop}")
        if self.nc is not None:
            parts.append(f"nc={self.nc:08x}")
        if self.userhash:
            parts.append("userhash=true")
        parts.extend(_extra_str(self.extra))
        return "Digest " + ", ".join(parts)


_CHALLENGE_KNOWN: Final = {"realm", "nonce", "opaque", "algorithm", "qop", "stale", "domain", "userhash"}
_CREDENTIALS_KNOWN: Final = {
    "username", "realm", "nonce", "uri", "response", "algorithm", "cnonce", "opaque", "qop", "nc",
    "userhash",
}
_CREDENTIALS_REQUIRED_ORDER: Final = ("username", "realm", "nonce", "uri", "response")


def _holds_all(params: dict[str, str], names: tuple[str, ...]) -> bool:
    """Whether ``params`` has every one of ``names``."""
    for name in names:
        if name not in params:
            return False
    return True


def _holds_only(params: dict[str, str], names: set[str]) -> bool:
    """Whether every name of ``params`` is one of ``names``."""
    for name in params:
        if name not in names:
            return False
    return True


def _require(params: dict[str, str], names: tuple[str, ...], what: str) -> None:
    missing = [name for name in names if name not in params]
    if missing:
        raise DigestError(f"{what}: missing required parameter(s) {', '.join(missing)}", "missing")


def parse_challenge(value: str) -> Challenge:
    """Parse a ``WWW-Authenticate``/``Proxy-Authenticate`` value; raise :class:`DigestError`."""
    what = "Digest challenge"
    get = _parse_params(value, what)
    _require(get, ("realm", "nonce"), what)
    qops: tuple[str, ...] = ()
    if "qop" in get:
        qops = tuple(q.strip(_WS).lower() for q in get["qop"].split(",") if q.strip(_WS))
        if not qops:
            raise DigestError(f"{what}: empty qop list", "unknown-qop")
    return Challenge(
        realm=get["realm"],
        nonce=get["nonce"],
        opaque=get.get("opaque"),
        algorithm=_algorithm(get.get("algorithm"), what),
        qop=qops,
        stale=_bool(get.get("stale")),
        domain=get.get("domain"),
        userhash=_bool(get.get("userhash")),
        extra=tuple((n, v) for n, v in get.items() if n not in _CHALLENGE_KNOWN),
    )


#: RFC 7616 §3.4: nc is 8LHEX; 1 to 8 hex digits are accepted (leading zeros dropped by some).
_NONCE_COUNT: Final = re.compile(r"[0-9a-fA-F]{1,8}")
#: nc values as compute_response writes them (RFC 7616 §3.4.1: 8 hex digits), for the
#: counts a client's reuse of a nonce reaches.
_NC_HEX_KEPT: Final = 256
_NC_HEX: Final[tuple[str, ...]] = tuple(format(n, "08x") for n in range(_NC_HEX_KEPT))
#: The same texts read back (nc 0 left to the checks): the values clients send by far the
#: most, a dict look-up instead of the regex and int() (~2,000 instructions a REGISTER,
#: docs/benchmarks.md, forty-first round).
_USUAL_NC: Final[dict[str, int]] = {text: n for n, text in enumerate(_NC_HEX) if n}


def parse_credentials(value: str) -> Credentials:
    """Parse an ``Authorization``/``Proxy-Authorization`` value; raise :class:`DigestError`.

    Checks RFC 7616 §3.4 consistency: with ``qop`` both ``cnonce`` and ``nc`` are required, and
    ``nc`` must be 1 to 8 hex digits.
    """
    what = "Digest credentials"
    get = _parse_params(value, what)
    # (name by name: a dict view compared with a set is a generic rich comparison, about
    # 1,900 instructions; docs/benchmarks.md, thirty-seventh round)
    if not _holds_all(get, _CREDENTIALS_REQUIRED_ORDER):
        if "username" not in get and "username*" in get:
            raise DigestError(f"{what}: username* (RFC 8187 encoding) is not supported",
                              "missing")
        _require(get, _CREDENTIALS_REQUIRED_ORDER, what)
    qop = get.get("qop")
    if qop is not None:
        qop = qop.lower()
        if qop not in _QOPS:
            raise DigestError(f"{what}: unknown qop {get['qop']!r}", "unknown-qop")
        if "cnonce" not in get or "nc" not in get:
            _require(get, ("cnonce", "nc"), what + f" with qop={qop}")
    nc: int | None = None
    if "nc" in get:
        raw_nc = get["nc"]
        nc = _USUAL_NC.get(raw_nc)
        if nc is None:
            if _NONCE_COUNT.fullmatch(raw_nc) is None:
                raise DigestError(f"{what}: nc {raw_nc!r} is not 8 hex digits", "bad-nc")
            nc = int(raw_nc, 16)
    algorithm = _algorithm(get.get("algorithm"), what)
    # The constructor: compiled (vosapp/compiled.py) it sets the fields natively. (Run as
    # source, a frozen dataclass's __init__ sets each through object.__setattr__: 1.5 us more.)
    return Credentials(
        username=get["username"],
        realm=get["realm"],
        nonce=get["nonce"],
        uri=get["uri"],
        response=get["response"],
        algorithm=algorithm,
        cnonce=get.get("cnonce"),
        opaque=get.get("opaque"),
        qop=qop,
        nc=nc,
        userhash=_bool(get.get("userhash")),
        extra=() if _holds_only(get, _CREDENTIALS_KNOWN)
        else tuple((n, v) for n, v in get.items() if n not in _CREDENTIALS_KNOWN),
    )


# --------------------------------------------------------------------------------------------
# Computation (RFC 7616 §3.4.1-§3.4.3)


def _utf8(text: str) -> bytes:
    """UTF-8 bytes of any str, lone surrogates included (they can arrive from decoded wire
    bytes or a hostile header; hashing must never raise on them)."""
    return text.encode("utf-8", "surrogatepass")


def _hash(algorithm: str, data: str | bytes) -> str:
    constructor = _CONSTRUCTOR_OF.get(algorithm)
    if constructor is None:
        base = algorithm.removesuffix("-sess")
        try:
            constructor = _HASH_CONSTRUCTORS[_HASHES[base]]
        except KeyError:
            raise DigestError(f"unknown algorithm {algorithm!r}", "unknown-algorithm") from None
    raw = _utf8(data) if isinstance(data, str) else data
    return constructor(raw).hexdigest()


def compute_ha1(algorithm: str, username: str, realm: str, password: str) -> str:
    """``H(username:realm:password)`` — the per-user secret a server may store instead of the
    password. For ``-sess`` algorithms pass this to :func:`compute_response` unchanged; the
    session key is derived there."""
    return _hash(algorithm, f"{username}:{realm}:{password}")


# H(A2) of qop=auth or none by (algorithm, method, uri): public values, bounded as the
# header memos are.
_HA2_MEMO: Final[dict[tuple[str, str, str], str]] = {}
_HA2_MEMO_SIZE: Final = MEMO_LIMIT
#: Users' H(A1) a DigestServer keeps (DigestServer._ha1_memo): more than the header memos,
#: one per account that registers.
_HA1_MEMO_SIZE: Final = 8 * MEMO_LIMIT


def compute_response(
    *,
    algorithm: str,
    ha1: str,
    nonce: str,
    method: str,
    uri: str,
    qop: str | None = None,
    nc: int | None = None,
    cnonce: str | None = None,
    body: bytes = b"",
) -> str:
    """The ``response`` value (lowercase hex) for the given inputs (RFC 7616 §3.4.1)."""
    if algorithm.endswith("-sess"):
        if cnonce is None:
            raise DigestError(f"{algorithm} needs a cnonce", "missing")
        ha1 = _hash(algorithm, f"{ha1}:{nonce}:{cnonce}")
    if qop == "auth-int":
        ha2 = _hash(algorithm, f"{method}:{uri}:{_hash(algorithm, body)}")
    else:
        # H(method:uri) repeats: every phone's REGISTER names the same registrar URI.
        key = (algorithm, method, uri)
        memo = _HA2_MEMO.get(key)
        if memo is None:
            memo = _hash(algorithm, f"{method}:{uri}")
            keep_bounded(_HA2_MEMO, key, memo, _HA2_MEMO_SIZE)
        ha2 = memo
    if qop is None:  # RFC 2069 compatibility (RFC 2617 §3.2.2.1)
        return _hash(algorithm, f"{ha1}:{nonce}:{ha2}")
    if nc is None or cnonce is None:
        raise DigestError(f"qop={qop} needs nc and cnonce", "missing")
    # nc as 8 hex digits, not by a format spec in the f-string: compiled, an f-string with
    # one is built by a str.format call per part, six here (~9,000 instructions a REGISTER,
    # docs/benchmarks.md, forty-first round); a phone counts from 1, so the text is a lookup.
    nc_hex = _NC_HEX[nc] if 0 <= nc < _NC_HEX_KEPT else format(nc, "08x")
    return _hash(algorithm, f"{ha1}:{nonce}:{nc_hex}:{cnonce}:{qop}:{ha2}")


# --------------------------------------------------------------------------------------------
# Client side


def choose_challenge(values: Iterable[str]) -> Challenge:
    """The challenge to answer among several WWW-/Proxy-Authenticate values of one response.

    RFC 7616 §3.7 / RFC 8760 §2.4: the server lists challenges in its order of preference and
    the client uses the first one it supports; values that do not parse (other schemes,
    unsupported algorithms) are skipped. Raises :class:`DigestError` when none is usable.
    """
    problems = []
    for value in values:
        try:
            return parse_challenge(value)
        except DigestError as exc:
            problems.append(exc.reason)
    raise DigestError(
        "no usable Digest challenge" + (f": {'; '.join(problems)}" if problems else ""),
        "missing",
    )


def answer(
    challenge: Challenge | str,
    method: str,
    uri: str,
    username: str,
    password: str,
    *,
    nc: int = 1,
    cnonce: str | None = None,
    body: bytes = b"",
) -> Credentials:
    """Credentials answering ``challenge`` for a request ``method uri`` (REGISTER, INVITE, ...).

    Picks ``qop=auth`` when offered, else ``auth-int``, else the RFC 2069 form. ``cnonce``
    defaults to fresh randomness. ``uri`` is the Request-URI as sent (RFC 3261 §22.4).
    Put the result into ``Authorization`` after a 401, ``Proxy-Authorization`` after a 407.
    """
    if isinstance(challenge, str):
        challenge = parse_challenge(challenge)
    if not 1 <= nc <= 0xFFFFFFFF:
        raise DigestError(f"nc must be 1..0xffffffff, not {nc}", "bad-nc")
    if "auth" in challenge.qop:
        qop: str | None = "auth"
    elif "auth-int" in challenge.qop:
        qop = "auth-int"
    elif challenge.qop:
        raise DigestError(f"no supported qop in {challenge.qop!r}", "unknown-qop")
    else:
        qop = None
    if qop is not None or challenge.algorithm.endswith("-sess"):
        cnonce = cnonce if cnonce is not None else token_hex(8)
    else:
        cnonce = None
    ha1 = compute_ha1(challenge.algorithm, username, challenge.realm, password)
    response = compute_response(
        algorithm=challenge.algorithm,
        ha1=ha1,
        nonce=challenge.nonce,
        method=method,
        uri=uri,
        qop=qop,
        nc=nc if qop else None,
        cnonce=cnonce,
        body=body,
    )
    sent_username = username
    if challenge.userhash:  # RFC 7616 §3.4.4
        sent_username = _hash(challenge.algorithm, f"{username}:{challenge.realm}")
    return Credentials(
        username=sent_username,
        realm=challenge.realm,
        nonce=challenge.nonce,
        uri=uri,
        response=response,
        algorithm=challenge.algorithm,
        cnonce=cnonce,
        opaque=challenge.opaque,
        qop=qop,
        nc=nc if qop else None,
        userhash=challenge.userhash,
    )


class DigestClient:
    """Answers challenges for one username/password, counting nc per nonce (RFC 7616 §3.4).

    ``authorize(challenge, method, uri)`` answers a fresh 401/407 challenge;
    ``reauthorize(method, uri)`` reuses the last nonce of a realm with the next nc (e.g. for a
    REGISTER refresh) and returns None when no challenge has been seen yet. Only the latest
    nonce per realm is remembered, so memory stays bounded.
    """

    def __init__(self, username: str, password: str) -> None:
        self.username = username
        self.password = password
        self._last: dict[str, tuple[Challenge, int]] = {}  # realm -> (challenge, last nc)

    def authorize(
        self, challenge: Challenge | str, method: str, uri: str, *, body: bytes = b""
    ) -> Credentials:
        """Credentials for ``challenge`` (nc 1 for a new nonce, next nc for a known one)."""
        if isinstance(challenge, str):
            challenge = parse_challenge(challenge)
        previous = self._last.pop(challenge.realm, None)
        nc = previous[1] + 1 if previous and previous[0].nonce == challenge.nonce else 1
        self._last[challenge.realm] = (challenge, nc)  # re-inserted: most recent realm last
        return answer(challenge, method, uri, self.username, self.password, nc=nc, body=body)

    def reauthorize(
        self, method: str, uri: str, *, realm: str | None = None, body: bytes = b""
    ) -> Credentials | None:
        """Reuse the last nonce of ``realm`` (default: the most recently used realm) with the
        next nc, e.g. for a REGISTER refresh; None before any challenge for it was seen."""
        if realm is None:
            if not self._last:
                return None
            realm = next(reversed(self._last))
        previous = self._last.get(realm)
        if previous is None:
            return None
        return self.authorize(previous[0], method, uri, body=body)

    def nc_for(self, nonce: str) -> int:
        """The last nc sent with ``nonce`` (0 when never used)."""
        for challenge, nc in self._last.values():
            if challenge.nonce == nonce:
                return nc
        return 0


# --------------------------------------------------------------------------------------------
# Server side


class VerifyOutcome(IdentityEnum):
    """Why credentials were accepted or not. Only WRONG_PASSWORD is a failed password."""

    OK = "ok"
    WRONG_PASSWORD = "wrong-password"
    UNKNOWN_USER = "unknown-user"  # password lookup returned None
    STALE_NONCE = "stale-nonce"  # ours, valid digest, but expired/forgotten: stale=true
    FORGED_NONCE = "forged-nonce"  # not issued by this server (bad signature / opaque)
    REPLAYED_NC = "replayed-nc"  # nc not greater than the last one seen for this nonce
    WRONG_REALM = "wrong-realm"
    UNKNOWN_ALGORITHM = "unknown-algorithm"
    MALFORMED = "malformed"
    URI_MISMATCH = "uri-mismatch"


@dataclass(slots=True, unsafe_hash=True)
class VerifyResult:
    """The outcome of :meth:`DigestServer.verify` with a human ``detail`` for the log."""

    outcome: Final[VerifyOutcome]
    username: Final[str | None]
    detail: Final[str]

    def __init__(self, outcome: VerifyOutcome, username: str | None = None,
                 detail: str = "") -> None:
        self.outcome, self.username, self.detail = (
            outcome, username, detail)

    @property
    def ok(self) -> bool:
        return self.outcome is VerifyOutcome.OK

    @property
    def stale(self) -> bool:
        """True when the re-challenge should carry ``stale=true`` (RFC 7616 §3.3)."""
        return self.outcome is VerifyOutcome.STALE_NONCE


PasswordSource: TypeAlias = str | Callable[[str], "str | None"]

_NONCE_LAYOUT: Final = struct.Struct(">qB4s8s")  # issued (ms), algorithm index, instance id, random
_SIGNATURE_BYTES: Final = 12
# base64url (RFC 4648 §5) through binascii's C: base64's urlsafe functions are the same calls
# behind two or three Python frames, and a registration encodes one nonce and decodes one.
_TO_URLSAFE: Final = bytes.maketrans(b"+/", b"-_")
_FROM_URLSAFE: Final = str.maketrans("-_", "+/")


#: Seconds between two looks for expired nonces in the replay table (DigestServer).
_PRUNE_PERIOD: Final = 1.0


@dataclass(slots=True)  # up to max_nonces of them live in the replay table
class _NonceState:
    issued: float
    #: What :meth:`DigestServer._decode_nonce` reads back from the nonce: its algorithm (and
    #: the issue time, ``issued`` in the whole milliseconds the nonce carries).
    algorithm: str
    last_nc: int = 0

    def __init__(self, issued: float, algorithm: str, last_nc: int = 0) -> None:
        self.issued, self.algorithm, self.last_nc = issued, algorithm, last_nc


class DigestServer:
    """Issues Digest challenges and verifies answers for one realm.

    Nonces are ``base64url(issued-ms, algorithm, instance, random, MAC(secret, ...))``: the
    signature detects forged nonces; the instance id makes nonces of a previous run (same
    secret) *stale* rather than forged, so phones re-authenticate silently after a restart.
    The last nc of each issued nonce is kept in a bounded LRU table (``max_nonces``); a nonce
    that fell out of it is treated as stale, which is always safe.
    """

    def __init__(
        self,
        realm: str,
        secret: bytes,
        clock: Clock,
        *,
        nonce_lifetime: float = 300.0,
        max_nonces: int = 10_000,
        require_qop: bool = True,
        qop: tuple[str, ...] = ("auth",),
        algorithms: tuple[str, ...] = ALGORITHMS,
    ) -> None:
        if not realm or any(ch in realm for ch in "\r\n\x00"):
            raise ValueError(f"realm must be non-empty without CR, LF or NUL: {realm!r}")
        if not isinstance(secret, bytes) or len(secret) < 16:
            raise ValueError("DigestServer secret must be at least 16 bytes")
        if nonce_lifetime <= 0:
            raise ValueError(f"nonce_lifetime must be positive, not {nonce_lifetime!r}")
        if max_nonces < 1:
            raise ValueError(f"max_nonces must be at least 1, not {max_nonces!r}")
        for name in algorithms:
            if name not in ALGORITHMS:
                raise ValueError(f"unknown algorithm {name!r}; supported: {ALGORITHMS}")
        for name in qop:
            if name not in _QOPS:
                raise ValueError(f"unknown qop {name!r}; supported: {_QOPS}")
        self.realm = realm
        self.clock = clock
        self.nonce_lifetime = float(nonce_lifetime)
        self.max_nonces = max_nonces
        self.require_qop = require_qop
        self.qop = tuple(qop)
        self.algorithms = tuple(algorithms)
        self._instance = secrets.token_bytes(4)
        self._nonces: OrderedDict[str, _NonceState] = OrderedDict()
        #: When _issue_nonce next drops the expired nonces (clock time).
        self._next_prune = 0.0
        # The nonce's MAC is keyed BLAKE2s (RFC 7693 §2.5: a keyed hash is a MAC) over the
        # realm and the nonce's body; HMAC-SHA256 took a copy of a keyed object and three
        # Python frames. Its key is derived from the secret (BLAKE2s takes at most 32 key
        # bytes). The keyed state that has taken the realm is made once and copied for each
        # signature: a new keyed object per signature parsed its keywords and hashed the key
        # block again, twice the cost.
        self._nonce_mac = hashlib.blake2s(
            _utf8(realm), digest_size=_SIGNATURE_BYTES,
            key=hmac.digest(secret, b"vosapp nonce key", "sha256"))
        self.opaque = hmac.new(secret, b"opaque:" + _utf8(realm), "sha256").hexdigest()[:32]
        # Challenge.__str__'s layout around the nonce (no domain, userhash or extra here).
        self._challenge_head = f"Digest realm={_quote(realm)}, nonce=\""
        self._challenge_opaque = f"\", opaque={_quote(self.opaque)}, "
        self._challenge_qop = f", qop={_quote(','.join(self.qop))}" if self.qop else ""
        #: H(username:realm:password) by (algorithm, username, password): a phone registers
        #: again and again with the same password, and each H() is an OpenSSL object made
        #: and finished (2 % of a registrar's loop at capacity: docs/benchmarks.md,
        #: thirty-fifth round). Bounded like the header memos. An unknown user's stand-in
        #: H() is kept the same way (under password None), so that a repeated name costs
        #: the same whether it exists or not (see verify).
        self._ha1_memo: dict[tuple[str, str, str | None], str] = {}

    # -- challenges -------------------------------------------------------------------------

    def challenge(self, *, stale: bool = False, algorithm: str = "MD5") -> Challenge:
        """A fresh challenge; put ``str()`` of it into WWW-/Proxy-Authenticate."""
        return Challenge(
            realm=self.realm,
            nonce=self._issue_nonce(algorithm),
            opaque=self.opaque,
            algorithm=algorithm,
            qop=self.qop,
            stale=stale,
        )

    def challenge_value(self, *, stale: bool = False, algorithm: str = "MD5") -> str:
        """``str(self.challenge(...))`` written straight from a fresh nonce and the parts that
        never change (the header value of every 401/407; no Challenge object to build)."""
        nonce = self._issue_nonce(algorithm)
        return (f"{self._challenge_head}{nonce}{self._challenge_opaque}"
                f"{'stale=true, ' if stale else ''}algorithm={algorithm}{self._challenge_qop}")

    def _issue_nonce(self, algorithm: str) -> str:
        if algorithm not in self.algorithms:
            raise ValueError(f"algorithm {algorithm!r} not enabled; enabled: {self.algorithms}")
        now = self.clock.now()
        body = _NONCE_LAYOUT.pack(
            int(now * 1000), ALGORITHMS.index(algorithm), self._instance, token_bytes(8)
        )
        nonce = (binascii.b2a_base64(body + self._sign(body), newline=False)
                 .translate(_TO_URLSAFE).decode().rstrip("="))
        nonces = self._nonces
        nonces[nonce] = _NonceState(issued=now, algorithm=algorithm)
        if now >= self._next_prune:
            # Expired nonces leave from the old end at most once a _PRUNE_PERIOD: a look at
            # the oldest made a view and an iterator per nonce issued. verify() checks the
            # lifetime itself, so one kept a moment longer is still refused as stale.
            self._next_prune = now + _PRUNE_PERIOD
            while nonces:
                oldest = next(iter(nonces.values()))
                if now - oldest.issued <= self.nonce_lifetime:
                    break
                nonces.popitem(last=False)
        while len(nonces) > self.max_nonces:
            nonces.popitem(last=False)
        return nonce

    def _sign(self, body: bytes) -> bytes:
        mac = self._nonce_mac.copy()
        mac.update(body)
        return mac.digest()

    def _decode_nonce(self, nonce: str) -> tuple[float, str, bytes] | None:
        """(issued, algorithm, instance) of a nonce we signed, or None when it is not ours."""
        try:
            raw = binascii.a2b_base64((nonce + "=" * (-len(nonce) % 4)).translate(_FROM_URLSAFE))
        except (ValueError, TypeError):
            return None
        if len(raw) != _NONCE_LAYOUT.size + _SIGNATURE_BYTES:
            return None
        body, signature = raw[: _NONCE_LAYOUT.size], raw[_NONCE_LAYOUT.size :]
        if not hmac.compare_digest(signature, self._sign(body)):
            return None
        issued_ms, algorithm_index, instance, _random = _NONCE_LAYOUT.unpack(body)
        if algorithm_index >= len(ALGORITHMS):
            return None
        return issued_ms / 1000.0, ALGORITHMS[algorithm_index], instance

    # -- verification -----------------------------------------------------------------------

    def verify(
        self,
        credentials: Credentials | str,
        method: str,
        password: PasswordSource | None = None,
        *,
        ha1: str | None = None,
        body: bytes = b"",
        request_uri: str | None = None,
    ) -> VerifyResult:
        """Check ``credentials`` (parsed, or the raw header value) for a request ``method``.

        ``password`` is the plain password or a ``lookup(username) -> password | None``;
        alternatively pass ``ha1`` (see :func:`compute_ha1`, for the credentials' algorithm).
        ``request_uri``, when given, must equal the credentials' ``uri`` (RFC 3261 §22.4
        leaves this check to the server; pass None to skip it).

        Order follows RFC 7616 §3.3: signature (FORGED) before the digest; the digest
        (WRONG_PASSWORD) before expiry, so ``stale=true`` is only sent with a valid digest;
        then nc replay. A successful check records the nc.
        """
        if isinstance(credentials, str):
            try:
                credentials = parse_credentials(credentials)
            except DigestError as exc:
                outcome = (
                    VerifyOutcome.UNKNOWN_ALGORITHM
                    if exc.code == "unknown-algorithm"
                    else VerifyOutcome.MALFORMED
                )
                return VerifyResult(outcome, None, exc.reason)
        user = credentials.username
        if credentials.realm != self.realm:
            return VerifyResult(
                VerifyOutcome.WRONG_REALM,
                user,
                f"realm {credentials.realm!r}, expected {self.realm!r}",
            )
        if credentials.algorithm not in self.algorithms:
            return VerifyResult(
                VerifyOutcome.UNKNOWN_ALGORITHM, user, f"{credentials.algorithm} is not enabled"
            )
        tracked = self._nonces.get(credentials.nonce)
        if tracked is not None:
            # A nonce in the table is one this run issued: its signature holds by construction,
            # and the table has what decoding would read from it.
            issued, nonce_algorithm, instance = (int(tracked.issued * 1000) / 1000.0,
                                                 tracked.algorithm, self._instance)
        else:
            decoded = self._decode_nonce(credentials.nonce)
            if decoded is None:
                return VerifyResult(VerifyOutcome.FORGED_NONCE, user, "nonce not signed by us")
            issued, nonce_algorithm, instance = decoded
        # compare_digest on bytes: on str it raises TypeError for non-ASCII input
        if credentials.opaque is not None and not hmac.compare_digest(
            _utf8(credentials.opaque), self.opaque.encode()
        ):
            return VerifyResult(VerifyOutcome.FORGED_NONCE, user, "opaque does not match")
        if nonce_algorithm != credentials.algorithm:
            return VerifyResult(
                VerifyOutcome.UNKNOWN_ALGORITHM,
                user,
                f"answered {credentials.algorithm} to a {nonce_algorithm} challenge",
            )
        if credentials.qop is None:
            if self.require_qop and self.qop:
                return VerifyResult(VerifyOutcome.MALFORMED, user, "qop missing")
        elif credentials.qop not in self.qop:
            return VerifyResult(
                VerifyOutcome.MALFORMED, user, f"qop={credentials.qop} was not offered"
            )
        if credentials.qop is not None and credentials.nc == 0:
            return VerifyResult(VerifyOutcome.MALFORMED, user, "nc must start at 1")
        if credentials.userhash:
            return VerifyResult(VerifyOutcome.MALFORMED, user, "userhash was not offered")
        if request_uri is not None and credentials.uri != request_uri:
            return VerifyResult(
                VerifyOutcome.URI_MISMATCH,
                user,
                f"uri {credentials.uri!r} differs from Request-URI {request_uri!r}",
            )
        if ha1 is None:
            if password is None:
                raise TypeError("verify() needs a password, a password lookup or ha1")
            secret = password(user) if callable(password) else password
            key = (credentials.algorithm, user, secret)
            known_ha1 = self._ha1_memo.get(key)
            if known_ha1 is None:
                # An unknown user: the same work as a real check (an H() the first time, the
                # memo afterwards), so timing does not reveal which users exist.
                known_ha1 = compute_ha1(credentials.algorithm, user, self.realm,
                                        token_hex(8) if secret is None else secret)
                keep_bounded(self._ha1_memo, key, known_ha1, _HA1_MEMO_SIZE)
            if secret is None:
                return VerifyResult(VerifyOutcome.UNKNOWN_USER, user, "no such user")
            ha1 = known_ha1
        expected = compute_response(
            algorithm=credentials.algorithm,
            ha1=ha1,
            nonce=credentials.nonce,
            method=method,
            uri=credentials.uri,
            qop=credentials.qop,
            nc=credentials.nc,
            cnonce=credentials.cnonce,
            body=body,
        )
        given = _utf8(credentials.response.lower())
        if not hmac.compare_digest(expected.encode(), given):
            return VerifyResult(VerifyOutcome.WRONG_PASSWORD, user, "response does not match")
        now = self.clock.now()
        if instance != self._instance:
            return VerifyResult(VerifyOutcome.STALE_NONCE, user, "nonce from a previous run")
        if now - issued > self.nonce_lifetime or issued > now + 1.0:
            self._nonces.pop(credentials.nonce, None)
            return VerifyResult(VerifyOutcome.STALE_NONCE, user, "nonce expired")
        state = self._nonces.get(credentials.nonce)
        if state is None:
            return VerifyResult(VerifyOutcome.STALE_NONCE, user, "nonce no longer tracked")
        if credentials.qop is not None:
            assert credentials.nc is not None  # parse_credentials guarantees it
            if credentials.nc <= state.last_nc:
                return VerifyResult(
                    VerifyOutcome.REPLAYED_NC,
                    user,
                    f"nc {credentials.nc} not above last {state.last_nc}",
                )
            state.last_nc = credentials.nc
        self._nonces.move_to_end(credentials.nonce)
        return VerifyResult(VerifyOutcome.OK, user, "")

    def tracked_nonces(self) -> int:
        """How many nonces the replay table holds (bounded by ``max_nonces``)."""
        return len(self._nonces)

