"""RFC 4733 telephone-event payloads, sender and receiver, with byte-exact vectors."""

from __future__ import annotations

import pytest

from vosapp.media.dtmf import rfc4733
from vosapp.media.dtmf.errors import DigitError, TelephoneEventError
from vosapp.media.dtmf.rfc4733 import (
    MAX_DURATION,
    TelephoneEvent,
    TelephoneEventReceiver,
    TelephoneEventSender,
    digit_for_event,
    event_for_digit,
    format_event_range,
    parse_event_range,
    retarget,
)

# ---------------------------------------------------------------------------------------------
# Payload


@pytest.mark.parametrize(
    "event, wire",
    [
        (TelephoneEvent(5, False, 10, 160), bytes.fromhex("050a00a0")),
        (TelephoneEvent(5, True, 10, 800), bytes.fromhex("058a0320")),
        (TelephoneEvent(11, True, 63, 0xFFFF), bytes.fromhex("0bbfffff")),  # '#', -63 dBm0
        (TelephoneEvent(16, False, 0, 0), bytes.fromhex("10000000")),  # flash
        (TelephoneEvent(0, True, 7, 1234), bytes.fromhex("008704d2")),
    ],
)
def test_payload_vectors(event: TelephoneEvent, wire: bytes) -> None:
    assert bytes(event) == wire
    assert TelephoneEvent.parse(wire) == event


def test_reserved_bit_ignored_on_receipt() -> None:
    # R (0x40) set by a sloppy sender: ignored, and never sent.
    event = TelephoneEvent.parse(bytes.fromhex("05ca0320"))
    assert event == TelephoneEvent(5, True, 10, 800)
    assert bytes(event) == bytes.fromhex("058a0320")


def test_payload_errors() -> None:
    with pytest.raises(TelephoneEventError, match="4 bytes, got 3"):
        TelephoneEvent.parse(b"\x05\x0a\x00")
    with pytest.raises(TelephoneEventError, match="volume 64"):
        TelephoneEvent(5, volume=64)
    with pytest.raises(TelephoneEventError, match="duration 65536"):
        TelephoneEvent(5, duration=65536)
    with pytest.raises(TelephoneEventError, match="event 256"):
        TelephoneEvent(256)


def test_event_codes() -> None:
    assert [event_for_digit(d) for d in "0123456789*#ABCD!"] == list(range(17))
    assert event_for_digit("b") == 13
    assert "".join(digit_for_event(e) for e in range(17)) == "0123456789*#ABCD!"
    with pytest.raises(DigitError):
        event_for_digit("E")
    with pytest.raises(TelephoneEventError, match="0-16"):
        digit_for_event(17)


def test_event_ranges() -> None:
    assert parse_event_range("0-15") == frozenset(range(16))
    assert parse_event_range("0-11, 16") == frozenset([*range(12), 16])
    assert format_event_range(range(17)) == "0-16"
    assert format_event_range([16, 0, 1, 2, 5]) == "0-2,5,16"
    for bad in ("", "0-", "a-b", "15-0", "0-300"):
        with pytest.raises(TelephoneEventError):
            parse_event_range(bad)


# ---------------------------------------------------------------------------------------------
# Sender


def test_sender_packet_sequence_byte_exact() -> None:
    sender = TelephoneEventSender(101, clock_rate=8000, ptime_ms=20, volume=10)
    packets = sender.packets("5", 100, timestamp=1000, sequence=65534)
    rows = [
        (p.sequence, p.timestamp, p.marker, p.payload.hex(), round(p.send_at, 3)) for p in packets
    ]
    assert rows == [
        (65534, 1000, True, "050a00a0", 0.02),  # marker on the first packet only
        (65535, 1000, False, "050a0140", 0.04),  # duration updates every ptime
        (0, 1000, False, "050a01e0", 0.06),  # sequence wraps
        (1, 1000, False, "050a0280", 0.08),
        (2, 1000, False, "058a0320", 0.10),  # E bit, final duration 800 ...
        (3, 1000, False, "058a0320", 0.12),  # ... sent three times
        (4, 1000, False, "058a0320", 0.14),
    ]
    assert {p.payload_type for p in packets} == {101}


def test_sender_short_event_and_clock_rates() -> None:
    (first, *rest) = TelephoneEventSender(96, ptime_ms=30).packets("#", 10, timestamp=0, sequence=0)
    assert first.marker and first.event == TelephoneEvent(11, True, 10, 80)
    assert [p.payload.hex() for p in rest] == ["0b8a0050", "0b8a0050"]
    # G.722 keeps an 8000 Hz RTP clock; a 16 kHz clock doubles the durations.
    wide = TelephoneEventSender(clock_rate=16000).packets("1", 40, timestamp=0, sequence=0)
    assert [p.event.duration for p in wide] == [320, 640, 640, 640]


def test_long_event_is_segmented_at_0xffff() -> None:
    sender = TelephoneEventSender(ptime_ms=20)
    duration_ms = 10_000  # 80 000 ticks: one full segment of 0xFFFF and 14 465 more
    packets = sender.packets("0", duration_ms, timestamp=4_294_960_000, sequence=10)
    timestamps = sorted({p.timestamp for p in packets}, key=[p.timestamp for p in packets].index)
    assert timestamps == [4_294_960_000, (4_294_960_000 + MAX_DURATION) & 0xFFFFFFFF]
    first_segment = [p for p in packets if p.timestamp == timestamps[0]]
    second_segment = [p for p in packets if p.timestamp == timestamps[1]]
    assert [p.marker for p in packets].count(True) == 1 and packets[0].marker
    # The first segment ends with duration 0xFFFF three times, without the E bit.
    assert [p.payload.hex() for p in first_segment[-3:]] == ["000affff"] * 3
    assert not any(p.event.end for p in first_segment)
    assert max(p.event.duration for p in first_segment) == MAX_DURATION
    # The second segment counts again from one ptime and ends with E three times.
    assert second_segment[0].event.duration == 160
    assert [p.event.end for p in second_segment[-3:]] == [True] * 3
    assert second_segment[-1].event.duration == 80_000 - MAX_DURATION
    assert [p.sequence for p in packets] == list(range(10, 10 + len(packets)))


def test_sender_validation() -> None:
    with pytest.raises(TelephoneEventError, match="96-127"):
        TelephoneEventSender(8)
    with pytest.raises(TelephoneEventError, match="whole number"):
        TelephoneEventSender(ptime_ms=20, clock_rate=11025)
    with pytest.raises(DigitError):
        TelephoneEventSender().packets("X", 100, timestamp=0, sequence=0)


def test_retarget_payload_type() -> None:
    packet = TelephoneEventSender(101).packets("7", 40, timestamp=0, sequence=0)[0]
    moved = retarget(packet, 96)
    assert moved.payload_type == 96 and moved.payload == packet.payload
    with pytest.raises(TelephoneEventError, match="96-127"):
        retarget(packet, 0)


# ---------------------------------------------------------------------------------------------
# Receiver


def feed(receiver: TelephoneEventReceiver, packets) -> list[tuple[str, str, int]]:
    out = []
    for p in packets:
        for e in receiver.receive(p.payload_type, p.timestamp, p.payload, marker=p.marker):
            out.append((e.kind, e.digit, e.duration))
    return out


def test_receiver_reports_start_and_one_end() -> None:
    packets = TelephoneEventSender().packets("9", 100, timestamp=5000, sequence=0)
    assert feed(TelephoneEventReceiver(), packets) == [("start", "9", 160), ("end", "9", 800)]


def test_receiver_survives_loss_of_start_and_of_end_packets() -> None:
    sender = TelephoneEventSender()
    a = sender.packets("1", 100, timestamp=0, sequence=0)
    b = sender.packets("2", 100, timestamp=2000, sequence=7)
    c = sender.packets("3", 60, timestamp=4000, sequence=14)
    stream = a[2:] + b[:3] + c  # first two of '1' lost; every end packet of '2' lost
    assert feed(TelephoneEventReceiver(), stream) == [
        ("start", "1", 480),
        ("end", "1", 800),
        ("start", "2", 160),
        ("end", "2", 480),  # inferred when '3' starts
        ("start", "3", 160),
        ("end", "3", 480),
    ]


def test_receiver_same_digit_twice_and_late_packets() -> None:
    sender = TelephoneEventSender()
    a = sender.packets("5", 60, timestamp=0, sequence=0)
    b = sender.packets("5", 60, timestamp=1600, sequence=6)
    receiver = TelephoneEventReceiver()
    got = feed(receiver, a + b + [a[0], a[-1]])  # late copies of the first digit at the end
    assert got == [("start", "5", 160), ("end", "5", 480), ("start", "5", 160), ("end", "5", 480)]


def test_receiver_long_event_is_one_digit() -> None:
    packets = TelephoneEventSender().packets("0", 10_000, timestamp=123, sequence=0)
    assert feed(TelephoneEventReceiver(), packets) == [("start", "0", 160), ("end", "0", 80_000)]


def test_receiver_payload_type_and_key_range_control() -> None:
    packets = TelephoneEventSender(101).packets("!", 60, timestamp=0, sequence=0)
    receiver = TelephoneEventReceiver(101, allowed_events=range(16))  # no flash
    assert feed(receiver, packets) == [] and receiver.dropped == len(packets)
    assert feed(TelephoneEventReceiver(96), packets) == []  # another leg's payload type
    moved = [
        retarget(p, 96) for p in TelephoneEventSender(101).packets("4", 40, timestamp=0, sequence=0)
    ]
    assert feed(TelephoneEventReceiver(96), moved) == [("start", "4", 160), ("end", "4", 320)]
    with pytest.raises(TelephoneEventError, match="4 bytes"):
        TelephoneEventReceiver().receive(101, 0, b"\x01\x02")


def test_module_exports() -> None:
    for name in rfc4733.__all__:
        assert hasattr(rfc4733, name)


# ---------------------------------------------------------------------------------------------
# Properties: whatever the digit, duration, timestamp and sequence, the receiver gets back the
# digit once with the sender's duration, also across segment boundaries and counter wraps.

from hypothesis import given, settings
from hypothesis import strategies as st


@settings(max_examples=60, deadline=None)
@given(
    digit=st.sampled_from("0123456789*#ABCD!"),
    duration_ms=st.integers(1, 20_000),
    timestamp=st.integers(0, 2**32 - 1),
    sequence=st.integers(0, 2**16 - 1),
    ptime_ms=st.sampled_from([10, 20, 30]),
    drop_first=st.integers(0, 2),
)
def test_sender_receiver_round_trip(
    digit: str, duration_ms: int, timestamp: int, sequence: int, ptime_ms: int, drop_first: int
) -> None:
    packets = TelephoneEventSender(ptime_ms=ptime_ms).packets(
        digit, duration_ms, timestamp=timestamp, sequence=sequence
    )
    ticks = max(1, round(duration_ms * 8))
    assert [p.sequence for p in packets] == [(sequence + i) & 0xFFFF for i in range(len(packets))]
    assert all(0 <= p.event.duration <= MAX_DURATION for p in packets)
    got = feed(
        TelephoneEventReceiver(), packets[drop_first:] if len(packets) > 3 + drop_first else packets
    )
    assert [k for k, _, _ in got] == ["start", "end"]
    assert got[-1] == ("end", digit, ticks)
