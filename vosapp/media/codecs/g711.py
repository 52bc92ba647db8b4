"""G.711 A-law (PCMA, PT 8) and µ-law (PCMU, PT 0) by numpy lookup tables.

The tables are built once, vectorised, from the ITU-T G.711 companding rules as implemented by
the ITU-T G.191 software tools (``alaw_compress``/``ulaw_compress`` on 16-bit left-justified
input: A-law keeps the 12 most significant magnitude bits after a one's-complement of negative
values, µ-law the 14 most significant with a bias of 33). Encoding is one fancy-index of a
65,536-entry table by the sample's bit pattern; decoding one index of a 256-entry table.

G.711 is sample based (RFC 3551 §4.5.14): :meth:`G711.encode` and :meth:`G711.decode` take
any number of samples and bytes. ``frame_ms`` (10 ms) is the unit of packetization and PLC.

Packet-loss concealment here is *repetition with attenuation* (:class:`RepeatConcealer`),
not the G.711 Appendix I pitch-waveform replication.
"""

from __future__ import annotations

import numpy as np

from vosapp.media.codecs.base import Codec, RepeatConcealer

__all__ = ["ALAW_DECODE", "ALAW_ENCODE", "PCMA", "PCMU", "ULAW_DECODE", "ULAW_ENCODE"]

_INT16, _UINT8 = np.dtype(np.int16), np.dtype(np.uint8)


def _bit_length(values: np.ndarray) -> np.ndarray:
    """Number of significant bits of non-negative integers (0 -> 0), vectorised."""
    _, exponent = np.frexp(values.astype(np.float64))
    return np.where(values > 0, exponent, 0).astype(np.int32)


def _magnitude(linear: np.ndarray, shift: int) -> np.ndarray:
    # G.191: negative samples use the one's complement (~x), so -1 maps to magnitude 0
    return np.where(linear < 0, ~linear, linear) >> shift


def _build_alaw_encode() -> np.ndarray:
    linear = np.arange(-32768, 32768, dtype=np.int32)
    magnitude = _magnitude(linear, 4)  # 12-bit A-law input: 0..2047
    exponent = np.maximum(_bit_length(magnitude) - 4, 0)  # segment 0..7
    mantissa = np.where(exponent > 0, (magnitude >> np.maximum(exponent - 1, 0)) & 0x0F, magnitude)
    code = (exponent << 4) | mantissa
    code |= np.where(linear >= 0, 0x80, 0)
    code ^= 0x55  # even-bit inversion (G.711 §2.3, A-law)
    table = np.empty(65536, dtype=np.uint8)
    table[linear.astype(np.int16).view(np.uint16)] = code
    return table


def _build_ulaw_encode() -> np.ndarray:
    linear = np.arange(-32768, 32768, dtype=np.int32)
    biased = np.minimum(_magnitude(linear, 2) + 33, 0x1FFF)  # 14-bit magnitude + bias
    segment = _bit_length(biased >> 6) + 1  # 1..8
    low = 0x0F - ((biased >> segment) & 0x0F)
    code = ((8 - segment) << 4) | low
    code |= np.where(linear >= 0, 0x80, 0)
    table = np.empty(65536, dtype=np.uint8)
    table[linear.astype(np.int16).view(np.uint16)] = code
    return table


def _build_alaw_decode() -> np.ndarray:
    code = np.arange(256, dtype=np.int32) ^ 0x55
    exponent = (code >> 4) & 0x07
    mantissa = (code & 0x0F) + np.where(exponent > 0, 16, 0)
    value = ((mantissa << 4) + 8) << np.maximum(exponent - 1, 0)
    decoded: np.ndarray = np.where(code & 0x80, value, -value).astype(np.int16)
    return decoded


def _build_ulaw_decode() -> np.ndarray:
    inverted = ~np.arange(256, dtype=np.int32)
    exponent = (inverted >> 4) & 0x07
    mantissa = inverted & 0x0F
    step = 4 << (exponent + 1)
    value = (0x80 << exponent) + step * mantissa + step // 2 - 4 * 33
    return np.where(np.arange(256) & 0x80, value, -value).astype(np.int16)


ALAW_ENCODE: np.ndarray = _build_alaw_encode()
"""uint8[65536]: A-law code indexed by the int16 sample viewed as uint16."""
ULAW_ENCODE: np.ndarray = _build_ulaw_encode()
"""uint8[65536]: µ-law code indexed by the int16 sample viewed as uint16."""
ALAW_DECODE: np.ndarray = _build_alaw_decode()
"""int16[256]: linear value of each A-law code."""
ULAW_DECODE: np.ndarray = _build_ulaw_decode()
"""int16[256]: linear value of each µ-law code."""


class G711(Codec):
    """Common part of PCMA and PCMU (8 kHz, 8 bits per sample, 10 ms frames)."""

    sample_rate = 8000
    clock_rate = 8000
    frame_ms = 10
    frame_bytes = 80
    has_plc = False  # repetition only, see module docstring
    #: uint8[65536]: the code of each int16 sample (indexed by the sample, see :meth:`encode`)
    encode_table: np.ndarray
    #: int16[256]: the linear value of each code
    decode_table: np.ndarray

    def __init__(self) -> None:
        self._concealer = RepeatConcealer(self.frame_samples)
        self._frame_samples = self.frame_samples
        # the last whole frame decoded (audio, or a payload given to heard()), not yet remembered
        self._heard: np.ndarray | bytes | None = None
        self._heard_offset = 0  # where the payload starts in a _heard given to heard()

    def encode(self, samples: np.ndarray, *, final: bool = True) -> bytes:
        """Encode any number of samples (``final`` is moot: nothing is ever kept)."""
        if not (type(samples) is np.ndarray and samples.dtype is _INT16 and samples.ndim == 1):
            samples = self._check_samples(samples)
        # one table look-up per sample; a negative int16 index counts from the end of the
        # 65,536-entry table, which is where its 16-bit pattern (as uint16) points
        return self.encode_table.take(samples).tobytes()

    def decode(self, payload: bytes) -> np.ndarray:
        if type(payload) is not bytes:
            self._check_bytes(payload)
        audio = self.decode_table.take(np.frombuffer(payload, dtype=_UINT8))
        if audio.size >= self._frame_samples:
            self._heard = audio  # the concealer gets it when a loss occurs
        return audio

    def heard(self, payload: bytes, offset: int = 0) -> None:
        """Note a payload that was decoded elsewhere (through :attr:`decode_table`), for PLC:
        ``payload[offset:]`` (an offset spares the caller a copy, e.g. after an RTP header)."""
        if len(payload) - offset >= self._frame_samples:
            self._heard = bytes(payload)  # the same object when it is bytes already
            self._heard_offset = offset

    def conceal(self, frames: int = 1) -> np.ndarray:
        """Repeat the last 10 ms with 6 dB attenuation per further lost frame (not G.711 I)."""
        heard = self._heard
        if heard is not None:
            if not isinstance(heard, np.ndarray):  # a payload given to heard()
                heard = self.decode_table.take(
                    np.frombuffer(heard, dtype=_UINT8, offset=self._heard_offset))
            self._concealer.remember(heard)
            self._heard = None
        return self._concealer.conceal(frames, self.frame_ms)


class PCMA(G711):
    """G.711 A-law, RTP payload type 8 (RFC 3551 §4.5.14)."""

    name = "PCMA"
    encoding_name = "PCMA"
    payload_type = 8
    encode_table = ALAW_ENCODE
    decode_table = ALAW_DECODE


class PCMU(G711):
    """G.711 µ-law, RTP payload type 0 (RFC 3551 §4.5.14)."""

    name = "PCMU"
    encoding_name = "PCMU"
    payload_type = 0
    encode_table = ULAW_ENCODE
    decode_table = ULAW_DECODE
