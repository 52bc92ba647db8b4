"""vosapp.lab.quality on real speech (CMU ARCTIC a0007) with real PESQ and STOI."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from vosapp.lab import quality
from vosapp.lab.quality import QualityError

SPEECH = Path(__file__).resolve().parents[2] / "data" / "speech" / "arctic_a0007.wav"


@pytest.fixture(scope="module")
def speech8k() -> np.ndarray:
    samples, rate = quality.load_audio(SPEECH, rate=8000)
    assert rate == 8000
    return samples


@pytest.fixture(scope="module")
def speech16k() -> np.ndarray:
    samples, rate = quality.load_audio(SPEECH)
    assert rate == 16000
    return samples


def _with_noise(samples: np.ndarray, snr_db: float, seed: int = 7) -> np.ndarray:
    clean = quality.to_float(samples)
    noise = np.random.default_rng(seed).standard_normal(clean.size)
    noise *= np.sqrt(np.mean(clean**2) / 10 ** (snr_db / 10)) / np.std(noise)
    return clean + noise


# ----------------------------------------------------------------------- loading


def test_clip_loads_as_four_seconds_of_speech(speech16k: np.ndarray) -> None:
    assert speech16k.dtype == np.int16
    assert speech16k.size == 64000
    assert np.abs(speech16k).max() > 3000  # real speech at a normal level


def test_load_speech_helper(speech8k: np.ndarray) -> None:
    assert quality.ARCTIC_CLIP == SPEECH
    assert np.array_equal(quality.load_speech(8000), speech8k)
    with pytest.raises(QualityError, match="no such audio file"):
        quality.load_speech(8000, name="absent.wav")


def test_load_resamples_to_8k_and_float(speech8k: np.ndarray) -> None:
    floats, rate = quality.load_audio(SPEECH, rate=8000, dtype="float64")
    assert rate == 8000 and floats.dtype == np.float64 and floats.size == 32000
    assert np.max(np.abs(floats - speech8k / 32768.0)) <= 1 / 32768.0 + 1e-12


# ----------------------------------------------------------------------- scores


def test_identical_narrowband_gets_maximum_scores(speech8k: np.ndarray) -> None:
    report = quality.compare(speech8k, speech8k, 8000)
    assert report.pesq_mode == "nb"
    assert report.pesq_mos_lqo == pytest.approx(4.549, abs=0.01)  # P.862.1 ceiling
    assert report.stoi == pytest.approx(1.0, abs=1e-6)
    assert report.segmental_snr_db == pytest.approx(35.0)
    assert report.log_spectral_distance_db == pytest.approx(0.0, abs=1e-9)
    assert report.delay_samples == 0 and report.correlation == pytest.approx(1.0)


def test_identical_wideband_gets_maximum_scores(speech16k: np.ndarray) -> None:
    report = quality.compare(speech16k, speech16k, 16000)
    assert report.pesq_mode == "wb"
    assert report.pesq_mos_lqo == pytest.approx(4.644, abs=0.01)  # P.862.2 ceiling
    assert report.stoi == pytest.approx(1.0, abs=1e-6)


def test_int16_and_float_inputs_agree(speech8k: np.ndarray) -> None:
    degraded = _with_noise(speech8k, 25)
    as_float = quality.compare(speech8k / 32768.0, degraded, 8000)
    as_int = quality.compare(speech8k, quality.to_int16(degraded), 8000)
    assert as_float.pesq_mos_lqo == pytest.approx(as_int.pesq_mos_lqo, abs=0.02)
    assert as_float.segmental_snr_db == pytest.approx(as_int.segmental_snr_db, abs=0.1)


def test_more_noise_scores_worse_on_every_metric(speech8k: np.ndarray) -> None:
    reports = [quality.compare(speech8k, _with_noise(speech8k, snr), 8000) for snr in (35, 20, 5)]
    pesq = [r.pesq_mos_lqo for r in reports]
    stoi = [r.stoi for r in reports]
    segsnr = [r.segmental_snr_db for r in reports]
    lsd = [r.log_spectral_distance_db for r in reports]
    assert pesq == sorted(pesq, reverse=True) and pesq[0] - pesq[-1] > 1.5
    assert stoi == sorted(stoi, reverse=True)
    assert segsnr == sorted(segsnr, reverse=True)
    assert lsd == sorted(lsd)
    assert all(r.delay_samples == 0 for r in reports)


@pytest.mark.parametrize("delay", [1, 160, 837, -240])
def test_alignment_recovers_a_known_delay(speech8k: np.ndarray, delay: int) -> None:
    if delay >= 0:
        degraded = np.concatenate([np.zeros(delay, np.int16), speech8k])
    else:
        degraded = speech8k[-delay:]
    report = quality.compare(speech8k, degraded, 8000)
    assert report.delay_samples == delay
    assert report.delay_ms == pytest.approx(delay / 8.0)
    # Once aligned, the copy is perfect again.
    assert report.segmental_snr_db == pytest.approx(35.0)
    assert report.pesq_mos_lqo > 4.5


def test_alignment_finds_delay_under_noise_and_gain(speech16k: np.ndarray) -> None:
    noisy = 0.5 * _with_noise(speech16k, 10)
    degraded = np.concatenate([np.zeros(1234), noisy])
    assert quality.estimate_delay(speech16k, degraded, 16000)[0] == 1234


def test_delay_beyond_search_window_is_not_found(speech8k: np.ndarray) -> None:
    degraded = np.concatenate([np.zeros(4000, np.int16), speech8k])  # 500 ms
    lag, _ = quality.estimate_delay(speech8k, degraded, 8000, max_delay_ms=100)
    assert abs(lag) <= 800


def test_metric_functions_on_aligned_signals(speech8k: np.ndarray) -> None:
    assert quality.segmental_snr(speech8k, speech8k, 8000) == pytest.approx(35.0)
    halved = (speech8k // 2).astype(np.int16)
    # Half amplitude: the error is half the signal in every frame -> 6 dB; so is the LSD.
    assert quality.segmental_snr(speech8k, halved, 8000) == pytest.approx(6.02, abs=0.2)
    assert quality.log_spectral_distance(speech8k, halved, 8000) == pytest.approx(6.02, abs=0.3)


def test_spectrogram_finds_a_tone() -> None:
    rate = 8000
    t = np.arange(rate) / rate
    tone = np.sin(2 * np.pi * 1000 * t)
    spec = quality.spectrogram(tone, rate, window_ms=32, hop_ms=8)
    assert spec.power_db.shape == (spec.freqs.size, spec.times.size)
    assert spec.freqs[np.argmax(spec.power_db.mean(axis=1))] == pytest.approx(1000, abs=32)
    assert spec.power_db.max() == pytest.approx(0.0, abs=0.5)  # full-scale sine is 0 dB
    assert spec.times[0] == pytest.approx(0.016)


def test_resample_roundtrip_keeps_speech(speech16k: np.ndarray) -> None:
    down = quality.resample(speech16k, 16000, 8000)
    assert down.dtype == np.int16 and down.size == 32000
    up = quality.resample(down, 8000, 16000)
    assert quality.compare(speech16k, up, 16000, pesq_mode="nb").pesq_mos_lqo > 4.0


# ----------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rate": 44100}, "8000 or 16000"),
        ({"rate": 8000, "pesq_mode": "wb"}, "wide-band"),
        ({"rate": 8000, "pesq_mode": "xx"}, "'nb' or 'wb'"),
        ({"rate": -5}, "positive integer"),
    ],
)
def test_bad_rate_or_mode(speech8k: np.ndarray, kwargs: dict, message: str) -> None:
    with pytest.raises(QualityError, match=message):
        quality.compare(speech8k, speech8k, **kwargs)


def test_bad_signals_are_named(speech8k: np.ndarray) -> None:
    with pytest.raises(QualityError, match="reference signal is empty"):
        quality.compare(np.zeros(0, np.int16), speech8k, 8000)
    with pytest.raises(QualityError, match="degraded signal is digital silence"):
        quality.compare(speech8k, np.zeros(8000, np.int16), 8000)
    with pytest.raises(QualityError, match="dtype int32"):
        quality.compare(speech8k.astype(np.int32), speech8k, 8000)
    with pytest.raises(QualityError, match="one-dimensional"):
        quality.compare(np.stack([speech8k, speech8k]), speech8k, 8000)
    with pytest.raises(QualityError, match="NaN"):
        quality.compare(np.full(8000, np.nan), speech8k, 8000)
    with pytest.raises(QualityError, match="too short"):
        quality.compare(speech8k[:1000], speech8k[:1000], 8000)


def test_pesq_without_speech_gives_a_clear_error() -> None:
    # A 50 ms blip in two seconds of silence is no utterance for PESQ.
    blip = np.concatenate([np.zeros(8000), 0.5 * np.sin(np.arange(400.0)), np.zeros(8000)])
    with pytest.raises(QualityError, match="PESQ found no speech"):
        quality.compare(blip, blip, 8000)


# ----------------------------------------------------------------------- files


def test_save_and_load_roundtrip(tmp_path: Path, speech8k: np.ndarray) -> None:
    for name in ("clip.wav", "clip.flac"):
        written = quality.save_audio(tmp_path / name, speech8k, 8000)
        samples, rate = quality.load_audio(written)
        assert rate == 8000 and np.array_equal(samples, speech8k)


def test_save_clips_floats(tmp_path: Path) -> None:
    quality.save_audio(tmp_path / "loud.wav", np.array([2.0, -2.0, 0.5]), 8000)
    samples, _ = quality.load_audio(tmp_path / "loud.wav")
    assert samples.tolist() == [32767, -32768, 16384]


def test_truncated_wav(tmp_path: Path) -> None:
    data = SPEECH.read_bytes()
    path = tmp_path / "half.wav"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(QualityError, match="truncated WAV.*declares 128000 bytes"):
        quality.load_audio(path)
    header_only = tmp_path / "header.wav"
    header_only.write_bytes(data[:30])
    with pytest.raises(QualityError, match="cannot read audio"):
        quality.load_audio(header_only)


def test_random_bytes(tmp_path: Path) -> None:
    path = tmp_path / "noise.wav"
    path.write_bytes(os.urandom(4096))
    with pytest.raises(QualityError, match="cannot read audio .*corrupt"):
        quality.load_audio(path)


def test_zero_length_and_no_samples(tmp_path: Path) -> None:
    path = tmp_path / "zero.wav"
    path.write_bytes(b"")
    with pytest.raises(QualityError, match="empty \\(0 bytes\\)"):
        quality.load_audio(path)
    import soundfile

    silent = tmp_path / "nothing.wav"
    soundfile.write(silent, np.zeros(0, np.int16), 8000)
    with pytest.raises(QualityError, match="no audio samples"):
        quality.load_audio(silent)
    with pytest.raises(QualityError, match="empty signal"):
        quality.save_audio(tmp_path / "out.wav", np.zeros(0, np.int16), 8000)


def test_wrong_extension(tmp_path: Path, speech8k: np.ndarray) -> None:
    disguised = tmp_path / "speech.txt"
    disguised.write_bytes(SPEECH.read_bytes())
    with pytest.raises(QualityError, match="unsupported audio file extension '.txt'.*\\.wav"):
        quality.load_audio(disguised)
    with pytest.raises(QualityError, match="unsupported audio file extension"):
        quality.save_audio(tmp_path / "out.mp4", speech8k, 8000)
    with pytest.raises(QualityError, match="\\(none\\)"):
        quality.load_audio(tmp_path / "noextension")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(QualityError, match="no such audio file"):
        quality.load_audio(tmp_path / "absent.wav")
