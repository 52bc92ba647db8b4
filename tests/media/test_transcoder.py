"""Per-direction transcoding: reframing, resampling, RTP numbering per leg, loss handling."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest
from scipy.signal import resample_poly

from tests.media.media_signals import best_alignment, dominant_frequency, formant_speech, tone
from vosapp.media import codecs, transcode
from vosapp.media.codecs import CodecError
from vosapp.media.rtp import OutgoingStream, RtpPacket
from vosapp.media.transcoder import StreamingResampler, Transcoder


def rtp_stream(codec_name: str, ptime: int, audio: np.ndarray, *, ssrc: int = 0x1111,
               sequence: int = 100, timestamp: int = 5000) -> list[bytes]:
    """Encode ``audio`` and packetize it as a sender would."""
    codec = codecs.get(codec_name)
    stream = OutgoingStream(codec.payload_type, codec.clock_rate, ssrc=ssrc,
                            sequence=sequence, timestamp=timestamp)
    per_packet = codec.sample_rate * ptime // 1000
    ticks = codec.clock_rate * ptime // 1000
    usable = audio.size - audio.size % per_packet
    return [stream.packet(codec.encode(audio[i : i + per_packet]), ticks)
            for i in range(0, usable, per_packet)]


def run(transcoder: Transcoder, datagrams: list[bytes]) -> list[RtpPacket]:
    out: list[RtpPacket] = []
    for datagram in datagrams:
        out.extend(RtpPacket.parse(d) for d in transcoder.process(datagram))
    return out


def assert_contiguous(packets: list[RtpPacket], ticks: int) -> None:
    for before, after in itertools.pairwise(packets):
        assert after.sequence == (before.sequence + 1) & 0xFFFF
        assert after.timestamp == (before.timestamp + ticks) & 0xFFFFFFFF
        assert after.ssrc == before.ssrc


@pytest.mark.parametrize(
    ("src", "src_ptime", "dst", "dst_ptime", "packets_in", "packets_out", "payload_bytes",
     "ticks"),
    [
        ("PCMA", 20, "G729", 20, 60, 60, 20, 160),  # 20 ms G.711 <-> 2 x 10 ms G.729 frames
        ("G729", 20, "PCMA", 20, 60, 60, 160, 160),
        ("PCMA", 20, "G729", 10, 60, 120, 10, 80),  # one packet in, two out
        ("G729", 10, "PCMA", 20, 120, 60, 160, 160),  # two in, one out
        ("PCMU", 20, "G723", 30, 60, 40, 24, 240),  # three in, two out
        ("G723", 30, "PCMA", 60, 40, 20, 480, 480),
        ("PCMA", 20, "G722", 20, 60, 59, 160, 160),  # 16 kHz audio, 8000 Hz clock
        ("G722", 20, "PCMU", 10, 60, 119, 80, 80),
    ],
)
def test_reframing_and_numbering(
    src: str, src_ptime: int, dst: str, dst_ptime: int, packets_in: int, packets_out: int,
    payload_bytes: int, ticks: int,
) -> None:
    audio = formant_speech(codecs.get(src).sample_rate, 1.2)
    datagrams = rtp_stream(src, src_ptime, audio)
    assert len(datagrams) == packets_in
    transcoder = Transcoder(src, dst, src_ptime=src_ptime, dst_ptime=dst_ptime,
                            ssrc=0xABCDEF01, sequence=65530, timestamp=0xFFFFFF00)
    out = run(transcoder, datagrams)
    assert len(out) == packets_out  # resampling holds back a few samples (see latency)
    assert {p.payload_type for p in out} == {codecs.get(dst).payload_type}
    assert {len(p.payload) for p in out} == {payload_bytes}
    assert out[0].ssrc == 0xABCDEF01 and out[0].sequence == 65530
    assert out[0].timestamp == 0xFFFFFF00 and out[0].marker
    assert not any(p.marker for p in out[1:])
    assert_contiguous(out, ticks)  # crosses the 16-bit sequence and 32-bit timestamp wraps
    assert transcoder.stats.packets_out == packets_out


@pytest.mark.parametrize(("src", "dst"), [("PCMA", "G729"), ("G729", "PCMA")])
def test_both_directions_keep_the_audio(src: str, dst: str) -> None:
    audio = formant_speech(8000, 1.6)
    first = Transcoder(src, dst)
    back = Transcoder(dst, src)
    out = []
    for datagram in rtp_stream(src, 20, audio):
        for middle in first.process(datagram):
            out.extend(back.process(middle))
    decoded = codecs.get(src).decode(b"".join(RtpPacket.parse(d).payload for d in out))
    _, corr = best_alignment(audio[: decoded.size], decoded)
    assert corr > 0.55  # one G.729 generation (0.67 measured directly)


def test_pcma_to_g722_keeps_the_tone_frequency() -> None:
    audio = tone(1000.0, 8000, 0.5)
    transcoder = Transcoder("PCMA", "G722")
    out = run(transcoder, rtp_stream("PCMA", 20, audio))
    payload = b"".join(p.payload for p in out)
    wide = codecs.get("G722").decode(payload)
    assert abs(dominant_frequency(wide[800:], 16000) - 1000.0) < 20


def test_lost_packet_is_concealed_and_numbering_stays_contiguous() -> None:
    datagrams = rtp_stream("PCMA", 20, formant_speech(8000, 0.4))
    transcoder = Transcoder("PCMA", "G729", ssrc=1, sequence=0, timestamp=0)
    out = run(transcoder, datagrams[:5] + datagrams[6:])  # packet 5 lost
    assert len(out) == len(datagrams)
    assert_contiguous(out, 160)
    assert transcoder.stats.concealed_frames == 2  # 20 ms of PCMA = two 10 ms frames
    # a G.729 source uses its own frame-erasure concealment
    g729_in = rtp_stream("G729", 20, formant_speech(8000, 0.4))
    back = Transcoder("G729", "PCMA", ssrc=1, sequence=0, timestamp=0)
    out = run(back, g729_in[:3] + g729_in[4:])
    assert len(out) == len(g729_in) and back.stats.concealed_frames == 2
    assert_contiguous(out, 160)


def test_long_gap_jumps_the_timestamp_with_marker() -> None:
    datagrams = rtp_stream("PCMA", 20, formant_speech(8000, 0.8))
    transcoder = Transcoder("PCMA", "G729", ssrc=1, sequence=0, timestamp=1000)
    out = run(transcoder, datagrams[:5] + datagrams[25:])  # 400 ms missing
    assert len(out) == 5 + 15
    assert out[5].marker and out[5].sequence == 5
    assert out[5].timestamp == 1000 + 25 * 160  # the gap is kept in the timestamps
    assert transcoder.stats.resyncs == 1


def test_late_and_duplicate_packets_are_dropped() -> None:
    datagrams = rtp_stream("PCMA", 20, formant_speech(8000, 0.2))
    transcoder = Transcoder("PCMA", "G729")
    run(transcoder, datagrams[:4])
    assert transcoder.process(datagrams[3]) == []
    assert transcoder.process(datagrams[1]) == []
    assert transcoder.stats.dropped_late == 2


def test_event_timestamps_map_onto_the_outgoing_leg() -> None:
    datagrams = rtp_stream("PCMA", 20, formant_speech(8000, 0.2), timestamp=5000)
    transcoder = Transcoder("PCMA", "G729", timestamp=90000)
    run(transcoder, datagrams)
    assert transcoder.map_timestamp(5000 + 480) == 90000 + 480


def test_ptime_not_a_whole_number_of_frames_is_rejected() -> None:
    with pytest.raises(CodecError, match="30 ms"):
        Transcoder("PCMA", "G723", dst_ptime=20)


@pytest.mark.parametrize(("up", "down"), [(2, 1), (1, 2), (3, 2)])
def test_streaming_resampler_equals_whole_signal_resample_poly(up: int, down: int) -> None:
    rng = np.random.default_rng(5)
    signal = rng.standard_normal(4000) * 3000
    resampler = StreamingResampler(up, down)
    parts, start = [], 0
    while start < signal.size:
        size = int(rng.integers(1, 350))  # packet sizes that do not line up with anything
        parts.append(resampler.process(signal[start : start + size]))
        start += size
    parts.append(resampler.flush())
    streamed = np.concatenate(parts)
    whole = resample_poly(signal, up, down)
    assert streamed.shape == whole.shape
    assert np.max(np.abs(streamed - whole)) < 1e-6


def test_offline_transcode() -> None:
    audio = formant_speech(8000, 0.4)
    pcma = codecs.get("PCMA").encode(audio)
    g729 = transcode(pcma, "PCMA", "G729")
    assert g729 == codecs.get("G729").encode(codecs.get("PCMA").decode(pcma))
    g722 = transcode(pcma, "PCMA", "G722")
    assert len(g722) == 6400 // 2  # 0.4 s of 16 kHz audio at 4 bits per sample
    back = transcode(g722, "G722", "PCMA")
    assert len(back) == 3200
    # odd lengths are padded with silence to whole destination frames
    assert len(transcode(pcma[:240], "PCMA", "G723")) == 24


def test_transcoder_with_seeded_random_numbering_is_reproducible() -> None:
    a = Transcoder("PCMA", "G729", rng=random.Random(3)).outgoing
    b = Transcoder("PCMA", "G729", rng=random.Random(3)).outgoing
    assert (a.ssrc, a.sequence, a.timestamp) == (b.ssrc, b.sequence, b.timestamp)


def test_silence_suppression_gap_is_followed_not_compressed() -> None:
    # DTX: sequence numbers stay consecutive but the timestamp skips 300 ms of silence
    datagrams = rtp_stream("PCMA", 20, formant_speech(8000, 0.2))
    packets = [RtpPacket.parse(d) for d in datagrams]
    for packet in packets[5:]:
        packet.timestamp += 2400
    transcoder = Transcoder("PCMA", "G729", ssrc=1, sequence=0, timestamp=0)
    out = run(transcoder, [bytes(p) for p in packets])
    assert len(out) == 10
    assert_contiguous(out[:5], 160)
    assert out[5].marker and out[5].timestamp == 5 * 160 + 2400
    assert out[5].sequence == 5  # sequence numbers never jump
    assert_contiguous(out[5:], 160)
    # a sender packetizing 30 ms instead of the negotiated 20 ms is not mistaken for DTX
    thirty = rtp_stream("PCMA", 30, formant_speech(8000, 0.3))
    other = Transcoder("PCMA", "G729", src_ptime=20)
    assert len(run(other, thirty)) == 15 and other.stats.resyncs == 0


@pytest.mark.parametrize(("src", "dst"), [("PCMA", "G729"), ("G729", "PCMA"),
                                          ("PCMU", "G729"), ("G729", "PCMU")])
def test_payload_to_payload_path_gives_the_datagrams_of_the_audio_path(src: str,
                                                                      dst: str) -> None:
    """G.711 <-> G.729 datagrams of the negotiated ptime go payload to payload, the header
    written in place; a bytearray takes the audio path (decode, encode, OutgoingStream.packet)
    instead. Both give the same datagrams, byte for byte, through loss, a late packet, a
    timestamp jump (DTX) and a telephone event sharing the outgoing numbering."""
    sent = rtp_stream(src, 20, formant_speech(8000, 1.2), sequence=65530,
                      timestamp=2**32 - 480)
    arriving = [*sent[:5], *sent[6:9], sent[5], *sent[9:20]]  # one lost, then late
    jumped = RtpPacket.parse(sent[20])
    jumped.timestamp = (jumped.timestamp + 8000) & 0xFFFFFFFF  # 1 s of silence not sent
    arriving += [bytes(jumped), *sent[21:30]]
    payload_path, audio_path = (Transcoder(src, dst, ssrc=9, sequence=65000, timestamp=7)
                                for _ in range(2))
    got: list[bytes] = []
    expected: list[bytes] = []
    for i, datagram in enumerate(arriving):
        got += payload_path.process(datagram)
        expected += [bytes(d) for d in audio_path.process(bytearray(datagram))]
        if i == 12:  # an RFC 4733 event goes out on the same numbering in between
            for transcoder, into in ((payload_path, got), (audio_path, expected)):
                into.append(transcoder.outgoing.packet_at(b"\x05\x0a\x00\xa0",
                                                          transcoder.map_timestamp(0),
                                                          payload_type=101))
    assert got == expected
    assert all(type(d) is bytes for d in got)
    assert payload_path.stats.as_dict() == audio_path.stats.as_dict()
    assert payload_path.stats.resyncs == 1 and payload_path.stats.concealed_frames == 2
    for name in ("sequence", "timestamp", "packets", "octets"):
        assert getattr(payload_path.outgoing, name) == getattr(audio_path.outgoing, name)
