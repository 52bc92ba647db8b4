"""RTP packets (RFC 3550 §5.1), receive statistics (appendix A) and outgoing numbering."""

from __future__ import annotations

import random

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from vosapp.media.rtp import (
    OutgoingStream,
    RtpError,
    RtpPacket,
    RtpStreamStats,
    rewrite_payload_type,
)

# Hand-assembled datagrams, field by field.
PLAIN = bytes.fromhex(
    "80"  # V=2 P=0 X=0 CC=0
    "08"  # M=0 PT=8 (PCMA)
    "1234"  # sequence
    "00000640"  # timestamp 1600
    "deadbeef"  # SSRC
    "d5d5d5d5"  # payload
)
MARKED_CSRC_EXT_PADDED = bytes.fromhex(
    "b2"  # V=2 P=1 X=1 CC=2
    "e5"  # M=1 PT=101
    "ffff"
    "ffffffff"
    "00000001"
    "0000000a" "0000000b"  # two CSRCs
    "bede" "0001" "10ab0000"  # extension: profile 0xBEDE, 1 word
    "0b0a00a0"  # payload: RFC 4733 event 11, E=0, volume 10, duration 160
    "000003"  # 3 bytes of padding, the last one is the count
)


def test_parse_plain_fixture() -> None:
    packet = RtpPacket.parse(PLAIN)
    assert packet.payload_type == 8
    assert packet.sequence == 0x1234
    assert packet.timestamp == 1600
    assert packet.ssrc == 0xDEADBEEF
    assert packet.payload == b"\xd5" * 4
    assert not packet.marker
    assert packet.csrc == ()
    assert packet.extension_profile is None
    assert packet.padding == b""
    assert bytes(packet) == PLAIN


def test_parse_full_fixture_round_trips_byte_exact() -> None:
    packet = RtpPacket.parse(MARKED_CSRC_EXT_PADDED)
    assert packet.marker
    assert packet.payload_type == 101
    assert packet.sequence == 0xFFFF
    assert packet.timestamp == 0xFFFFFFFF
    assert packet.csrc == (10, 11)
    assert packet.extension_profile == 0xBEDE
    assert packet.extension == bytes.fromhex("10ab0000")
    assert packet.payload == bytes.fromhex("0b0a00a0")
    assert packet.padding == b"\x00\x00\x03"
    assert bytes(packet) == MARKED_CSRC_EXT_PADDED


@given(
    pt=st.integers(0, 127),
    seq=st.integers(0, 0xFFFF),
    ts=st.integers(0, 0xFFFFFFFF),
    ssrc=st.integers(0, 0xFFFFFFFF),
    marker=st.booleans(),
    csrc=st.lists(st.integers(0, 0xFFFFFFFF), max_size=15),
    ext_words=st.one_of(st.none(), st.integers(0, 4)),
    payload=st.binary(max_size=64),
    pad=st.integers(0, 8),
)
def test_serialize_parse_round_trip(
    pt: int, seq: int, ts: int, ssrc: int, marker: bool, csrc: list[int],
    ext_words: int | None, payload: bytes, pad: int,
) -> None:
    packet = RtpPacket(
        payload_type=pt, sequence=seq, timestamp=ts, ssrc=ssrc, payload=payload, marker=marker,
        csrc=tuple(csrc),
        extension_profile=None if ext_words is None else 0x1000,
        extension=b"\x01\x02\x03\x04" * (ext_words or 0),
        padding=(b"\x00" * (pad - 1) + bytes([pad])) if pad else b"",
    )
    data = bytes(packet)
    assert RtpPacket.parse(data) == packet
    assert bytes(RtpPacket.parse(data)) == data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x80\x08\x00", "too short"),
        (bytes.fromhex("4008123400000640deadbeef"), "version 1"),
        (bytes.fromhex("8308123400000640deadbeef"), "CSRC"),
        (bytes.fromhex("9008123400000640deadbeef"), "extension"),
        (bytes.fromhex("9008123400000640deadbeef00010005"), "claims 5 words"),
        (bytes.fromhex("a008123400000640deadbeef00"), "padding count 0"),
        (bytes.fromhex("a008123400000640deadbeef0009"), "padding count 9"),
    ],
)
def test_malformed_packets_raise_specific_error(data: bytes, message: str) -> None:
    with pytest.raises(RtpError, match=message):
        RtpPacket.parse(data)


def test_invalid_fields_refuse_to_serialize() -> None:
    with pytest.raises(RtpError, match="payload_type 128"):
        bytes(RtpPacket(payload_type=128, sequence=0, timestamp=0, ssrc=0))
    with pytest.raises(RtpError, match="whole 32-bit words"):
        bytes(RtpPacket(8, 0, 0, 0, extension_profile=1, extension=b"abc"))
    with pytest.raises(RtpError, match="last byte says"):
        bytes(RtpPacket(8, 0, 0, 0, padding=b"\x00\x05"))


def test_rewrite_payload_type_keeps_marker_and_rest() -> None:
    marked = bytes(RtpPacket(101, 7, 160, 9, payload=b"\x01\x02\x03\x04", marker=True))
    rewritten = rewrite_payload_type(marked, 96)
    packet = RtpPacket.parse(rewritten)
    assert packet.payload_type == 96 and packet.marker
    assert rewritten[0] == marked[0] and rewritten[2:] == marked[2:]
    with pytest.raises(RtpError):
        rewrite_payload_type(marked, 200)
    with pytest.raises(RtpError):
        rewrite_payload_type(b"\x00" * 12, 8)


# -- statistics ---------------------------------------------------------------------------


def feed(stats: RtpStreamStats, sequences: list[int], *, step: int = 160) -> None:
    for i, seq in enumerate(sequences):
        stats.update(seq, (seq * step) & 0xFFFFFFFF, i * 0.02)


def test_stats_in_order_no_loss_zero_jitter() -> None:
    stats = RtpStreamStats()
    feed(stats, list(range(100, 200)))
    assert (stats.received, stats.expected, stats.lost) == (100, 100, 0)
    assert stats.reordered == stats.duplicates == 0
    assert stats.jitter == pytest.approx(0.0, abs=1e-9)


def test_stats_loss_across_sequence_wrap() -> None:
    stats = RtpStreamStats()
    sequences = [s & 0xFFFF for s in range(65500, 65500 + 200)]
    dropped = {sequences[10], sequences[36], sequences[37], sequences[150]}  # 36 = wrap point
    feed(stats, [s for s in sequences if s not in dropped])
    assert stats.expected == 200
    assert stats.lost == 4
    assert stats.received == 196
    assert stats.as_dict()["cycles"] == 1


def test_stats_reorder_and_duplicates() -> None:
    stats = RtpStreamStats()
    feed(stats, [1, 2, 4, 3, 5, 5, 6, 2, 8])
    assert stats.reordered == 1  # 3 arrived after 4
    assert stats.duplicates == 2  # the second 5 and the late second 2
    assert stats.expected == 8
    assert stats.lost == 1  # 7 never came
    assert stats.received == 9


def test_stats_reorder_across_wrap() -> None:
    stats = RtpStreamStats()
    feed(stats, [65533, 65534, 0, 65535, 1, 2])
    assert stats.reordered == 1
    assert stats.lost == 0
    assert stats.expected == 6


def test_stats_restart_after_large_jump() -> None:
    stats = RtpStreamStats()
    feed(stats, [10, 11, 12, 30000, 30001, 30002])
    assert stats.restarts == 1
    assert stats.lost == 0
    assert stats.expected == 6


def test_jitter_matches_rfc3550_a8_by_hand() -> None:
    stats = RtpStreamStats(clock_rate=8000)
    # packets every 20 ms of media but arrival deltas of 20, 30, 10 ms
    arrivals = [0.0, 0.020, 0.050, 0.060]
    for i, arrival in enumerate(arrivals):
        stats.update(i, i * 160, arrival)
    expected = 0.0
    for d in (0.0, 80.0, 80.0):  # |D| in timestamp units: 0 ms, +10 ms, -10 ms
        expected += (d - expected) / 16
    assert stats.jitter == pytest.approx(expected)
    assert stats.jitter_ms == pytest.approx(expected / 8)


def test_jitter_with_timestamp_wrap() -> None:
    stats = RtpStreamStats()
    stats.update(1, 0xFFFFFF60, 0.0)
    stats.update(2, 0x00000000, 0.020)  # +160 ticks across the 32-bit wrap
    assert stats.jitter == pytest.approx(0.0, abs=1e-9)


# -- outgoing numbering -------------------------------------------------------------------


def test_outgoing_stream_advances_and_wraps() -> None:
    stream = OutgoingStream(18, ssrc=0x01020304, sequence=0xFFFF, timestamp=0xFFFFFFA0)
    first = RtpPacket.parse(stream.packet(b"\x00" * 20, 160, marker=True))
    second = RtpPacket.parse(stream.packet(b"\x00" * 20, 160))
    assert (first.sequence, first.timestamp, first.marker) == (0xFFFF, 0xFFFFFFA0, True)
    assert (second.sequence, second.timestamp, second.marker) == (0, 0x40, False)
    assert first.ssrc == second.ssrc == 0x01020304
    event = RtpPacket.parse(stream.packet_at(b"\x01\x0a\x00\xa0", 1234, payload_type=101))
    assert (event.payload_type, event.sequence, event.timestamp) == (101, 1, 1234)
    assert stream.packets == 3


def test_outgoing_stream_random_initial_values_are_seedable() -> None:
    a = OutgoingStream(8, rng=random.Random(7))
    b = OutgoingStream(8, rng=random.Random(7))
    c = OutgoingStream(8, rng=random.Random(8))
    assert (a.ssrc, a.sequence, a.timestamp) == (b.ssrc, b.sequence, b.timestamp)
    assert (a.ssrc, a.sequence, a.timestamp) != (c.ssrc, c.sequence, c.timestamp)


@given(
    start=st.integers(0, 0xFFFF),
    dropped=st.sets(st.integers(1, 298), max_size=40),
    swaps=st.lists(st.integers(1, 290), max_size=30),
    duplicated=st.lists(st.integers(1, 298), max_size=10),
)
def test_stats_property_loss_and_duplicates(
    start: int, dropped: set[int], swaps: list[int], duplicated: list[int]
) -> None:
    order = list(range(300))
    for i in swaps:  # local reordering: swap neighbours
        order[i], order[i + 1] = order[i + 1], order[i]
    arrivals = [i for i in order if i not in dropped]
    duplicates = [i for i in duplicated if i not in dropped]
    for i in duplicates:  # a duplicate arrives right after its original
        arrivals.insert(arrivals.index(i) + 1, i)
    stats = RtpStreamStats()
    for n, i in enumerate(arrivals):
        stats.update((start + i) & 0xFFFF, 160 * i, 0.02 * n)
    assert stats.received == len(arrivals)
    assert stats.expected == 300
    assert stats.lost == len(dropped)
    assert stats.duplicates == len(duplicates)


@given(
    st.lists(st.tuples(st.sampled_from([1, 1, 1, 1, 2, 0, -1, -3, 40, 5000, -5000]),
                       st.sampled_from([160, 160, 160, 0, 320, -160, 2**31 + 7]),
                       st.integers(0, 3)),
             min_size=1, max_size=120),
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFFFFFF),
)
@example([(1, 160, 0)] * 12, 65530, 0xFFFFFF00)  # both numbers wrap inside one batch
def test_update_many_is_update_for_each_packet_bit_for_bit(
    steps: list[tuple[int, int, int]], sequence: int, timestamp: int
) -> None:
    """Packets drained together (one arrival time, any gaps, late ones, duplicates, restarts,
    wraps) leave exactly the state update() one by one leaves, the jitter float included."""
    one, many = RtpStreamStats(), RtpStreamStats()
    batch: list[tuple[int, int, int, int]] = []
    now = 10.0
    for seq_step, ts_step, pause in steps:
        sequence = (sequence + seq_step) & 0xFFFF
        timestamp = (timestamp + ts_step) & 0xFFFFFFFF
        one.update(sequence, timestamp, now)
        batch.append((0x80, 8, sequence, timestamp))
        if pause:  # the next packets arrive in another wake-up
            many.update_many(batch, now)
            batch = []
            now += 0.007 * pause
    many.update_many(batch, now)
    state = [name for name in RtpStreamStats.__slots__ if name != "_missing"]
    assert [getattr(many, n) for n in state] == [getattr(one, n) for n in state]
    assert many._missing == one._missing
    assert many.as_dict() == one.as_dict()
