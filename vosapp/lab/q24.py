"""The ITU-T Q.24 receiver grid, talk-off and noise tests of the inband DTMF receiver
(notebook 05), measured on generated tones and real speech.

:class:`Q24Grid` builds the test signals once (they do not depend on the tuning) and scores a
:class:`~vosapp.media.dtmf.DetectorTuning` against them: every cell sends the 16 keys once,
each in its own ~201 ms slot, and counts how many come out exactly right. All cells run as
channels of one vectorised :class:`~vosapp.media.dtmf.DtmfDetectorBank`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from vosapp.lab import quality
from vosapp.lab.plots import CompliancePanel
from vosapp.media.dtmf import DIGITS, DetectorTuning, DigitEvent, DtmfDetectorBank, generate_digits

__all__ = ["DEVIATIONS", "DURATIONS", "LEVELS", "RATE", "REPORTED", "TWISTS", "TWIST_LEVELS",
           "Q24Grid", "SpeechClips", "confusion", "digit_slots", "grid_title"]

RATE = 8000
PERIOD = 1607  # samples per digit slot (~201 ms): 7 mod 40, so the 16 start phases differ
LEAD = 400     # 50 ms of silence first

DEVIATIONS = [-4.0, -3.5, -2.5, -1.5, 0.0, 1.5, 2.5, 3.5, 4.0]   # percent, both tones
LEVELS = [0, -5, -10, -15, -20, -25, -30, -35, -40]              # dBm0 per tone
DURATIONS: dict[str, float | str] = {
    "20 ms": 20, "23 ms": 23, "28 ms": 28, "32 ms": 32, "36 ms": 36, "40 ms": 40, "50 ms": 50,
    "10 ms break": "break", "twice, 40 ms pause": "twice"}
TWISTS = [-12, -10, -8, -6, -4, 0, 2, 4, 6, 8]                    # dB, high minus low group
TWIST_LEVELS = [-5, -15]                                          # dBm0 of the louder tone

# Q.24: operate at 40 ms, reject at 23 ms; a 10 ms break is bridged, a 40 ms pause separates.
DURATION_REQUIREMENT = {"20 ms": "reject", "23 ms": "reject", "40 ms": "operate",
                        "50 ms": "operate", "10 ms break": "operate",
                        "twice, 40 ms pause": "operate"}

# What the noise test can report for a key: one key, nothing, or more than one digit.
REPORTED = [*DIGITS, "none", "extra"]


def digit_slots(on_ms: float = 100.0, level: float = -10.0, *, twist: float = 0.0,
                deviation: float = 0.0, break_ms: float = 0.0, twice: bool = False
                ) -> NDArray[np.int16]:
    """The 16 keys, one per slot, as one int16 signal.

    ``deviation`` is relative (0.015 = +1.5 %) and shifts both tones; ``break_ms`` mutes the
    tone 40 ms after its start; ``twice`` sends each key as 60 ms, a 40 ms pause, 60 ms.
    """
    out = np.zeros(LEAD + len(DIGITS) * PERIOD, np.int16)
    for slot, digit in enumerate(DIGITS):
        if twice:
            tone = generate_digits(digit * 2, RATE, on_ms=60, off_ms=40, level_dbm0=level)
        else:
            tone = generate_digits(digit, RATE, on_ms=on_ms, off_ms=0, level_dbm0=level,
                                   twist_db=twist, row_deviation=deviation,
                                   column_deviation=deviation, clip=level > -3)
            if break_ms:
                tone[320 : 320 + round(break_ms * RATE / 1000)] = 0
        start = LEAD + slot * PERIOD
        out[start : start + tone.size] = tone
    return out


def deviation_requirement(deviation_percent: float, level: float) -> str:
    """Q.24: reject at ±3.5 % and beyond; operate within ±1.5 % from 0 to -25 dBm0."""
    if abs(deviation_percent) >= 3.5:
        return "reject"
    return "operate" if abs(deviation_percent) <= 1.5 and level >= -25 else ""


def grid_title(tuning: DetectorTuning) -> str:
    """The heatmap's title: which tuning was measured (the fields that differ from default)."""
    default = DetectorTuning()
    changed = [f"{f.name}={getattr(tuning, f.name):g}" for f in fields(DetectorTuning)
               if getattr(tuning, f.name) != getattr(default, f.name)]
    return "ITU-T Q.24 receiver grid, " + (
        "default tuning" if not changed else "tuning " + ", ".join(changed))


@dataclass(frozen=True)
class Q24Grid:
    """The test signals of every cell (one row each) and how often each key must come out."""

    audio: NDArray[np.int16]
    repeats: tuple[int, ...]

    @classmethod
    def build(cls) -> Q24Grid:
        signals, repeats = [], []
        for level in LEVELS:
            for deviation in DEVIATIONS:
                signals.append(digit_slots(100, level, deviation=deviation / 100))
                repeats.append(1)
        for duration in DURATIONS.values():
            if duration == "break":
                signals.append(digit_slots(100, -10, break_ms=10))
            elif duration == "twice":
                signals.append(digit_slots(twice=True))
            else:
                signals.append(digit_slots(float(duration), -10))
            repeats.append(2 if duration == "twice" else 1)
        for level in TWIST_LEVELS:
            for twist in TWISTS:
                signals.append(digit_slots(100, level, twist=twist))
                repeats.append(1)
        return cls(np.stack(signals), tuple(repeats))

    def score(self, tuning: DetectorTuning) -> tuple[NDArray[np.int_], NDArray[np.int_]]:
        """Per cell: keys detected exactly right (right key, right count), keys detected at all."""
        bank = DtmfDetectorBank(self.audio.shape[0], RATE, tuning=tuning)
        heard: list[list[list[str]]] = [[[] for _ in DIGITS] for _ in self.repeats]
        for event in bank.feed(self.audio) + bank.flush():
            slot = int((event.start * RATE - LEAD + 200) // PERIOD)
            heard[event.channel][min(max(slot, 0), len(DIGITS) - 1)].append(event.digit)
        correct = np.array([sum(keys == [digit] * repeats
                                for keys, digit in zip(cell, DIGITS, strict=True))
                            for cell, repeats in zip(heard, self.repeats, strict=True)])
        found = np.array([sum(bool(keys) for keys in cell) for cell in heard])
        return correct, found

    def panels(self, tuning: DetectorTuning) -> list[CompliancePanel]:
        """The three panels (deviation × level, duration, twist) for ``tuning``."""
        correct, found = self.score(tuning)
        n_dev = len(LEVELS) * len(DEVIATIONS)
        n_dur = len(DURATIONS)
        shape_dev = (len(LEVELS), len(DEVIATIONS))
        shape_twist = (len(TWIST_LEVELS), len(TWISTS))
        keys = len(DIGITS)
        return [
            CompliancePanel(
                "frequency deviation × level (100 ms tones)", "deviation of both tones",
                "level per tone", [f"{d:+.1f} %" for d in DEVIATIONS],
                [f"{v} dBm0" for v in LEVELS], correct[:n_dev].reshape(shape_dev), keys,
                np.array([[deviation_requirement(d, v) for d in DEVIATIONS] for v in LEVELS]),
                found[:n_dev].reshape(shape_dev)),
            CompliancePanel(
                "duration and interruptions (−10 dBm0)", "tone", "", list(DURATIONS),
                ["−10 dBm0"], correct[n_dev : n_dev + n_dur][None, :], keys,
                np.array([[DURATION_REQUIREMENT.get(name, "") for name in DURATIONS]]),
                found[n_dev : n_dev + n_dur][None, :]),
            CompliancePanel(
                "twist (negative: low group louder = normal twist)", "twist (dB, high − low)",
                "louder tone", [f"{t:+d} dB" for t in TWISTS],
                [f"{v} dBm0" for v in TWIST_LEVELS],
                correct[n_dev + n_dur :].reshape(shape_twist), keys,
                np.array([["operate" if -8 <= t <= 4 else "" for t in TWISTS]
                          for _ in TWIST_LEVELS]),
                found[n_dev + n_dur :].reshape(shape_twist)),
        ]


@dataclass(frozen=True)
class SpeechClips:
    """Speech clips as the rows of one zero-padded matrix (one detector channel per clip)."""

    matrix: NDArray[np.int16]
    seconds: float

    @classmethod
    def load(cls, paths: Sequence[Path] | None = None) -> SpeechClips:
        """``paths`` resampled to 8 kHz; by default every clip in ``data/speech/``."""
        if paths is None:
            paths = [*sorted(quality.SPEECH_DIR.glob("espeak_*.flac")), quality.ARCTIC_CLIP]
        clips = [quality.load_audio(path, rate=RATE)[0] for path in paths]
        matrix = np.zeros((len(clips), max(clip.size for clip in clips)), np.int16)
        for row, clip in enumerate(clips):
            matrix[row, : clip.size] = clip
        return cls(matrix, sum(clip.size for clip in clips) / RATE)

    def talk_off(self, tuning: DetectorTuning, gain_db: float = 0.0) -> list[DigitEvent]:
        """The digits the receiver (wrongly) finds in the speech, ``gain_db`` hotter."""
        audio = np.clip(np.round(self.matrix * 10 ** (gain_db / 20)), -32768, 32767)
        bank = DtmfDetectorBank(self.matrix.shape[0], RATE, tuning=tuning)
        return bank.feed(audio.astype(np.int16)) + bank.flush()

    def per_minute(self, count: int) -> float:
        """``count`` false digits as a rate per minute of this speech."""
        return count / (self.seconds / 60)


def confusion(snr_db: float, tuning: DetectorTuning, *, trials: int = 12,
              level_dbm0: float = -20.0, seed: int = 7) -> NDArray[np.int_]:
    """Keys sent (rows, :data:`DIGITS`) against what was reported (columns, :data:`REPORTED`).

    Each key is sent ``trials`` times, 50 ms at ``level_dbm0`` per tone with a random start
    within a 5 ms hop, in white noise at ``snr_db`` (tone-pair power over noise power).
    """
    rng = np.random.default_rng(seed)
    slot = 2000  # 250 ms per trial
    pair_power = np.mean(generate_digits("5", RATE, on_ms=200, off_ms=0,
                                         level_dbm0=level_dbm0).astype(np.float64) ** 2)
    audio = np.zeros((len(DIGITS) * trials, slot))
    for k, digit in enumerate(DIGITS):
        tone = generate_digits(digit, RATE, on_ms=50, off_ms=0, level_dbm0=level_dbm0)
        for trial in range(trials):
            start = 400 + int(rng.integers(0, 40))
            audio[k * trials + trial, start : start + tone.size] = tone
    audio += rng.normal(0.0, np.sqrt(pair_power / 10 ** (snr_db / 10)), audio.shape)
    samples = np.clip(np.round(audio), -32768, 32767).astype(np.int16)
    bank = DtmfDetectorBank(samples.shape[0], RATE, tuning=tuning)
    heard: list[list[str]] = [[] for _ in range(samples.shape[0])]
    for event in bank.feed(samples) + bank.flush():
        heard[event.channel].append(event.digit)
    counts = np.zeros((len(DIGITS), len(REPORTED)), int)
    for channel, keys in enumerate(heard):
        column = (DIGITS.index(keys[0]) if len(keys) == 1
                  else REPORTED.index("none" if not keys else "extra"))
        counts[channel // trials, column] += 1
    return counts
