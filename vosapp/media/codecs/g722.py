"""G.722 at 64 kbit/s (16 kHz audio), RTP payload type 9, via FFmpeg/PyAV.

RFC 3551 §4.5.2: the RTP clock of G.722 is 8000 Hz although the audio is sampled at
16 kHz (an error kept for compatibility with RFC 1890), so a 20 ms packet advances the
timestamp by 160 while it carries 320 samples (160 bytes: 4 bits per sample, sub-band ADPCM).

G.722 is sample based (two 16 kHz samples per byte); :meth:`G722.encode` encodes 20 ms frames
(the FFmpeg encoder's frame size; a one-shot call pads the last one), :meth:`G722.decode` any
number of bytes.
Packet-loss concealment is repetition with attenuation (``has_plc`` False).
"""

from __future__ import annotations

import numpy as np

from vosapp.media.codecs._pyav import AvDecoder, AvEncoder
from vosapp.media.codecs.base import Codec, CodecError, RepeatConcealer

__all__ = ["G722"]


class G722(Codec):
    """G.722 64 kbit/s: 16 kHz int16 audio, 8000 Hz RTP clock, 20 ms frames of 160 bytes."""

    name = "G722"
    encoding_name = "G722"
    sample_rate = 16000
    clock_rate = 8000
    frame_ms = 20
    frame_bytes = 160
    payload_type = 9
    has_plc = False

    def __init__(self) -> None:
        self._encoder = AvEncoder("g722", 16000, self.frame_samples, 64000)
        self._decoder = AvDecoder("g722", 16000)
        self._concealer = RepeatConcealer(self.frame_samples)

    def encode(self, samples: np.ndarray, *, final: bool = True) -> bytes:
        samples = self._whole_frames(samples, final)
        data = b"".join(self._encoder.encode(samples))
        if len(data) * 2 != samples.size:
            raise CodecError(  # would mean FFmpeg buffered, breaking chunked == whole
                f"G722.encode: FFmpeg returned {len(data)} bytes for {samples.size} samples"
            )
        return data

    def decode(self, payload: bytes) -> np.ndarray:
        self._check_bytes(payload)
        if not payload:
            return np.zeros(0, dtype=np.int16)
        chunks = self._decoder.decode(bytes(payload))
        audio = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
        self._concealer.remember(audio)
        return audio

    def conceal(self, frames: int = 1) -> np.ndarray:
        """Repetition with attenuation of the last 20 ms (320 samples per frame)."""
        return self._concealer.conceal(frames, self.frame_ms)
