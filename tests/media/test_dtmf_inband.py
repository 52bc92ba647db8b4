"""Inband DTMF receiver against the ITU-T Q.24 limits of docs/behaviour.md §6, each case
generated."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vosapp.media.dtmf import (
    DIGITS,
    AudioInputError,
    DetectorTuning,
    DigitError,
    DtmfDetector,
    DtmfDetectorBank,
    TuningError,
    analyse_windows,
    detect_digits,
    detect_events,
    digit_frequencies,
    generate_digits,
)

SPEECH_DIR = Path(__file__).resolve().parents[2] / "data" / "speech"
RATES = (8000, 16000)
# Start offsets (samples at 8 kHz) so tones fall at every phase of the 5 ms analysis hop.
OFFSETS = (0, 7, 13, 21, 29, 36)


def tones(digits: str, rate: int = 8000, lead_ms: float = 50, **kwargs) -> np.ndarray:
    """generate_digits with some silence first."""
    body = generate_digits(digits, rate, **kwargs)
    return np.concatenate([np.zeros(int(lead_ms * rate / 1000), np.int16), body])


def shifted(x: np.ndarray, offset: int) -> np.ndarray:
    return np.concatenate([np.zeros(offset, np.int16), x])


# ---------------------------------------------------------------------------------------------
# Generator


def test_generator_levels_twist_and_frequencies() -> None:
    rate = 8000
    x = generate_digits("5", rate, on_ms=1000, off_ms=0, level_dbm0=-10, twist_db=4)
    spectrum = np.abs(np.fft.rfft(x / 32768.0)) * 2 / len(x)
    freqs = np.fft.rfftfreq(len(x), 1 / rate)
    low, high = digit_frequencies("5")
    a_low = spectrum[np.argmin(np.abs(freqs - low))]
    a_high = spectrum[np.argmin(np.abs(freqs - high))]
    # +3.17 dBm0 is a full-scale sine; positive twist makes the high group louder.
    assert 20 * np.log10(a_high) + 3.17 == pytest.approx(-10, abs=0.05)
    assert 20 * np.log10(a_low) + 3.17 == pytest.approx(-14, abs=0.05)
    assert x.dtype == np.int16 and len(x) == rate


def test_generator_errors() -> None:
    with pytest.raises(DigitError, match="'E'"):
        generate_digits("12E")
    with pytest.raises(AudioInputError, match="11025"):
        generate_digits("1", rate=11025)
    with pytest.raises(AudioInputError, match="clip=True"):
        generate_digits("1", level_dbm0=0)
    assert generate_digits("1", level_dbm0=0, clip=True).max() == 32767
    assert generate_digits("abcd").shape == (4 * 1600,)


# ---------------------------------------------------------------------------------------------
# Basic operation


@pytest.mark.parametrize("rate", RATES)
def test_all_sixteen_digits(rate: int) -> None:
    assert detect_digits(tones(DIGITS, rate), rate) == DIGITS


@pytest.mark.parametrize("rate", RATES)
def test_streaming_matches_one_shot_for_any_chunking(rate: int) -> None:
    x = tones("147*2580369#ABCD", rate, on_ms=60, off_ms=50)
    expected = detect_events(x, rate)
    assert "".join(e.digit for e in expected) == "147*2580369#ABCD"
    for chunk in (rate // 50, 37, 1000):  # 20 ms RTP packets, odd sizes
        detector = DtmfDetector(rate)
        got = []
        for i in range(0, len(x), chunk):
            got += detector.feed(x[i : i + chunk])
        got += detector.flush()
        assert got == expected


def test_event_times() -> None:
    x = tones("7", 8000, lead_ms=100, on_ms=200, off_ms=100)
    (event,) = detect_events(x)
    assert event.start == pytest.approx(0.100, abs=0.006)
    assert event.end == pytest.approx(0.300, abs=0.006)
    assert event.duration == pytest.approx(0.200, abs=0.01)


def test_active_digit_is_visible_before_it_ends() -> None:
    detector = DtmfDetector()
    x = tones("9", on_ms=300, off_ms=0)
    assert detector.feed(x[: 8000 * 200 // 1000]) == []
    assert detector.active is not None and detector.active[0] == "9"
    assert [e.digit for e in detector.feed(np.zeros(800, np.int16))] == ["9"]
    assert detector.active is None


def test_bank_channels_are_independent() -> None:
    a = tones("123", off_ms=60)
    b = tones("#0*", off_ms=60)
    n = max(len(a), len(b))
    both = np.zeros((3, n), np.int16)
    both[0, : len(a)] = a
    both[1, : len(b)] = b
    bank = DtmfDetectorBank(3)
    events = []
    for i in range(0, n, 160):
        events += bank.feed(both[:, i : i + 160])
    events += bank.flush()
    per_channel = ["".join(e.digit for e in events if e.channel == c) for c in range(3)]
    assert per_channel == ["123", "#0*", ""]


# ---------------------------------------------------------------------------------------------
# Q.24: frequency tolerance (operate at ±1.5 %, reject at ±3.5 %)


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize(
    "row_dev, col_dev", [(0.015, 0.015), (-0.015, -0.015), (0.015, -0.015), (-0.015, 0.015)]
)
def test_operates_at_1_5_percent_deviation(rate: int, row_dev: float, col_dev: float) -> None:
    x = tones(DIGITS, rate, row_deviation=row_dev, column_deviation=col_dev)
    assert detect_digits(x, rate) == DIGITS


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize(
    "row_dev, col_dev",
    [(0.035, 0.0), (-0.035, 0.0), (0.0, 0.035), (0.0, -0.035), (0.035, 0.035), (-0.035, -0.035)],
)
def test_rejects_at_3_5_percent_deviation(rate: int, row_dev: float, col_dev: float) -> None:
    x = tones(DIGITS, rate, row_deviation=row_dev, column_deviation=col_dev)
    assert detect_digits(x, rate) == ""


def test_measured_deviation_and_level() -> None:
    x = generate_digits(
        "6", on_ms=200, off_ms=0, level_dbm0=-17, row_deviation=0.012, column_deviation=-0.02
    )
    found = analyse_windows(x)
    middle = slice(5, len(found["time"]) - 5)
    assert np.allclose(found["low_deviation"][middle], 0.012, atol=0.002)
    assert np.allclose(found["high_deviation"][middle], -0.02, atol=0.002)
    assert np.allclose(found["low_dbm0"][middle], -17, atol=0.3)
    assert np.allclose(found["high_dbm0"][middle], -17, atol=0.3)
    assert set(found["digit"][middle]) == {"6"}


# ---------------------------------------------------------------------------------------------
# Q.24: timing (detect 40 ms, reject 23 ms; bridge 10 ms; two digits across a 40 ms pause)


@pytest.mark.parametrize("offset", OFFSETS)
def test_detects_40_ms_tones(offset: int) -> None:
    x = shifted(tones(DIGITS, on_ms=40, off_ms=60), offset)
    assert detect_digits(x) == DIGITS


@pytest.mark.parametrize("offset", OFFSETS)
def test_rejects_23_ms_tones(offset: int) -> None:
    x = shifted(tones(DIGITS, on_ms=23, off_ms=77), offset)
    assert detect_digits(x) == ""


def test_detects_40_ms_tones_at_16_khz() -> None:
    for offset in (0, 23, 51):
        x = np.concatenate([np.zeros(offset, np.int16), tones(DIGITS, 16000, on_ms=40, off_ms=60)])
        assert detect_digits(x, 16000) == DIGITS
        y = np.concatenate([np.zeros(offset, np.int16), tones(DIGITS, 16000, on_ms=23, off_ms=77)])
        assert detect_digits(y, 16000) == ""


@pytest.mark.parametrize("break_at_ms", [15, 22, 40, 48, 57, 75])
def test_bridges_a_10_ms_interruption(break_at_ms: int) -> None:
    for digit in DIGITS:
        x = generate_digits(digit, on_ms=100, off_ms=100)
        start = int(break_at_ms * 8)
        x[start : start + 80] = 0  # 10 ms mute inside the tone
        events = detect_events(shifted(x, 400))
        assert [e.digit for e in events] == [digit], (digit, break_at_ms)


def test_bridge_and_pause_at_16_khz() -> None:
    for offset in (0, 37, 81):
        for digit in "1#D":
            x = generate_digits(digit, 16000, on_ms=100, off_ms=100)
            x[offset + 640 : offset + 800] = 0  # 10 ms mute
            assert detect_digits(x, 16000) == digit
            y = shifted(tones(digit * 2, 16000, on_ms=60, off_ms=40), offset)
            assert detect_digits(y, 16000) == digit * 2


@pytest.mark.parametrize("offset", OFFSETS)
def test_counts_twice_across_a_40_ms_pause(offset: int) -> None:
    for digit in DIGITS:
        x = shifted(tones(digit * 2, on_ms=60, off_ms=40), offset)
        assert detect_digits(x) == digit * 2, digit


# ---------------------------------------------------------------------------------------------
# Q.24: twist (8 dB normal = low group louder, 4 dB reverse = high group louder)


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("twist_db", [-8.0, -4.0, 4.0])
def test_accepts_twist(rate: int, twist_db: float) -> None:
    x = tones(DIGITS, rate, level_dbm0=-8, twist_db=twist_db)
    assert detect_digits(x, rate) == DIGITS


@pytest.mark.parametrize("twist_db", [-8.0, 4.0])
@pytest.mark.parametrize(
    "row_dev, col_dev", [(0.015, 0.015), (-0.015, 0.015), (0.015, -0.015), (-0.015, -0.015)]
)
def test_twist_together_with_frequency_offsets(
    twist_db: float, row_dev: float, col_dev: float
) -> None:
    # The corners of the Q.24 envelope at once: the weaker tone is not lost to the stronger
    # tone's leakage.
    for level in (-3.0, -17.0):
        x = tones(
            DIGITS,
            level_dbm0=level,
            twist_db=twist_db,
            row_deviation=row_dev,
            column_deviation=col_dev,
        )
        assert detect_digits(x) == DIGITS, level


@pytest.mark.parametrize("twist_db", [-12.0, 8.0])
def test_rejects_excessive_twist(twist_db: float) -> None:
    assert detect_digits(tones(DIGITS, level_dbm0=-5, twist_db=twist_db)) == ""


# ---------------------------------------------------------------------------------------------
# Q.24: levels per tone from 0 down to -25 dBm0


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("level", [-3.0, -10.0, -20.0, -25.0])
def test_operating_levels(rate: int, level: float) -> None:
    assert detect_digits(tones(DIGITS, rate, level_dbm0=level), rate) == DIGITS


def test_zero_dbm0_per_tone_saturating_like_g711() -> None:
    # Two tones at 0 dBm0 peak at 1.39 x full scale: the channel saturates, as a G.711 one would.
    x = tones(DIGITS, level_dbm0=0, clip=True)
    assert detect_digits(x) == DIGITS


def test_operating_levels_with_twist_and_deviation_at_the_low_end() -> None:
    x = tones(DIGITS, level_dbm0=-25, row_deviation=0.015, column_deviation=-0.015)
    assert detect_digits(x) == DIGITS


@pytest.mark.parametrize("level", [-40.0, -50.0])
def test_rejects_weak_tones(level: float) -> None:
    assert detect_digits(tones(DIGITS, level_dbm0=level)) == ""


def test_level_threshold_is_tunable() -> None:
    x = tones("159", level_dbm0=-40)
    assert detect_digits(x, min_level_dbm0=-45) == "159"


# ---------------------------------------------------------------------------------------------
# Q.24: noise (15 dB SNR, white)


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_detects_at_15_db_snr(rate: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = tones(DIGITS, rate, level_dbm0=-20, on_ms=50, off_ms=50).astype(np.float64)
    signal_power = np.mean(
        generate_digits("5", rate, on_ms=200, off_ms=0, level_dbm0=-20).astype(np.float64) ** 2
    )
    noise = rng.normal(0.0, np.sqrt(signal_power / 10**1.5), size=x.shape)
    noisy = np.clip(np.round(x + noise), -32768, 32767).astype(np.int16)
    assert detect_digits(noisy, rate) == DIGITS


# ---------------------------------------------------------------------------------------------
# Talk-off: at most 1 false detection per minute of speech


def _speech_8k() -> list[tuple[str, np.ndarray]]:
    import soundfile as sf
    from scipy.signal import resample_poly

    clips = []
    for path in sorted(SPEECH_DIR.glob("espeak_*.flac")) + sorted(SPEECH_DIR.glob("arctic_*.wav")):
        x, rate = sf.read(path, dtype="int16")
        if x.ndim > 1:
            x = x[:, 0]
        if rate == 16000:
            x = np.clip(np.round(resample_poly(x.astype(np.float64), 1, 2)), -32768, 32767)
            x = x.astype(np.int16)
        elif rate != 8000:
            continue
        clips.append((path.name, x))
    return clips


@pytest.mark.parametrize("gain_db", [-6.0, 0.0, 6.0])
def test_talk_off_at_most_one_per_minute_of_speech(gain_db: float) -> None:
    # The clips peak at -3 dBFS; +6 dB saturates the loudest syllables, as a hot line would.
    clips = _speech_8k()
    seconds = sum(len(x) for _, x in clips) / 8000
    assert seconds >= 60, f"only {seconds:.0f} s of speech in {SPEECH_DIR}"
    gain = 10 ** (gain_db / 20)
    false = {}
    for name, x in clips:
        y = np.clip(np.round(x * gain), -32768, 32767).astype(np.int16)
        false[name] = detect_events(y)
    count = sum(len(v) for v in false.values())
    assert count / (seconds / 60) <= 1.0, {k: v for k, v in false.items() if v}


@pytest.mark.parametrize("rms", [30.0, 1000.0, 8000.0])
def test_no_digits_in_a_minute_of_white_noise(rms: float) -> None:
    rng = np.random.default_rng(int(rms))
    noise = np.clip(np.round(rng.normal(0.0, rms, 60 * 8000)), -32768, 32767).astype(np.int16)
    assert detect_digits(noise) == ""


def test_digits_survive_in_speech() -> None:
    # Digits mixed into speech 10 dB below the speech peak are still found (and nothing else).
    name, speech = _speech_8k()[0]
    speech = speech[: 8000 * 6].astype(np.float64) * 0.3
    x = speech.copy()
    burst = generate_digits("3", on_ms=80, off_ms=0, level_dbm0=-10).astype(np.float64)
    for at in (1.0, 2.5, 4.0):
        x[int(at * 8000) : int(at * 8000) + len(burst)] += burst
    x = np.clip(np.round(x), -32768, 32767).astype(np.int16)
    assert detect_digits(x) == "333", name


# ---------------------------------------------------------------------------------------------
# Input and tuning validation


def test_input_validation() -> None:
    x = generate_digits("1")
    with pytest.raises(AudioInputError, match="int32"):
        detect_digits(x.astype(np.int32))
    with pytest.raises(AudioInputError, match=r"\[-1, 1\)"):
        detect_digits(x / 8000.0)
    with pytest.raises(AudioInputError, match="NaN"):
        detect_digits(np.full(400, np.nan))
    with pytest.raises(AudioInputError, match="44100"):
        detect_digits(x, 44100)
    with pytest.raises(AudioInputError, match="1-D"):
        detect_digits(np.zeros((2, 400), np.int16))
    with pytest.raises(AudioInputError, match="numpy array"):
        detect_digits([0, 1, 2])  # type: ignore[arg-type]
    # Float input in [-1, 1) is accepted and gives the same answer as int16.
    assert detect_digits((x / 32768.0).astype(np.float32)) == "1"
    assert detect_digits(x / 32768.0) == "1"


def test_tuning_validation_names_the_field() -> None:
    with pytest.raises(TuningError, match="max_normal_twist_db") as info:
        DetectorTuning(max_normal_twist_db=-1)
    assert info.value.field == "max_normal_twist_db"
    with pytest.raises(TuningError, match="window_ms"):
        DetectorTuning(window_ms=18)
    with pytest.raises(TuningError, match="min_on_ms"):
        DetectorTuning(min_on_ms=10)
    with pytest.raises(TuningError, match="bogus"):
        detect_digits(generate_digits("1"), bogus=3)
    with pytest.raises(TuningError, match="hop_ms"):
        DetectorTuning(hop_ms=float("nan"))
    with pytest.raises(TuningError, match="must be a number"):
        DetectorTuning(min_level_dbm0="-30")  # type: ignore[arg-type]
    with pytest.raises(TuningError, match="whole number of samples"):
        detect_digits(generate_digits("1"), hop_ms=4.0625, window_ms=16.25)
    # A tuning object and keyword overrides combine.
    base = DetectorTuning(min_level_dbm0=-20)
    assert detect_digits(tones("1", level_dbm0=-25), tuning=base) == ""
    assert detect_digits(tones("1", level_dbm0=-25), tuning=base, min_level_dbm0=-30) == "1"


# ---------------------------------------------------------------------------------------------
# Through real codecs (what a relay's inband detector actually hears)


@pytest.mark.parametrize("codec", ["PCMA", "PCMU", "G729", "G723", "G722"])
def test_digits_survive_voice_codecs(codec: str) -> None:
    from vosapp.errors import VosappError
    from vosapp.media import codecs

    try:
        encoder, decoder = codecs.get(codec), codecs.get(codec)
    except VosappError as exc:  # e.g. libbcg729 not installed
        pytest.skip(str(exc))
    rate = encoder.sample_rate
    frame = int(encoder.frame_ms * rate / 1000)
    for level in (-10.0, -25.0):
        x = tones(DIGITS, rate, level_dbm0=level)
        x = np.concatenate([x, np.zeros(-len(x) % frame, np.int16)])
        assert detect_digits(decoder.decode(encoder.encode(x)), rate) == DIGITS, level
