"""The plotly rendering of a :class:`~vosapp.lab.ladder.model.Ladder`: a static figure, the
trace data and layout a live widget updates in place, and HTML/SVG/PNG export."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vosapp.lab.ladder.model import Ladder, LadderError, Marker

if TYPE_CHECKING:
    import plotly.graph_objects as go


_KIND_STYLE: dict[str, tuple[str, str]] = {  # trace name -> (colour, dash)
    "request": ("#1f77b4", "solid"),
    "provisional": ("#7f7f7f", "solid"),
    "success": ("#2ca02c", "solid"),
    "failure": ("#d62728", "solid"),
    "retransmission": ("#ff7f0e", "dot"),
}
_TRACE_ORDER = ("lifelines", *_KIND_STYLE, "labels", "events")
_ROW_PX = 30


def figure_data(ladder: Ladder, max_rows: int | None) -> tuple[list[dict[str, Any]],
                                                                 dict[str, Any]]:
    """Trace data (in :data:`_TRACE_ORDER`) and layout updates for the last ``max_rows``."""
    rows = ladder.rows
    if max_rows is not None and len(rows) > max_rows:
        rows = rows[-max_rows:]
    first_row = len(ladder) - len(rows)
    origin = ladder.origin or 0.0
    n_rows = len(rows)
    bottom = first_row + max(n_rows, 1)

    lifelines: dict[str, list[Any]] = {"x": [], "y": []}
    for column in ladder.columns:
        lifelines["x"] += [column.index, column.index, None]
        lifelines["y"] += [first_row - 0.5, bottom - 0.5, None]

    segments: dict[str, dict[str, list[Any]]] = {
        name: {"x": [], "y": [], "size": []} for name in _KIND_STYLE
    }
    labels: dict[str, list[Any]] = {"x": [], "y": [], "text": [], "hovertext": []}
    events: dict[str, list[Any]] = {"x": [], "y": [], "text": [], "hovertext": []}
    for offset, row in enumerate(rows):
        y = first_row + offset
        when = f"+{row.time - origin:.3f} s"
        if isinstance(row, Marker):
            events["x"].append(row.column if row.column is not None else -0.4)
            events["y"].append(y)
            events["text"].append(row.text)
            events["hovertext"].append(f"{when}<br>{row.text}<br>Call-ID: {row.call_id or '-'}")
            continue
        segment = segments["retransmission" if row.retransmission else row.kind]
        if row.src == row.dst:  # a message to itself: a small loop
            x0 = row.src
            segment["x"] += [x0, x0 + 0.25, x0 + 0.25, x0, None]
            segment["y"] += [y - 0.2, y - 0.2, y + 0.2, y + 0.2, None]
            segment["size"] += [0, 0, 0, 11, 0]
            mid_x = x0 + 0.3
        else:
            segment["x"] += [row.src, row.dst, None]
            segment["y"] += [y, y, None]
            segment["size"] += [0, 11, 0]
            mid_x = (row.src + row.dst) / 2
        text = f"{row.label} (retransmission)" if row.retransmission else row.label
        labels["x"].append(mid_x)
        labels["y"].append(y)
        labels["text"].append(text)
        labels["hovertext"].append(
            f"{when} · {row.transport or '?'}<br>{row.first_line or row.label}"
            f"<br>Call-ID: {row.call_id or '-'}<br>CSeq: {row.cseq or '-'}"
            f"<br>branch: {row.branch or '-'} · transaction #{row.transaction}"
            + (f"<br>retransmission of #{row.original}" if row.retransmission else "")
            + (f"<br>{row.note}" if row.note else "")
        )

    data: list[dict[str, Any]] = [lifelines]
    for name in _KIND_STYLE:
        seg = segments[name]
        data.append({"x": seg["x"], "y": seg["y"], "marker.size": seg["size"]})
    data.append(labels)
    data.append(events)

    tick_rows = [first_row + offset for offset in range(n_rows)]
    layout = {
        "xaxis.tickvals": [column.index for column in ladder.columns],
        "xaxis.ticktext": [column.label for column in ladder.columns],
        "xaxis.range": [-0.6, max(len(ladder.columns) - 1, 1) + 0.6],
        "yaxis.tickvals": tick_rows,
        "yaxis.ticktext": [f"+{row.time - origin:.3f}" for row in rows],
        "yaxis.range": [bottom - 0.5, first_row - 1.0],
        "height": max(300, 120 + _ROW_PX * n_rows),
    }
    return data, layout


def apply_data(fig: Any, data: list[dict[str, Any]], layout: dict[str, Any]) -> None:
    for trace, values in zip(fig.data, data, strict=True):
        for key, value in values.items():
            if key == "marker.size":
                trace.marker.size = value
            else:
                trace[key] = value
    fig.update_layout(_nest(layout))


def _nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        head, _, tail = key.partition(".")
        if tail:
            nested.setdefault(head, {})[tail] = value
        else:
            nested[head] = value
    return nested


def empty_figure(fig_class: type, title: str | None) -> Any:
    import plotly.graph_objects as go

    fig = fig_class()
    fig.add_trace(go.Scatter(name="lifelines", mode="lines", hoverinfo="skip",
                             line={"color": "#c7c7c7", "width": 1}, showlegend=False))
    for name, (colour, dash) in _KIND_STYLE.items():
        fig.add_trace(go.Scatter(
            name=name, mode="lines+markers", hoverinfo="skip",
            line={"color": colour, "width": 1.6, "dash": dash},
            marker={"symbol": "arrow", "angleref": "previous", "color": colour, "size": 0},
        ))
    fig.add_trace(go.Scatter(
        name="labels", mode="markers+text", textposition="top center", showlegend=False,
        marker={"size": 14, "opacity": 0}, hoverinfo="text", textfont={"size": 11},
    ))
    fig.add_trace(go.Scatter(
        name="events", mode="markers+text", textposition="middle right",
        marker={"symbol": "star", "size": 11, "color": "#9467bd"}, hoverinfo="text",
        textfont={"size": 11, "color": "#9467bd"},
    ))
    fig.update_layout(
        title=title, template="plotly_white", margin={"l": 70, "r": 20, "t": 90, "b": 20},
        xaxis={"side": "top", "showgrid": False, "zeroline": False, "tickfont": {"size": 12}},
        yaxis={"title": "time (s)", "showgrid": False, "zeroline": False,
               "tickfont": {"size": 9}},
        legend={"orientation": "h", "y": -0.02, "yanchor": "top"},
        hovermode="closest",
    )
    return fig


def figure(ladder: Ladder, *, title: str | None = None, max_rows: int | None = None
           ) -> go.Figure:
    """A static plotly figure of the ladder.

    Parameters
    ----------
    ladder : Ladder
    title : str, optional
    max_rows : int, optional
        Draw only the last ``max_rows`` rows (default: all).

    Returns
    -------
    plotly.graph_objects.Figure
        Columns across the top, time downwards; hover an arrow's label for the start line,
        Call-ID, CSeq, branch and transaction.
    """
    import plotly.graph_objects as go

    fig = empty_figure(go.Figure, title)
    data, layout = figure_data(ladder, max_rows)
    apply_data(fig, data, layout)
    return fig


def export_html(ladder_or_figure: Ladder | Any, path: str | Path, *,
                title: str | None = None) -> Path:
    """Write a self-contained HTML page (plotly.js inlined, works offline)."""
    fig = figure(ladder_or_figure, title=title) if isinstance(ladder_or_figure, Ladder) \
        else ladder_or_figure
    target = Path(path)
    if target.suffix.lower() not in (".html", ".htm"):
        raise LadderError(f"{target}: HTML export needs a .html file name")
    fig.write_html(str(target), include_plotlyjs=True, full_html=True)
    return target


def export_image(ladder_or_figure: Ladder | Any, path: str | Path, *,
                 title: str | None = None) -> Path:
    """Write SVG or PNG (by extension) through ``kaleido``.

    Raises
    ------
    LadderError
        Wrong extension, or ``kaleido`` (and the browser it drives) is not available here;
        :func:`export_html` always works.
    """
    target = Path(path)
    if target.suffix.lower() not in (".svg", ".png"):
        raise LadderError(f"{target}: image export writes .svg or .png files")
    fig = figure(ladder_or_figure, title=title) if isinstance(ladder_or_figure, Ladder) \
        else ladder_or_figure
    try:
        fig.write_image(str(target))
    except Exception as error:  # kaleido missing, or no browser for it to drive
        raise LadderError(
            f"{target}: SVG/PNG export needs the 'kaleido' package and a Chrome/Chromium it"
            f" can start ({type(error).__name__}: {error}); export_html() needs neither"
        ) from error
    return target

