"""vosapp.lab.plots: figures carry the data they were given."""

from __future__ import annotations

import numpy as np
import pytest

from vosapp.lab import plots
from vosapp.lab.quality import QualityError, QualityReport

RATE = 8000


def _tone(freq: float, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(RATE * seconds)) / RATE
    return 0.5 * np.sin(2 * np.pi * freq * t)


def test_waveforms_stack_and_envelope_long_signals() -> None:
    fig = plots.waveforms({"short": _tone(440, 0.1), "long": _tone(440, 5.0)}, RATE)
    short, long = fig.data
    assert len(short.y) == 800  # drawn sample by sample
    assert len(long.y) <= 4002 and max(long.y) == pytest.approx(0.5, abs=1e-3)
    assert [a.text for a in fig.layout.annotations] == ["short", "long"]


def test_spectrograms_share_one_colour_scale() -> None:
    fig = plots.spectrograms({"a": _tone(500), "b": _tone(1500)}, RATE, floor_db=-80)
    first, second = fig.data
    assert first.zmin == second.zmin == -80 and first.zmax == 0
    peak = np.asarray(second.y)[np.argmax(np.asarray(second.z).mean(axis=1))]
    assert peak == pytest.approx(1500, abs=32)


def test_quality_chart_bars_and_errors() -> None:
    report = QualityReport(8000, 0, 0.0, 1.0, 4.0, "nb", 4.47, 0.998, 33.5, 2.36)
    fig = plots.quality_chart({"PCMA": report}, ceiling=4.55)
    assert list(fig.data[0].y) == [4.47] and list(fig.data[1].y) == [0.998]
    with pytest.raises(QualityError, match="at least one report"):
        plots.quality_chart({})
    with pytest.raises(QualityError, match="at least one signal"):
        plots.waveforms({}, RATE)
