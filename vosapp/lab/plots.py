"""Plotly figures for audio investigations: waveforms, spectrograms, quality charts.

Every function takes already-computed data (samples, :class:`~vosapp.lab.quality.QualityReport`)
and returns a ``plotly.graph_objects.Figure``; nothing here measures anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from vosapp.lab.quality import QualityError, QualityReport, spectrogram, to_float

if TYPE_CHECKING:
    import plotly.graph_objects as go

__all__ = ["quality_chart", "spectrograms", "waveforms"]

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
        yaxis={"title": "PESQ MOS-LQO", "range": [1, 4.8]},
        yaxis2={"title": "STOI", "overlaying": "y", "side": "right", "range": [0, 1.05]},
        legend={"orientation": "h", "y": 1.08},
    )
    return fig
