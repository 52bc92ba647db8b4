"""The codec interface shared by every codec in :mod:`vosapp.media.codecs`.

A codec object is *stateful* and belongs to one direction of one stream: the encoder and
decoder keep their history (ADPCM predictors, LPC memories, post-filters), so encoding
consecutive chunks gives exactly the bytes of encoding their concatenation. Get a fresh
object for every stream with :func:`vosapp.media.codecs.get`.

Audio is always mono ``int16`` at :attr:`Codec.sample_rate`; timestamps on the wire use
:attr:`Codec.clock_rate` (they differ only for G.722, RFC 3551 §4.5.2).

Input of any length is accepted. G.711 is a per-sample code and encodes every sample. The
frame codecs (G.729, G.723.1, G.722) encode whole frames: a one-shot ``encode(samples)``
pads the last partial frame with silence, as ffmpeg and audioop users expect; a stream
passes ``final=False`` and the partial frame waits for the next call (so chunked == whole,
exactly), then ends with ``flush()``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from vosapp.errors import VosappError

__all__ = ["Codec", "CodecError", "CodecUnavailableError", "RepeatConcealer"]


class CodecError(VosappError, ValueError):
    """Bad input to a codec (wrong dtype or shape, corrupt payload)."""


class CodecUnavailableError(VosappError, RuntimeError):
    """A codec whose native library or FFmpeg component is not installed."""


class Codec(ABC):
    """One direction-pair (encoder + decoder) of one audio codec.

    Attributes
    ----------
    name : str
        Registry name (``"PCMA"``, ``"G729"``...).
    sample_rate : int
        Audio rate of :meth:`encode` input and :meth:`decode` output, Hz.
    clock_rate : int
        RTP timestamp clock, Hz.
    frame_ms : int
        Duration of one codec frame (frame codecs encode whole frames, padding or keeping
        a partial last one; G.711 encodes any number of samples).
    payload_type : int
        Static RTP payload type (RFC 3551 table 4) or the conventional dynamic one.
    encoding_name : str
        The SDP encoding name (``a=rtpmap:<pt> <encoding_name>/<clock_rate>``).
    frame_bytes : int
        Encoded bytes per frame (for G.729 with Annex B: the speech-frame size).
    has_plc : bool
        Whether :meth:`conceal` uses the codec's own packet-loss concealment.
    """

    name: str
    sample_rate: int
    clock_rate: int
    frame_ms: int
    payload_type: int
    encoding_name: str
    frame_bytes: int
    has_plc: bool = False
    #: Samples of a partial frame kept by ``encode(..., final=False)`` for the next call.
    _pending: np.ndarray = np.zeros(0, dtype=np.int16)

    @property
    def frame_samples(self) -> int:
        """Audio samples per frame at :attr:`sample_rate`."""
        return self.sample_rate * self.frame_ms // 1000

    @property
    def frame_ticks(self) -> int:
        """RTP timestamp increment per frame (at :attr:`clock_rate`)."""
        return self.clock_rate * self.frame_ms // 1000

    @property
    def rtpmap(self) -> str:
        """The SDP rtpmap value, e.g. ``"8 PCMA/8000"`` (RFC 4566 §6, RFC 3551 §6)."""
        return f"{self.payload_type} {self.encoding_name}/{self.clock_rate}"

    @property
    def fmtp(self) -> str | None:
        """The SDP fmtp parameters, or ``None`` when the codec has none."""
        return None

    def _check_samples(self, samples: np.ndarray) -> np.ndarray:
        """Validate encoder input: 1-D int16. Returns a C-contiguous array."""
        samples = np.asarray(samples)
        if samples.dtype != np.int16:
            raise CodecError(
                f"{self.name}.encode expects int16 samples, got dtype {samples.dtype}"
            )
        if samples.ndim != 1:
            raise CodecError(f"{self.name}.encode expects a 1-D array, got shape {samples.shape}")
        return np.ascontiguousarray(samples)

    def _whole_frames(self, samples: np.ndarray, final: bool) -> np.ndarray:
        """The whole frames to encode now: the kept partial frame, then ``samples``.

        ``final``: the last partial frame is padded with silence (a one-shot call, or the
        end of a stream). Otherwise it is kept for the next call.
        """
        samples = self._check_samples(samples)
        if self._pending.size:
            samples = np.concatenate([self._pending, samples])
        rest = samples.size % self.frame_samples
        if final:
            self._pending = Codec._pending
            if rest:
                pad = np.zeros(self.frame_samples - rest, dtype=np.int16)
                samples = np.concatenate([samples, pad])
            return samples
        self._pending = samples[samples.size - rest:].copy() if rest else Codec._pending
        return samples[: samples.size - rest]

    def flush(self) -> bytes:
        """Encode what ``encode(..., final=False)`` kept, padded to a whole frame."""
        return self.encode(np.zeros(0, dtype=np.int16), final=True)

    def _check_bytes(self, payload: bytes) -> None:
        """Validate decoder input: a bytes-like object (bytes, bytearray, memoryview)."""
        if not isinstance(payload, (bytes, bytearray, memoryview)):
            raise CodecError(f"{self.name}.decode expects bytes, got {type(payload).__name__}")

    @abstractmethod
    def encode(self, samples: np.ndarray, *, final: bool = True) -> bytes:
        """Encode audio.

        Parameters
        ----------
        samples : ndarray of int16, shape (n,)
            Mono audio at :attr:`sample_rate`, any length.
        final : bool
            True (a one-shot call): a partial last frame is padded with silence. False (a
            stream): it is kept and encoded in front of the next call's samples.

        Returns
        -------
        bytes
            The encoded frames, concatenated (an RTP payload when they make a ptime).

        Raises
        ------
        CodecError
            (a ``ValueError``) when the input is not int16 or not 1-D.
        """

    @abstractmethod
    def decode(self, payload: bytes) -> np.ndarray:
        """Decode an RTP payload.

        Parameters
        ----------
        payload : bytes
            Concatenated encoded frames.

        Returns
        -------
        ndarray of int16, shape (n * frame_samples,)
        """

    def conceal(self, frames: int = 1) -> np.ndarray:
        """Audio to play for ``frames`` lost frames (packet-loss concealment).

        Parameters
        ----------
        frames : int
            Number of missing frames.

        Returns
        -------
        ndarray of int16, shape (frames * frame_samples,)
        """
        raise NotImplementedError(f"{self.name} has no packet-loss concealment")

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.name} {self.sample_rate} Hz audio, "
            f"{self.clock_rate} Hz clock, {self.frame_ms} ms frames, PT {self.payload_type}>"
        )


class RepeatConcealer:
    """Simple PLC by repetition with attenuation (not G.711 Appendix I).

    The last good frame is replayed; each further consecutive lost frame is 6 dB quieter and
    after 60 ms of loss the output is silence. Cheap and click-free enough for a lab; it is *not*
    the pitch-synchronous G.711 Appendix I algorithm.
    """

    def __init__(self, frame_samples: int) -> None:
        self.frame_samples = frame_samples
        self.last = np.zeros(frame_samples, dtype=np.int16)
        self.lost_run = 0

    def remember(self, audio: np.ndarray) -> None:
        """Note the latest good audio (by reference: it is only read when a loss occurs)."""
        if audio.size >= self.frame_samples:
            self.last = audio
            self.lost_run = 0

    def conceal(self, frames: int, frame_ms: int) -> np.ndarray:
        """Produce ``frames`` concealment frames."""
        if frames < 0:
            raise CodecError(f"frames must be >= 0, got {frames}")
        out = np.empty(frames * self.frame_samples, dtype=np.int16)
        self.last = self.last[-self.frame_samples :]
        for i in range(frames):
            self.lost_run += 1
            gain = 0.0 if self.lost_run * frame_ms > 60 else 0.5 ** (self.lost_run - 1)
            out[i * self.frame_samples : (i + 1) * self.frame_samples] = (
                self.last.astype(np.float32) * gain
            ).astype(np.int16)
        return out
