"""The registrar's values: a REGISTER's contacts, a stored binding, the outcome of one update."""

from __future__ import annotations

import math

from vosapp.records import record

#: Larger than any sane expiry; Expires values beyond it are clamped before arithmetic.
_EXPIRES_CEILING = 2**32 - 1


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


@record
class ContactRequest:
    """One Contact of a REGISTER: its URI (as text) and its own parameters."""

    uri: str
    expires: int | None = None  # the contact's ``expires`` parameter, parsed
    q: float | None = None


@record
class Binding:
    aor: str
    contact: str
    expires_at: float  # Unix time
    call_id: str
    cseq: int
    q: float | None = None
    transport: str = "udp"
    received_host: str = ""
    received_port: int = 0
    path: tuple[str, ...] = ()
    user_agent: str = ""
    registered_at: float = 0.0

    def remaining(self, wall: float) -> int:
        """Seconds left, rounded up (what goes in the 200's ``expires`` parameter)."""
        return max(0, math.ceil(self.expires_at - wall))


@record
class RegisterOutcome:
    status: int
    reason: str
    bindings: tuple[Binding, ...] = ()  # for the 200: every live binding of the AOR
    min_expires: int | None = None  # for a 423
    path: tuple[str, ...] = ()  # echoed in the 200 (RFC 3327 §5.3)
    now: float = 0.0  # the wall time the outcome was computed at

    @property
    def ok(self) -> bool:
        return self.status == 200

