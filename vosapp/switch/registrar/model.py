"""The registrar's values: a REGISTER's contacts, a stored binding, the outcome of one update."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

#: Larger than any sane expiry; Expires values beyond it are clamped before arithmetic.
_EXPIRES_CEILING: Final = 2**32 - 1


def parse_expires(value: str | int | None) -> int | None:
    """An Expires header / ``expires`` parameter as seconds (RFC 3261 §20.19: delta-seconds).

    Absurdly large values are clamped to 2**32-1 (the caller clamps again to its maximum).
    Raises ValueError for anything that is not a non-negative decimal integer.
    """
    if value is None:
        return None
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"Expires {value} is negative")
        return min(value, _EXPIRES_CEILING)
    text = value.strip()
    if not text.isdigit() or not text.isascii():
        raise ValueError(f"Expires {value!r} is not a number of seconds")
    # Avoid int() of a 10,000-digit string: anything longer than 10 digits is over the ceiling.
    return _EXPIRES_CEILING if len(text.lstrip("0")) > 10 else min(int(text), _EXPIRES_CEILING)


@dataclass(slots=True, unsafe_hash=True)
class ContactRequest:
    """One Contact of a REGISTER: its URI (as text) and its own parameters."""

    uri: Final[str]
    expires: Final[int | None]  # the contact's ``expires`` parameter, parsed
    q: Final[float | None]

    def __init__(self, uri: str, expires: int | None = None, q: float | None = None) -> None:
        self.uri, self.expires, self.q = uri, expires, q


@dataclass(slots=True, unsafe_hash=True)
class Binding:
    aor: Final[str]
    contact: Final[str]
    expires_at: Final[float]  # Unix time
    call_id: Final[str]
    cseq: Final[int]
    q: Final[float | None]
    transport: Final[str]
    received_host: Final[str]
    received_port: Final[int]
    path: Final[tuple[str, ...]]
    user_agent: Final[str]
    registered_at: Final[float]

    def __init__(self, aor: str, contact: str, expires_at: float, call_id: str, cseq: int,
                 q: float | None = None, transport: str = "udp", received_host: str = "",
                 received_port: int = 0, path: tuple[str, ...] = (), user_agent: str = "",
                 registered_at: float = 0.0) -> None:
        self.aor, self.contact, self.expires_at = aor, contact, expires_at
        self.call_id, self.cseq, self.q = call_id, cseq, q
        self.transport, self.path = transport, path
        self.received_host, self.received_port = received_host, received_port
        self.user_agent, self.registered_at = user_agent, registered_at

    def remaining(self, wall: float) -> int:
        """Seconds left, rounded up (what goes in the 200's ``expires`` parameter)."""
        return max(0, math.ceil(self.expires_at - wall))


@dataclass(slots=True, unsafe_hash=True)
class RegisterOutcome:
    status: Final[int]
    reason: Final[str]
    bindings: Final[tuple[Binding, ...]]  # for the 200: every live binding of the AOR
    min_expires: Final[int | None]  # for a 423
    path: Final[tuple[str, ...]]  # echoed in the 200 (RFC 3327 §5.3)
    now: Final[float]  # the wall time the outcome was computed at

    def __init__(self, status: int, reason: str, bindings: tuple[Binding, ...] = (),
                 min_expires: int | None = None, path: tuple[str, ...] = (),
                 now: float = 0.0) -> None:
        self.status, self.reason, self.bindings = status, reason, bindings
        self.min_expires, self.path, self.now = min_expires, path, now

    @property
    def ok(self) -> bool:
        return self.status == 200

