"""Every codec: interface, round-trip quality, chunked == whole, frame errors, PLC."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

from tests.media.media_signals import (
    best_alignment,
    dominant_frequency,
    formant_speech,
    snr_db,
    spectral_similarity,
    tone,
)
from vosapp.media import codecs
from vosapp.media.codecs import CodecError, CodecUnavailableError
from vosapp.media.codecs import g729 as g729_module

ALL = ["PCMA", "PCMU", "G729", "G723", "G722"]

# name: (sample_rate, clock_rate, frame_ms, frame_bytes, payload_type, rtpmap)
EXPECTED = {
    "PCMA": (8000, 8000, 10, 80, 8, "8 PCMA/8000"),
    "PCMU": (8000, 8000, 10, 80, 0, "0 PCMU/8000"),
    "G729": (8000, 8000, 10, 10, 18, "18 G729/8000"),
    "G723": (8000, 8000, 30, 24, 4, "4 G723/8000"),
    "G722": (16000, 8000, 20, 160, 9, "9 G722/8000"),  # RFC 3551 §4.5.2: 8000 Hz clock
}

# Floors on the synthetic formant signal, a little under measured values (in comments).
# name: (min waveform correlation, min SNR dB or None, min spectral similarity)
FLOORS = {
    "PCMA": (0.999, 35.0, 0.93),  # 1.000 / 37.3 dB / 0.958
    "PCMU": (0.999, 35.0, 0.93),  # 1.000 / 37.0 dB / 0.956
    "G729": (0.60, None, 0.87),  # 0.669 / - / 0.899 (CELP: envelope kept, not waveform)
    "G723": (0.80, None, 0.90),  # 0.877 / - / 0.933
    "G722": (0.995, 40.0, 0.93),  # 1.000 / 43.4 dB / 0.952
}


def test_available_lists_every_codec() -> None:
    assert set(ALL) <= set(codecs.available())


@pytest.mark.parametrize("name", ALL)
def test_attributes(name: str) -> None:
    codec = codecs.get(name)
    rate, clock, frame_ms, frame_bytes, pt, rtpmap = EXPECTED[name]
    assert (codec.sample_rate, codec.clock_rate, codec.frame_ms) == (rate, clock, frame_ms)
    assert (codec.frame_bytes, codec.payload_type, codec.rtpmap) == (frame_bytes, pt, rtpmap)
    assert codec.frame_samples == rate * frame_ms // 1000
    assert codec.frame_ticks == clock * frame_ms // 1000


def test_names_are_case_insensitive_and_unknown_names_fail() -> None:
    assert codecs.get("pcma").name == "PCMA"
    assert codecs.get("g729a").name == "G729"
    with pytest.raises(CodecError, match="unknown codec 'AMR'.*PCMA"):
        codecs.get("AMR")


@pytest.mark.parametrize("name", ALL)
def test_round_trip_quality(name: str) -> None:
    codec = codecs.get(name)
    x = formant_speech(codec.sample_rate, 2.4)
    encoded = codec.encode(x)
    assert len(encoded) == x.size // codec.frame_samples * codec.frame_bytes
    y = codec.decode(encoded)
    assert y.dtype == np.int16 and y.shape == x.shape
    lag, corr = best_alignment(x, y)
    min_corr, min_snr, min_spectral = FLOORS[name]
    assert corr >= min_corr, (lag, corr)
    if min_snr is not None:
        assert snr_db(x, y, lag) >= min_snr
    assert spectral_similarity(x, y, lag) >= min_spectral


@pytest.mark.parametrize("name", ALL)
def test_get_returns_fresh_state_and_chunked_equals_whole(name: str) -> None:
    x = formant_speech(codecs.get(name).sample_rate, 1.2, seed=3)
    whole_codec = codecs.get(name)
    whole = whole_codec.encode(x)
    chunk_codec = codecs.get(name)
    step = 60 * chunk_codec.sample_rate // 1000  # 60 ms: whole frames for every codec
    chunks = b"".join(chunk_codec.encode(x[i : i + step]) for i in range(0, x.size, step))
    assert chunks == whole
    # the decoder too: packet by packet == all at once
    frame = codecs.get(name).frame_bytes
    per_packet = codecs.get(name)
    split = [whole[i : i + 2 * frame] for i in range(0, len(whole), 2 * frame)]
    decoded_chunks = np.concatenate([per_packet.decode(p) for p in split])
    assert np.array_equal(decoded_chunks, codecs.get(name).decode(whole))
    # and a second fresh object is not influenced by the first one's history
    assert codecs.get(name).encode(x) == whole


@pytest.mark.parametrize("name", ["PCMA", "PCMU"])
def test_g711_encodes_any_number_of_samples(name: str) -> None:
    x = formant_speech(8000, 0.5, seed=5)[:1234]  # not a multiple of 80
    encoded = codecs.get(name).encode(x)
    assert len(encoded) == 1234
    pieces = codecs.get(name)
    assert pieces.encode(x[:7]) + pieces.encode(x[7:]) == encoded
    assert codecs.get(name).decode(encoded).size == 1234


@pytest.mark.parametrize("name", ["G729", "G723", "G722"])
def test_frame_codec_one_shot_pads_the_last_frame_with_silence(name: str) -> None:
    codec = codecs.get(name)
    n = codec.frame_samples
    x = formant_speech(codec.sample_rate, 0.5, seed=4)[: 5 * n + n // 3]
    encoded = codec.encode(x)  # a whole WAV: 5 frames and a third
    assert len(encoded) == 6 * codec.frame_bytes
    padded = np.concatenate([x, np.zeros(n - n // 3, dtype=np.int16)])
    assert encoded == codecs.get(name).encode(padded)


@pytest.mark.parametrize("name", ["G729", "G723", "G722"])
def test_frame_codec_streaming_keeps_partial_frames_exactly(name: str) -> None:
    n = codecs.get(name).frame_samples
    x = formant_speech(codecs.get(name).sample_rate, 0.5, seed=6)[: 7 * n + 11]
    whole = codecs.get(name).encode(x)
    stream = codecs.get(name)
    step = n // 2 + 3  # chunks that never line up with frames
    parts = [stream.encode(x[i : i + step], final=False) for i in range(0, x.size, step)]
    assert sum(len(p) for p in parts) == 7 * stream.frame_bytes  # the 11 samples wait
    assert b"".join(parts) + stream.flush() == whole
    assert stream.flush() == b""  # nothing left


@pytest.mark.parametrize("name", ALL)
def test_wrong_dtype_and_shape_raise(name: str) -> None:
    codec = codecs.get(name)
    with pytest.raises(CodecError, match="int16"):
        codec.encode(np.zeros(codec.frame_samples, dtype=np.float32))
    with pytest.raises(CodecError, match="1-D"):
        codec.encode(np.zeros((2, codec.frame_samples), dtype=np.int16))
    with pytest.raises(CodecError, match="bytes"):
        codec.decode("not bytes")  # type: ignore[arg-type]


def test_g729_payload_size_errors_name_the_frame_size() -> None:
    with pytest.raises(ValueError, match="whole frames of 10 bytes"):
        codecs.get("G729").decode(b"\x00" * 15)


def test_g723_truncated_frame_error() -> None:
    with pytest.raises(ValueError, match="24 bytes"):
        codecs.get("G723").decode(b"\x00" * 23)


def test_g723_frames_are_split_by_type_bits() -> None:
    codec = codecs.get("G723")
    speech = codec.encode(formant_speech(8000, 0.09))  # 3 frames
    assert len(speech) == 72 and all(speech[i] & 3 == 0 for i in (0, 24, 48))
    # a 1-byte "untransmitted" frame (type 3) after the speech frames
    frames = codec.split_frames(speech + b"\x03")
    assert [len(f) for f in frames] == [24, 24, 24, 1]


def test_g722_is_wideband_on_an_8000_hz_clock() -> None:
    codec = codecs.get("G722")
    x = tone(6000.0, 16000, 0.2)  # above the 4 kHz narrowband limit
    encoded = codec.encode(x)
    assert len(encoded) == 1600  # 4 bits per 16 kHz sample: 64 kbit/s
    y = codec.decode(encoded)
    assert abs(dominant_frequency(y[400:], 16000) - 6000.0) < 20
    assert codec.frame_ticks == 160 and codec.frame_samples == 320


def test_g729_annex_b_frames() -> None:
    codec = codecs.get("G729", annexb=True)
    assert codec.fmtp == "annexb=yes" and codecs.get("G729").fmtp == "annexb=no"
    speech = formant_speech(8000, 0.5)
    silence = np.zeros(8000, dtype=np.int16)
    frames = codec.encode_frames(np.concatenate([speech, silence]))
    assert len(frames) == 150
    assert all(len(f) == 10 for f in frames[:40])
    tail_sizes = {len(f) for f in frames[80:]}  # after the VAD hangover
    assert tail_sizes <= {0, 2} and 0 in tail_sizes  # DTX: SID frames then nothing
    decoded = codecs.get("G729", annexb=True).decode_frames(frames)
    assert decoded.shape == (150 * 80,) and decoded.dtype == np.int16
    # .encode() keeps VAD off even on an Annex B codec object: always 10-byte frames
    assert len(codec.encode(silence)) == 1000
    # RTP payload: speech frames followed by one SID frame (RFC 3551 §4.5.6)
    sid = next(f for f in frames if len(f) == 2)
    assert codecs.get("G729").decode(frames[0] + frames[1] + sid).shape == (240,)
    with pytest.raises(CodecError, match="expected 10, 2 or 0"):
        codec.decode_frames([b"\x00" * 5])


def test_g729_concealment_continues_the_signal() -> None:
    codec = codecs.get("G729")
    x = formant_speech(8000, 0.6)
    codec.decode(codec.encode(x))
    concealed = codec.conceal(3)
    assert concealed.shape == (240,) and concealed.dtype == np.int16
    level = np.sqrt(np.mean(x[-800:].astype(float) ** 2))
    concealed_level = np.sqrt(np.mean(concealed.astype(float) ** 2))
    assert 0.1 * level < concealed_level < 3 * level
    assert codec.has_plc


@pytest.mark.parametrize("name", ["PCMA", "PCMU", "G723", "G722"])
def test_repetition_concealment_attenuates_then_mutes(name: str) -> None:
    codec = codecs.get(name)
    x = tone(440.0, codec.sample_rate, 0.12)
    x = x[: x.size - x.size % codec.frame_samples]
    codec.decode(codec.encode(x))
    n = codec.frame_samples
    first, second = codec.conceal(1), codec.conceal(1)
    assert np.abs(first).max() > 0
    assert np.abs(second).max() <= np.abs(first).max() // 2 + 1  # 6 dB quieter
    later = codec.conceal(max(1, 60 // codec.frame_ms))
    assert not later[-n:].any()  # silence after 60 ms of loss
    assert not codec.has_plc


def test_missing_bcg729_names_the_debian_package(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_library(*args: object, **kwargs: object) -> None:
        raise OSError("cannot open shared object file")

    monkeypatch.setattr(g729_module, "_LIB", None)
    monkeypatch.setattr(ctypes, "CDLL", no_library)
    with pytest.raises(CodecUnavailableError, match="libbcg729-0"):
        codecs.get("G729")
    assert "G729" not in codecs.available()
