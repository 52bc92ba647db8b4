"""The lab phone's media, sans-IO and in virtual time: pacing, timestamps, recording, the
packet log (RFC 3550 jitter and loss), impairments (seeded) and DTMF both ways."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest

from vosapp.clock import ManualClock
from vosapp.lab import quality
from vosapp.lab.impairment import Impairer, Impairment, ImpairmentError
from vosapp.lab.rtp_endpoint import MediaStream, RtpReceiver, RtpSender
from vosapp.media import codecs
from vosapp.media.dtmf import generate_digits
from vosapp.media.rtp import RtpPacket

SPEECH = quality.load_speech(8000)[: 8000 * 2]


def looped(codec: str, impairment: Impairment | None = None, *, seconds: float = 1.0,
           audio: np.ndarray | None = None, digits: str = "") -> tuple[MediaStream, list[bytes]]:
    """A sender wired to a receiver on a ManualClock, run for ``seconds`` of virtual time."""
    clock = ManualClock()
    sent: list[bytes] = []
    sender = RtpSender(codec, telephone_event_pt=101, impairment=impairment,
                       rng=random.Random(7))
    receiver = RtpReceiver({}, 101)
    stream: MediaStream

    def wire(data: bytes) -> None:
        sent.append(data)
        stream.datagram(data)

    stream = MediaStream(clock, sender, receiver, wire)
    if audio is not None:
        sender.enqueue_audio(audio)
    for digit in digits:
        sender.enqueue_event(digit, 100)
    stream.start()
    clock.advance(seconds)
    stream.stop()
    clock.run_until_idle()  # jittered packets still in flight
    return stream, sent


@pytest.mark.parametrize(("codec", "ptime", "ticks", "payload"), [
    ("PCMA", 20, 160, 160), ("PCMU", 20, 160, 160), ("G729", 20, 160, 20),
    ("G723", 30, 240, 24), ("G722", 20, 160, 160),  # RFC 3551 §4.5.2: G.722 clock 8000 Hz
])
def test_pacing_one_packet_per_ptime_with_rfc3551_timestamps(codec: str, ptime: int, ticks: int,
                                                             payload: int) -> None:
    stream, sent = looped(codec, seconds=3.0)
    packets = [RtpPacket.parse(d) for d in sent]
    assert len(packets) == 3000 // ptime + 1  # t = 0, ptime, ... 3 s
    assert [p.payload_type for p in packets] == [codecs.get(codec).payload_type] * len(packets)
    assert all((b.timestamp - a.timestamp) & 0xFFFFFFFF == ticks
               for a, b in itertools.pairwise(packets))
    assert all((b.sequence - a.sequence) & 0xFFFF == 1
               for a, b in itertools.pairwise(packets))
    assert {len(p.payload) for p in packets} == {payload}
    assert packets[0].marker and not any(p.marker for p in packets[1:])
    arrivals = [r.arrival for r in stream.receiver.packets]
    assert arrivals == pytest.approx([i * ptime / 1000 for i in range(len(packets))])


def test_recording_is_the_decoded_audio_placed_by_timestamp() -> None:
    stream, _ = looped("PCMA", seconds=2.5, audio=SPEECH)
    recorded = stream.receiver.audio()
    expected = codecs.get("PCMA").decode(codecs.get("PCMA").encode(SPEECH))
    assert np.array_equal(recorded[: SPEECH.size], expected)
    silence = codecs.get("PCMA").decode(codecs.get("PCMA").encode(np.zeros(1, np.int16)))
    assert (recorded[SPEECH.size:] == silence[0]).all()  # silence after the speech
    assert np.array_equal(stream.sender.sent_samples()[: SPEECH.size], SPEECH)
    log = stream.receiver.log()
    assert log[0].keys() >= {"sequence", "timestamp", "arrival", "jitter_ms", "lost"}
    assert stream.receiver.stats is not None
    assert stream.receiver.stats.jitter < 1e-6 and stream.receiver.stats.lost == 0


def test_random_loss_is_counted_concealed_and_repeatable_with_a_seed() -> None:
    spec = Impairment(loss=0.2, seed=11)
    first, sent = looped("G729", spec, seconds=4.0, audio=SPEECH)
    _again, sent_again = looped("G729", spec, seconds=4.0, audio=SPEECH)
    assert sent == sent_again  # same seed, same packets lost
    dropped = first.sender.impairer.dropped
    assert 0.1 < dropped / first.sender.impairer.planned < 0.3
    stats = first.receiver.stats
    assert stats is not None and stats.lost == dropped
    assert first.receiver.packets[-1].lost == dropped
    # the gaps are concealed in place: the recording keeps the sender's length
    assert first.receiver.audio().size == first.sender.sent_samples().size
    other, _ = looped("G729", Impairment(loss=0.2, seed=12), seconds=4.0)
    assert [p.sequence for p in other.receiver.packets] != \
        [p.sequence for p in first.receiver.packets]


def test_gilbert_elliott_bursts_have_the_configured_mean_length() -> None:
    impairer = Impairer(Impairment(burst_enter=0.02, burst_exit=0.25, seed=3))
    lost = [impairer.plan() is None for _ in range(200_000)]
    runs = np.diff(np.flatnonzero(np.diff(np.r_[0, np.array(lost, int), 0])))[::2]
    assert runs.mean() == pytest.approx(4.0, rel=0.1)  # 1 / burst_exit
    assert np.mean(lost) == pytest.approx(Impairment(burst_enter=0.02,
                                                     burst_exit=0.25).expected_loss, rel=0.1)


def test_jitter_and_reordering_show_in_the_rfc3550_statistics() -> None:
    jittered, _ = looped("PCMA", Impairment(jitter_ms=30, seed=5), seconds=3.0)
    assert jittered.receiver.stats is not None and jittered.receiver.stats.jitter_ms > 3
    reordered, _ = looped("PCMA", Impairment(reorder=0.1, seed=5), seconds=3.0)
    stats = reordered.receiver.stats
    assert stats is not None and stats.reordered > 5 and stats.lost == 0
    # late packets are put back in their slot: the audio is complete
    clean, _ = looped("PCMA", seconds=3.0, audio=SPEECH)
    late, _ = looped("PCMA", Impairment(reorder=0.1, seed=5), seconds=3.0, audio=SPEECH)
    assert np.array_equal(late.receiver.audio(), clean.receiver.audio())


def test_impairment_settings_are_checked() -> None:
    with pytest.raises(ImpairmentError, match="probability"):
        Impairment(loss=1.5)
    with pytest.raises(ImpairmentError, match="burst_exit"):
        Impairment(burst_enter=0.1, burst_exit=0.0)
    with pytest.raises(ImpairmentError, match=">= 0"):
        Impairment(jitter_ms=-1)
    assert Impairment().is_perfect and Impairment(loss=0.1).expected_loss == pytest.approx(0.1)


def test_rfc2833_digits_go_out_with_their_event_timestamp_and_come_back() -> None:
    stream, sent = looped("PCMU", seconds=2.0, digits="15#")
    assert stream.receiver.digits == ["1", "5", "#"]
    events = [RtpPacket.parse(d) for d in sent if RtpPacket.parse(d).payload_type == 101]
    starts = {p.timestamp for p in events}
    assert len(starts) == 3
    assert [ts for _, ts in stream.sender.sent_events] == sorted(starts)
    # the audio clock keeps running under the events (RFC 4733 §2.5.1)
    audio = [RtpPacket.parse(d) for d in sent if RtpPacket.parse(d).payload_type == 0]
    assert (audio[-1].timestamp - audio[0].timestamp) % 160 == 0


def test_inband_tones_are_audio_the_far_end_detects() -> None:
    stream, _ = looped("PCMA", seconds=1.5)
    sender = RtpSender("PCMA")
    sender.enqueue_tones("73*", 80)
    assert sender.queued_samples == generate_digits("73*", 8000, on_ms=80, off_ms=100).size
    from vosapp.media.dtmf import detect_digits

    stream, _ = looped("PCMA", seconds=1.5,
                       audio=generate_digits("73*", 8000, on_ms=80, off_ms=100))
    assert detect_digits(stream.receiver.audio(), 8000) == "73*"


def test_receiver_counts_garbage_and_unknown_payload_types() -> None:
    receiver = RtpReceiver({}, None)
    assert receiver.receive(b"not rtp", 0.0) is None
    unknown = bytes(RtpPacket(payload_type=96, sequence=1, timestamp=0, ssrc=1, payload=b"x"))
    assert receiver.receive(unknown, 0.0) is not None
    assert receiver.garbage == 2 and receiver.audio().size == 0


def test_sender_refuses_rfc2833_without_a_negotiated_payload_type() -> None:
    with pytest.raises(ValueError, match="telephone-event"):
        RtpSender("PCMA", telephone_event_pt=None).enqueue_event("1")
