"""Media engine: RTP, codecs, transcoding, DTMF - numpy and bytes only (no sockets).

``vosapp.media`` never imports :mod:`vosapp.sip` or :mod:`vosapp.switch`, nor sockets or
clocks: the relay's logic is :mod:`vosapp.media.relay` (sans-IO), its socket loop
:mod:`vosapp.io.rtp_relay`.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from vosapp.media.codecs.base import Codec

__all__ = ["transcode"]


def transcode(payload: bytes, src: str | Codec, dst: str | Codec) -> bytes:
    """Transcode a whole encoded buffer offline (for analysis, not for live RTP).

    Decodes all of ``payload`` with ``src``, resamples the whole signal with
    :func:`scipy.signal.resample_poly` when the audio rates differ (G.722 is 16 kHz), pads
    with silence to a whole number of ``dst`` frames and encodes with ``dst``.

    Parameters
    ----------
    payload : bytes
        Concatenated frames of the source codec.
    src, dst : str or Codec
        Codec names (fresh codec objects are used) or codec objects (their state is used
        and advanced).

    Returns
    -------
    bytes
        Concatenated frames of the destination codec.
    """
    from scipy.signal import resample_poly

    from vosapp.media.transcoder import resolve_codec

    source = resolve_codec(src)
    target = resolve_codec(dst)
    audio = source.decode(payload)
    if source.sample_rate != target.sample_rate:
        ratio = Fraction(target.sample_rate, source.sample_rate)
        resampled = resample_poly(audio.astype(np.float64), ratio.numerator, ratio.denominator)
        audio = np.clip(np.rint(resampled), -32768, 32767).astype(np.int16)
    remainder = audio.size % target.frame_samples
    if remainder:
        audio = np.concatenate(
            [audio, np.zeros(target.frame_samples - remainder, dtype=np.int16)]
        )
    return target.encode(audio)
