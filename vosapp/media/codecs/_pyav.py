"""Streaming encoder/decoder contexts from FFmpeg through PyAV (s16 mono).

Both FFmpeg encoders used here (``g723_1``, ``g722``) take signed 16-bit mono frames of their
``frame_size`` and return exactly one packet per frame without look-ahead buffering, so
feeding one frame at a time keeps the output aligned with the input and the context keeps the
codec state between calls (chunked encoding == whole encoding).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np

from vosapp.media.codecs.base import CodecUnavailableError

if TYPE_CHECKING:
    from av import AudioCodecContext

__all__ = ["AvDecoder", "AvEncoder"]


def _create(codec_name: str, mode: Literal["r", "w"], rate: int, bit_rate: int | None
            ) -> AudioCodecContext:
    try:
        import av
    except ImportError as exc:  # pragma: no cover - av is a hard dependency
        raise CodecUnavailableError(
            f"the {codec_name} codec needs PyAV (pip install av)"
        ) from exc
    try:
        ctx = av.CodecContext.create(codec_name, mode)
    except Exception as exc:  # FFmpeg built without this codec
        raise CodecUnavailableError(
            f"FFmpeg (through PyAV) has no {codec_name} {'encoder' if mode == 'w' else 'decoder'}"
        ) from exc
    if not isinstance(ctx, av.AudioCodecContext):
        raise CodecUnavailableError(f"FFmpeg's {codec_name} is not an audio codec")
    ctx.sample_rate = rate
    ctx.layout = "mono"
    if mode == "w":
        ctx.format = "s16"
        if bit_rate:
            ctx.bit_rate = bit_rate
    ctx.open()
    return ctx


class AvEncoder:
    """One FFmpeg audio encoder context fed frame by frame."""

    def __init__(self, codec_name: str, rate: int, frame_samples: int, bit_rate: int | None):
        from av.audio.frame import AudioFrame

        self._frame_cls = AudioFrame
        self._ctx = _create(codec_name, "w", rate, bit_rate)
        self.rate = rate
        self.frame_samples = frame_samples
        self._pts = 0

    def encode(self, samples: np.ndarray) -> list[bytes]:
        """Encode whole frames (int16, already validated); one packet per frame."""
        packets: list[bytes] = []
        n = self.frame_samples
        for start in range(0, samples.size, n):
            frame = self._frame_cls.from_ndarray(
                samples[None, start : start + n], format="s16", layout="mono"
            )
            frame.sample_rate = self.rate
            frame.pts = self._pts
            self._pts += n
            packets.extend(bytes(p) for p in self._ctx.encode(frame))
        return packets


class AvDecoder:
    """One FFmpeg audio decoder context fed packet by packet."""

    def __init__(self, codec_name: str, rate: int):
        import av

        self._packet_cls = av.packet.Packet
        self._ctx = _create(codec_name, "r", rate, None)

    def decode(self, packet: bytes) -> list[np.ndarray]:
        """Decode one packet into int16 arrays (one per decoded frame)."""
        return [
            frame.to_ndarray().reshape(-1).astype(np.int16, copy=False)
            for frame in self._ctx.decode(self._packet_cls(packet))
        ]
