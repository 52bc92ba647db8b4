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


def _report(pesq: float, stoi: float = 0.9) -> QualityReport:
    return QualityReport(8000, 39, 4.875, 0.8, 4.0, "nb", pesq, stoi, 0.2, 8.98)


def test_quality_table_has_one_row_per_condition() -> None:
    fig = plots.quality_table({"G.711": _report(4.47, 0.998), "G.729A": _report(3.73)})
    (table,) = fig.data
    assert table.type == "table"
    assert table.header.values[:3] == ("condition", "scored at", "PESQ MOS-LQO")
    columns = table.cells.values
    assert list(columns[0]) == ["G.711", "G.729A"]
    assert list(columns[1]) == ["8 kHz nb", "8 kHz nb"]
    assert list(columns[2]) == ["4.47", "3.73"] and list(columns[6]) == ["4.88", "4.88"]
    with pytest.raises(QualityError, match="at least one report"):
        plots.quality_table({})


def test_loss_curve_lines_and_dashed_baselines() -> None:
    fig = plots.loss_curve([0, 1, 5], {"G.729A + concealment": [3.7, 3.4, 3.2],
                                       "G.729A + zero-fill": [3.7, 3.3, 3.0]})
    concealed, zero_fill = fig.data
    assert list(concealed.x) == [0, 1, 5] and list(zero_fill.y) == [3.7, 3.3, 3.0]
    assert concealed.line.dash == "solid" and zero_fill.line.dash == "dash"
    assert fig.layout.xaxis.title.text == "packet loss (%)"
    assert fig.layout.yaxis.title.text == "PESQ MOS-LQO"
    with pytest.raises(QualityError, match="2 values for 3 loss rates"):
        plots.loss_curve([0, 1, 5], {"short": [1.0, 2.0]})


def _panel(correct: list[list[int]], required: list[list[str]],
           detected: list[list[int]] | None = None) -> plots.CompliancePanel:
    return plots.CompliancePanel(
        "deviation × level", "deviation", "level", ["-3.5 %", "0 %", "+1.5 %"],
        ["-10 dBm0", "-25 dBm0"], np.array(correct), 16, np.array(required),
        None if detected is None else np.array(detected))


def test_compliance_panel_failures() -> None:
    required = [["reject", "operate", "operate"], ["reject", "operate", ""]]
    good = _panel([[0, 16, 16], [0, 16, 3]], required)
    assert good.compliant and not good.failures.any()
    # a reject cell fails on any detection, even of the wrong key (detected, not correct)
    bad = _panel([[0, 16, 15], [0, 16, 3]], required, detected=[[2, 16, 15], [0, 16, 3]])
    assert not bad.compliant
    assert bad.failures.tolist() == [[True, False, True], [False, False, False]]
    with pytest.raises(ValueError, match="expected \\(2, 3\\)"):
        _panel([[0, 16]], required)


def test_compliance_heatmap_cells_crosses_and_live_update() -> None:
    import plotly.graph_objects as go

    required = [["reject", "operate", "operate"], ["reject", "operate", ""]]
    passing = _panel([[0, 16, 16], [0, 16, 3]], required)
    fig = plots.compliance_heatmap([passing, passing], title="before")
    assert [t.type for t in fig.data] == ["heatmap", "scatter"] * 2
    heatmap, crosses = fig.data[0], fig.data[1]
    assert np.asarray(heatmap.z).tolist() == [[0.0, 1.0, 1.0], [0.0, 1.0, 3 / 16]]
    assert heatmap.zmin == 0 and heatmap.zmax == 1
    assert list(heatmap.text[0]) == ["rej 0/16 ✓", "op 16/16 ✓", "op 16/16 ✓"]
    assert heatmap.text[1][2] == "3/16"  # no requirement: no verdict
    assert len(crosses.x) == 0
    assert fig.layout.yaxis.autorange == "reversed"  # first row on top

    widget = go.FigureWidget(fig)
    failing = _panel([[0, 16, 12], [0, 16, 3]], required, detected=[[1, 16, 12], [0, 16, 3]])
    plots.update_compliance(widget, [failing, passing])
    assert list(widget.data[0].text[0]) == ["rej 1/16 ✗", "op 16/16 ✓", "op 12/16 ✗"]
    assert list(widget.data[1].x) == ["-3.5 %", "+1.5 %"]
    assert list(widget.data[1].y) == ["-10 dBm0", "-10 dBm0"]
    assert len(widget.data[3].x) == 0
    assert widget.layout.title.text == "before"  # kept unless a title is given ...
    plots.update_compliance(widget, [failing, passing], title="tuning min_on_ms=45")
    assert widget.layout.title.text == "tuning min_on_ms=45"  # ... then it names the tuning
    with pytest.raises(ValueError, match="expected 2"):
        plots.update_compliance(widget, [failing])


def test_confusion_heatmap_shares_of_rows() -> None:
    counts = np.array([[12, 0, 0], [1, 9, 2]])
    fig = plots.confusion_heatmap(counts, ["1", "2"], ["1", "2", "none"])
    (heatmap,) = fig.data
    assert np.asarray(heatmap.z).tolist() == [[1.0, 0.0, 0.0], [1 / 12, 0.75, 2 / 12]]
    assert list(heatmap.text[0]) == ["12", "", ""]
    assert list(heatmap.x) == ["1", "2", "none"] and list(heatmap.y) == ["1", "2"]
    with pytest.raises(ValueError, match="expected \\(2, 2\\)"):
        plots.confusion_heatmap(counts, ["1", "2"], ["1", "2"])


def test_listen_keeps_the_level_and_the_rate() -> None:
    import io
    import wave

    quiet = (_tone(1000, 0.05) * 0.1 * 32767).astype(np.int16)  # -26 dBFS peak
    player = plots.listen(quiet, RATE)
    with wave.open(io.BytesIO(player.data)) as wav:
        assert wav.getframerate() == RATE and wav.getnframes() == quiet.size
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    assert abs(int(np.abs(samples).max()) - int(np.abs(quiet).max())) <= 1  # not normalised
    panel = plots.listening_panel({"quiet": (quiet, RATE), "<b>": (quiet, 16000)})
    assert panel.data.count("<audio") == 2 and "&lt;b&gt;" in panel.data and "16 kHz" in panel.data
    with pytest.raises(QualityError, match="at least one clip"):
        plots.listening_panel({})
