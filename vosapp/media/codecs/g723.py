"""G.723.1 at 6.3 kbit/s (24-byte, 30 ms frames), RTP payload type 4, via FFmpeg/PyAV.

The decoder also accepts the other G.723.1 frame types, told apart by the two low bits of a
frame's first byte (ITU-T G.723.1 §5.4, RFC 3551 §4.5.3): 0 = 6.3 kbit/s (24 bytes),
1 = 5.3 kbit/s (20 bytes), 2 = SID (4 bytes), 3 = untransmitted (1 byte).

Packet-loss concealment: FFmpeg's erased-frame path is not reachable through its packet
API (short packets are rejected), so :meth:`G723.conceal` uses repetition with attenuation
(:class:`~vosapp.media.codecs.base.RepeatConcealer`); ``has_plc`` is False.
"""

from __future__ import annotations

import numpy as np

from vosapp.media.codecs._pyav import AvDecoder, AvEncoder
from vosapp.media.codecs.base import Codec, CodecError, RepeatConcealer

__all__ = ["G723"]

# bytes per frame by the 2-bit frame type (G.723.1 Table 5/6 bit allocation)
_FRAME_SIZES = {0: 24, 1: 20, 2: 4, 3: 1}


class G723(Codec):
    """G.723.1 6.3 kbit/s in 240-sample (30 ms) frames."""

    name = "G723"
    encoding_name = "G723"
    sample_rate = 8000
    clock_rate = 8000
    frame_ms = 30
    frame_bytes = 24
    payload_type = 4
    has_plc = False

    def __init__(self) -> None:
        self._encoder = AvEncoder("g723_1", 8000, self.frame_samples, 6300)
        self._decoder = AvDecoder("g723_1", 8000)
        self._concealer = RepeatConcealer(self.frame_samples)

    @property
    def fmtp(self) -> str:
        """``bitrate=6.3`` (RFC 4856 §2.1, G723 ``bitrate``); ``annexa=no``: no VAD here."""
        return "bitrate=6.3;annexa=no"

    def encode(self, samples: np.ndarray, *, final: bool = True) -> bytes:
        samples = self._whole_frames(samples, final)
        packets = self._encoder.encode(samples)
        return b"".join(packets)

    def split_frames(self, payload: bytes) -> list[bytes]:
        """Split a payload into G.723.1 frames by each frame's type bits."""
        frames: list[bytes] = []
        offset = 0
        while offset < len(payload):
            size = _FRAME_SIZES[payload[offset] & 0x03]
            if offset + size > len(payload):
                raise CodecError(
                    f"G723.decode: truncated frame at byte {offset} (type "
                    f"{payload[offset] & 3} needs {size} bytes, {len(payload) - offset} left; "
                    f"6.3 kbit/s frames are 24 bytes / 30 ms)"
                )
            frames.append(payload[offset : offset + size])
            offset += size
        return frames

    def decode(self, payload: bytes) -> np.ndarray:
        self._check_bytes(payload)
        chunks: list[np.ndarray] = []
        for frame in self.split_frames(bytes(payload)):
            decoded = self._decoder.decode(frame)
            if not decoded:
                raise CodecError("G723.decode: FFmpeg rejected a frame as corrupt")
            chunks.extend(decoded)
        audio = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
        self._concealer.remember(audio)
        return audio

    def conceal(self, frames: int = 1) -> np.ndarray:
        """Repetition with attenuation of the last 30 ms (see module docstring)."""
        return self._concealer.conceal(frames, self.frame_ms)
