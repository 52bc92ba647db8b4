"""The sans-IO relay core under virtual time: no sockets, no event loop, every send visible."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from vosapp.clock import ManualClock
from vosapp.media import codecs
from vosapp.media.dtmf import DtmfConverter, DtmfSideSettings, TelephoneEventSender
from vosapp.media.dtmf.convert import IgnoredDigit, SendInfo
from vosapp.media.relay import LegConfig, RelayCore, Send
from vosapp.media.rtp import OutgoingStream, RtpPacket

PHONE = ("192.0.2.10", 4000)
CARRIER = ("198.51.100.20", 6000)
INTRUDER = ("203.0.113.66", 4000)


def stream(codec: str, payload_type: int, ssrc: int, count: int, *,
           sequence: int = 0, timestamp: int = 0) -> list[bytes]:
    """``count`` 20 ms packets of a 440 Hz tone in ``codec``."""
    encoder = codecs.get(codec)
    numbering = OutgoingStream(payload_type, ssrc=ssrc, sequence=sequence, timestamp=timestamp)
    tone = (8000 * np.sin(2 * np.pi * 440 * np.arange(160 * count) / 8000)).astype(np.int16)
    return [numbering.packet(encoder.encode(tone[i * 160:(i + 1) * 160]), 160)
            for i in range(count)]


def parsed(sends: list[Send]) -> list[tuple[str, tuple[str, int], RtpPacket]]:
    return [(side, to, RtpPacket.parse(bytes(data))) for side, to, data in sends]


def event_packets(payload_type: int, digit: str, *, ssrc: int = 5) -> list[bytes]:
    return [bytes(RtpPacket(payload_type, 100 + p.sequence, p.timestamp, ssrc,
                            payload=p.payload, marker=p.marker))
            for p in TelephoneEventSender(payload_type).packets(digit, 100, timestamp=4000,
                                                                sequence=0)]


def drain_timers(core: RelayCore, clock: ManualClock) -> list[Send]:
    """Run the core's paced sends the way the I/O layer does: one timer at its deadline."""
    sent: list[Send] = []
    while (deadline := core.next_deadline()) is not None:
        clock.advance_to(deadline)
        sent += core.expire(clock.now())
    return sent


def test_latching_sends_to_the_first_source_and_drops_foreign_packets() -> None:
    core = RelayCore(LegConfig("PCMA", remote=("192.0.2.1", 1)), LegConfig("PCMA"))
    a_packets, b_packets = stream("PCMA", 8, 1, 4), stream("PCMA", 8, 2, 2)
    assert core.receive("a", a_packets[0], PHONE, 0.0) == []  # leg b has no address yet
    assert core.a.latched == PHONE and core.stats()["a"]["dropped_no_peer"] == 1
    # leg b latches on its first packet; it goes to leg a's latched source, not the SDP one
    [(side, to, data)] = core.receive("b", b_packets[0], CARRIER, 0.0)
    assert (side, to, data) == ("a", PHONE, bytearray(b_packets[0]))
    assert core.receive("a", a_packets[1], PHONE, 0.02) == [("b", CARRIER, a_packets[1])]
    assert core.receive("a", a_packets[2], INTRUDER, 0.04) == []
    assert core.stats()["a"]["dropped_foreign"] == 1
    assert core.receive("a", b"\x00" * 8, PHONE, 0.05) == []
    assert core.stats()["a"]["dropped_invalid"] == 1
    core.relatch("a", ("192.0.2.99", 7000))  # re-INVITE moved the phone
    assert core.a.latched is None and core.a.peer == ("192.0.2.99", 7000)
    assert core.receive("a", a_packets[3], INTRUDER, 0.06) == [("b", CARRIER, a_packets[3])]
    assert core.a.latched == INTRUDER
    stats = core.stats()["a"]
    assert stats["rx_packets"] == 5 and stats["tx_packets"] == 0  # tx is the I/O layer's


def test_unknown_payload_type_does_not_latch() -> None:
    core = RelayCore(LegConfig("PCMA", dtmf_payload_type=101), LegConfig("PCMA", remote=CARRIER))
    alien = bytes(RtpPacket(99, 1, 0, 3, payload=b"x"))
    assert core.receive("a", alien, INTRUDER, 0.0) == []
    assert core.a.latched is None and core.stats()["a"]["dropped_unknown_pt"] == 1


def test_payload_types_are_rewritten_per_leg_in_relay_mode() -> None:
    core = RelayCore(LegConfig("PCMA", payload_type=8, remote=PHONE),
                     LegConfig("PCMA", payload_type=102, remote=CARRIER))
    packet = stream("PCMA", 8, 7, 1)[0]
    [(_, _, out)] = parsed(core.receive("a", packet, PHONE, 0.0))
    original = RtpPacket.parse(packet)
    assert out.payload_type == 102 and out.marker == original.marker
    assert (out.ssrc, out.sequence, out.timestamp) == (7, 0, 0)  # numbering kept
    assert out.payload == original.payload


@pytest.mark.parametrize(("direction", "a_to_b", "b_to_a"), [
    ("sendrecv", True, True),
    ("sendonly", True, False),  # phone only sends (it put the carrier on hold)
    ("recvonly", False, True),  # phone only listens
    ("inactive", False, False),
])
def test_sdp_direction_of_a_leg(direction: str, a_to_b: bool, b_to_a: bool) -> None:
    core = RelayCore(LegConfig("PCMA", remote=PHONE, direction=direction),
                     LegConfig("PCMA", remote=CARRIER))
    assert bool(core.receive("a", stream("PCMA", 8, 1, 1)[0], PHONE, 0.0)) is a_to_b
    assert bool(core.receive("b", stream("PCMA", 8, 2, 1)[0], CARRIER, 0.0)) is b_to_a
    stats = core.stats()
    assert stats["a"]["dropped_direction"] == (not a_to_b)
    assert stats["b"]["dropped_direction"] == (not b_to_a)
    assert core.a.latched == PHONE  # a valid packet still shows where the endpoint is


def test_hold_and_resume_by_set_direction() -> None:
    core = RelayCore(LegConfig("PCMA", remote=PHONE), LegConfig("PCMA", remote=CARRIER))
    packets = stream("PCMA", 8, 1, 3)
    assert core.receive("a", packets[0], PHONE, 0.0)
    core.set_direction("b", "inactive")
    assert core.receive("a", packets[1], PHONE, 0.02) == []
    core.set_direction("b", "sendrecv")
    assert core.receive("a", packets[2], PHONE, 0.04)
    with pytest.raises(ValueError, match="direction must be one of"):
        core.set_direction("b", "hold")


def test_transcoding_pcma_and_g729_own_numbering_per_leg() -> None:
    core = RelayCore(LegConfig("PCMA", remote=PHONE), LegConfig("G729", remote=CARRIER))
    assert core.mode == "transcode"
    up = stream("PCMA", 8, 0x1111, 10, sequence=65530, timestamp=2**32 - 800)
    down = stream("G729", 18, 0x2222, 10, sequence=500, timestamp=123456)
    to_b, to_a = [], []
    for i in range(10):
        to_b += parsed(core.receive("a", up[i], PHONE, i * 0.02))
        to_a += parsed(core.receive("b", down[i], CARRIER, i * 0.02))
    for sent, side, peer, payload_type, size in ((to_b, "b", CARRIER, 18, 20),
                                                 (to_a, "a", PHONE, 8, 160)):
        assert len(sent) == 10 and {(s, to) for s, to, _ in sent} == {(side, peer)}
        packets = [p for _, _, p in sent]
        assert {p.payload_type for p in packets} == {payload_type}
        assert {len(p.payload) for p in packets} == {size}
        assert len({p.ssrc for p in packets}) == 1
        assert [p.marker for p in packets] == [True] + [False] * 9
        for before, after in itertools.pairwise(packets):
            assert after.sequence == (before.sequence + 1) & 0xFFFF
            assert after.timestamp == (before.timestamp + 160) & 0xFFFFFFFF
    # each leg is its own RTP session: not the incoming SSRCs, not each other's
    ssrcs = {to_b[0][2].ssrc, to_a[0][2].ssrc}
    assert len(ssrcs) == 2 and not ssrcs & {0x1111, 0x2222}
    assert core.stats()["transcoder_a"]["packets_out"] == 10


def test_rfc2833_regenerated_with_each_sides_payload_type_while_transcoding() -> None:
    core = RelayCore(LegConfig("PCMA", remote=PHONE, dtmf_payload_type=101),
                     LegConfig("G729", remote=CARRIER, dtmf_payload_type=96,
                               dtmf_events=frozenset(range(16))))
    voice = parsed(core.receive("a", stream("PCMA", 8, 1, 1, timestamp=4000)[0], PHONE, 0.0))
    events = []
    for datagram in event_packets(101, "5"):
        events += parsed(core.receive("a", datagram, PHONE, 0.0))
    assert events and {(side, to) for side, to, _ in events} == {("b", CARRIER)}
    packets = [p for _, _, p in events]
    assert {p.payload_type for p in packets} == {96}
    assert {p.payload[0] for p in packets} == {5}
    first_voice = voice[0][2]
    assert {p.ssrc for p in packets} == {first_voice.ssrc}  # leg b's stream, not the phone's
    assert {p.timestamp for p in packets} == {first_voice.timestamp}  # event started at 4000
    sequences = [first_voice.sequence] + [p.sequence for p in packets]
    assert sequences == [(sequences[0] + i) & 0xFFFF for i in range(len(sequences))]
    # flash (event 16) is outside leg b's key range: dropped and counted
    flash = bytes(RtpPacket(101, 200, 8000, 5, payload=bytes([16, 0x0A, 0, 160]),
                            marker=True))
    assert core.receive("a", flash, PHONE, 0.1) == []
    assert core.stats()["a"]["events_dropped"] == 1
    assert core.stats()["b"]["events_tx"] == len(packets)


def test_events_towards_a_leg_without_rfc2833_are_dropped() -> None:
    core = RelayCore(LegConfig("PCMA", remote=PHONE, dtmf_payload_type=101),
                     LegConfig("PCMA", remote=CARRIER, dtmf_payload_type=None))
    assert core.receive("a", event_packets(101, "1")[0], PHONE, 0.0) == []
    assert core.stats()["a"]["events_dropped"] == 1


def test_sip_info_to_rfc2833_is_paced_in_virtual_time() -> None:
    clock = ManualClock()
    core = RelayCore(
        LegConfig("PCMA", remote=PHONE, dtmf_payload_type=101),
        LegConfig("PCMA", remote=CARRIER, dtmf_payload_type=96),
        dtmf={"a": DtmfConverter(DtmfSideSettings(),
                                 DtmfSideSettings(payload_type=96, send="RFC2833"),
                                 far_rfc2833=True)},
    )
    voice = parsed(core.receive("a", stream("PCMA", 8, 1, 1)[0], PHONE, clock.now()))
    assert core.info_received("a", "application/dtmf-relay", "Signal=9\r\nDuration=100\r\n",
                              clock.now()) == []  # nothing at once: the sender paces it
    assert core.next_deadline() == pytest.approx(0.02)
    packets = [p for _, _, p in parsed(drain_timers(core, clock))]
    assert packets[0].marker and clock.now() == pytest.approx(0.14)  # 100 ms + 3 end packets
    assert {p.payload_type for p in packets} == {96} and {p.payload[0] for p in packets} == {9}
    assert sum(1 for p in packets if p.payload[1] & 0x80) == 3  # end packet sent 3 times
    assert {p.ssrc for p in packets} == {voice[0][2].ssrc}
    assert core.next_deadline() is None


def test_rfc2833_to_sip_info_and_the_first_method_lock() -> None:
    infos: list[tuple[str, SendInfo]] = []
    core = RelayCore(
        LegConfig("PCMA", remote=PHONE, dtmf_payload_type=101),
        LegConfig("PCMA", remote=CARRIER, dtmf_payload_type=None),
        dtmf={"a": DtmfConverter(DtmfSideSettings(), DtmfSideSettings(send="SIP INFO"),
                                 far_rfc2833=False)},
        on_info_send=lambda side, info: infos.append((side, info)),
    )
    for datagram in event_packets(101, "4"):
        assert core.receive("a", datagram, PHONE, 0.0) == []  # leaves as INFO, not RTP
    assert [(side, info.digit) for side, info in infos] == [("b", "4")]
    # the phone's first digit came as RFC 2833: an INFO digit afterwards is ignored (docs/behaviour.md §6)
    assert core.info_received("a", "application/dtmf-relay", "Signal=7\r\nDuration=100\r\n",
                              0.5) == []
    assert len(infos) == 1 and core.stats()["a"]["dtmf_ignored"] == 1
    ignored = [action for _, action in core.dtmf_log if isinstance(action, IgnoredDigit)]
    assert [(d.digit, d.method.value) for d in ignored] == [("7", "SIP INFO")]


def test_stream_statistics_from_arrival_times() -> None:
    core = RelayCore(LegConfig("PCMA", remote=PHONE), LegConfig("PCMA", remote=CARRIER))
    packets = stream("PCMA", 8, 1, 10)
    for i, datagram in enumerate(packets):
        if i != 4:  # one lost
            core.receive("a", datagram, PHONE, i * 0.020)
    stats = core.stats()["a"]
    assert (stats["rx_received"], stats["rx_lost"]) == (9, 1)
    assert stats["rx_jitter"] == pytest.approx(0.0, abs=1e-9)
    assert stats["rx_bytes"] == 9 * len(packets[0])
    late = RelayCore(LegConfig("PCMA", remote=PHONE), LegConfig("PCMA", remote=CARRIER))
    late.receive("a", packets[0], PHONE, 0.0)
    late.receive("a", packets[1], PHONE, 0.030)  # 10 ms late: |D| = 80 ticks, J = 80/16
    assert late.stats()["a"]["rx_jitter"] == pytest.approx(5.0)


def _mixed_traffic() -> list[tuple[str, bytes, tuple[str, int]]]:
    """Leg a's traffic with every kind of datagram receive() tells apart, in one sequence."""
    media = stream("PCMA", 8, 1, 40, sequence=65520, timestamp=2**32 - 1600)  # both wrap
    padded = RtpPacket.parse(media[5])
    padded.padding = b"\x00\x00\x03"
    events = event_packets(101, "5", ssrc=1)
    comfort_noise = bytes(RtpPacket(13, 7, 0, 1, payload=b"\x40"))
    v6_phone = ("2001:db8::10", 4000, 0, 0)
    return [
        ("media", media[0], INTRUDER),  # latches leg a on the intruder (the SDP says PHONE)
        ("media", media[1], INTRUDER),
        ("relatch", b"", PHONE),  # re-INVITE: the phone is back where its SDP said
        ("media", media[2], PHONE),
        ("media", media[3], PHONE),
        ("media", media[4], INTRUDER),  # foreign
        ("media", bytes(padded), PHONE),  # padded: valid, the long path
        ("media", media[7], PHONE),  # media[6] lost
        ("media", media[6], PHONE),  # ... and late
        ("media", media[7], PHONE),  # duplicate
        ("media", b"\x80\x08\x00", PHONE),  # too short
        ("media", comfort_noise, PHONE),
        *[("media", event, PHONE) for event in events],
        ("media", media[8], PHONE),
        ("hold", b"", PHONE),  # leg b on hold: nothing goes to it
        ("media", media[9], PHONE),
        ("resume", b"", PHONE),
        *[("media", packet, PHONE) for packet in media[10:30]],  # through the sequence wrap
        ("media", media[35], PHONE),  # a gap
        *[("media", packet, PHONE) for packet in media[36:38]],
        ("relatch", b"", PHONE),
        ("media", media[38], v6_phone),  # latches on an IPv6 source (a 4-tuple)
        ("media", media[39], v6_phone),
    ]


@pytest.mark.parametrize("rewrite", [False, True])
@pytest.mark.parametrize("split", [1, 3, 7, 1000])
def test_receive_batch_is_receive_for_each_datagram(rewrite: bool, split: int) -> None:
    """The drained-together path gives the same datagrams, in order, and the same counters
    (jitter bit for bit) as receive() one datagram at a time, whatever the batches are."""
    def make() -> RelayCore:
        return RelayCore(
            LegConfig("PCMA", remote=PHONE, dtmf_payload_type=101),
            LegConfig("PCMA", remote=CARRIER, dtmf_payload_type=101,
                      payload_type=102 if rewrite else None),
        )

    one, batched = make(), make()
    expected: list[Send] = []
    got: list[Send] = []
    batch: list[tuple[bytes, tuple[str, int]]] = []
    now = 0.0

    def flush() -> None:
        for side, to, datagrams in batched.receive_batch("a", batch, now):
            got.extend((side, to, datagram) for datagram in datagrams)
        batch.clear()

    for i, (kind, data, source) in enumerate(_mixed_traffic()):
        if kind != "media":  # control happens between wake-ups
            flush()
            for core in (one, batched):
                if kind == "relatch":
                    core.relatch("a")
                else:
                    core.set_direction("b", "inactive" if kind == "hold" else "sendrecv")
            continue
        expected += one.receive("a", data, source, now)
        batch.append((data, source))
        if len(batch) == split:
            flush()
            now += 0.0173 * (i % 4)  # uneven arrival: the jitter moves
    flush()
    assert [(s, t, bytes(d)) for s, t, d in got] == [(s, t, bytes(d)) for s, t, d in expected]
    assert batched.stats() == one.stats()
    assert one.stats()["a"]["rx_jitter"] > 0 and one.stats()["a"]["rx_lost"] > 0
