"""vosapp.lab.q24: the Q.24 grid signals, their scoring, talk-off and the noise test."""

from __future__ import annotations

import numpy as np
import pytest

from vosapp.lab.q24 import (
    DEVIATIONS,
    DURATIONS,
    LEAD,
    LEVELS,
    PERIOD,
    REPORTED,
    TWISTS,
    Q24Grid,
    SpeechClips,
    confusion,
    digit_slots,
    grid_title,
)
from vosapp.media.dtmf import DIGITS, DetectorTuning, detect_digits


def test_digit_slots_send_every_key_once_in_its_slot() -> None:
    audio = digit_slots(100, -10)
    assert audio.size == LEAD + 16 * PERIOD
    assert detect_digits(audio) == DIGITS
    assert not audio[:LEAD].any()
    assert detect_digits(digit_slots(twice=True)) == "".join(d * 2 for d in DIGITS)


@pytest.fixture(scope="module")
def grid() -> Q24Grid:
    return Q24Grid.build()


def test_the_default_tuning_passes_every_required_cell(grid: Q24Grid) -> None:
    cells = len(LEVELS) * len(DEVIATIONS) + len(DURATIONS) + 2 * len(TWISTS)
    assert grid.audio.shape[0] == len(grid.repeats) == cells
    panels = grid.panels(DetectorTuning())
    assert [p.compliant for p in panels] == [True, True, True]
    deviation = panels[0]
    assert deviation.correct[LEVELS.index(-10), DEVIATIONS.index(0.0)] == 16
    assert deviation.found[LEVELS.index(-10), DEVIATIONS.index(4.0)] == 0


def test_a_too_strict_duration_fails_the_40_ms_cell(grid: Q24Grid) -> None:
    duration = grid.panels(DetectorTuning(min_on_ms=45))[1]
    assert dict(zip(DURATIONS, duration.correct[0]))["40 ms"] < 16
    assert not duration.compliant


def test_grid_title_names_the_changed_fields() -> None:
    assert grid_title(DetectorTuning()) == "ITU-T Q.24 receiver grid, default tuning"
    assert grid_title(DetectorTuning(min_on_ms=45)) == \
        "ITU-T Q.24 receiver grid, tuning min_on_ms=45"


def test_talk_off_counts_false_digits_in_speech() -> None:
    speech = SpeechClips.load()
    assert speech.seconds >= 60 and speech.matrix.dtype == np.int16
    assert speech.per_minute(len(speech.talk_off(DetectorTuning()))) <= 1.0
    loose = DetectorTuning(min_on_ms=20, min_relative_peak_db=3, max_second_harmonic_db=0,
                           min_tone_to_total_db=-10)
    assert len(speech.talk_off(loose)) > 10


def test_confusion_rows_are_keys_and_count_every_trial() -> None:
    clean = confusion(30, DetectorTuning(), trials=2)
    assert clean.shape == (16, len(REPORTED)) and clean.sum() == 32
    assert np.array_equal(np.diag(clean[:, :16]), [2] * 16)
    noisy = confusion(-5, DetectorTuning(), trials=2)
    assert noisy.sum() == 32 and noisy[:, REPORTED.index("none")].sum() > 0
