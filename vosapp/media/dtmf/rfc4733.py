"""RFC 4733 (formerly RFC 2833) telephone-event payloads: format, sender, receiver.

Payload (RFC 4733 §2.3)::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    |     event     |E|R| volume    |          duration             |

* event: 0-9, ``*`` = 10, ``#`` = 11, A-D = 12-15, flash = 16 (RFC 4734 §3.2).
* E: end of event. R: reserved, sent as 0 and ignored on receipt.
* volume: power level of the tone, 0 to -63 dBm0, sent as 0-63.
* duration: in RTP timestamp units since the event's timestamp (the event's start).

Sender rules (§2.5.1): every packet of an event carries the same RTP timestamp (the start);
the first packet has the marker bit; updates go out every packet interval with the duration so
far; the final packet (E bit set) is sent three times. An event longer than 0xFFFF timestamp
units is split into segments (§2.5.1.3): a segment ends with duration 0xFFFF (sent three times,
without the E bit) and the next starts at timestamp + 0xFFFF, without the marker bit.

Receiver rules (§2.5.2): packets are grouped by timestamp; a new timestamp starts an event even
when its first packets (with the marker) were lost; repeated end packets are reported once;
a segment that continues the previous event (same event, timestamp = previous segment's
timestamp + 0xFFFF, no E bit seen) is not a new digit.

This module works on payloads and header *fields* (payload type, marker, timestamp, sequence);
putting them into RTP packets is the job of :mod:`vosapp.media.rtp`.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, replace

from .errors import DigitError, TelephoneEventError

__all__ = [
    "DEFAULT_EVENT_RANGE",
    "DEFAULT_PAYLOAD_TYPE",
    "FLASH",
    "MAX_DURATION",
    "EventPacket",
    "ReceivedEvent",
    "TelephoneEvent",
    "TelephoneEventReceiver",
    "TelephoneEventSender",
    "digit_for_event",
    "event_for_digit",
    "format_event_range",
    "parse_event_range",
    "retarget",
]

_PAYLOAD = struct.Struct("!BBH")
#: Event code of a hook flash (RFC 4734). Its key character here is ``"!"``.
FLASH = 16
MAX_DURATION = 0xFFFF
DEFAULT_PAYLOAD_TYPE = 101
#: Events 0-16: the 16 DTMF keys and flash, the VOS3000 default key range.
DEFAULT_EVENT_RANGE = frozenset(range(17))
_KEYS = "0123456789*#ABCD!"


def event_for_digit(digit: str) -> int:
    """Event code of a key: ``"0"``-``"9"`` → 0-9, ``"*"`` → 10, ``"#"`` → 11, A-D → 12-15,
    ``"!"`` (flash) → 16.

    Raises
    ------
    DigitError
        For any other character.
    """
    if not isinstance(digit, str) or len(digit) != 1 or digit.upper() not in _KEYS:
        raise DigitError(f"{digit!r} is not a DTMF key; expected one of {_KEYS}")
    return _KEYS.index(digit.upper())


def digit_for_event(event: int) -> str:
    """Key character of an event code 0-16 (``"!"`` for flash).

    Raises
    ------
    TelephoneEventError
        For codes outside 0-16 (other RFC 4734 events are not keys).
    """
    if isinstance(event, bool) or not isinstance(event, int) or not 0 <= event <= FLASH:
        raise TelephoneEventError(f"event {event!r} is not a DTMF key or flash (0-16)")
    return _KEYS[event]


def parse_event_range(text: str) -> frozenset[int]:
    """Parse an SDP ``a=fmtp`` event list such as ``"0-15"`` or ``"0-11,16"``.

    Raises
    ------
    TelephoneEventError
        For a malformed list, a reversed range or codes above 255.
    """
    events: set[int] = set()
    if not isinstance(text, str) or not text.strip():
        raise TelephoneEventError(f"empty telephone-event range {text!r}")
    for part in text.replace(" ", "").split(","):
        low, sep, high = part.partition("-")
        try:
            first = int(low)
            last = int(high) if sep else first
        except ValueError:
            raise TelephoneEventError(
                f"bad telephone-event range item {part!r} in {text!r}"
            ) from None
        if not 0 <= first <= last <= 255:
            raise TelephoneEventError(f"bad telephone-event range item {part!r} in {text!r}")
        events.update(range(first, last + 1))
    return frozenset(events)


def format_event_range(events: Iterable[int]) -> str:
    """Format event codes as an ``a=fmtp`` list, e.g. ``{0, ..., 15, 16}`` → ``"0-16"``."""
    codes = sorted(set(events))
    if not codes:
        raise TelephoneEventError("cannot format an empty event range")
    parts = []
    start = prev = codes[0]
    for code in codes[1:] + [None]:
        if code is not None and code == prev + 1:
            prev = code
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if code is not None:
            start = prev = code
    return ",".join(parts)


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """One telephone-event payload; ``bytes(event)`` serializes it (4 bytes).

    Attributes
    ----------
    event : int
        0-255 (0-16 are the keys and flash).
    end : bool
        The E bit.
    volume : int
        0-63, meaning 0 to -63 dBm0.
    duration : int
        0-65535 timestamp units.
    """

    event: int
    end: bool = False
    volume: int = 10
    duration: int = 0

    def __post_init__(self) -> None:
        for name, value, high in (
            ("event", self.event, 255),
            ("volume", self.volume, 63),
            ("duration", self.duration, MAX_DURATION),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= high:
                raise TelephoneEventError(f"telephone-event {name} {value!r} is outside 0-{high}")

    def __bytes__(self) -> bytes:
        return _PAYLOAD.pack(self.event, (0x80 if self.end else 0) | self.volume, self.duration)

    @classmethod
    def parse(cls, payload: bytes) -> TelephoneEvent:
        """Parse a 4-byte payload (the R bit is ignored, per §2.3).

        Raises
        ------
        TelephoneEventError
            If the payload is not exactly 4 bytes.
        """
        if len(payload) != _PAYLOAD.size:
            raise TelephoneEventError(
                f"telephone-event payload must be 4 bytes, got {len(payload)}"
            )
        event, flags, duration = _PAYLOAD.unpack(payload)
        return cls(event, bool(flags & 0x80), flags & 0x3F, duration)

    @property
    def digit(self) -> str:
        """The key character (``"!"`` for flash); raises for other events."""
        return digit_for_event(self.event)


@dataclass(frozen=True, slots=True)
class EventPacket:
    """Header fields and payload of one telephone-event RTP packet.

    ``send_at`` is the offset in seconds from the event's start at which the sender emits it.
    """

    payload_type: int
    sequence: int
    timestamp: int
    marker: bool
    event: TelephoneEvent
    send_at: float = 0.0

    @property
    def payload(self) -> bytes:
        """The 4-byte RTP payload."""
        return bytes(self.event)


def retarget(packet: EventPacket, payload_type: int) -> EventPacket:
    """The same packet with another payload type (each leg uses its own gateway's setting).

    Raises
    ------
    TelephoneEventError
        For a payload type outside the dynamic range 96-127.
    """
    _check_payload_type(payload_type)
    return replace(packet, payload_type=payload_type)


def _check_payload_type(payload_type: int) -> None:
    if isinstance(payload_type, bool) or not isinstance(payload_type, int):
        raise TelephoneEventError(f"payload type must be an int, got {payload_type!r}")
    if not 96 <= payload_type <= 127:
        raise TelephoneEventError(
            f"telephone-event payload type {payload_type} is outside the dynamic range 96-127"
        )


class TelephoneEventSender:
    """Builds the packet sequence of RFC 4733 §2.5.1 for one digit at a time.

    Parameters
    ----------
    payload_type : int
        96-127 (the gateway's "RFC2833 payload", default 101).
    clock_rate : int
        RTP clock of the audio codec (8000 also for G.722).
    ptime_ms : int
        Interval between updates, normally the audio packet interval.
    volume : int
        0-63 (-dBm0) reported in every packet.
    end_repeats : int
        How many times the final packet of an event or segment is sent (RFC: 3).
    """

    def __init__(
        self,
        payload_type: int = DEFAULT_PAYLOAD_TYPE,
        *,
        clock_rate: int = 8000,
        ptime_ms: int = 20,
        volume: int = 10,
        end_repeats: int = 3,
    ) -> None:
        _check_payload_type(payload_type)
        if clock_rate <= 0 or ptime_ms <= 0 or (clock_rate * ptime_ms) % 1000:
            raise TelephoneEventError(
                f"ptime_ms={ptime_ms} at clock_rate={clock_rate} is not a whole number of ticks"
            )
        if not 0 <= volume <= 63:
            raise TelephoneEventError(f"volume {volume} is outside 0-63")
        if end_repeats < 1:
            raise TelephoneEventError(f"end_repeats must be >= 1, got {end_repeats}")
        self.payload_type = payload_type
        self.clock_rate = clock_rate
        self.ptime_ms = ptime_ms
        self.volume = volume
        self.end_repeats = end_repeats
        self.step = clock_rate * ptime_ms // 1000

    def packets(
        self, digit: str | int, duration_ms: float, *, timestamp: int, sequence: int
    ) -> list[EventPacket]:
        """All packets for one event, in sending order.

        Parameters
        ----------
        digit : str or int
            A key (``"5"``, ``"#"``, ``"!"``) or an event code 0-255.
        duration_ms : float
            How long the key was held.
        timestamp : int
            RTP timestamp of the event start (of the first segment).
        sequence : int
            Sequence number of the first packet; later packets increment it (mod 2^16).
        """
        event = digit if isinstance(digit, int) else event_for_digit(digit)
        TelephoneEvent(event)  # validates the code
        total = max(1, round(duration_ms * self.clock_rate / 1000.0))
        out: list[EventPacket] = []
        seg_start = 0  # offset of the current segment from the event start, in ticks
        first_segment = True
        seconds_per_tick = 1.0 / self.clock_rate
        while True:
            remaining = total - seg_start
            last_segment = remaining <= MAX_DURATION
            seg_length = remaining if last_segment else MAX_DURATION
            seg_ts = (timestamp + seg_start) & 0xFFFFFFFF
            elapsed = self.step
            first_packet = True
            while elapsed < seg_length:
                out.append(
                    EventPacket(
                        self.payload_type,
                        (sequence + len(out)) & 0xFFFF,
                        seg_ts,
                        first_packet and first_segment,
                        TelephoneEvent(event, False, self.volume, elapsed),
                        (seg_start + elapsed) * seconds_per_tick,
                    )
                )
                first_packet = False
                elapsed += self.step
            # The final packet of the segment, repeated; the E bit only at the event's end.
            final_at = (seg_start + seg_length) * seconds_per_tick
            for repeat in range(self.end_repeats):
                out.append(
                    EventPacket(
                        self.payload_type,
                        (sequence + len(out)) & 0xFFFF,
                        seg_ts,
                        first_packet and first_segment and repeat == 0,
                        TelephoneEvent(event, last_segment, self.volume, seg_length),
                        final_at + repeat * self.ptime_ms / 1000.0,
                    )
                )
            if last_segment:
                return out
            seg_start += MAX_DURATION
            first_segment = False


@dataclass(frozen=True, slots=True)
class ReceivedEvent:
    """What a :class:`TelephoneEventReceiver` reports.

    Attributes
    ----------
    kind : str
        ``"start"`` (first packet of a new event seen) or ``"end"`` (its end).
    event : int
        Event code.
    timestamp : int
        RTP timestamp of the event start (of its first segment).
    duration : int
        Total duration in timestamp units so far (0 for a start without duration, the full
        duration for ``"end"``).
    volume : int
        0-63 (-dBm0).
    end_seen : bool
        For ``"end"``: True when an E-bit packet was received, False when the end was inferred
        (a new event began before any end packet arrived).
    """

    kind: str
    event: int
    timestamp: int
    duration: int
    volume: int
    end_seen: bool = True

    @property
    def digit(self) -> str:
        """Key character (``"!"`` for flash)."""
        return digit_for_event(self.event)


class TelephoneEventReceiver:
    """Turns a stream of telephone-event packets into event starts and ends (§2.5.2).

    Parameters
    ----------
    payload_type : int
        The telephone-event payload type negotiated on this leg; other payload types are
        not events and are ignored (return ``[]``).
    allowed_events : iterable of int
        Events outside this set (the gateway's key range, default 0-16) are dropped.
    """

    def __init__(
        self,
        payload_type: int = DEFAULT_PAYLOAD_TYPE,
        *,
        allowed_events: Iterable[int] = DEFAULT_EVENT_RANGE,
    ) -> None:
        _check_payload_type(payload_type)
        self.payload_type = payload_type
        self.allowed_events = frozenset(allowed_events)
        # (event, first timestamp, segment timestamp, duration of earlier segments, volume)
        self._active: tuple[int, int, int, int, int] | None = None
        self._duration = 0
        self._ended: deque[int] = deque(maxlen=64)  # segment timestamps of ended events
        self.dropped = 0  # events outside the allowed range

    @property
    def active(self) -> tuple[int, int, int] | None:
        """The event in progress: ``(event, first timestamp, current segment timestamp)``."""
        if self._active is None:
            return None
        return self._active[0], self._active[1], self._active[2]

    def receive(
        self, payload_type: int, timestamp: int, payload: bytes, *, marker: bool = False
    ) -> list[ReceivedEvent]:
        """Feed one packet's payload type, timestamp and payload (marker is informative only:
        a lost first packet must not lose the digit).

        Raises
        ------
        TelephoneEventError
            For a malformed telephone-event payload of this leg's payload type.
        """
        if payload_type != self.payload_type:
            return []
        packet = TelephoneEvent.parse(payload)
        if packet.event not in self.allowed_events:
            self.dropped += 1
            return []
        out: list[ReceivedEvent] = []
        if timestamp in self._ended:
            return out  # a retransmitted end packet
        active = self._active
        if active is not None and timestamp != active[2]:
            event, ts0, seg_ts, before, volume = active
            if packet.event == event and timestamp == (seg_ts + MAX_DURATION) & 0xFFFFFFFF:
                # The next segment of a long event (§2.5.1.3): the same digit continues.
                self._active = (event, ts0, timestamp, before + MAX_DURATION, volume)
                active = self._active
                self._duration = 0
            elif _is_older(timestamp, seg_ts):
                return out  # a late packet of an earlier event
            else:
                out.append(ReceivedEvent("end", event, ts0, before + self._duration, volume, False))
                self._remember(seg_ts)
                active = None
        if active is None:
            self._active = active = (packet.event, timestamp, timestamp, 0, packet.volume)
            self._duration = 0
            out.append(
                ReceivedEvent("start", packet.event, timestamp, packet.duration, packet.volume)
            )
        self._duration = max(self._duration, packet.duration)
        if packet.end:
            event, ts0, seg_ts, before, volume = active
            out.append(ReceivedEvent("end", event, ts0, before + self._duration, volume, True))
            self._remember(seg_ts)
            self._active = None
        return out

    def _remember(self, timestamp: int) -> None:
        self._ended.append(timestamp)


def _is_older(timestamp: int, reference: int) -> bool:
    """RTP timestamp comparison modulo 2^32 (RFC 3550 style serial arithmetic)."""
    return timestamp != reference and ((reference - timestamp) & 0xFFFFFFFF) < 0x80000000
