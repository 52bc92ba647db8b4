"""The SS_* parameter registry (docs/behaviour.md §1), the immutable :class:`Params` value, and the
per-gateway settings (:class:`GatewaySettings`, :class:`UpstreamRegistration`).

Every parameter carries where it comes from:

* ``source`` -- ``seed`` (quoted from the VOS3000 V2.1.9.07 manual, section 4.3.5.2, tables
  4-3/4-4, as reproduced in ``seed/vos3000-articles.txt``), ``secondary`` (name, sometimes the
  default, known only from other reseller pages) or ``vosapp`` (ours);
* ``value_source`` -- one sentence saying whether the default and the range are the manual's or
  vosapp's own choice, so nobody mistakes ours for the manual's (docs/behaviour.md §1);
* ``navigation`` -- the VOS3000 client path, with ``navigation_quoted`` telling whether the
  articles give that path for this very parameter or we assumed it from its neighbours.

Values are validated when set. :meth:`Param.coerce` accepts the forms people type (``On``,
``true``, ``1``; ``401`` or ``"401 Unauthorized"``; ``Auto``; ``180``, ``"180s"``, ``"3 min"``,
``"500ms"`` converted to the parameter's unit) and raises :class:`ParameterError` naming the
parameter, the bad value and what is allowed.
"""

from __future__ import annotations

import difflib
import enum
import re
from collections.abc import Iterator, Mapping
from dataclasses import Field, dataclass, field, fields
from types import MappingProxyType
from typing import Any, ClassVar

from vosapp.errors import VosappError

__all__ = [
    "NEW_SESSIONS_RULE",
    "REGISTRY",
    "GatewaySettings",
    "Kind",
    "Param",
    "ParameterError",
    "Params",
    "Registry",
    "UpstreamRegistration",
    "parse_bool",
]


class ParameterError(VosappError, ValueError):
    """A parameter name is unknown or a value is not allowed.

    ``name`` is the parameter (or setting), ``value`` the rejected input, ``allowed`` a short
    human description of what would have been accepted.
    """

    def __init__(self, name: str, value: object, allowed: str, why: str | None = None,
                 *, message: str | None = None) -> None:
        self.name = name
        self.value = value
        self.allowed = allowed
        self.why = why
        reason = why or "not allowed"
        super().__init__(message or f"{name}: {value!r} is {reason}; allowed: {allowed}")


class Kind(str, enum.Enum):
    """How a parameter's value is typed and validated."""

    ON_OFF = "on/off"            # -> bool
    INTEGER = "integer"          # -> int in the parameter's unit
    STATUS_CODE = "status code"  # -> int (401 or 407)
    CHOICE = "choice"            # -> canonical option str
    AUTO_OR_INTEGER = "Auto or integer"  # -> "Auto" or int
    TEXT = "text"                # -> str


_TRUE_WORDS = {"on", "true", "yes", "1", "enabled", "enable"}
_FALSE_WORDS = {"off", "false", "no", "0", "disabled", "disable"}


def parse_bool(value: object) -> bool | None:
    """``On``/``Off``/``true``/``false``/``yes``/``no``/``1``/``0`` -> bool; None when not one."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
    return None


# Unit suffixes people type, as a factor to the base unit in milliseconds.
_TIME_SUFFIX_MS = {
    "ms": 1, "msec": 1, "millisecond": 1, "milliseconds": 1,
    "s": 1000, "sec": 1000, "secs": 1000, "second": 1000, "seconds": 1000,
    "m": 60_000, "min": 60_000, "mins": 60_000, "minute": 60_000, "minutes": 60_000,
    "h": 3_600_000, "hour": 3_600_000, "hours": 3_600_000,
}
_UNIT_MS = {"s": 1000, "ms": 1}
# Numbers are ASCII digits only: Python's \d and int() also take '٣' (Arabic-Indic three).
_NUMBER_WITH_SUFFIX = re.compile(r"^\s*([+-]?[0-9]+)\s*([A-Za-z]*)\s*$")


def _not_a_number(value: object) -> str:
    if isinstance(value, str) and not value.isascii():
        return "not a number (digits 0-9 only)"
    return "not a number"


# Keep-alive text goes into a UDP datagram as is: printable ASCII only, bounded (vosapp's rule).
_TEXT_ALLOWED = re.compile(r"^[\x20-\x7e]{1,200}$")


@dataclass(frozen=True)
class Param:
    """One SS_* parameter: its type, default, allowed values and provenance."""

    name: str
    kind: Kind
    default: Any
    description: str
    navigation: str
    source: str
    value_source: str
    unit: str = ""
    minimum: int | None = None
    maximum: int | None = None
    options: tuple[str, ...] = ()
    zero_disables: bool = False
    navigation_quoted: bool = False

    def __post_init__(self) -> None:
        if self.source not in ("seed", "secondary", "vosapp"):
            raise ValueError(f"{self.name}: source must be seed/secondary/vosapp")
        # The default must itself be valid: a typo in the table fails at import time.
        if self.coerce(self.default) != self.default:
            raise ValueError(f"{self.name}: default {self.default!r} is not canonical")

    # -- validation ----------------------------------------------------------------------
    def allowed(self) -> str:
        """What this parameter accepts, in words (used in every error message)."""
        if self.kind is Kind.ON_OFF:
            return "On or Off"
        if self.kind in (Kind.CHOICE, Kind.STATUS_CODE):
            return " / ".join(self.options)
        if self.kind is Kind.TEXT:
            return "OPTIONS, or 1-200 printable ASCII characters"
        span = f"{self.minimum}-{self.maximum}"
        if self.unit in _UNIT_MS:
            span += f" {self.unit}"
        if self.zero_disables:
            span = f"0 (off) or {span}"
        if self.kind is Kind.AUTO_OR_INTEGER:
            span = f"Auto or {span}"
        return span

    def coerce(self, value: object) -> Any:
        """Validate ``value`` and return it as this parameter's Python value."""
        if self.kind is Kind.ON_OFF:
            parsed = parse_bool(value)
            if parsed is None:
                raise ParameterError(self.name, value, self.allowed())
            return parsed
        if self.kind is Kind.STATUS_CODE:
            return self._coerce_status(value)
        if self.kind is Kind.CHOICE:
            return self._coerce_choice(value)
        if self.kind is Kind.TEXT:
            return self._coerce_text(value)
        if (self.kind is Kind.AUTO_OR_INTEGER and isinstance(value, str)
                and value.strip().lower() in ("auto", "auto negotiation")):
            return "Auto"
        return self._coerce_integer(value)

    def _coerce_status(self, value: object) -> int:
        # "401", 401 and "401 Unauthorized" all mean 401; the reason phrase is not checked
        # strictly because people type it in many ways ("407 Proxy Auth Required").
        text = str(value).strip() if isinstance(value, (int, str)) else ""
        if isinstance(value, bool):
            text = ""
        match = re.match(r"^([0-9]{3})\b", text)
        if match:
            code = int(match.group(1))
            for option in self.options:
                if option.startswith(match.group(1)):
                    return code
        raise ParameterError(self.name, value, self.allowed())

    def _coerce_choice(self, value: object) -> str:
        if isinstance(value, str):
            wanted = value.strip().lower()
            for option in self.options:
                if option.lower() == wanted:
                    return option
        raise ParameterError(self.name, value, self.allowed())

    def _coerce_text(self, value: object) -> str:
        if not isinstance(value, str):
            raise ParameterError(self.name, value, self.allowed(), "not text")
        if value.strip().upper() == "OPTIONS":
            return "OPTIONS"
        if not _TEXT_ALLOWED.match(value):
            raise ParameterError(self.name, value, self.allowed())
        return value

    def _coerce_integer(self, value: object) -> int:
        number: int
        if isinstance(value, bool):
            raise ParameterError(self.name, value, self.allowed(), "not a number")
        if isinstance(value, int):
            number = value
        elif isinstance(value, float) and value.is_integer():
            number = int(value)
        elif isinstance(value, str):
            number = self._parse_with_suffix(value)
        else:
            raise ParameterError(self.name, value, self.allowed(), "not a number")
        if self.zero_disables and number == 0:
            return 0
        assert self.minimum is not None and self.maximum is not None
        if not self.minimum <= number <= self.maximum:
            raise ParameterError(self.name, value, self.allowed(), "out of range")
        return number

    def _parse_with_suffix(self, text: str) -> int:
        match = _NUMBER_WITH_SUFFIX.match(text)
        if not match:
            raise ParameterError(self.name, text, self.allowed(), _not_a_number(text))
        number, suffix = int(match.group(1)), match.group(2).lower()
        if not suffix:
            return number
        if self.unit not in _UNIT_MS or suffix not in _TIME_SUFFIX_MS:
            unit = self.unit or "a plain count"
            raise ParameterError(
                self.name, text, self.allowed(), f"in a unit this parameter does not take ({unit})"
            )
        total_ms = number * _TIME_SUFFIX_MS[suffix]
        unit_ms = _UNIT_MS[self.unit]
        if total_ms % unit_ms:
            raise ParameterError(
                self.name, text, self.allowed(), f"not a whole number of {self.unit}"
            )
        return total_ms // unit_ms

    # -- presentation --------------------------------------------------------------------
    def format(self, value: Any) -> str:
        """The value as a person reads it (``On``, ``180``, ``Auto``, ``401``)."""
        if isinstance(value, bool):
            return "On" if value else "Off"
        return str(value)


class Registry:
    """The ordered set of SS_* parameters; ``REGISTRY["SS_X"]``, ``"SS_X" in REGISTRY``."""

    def __init__(self, params: list[Param]) -> None:
        self._by_name: dict[str, Param] = {}
        for param in params:
            if param.name in self._by_name:
                raise ValueError(f"duplicate parameter {param.name}")
            self._by_name[param.name] = param

    def __iter__(self) -> Iterator[Param]:
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __getitem__(self, name: str) -> Param:
        try:
            return self._by_name[name]
        except (KeyError, TypeError):
            raise self.unknown(name) from None

    def names(self) -> tuple[str, ...]:
        return tuple(self._by_name)

    def unknown(self, name: object) -> ParameterError:
        """The error for a name that is not a parameter, with a did-you-mean hint."""
        text = str(name)
        close = difflib.get_close_matches(text.upper(), self._by_name, n=1, cutoff=0.75)
        hint = f"did you mean {close[0]}?" if close else "see `vosapp params list`"
        return ParameterError(text, name, "an SS_* name from `vosapp params list`",
                              "not a known parameter",
                              message=f"{text}: not a known parameter ({hint})")


# What a parameter change reaches in a running switch (written next to the lab editor's Apply).
NEW_SESSIONS_RULE = ("Changes apply to new sessions only: authentication sessions, "
                     "registrations and calls already open keep the values they started with "
                     "(VOS3000 rule, docs/behaviour.md §1).")


# Navigation paths. The articles quote the first for the SS_SIP_USER_AGENT_* family and for
# SS_SIP_AUTHENTICATION_RETRY/TIMEOUT; they quote table 4-4 ("system parameters") for the
# terminal-level ones without giving its menu path, so that path is our assumption.
NAV_SIP = "Operation management > Softswitch management > Additional settings > SIP parameter"
NAV_SYSTEM = (
    "Operation management > Softswitch management > Additional settings > System parameter"
)

_SEED_BOTH = "default and range quoted from the manual ({table})"
_SEED_DEFAULT = ("default quoted from the manual ({table}); range {range} is vosapp's choice"
                 " (docs/behaviour.md §1)")
_SECONDARY = ("name from secondary pages; default and range are vosapp's choice"
              " (docs/behaviour.md §1)")


def _p(**kwargs: Any) -> Param:
    return Param(**kwargs)


REGISTRY = Registry([
    _p(name="SS_SIP_AUTHENTICATION_CODE", kind=Kind.STATUS_CODE, default=401,
       options=("401 Unauthorized", "407 Proxy Authentication Required"),
       description="Status used to challenge: 401 WWW-Authenticate or 407 Proxy-Authenticate",
       navigation=NAV_SIP, source="seed",
       value_source=_SEED_BOTH.format(table="Table 4-3")),
    _p(name="SS_SIP_AUTHENTICATION_RETRY", kind=Kind.INTEGER, default=6, minimum=0, maximum=999,
       unit="count",
       description="Re-challenges allowed in one auth session after a failed credential",
       navigation=NAV_SIP, navigation_quoted=True, source="seed",
       value_source=_SEED_DEFAULT.format(table="Table 4-3", range="0-999")),
    _p(name="SS_SIP_AUTHENTICATION_TIMEOUT", kind=Kind.INTEGER, default=10, minimum=1,
       maximum=3600, unit="s",
       description="An auth session not completed within this time is rejected (403)",
       navigation=NAV_SIP, navigation_quoted=True, source="seed",
       value_source=_SEED_DEFAULT.format(table="Table 4-3", range="1-3600 s")),
    _p(name="SS_AUTHENTICATION_MAX_RETRY", kind=Kind.INTEGER, default=6, minimum=0, maximum=999,
       unit="count",
       description="Terminal-level failed-password ceiling before suspension",
       navigation=NAV_SYSTEM, source="seed",
       value_source=_SEED_BOTH.format(table="Table 4-4")),
    _p(name="SS_AUTHENTICATION_FAILED_SUSPEND", kind=Kind.INTEGER, default=180, minimum=60,
       maximum=3600, unit="s",
       description="How long a terminal is disabled after exceeding the failed-password ceiling",
       navigation=NAV_SYSTEM, source="seed",
       value_source=_SEED_BOTH.format(table="Table 4-4")),
    _p(name="SS_REPLY_UNAUTHORIZED", kind=Kind.ON_OFF, default=True,
       description="On: challenge/reject unauthorized requests; Off: drop them with no response",
       navigation=NAV_SYSTEM, source="seed",
       value_source=_SEED_BOTH.format(table="Table 4-4")),
    _p(name="SS_ENDPOINT_REGISTER_REPLACE", kind=Kind.ON_OFF, default=True,
       description="A new registration of a registered user replaces the old binding "
                   "(Off: refused while the old one lives)",
       navigation=NAV_SYSTEM, source="seed",
       value_source=_SEED_BOTH.format(table="Table 4-4")),
    _p(name="SS_ENDPOINT_REGISTER_RETRY", kind=Kind.INTEGER, default=6, minimum=0, maximum=999,
       unit="count", description="Max failed registration attempts of a terminal",
       navigation=NAV_SYSTEM, source="seed",
       value_source=_SEED_DEFAULT.format(table="Table 4-4", range="0-999")),
    _p(name="SS_ENDPOINT_REGISTER_SUSPEND", kind=Kind.INTEGER, default=180, minimum=0,
       maximum=3600, unit="s",
       description="Registration disabled this long after exceeding the retries",
       navigation=NAV_SYSTEM, source="seed",
       value_source=_SEED_DEFAULT.format(table="Table 4-4", range="0-3600 s")),
    _p(name="SS_SIP_USER_AGENT_SEND_UNREGISTER", kind=Kind.ON_OFF, default=True,
       description="On graceful stop/restart send REGISTER Expires: 0 to every upstream",
       navigation=NAV_SIP, navigation_quoted=True, source="seed",
       value_source=_SEED_BOTH.format(table="Table 4-3")),
    _p(name="SS_SIP_USER_AGENT_EXPIRE", kind=Kind.AUTO_OR_INTEGER, default="Auto", minimum=20,
       maximum=7200, unit="s",
       description="Expiry requested when registering upstream; Auto = what the registrar grants",
       navigation=NAV_SIP, navigation_quoted=True, source="seed",
       value_source=_SEED_BOTH.format(table="Table 4-3")),
    _p(name="SS_SIP_USER_AGENT_RETRY_DELAY", kind=Kind.INTEGER, default=60, minimum=30,
       maximum=600, unit="s", description="Wait before re-registering upstream after a failure",
       navigation=NAV_SIP, navigation_quoted=True, source="seed",
       value_source=_SEED_BOTH.format(table="Table 4-3")),
    _p(name="SS_SIP_USER_AGENT_PRIVACY", kind=Kind.CHOICE, default="Ignore",
       options=("Ignore", "Id", "None"),
       description="Privacy header on outbound REGISTER (Ignore = none sent)",
       navigation=NAV_SIP, navigation_quoted=True, source="seed",
       value_source=_SEED_BOTH.format(table="Table 4-3")),
    _p(name="SS_SIP_USER_AGENT_STOP_SWITCH_AFTER_INVITE_TIMEOUT", kind=Kind.ON_OFF,
       default=False,
       description="On: an INVITE timeout on a gateway ends the call instead of failing over",
       navigation=NAV_SIP, navigation_quoted=True, source="seed",
       value_source=_SEED_BOTH.format(table="Table 4-3")),
    _p(name="SS_SIP_RESEND_INTERVAL", kind=Kind.INTEGER, default=500, minimum=100, maximum=4000,
       unit="ms", description="RFC 3261 T1: retransmission base, doubling up to T2 = 4 s",
       navigation=NAV_SIP, source="secondary",
       value_source="name from secondary pages; default = RFC 3261 T1 (500 ms); "
                    "range is vosapp's choice (docs/behaviour.md §1)"),
    _p(name="SS_SIP_TIMEOUT_INVITE", kind=Kind.INTEGER, default=10, minimum=1, maximum=300,
       unit="s", description="No provisional/final answer to an INVITE within this: gateway failed",
       navigation=NAV_SIP, source="secondary", value_source=_SECONDARY),
    _p(name="SS_SIP_TIMEOUT_TRYING", kind=Kind.INTEGER, default=20, minimum=1, maximum=300,
       unit="s", description="After 100 Trying, no further progress within this: failed",
       navigation=NAV_SIP, source="secondary", value_source=_SECONDARY),
    _p(name="SS_SIP_TIMEOUT_SESSION_PROGRESS", kind=Kind.INTEGER, default=20, minimum=1,
       maximum=300, unit="s", description="After 183 without SDP, no answer within this: failed",
       navigation=NAV_SIP, source="secondary", value_source=_SECONDARY),
    _p(name="SS_SIP_TIMEOUT_SESSION_PROGRESS_SDP", kind=Kind.INTEGER, default=120, minimum=1,
       maximum=600, unit="s",
       description="After 183 with SDP (early media), no answer within this: failed",
       navigation=NAV_SIP, source="secondary", value_source=_SECONDARY),
    _p(name="SS_SIP_TIMEOUT_RINGING", kind=Kind.INTEGER, default=120, minimum=1, maximum=600,
       unit="s", description="After 180, no answer within this: failed",
       navigation=NAV_SIP, source="secondary", value_source=_SECONDARY),
    _p(name="SS_SIP_SESSION_TTL", kind=Kind.INTEGER, default=600, minimum=90, maximum=7200,
       unit="s", description="RFC 4028 Session-Expires offered (90 s = RFC 4028 Min-SE floor)",
       navigation=NAV_SIP, source="secondary", value_source=_SECONDARY),
    _p(name="SS_SIP_SESSION_UPDATE_SEGMENT", kind=Kind.INTEGER, default=2, minimum=2, maximum=10,
       unit="count", description="Refresh the session at TTL / segment",
       navigation=NAV_SIP, source="secondary", value_source=_SECONDARY),
    _p(name="SS_SIP_SESSION_TIMEOUT_EARLY_HANGUP", kind=Kind.ON_OFF, default=True,
       description="Hang up a call whose session refresh is not answered, "
                   "rather than waiting the full TTL",
       navigation=NAV_SIP, source="secondary", value_source=_SECONDARY),
    _p(name="SS_SIP_NO_TIMER_REINVITE_INTERVAL", kind=Kind.INTEGER, default=0, minimum=60,
       maximum=7200, zero_disables=True, unit="s",
       description="Liveness re-INVITE for endpoints without session timers (0 = off)",
       navigation=NAV_SIP, source="secondary", value_source=_SECONDARY),
    _p(name="SS_SIP_NAT_KEEP_ALIVE_PERIOD", kind=Kind.INTEGER, default=30, minimum=10,
       maximum=3600, zero_disables=True, unit="s",
       description="Keep-alive to registered endpoints behind NAT (0 = off)",
       navigation=NAV_SIP, source="secondary", value_source=_SECONDARY),
    _p(name="SS_SIP_NAT_KEEP_ALIVE_MESSAGE", kind=Kind.TEXT, default="HELLO",
       description="Payload of the NAT keep-alive: this text, or an OPTIONS request",
       navigation=NAV_SIP, source="secondary",
       value_source=_SECONDARY + "; text limited to printable ASCII by vosapp"),
    _p(name="SS_SIP_PUBLISH_EXPIRE", kind=Kind.INTEGER, default=3600, minimum=60, maximum=7200,
       unit="s", description="Expires used for PUBLISH. Stored and validated only: vosapp "
       "does not implement PUBLISH (answered 405) and no feature reads this value yet",
       navigation=NAV_SIP, source="secondary", value_source=_SECONDARY),
])


class Params(Mapping[str, Any]):
    """An immutable set of values for every SS_* parameter.

    ``Params.defaults()`` holds the registry defaults; ``p.replace(SS_X=...)`` returns a new
    value (validated); ``p["SS_X"]`` reads one. Because it never changes, a session keeps the
    ``Params`` it started with while new sessions get the new one (docs/behaviour.md §1).
    """

    __slots__ = ("_values",)
    _values: Mapping[str, Any]

    def __init__(self, values: Mapping[str, object] | None = None) -> None:
        resolved = {param.name: param.default for param in REGISTRY}
        for name, value in (values or {}).items():
            resolved[name] = REGISTRY[name].coerce(value)
        object.__setattr__(self, "_values", MappingProxyType(resolved))

    @classmethod
    def defaults(cls) -> Params:
        return cls()

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Params is immutable; use .replace(...)")

    def __getitem__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise REGISTRY.unknown(name) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Params):
            return dict(self._values) == dict(other._values)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self._values.items()))

    def __repr__(self) -> str:
        changed = {name: self._values[name] for name in self.changed()}
        return f"Params({changed!r})" if changed else "Params.defaults()"

    def replace(self, **changes: object) -> Params:
        """A copy with ``changes`` applied; each is validated (``ParameterError`` otherwise)."""
        merged: dict[str, object] = dict(self._values)
        for name, value in changes.items():
            merged[name] = REGISTRY[name].coerce(value)
        return Params(merged)

    def as_dict(self) -> dict[str, Any]:
        return dict(self._values)

    def changed(self) -> tuple[str, ...]:
        """Names whose value differs from the registry default, in registry order."""
        return tuple(p.name for p in REGISTRY if self._values[p.name] != p.default)


# ---------------------------------------------------------------------------------------
# Per-gateway settings (docs/behaviour.md §1, "Additional settings" of mapping and routing
# gateways). ---------------------------------------------------------------------------------------

CODECS = ("PCMA", "PCMU", "G729", "G723", "G722")
_CODEC_ALIASES = {
    "pcma": "PCMA", "g711a": "PCMA", "g711alaw": "PCMA", "alaw": "PCMA",
    "pcmu": "PCMU", "g711u": "PCMU", "g711ulaw": "PCMU", "ulaw": "PCMU", "mulaw": "PCMU",
    "g729": "G729", "g729a": "G729", "g723": "G723", "g7231": "G723", "g722": "G722",
}


def _setting(options: tuple[str, ...] | None = None, *, description: str, source: str,
             default: Any, aliases: Mapping[str, str] | None = None,
             minimum: int | None = None, maximum: int | None = None,
             secret: bool = False) -> Any:
    meta = {"options": options, "description": description, "source": source,
            "aliases": dict(aliases or {}), "minimum": minimum, "maximum": maximum}
    return field(default=default, metadata=meta, repr=not secret)


def _coerce_setting(owner: str, name: str, meta: Mapping[str, Any], default: Any,
                    value: object) -> Any:
    label = f"{owner}.{name}"
    options = meta.get("options")
    if isinstance(default, bool):
        parsed = parse_bool(value)
        if parsed is None:
            raise ParameterError(label, value, "On or Off")
        return parsed
    if options:
        allowed = " / ".join(options)
        if isinstance(value, str):
            key = value.strip().lower()
            for option in options:
                if option.lower() == key:
                    return option
            alias = meta["aliases"].get(re.sub(r"[\s._-]", "", key))
            if alias:
                return alias
        raise ParameterError(label, value, allowed)
    if isinstance(default, int) or meta.get("minimum") is not None:
        lo, hi = meta["minimum"], meta["maximum"]
        allowed = f"{lo}-{hi}"
        number: int | None = None
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, str) and re.fullmatch(r"[+-]?[0-9]+", value.strip()):
            number = int(value.strip())
        if number is None:
            raise ParameterError(label, value, allowed, _not_a_number(value))
        if not lo <= number <= hi:
            raise ParameterError(label, value, allowed, "out of range")
        return number
    if not isinstance(value, str):
        raise ParameterError(label, value, "text", "not text")
    return value


class _Validated:
    """Coerce and validate every dataclass field in ``__post_init__`` (frozen-safe)."""

    _owner: ClassVar[str] = ""
    # Every subclass is a dataclass; declaring the field table makes `fields()` accept it.
    __dataclass_fields__: ClassVar[dict[str, Field[Any]]]

    def __post_init__(self) -> None:
        for item in fields(self):
            if not item.metadata:
                continue
            raw = getattr(self, item.name)
            if raw is None and item.default is None:
                continue
            value = _coerce_setting(self._owner, item.name, item.metadata, item.default, raw)
            object.__setattr__(self, item.name, value)
        self._check()

    def _check(self) -> None:
        """Cross-field rules; subclasses override."""

    @classmethod
    def setting_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def describe(cls) -> list[dict[str, Any]]:
        """One row per setting (name, default, options/range, description, source) for docs."""
        rows = []
        for item in fields(cls):
            meta = item.metadata
            if meta.get("options"):
                allowed = " / ".join(meta["options"])
            elif isinstance(item.default, bool):
                allowed = "On / Off"
            elif meta.get("minimum") is not None:
                allowed = f"{meta['minimum']}-{meta['maximum']}"
            else:
                allowed = meta.get("allowed", "text")
            default = item.default
            if isinstance(default, bool):
                default = "On" if default else "Off"
            rows.append({"name": item.name, "default": default, "allowed": allowed,
                         "description": meta.get("description", ""),
                         "source": meta.get("source", "vosapp")})
        return rows


_SEED_TRANSCODE = "seed (Transcode Module document via the articles)"


@dataclass(frozen=True)
class GatewaySettings(_Validated):
    """The per-gateway "Additional settings" of a mapping or routing gateway (docs/behaviour.md §1,
    §5, §6).

    Construct with the forms people type (``GatewaySettings(media_proxy="on",
    specified_codec="g711a")``); every field is coerced to its canonical value or a
    :class:`ParameterError` is raised.
    """

    _owner: ClassVar[str] = "gateway"

    codec_mode: str = _setting(
        ("Auto negotiation", "Softswitch specified"), default="Auto negotiation",
        aliases={"auto": "Auto negotiation", "specified": "Softswitch specified",
                 "softswitch": "Softswitch specified"},
        description="Auto negotiation passes the offer through; Softswitch specified offers "
                    "only specified_codec on this side", source=_SEED_TRANSCODE)
    specified_codec: str = _setting(
        CODECS, default="PCMA", aliases=_CODEC_ALIASES,
        description="The codec this side uses in Softswitch specified mode",
        source=_SEED_TRANSCODE + "; default PCMA is vosapp's")
    allow_codec_conversion: bool = _setting(
        default=False, description="Allow transcoding on this side (needed on both sides)",
        source=_SEED_TRANSCODE + "; default Off is vosapp's")
    g729_mode: str = _setting(
        ("Auto", "G729", "G729a", "G729&G729a"), default="Auto",
        description="G.729 variant offered/answered: Auto follows the peer",
        source="seed (manual 2.5.1.1 via the articles)")
    media_proxy: str = _setting(
        ("Auto", "On", "Off"), default="Auto",
        description="Off: RTP flows end to end; On: always relayed; Auto: relayed when needed",
        source="seed (options); default Auto is vosapp's")
    dtmf_receive: str = _setting(
        ("All", "RFC2833", "SIP INFO", "Inband"), default="All",
        aliases={"sipinfo": "SIP INFO", "info": "SIP INFO", "rfc4733": "RFC2833"},
        description="DTMF methods accepted from this side", source="seed")
    dtmf_send: str = _setting(
        ("Auto", "RFC2833", "SIP INFO", "Inband"), default="Auto",
        aliases={"sipinfo": "SIP INFO", "info": "SIP INFO", "rfc4733": "RFC2833"},
        description="DTMF method used towards this side; Auto = what the peer advertises",
        source="seed")
    rfc2833_payload: int = _setting(
        default=101, minimum=96, maximum=127,
        description="RTP payload type of telephone-event (dynamic range, RFC 3551)",
        source="seed (default 101); range is the RFC 3551 dynamic range")
    use_peer_rfc2833: bool = _setting(
        default=False,
        description="On: advertise telephone-event only if the peer offered it; "
                    "Off: always advertise it",
        source="seed (meaning); default Off is vosapp's")
    privacy: str = _setting(
        ("Passthrough", "Remove", "Id", "None"), default="Passthrough",
        description="Privacy header towards this side: copy the other leg's, remove it, "
                    "or set 'id' / 'none' (RFC 3323)", source="vosapp (articles only name it)")
    p_asserted_identity: str = _setting(
        ("Passthrough", "Remove", "From caller"), default="Passthrough",
        aliases={"pass": "Passthrough", "fromcaller": "From caller"},
        description="P-Asserted-Identity towards this side: copy, remove, or build from the "
                    "caller's From (RFC 3325)", source="vosapp (articles only name it)")
    display_from: bool = _setting(
        default=True,
        description="On: keep the caller's display name in From on the outgoing leg; "
                    "Off: send the number only", source="vosapp (articles only name it)")


_HOST_PORT = re.compile(r"^\s*(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::([0-9]{1,5}))?\s*$")


def parse_host_port(value: object, *, label: str, default_port: int | None = 5060
                    ) -> tuple[str, int]:
    """``"host:port"`` (or ``"host"`` with ``default_port``) -> (host, port), validated."""
    allowed = "host:port, e.g. 127.0.0.1:5080 (port 1-65535)"
    if not isinstance(value, str):
        raise ParameterError(label, value, allowed, "not text")
    match = _HOST_PORT.match(value)
    if not match:
        raise ParameterError(label, value, allowed, "not host:port")
    host = match.group(1).strip("[]")
    if match.group(2) is None:
        if default_port is None:
            raise ParameterError(label, value, allowed, "missing the port")
        return host, default_port
    port = int(match.group(2))
    if not 1 <= port <= 65535:
        raise ParameterError(label, value, allowed, "a port out of range")
    return host, port


@dataclass(frozen=True)
class UpstreamRegistration(_Validated):
    """Registration of a routing gateway towards its carrier (docs/behaviour.md §1, §3; manual p.
    106-107).

    ``sip_proxy`` is ``"host:port"`` (port defaults to 5060); ``signaling_port`` None means
    the switch's own SIP port; ``host_name`` empty means the local address.
    """

    _owner: ClassVar[str] = "register"

    sip_proxy: str = _setting(default="", description="Where REGISTER is sent (host:port)",
                              source="seed")
    auth_user: str = _setting(default="", description="Authentication user (401/407)",
                              source="seed")
    password: str = _setting(default="", description="Authentication password",
                             source="seed", secret=True)
    host_name: str = _setting(default="", description="Host part of our Contact "
                              "(empty: the local address)", source="seed")
    signaling_port: int | None = _setting(
        default=None, minimum=1, maximum=65535,
        description="Local port for registration signalling (empty: the switch's SIP port)",
        source="seed")
    register_period: str = _setting(
        ("Default", "Auto negotiation"), default="Default",
        aliases={"auto": "Auto negotiation"},
        description="Default: request SS_SIP_USER_AGENT_EXPIRE; Auto negotiation: "
                    "use what the registrar grants", source="seed")

    def _check(self) -> None:
        if not self.sip_proxy:
            raise ParameterError("register.sip_proxy", self.sip_proxy,
                                 "host:port of the carrier's registrar", "missing")
        parse_host_port(self.sip_proxy, label="register.sip_proxy")
        if not self.auth_user:
            raise ParameterError("register.auth_user", self.auth_user,
                                 "the user name the carrier gave you", "missing")
        if any(ch.isspace() for ch in self.auth_user):
            raise ParameterError("register.auth_user", self.auth_user,
                                 "a user name without spaces", "not a SIP user name")

    @property
    def proxy_address(self) -> tuple[str, int]:
        """``sip_proxy`` as ``(host, port)``."""
        return parse_host_port(self.sip_proxy, label="register.sip_proxy")
