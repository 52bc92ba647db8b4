"""A ladder that follows a trace live: a plotly ``FigureWidget`` redrawn in batches on the
kernel's asyncio loop (records may arrive from any thread)."""

from __future__ import annotations

import asyncio
import threading
import time as _time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from vosapp.io.clock import LoopClock
from vosapp.lab.ladder.model import Ladder, LadderError
from vosapp.lab.ladder.rendering import apply_data, empty_figure, figure, figure_data

if TYPE_CHECKING:
    import plotly.graph_objects as go


class Scheduler(Protocol):
    """What :class:`LiveLadder` needs of time (``vosapp.clock.ManualClock`` fits)."""

    def now(self) -> float: ...

    def call_later(self, delay: float, callback: Callable[[], None]) -> Any: ...


@dataclass
class LiveStats:
    """What a :class:`LiveLadder` has done so far (for benchmarks and curiosity).

    Attributes
    ----------
    records : int
        Records received from the trace.
    flushes : int
        Redraws of the widget (each one batched update).
    max_batch : int
        Most records drawn by one redraw.
    max_flush_s, total_flush_s : float
        Longest and total time spent redrawing (``time.perf_counter``), seconds.
    """

    records: int = 0
    flushes: int = 0
    max_batch: int = 0
    max_flush_s: float = 0.0
    total_flush_s: float = 0.0


class LiveLadder:
    """A ladder that follows a trace live, as a plotly ``FigureWidget``.

    New records are queued by the trace subscription (cheap, from any thread); a redraw is
    scheduled on the event loop no sooner than ``1 / max_rate_hz`` after the previous one,
    and draws everything queued since in one ``batch_update``. A burst of a thousand
    messages is therefore a handful of redraws, and the kernel stays responsive.

    Parameters
    ----------
    trace : vosapp.trace.Trace
        Anything with ``records()`` and ``subscribe(callback) -> unsubscribe``.
    max_rate_hz : float
        Upper bound on redraws per second (default 25).
    max_rows : int or None
        Show only the newest rows (default 100; the model keeps all of them, and
        :meth:`figure` or :func:`figure` draws them all). A redraw costs roughly in
        proportion to the rows shown, mostly plotly validating the arrays.
    max_batch : int
        Most records one scheduled redraw takes (default 500); a bigger burst is drawn over
        several intervals, so no single redraw blocks the loop for long.
    scheduler : object with ``now()`` and ``call_later(delay, callback)``, optional
        Defaults to the running asyncio loop (the kernel's, in Jupyter). Tests pass a
        ``vosapp.clock.ManualClock``. With neither, every record redraws at once.
    widget : bool
        Build the ``FigureWidget`` (default True; False keeps only the model, for tests
        and headless use).
    title : str, optional
    **ladder_options
        Passed to :class:`Ladder` (``names``, ``call_id``, ``address``, ``method`` ...).

    Examples
    --------
    >>> live = LiveLadder(switch.trace, names={"127.0.0.1:5060": "switch"})  # doctest: +SKIP
    >>> live.widget                                     # display it in a cell # doctest: +SKIP
    """

    def __init__(
        self,
        trace: Any,
        *,
        max_rate_hz: float = 25.0,
        max_rows: int | None = 100,
        max_batch: int = 500,
        scheduler: Scheduler | None = None,
        widget: bool = True,
        title: str | None = None,
        **ladder_options: Any,
    ) -> None:
        if not max_rate_hz > 0:
            raise LadderError(f"max_rate_hz must be > 0, got {max_rate_hz}")
        if max_rows is not None and max_rows < 1:
            raise LadderError(f"max_rows must be >= 1 or None, got {max_rows}")
        if max_batch < 1:
            raise LadderError(f"max_batch must be >= 1, got {max_batch}")
        self.max_batch = max_batch
        self.trace = trace
        self.interval = 1.0 / max_rate_hz
        self.max_rows = max_rows
        self.title = title
        self.stats = LiveStats()
        self._options = ladder_options
        self._loop: asyncio.AbstractEventLoop | None = None
        if scheduler is None:
            try:
                self._loop = asyncio.get_running_loop()
            except RuntimeError:
                self._loop = None
            scheduler = LoopClock(self._loop) if self._loop is not None else None
        self._scheduler = scheduler
        self._loop_thread = threading.get_ident()
        self._pending: deque[Any] = deque()
        self._handle: Any = None
        self._last_flush = float("-inf")
        self._closed = False
        self.ladder = Ladder(trace.records(), **ladder_options)
        self.widget: Any = None
        if widget:
            import plotly.graph_objects as go

            self.widget = empty_figure(go.FigureWidget, title)
            self._redraw()
        self._unsubscribe: Callable[[], None] = trace.subscribe(self._on_record)

    # -- subscription side ------------------------------------------------------------
    def _on_record(self, record: Any) -> None:
        if self._closed:
            return
        self._pending.append(record)  # deque.append is atomic: safe from any thread
        if self._loop is not None and threading.get_ident() != self._loop_thread:
            self._loop.call_soon_threadsafe(self._request_flush)
        else:
            self._request_flush()

    def _request_flush(self) -> None:
        if self._closed or self._handle is not None or not self._pending:
            return
        if self._scheduler is None:
            self.flush()
            return
        delay = max(0.0, self._last_flush + self.interval - self._scheduler.now())
        self._handle = self._scheduler.call_later(delay, self._scheduled_flush)

    def _scheduled_flush(self) -> None:
        self._handle = None
        self._draw(self.max_batch)
        self._request_flush()  # a burst larger than max_batch continues next interval

    def add_records(self, records: Any) -> None:
        """Draw records that are not in the trace (e.g. a call's media events,
        :func:`~vosapp.lab.ladder.media.media_records`), like the trace's own."""
        for record in records:
            self._on_record(record)

    @property
    def pending(self) -> int:
        """Records received but not drawn yet."""
        return len(self._pending)

    # -- drawing ----------------------------------------------------------------------
    def flush(self) -> int:
        """Draw every queued record now; returns how many records were taken."""
        if self._handle is not None:  # an explicit flush replaces the scheduled one
            self._handle.cancel()
            self._handle = None
        return self._draw(None)

    def _draw(self, limit: int | None) -> int:
        batch: list[Any] = []
        while self._pending and (limit is None or len(batch) < limit):
            batch.append(self._pending.popleft())
        if self._scheduler is not None:
            self._last_flush = self._scheduler.now()
        if not batch:
            return 0
        started = _time.perf_counter()
        for record in sorted(batch, key=lambda item: item.mono):
            self.ladder.add(record)
        self._redraw()
        elapsed = _time.perf_counter() - started
        self.stats.records += len(batch)
        self.stats.flushes += 1
        self.stats.max_batch = max(self.stats.max_batch, len(batch))
        self.stats.max_flush_s = max(self.stats.max_flush_s, elapsed)
        self.stats.total_flush_s += elapsed
        return len(batch)

    def _redraw(self) -> None:
        if self.widget is None:
            return
        data, layout = figure_data(self.ladder, self.max_rows, titled=bool(self.title))
        with self.widget.batch_update():
            apply_data(self.widget, data, layout)

    def refilter(self, **ladder_options: Any) -> None:
        """Rebuild from the trace's records with other :class:`Ladder` options."""
        self.flush()
        self._options = ladder_options
        self.ladder = Ladder(self.trace.records(), **ladder_options)
        self._redraw()

    def figure(self) -> go.Figure:
        """A static copy of the current ladder (for export)."""
        return figure(self.ladder, title=self.title, max_rows=self.max_rows)

    def close(self) -> None:
        """Stop following the trace (the widget keeps its last picture)."""
        if self._closed:
            return
        self._closed = True
        self._unsubscribe()
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        if self.widget is None:
            return {"text/plain": repr(self)}
        return self.widget._repr_mimebundle_(**kwargs)

    def __repr__(self) -> str:
        return (f"<LiveLadder {len(self.ladder)} rows, {len(self.ladder.columns)} columns,"
                f" {self.stats.flushes} redraws, {self.pending} pending>")
