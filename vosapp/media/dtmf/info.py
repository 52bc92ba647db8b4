"""SIP INFO DTMF bodies: ``application/dtmf-relay`` and ``application/dtmf``.

``application/dtmf-relay`` (the de-facto format of Cisco and most softswitches, VOS3000
included) is a set of ``key=value`` lines::

    Signal=5\\r\\n
    Duration=160\\r\\n

``Signal`` is the key (0-9, ``*``, ``#``, A-D; ``!`` for a hook flash). Some devices send the
RFC 4733 event code instead (``Signal=10`` for ``*``, ``11`` for ``#``, ``12``-``15`` for
A-D, ``16`` for flash); both are accepted. ``Duration`` is in milliseconds and optional on
receipt. Keys are case-insensitive, lines may end in CRLF or LF, unknown keys are ignored.

``application/dtmf`` carries only the key, e.g. ``5``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import InfoBodyError

__all__ = [
    "CONTENT_TYPE_DTMF",
    "CONTENT_TYPE_DTMF_RELAY",
    "DEFAULT_DURATION_MS",
    "InfoDigit",
    "format_dtmf",
    "format_dtmf_relay",
    "format_info_body",
    "parse_dtmf",
    "parse_dtmf_relay",
    "parse_info_body",
]

CONTENT_TYPE_DTMF_RELAY = "application/dtmf-relay"
CONTENT_TYPE_DTMF = "application/dtmf"
#: Duration used when a sender gives none (and when formatting without one).
DEFAULT_DURATION_MS = 160
_MAX_DURATION_MS = 60_000
_KEYS = "0123456789*#ABCD!"


@dataclass(frozen=True, slots=True)
class InfoDigit:
    """A digit carried by a SIP INFO request.

    Attributes
    ----------
    digit : str
        ``0-9 * # A-D`` or ``!`` (flash).
    duration_ms : int or None
        Duration from the body, or ``None`` when the body has none (``application/dtmf``).
    """

    digit: str
    duration_ms: int | None = None


def _text(body: bytes | str) -> str:
    if isinstance(body, bytes):
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InfoBodyError(f"DTMF INFO body is not UTF-8 text: {exc}") from None
    if isinstance(body, str):
        return body
    raise InfoBodyError(f"DTMF INFO body must be bytes or str, got {type(body).__name__}")


def _key(value: str, where: str) -> str:
    value = value.strip()
    if len(value) == 1 and value.upper() in _KEYS:
        return value.upper()
    if value.isdigit() and 10 <= int(value) <= 16:
        return _KEYS[int(value)]
    raise InfoBodyError(f"{where}: {value!r} is not a DTMF key (0-9, *, #, A-D, ! or 10-16)")


def _check_digit(digit: str) -> str:
    if not isinstance(digit, str) or len(digit) != 1 or digit.upper() not in _KEYS:
        raise InfoBodyError(f"{digit!r} is not a DTMF key; expected one of {_KEYS}")
    return digit.upper()


def _check_duration(duration_ms: int) -> int:
    if isinstance(duration_ms, bool) or not isinstance(duration_ms, int):
        raise InfoBodyError(f"Duration must be an int (ms), got {duration_ms!r}")
    if not 1 <= duration_ms <= _MAX_DURATION_MS:
        raise InfoBodyError(f"Duration {duration_ms} ms is outside 1-{_MAX_DURATION_MS}")
    return duration_ms


def parse_dtmf_relay(body: bytes | str) -> InfoDigit:
    """Parse an ``application/dtmf-relay`` body.

    Raises
    ------
    InfoBodyError
        Without a ``Signal`` line, with two of them, with a bad key or a bad ``Duration``.
    """
    signal: str | None = None
    duration: int | None = None
    for number, raw in enumerate(_text(body).splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        name, sep, value = line.partition("=")
        if not sep:
            raise InfoBodyError(f"application/dtmf-relay line {number}: {raw!r} has no '='")
        name = name.strip().lower()
        if name == "signal":
            if signal is not None:
                raise InfoBodyError("application/dtmf-relay: more than one Signal line")
            signal = _key(value, f"application/dtmf-relay line {number} Signal")
        elif name == "duration":
            value = value.strip()
            if not value.isdigit():
                raise InfoBodyError(
                    f"application/dtmf-relay line {number}: Duration {value!r} is not a number"
                )
            duration = _check_duration(int(value))
    if signal is None:
        raise InfoBodyError("application/dtmf-relay body has no Signal line")
    return InfoDigit(signal, duration)


def format_dtmf_relay(digit: str, duration_ms: int = DEFAULT_DURATION_MS) -> str:
    """``Signal=<digit>\\r\\nDuration=<ms>\\r\\n``."""
    return f"Signal={_check_digit(digit)}\r\nDuration={_check_duration(duration_ms)}\r\n"


def parse_dtmf(body: bytes | str) -> InfoDigit:
    """Parse an ``application/dtmf`` body (just the key, surrounding whitespace allowed).

    Raises
    ------
    InfoBodyError
        For an empty body or anything but one key.
    """
    text = _text(body).strip()
    if not text:
        raise InfoBodyError("application/dtmf body is empty")
    return InfoDigit(_key(text, "application/dtmf body"), None)


def format_dtmf(digit: str) -> str:
    """The ``application/dtmf`` body of a key."""
    return _check_digit(digit)


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def parse_info_body(content_type: str, body: bytes | str) -> InfoDigit:
    """Parse a SIP INFO body by its Content-Type (parameters ignored, case-insensitive).

    Raises
    ------
    InfoBodyError
        For another content type (naming it) or a malformed body.
    """
    kind = _media_type(content_type)
    if kind == CONTENT_TYPE_DTMF_RELAY:
        return parse_dtmf_relay(body)
    if kind == CONTENT_TYPE_DTMF:
        return parse_dtmf(body)
    raise InfoBodyError(
        f"Content-Type {content_type!r} is not a DTMF INFO body "
        f"({CONTENT_TYPE_DTMF_RELAY} or {CONTENT_TYPE_DTMF})"
    )


def format_info_body(
    content_type: str, digit: str, duration_ms: int = DEFAULT_DURATION_MS
) -> bytes:
    """The body bytes of a DTMF INFO of ``content_type`` (duration unused for dtmf)."""
    kind = _media_type(content_type)
    if kind == CONTENT_TYPE_DTMF_RELAY:
        return format_dtmf_relay(digit, duration_ms).encode("ascii")
    if kind == CONTENT_TYPE_DTMF:
        return format_dtmf(digit).encode("ascii")
    raise InfoBodyError(f"Content-Type {content_type!r} is not a DTMF INFO body")
