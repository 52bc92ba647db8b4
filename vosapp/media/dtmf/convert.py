"""docs/behaviour.md §6 DTMF rules as media-level decisions the relay applies, per call direction.

* Methods: RFC 2833/4733 telephone-event, SIP INFO (``application/dtmf-relay`` or
  ``application/dtmf``), Inband (tones in the audio).
* Per gateway: DTMF receive (All / RFC2833 / SIP INFO / Inband), DTMF send (Auto / RFC2833 /
  SIP INFO / Inband), RFC2833 payload type (default 101), key range, Use peer RFC2833 ability.
* Media proxy On: the incoming RFC 2833 payload type and key range are terminated; each side is
  sent its own gateway's values. Inband → RFC 2833/INFO by detecting the tones (the audio still
  passes); RFC 2833/INFO → Inband by generating tones and discarding the event.
* When a peer sends DTMF by more than one method, only the first method detected in the call is
  used; the others are ignored for the rest of the call (:class:`MethodLock`).
* Use peer RFC2833 ability: checked → advertise telephone-event to the far side only if the
  peer offered it; unchecked → always (:func:`advertise_telephone_event`).

vosapp's own choices where the sources are silent (documented, so nobody mistakes them for the
manual's): send *Auto* keeps the method the digit arrived with when the far side can take it
(no conversion), and uses Inband for RFC 2833 when the far side did not negotiate
telephone-event; an explicit *RFC2833* send setting towards a far side without telephone-event
also falls back to Inband, since events it did not negotiate would be dropped or played as
noise. INFO bodies are sent as ``application/dtmf-relay``. The first-method lock covers
Inband too: a phone that sends RFC 2833 usually leaves the tones in its audio as well, and
the lock keeps those from being relayed a second time.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from .errors import DtmfError
from .inband import DtmfDetector, generate_digits
from .info import CONTENT_TYPE_DTMF_RELAY, format_info_body, parse_info_body
from .rfc4733 import (
    DEFAULT_EVENT_RANGE,
    DEFAULT_PAYLOAD_TYPE,
    ReceivedEvent,
    TelephoneEvent,
    TelephoneEventReceiver,
    event_for_digit,
    format_event_range,
)

__all__ = [
    "Action",
    "DtmfConverter",
    "DtmfMethod",
    "DtmfSideSettings",
    "ForwardEvent",
    "GenerateTones",
    "IgnoredDigit",
    "MethodLock",
    "ReceiveSetting",
    "SendEvent",
    "SendInfo",
    "SendSetting",
    "accepts",
    "advertise_telephone_event",
    "select_send_method",
    "telephone_event_sdp",
]


class DtmfMethod(enum.Enum):
    """How a digit travels."""

    RFC2833 = "RFC2833"
    SIP_INFO = "SIP INFO"
    INBAND = "Inband"


class ReceiveSetting(enum.Enum):
    """Gateway "DTMF receive": which incoming methods are accepted."""

    ALL = "All"
    RFC2833 = "RFC2833"
    SIP_INFO = "SIP INFO"
    INBAND = "Inband"

    @classmethod
    def parse(cls, text: str | ReceiveSetting) -> ReceiveSetting:
        """Accept the manual's spelling, case-insensitive (``"sip info"``, ``"SIP_INFO"``)."""
        return _parse_setting(cls, text, "DTMF receive")


class SendSetting(enum.Enum):
    """Gateway "DTMF send": which method is used towards this gateway."""

    AUTO = "Auto"
    RFC2833 = "RFC2833"
    SIP_INFO = "SIP INFO"
    INBAND = "Inband"

    @classmethod
    def parse(cls, text: str | SendSetting) -> SendSetting:
        """Accept the manual's spelling, case-insensitive."""
        return _parse_setting(cls, text, "DTMF send")


_Setting = TypeVar("_Setting", ReceiveSetting, SendSetting)


def _parse_setting(cls: type[_Setting], text: str | _Setting, what: str) -> _Setting:
    if isinstance(text, cls):
        return text
    if isinstance(text, str):
        wanted = text.strip().replace("_", " ").lower()
        for member in cls:
            if member.value.lower() == wanted:
                return member
    choices = " / ".join(m.value for m in cls)
    raise DtmfError(f"{what} {text!r} is not one of {choices}")


@dataclass(frozen=True)
class DtmfSideSettings:
    """The DTMF settings of one side's gateway (docs/behaviour.md §1 per-gateway settings).

    Attributes
    ----------
    receive : ReceiveSetting
        Methods accepted from this side.
    send : SendSetting
        Method used towards this side.
    payload_type : int
        RFC2833 payload type of this side (96-127, default 101).
    event_range : frozenset of int
        Telephone-events exchanged with this side (default 0-16).
    use_peer_rfc2833_ability : bool
        Advertise telephone-event to this side only if the other side offered it (default
        unchecked: always advertise; vosapp's default, the manual gives none).
    """

    receive: ReceiveSetting = ReceiveSetting.ALL
    send: SendSetting = SendSetting.AUTO
    payload_type: int = DEFAULT_PAYLOAD_TYPE
    event_range: frozenset[int] = field(default=DEFAULT_EVENT_RANGE)
    use_peer_rfc2833_ability: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "receive", ReceiveSetting.parse(self.receive))
        object.__setattr__(self, "send", SendSetting.parse(self.send))
        pt = self.payload_type
        if isinstance(pt, bool) or not isinstance(pt, int) or not 96 <= pt <= 127:
            raise DtmfError(f"RFC2833 payload type {pt!r} is outside the dynamic range 96-127")
        events = frozenset(self.event_range)
        if not events or not all(isinstance(e, int) and 0 <= e <= 255 for e in events):
            raise DtmfError(f"key range {sorted(events)!r} must be non-empty codes 0-255")
        object.__setattr__(self, "event_range", events)


def accepts(setting: ReceiveSetting, method: DtmfMethod) -> bool:
    """Whether a gateway with DTMF receive ``setting`` accepts digits sent by ``method``."""
    return setting is ReceiveSetting.ALL or setting.value == method.value


def advertise_telephone_event(use_peer_rfc2833_ability: bool, peer_offered: bool) -> bool:
    """Whether to put telephone-event in the SDP sent to the far side (docs/behaviour.md §6).

    Checked → only if the peer offered it; unchecked → always.
    """
    return peer_offered if use_peer_rfc2833_ability else True


def telephone_event_sdp(side: DtmfSideSettings, clock_rate: int = 8000) -> tuple[str, str]:
    """The ``a=rtpmap`` and ``a=fmtp`` attribute values for this side's telephone-event.

    >>> telephone_event_sdp(DtmfSideSettings())
    ('101 telephone-event/8000', '101 0-16')
    """
    pt = side.payload_type
    return f"{pt} telephone-event/{clock_rate}", f"{pt} {format_event_range(side.event_range)}"


def select_send_method(send: SendSetting, received: DtmfMethod, *, far_rfc2833: bool) -> DtmfMethod:
    """Method used towards the far side for a digit that arrived by ``received``.

    Parameters
    ----------
    send : SendSetting
        The far side's gateway DTMF send setting.
    received : DtmfMethod
        How the digit arrived.
    far_rfc2833 : bool
        Whether telephone-event was negotiated with the far side.
    """
    if send is SendSetting.AUTO:
        wanted = received
    else:
        wanted = DtmfMethod(send.value)
    if wanted is DtmfMethod.RFC2833 and not far_rfc2833:
        return DtmfMethod.INBAND
    return wanted


class MethodLock:
    """First-detected-method lock of one call (one direction).

    The first method seen wins; digits arriving later by another method are ignored for the
    rest of the call.
    """

    def __init__(self) -> None:
        self.method: DtmfMethod | None = None

    def admit(self, method: DtmfMethod) -> bool:
        """Whether a digit received by ``method`` is used (locks on the first call)."""
        if self.method is None:
            self.method = method
        return self.method is method


# Actions the relay (or signalling layer) carries out -----------------------------------------


@dataclass(frozen=True)
class ForwardEvent:
    """Forward a telephone-event packet, with this side's payload type (media proxy On)."""

    payload_type: int
    timestamp: int
    marker: bool
    payload: bytes


@dataclass(frozen=True)
class SendEvent:
    """Send a whole digit as RFC 4733 packets (``TelephoneEventSender`` with this payload
    type, at the leg's current timestamp and sequence)."""

    digit: str
    duration_ms: int
    payload_type: int


@dataclass(frozen=True)
class SendInfo:
    """Send a SIP INFO with this body."""

    content_type: str
    body: bytes
    digit: str
    duration_ms: int


@dataclass(frozen=True)
class GenerateTones:
    """Play these samples into the far side's audio (int16 at ``rate``)."""

    digit: str
    samples: npt.NDArray[np.int16]
    rate: int


@dataclass(frozen=True)
class IgnoredDigit:
    """A digit that was not relayed, and why."""

    digit: str
    method: DtmfMethod
    reason: str


Action = ForwardEvent | SendEvent | SendInfo | GenerateTones | IgnoredDigit


class DtmfConverter:
    """Applies docs/behaviour.md §6 to DTMF travelling from one side (``inbound``) to the other.

    Parameters
    ----------
    inbound : DtmfSideSettings
        Settings of the side the digits come from (receive setting, its payload type and range).
    outbound : DtmfSideSettings
        Settings of the side the digits go to (send setting, its payload type and range).
    far_rfc2833 : bool
        Whether telephone-event was negotiated with the outbound side.
    rate : int
        Audio sample rate of the inbound audio (for inband detection) and of generated tones.
    tone_level_dbm0 : float
        Level per tone of generated DTMF.
    inband_detection : bool
        Run the inband receiver on :meth:`on_audio` (off saves CPU when no conversion needs it).
    event_clock_rate : int
        RTP clock of the inbound telephone-events (8000 for every codec vosapp uses).

    Notes
    -----
    The relay calls :meth:`on_rfc2833`, :meth:`on_info` and :meth:`on_audio` and carries out
    the returned actions. Inbound audio always passes (tones included); a
    :class:`GenerateTones` action replaces the outbound audio for the tone's duration.
    Converted digits (RFC 2833 or Inband to another method) are relayed when they end, since
    only then is their duration known; RFC 2833 to RFC 2833 is forwarded packet by packet.
    """

    def __init__(
        self,
        inbound: DtmfSideSettings,
        outbound: DtmfSideSettings,
        *,
        far_rfc2833: bool,
        rate: int = 8000,
        tone_level_dbm0: float = -10.0,
        inband_detection: bool = True,
        event_clock_rate: int = 8000,
    ) -> None:
        self.inbound = inbound
        self.outbound = outbound
        self.far_rfc2833 = far_rfc2833
        self.rate = rate
        self.tone_level_dbm0 = tone_level_dbm0
        self.event_clock_rate = event_clock_rate
        self.lock = MethodLock()
        self._events = TelephoneEventReceiver(
            inbound.payload_type, allowed_events=inbound.event_range
        )
        self._forwarding: int | None = None  # timestamp of the event being forwarded
        self._detector = DtmfDetector(rate) if inband_detection else None

    # -- digits by method ---------------------------------------------------------------------

    def _admit(self, digit: str, method: DtmfMethod) -> IgnoredDigit | None:
        if not accepts(self.inbound.receive, method):
            return IgnoredDigit(digit, method, f"DTMF receive is {self.inbound.receive.value}")
        if not self.lock.admit(method):
            assert self.lock.method is not None  # admit() locked it to the first method
            return IgnoredDigit(digit, method, f"call locked to {self.lock.method.value}")
        if event_for_digit(digit) not in self.outbound.event_range:
            return IgnoredDigit(digit, method, "outside the far side's key range")
        return None

    def _deliver(self, digit: str, duration_ms: int, method: DtmfMethod) -> list[Action]:
        out_method = select_send_method(self.outbound.send, method, far_rfc2833=self.far_rfc2833)
        if out_method is DtmfMethod.RFC2833:
            return [SendEvent(digit, duration_ms, self.outbound.payload_type)]
        if out_method is DtmfMethod.SIP_INFO:
            body = format_info_body(CONTENT_TYPE_DTMF_RELAY, digit, duration_ms)
            return [SendInfo(CONTENT_TYPE_DTMF_RELAY, body, digit, duration_ms)]
        if method is DtmfMethod.INBAND:
            return []  # the tones are already in the audio, which passes
        tones = generate_digits(
            digit, self.rate, on_ms=duration_ms, off_ms=0, level_dbm0=self.tone_level_dbm0
        )
        return [GenerateTones(digit, tones, self.rate)]

    def on_rfc2833(
        self, payload_type: int, timestamp: int, payload: bytes, *, marker: bool = False
    ) -> list[Action]:
        """A telephone-event packet from the inbound side (other payload types: ``[]``)."""
        if payload_type != self.inbound.payload_type:
            return []
        reports = self._events.receive(payload_type, timestamp, payload, marker=marker)
        packet = TelephoneEvent.parse(payload)
        if packet.event > 16:
            return []  # not a key: never converted
        passthrough = (
            select_send_method(self.outbound.send, DtmfMethod.RFC2833, far_rfc2833=self.far_rfc2833)
            is DtmfMethod.RFC2833
        )
        actions: list[Action] = []
        for report in reports:
            if report.kind == "start":
                refused = self._admit(report.digit, DtmfMethod.RFC2833)
                if refused is not None:
                    actions.append(refused)
                    self._forwarding = None
                elif passthrough:
                    self._forwarding = report.timestamp
                else:
                    self._forwarding = None
            elif report.kind == "end" and not passthrough and self._admitted_end(report):
                ms = max(1, round(report.duration * 1000 / self.event_clock_rate))
                actions += self._deliver(report.digit, ms, DtmfMethod.RFC2833)
        if (
            passthrough
            and self._forwarding is not None
            and packet.event in self.inbound.event_range
        ) and (self._forwarding == timestamp or self._is_segment_of_forwarded(timestamp)):
            actions.append(ForwardEvent(self.outbound.payload_type, timestamp, marker, payload))
        return actions

    def _admitted_end(self, report: ReceivedEvent) -> bool:
        return (
            self.lock.method is DtmfMethod.RFC2833
            and accepts(self.inbound.receive, DtmfMethod.RFC2833)
            and report.event in self.outbound.event_range
        )

    def _is_segment_of_forwarded(self, timestamp: int) -> bool:
        active = self._events.active
        return active is not None and active[1] == self._forwarding and active[2] == timestamp

    def on_info(self, content_type: str, body: bytes | str) -> list[Action]:
        """A SIP INFO from the inbound side."""
        found = parse_info_body(content_type, body)
        refused = self._admit(found.digit, DtmfMethod.SIP_INFO)
        if refused is not None:
            return [refused]
        duration = found.duration_ms if found.duration_ms is not None else 160
        return self._deliver(found.digit, duration, DtmfMethod.SIP_INFO)

    def on_audio(self, samples: np.ndarray) -> list[Action]:
        """Inbound audio (int16 or float, at ``rate``); digits found in it are relayed."""
        if self._detector is None:
            return []
        actions: list[Action] = []
        for event in self._detector.feed(samples):
            refused = self._admit(event.digit, DtmfMethod.INBAND)
            if refused is not None:
                actions.append(refused)
                continue
            ms = max(1, round(event.duration * 1000))
            actions += self._deliver(event.digit, ms, DtmfMethod.INBAND)
        return actions
