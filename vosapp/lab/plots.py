"""Plotly figures for audio and DTMF investigations, and listening widgets.

Every figure function takes already-computed data (samples, :class:`~vosapp.lab.quality.
QualityReport`, detection counts) and returns a ``plotly.graph_objects.Figure``; nothing here
measures anything. Plotly and IPython are imported inside the functions, so importing this
module stays cheap.

* audio: :func:`waveforms`, :func:`spectrograms`, :func:`quality_chart`, :func:`quality_table`,
  :func:`loss_curve`; :func:`listen` / :func:`listening_panel` play int16 samples at a rate;
* DTMF: :class:`CompliancePanel` + :func:`compliance_heatmap` (the ITU-T Q.24 grid, with
  :func:`update_compliance` to refresh a ``FigureWidget`` in place), :func:`confusion_heatmap`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike, NDArray

from vosapp.lab.quality import QualityError, QualityReport, spectrogram, to_float

if TYPE_CHECKING:
    import plotly.graph_objects as go
    from IPython.display import HTML, Audio

__all__ = [
    "CompliancePanel",
    "compliance_heatmap",
    "confusion_heatmap",
    "listen",
    "listening_panel",
    "loss_curve",
    "quality_chart",
    "quality_table",
    "spectrograms",
    "update_compliance",
    "waveforms",
]

_MAX_POINTS = 4000  # per waveform: a min/max envelope beyond this keeps the browser light


def _check_signals(signals: Mapping[str, ArrayLike]) -> dict[str, np.ndarray]:
    if not signals:
        raise QualityError("give at least one signal, as {name: samples}")
    return {name: to_float(samples, name=name) for name, samples in signals.items()}


def _envelope(samples: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Times and values to draw; long signals become a min/max envelope of ~4,000 points."""
    if samples.size <= _MAX_POINTS:
        return np.arange(samples.size) / rate, samples
    block = int(np.ceil(samples.size / (_MAX_POINTS / 2)))
    usable = samples[: samples.size // block * block].reshape(-1, block)
    values = np.empty(usable.shape[0] * 2)
    values[0::2] = usable.min(axis=1)
    values[1::2] = usable.max(axis=1)
    times = np.repeat(np.arange(usable.shape[0]) * block / rate, 2)
    return times, values


def waveforms(signals: Mapping[str, ArrayLike], rate: int, *, title: str | None = None
              ) -> go.Figure:
    """Stacked waveforms sharing the time axis.

    Parameters
    ----------
    signals : mapping of str to array_like
        Name -> ``int16`` or float samples, all at ``rate``.
    rate : int
        Sample rate in Hz.
    title : str, optional

    Returns
    -------
    plotly.graph_objects.Figure
    """
    from plotly.subplots import make_subplots

    floats = _check_signals(signals)
    fig = make_subplots(rows=len(floats), cols=1, shared_xaxes=True,
                        subplot_titles=list(floats), vertical_spacing=0.06)
    for row, (name, samples) in enumerate(floats.items(), start=1):
        times, values = _envelope(samples, rate)
        fig.add_scatter(x=times, y=values, name=name, mode="lines", line={"width": 1},
                        row=row, col=1)
        fig.update_yaxes(range=[-1, 1], row=row, col=1)
    fig.update_xaxes(title_text="time (s)", row=len(floats), col=1)
    fig.update_layout(title=title, height=160 * len(floats) + 80, showlegend=False,
                      template="plotly_white")
    return fig


def spectrograms(
    signals: Mapping[str, ArrayLike],
    rate: int,
    *,
    title: str | None = None,
    window_ms: float = 32.0,
    hop_ms: float = 8.0,
    floor_db: float = -90.0,
) -> go.Figure:
    """Spectrograms side by side on one colour scale (dB re a full-scale sine).

    Parameters
    ----------
    signals : mapping of str to array_like
        Name -> samples, all at ``rate``.
    rate : int
        Sample rate in Hz.
    window_ms, hop_ms, floor_db : float
        As for :func:`vosapp.lab.quality.spectrogram`.

    Returns
    -------
    plotly.graph_objects.Figure
    """
    from plotly.subplots import make_subplots

    floats = _check_signals(signals)
    fig = make_subplots(rows=1, cols=len(floats), shared_yaxes=True,
                        subplot_titles=list(floats), horizontal_spacing=0.03)
    for col, (name, samples) in enumerate(floats.items(), start=1):
        spec = spectrogram(samples, rate, window_ms=window_ms, hop_ms=hop_ms,
                           floor_db=floor_db)
        fig.add_heatmap(x=spec.times, y=spec.freqs, z=spec.power_db, zmin=floor_db, zmax=0,
                        colorscale="Viridis", name=name, showscale=(col == len(floats)),
                        colorbar={"title": "dB"}, row=1, col=col)
        fig.update_xaxes(title_text="time (s)", row=1, col=col)
    fig.update_yaxes(title_text="frequency (Hz)", row=1, col=1)
    fig.update_layout(title=title, height=380, template="plotly_white")
    return fig


def quality_chart(reports: Mapping[str, QualityReport], *, title: str | None = None,
                  ceiling: float | None = None) -> go.Figure:
    """PESQ MOS-LQO per condition as bars, STOI on a second axis.

    Parameters
    ----------
    reports : mapping of str to QualityReport
        Condition name (``"PCMA"``, ``"PCMA→G.729→PCMA"``) -> its report.
    ceiling : float, optional
        Draw a dashed line at this PESQ value (the reference compared with itself).

    Returns
    -------
    plotly.graph_objects.Figure
    """
    import plotly.graph_objects as go

    if not reports:
        raise QualityError("give at least one report, as {name: QualityReport}")
    names = list(reports)
    fig = go.Figure()
    fig.add_bar(x=names, y=[reports[n].pesq_mos_lqo for n in names], name="PESQ MOS-LQO",
                text=[f"{reports[n].pesq_mos_lqo:.2f}" for n in names], textposition="outside")
    fig.add_scatter(x=names, y=[reports[n].stoi for n in names], name="STOI", yaxis="y2",
                    mode="markers", marker={"size": 11, "symbol": "diamond"})
    if ceiling is not None:
        fig.add_hline(y=ceiling, line_dash="dash", annotation_text=f"ceiling {ceiling:.2f}")
    fig.update_layout(
        title=title, template="plotly_white",
        yaxis={"title": "PESQ MOS-LQO", "range": [1, 5.0]},  # room for labels
        yaxis2={"title": "STOI", "overlaying": "y", "side": "right", "range": [0, 1.05]},
        legend={"orientation": "h", "y": 1.08},
    )
    return fig


def quality_table(reports: Mapping[str, QualityReport], *, title: str | None = None
                  ) -> go.Figure:
    """The scores of every condition as a table (one row per condition).

    Parameters
    ----------
    reports : mapping of str to QualityReport
        Condition name -> its report.

    Returns
    -------
    plotly.graph_objects.Figure
        One ``Table`` trace: condition, scored at, PESQ MOS-LQO, STOI, segSNR, LSD, delay.
    """
    import plotly.graph_objects as go

    if not reports:
        raise QualityError("give at least one report, as {name: QualityReport}")
    names = list(reports)
    rows = [reports[n] for n in names]
    header = ["condition", "scored at", "PESQ MOS-LQO", "STOI", "segSNR (dB)", "LSD (dB)",
              "delay (ms)"]
    columns = [
        names,
        [f"{r.rate // 1000} kHz {r.pesq_mode}" for r in rows],
        [f"{r.pesq_mos_lqo:.2f}" for r in rows],
        [f"{r.stoi:.3f}" for r in rows],
        [f"{r.segmental_snr_db:.1f}" for r in rows],
        [f"{r.log_spectral_distance_db:.2f}" for r in rows],
        [f"{r.delay_ms:.2f}" for r in rows],
    ]
    fig = go.Figure(go.Table(
        columnwidth=[3, 1.2, 1.2, 1, 1, 1, 1],
        header={"values": header, "align": "left", "fill_color": "#e8edf3"},
        cells={"values": columns, "align": ["left", "left"] + ["right"] * 5},
    ))
    fig.update_layout(title=title, height=60 + 28 * (len(names) + 1) + (40 if title else 0),
                      margin={"l": 10, "r": 10, "t": 40 if title else 10, "b": 10})
    return fig


def loss_curve(
    loss_percent: Sequence[float],
    curves: Mapping[str, Sequence[float]],
    *,
    title: str | None = None,
    metric: str = "PESQ MOS-LQO",
    y_range: tuple[float, float] | None = (1.0, 4.6),
) -> go.Figure:
    """A quality metric against packet loss, one line per condition.

    Parameters
    ----------
    loss_percent : sequence of float
        The loss rates (x axis), in percent.
    curves : mapping of str to sequence of float
        Condition name (``"G.729 + concealment"``) -> one value per loss rate. Names that
        contain ``"zero"`` are drawn dashed (the no-concealment baselines).
    metric : str
        The y axis title.
    y_range : (float, float), optional
        The y axis range; ``None`` lets plotly choose.

    Returns
    -------
    plotly.graph_objects.Figure
    """
    import plotly.graph_objects as go

    x = [float(v) for v in loss_percent]
    if not x or not curves:
        raise QualityError("give loss rates and at least one curve")
    fig = go.Figure()
    for name, values in curves.items():
        y = [float(v) for v in values]
        if len(y) != len(x):
            raise QualityError(f"curve {name!r} has {len(y)} values for {len(x)} loss rates")
        fig.add_scatter(x=x, y=y, name=name, mode="lines+markers",
                        line={"dash": "dash" if "zero" in name.lower() else "solid"})
    fig.update_layout(title=title, template="plotly_white",
                      xaxis={"title": "packet loss (%)", "tickvals": x},
                      yaxis={"title": metric, "range": list(y_range) if y_range else None})
    return fig


# --------------------------------------------------------------------------- listening


def listen(samples: ArrayLike, rate: int) -> Audio:
    """A player for ``int16`` (or float) samples at ``rate``, at their true level.

    ``IPython.display.Audio`` normalises to full scale by default, which would hide level
    differences between conditions; this keeps them (``normalize=False``).
    """
    from IPython.display import Audio

    return Audio(to_float(samples), rate=int(rate), normalize=False)


def listening_panel(clips: Mapping[str, tuple[ArrayLike, int]]) -> HTML:
    """One row per clip: its name, its rate and a player.

    Parameters
    ----------
    clips : mapping of str to (samples, rate)
        Name -> (``int16`` or float samples, sample rate in Hz).

    Returns
    -------
    IPython.display.HTML
    """
    from html import escape

    from IPython.display import HTML

    if not clips:
        raise QualityError("give at least one clip, as {name: (samples, rate)}")
    rows = []
    for name, (samples, rate) in clips.items():
        player = listen(samples, rate)._repr_html_().strip()
        rows.append(f"<tr><td style='text-align:left'>{escape(name)}</td>"
                    f"<td>{int(rate) // 1000} kHz</td><td>{player}</td></tr>")
    return HTML("<table><tr><th style='text-align:left'>condition</th><th>rate</th>"
                "<th>listen</th></tr>" + "".join(rows) + "</table>")


# --------------------------------------------------------------------------- DTMF


@dataclass(frozen=True)
class CompliancePanel:
    """One grid of DTMF receiver results: how many test digits came out right per cell.

    Attributes
    ----------
    title : str
        Panel title (``"frequency deviation × level"``).
    x_title, y_title : str
        Axis titles.
    x_labels, y_labels : sequence of str
        Column and row labels.
    correct : ndarray of int, shape (len(y_labels), len(x_labels))
        Digits detected exactly as sent (once each, the right key) per cell.
    total : int
        Digits sent per cell.
    required : ndarray of str, same shape
        ``"operate"`` (every digit must be detected), ``"reject"`` (none may be) or ``""``
        (no requirement: shown for information).
    detected : ndarray of int, same shape, optional
        Digits detected at all (right or wrong key, or counted twice); what a ``"reject"``
        cell counts. Defaults to ``correct``.
    """

    title: str
    x_title: str
    y_title: str
    x_labels: Sequence[str]
    y_labels: Sequence[str]
    correct: NDArray[np.int_]
    total: int
    required: NDArray[np.str_]
    detected: NDArray[np.int_] | None = None

    def __post_init__(self) -> None:
        shape = (len(self.y_labels), len(self.x_labels))
        for name in ("correct", "required") + (("detected",) if self.detected is not None else ()):
            value = np.asarray(getattr(self, name))
            if value.shape != shape:
                raise ValueError(f"{name} has shape {value.shape}, expected {shape}")
            object.__setattr__(self, name, value)
        if self.total < 1:
            raise ValueError(f"total must be >= 1, got {self.total}")

    @property
    def found(self) -> NDArray[np.int_]:
        """Digits detected at all (``detected``, else ``correct``)."""
        return self.correct if self.detected is None else self.detected

    @property
    def failures(self) -> NDArray[np.bool_]:
        """Cells that break their requirement."""
        operate_fails = (self.required == "operate") & (self.correct < self.total)
        reject_fails = (self.required == "reject") & (self.found > 0)
        return np.asarray(operate_fails | reject_fails)

    @property
    def compliant(self) -> bool:
        """Whether every required cell holds."""
        return not bool(self.failures.any())


def _cell_text(panel: CompliancePanel) -> list[list[str]]:
    marks = {"operate": "op", "reject": "rej", "": ""}
    text = []
    for i in range(len(panel.y_labels)):
        row = []
        for j in range(len(panel.x_labels)):
            need = str(panel.required[i, j])
            count = panel.found[i, j] if need == "reject" else panel.correct[i, j]
            verdict = "" if not need else (" ✗" if panel.failures[i, j] else " ✓")
            row.append(f"{marks[need]} {count}/{panel.total}{verdict}".strip())
        text.append(row)
    return text


def _failure_points(panel: CompliancePanel) -> tuple[list[str], list[str]]:
    rows, cols = np.nonzero(panel.failures)
    return ([panel.x_labels[int(c)] for c in cols], [panel.y_labels[int(r)] for r in rows])


def compliance_heatmap(panels: Sequence[CompliancePanel], *, title: str | None = None
                       ) -> go.Figure:
    """The Q.24 compliance grid: one heatmap per panel, stacked, with failures crossed out.

    Colour is the share of test digits detected correctly (0 to 1); each cell's text gives its
    requirement (``op`` / ``rej``), the count and ✓/✗. For every panel the figure has a
    ``Heatmap`` trace followed by a ``Scatter`` of red crosses on failing cells, so
    ``fig.data[2 * k]`` and ``fig.data[2 * k + 1]`` belong to ``panels[k]``
    (:func:`update_compliance` relies on it).

    Returns
    -------
    plotly.graph_objects.Figure
    """
    from plotly.subplots import make_subplots

    if not panels:
        raise ValueError("give at least one CompliancePanel")
    heights = [len(p.y_labels) + 1.5 for p in panels]
    fig = make_subplots(rows=len(panels), cols=1, subplot_titles=[p.title for p in panels],
                        row_heights=heights, vertical_spacing=0.35 / len(panels))
    for row, panel in enumerate(panels, start=1):
        fig.add_heatmap(
            x=list(panel.x_labels), y=list(panel.y_labels), z=panel.correct / panel.total,
            zmin=0, zmax=1, text=_cell_text(panel), texttemplate="%{text}",
            colorscale=[[0.0, "#f2f2f2"], [1.0, "#3b7dd8"]], showscale=(row == 1),
            colorbar={"title": "detected", "len": 0.3, "y": 1.0, "yanchor": "top"},
            hovertemplate="%{y} / %{x}: %{text}<extra></extra>", name=panel.title,
            xgap=2, ygap=2, row=row, col=1,
        )
        fail_x, fail_y = _failure_points(panel)
        fig.add_scatter(x=fail_x, y=fail_y, mode="markers", name="fails",
                        marker={"symbol": "x-thin-open", "size": 28, "color": "#d62728",
                                "line": {"width": 3, "color": "#d62728"}},
                        hoverinfo="skip", showlegend=False, row=row, col=1)
        fig.update_xaxes(title_text=panel.x_title, type="category", row=row, col=1)
        fig.update_yaxes(title_text=panel.y_title, type="category", autorange="reversed",
                         row=row, col=1)  # first label on top, as in a table
    fig.update_layout(title=title, template="plotly_white",
                      height=int(70 * sum(heights) + 120), margin={"t": 80})
    return fig


def update_compliance(fig: go.Figure, panels: Sequence[CompliancePanel], *,
                      title: str | None = None) -> None:
    """Rewrite the cells of a :func:`compliance_heatmap` figure (or its ``FigureWidget``).

    The labels must be those the figure was drawn with; ``title``, when given, replaces the
    figure's title (it names the tuning measured). All changes go out as one update.
    """
    if len(fig.data) != 2 * len(panels):
        raise ValueError(f"figure has {len(fig.data)} traces, expected {2 * len(panels)}")
    with fig.batch_update():
        for k, panel in enumerate(panels):
            heatmap, crosses = fig.data[2 * k], fig.data[2 * k + 1]
            heatmap.z = panel.correct / panel.total
            heatmap.text = _cell_text(panel)
            crosses.x, crosses.y = _failure_points(panel)
        if title is not None:
            fig.layout.title.text = title


def confusion_heatmap(
    counts: ArrayLike,
    sent_labels: Sequence[str],
    detected_labels: Sequence[str],
    *,
    title: str | None = None,
) -> go.Figure:
    """A confusion matrix: digits sent (rows) against what the receiver reported (columns).

    Parameters
    ----------
    counts : array_like of int, shape (len(sent_labels), len(detected_labels))
        How often each sent digit was reported as each label (include columns such as
        ``"none"`` for missed digits).
    sent_labels, detected_labels : sequence of str

    Returns
    -------
    plotly.graph_objects.Figure
        One ``Heatmap``; colour is the share of the row, text the count.
    """
    import plotly.graph_objects as go

    matrix = np.asarray(counts)
    if matrix.shape != (len(sent_labels), len(detected_labels)):
        raise ValueError(f"counts has shape {matrix.shape}, expected "
                         f"{(len(sent_labels), len(detected_labels))}")
    totals = np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    text = [[str(int(v)) if v else "" for v in row] for row in matrix]
    fig = go.Figure(go.Heatmap(
        x=list(detected_labels), y=list(sent_labels), z=matrix / totals, zmin=0, zmax=1,
        text=text, texttemplate="%{text}", colorscale="Blues", xgap=1, ygap=1,
        colorbar={"title": "share of row"},
        hovertemplate="sent %{y}, reported %{x}: %{text}<extra></extra>",
    ))
    fig.update_layout(title=title, template="plotly_white", height=520, width=640,
                      xaxis={"title": "reported", "type": "category", "side": "top"},
                      yaxis={"title": "sent", "type": "category", "autorange": "reversed"})
    return fig
