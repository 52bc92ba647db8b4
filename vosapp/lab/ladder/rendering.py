"""The plotly rendering of a :class:`~vosapp.lab.ladder.model.Ladder`: a static figure, the
trace data and layout a live widget updates in place, and HTML/SVG/PNG export."""

from __future__ import annotations

import textwrap
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
# Column names stay horizontal (plotly would rotate long ones up into the title): they wrap
# at spaces instead, and the top margin grows by one line per wrapped line, below the title.
_COLUMN_CHARS = 18
_COLUMN_LINE_PX = 16
_TITLE_PX = 44  # the title block at the top of the figure (17 px font + padding)
_TOP_PAD_PX = 14
# Event texts wrap too, and are written towards the side of their column with more room.
_EVENT_CHARS = 48
_X_PAD = 0.6  # x axis range beyond the first and last columns


def wrap(text: str, width: int) -> str:
    """``text`` broken at spaces into lines of about ``width`` characters (plotly ``<br>``)."""
    return "<br>".join(textwrap.wrap(text, width, break_long_words=False,
                                     break_on_hyphens=False)) or text


def _extra_lines(texts: list[str]) -> int:
    return max((text.count("<br>") for text in texts), default=0)


def top_margin(column_labels: list[str], titled: bool) -> int:
    """Pixels above the plot for the title (if any) and the tallest wrapped column name."""
    lines = 1 + _extra_lines(column_labels)
    return (_TITLE_PX if titled else 0) + _TOP_PAD_PX + _COLUMN_LINE_PX * lines


def figure_data(ladder: Ladder, max_rows: int | None, *, titled: bool = False
                ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Trace data (in :data:`_TRACE_ORDER`) and layout updates for the last ``max_rows``."""
    rows = ladder.rows
    if max_rows is not None and len(rows) > max_rows:
        rows = rows[-max_rows:]
    first_row = len(ladder) - len(rows)
    origin = ladder.origin or 0.0
    n_rows = len(rows)
    bottom = first_row + max(n_rows, 1)

    x_min, x_max = -_X_PAD, max(len(ladder.columns) - 1, 1) + _X_PAD
    lifelines: dict[str, list[Any]] = {"x": [], "y": []}
    for column in ladder.columns:
        lifelines["x"] += [column.index, column.index, None]
        lifelines["y"] += [first_row - 0.5, bottom - 0.5, None]

    segments: dict[str, dict[str, list[Any]]] = {
        name: {"x": [], "y": [], "size": []} for name in _KIND_STYLE
    }
    labels: dict[str, list[Any]] = {"x": [], "y": [], "text": [], "hovertext": []}
    events: dict[str, list[Any]] = {"x": [], "y": [], "text": [], "hovertext": [],
                                    "textposition": []}
    for offset, row in enumerate(rows):
        y = first_row + offset
        when = f"+{row.time - origin:.3f} s"
        if isinstance(row, Marker):
            x = row.column if row.column is not None else -0.4
            events["x"].append(x)
            events["y"].append(y)
            events["text"].append(wrap(row.text, _EVENT_CHARS))
            # Towards the wider side, so a text on the last column is not cut at the edge.
            events["textposition"].append("middle left" if x_max - x < x - x_min
                                          else "middle right")
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
    column_labels = [wrap(column.label, _COLUMN_CHARS) for column in ladder.columns]
    layout = {
        "xaxis.tickvals": [column.index for column in ladder.columns],
        "xaxis.ticktext": column_labels,
        "xaxis.range": [x_min, x_max],
        "margin.t": top_margin(column_labels, titled),
        "yaxis.tickvals": tick_rows,
        "yaxis.ticktext": [f"+{row.time - origin:.3f}" for row in rows],
        # A wrapped event text on the last row needs room below it, not the legend's.
        "yaxis.range": [bottom - 0.5 + 0.4 * _extra_lines(events["text"][-1:] if rows and
                                                          isinstance(rows[-1], Marker) else []),
                        first_row - 1.0],
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
        cliponaxis=False,
    ))
    fig.add_trace(go.Scatter(
        name="events", mode="markers+text", textposition="middle right",
        marker={"symbol": "star", "size": 11, "color": "#9467bd"}, hoverinfo="text",
        textfont={"size": 11, "color": "#9467bd"}, cliponaxis=False,
    ))
    fig.update_layout(
        # The title at the very top; the column names get their own band below it.
        title={"text": title, "y": 1, "yref": "container", "yanchor": "top",
               "pad": {"t": 12}},
        template="plotly_white",
        margin={"l": 70, "r": 20, "t": top_margin([], bool(title)), "b": 20},
        xaxis={"side": "top", "showgrid": False, "zeroline": False, "tickfont": {"size": 12},
               "tickangle": 0},
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
    data, layout = figure_data(ladder, max_rows, titled=bool(title))
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

