"""Speech through the switch's media path, packet by packet (notebook 04).

:func:`through_switch` does what a call through vosapp does to audio: the calling phone encodes
it into RTP packets of the first codec, every transcoding hop is the relay's own
:class:`~vosapp.media.transcoder.Transcoder`, the far phone decodes the last codec.
:func:`receive_with_loss` drops packets (seeded) and decodes what is left either with the
codec's concealment or with silence.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from itertools import pairwise

import numpy as np
from numpy.typing import NDArray

from vosapp.lab import quality
from vosapp.media import codecs
from vosapp.media.rtp import OutgoingStream, RtpPacket
from vosapp.media.transcoder import Transcoder

__all__ = ["LABELS", "PTIME_MS", "label", "pad_to", "receive_with_loss", "rtp_packets",
           "through_codec", "through_switch"]

# The packetisation a phone uses per codec (G.723.1 frames are 30 ms).
PTIME_MS = {"PCMA": 20, "PCMU": 20, "G729": 20, "G723": 30, "G722": 20}

LABELS = {"PCMA": "G.711 A-law", "PCMU": "G.711 µ-law", "G729": "G.729A",
          "G723": "G.723.1", "G722": "G.722"}


def label(chain: Sequence[str]) -> str:
    """``["PCMA", "G729"]`` -> ``"G.711 A-law → G.729A"``."""
    return " → ".join(LABELS[name] for name in chain)


def pad_to(audio: NDArray[np.int16], multiple: int) -> NDArray[np.int16]:
    """``audio`` with zeros appended up to a whole number of ``multiple`` samples."""
    return np.concatenate([audio, np.zeros(-audio.size % multiple, np.int16)])


def rtp_packets(codec_name: str, audio: NDArray[np.int16]) -> list[bytes]:
    """Encode ``audio`` (at the codec's sample rate) into RTP packets, as a phone would."""
    codec = codecs.get(codec_name)
    ptime = PTIME_MS[codec.name]
    per_packet = codec.sample_rate * ptime // 1000
    audio = pad_to(audio, per_packet)
    stream = OutgoingStream(codec.payload_type, codec.clock_rate, rng=random.Random(1))
    ticks = codec.clock_rate * ptime // 1000
    return [stream.packet(codec.encode(audio[i : i + per_packet]), ticks)
            for i in range(0, audio.size, per_packet)]


def through_switch(audio: NDArray[np.int16], rate: int, chain: Sequence[str]
                   ) -> NDArray[np.int16]:
    """Speech at ``rate`` through phone → transcoders → phone; returned at ``rate``."""
    first = codecs.get(chain[0])
    packets = rtp_packets(chain[0], quality.to_int16(
        quality.resample(audio, rate, first.sample_rate)))
    for src, dst in pairwise(chain):
        hop = Transcoder(src, dst, src_ptime=PTIME_MS[src], dst_ptime=PTIME_MS[dst],
                         rng=random.Random(2))
        packets = [out for packet in packets for out in hop.process(packet)]
    last = codecs.get(chain[-1])
    decoded = np.concatenate([last.decode(RtpPacket.parse(p).payload) for p in packets])
    return quality.to_int16(quality.resample(decoded, last.sample_rate, rate))


def through_codec(codec_name: str, audio: NDArray[np.int16]) -> NDArray[np.int16]:
    """``audio`` encoded and decoded once by ``codec_name`` (padded to whole frames)."""
    codec = codecs.get(codec_name)
    return codec.decode(codec.encode(pad_to(audio, codec.frame_samples)))


def receive_with_loss(codec_name: str, audio: NDArray[np.int16], loss_percent: float,
                      seed: int, *, conceal: bool
                      ) -> tuple[NDArray[np.int16], NDArray[np.bool_]]:
    """Encode into packets, drop ``loss_percent`` of them (seeded), decode the rest.

    A lost packet is replaced by the codec's ``conceal()`` or, with ``conceal=False``, by
    silence. Returns the decoded audio and the mask of lost packets.
    """
    encoder, decoder = codecs.get(codec_name), codecs.get(codec_name)
    frames = PTIME_MS[encoder.name] // encoder.frame_ms
    per_packet = encoder.frame_samples * frames
    audio = pad_to(audio, per_packet)
    payloads = [encoder.encode(audio[i : i + per_packet])
                for i in range(0, audio.size, per_packet)]
    lost = np.random.default_rng(seed).random(len(payloads)) < loss_percent / 100
    out = []
    for payload, is_lost in zip(payloads, lost, strict=True):
        if not is_lost:
            out.append(decoder.decode(payload))
        elif conceal:
            out.append(decoder.conceal(frames))
        else:
            out.append(np.zeros(per_packet, np.int16))
    return np.concatenate(out), lost
