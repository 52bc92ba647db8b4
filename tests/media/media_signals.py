"""Synthetic speech-like test signals (until and besides the real clip in data/speech/)."""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter


def formant_speech(rate: int = 8000, seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    """Voiced "vowels": a glottal pulse train with pitch glide, through three formant resonators.

    Syllable-like amplitude envelope, formants that move between vowels, a little breath noise.

    Returns
    -------
    ndarray of int16, shape (round(rate * seconds),)
    """
    rng = np.random.default_rng(seed)
    n = round(rate * seconds)
    t = np.arange(n) / rate
    pitch = 120 + 25 * np.sin(2 * np.pi * 0.7 * t)  # Hz
    phase = np.cumsum(pitch / rate)
    pulses = np.diff(np.floor(phase), prepend=0.0)  # one impulse per pitch period
    excitation = lfilter([1.0], [1.0, -0.95], pulses) + 0.02 * rng.standard_normal(n)
    vowels = [(700, 1200, 2600), (300, 2300, 3000), (500, 900, 2400), (400, 1900, 2550)]
    segment = n // len(vowels)
    out = np.zeros(n)
    for index, formants in enumerate(vowels):
        start = index * segment
        stop = n if index == len(vowels) - 1 else start + segment
        y = excitation[start:stop]
        for f in formants:
            if f >= rate / 2:
                continue
            r = np.exp(-np.pi * 90 / rate)  # 90 Hz bandwidth
            a = [1.0, -2 * r * np.cos(2 * np.pi * f / rate), r * r]
            y = lfilter([1 - r], a, y)
        out[start:stop] = y
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * 3.0 * t - np.pi / 2) ** 2
    out *= envelope
    out *= 0.3 * 32767 / np.max(np.abs(out))
    return out.astype(np.int16)


def best_alignment(reference: np.ndarray, decoded: np.ndarray, max_lag: int = 400) -> tuple[int, float]:
    """Lag (decoded delayed by ``lag`` samples) and normalised correlation at that lag."""
    ref = reference.astype(np.float64)
    dec = decoded.astype(np.float64)
    best = (0, -1.0)
    for lag in range(max_lag + 1):
        a = ref[: ref.size - lag]
        b = dec[lag : lag + a.size]
        if a.size < 100:
            break
        denom = np.linalg.norm(a) * np.linalg.norm(b)
        corr = float(a @ b / denom) if denom else 0.0
        if corr > best[1]:
            best = (lag, corr)
    return best


def snr_db(reference: np.ndarray, decoded: np.ndarray, lag: int = 0) -> float:
    """Waveform SNR of ``decoded`` (delayed by ``lag``) against ``reference``."""
    ref = reference.astype(np.float64)[: reference.size - lag]
    dec = decoded.astype(np.float64)[lag : lag + ref.size]
    noise = np.sum((ref - dec) ** 2)
    return float(10 * np.log10(np.sum(ref**2) / max(noise, 1e-9)))


def tone(freq: float, rate: int, seconds: float, amplitude: float = 8000.0) -> np.ndarray:
    """A sine of int16 samples."""
    t = np.arange(round(rate * seconds)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def dominant_frequency(samples: np.ndarray, rate: int) -> float:
    """Frequency of the largest FFT bin (Hann window)."""
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(samples.size)))
    return float(np.argmax(spectrum) * rate / samples.size)


def spectral_similarity(
    reference: np.ndarray, decoded: np.ndarray, lag: int, frame: int = 256
) -> float:
    """Mean correlation of 32 ms log-magnitude spectra (how well the envelope is kept).

    Waveform measures undersell CELP codecs (G.729, G.723.1), which keep the spectral
    envelope and pitch but not the waveform's phase.
    """
    ref = reference.astype(np.float64)[: reference.size - lag]
    dec = decoded.astype(np.float64)[lag : lag + ref.size]
    window = np.hanning(frame)
    scores = []
    for start in range(0, ref.size - frame, frame // 2):
        a = np.log10(np.abs(np.fft.rfft(ref[start : start + frame] * window)) + 1.0)
        b = np.log10(np.abs(np.fft.rfft(dec[start : start + frame] * window)) + 1.0)
        if np.std(a) > 0 and np.std(b) > 0:
            scores.append(np.corrcoef(a, b)[0, 1])
    return float(np.mean(scores))
