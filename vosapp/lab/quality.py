"""Objective speech quality: PESQ, STOI, segmental SNR, log-spectral distance.

:func:`compare` takes a reference and a degraded signal (for example speech before and after a
codec), finds the delay between them by cross-correlation, trims both to the overlapping
part and scores it:

- **PESQ** (ITU-T P.862) as MOS-LQO, the mapped score the ``pesq`` package returns: P.862.1
  narrow-band at 8 kHz, P.862.2 wide-band at 16 kHz. Scale about 1.0 (bad) to 4.55 (nb) or
  4.64 (wb) for a signal compared with itself.
- **STOI** (short-time objective intelligibility, ``pystoi``), 0 to 1.
- **Segmental SNR** in dB over 20 ms frames, each frame clamped to [-10, 35] dB, frames where
  the reference is silent (40 dB below its loudest frame) left out.
- **Log-spectral distance** in dB over 32 ms Hann frames of the same active frames; 0 means
  identical power spectra.

Audio files go through :func:`load_audio` / :func:`save_audio` (``soundfile``), which say
clearly when a file is missing, of an unsupported type, empty, truncated or corrupt.
Samples are ``int16`` (full scale 32768) or float in [-1, 1).
"""

from __future__ import annotations

import math
import struct
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import signal as sps

from vosapp.errors import VosappError

__all__ = [
    "ARCTIC_CLIP",
    "PESQ_RATES",
    "SPEECH_DIR",
    "QualityError",
    "QualityReport",
    "Spectrogram",
    "align",
    "compare",
    "estimate_delay",
    "load_audio",
    "load_speech",
    "log_spectral_distance",
    "resample",
    "save_audio",
    "segmental_snr",
    "spectrogram",
    "through_codecs",
    "to_float",
    "to_int16",
]

#: ``data/speech`` of a source checkout (the lab runs from one): real speech with licences.
SPEECH_DIR = Path(__file__).resolve().parents[2] / "data" / "speech"
#: The CMU ARCTIC clip (16 kHz, 4 s, male); provenance in data/README.md.
ARCTIC_CLIP = SPEECH_DIR / "arctic_a0007.wav"

#: Sample rates PESQ is defined for.
PESQ_RATES = (8000, 16000)

_SEGSNR_FRAME_MS = 20.0
_SEGSNR_MIN_DB = -10.0
_SEGSNR_MAX_DB = 35.0
_ACTIVE_RANGE_DB = 40.0
_LSD_FRAME_MS = 32.0
_POWER_FLOOR = 1e-10  # -100 dBFS: keeps log() finite on digital silence


class QualityError(VosappError, ValueError):
    """Audio that cannot be compared, read or written, with the reason."""


@dataclass(frozen=True)
class QualityReport:
    """Scores of a degraded signal against its reference.

    Attributes
    ----------
    rate : int
        Sample rate in Hz both signals were compared at.
    delay_samples : int
        How many samples the degraded signal lags the reference (negative: it leads).
    delay_ms : float
        The same delay in milliseconds.
    correlation : float
        Normalised cross-correlation at that delay, in [-1, 1].
    compared_s : float
        Length of the aligned overlap that was scored, in seconds.
    pesq_mode : {"nb", "wb"}
        PESQ variant used.
    pesq_mos_lqo : float
        PESQ MOS-LQO (P.862.1 for nb, P.862.2 for wb).
    stoi : float
        Short-time objective intelligibility, 0 to 1.
    segmental_snr_db : float
        Mean segmental SNR in dB over active frames.
    log_spectral_distance_db : float
        Mean log-spectral distance in dB over active frames.
    """

    rate: int
    delay_samples: int
    delay_ms: float
    correlation: float
    compared_s: float
    pesq_mode: Literal["nb", "wb"]
    pesq_mos_lqo: float
    stoi: float
    segmental_snr_db: float
    log_spectral_distance_db: float

    def as_dict(self) -> dict[str, Any]:
        """The report as a plain dict (one row of a results table)."""
        return asdict(self)


@dataclass(frozen=True)
class Spectrogram:
    """Power spectrogram data ready for a heatmap.

    Attributes
    ----------
    times : ndarray, shape (n_frames,)
        Frame centres in seconds.
    freqs : ndarray, shape (n_bins,)
        Bin frequencies in Hz.
    power_db : ndarray, shape (n_bins, n_frames)
        Power in dB relative to a full-scale sine, floored at ``floor_db``.
    """

    times: NDArray[np.float64]
    freqs: NDArray[np.float64]
    power_db: NDArray[np.float64]


# --------------------------------------------------------------------------- samples


def to_float(samples: ArrayLike, *, name: str = "samples") -> NDArray[np.float64]:
    """Convert int16 or float samples to a 1-D float64 array in [-1, 1).

    Parameters
    ----------
    samples : array_like, shape (n,)
        ``int16`` samples (scaled by 1/32768) or floats (taken as they are).
    name : str
        Name used in error messages.

    Returns
    -------
    ndarray, shape (n,), float64

    Raises
    ------
    QualityError
        If the input is not one-dimensional, of another integer type, or not finite.
    """
    array = np.asarray(samples)
    if array.ndim != 1:
        raise QualityError(f"{name} must be one-dimensional (mono), got shape {array.shape}")
    if array.dtype == np.int16:
        return array.astype(np.float64) / 32768.0
    if np.issubdtype(array.dtype, np.floating):
        converted = array.astype(np.float64)
        if not np.all(np.isfinite(converted)):
            raise QualityError(f"{name} contains NaN or infinite values")
        return converted
    raise QualityError(
        f"{name} must be int16 or floating point, got dtype {array.dtype}"
    )


def to_int16(samples: ArrayLike, *, name: str = "samples") -> NDArray[np.int16]:
    """Convert int16 or float samples to int16, rounding and clipping floats to full scale.

    Parameters
    ----------
    samples : array_like, shape (n,)
        ``int16`` or float samples in [-1, 1).
    name : str
        Name used in error messages.

    Returns
    -------
    ndarray, shape (n,), int16
    """
    array = np.asarray(samples)
    if array.dtype == np.int16 and array.ndim == 1:
        return array
    floats = to_float(array, name=name)
    return np.clip(np.round(floats * 32768.0), -32768, 32767).astype(np.int16)


def _check_rate(rate: int, *, name: str = "rate") -> int:
    if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)) or rate <= 0:
        raise QualityError(f"{name} must be a positive integer number of Hz, got {rate!r}")
    return int(rate)


def resample(samples: ArrayLike, rate: int, new_rate: int) -> NDArray[Any]:
    """Resample with a polyphase filter (``scipy.signal.resample_poly``).

    Parameters
    ----------
    samples : array_like, shape (n,)
        ``int16`` or float samples.
    rate, new_rate : int
        Current and wanted sample rates in Hz.

    Returns
    -------
    ndarray
        The resampled signal, ``int16`` if the input was ``int16`` (rounded and clipped),
        else float64.
    """
    rate = _check_rate(rate)
    new_rate = _check_rate(new_rate, name="new_rate")
    array = np.asarray(samples)
    was_int16 = array.dtype == np.int16
    floats = to_float(array)
    if new_rate != rate:
        divisor = math.gcd(rate, new_rate)
        floats = sps.resample_poly(floats, new_rate // divisor, rate // divisor)
    return to_int16(floats) if was_int16 else floats


# --------------------------------------------------------------------------- alignment


def estimate_delay(
    reference: ArrayLike,
    degraded: ArrayLike,
    rate: int,
    *,
    max_delay_ms: float = 1000.0,
) -> tuple[int, float]:
    """Find how many samples ``degraded`` lags ``reference`` by cross-correlation.

    Parameters
    ----------
    reference, degraded : array_like, shape (n,) and (m,)
        ``int16`` or float samples at the same rate.
    rate : int
        Sample rate in Hz.
    max_delay_ms : float
        Largest delay, either way, that is searched.

    Returns
    -------
    delay_samples : int
        Positive when ``degraded`` is late, negative when it is early.
    correlation : float
        Normalised correlation at that lag, in [-1, 1].

    Notes
    -----
    The lag maximises the *signed* correlation: telephone paths keep polarity, and choosing
    on the magnitude lets a CELP codec's phase-smeared output (G.729) lock onto an inverted
    echo of the speech a few samples away from the true delay.
    """
    rate = _check_rate(rate)
    ref = to_float(reference, name="reference")
    deg = to_float(degraded, name="degraded")
    if ref.size == 0 or deg.size == 0:
        raise QualityError("cannot align an empty signal")
    if max_delay_ms < 0:
        raise QualityError(f"max_delay_ms must be >= 0, got {max_delay_ms}")
    correlation = sps.correlate(deg, ref, mode="full", method="fft")
    lags = sps.correlation_lags(deg.size, ref.size, mode="full")
    max_lag = round(max_delay_ms * rate / 1000.0)
    window = np.abs(lags) <= max_lag
    correlation, lags = correlation[window], lags[window]
    best = int(np.argmax(correlation))
    lag = int(lags[best])
    ref_part, deg_part = _overlap(ref, deg, lag)
    norm = math.sqrt(float(np.dot(ref_part, ref_part)) * float(np.dot(deg_part, deg_part)))
    normalised = float(np.dot(ref_part, deg_part)) / norm if norm > 0 else 0.0
    return lag, normalised


def _overlap(
    ref: NDArray[np.float64], deg: NDArray[np.float64], lag: int
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    if lag >= 0:
        deg = deg[lag:]
    else:
        ref = ref[-lag:]
    length = min(ref.size, deg.size)
    return ref[:length], deg[:length]


def align(
    reference: ArrayLike,
    degraded: ArrayLike,
    rate: int,
    *,
    max_delay_ms: float = 1000.0,
) -> tuple[NDArray[np.float64], NDArray[np.float64], int]:
    """Remove the delay between two signals and trim them to their overlap.

    Returns
    -------
    reference, degraded : ndarray, float64, same length
        The aligned overlapping parts.
    delay_samples : int
        The lag that was removed (see :func:`estimate_delay`).
    """
    lag, _ = estimate_delay(reference, degraded, rate, max_delay_ms=max_delay_ms)
    ref, deg = _overlap(to_float(reference), to_float(degraded), lag)
    return ref, deg, lag


# --------------------------------------------------------------------------- metrics


def _frames(samples: NDArray[np.float64], length: int, hop: int) -> NDArray[np.float64]:
    count = 1 + (samples.size - length) // hop if samples.size >= length else 0
    if count == 0:
        return np.empty((0, length))
    return np.lib.stride_tricks.sliding_window_view(samples, length)[::hop][:count]


def _active(frame_energy: NDArray[np.float64]) -> NDArray[np.bool_]:
    peak = float(frame_energy.max()) if frame_energy.size else 0.0
    if peak <= 0.0:
        return np.zeros(frame_energy.shape, dtype=bool)
    return frame_energy > peak * 10.0 ** (-_ACTIVE_RANGE_DB / 10.0)


def segmental_snr(reference: ArrayLike, degraded: ArrayLike, rate: int) -> float:
    """Mean segmental SNR in dB of two already aligned signals of the same length.

    Frames of 20 ms; each frame's SNR is clamped to [-10, 35] dB (so identical signals give
    35 dB); frames where the reference is more than 40 dB below its loudest frame are left
    out.

    Raises
    ------
    QualityError
        If the lengths differ, the signals are shorter than one frame or the reference
        is silent.
    """
    rate = _check_rate(rate)
    ref = to_float(reference, name="reference")
    deg = to_float(degraded, name="degraded")
    if ref.size != deg.size:
        raise QualityError(f"signals must have the same length, got {ref.size} and {deg.size}")
    length = int(rate * _SEGSNR_FRAME_MS / 1000.0)
    ref_frames = _frames(ref, length, length)
    if ref_frames.shape[0] == 0:
        raise QualityError(f"signal shorter than one {_SEGSNR_FRAME_MS:g} ms frame")
    err_frames = ref_frames - _frames(deg, length, length)
    signal_energy = np.sum(ref_frames**2, axis=1)
    active = _active(signal_energy)
    if not active.any():
        raise QualityError("the reference is silent: segmental SNR is undefined")
    noise_energy = np.sum(err_frames**2, axis=1)
    with np.errstate(divide="ignore"):
        snr = 10.0 * np.log10(signal_energy[active] / np.maximum(noise_energy[active], 1e-20))
    return float(np.mean(np.clip(snr, _SEGSNR_MIN_DB, _SEGSNR_MAX_DB)))


def log_spectral_distance(reference: ArrayLike, degraded: ArrayLike, rate: int) -> float:
    """Mean log-spectral distance in dB of two aligned signals of the same length.

    Per 32 ms Hann frame (50 % overlap) whose reference is active, the RMS over frequency of
    the difference of the two power spectra in dB (each floored at -100 dB), averaged over
    frames. Identical signals give 0.
    """
    rate = _check_rate(rate)
    ref = to_float(reference, name="reference")
    deg = to_float(degraded, name="degraded")
    if ref.size != deg.size:
        raise QualityError(f"signals must have the same length, got {ref.size} and {deg.size}")
    length = int(rate * _LSD_FRAME_MS / 1000.0)
    hop = length // 2
    window = np.hanning(length)
    ref_frames = _frames(ref, length, hop)
    if ref_frames.shape[0] == 0:
        raise QualityError(f"signal shorter than one {_LSD_FRAME_MS:g} ms frame")
    deg_frames = _frames(deg, length, hop)
    active = _active(np.sum(ref_frames**2, axis=1))
    if not active.any():
        raise QualityError("the reference is silent: log-spectral distance is undefined")
    scale = float(np.sum(window)) ** 2
    ref_power = np.abs(np.fft.rfft(ref_frames[active] * window, axis=1)) ** 2 / scale
    deg_power = np.abs(np.fft.rfft(deg_frames[active] * window, axis=1)) ** 2 / scale
    diff = 10.0 * np.log10(np.maximum(ref_power, _POWER_FLOOR)) - 10.0 * np.log10(
        np.maximum(deg_power, _POWER_FLOOR)
    )
    return float(np.mean(np.sqrt(np.mean(diff**2, axis=1))))


def _pesq_score(ref: NDArray[np.float64], deg: NDArray[np.float64], rate: int, mode: str) -> float:
    import pesq as pesq_package  # heavy-ish C extension: imported when first needed

    try:
        return float(pesq_package.pesq(rate, ref, deg, mode))
    except pesq_package.NoUtterancesError as error:
        raise QualityError(
            "PESQ found no speech (utterances) in the signals: give it at least a second or"
            " so of speech at a normal level"
        ) from error
    except pesq_package.BufferTooShortError as error:
        raise QualityError(
            f"PESQ needs a longer signal (got {ref.size / rate:.2f} s after alignment;"
            " use at least about 1 s)"
        ) from error
    except pesq_package.PesqError as error:
        raise QualityError(f"PESQ failed: {type(error).__name__}: {error}") from error


def _stoi_score(ref: NDArray[np.float64], deg: NDArray[np.float64], rate: int) -> float:
    import pystoi  # imported when first needed

    with warnings.catch_warnings(record=True) as caught, np.errstate(all="ignore"):
        warnings.simplefilter("always")
        value = float(pystoi.stoi(ref, deg, rate, extended=False))
    if any("Not enough STFT frames" in str(warning.message) for warning in caught):
        raise QualityError(
            "STOI found too few speech frames (it drops frames 40 dB below the loudest);"
            " give it at least about a second of speech"
        )
    return value


def compare(
    reference: ArrayLike,
    degraded: ArrayLike,
    rate: int,
    *,
    pesq_mode: Literal["nb", "wb"] | None = None,
    max_delay_ms: float = 1000.0,
) -> QualityReport:
    """Align ``degraded`` to ``reference`` and score it.

    Parameters
    ----------
    reference : array_like, shape (n,)
        Clean signal, ``int16`` or float in [-1, 1).
    degraded : array_like, shape (m,)
        The signal after the system under test, same rate; it may be delayed, early, or of
        another length.
    rate : int
        Sample rate in Hz, 8000 or 16000 (resample first with :func:`resample` otherwise).
    pesq_mode : {"nb", "wb"}, optional
        PESQ variant; default ``"nb"`` at 8 kHz and ``"wb"`` at 16 kHz. Wide-band is not
        defined at 8 kHz.
    max_delay_ms : float
        Largest delay searched by the cross-correlation, either way.

    Returns
    -------
    QualityReport

    Raises
    ------
    QualityError
        Bad rate or mode, empty, silent or too short signals, or PESQ finding no speech.

    Examples
    --------
    >>> report = compare(clean, decoded, 8000)          # doctest: +SKIP
    >>> report.pesq_mos_lqo, report.delay_ms            # doctest: +SKIP
    (4.38, 0.0)
    """
    rate = _check_rate(rate)
    if rate not in PESQ_RATES:
        raise QualityError(
            f"rate must be 8000 or 16000 Hz for PESQ, got {rate}; resample first"
            " (vosapp.lab.quality.resample)"
        )
    mode = pesq_mode or ("nb" if rate == 8000 else "wb")
    if mode not in ("nb", "wb"):
        raise QualityError(f"pesq_mode must be 'nb' or 'wb', got {pesq_mode!r}")
    if mode == "wb" and rate == 8000:
        raise QualityError("wide-band PESQ needs 16000 Hz audio; use pesq_mode='nb' at 8000 Hz")
    ref_all = to_float(reference, name="reference")
    deg_all = to_float(degraded, name="degraded")
    for name, samples in (("reference", ref_all), ("degraded", deg_all)):
        if samples.size == 0:
            raise QualityError(f"the {name} signal is empty")
        if not np.any(samples):
            raise QualityError(f"the {name} signal is digital silence (all zeros)")
    lag, correlation = estimate_delay(ref_all, deg_all, rate, max_delay_ms=max_delay_ms)
    ref, deg = _overlap(ref_all, deg_all, lag)
    if ref.size < rate // 4:
        raise QualityError(
            f"only {ref.size / rate * 1000:.0f} ms overlap after removing a delay of"
            f" {lag / rate * 1000:.1f} ms; signals too short to compare"
        )
    pesq_value = _pesq_score(ref, deg, rate, mode)
    stoi_value = _stoi_score(ref, deg, rate)
    return QualityReport(
        rate=rate,
        delay_samples=lag,
        delay_ms=lag * 1000.0 / rate,
        correlation=correlation,
        compared_s=ref.size / rate,
        pesq_mode=mode,
        pesq_mos_lqo=pesq_value,
        stoi=stoi_value,
        segmental_snr_db=segmental_snr(ref, deg, rate),
        log_spectral_distance_db=log_spectral_distance(ref, deg, rate),
    )


def through_codecs(
    samples: ArrayLike, rate: int, codec_names: str | Sequence[str]
) -> tuple[NDArray[np.int16], int]:
    """Pass audio through one codec or a tandem of codecs (encode, then decode, in turn).

    Each codec gets a fresh state (:func:`vosapp.media.codecs.get`); the audio is resampled
    to each codec's rate when it differs (G.722 works at 16 kHz) and padded with silence to
    a whole number of that codec's frames.

    Parameters
    ----------
    samples : array_like, shape (n,)
        ``int16`` or float samples.
    rate : int
        Sample rate of ``samples`` in Hz.
    codec_names : str or sequence of str
        ``"G729"`` or a chain such as ``["PCMA", "G729", "PCMA"]``.

    Returns
    -------
    decoded : ndarray, int16
        The audio after the last codec (at least as long as the input, codec delay included).
    rate : int
        Its sample rate (the last codec's audio rate).
    """
    from vosapp.media import codecs  # the lab sits on top of media

    names = [codec_names] if isinstance(codec_names, str) else list(codec_names)
    if not names:
        raise QualityError("codec_names is empty: name at least one codec")
    audio: NDArray[Any] = to_int16(samples)
    current_rate = _check_rate(rate)
    for name in names:
        codec = codecs.get(name)
        audio = to_int16(resample(audio, current_rate, codec.sample_rate))
        current_rate = codec.sample_rate
        remainder = audio.size % codec.frame_samples
        if remainder:
            audio = np.concatenate(
                [audio, np.zeros(codec.frame_samples - remainder, dtype=np.int16)]
            )
        audio = np.asarray(codec.decode(codec.encode(audio)), dtype=np.int16)
    return audio, current_rate


# --------------------------------------------------------------------------- spectrogram


def spectrogram(
    samples: ArrayLike,
    rate: int,
    *,
    window_ms: float = 32.0,
    hop_ms: float = 8.0,
    floor_db: float = -100.0,
) -> Spectrogram:
    """Power spectrogram in dB for plotting (Hann window).

    Parameters
    ----------
    samples : array_like, shape (n,)
        ``int16`` or float samples.
    rate : int
        Sample rate in Hz.
    window_ms, hop_ms : float
        Frame length and frame step in milliseconds (hop no longer than the window).
    floor_db : float
        Values below this are raised to it (digital silence would be -inf).

    Returns
    -------
    Spectrogram
        0 dB is the power of a full-scale sine.
    """
    rate = _check_rate(rate)
    floats = to_float(samples)
    length = round(rate * window_ms / 1000.0)
    hop = round(rate * hop_ms / 1000.0)
    if length < 2 or hop < 1 or hop > length:
        raise QualityError(
            f"need window_ms long enough for 2 samples and 0 < hop_ms <= window_ms,"
            f" got window_ms={window_ms}, hop_ms={hop_ms} at {rate} Hz"
        )
    if floats.size < length:
        raise QualityError(
            f"signal of {floats.size} samples is shorter than one {window_ms:g} ms window"
        )
    window = np.hanning(length)
    frames = _frames(floats, length, hop)
    # A full-scale sine of amplitude 1 has a one-sided peak of sum(window)/2 in the rfft.
    reference_power = (float(np.sum(window)) / 2.0) ** 2
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2 / reference_power
    power_db = np.maximum(10.0 * np.log10(np.maximum(power, 1e-30)), floor_db).T
    times = (np.arange(frames.shape[0]) * hop + length / 2.0) / rate
    freqs = np.fft.rfftfreq(length, 1.0 / rate).astype(np.float64, copy=False)
    return Spectrogram(times=times, freqs=freqs, power_db=power_db)


# --------------------------------------------------------------------------- files


def _format_for(path: Path) -> str:
    import soundfile

    extension = path.suffix.lower().lstrip(".")
    known = soundfile.available_formats()
    aliases = {"aif": "AIFF", "aiff": "AIFF", "oga": "OGG", "snd": "AU"}
    format_name = aliases.get(extension, extension.upper())
    if not extension or format_name not in known or format_name == "RAW":
        supported = ", ".join(sorted(f".{name.lower()}" for name in known if name != "RAW"))
        raise QualityError(
            f"{path}: unsupported audio file extension {path.suffix or '(none)'!r};"
            f" supported: {supported}"
        )
    return format_name


def _check_wav_complete(path: Path) -> None:
    """Raise when a RIFF/WAVE file's data chunk claims more bytes than the file holds.

    libsndfile silently returns the samples that are there, so a half-copied file would
    otherwise pass for a shorter recording.
    """
    with path.open("rb") as handle:
        header = handle.read(12)
        if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
            return  # not plain RIFF/WAVE (RF64, ...): leave it to libsndfile
        size = path.stat().st_size
        position = 12
        while position + 8 <= size:
            handle.seek(position)
            chunk_id, chunk_size = struct.unpack("<4sI", handle.read(8))
            if chunk_id == b"data":
                available = size - position - 8
                # 0 and 0xFFFFFFFF are what streaming writers leave when they never patch.
                if chunk_size not in (0, 0xFFFFFFFF) and chunk_size > available:
                    raise QualityError(
                        f"{path}: truncated WAV file: the header declares {chunk_size} bytes"
                        f" of audio but only {available} are present"
                    )
                return
            position += 8 + chunk_size + (chunk_size & 1)


def load_audio(
    path: str | Path,
    rate: int | None = None,
    *,
    dtype: Literal["int16", "float64"] = "int16",
) -> tuple[NDArray[Any], int]:
    """Read an audio file as mono samples, optionally resampled.

    Parameters
    ----------
    path : str or Path
        A file whose extension ``soundfile`` knows (``.wav``, ``.flac``, ``.ogg`` ...).
    rate : int, optional
        Resample to this rate (polyphase); default: keep the file's rate.
    dtype : {"int16", "float64"}
        Sample type returned; floats are in [-1, 1).

    Returns
    -------
    samples : ndarray, shape (n,)
        Multi-channel files are mixed down to mono by averaging.
    rate : int
        The sample rate of ``samples``.

    Raises
    ------
    QualityError
        Missing file, unsupported extension, zero-length, empty (no samples), truncated or
        corrupt file.
    """
    import soundfile

    file_path = Path(path)
    if dtype not in ("int16", "float64"):
        raise QualityError(f"dtype must be 'int16' or 'float64', got {dtype!r}")
    _format_for(file_path)
    if not file_path.is_file():
        raise QualityError(f"{file_path}: no such audio file")
    if file_path.stat().st_size == 0:
        raise QualityError(f"{file_path}: the file is empty (0 bytes)")
    _check_wav_complete(file_path)
    try:
        data, file_rate = soundfile.read(str(file_path), dtype="float64", always_2d=True)
    except soundfile.LibsndfileError as error:
        raise QualityError(
            f"{file_path}: cannot read audio (corrupt or not {file_path.suffix} data):"
            f" {error.error_string}"
        ) from error
    if data.shape[0] == 0:
        raise QualityError(f"{file_path}: the file holds no audio samples")
    mono = data.mean(axis=1)
    if rate is not None and rate != file_rate:
        mono = resample(mono, file_rate, rate)
        file_rate = rate
    samples = to_int16(mono) if dtype == "int16" else mono
    return samples, int(file_rate)


def load_speech(rate: int = 8000, name: str = ARCTIC_CLIP.name) -> NDArray[np.int16]:
    """A speech clip from ``data/speech`` as int16 at ``rate`` (default: the ARCTIC clip).

    Raises
    ------
    QualityError
        When the file is missing (``data/`` ships with a source checkout, not a wheel).
    """
    samples, _ = load_audio(SPEECH_DIR / name, rate=rate)
    return samples


def save_audio(path: str | Path, samples: ArrayLike, rate: int) -> Path:
    """Write mono samples to an audio file (16-bit PCM where the format has it).

    Parameters
    ----------
    path : str or Path
        Destination; the extension chooses the format (``.wav``, ``.flac`` ...).
    samples : array_like, shape (n,)
        ``int16`` or float samples; floats are clipped to full scale.
    rate : int
        Sample rate in Hz.

    Returns
    -------
    Path
        The path written.

    Raises
    ------
    QualityError
        Unsupported extension, empty or malformed samples, bad rate, or a write failure.
    """
    import soundfile

    file_path = Path(path)
    format_name = _format_for(file_path)
    rate = _check_rate(rate)
    pcm = to_int16(samples)
    if pcm.size == 0:
        raise QualityError(f"{file_path}: refusing to write an empty signal")
    subtype = "PCM_16" if soundfile.check_format(format_name, "PCM_16") else None
    try:
        soundfile.write(str(file_path), pcm, rate, format=format_name, subtype=subtype)
    except (soundfile.LibsndfileError, ValueError, TypeError, OSError) as error:
        raise QualityError(f"{file_path}: cannot write audio: {error}") from error
    return file_path
