"""The per-packet path adds nothing to what the codec library computes.

The G729 class and the transcoder's one-packet-in, one-packet-out path are written for speed
(bytes passed straight to ctypes, no staging buffers, no FIFO); these tests hold them to the
bytes and samples that plain bcg729 calls, through a binding of their own, and the codec
objects called one by one give for the same input.
"""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

from tests.media.media_signals import formant_speech
from vosapp.media import codecs
from vosapp.media.codecs.g729 import G729
from vosapp.media.rtp import OutgoingStream, RtpPacket
from vosapp.media.transcoder import Transcoder

SPEECH = formant_speech(8000, 0.5, seed=3)


class BareBcg729:
    """bcg729 called frame by frame through its own CDLL handle, nothing around it."""

    def __init__(self) -> None:
        lib = ctypes.CDLL("libbcg729.so.0")
        lib.initBcg729EncoderChannel.restype = ctypes.c_void_p
        lib.initBcg729DecoderChannel.restype = ctypes.c_void_p
        self.lib = lib
        self.encoder = ctypes.c_void_p(lib.initBcg729EncoderChannel(ctypes.c_uint8(0)))
        self.decoder = ctypes.c_void_p(lib.initBcg729DecoderChannel())

    def encode(self, samples: np.ndarray) -> bytes:
        out = b""
        for start in range(0, samples.size, 80):
            frame = (ctypes.c_int16 * 80)(*samples[start : start + 80].tolist())
            bits, length = (ctypes.c_uint8 * 10)(), ctypes.c_uint8(0)
            self.lib.bcg729Encoder(self.encoder, frame, bits, ctypes.byref(length))
            out += bytes(bits)[: length.value]
        return out

    def decode(self, frame: bytes, *, erased: bool = False) -> np.ndarray:
        pcm = (ctypes.c_int16 * 80)()
        bits = (ctypes.c_uint8 * max(len(frame), 1)).from_buffer_copy(frame or b"\0")
        self.lib.bcg729Decoder(self.decoder, bits, ctypes.c_uint8(len(frame)),
                               ctypes.c_uint8(erased), ctypes.c_uint8(len(frame) == 2),
                               ctypes.c_uint8(0), pcm)
        return np.array(pcm, dtype=np.int16)


def test_g729_encode_equals_bare_bcg729_whole_chunked_and_strided() -> None:
    expected = BareBcg729().encode(SPEECH)
    assert len(expected) == SPEECH.size // 8
    assert codecs.get("G729").encode(SPEECH) == expected
    packets = codecs.get("G729")
    assert b"".join(packets.encode(SPEECH[i : i + 160]) for i in range(0, SPEECH.size, 160)) \
        == expected
    odd = codecs.get("G729")  # partial frames kept between calls
    chunks = [odd.encode(SPEECH[i : i + 77], final=False) for i in range(0, SPEECH.size, 77)]
    assert b"".join(chunks) + odd.flush() == expected
    doubled = np.repeat(SPEECH, 2)[::2]  # a strided view of the same samples
    assert not doubled.flags.c_contiguous
    assert codecs.get("G729").encode(doubled) == expected


def test_g729_decode_equals_bare_bcg729_for_speech_sid_and_erasure() -> None:
    bits = BareBcg729().encode(SPEECH)
    bare, codec = BareBcg729(), codecs.get("G729")
    sid = codecs.get("G729", annexb=True).encode_frames(np.zeros(8000, np.int16))
    sid_frame = next(frame for frame in sid if len(frame) == 2)
    for n, start in enumerate(range(0, len(bits), 20)):
        packet = bits[start : start + 20]
        expected = np.concatenate([bare.decode(packet[:10]), bare.decode(packet[10:])])
        payload = [packet, bytearray(packet), memoryview(packet)][n % 3]
        assert np.array_equal(codec.decode(payload), expected)
    expected = np.concatenate([bare.decode(bits[:10]), bare.decode(sid_frame)])
    assert np.array_equal(codec.decode(bits[:10] + sid_frame), expected)
    expected = np.concatenate([bare.decode(b"", erased=True), bare.decode(b"", erased=True)])
    assert np.array_equal(codec.conceal(2), expected)


@pytest.mark.parametrize(("src", "dst"), [("PCMA", "G729"), ("G729", "PCMA"), ("PCMU", "PCMA")])
def test_transcoder_payloads_equal_the_codecs_called_one_by_one(src: str, dst: str) -> None:
    sender = codecs.get(src)
    stream = OutgoingStream(sender.payload_type, ssrc=5, sequence=65530, timestamp=0)
    sent = [stream.packet(sender.encode(SPEECH[i : i + 160]), 160)
            for i in range(0, SPEECH.size, 160)]
    # packet 7 is lost, packet 12 comes again late (the sequence wraps on the way)
    arriving = sent[:7] + sent[8:13] + [sent[12]] + sent[13:]
    transcoder = Transcoder(src, dst, ssrc=9, sequence=0, timestamp=0)
    out = [RtpPacket.parse(d) for datagram in arriving for d in transcoder.process(datagram)]

    decoder, encoder = codecs.get(src), codecs.get(dst)
    expected = []
    for index, datagram in enumerate(sent):
        audio = decoder.conceal(2) if index == 7 else decoder.decode(datagram[12:])
        expected.append(encoder.encode(audio))
    assert [packet.payload for packet in out] == expected
    assert [packet.sequence for packet in out] == list(range(len(sent)))
    assert [packet.timestamp for packet in out] == [160 * i for i in range(len(sent))]
    assert transcoder.stats.as_dict() == {"concealed_frames": 2, "dropped_late": 1,
                                          "packets_in": len(arriving),
                                          "packets_out": len(sent), "resyncs": 0}


def test_g729_through_a_g711_table_equals_the_codec_calls() -> None:
    pcma = codecs.get("PCMA")
    codes = pcma.encode(SPEECH[:800])
    table = pcma.decode_table  # type: ignore[attr-defined]
    direct, plain = codecs.get("G729"), codecs.get("G729")
    for chunk in (codes[:160], codes[160:200], codes[200:640], codes[640:]):  # 40: padded
        audio = table[np.frombuffer(chunk, np.uint8)]
        assert direct.encode_codes(table, chunk) == plain.encode(audio)
    plain.encode(SPEECH[:40], final=False)  # a kept partial frame goes first, as in encode()
    direct.encode(SPEECH[:40], final=False)
    assert direct.encode_codes(table, codes[:160]) == plain.encode(table[np.frombuffer(
        codes[:160], np.uint8)])
    bits = BareBcg729().encode(SPEECH[:800])
    sid = next(f for f in codecs.get("G729", annexb=True).encode_frames(np.zeros(800, np.int16))
               if len(f) == 2)
    encode_table = pcma.encode_table  # type: ignore[attr-defined]
    direct, plain = codecs.get("G729"), codecs.get("G729")
    for payload in (bits[:20], bits[20:50], bits[50:60] + sid, memoryview(bits[60:80]), b""):
        assert direct.decode_codes(payload, encode_table) == pcma.encode(plain.decode(payload))


@pytest.mark.parametrize("native", [True, False])
def test_g729_packet_functions_equal_the_codec_calls(native: bool) -> None:
    """rtp_encoder / rtp_decoder (the transcoder's G.711 <-> G.729 path: a datagram in, the
    next datagram out, in C or through ctypes) give encode_codes' / decode_codes' payloads
    after the header they are given and leave the codec in the same state; with a partial
    frame waiting the encoder declines."""
    pcma = codecs.get("PCMA")
    codes = pcma.encode(SPEECH[:1600])
    table = pcma.decode_table  # type: ignore[attr-defined]
    direct, plain = G729(native_lane=native), codecs.get("G729")
    encode = direct.rtp_encoder(table, 2)
    header = bytes(RtpPacket(payload_type=18, sequence=7, timestamp=8, ssrc=9))
    for i in range(10):
        datagram = bytes(range(12)) + codes[160 * i : 160 * (i + 1)]
        out = encode(datagram, 18, 7, 8, 9)
        assert out == header + plain.encode_codes(table, codes[160 * i : 160 * (i + 1)])
    direct.encode(SPEECH[:40], final=False)
    assert encode(bytes(12) + codes[:160], 18, 7, 8, 9) is None

    bits = BareBcg729().encode(SPEECH[:1600])
    encode_table = pcma.encode_table  # type: ignore[attr-defined]
    direct, plain = G729(native_lane=native), codecs.get("G729")
    decode = direct.rtp_decoder(encode_table, 2)
    header = bytes(RtpPacket(payload_type=8, marker=True, sequence=7, timestamp=8, ssrc=9))
    for i in range(10):
        payload = bits[20 * i : 20 * (i + 1)]
        out = decode(b"\x80" * 12 + payload, 0x80 | 8, 7, 8, 9)
        assert out == header + plain.decode_codes(payload, encode_table)
    # the decoders went through the same frames: their concealment continues alike
    assert direct.conceal(2).tobytes() == plain.conceal(2).tobytes()


def test_g711_conceals_from_a_payload_heard_inside_a_datagram() -> None:
    """heard(datagram, offset) remembers the payload after the header, as heard(payload)."""
    codes = codecs.get("PCMA").encode(SPEECH[:160])
    by_offset, by_payload = codecs.get("PCMA"), codecs.get("PCMA")
    by_offset.heard(b"\x80" * 12 + codes, 12)  # type: ignore[attr-defined]
    by_payload.heard(codes)  # type: ignore[attr-defined]
    assert by_offset.conceal(3).tobytes() == by_payload.conceal(3).tobytes()
