"""The C packet lane (``vosapp.media.codecs._g729lane``) is built, used, and gives the bytes
of the ctypes lane it replaces.

G.711 <-> G.729 datagrams of the negotiated ptime go through one call per packet into C when
the extension is built (setup.py; ``make`` rebuilds it when _g729lane.c changes) and through
ctypes otherwise. Both run here on real speech (the CMU ARCTIC clip) and real datagrams,
through loss, a late packet, a timestamp jump (marker), packets the lane does not take (other
ptimes, partial frames, a CSRC, a SID frame, a bytearray) and back.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vosapp.lab.quality import load_speech
from vosapp.media import codecs
from vosapp.media.codecs import g729
from vosapp.media.codecs.g729 import G729
from vosapp.media.rtp import OutgoingStream, RtpPacket
from vosapp.media.transcoder import Transcoder

SPEECH = load_speech(8000)


def test_the_c_lane_is_built_in_this_checkout_and_imported() -> None:
    """A build that fell back to ctypes (no compiler, no Python headers) fails here."""
    try:
        from vosapp.media.codecs import _g729lane
    except ImportError as error:
        pytest.fail(f"the C lane is not built ({error}): run `make setup`, or "
                    "`python setup.py build_ext --inplace` in this checkout")
    assert Path(_g729lane.__file__).parent == Path(g729.__file__).parent
    assert g729.NATIVE_LANE
    assert G729().native_lane and not G729(native_lane=False).native_lane
    assert codecs.get("G729").native_lane  # type: ignore[attr-defined]


def _refuse(*_args: object) -> None:
    raise AssertionError("the per-packet path called bcg729 through ctypes")


@pytest.mark.parametrize("native", [True, False])
def test_the_transcoders_lane_calls_bcg729_from_c(native: bool) -> None:
    """With the C lane the per-packet path makes no ctypes call (the ctypes functions are
    replaced by one that fails); with ``native_lane=False`` it does (the check checks)."""
    pcma = codecs.get("PCMA")
    g711 = OutgoingStream(8, ssrc=1, sequence=0, timestamp=0).packet(
        pcma.encode(SPEECH[:160]), 160)
    g729_datagram = OutgoingStream(18, ssrc=2, sequence=0, timestamp=0).packet(
        codecs.get("G729").encode(SPEECH[:160]), 160)
    encoder, decoder = G729(native_lane=native), G729(native_lane=native)
    encoder._encode_fn = _refuse  # type: ignore[assignment]
    decoder._decode_fn = _refuse  # type: ignore[assignment]
    forward, backward = Transcoder("PCMA", encoder), Transcoder(decoder, "PCMA")
    if native:
        assert len(forward.process(g711)) == 1 and len(backward.process(g729_datagram)) == 1
    else:
        with pytest.raises(AssertionError, match="through ctypes"):
            forward.process(g711)
        with pytest.raises(AssertionError, match="through ctypes"):
            backward.process(g729_datagram)


def _stream(name: str, ptime: int, audio: np.ndarray, **numbering: int) -> list[bytes]:
    codec = codecs.get(name)
    stream = OutgoingStream(codec.payload_type, ssrc=0x1111, **numbering)
    step = 8 * ptime
    return [stream.packet(codec.encode(audio[i : i + step]), step)
            for i in range(0, audio.size - step + 1, step)]


def _arrivals(name: str, ptime: int) -> list[bytes | bytearray]:
    """A sender's datagrams of real speech as they arrive: loss, a late one, a timestamp
    jump (1 s not sent: DTX), and datagrams the lane must leave to the audio path."""
    sent = _stream(name, ptime, SPEECH[: 8 * 2400], sequence=65500, timestamp=2**32 - 800)
    arriving: list[bytes | bytearray] = [*sent[:10], *sent[11:14], sent[10], *sent[14:30]]
    jumped = RtpPacket.parse(sent[30])
    jumped.timestamp = (jumped.timestamp + 8000) & 0xFFFFFFFF
    arriving += [bytes(jumped), *sent[31:45], bytearray(sent[45])]
    with_csrc = RtpPacket.parse(sent[46])
    with_csrc.csrc = (0xC5C5C5C5,)
    arriving += [bytes(with_csrc), *sent[47:55]]
    if name == "G729":
        sid = next(frame for frame in codecs.get("G729", annexb=True).encode_frames(
            np.zeros(800, np.int16)) if len(frame) == 2)
        speech_and_sid = RtpPacket.parse(sent[55])
        speech_and_sid.payload += sid  # RFC 3551 §4.5.6: a SID frame after the speech
        sid_only = RtpPacket.parse(sent[56])
        sid_only.payload = sid
        arriving += [bytes(speech_and_sid), bytes(sid_only), *sent[57:60]]
        # a 10 ms packet then a 30 ms one: other sizes than the negotiated ptime
        other = _stream("G729", 10, SPEECH[8000:8800], sequence=0, timestamp=0)
        arriving += other[:1]
    else:
        odd = RtpPacket.parse(sent[55])
        odd.payload = odd.payload[:-30]  # not a whole number of 10 ms frames
        arriving += [bytes(odd), *sent[56:60]]
    arriving += sent[60:]
    return arriving


@pytest.mark.parametrize("ptime", [10, 20, 30])
@pytest.mark.parametrize(("src", "dst"), [("PCMA", "G729"), ("PCMU", "G729"),
                                          ("G729", "PCMA"), ("G729", "PCMU")])
def test_c_and_ctypes_lanes_give_the_same_datagrams(src: str, dst: str, ptime: int) -> None:
    def transcoder(native: bool) -> Transcoder:
        ends = [G729(native_lane=native) if name == "G729" else name for name in (src, dst)]
        return Transcoder(ends[0], ends[1], src_ptime=ptime, dst_ptime=ptime, ssrc=0xFFFFFFFF,
                          sequence=65400, timestamp=2**32 - 1000)

    c_lane, ctypes_lane = transcoder(True), transcoder(False)
    assert isinstance(c_lane.src if src == "G729" else c_lane.dst, G729)
    got: list[bytes] = []
    expected: list[bytes] = []
    for datagram in _arrivals(src, ptime):
        got += c_lane.process(datagram)
        expected += ctypes_lane.process(datagram)
    assert len(got) > 60
    assert got == expected
    markers = [i for i, d in enumerate(got) if d[1] & 0x80]
    assert len(markers) >= 2  # the first packet and the timestamp jump
    assert c_lane.stats.as_dict() == ctypes_lane.stats.as_dict()
    for name in ("sequence", "timestamp", "packets", "octets"):
        assert getattr(c_lane.outgoing, name) == getattr(ctypes_lane.outgoing, name)
    # the codecs went through the same frames: what they conceal and encode next agrees
    assert c_lane.src.conceal(3).tobytes() == ctypes_lane.src.conceal(3).tobytes()
    tail = SPEECH[-160:]
    assert c_lane.dst.encode(tail) == ctypes_lane.dst.encode(tail)


@pytest.mark.parametrize("frames", [1, 2, 6])
def test_rtp_lanes_of_the_codec_agree_on_every_code_and_header(frames: int) -> None:
    """Every G.711 code (both tables) and the header fields at their extremes."""
    rng = np.random.default_rng(frames)
    headers = [(0x80 | 18, 65535, 2**32 - 1, 2**32 - 1), (0, 0, 0, 0), (18, 1234, 5678, 9)]
    for pcm in (codecs.get("PCMA"), codecs.get("PCMU")):
        c_codec, ctypes_codec = G729(native_lane=True), G729(native_lane=False)
        table = pcm.decode_table  # type: ignore[attr-defined]
        encode_c = c_codec.rtp_encoder(table, frames)
        encode_ctypes = ctypes_codec.rtp_encoder(table, frames)
        decode_c = c_codec.rtp_decoder(pcm.encode_table, frames)  # type: ignore[attr-defined]
        decode_ctypes = ctypes_codec.rtp_decoder(pcm.encode_table,  # type: ignore[attr-defined]
                                                 frames)
        for k in range(12):
            codes = rng.permutation(np.tile(np.arange(256, dtype=np.uint8), frames))[
                : 80 * frames].tobytes() if k % 2 else pcm.encode(SPEECH[k * 800 :][: 80 * frames])
            datagram = bytes(rng.integers(0, 256, 12, dtype=np.uint8)) + codes
            header = headers[k % 3]
            g729_datagram = encode_c(datagram, *header)
            assert g729_datagram == encode_ctypes(datagram, *header)
            assert g729_datagram is not None and len(g729_datagram) == 12 + 10 * frames
            back = decode_c(g729_datagram, *header)
            assert back == decode_ctypes(g729_datagram, *header)
            assert back[:12] == g729_datagram[:12] == bytes(RtpPacket(
                payload_type=header[0] & 0x7F, marker=bool(header[0] & 0x80),
                sequence=header[1], timestamp=header[2], ssrc=header[3]))
        # a partial frame waiting in the encoder: both decline, having done nothing
        c_codec.encode(SPEECH[:40], final=False)
        ctypes_codec.encode(SPEECH[:40], final=False)
        assert encode_c(datagram, 0, 0, 0, 0) is None
        assert encode_ctypes(datagram, 0, 0, 0, 0) is None


def test_the_c_lane_refuses_what_it_cannot_take() -> None:
    from vosapp.media.codecs import _g729lane

    codec = codecs.get("G729")
    table = codecs.get("PCMA").decode_table  # type: ignore[attr-defined]
    lane = _g729lane.EncoderLane(codec._encode_address, codec._encoder,  # type: ignore[attr-defined]
                                 table, 2, codec)
    with pytest.raises(ValueError, match="172 bytes"):
        lane.packet(bytes(171), 0, 0, 0, 0)
    with pytest.raises(TypeError, match="bytes"):
        lane.packet(bytearray(172), 0, 0, 0, 0)  # type: ignore[arg-type]
    with pytest.raises(OverflowError):
        lane.packet(bytes(172), 256, 0, 0, 0)
    with pytest.raises(OverflowError):
        lane.packet(bytes(172), 0, 65536, 0, 0)
    with pytest.raises(OverflowError):
        lane.packet(bytes(172), 0, 0, 0, -1)
    with pytest.raises(ValueError, match="table"):
        _g729lane.DecoderLane(codec._decode_address, codec._decoder,  # type: ignore[attr-defined]
                              table, 2, codec)
    with pytest.raises(ValueError, match="table"):
        _g729lane.EncoderLane(codec._encode_address, codec._encoder,  # type: ignore[attr-defined]
                              table.view(np.uint8), 2, codec)
    with pytest.raises(ValueError, match="frames"):
        _g729lane.EncoderLane(codec._encode_address, codec._encoder,  # type: ignore[attr-defined]
                              table, 0, codec)
    with pytest.raises(ValueError, match="null"):
        _g729lane.EncoderLane(0, codec._encoder, table, 2, codec)  # type: ignore[attr-defined]
