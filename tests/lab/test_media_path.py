"""vosapp.lab.media_path: speech through RTP packets, the relay's Transcoder and packet loss."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest

from vosapp.lab import quality
from vosapp.lab.media_path import (
    label,
    pad_to,
    receive_with_loss,
    rtp_packets,
    through_codec,
    through_switch,
)
from vosapp.media.rtp import RtpPacket


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return quality.load_speech(8000)[:8000]  # one second


def test_pad_to_whole_frames() -> None:
    assert pad_to(np.ones(161, np.int16), 160).size == 320
    assert pad_to(np.ones(160, np.int16), 160).size == 160


def test_rtp_packets_are_20_ms_apart_with_the_codec_payload_type(speech: np.ndarray) -> None:
    packets = [RtpPacket.parse(p) for p in rtp_packets("PCMA", speech[:8000 - 10])]
    assert len(packets) == 50  # the last partial packet is padded, not dropped
    assert {p.payload_type for p in packets} == {8}
    assert [b.timestamp - a.timestamp for a, b in pairwise(packets)] == [160] * 49
    assert [b.sequence - a.sequence for a, b in pairwise(packets)] == [1] * 49
    assert all(len(p.payload) == 160 for p in packets)


def test_through_switch_keeps_length_and_g711_is_near_transparent(speech: np.ndarray) -> None:
    direct = through_switch(speech, 8000, ["PCMA"])
    tandem = through_switch(speech, 8000, ["PCMA", "G729", "PCMA"])
    assert direct.size == tandem.size == speech.size
    assert np.array_equal(direct, through_codec("PCMA", speech))  # no transcoding: one codec
    assert quality.segmental_snr(speech, direct, 8000) > 25
    assert quality.compare(speech, tandem, 8000).pesq_mos_lqo < \
        quality.compare(speech, direct, 8000).pesq_mos_lqo
    assert label(["PCMA", "G729", "PCMA"]) == "G.711 A-law → G.729A → G.711 A-law"


def test_receive_with_loss_is_seeded_and_fills_the_holes(speech: np.ndarray) -> None:
    zeros, lost = receive_with_loss("PCMA", speech, 20, seed=3, conceal=False)
    again, lost_again = receive_with_loss("PCMA", speech, 20, seed=3, conceal=True)
    assert np.array_equal(lost, lost_again) and 0 < lost.sum() < lost.size
    assert zeros.size == again.size == lost.size * 160
    # a lost packet after a received one with speech in it: concealment has something to repeat
    level = np.abs(zeros.astype(float)).reshape(-1, 160).mean(axis=1)
    after_speech = [i for i in np.flatnonzero(lost) if i and not lost[i - 1] and level[i - 1] > 100]
    hole = slice(after_speech[0] * 160, after_speech[0] * 160 + 160)
    assert not zeros[hole].any()          # zero-fill: silence where the packet was
    assert np.abs(again[hole]).sum() > 0  # concealment: the last frame repeated, attenuated
    kept = int(np.flatnonzero(~lost)[0])
    assert np.array_equal(zeros[kept * 160 : kept * 160 + 160],
                          through_codec("PCMA", speech)[kept * 160 : kept * 160 + 160])
    untouched, none_lost = receive_with_loss("PCMA", speech, 0, seed=3, conceal=False)
    assert not none_lost.any() and np.array_equal(untouched, through_codec("PCMA", speech))
