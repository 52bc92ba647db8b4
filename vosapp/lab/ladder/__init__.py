"""SIP ladder (sequence) diagrams from trace records, as sngrep draws them.

- :mod:`.model` -- :class:`Ladder`: one column per ``host:port``, one arrow per message, one
  marker per trace event, transactions and retransmissions (plain data, no plotly).
- :mod:`.rendering` -- :func:`figure` builds a static ``plotly`` figure;
  :func:`export_html` writes a self-contained page; :func:`export_image` writes SVG/PNG
  through ``kaleido`` when it is installed.
- :mod:`.media` -- :func:`media_records`: a lab call's media events (RTP start and codec,
  DTMF sent, RFC 2833 received) as event records for the same ladder.
- :mod:`.live` -- :class:`LiveLadder` keeps a ``plotly.graph_objects.FigureWidget`` up to
  date from ``Trace.subscribe``, coalescing new records into at most ``max_rate_hz``
  redraws per second on the kernel's asyncio loop, so a burst of messages never blocks the
  notebook.
"""

from vosapp.lab.ladder.live import LiveLadder, LiveStats
from vosapp.lab.ladder.media import media_records
from vosapp.lab.ladder.model import (
    Arrow,
    Column,
    Ladder,
    LadderError,
    Marker,
    Transaction,
    build_ladder,
    format_address,
)
from vosapp.lab.ladder.rendering import export_html, export_image, figure

__all__ = [
    "Arrow",
    "Column",
    "Ladder",
    "LadderError",
    "LiveLadder",
    "LiveStats",
    "Marker",
    "Transaction",
    "build_ladder",
    "export_html",
    "export_image",
    "figure",
    "format_address",
    "media_records",
]
