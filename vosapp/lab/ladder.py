"""SIP ladder (sequence) diagrams from trace records: a model, a plotly figure, a live widget.

The model is plain data computed from :class:`vosapp.trace.TraceRecord`-shaped records, in
the manner of sngrep: one **column** per ``host:port`` (labelled with a name you give, such
as ``"switch"`` or ``"1001"``, else ``host:port``), one **arrow** per message from its
source column to its destination column, labelled with the method or ``status reason``,
and one **marker** per trace event (a suspension, a silent drop...). Rows are in time
order. Each arrow knows its **transaction** (top-Via branch + CSeq method, RFC 3261
§17.1.3/§17.2.3, an ACK for a non-2xx final response joining its INVITE transaction) and
whether it is a **retransmission** (the same bytes between the same addresses seen again).

When the switch and a lab phone share one trace, the same datagram is recorded twice,
``out`` by its sender and ``in`` by its receiver; the model draws it once.

Rendering is separate: :func:`figure` builds a static ``plotly`` figure; :class:`LiveLadder`
keeps a ``plotly.graph_objects.FigureWidget`` up to date from ``Trace.subscribe``, coalescing
new records into at most ``max_rate_hz`` redraws per second on the kernel's asyncio loop, so
a burst of messages never blocks the notebook. :func:`export_html` writes a self-contained
page; :func:`export_image` writes SVG/PNG through ``kaleido`` when it is installed.
"""

from __future__ import annotations

import asyncio
import bisect
import threading
import time as _time
from collections import OrderedDict, deque
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from vosapp.errors import VosappError
from vosapp.io.clock import LoopClock

if TYPE_CHECKING:
    import plotly.graph_objects as go

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
]

Address = tuple[str, int]
ArrowKind = Literal["request", "provisional", "success", "failure"]
AddressFilter = str | Address | Collection[str | Address]

_NO_ADDRESS: Address = ("", 0)
_RETRANSMISSION_MEMORY = 20_000  # datagram keys remembered (RFC 3261 timers end in 32 s)


class LadderError(VosappError, ValueError):
    """Bad ladder input (an unknown filter value, a record without addresses, an export)."""


class RecordLike(Protocol):
    """The fields of :class:`vosapp.trace.TraceRecord` a ladder reads."""

    mono: float
    wall: float
    direction: str
    transport: str
    src: Address
    dst: Address
    raw: bytes
    method: str | None
    status: int | None
    call_id: str | None
    cseq: str | None
    branch: str | None
    note: str


class Scheduler(Protocol):
    """What :class:`LiveLadder` needs of time (``vosapp.clock.ManualClock`` fits)."""

    def now(self) -> float: ...

    def call_later(self, delay: float, callback: Callable[[], None]) -> Any: ...


# --------------------------------------------------------------------------- model


@dataclass(frozen=True)
class Column:
    """A participant: one ``host:port``.

    Attributes
    ----------
    index : int
        Position from the left, 0-based (order of first appearance unless fixed).
    address : tuple of (str, int)
        Host and port.
    label : str
        Name shown on top of the lifeline.
    """

    index: int
    address: Address
    label: str


@dataclass(frozen=True)
class Arrow:
    """One SIP message drawn from ``src`` column to ``dst`` column.

    Attributes
    ----------
    seq : int
        Arrival order in the ladder (stable id).
    time : float
        Monotonic timestamp of the record, seconds.
    wall : float
        Wall-clock timestamp, seconds since the epoch.
    src, dst : int
        Column indices.
    label : str
        ``"INVITE"`` or ``"401 Unauthorized"``.
    first_line : str
        Start line of the message as sent (empty when the record had no bytes).
    kind : {"request", "provisional", "success", "failure"}
        For colouring: a request, a 1xx, a 2xx, or a 3xx-6xx response.
    transaction : int
        Index into :attr:`Ladder.transactions`.
    retransmission : bool
        True when the same bytes were already sent between the same addresses.
    original : int or None
        ``seq`` of the first copy, for a retransmission.
    record : object
        The trace record itself.
    """

    seq: int
    time: float
    wall: float
    src: int
    dst: int
    label: str
    first_line: str
    kind: ArrowKind
    method: str | None
    status: int | None
    call_id: str | None
    cseq: str | None
    branch: str | None
    transaction: int
    retransmission: bool
    original: int | None
    direction: str
    transport: str
    note: str
    record: Any = field(repr=False, compare=False)


@dataclass(frozen=True)
class Marker:
    """A trace event (not a message), drawn as a marker on its own row.

    Attributes
    ----------
    seq : int
        Arrival order in the ladder.
    time, wall : float
        Timestamps as in :class:`Arrow`.
    text : str
        The event's note.
    column : int or None
        The column it concerns (its source address, else destination), None when neither.
    call_id : str or None
        Call-ID the event concerns, when any.
    """

    seq: int
    time: float
    wall: float
    text: str
    column: int | None
    call_id: str | None
    record: Any = field(repr=False, compare=False)


@dataclass
class Transaction:
    """Arrows sharing a top-Via branch and CSeq method (ACK to a non-2xx joins its INVITE).

    Attributes
    ----------
    id : int
        Index in :attr:`Ladder.transactions`.
    branch : str or None
        Top-Via branch (None when the messages had none: grouped by Call-ID and CSeq).
    method : str
        The method that created the transaction.
    call_id : str or None
        Call-ID of its first message.
    arrows : list of int
        ``seq`` of its arrows, in arrival order.
    final_status : int or None
        Highest final (>= 200) status seen, None while it has none.
    """

    id: int
    branch: str | None
    method: str
    call_id: str | None
    arrows: list[int] = field(default_factory=list)
    final_status: int | None = None


def format_address(address: Address) -> str:
    """``host:port``, with brackets around an IPv6 host (``[::1]:5060``)."""
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _parse_address(value: str | Address, *, what: str) -> tuple[str, int | None]:
    """A host, ``host:port``, ``[v6]:port`` or (host, port) -> (host, port or None)."""
    if isinstance(value, tuple):
        if len(value) != 2:
            raise LadderError(f"{what} must be (host, port), got {value!r}")
        return str(value[0]), int(value[1])
    if not isinstance(value, str) or not value:
        raise LadderError(f"{what} must be a host, 'host:port' or (host, port), got {value!r}")
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    if value.count(":") == 1:
        host, _, port = value.partition(":")
        if not port.isdigit():
            raise LadderError(f"{what}: port in {value!r} is not a number")
        return host, int(port)
    return value, None  # a bare host (IPv4 or a name) or a bare IPv6 address


def _first_line(raw: bytes) -> str:
    line = raw.split(b"\r\n", 1)[0].split(b"\n", 1)[0]
    return line.decode("utf-8", "replace").strip()


def _cseq_method(record: RecordLike) -> str | None:
    if record.status is not None and record.cseq:
        return record.cseq.split()[-1].upper()
    return (record.method or "").upper() or None


class Ladder:
    """A ladder diagram as data, built from trace records (see the module docstring).

    Parameters
    ----------
    records : iterable of TraceRecord, optional
        Records to start with (any order: rows are sorted by time).
    names : mapping, optional
        Column labels: keys are ``(host, port)``, ``"host:port"`` or a bare host (then the
        label is ``name:port``); values are names such as ``"switch"`` or ``"1001"``.
    columns : sequence, optional
        Addresses whose columns come first, in this order (others follow as they appear).
    call_id : str or collection of str, optional
        Keep only messages and events of these Call-IDs.
    address : host, ``host:port``, (host, port), a name from ``names``, or a collection
        Keep only messages from or to one of these.
    method : str or collection of str, optional
        Keep only these methods (a response counts as its CSeq method), case-insensitive.
    since, until : float, optional
        Keep only records whose monotonic time is in ``[since, until]``.
    events : bool
        Draw trace events as markers (default True).

    Attributes
    ----------
    columns : list of Column
    transactions : list of Transaction
    origin : float or None
        Monotonic time of the earliest row (the diagram's time zero).
    """

    def __init__(
        self,
        records: Iterable[RecordLike] = (),
        *,
        names: Mapping[str | Address, str] | None = None,
        columns: Iterable[str | Address] = (),
        call_id: str | Collection[str] | None = None,
        address: AddressFilter | None = None,
        method: str | Collection[str] | None = None,
        since: float | None = None,
        until: float | None = None,
        events: bool = True,
    ) -> None:
        self._exact_names: dict[Address, str] = {}
        self._host_names: dict[str, str] = {}
        for key, name in (names or {}).items():
            host, port = _parse_address(key, what="a names key")
            if port is None:
                self._host_names[host] = str(name)
            else:
                self._exact_names[(host, port)] = str(name)
        self.columns: list[Column] = []
        self._column_index: dict[Address, int] = {}
        for fixed in columns:
            host, port = _parse_address(self._resolve_name(fixed), what="a columns entry")
            if port is None:
                raise LadderError(f"columns entry {fixed!r} needs a port")
            self._column_for((host, port))

        self._call_ids = None if call_id is None else (
            {call_id} if isinstance(call_id, str) else set(call_id)
        )
        self._methods = None if method is None else (
            {method.upper()} if isinstance(method, str) else {m.upper() for m in method}
        )
        self._addresses: list[tuple[str, int | None]] | None = None
        if address is not None:
            values = [address] if isinstance(address, (str, tuple)) else list(address)
            self._addresses = [
                _parse_address(self._resolve_name(value), what="address filter")
                for value in values
            ]
        if since is not None and until is not None and until < since:
            raise LadderError(f"until ({until}) is before since ({since})")
        self._since, self._until, self._events = since, until, events

        self._rows: list[Arrow | Marker] = []
        self._row_keys: list[tuple[float, int]] = []
        self._arrows: dict[int, Arrow] = {}
        self.transactions: list[Transaction] = []
        self._transaction_ids: dict[tuple[Any, ...], int] = {}
        # (src, dst, raw) -> [seq of first copy or None, count "out", count "in"]
        self._seen: OrderedDict[tuple[Address, Address, bytes], list[Any]] = OrderedDict()
        self._next_seq = 0
        self.merged = 0  # records dropped because they were the other end's view
        self.extend(records)

    # -- names and columns --------------------------------------------------------
    def _resolve_name(self, value: str | Address) -> str | Address:
        if isinstance(value, str):
            for address, name in self._exact_names.items():
                if name == value:
                    return address
        return value

    def label_for(self, address: Address) -> str:
        """The column label of ``address`` (its name, else ``host:port``)."""
        if address in self._exact_names:
            return self._exact_names[address]
        if address[0] in self._host_names:
            return f"{self._host_names[address[0]]}:{address[1]}"
        return format_address(address)

    def _column_for(self, address: Address) -> int:
        address = (str(address[0]), int(address[1]))
        index = self._column_index.get(address)
        if index is None:
            index = len(self.columns)
            self.columns.append(Column(index, address, self.label_for(address)))
            self._column_index[address] = index
        return index

    def column_of(self, address: str | Address) -> Column:
        """The column of an address (``(host, port)``, ``"host:port"`` or a name)."""
        host, port = _parse_address(self._resolve_name(address), what="address")
        if port is None or (host, port) not in self._column_index:
            known = ", ".join(column.label for column in self.columns) or "none yet"
            raise LadderError(f"no column for {address!r}; columns: {known}")
        return self.columns[self._column_index[(host, port)]]

    # -- views ----------------------------------------------------------------------
    @property
    def rows(self) -> list[Arrow | Marker]:
        """Arrows and markers in time order (ties in arrival order)."""
        return list(self._rows)

    @property
    def arrows(self) -> list[Arrow]:
        """Arrows in time order."""
        return [row for row in self._rows if isinstance(row, Arrow)]

    @property
    def markers(self) -> list[Marker]:
        """Event markers in time order."""
        return [row for row in self._rows if isinstance(row, Marker)]

    @property
    def origin(self) -> float | None:
        return self._row_keys[0][0] if self._row_keys else None

    def arrow(self, seq: int) -> Arrow:
        """The arrow with this ``seq``."""
        return self._arrows[seq]

    def __len__(self) -> int:
        return len(self._rows)

    def text(self) -> str:
        """The ladder as plain text, one row per line (for terminals, logs and asserts).

        Examples
        --------
        >>> print(ladder.text())                            # doctest: +SKIP
        +0.000 s  1001 -> switch  REGISTER  [t0]
        +0.002 s  switch -> 1001  401 Unauthorized  [t0]
        """
        origin = self.origin or 0.0
        lines = []
        for row in self._rows:
            when = f"+{row.time - origin:.3f} s"
            if isinstance(row, Marker):
                where = self.columns[row.column].label if row.column is not None else "-"
                lines.append(f"{when}  * {row.text} ({where})")
                continue
            retransmission = " (retransmission)" if row.retransmission else ""
            lines.append(
                f"{when}  {self.columns[row.src].label} -> {self.columns[row.dst].label}"
                f"  {row.label}{retransmission}  [t{row.transaction}]"
            )
        return "\n".join(lines)

    # -- building -------------------------------------------------------------------
    def extend(self, records: Iterable[RecordLike]) -> int:
        """Add records; returns how many rows were added."""
        ordered = sorted(records, key=lambda record: record.mono)
        return sum(1 for record in ordered if self.add(record) is not None)

    def _matches(self, record: RecordLike) -> bool:
        if self._since is not None and record.mono < self._since:
            return False
        if self._until is not None and record.mono > self._until:
            return False
        if self._call_ids is not None and record.call_id not in self._call_ids:
            return False
        if self._methods is not None and _cseq_method(record) not in self._methods:
            return False
        if self._addresses is not None:
            ends = (tuple(record.src), tuple(record.dst))
            if not any(
                end[0] == host and (port is None or end[1] == port)
                for host, port in self._addresses
                for end in ends
            ):
                return False
        return True

    def add(self, record: RecordLike) -> Arrow | Marker | None:
        """Add one record; returns the row drawn for it, or None (filtered out or merged).

        Raises
        ------
        LadderError
            A message record (direction ``in``/``out``) without a source or destination.
        """
        if record.direction == "event":
            if not self._events or not self._matches(record):
                return None
            return self._add_marker(record)
        if record.direction not in ("in", "out"):
            raise LadderError(
                f"record direction must be 'in', 'out' or 'event', got {record.direction!r}"
            )
        src, dst = tuple(record.src), tuple(record.dst)
        if src == _NO_ADDRESS or dst == _NO_ADDRESS:
            raise LadderError(f"a message record needs src and dst addresses, got {src}→{dst}")
        # Retransmission bookkeeping sees every message, filtered or not, so a copy that
        # passes a time filter is still known as a copy.
        key = (src, dst, bytes(record.raw)) if record.raw else (
            src, dst, repr((record.branch, record.cseq, record.method, record.status)).encode()
        )
        state = self._seen.get(key)
        if state is None:
            state = [None, 0, 0]
            self._seen[key] = state
            if len(self._seen) > _RETRANSMISSION_MEMORY:
                self._seen.popitem(last=False)
        else:
            self._seen.move_to_end(key)
        mine, other = (1, 2) if record.direction == "out" else (2, 1)
        state[mine] += 1
        if state[mine] <= state[other]:
            self.merged += 1  # the receiving (or sending) end of a datagram already drawn
            return None
        copies_before = state[mine] - 1 + state[other]
        if not self._matches(record):
            return None
        original = state[0]
        arrow = self._add_arrow(record, src, dst, retransmission=copies_before > 0,
                                original=original)
        if state[0] is None:
            state[0] = arrow.seq
        return arrow

    def _insert(self, row: Arrow | Marker) -> None:
        key = (row.time, row.seq)
        position = bisect.bisect_right(self._row_keys, key)
        self._row_keys.insert(position, key)
        self._rows.insert(position, row)

    def _transaction_for(self, record: RecordLike, seq: int) -> int:
        method = _cseq_method(record) or "?"
        if record.branch:
            key: tuple[Any, ...] = ("branch", record.branch, method)
            if method == "ACK" and ("branch", record.branch, "INVITE") in self._transaction_ids:
                key = ("branch", record.branch, "INVITE")  # ACK to a non-2xx final response
        else:
            key = ("cseq", record.call_id, record.cseq, method)
        index = self._transaction_ids.get(key)
        if index is None:
            index = len(self.transactions)
            self._transaction_ids[key] = index
            created_by = key[2] if key[0] == "branch" else method
            self.transactions.append(
                Transaction(index, record.branch, created_by, record.call_id)
            )
        transaction = self.transactions[index]
        transaction.arrows.append(seq)
        if record.status is not None and record.status >= 200:
            transaction.final_status = max(transaction.final_status or 0, record.status)
        return index

    def _add_arrow(
        self, record: RecordLike, src: Address, dst: Address, *, retransmission: bool,
        original: int | None,
    ) -> Arrow:
        seq = self._next_seq
        self._next_seq += 1
        first_line = _first_line(record.raw) if record.raw else ""
        status = record.status
        if status is None:
            kind: ArrowKind = "request"
            label = record.method or first_line.split(" ", 1)[0] or "?"
        else:
            kind = "provisional" if status < 200 else "success" if status < 300 else "failure"
            reason = first_line.split(" ", 2)[2] if first_line.count(" ") >= 2 else ""
            label = f"{status} {reason}".strip()
        arrow = Arrow(
            seq=seq, time=float(record.mono), wall=float(record.wall),
            src=self._column_for(src), dst=self._column_for(dst), label=label,
            first_line=first_line, kind=kind, method=record.method, status=status,
            call_id=record.call_id, cseq=record.cseq, branch=record.branch,
            transaction=self._transaction_for(record, seq), retransmission=retransmission,
            original=original, direction=record.direction, transport=record.transport or "",
            note=record.note or "", record=record,
        )
        self._arrows[seq] = arrow
        self._insert(arrow)
        return arrow

    def _add_marker(self, record: RecordLike) -> Marker:
        seq = self._next_seq
        self._next_seq += 1
        column = None
        for end in (tuple(record.src), tuple(record.dst)):
            if end != _NO_ADDRESS:
                column = self._column_for(end)
                break
        marker = Marker(seq, float(record.mono), float(record.wall), record.note or "event",
                        column, record.call_id, record)
        self._insert(marker)
        return marker


def build_ladder(records: Iterable[RecordLike], **options: Any) -> Ladder:
    """Build a :class:`Ladder` from records (``options`` as for :class:`Ladder`)."""
    return Ladder(records, **options)


# --------------------------------------------------------------------------- plotly

_KIND_STYLE: dict[str, tuple[str, str]] = {  # trace name -> (colour, dash)
    "request": ("#1f77b4", "solid"),
    "provisional": ("#7f7f7f", "solid"),
    "success": ("#2ca02c", "solid"),
    "failure": ("#d62728", "solid"),
    "retransmission": ("#ff7f0e", "dot"),
}
_TRACE_ORDER = ("lifelines", *_KIND_STYLE, "labels", "events")
_ROW_PX = 30


def _figure_data(ladder: Ladder, max_rows: int | None) -> tuple[list[dict[str, Any]],
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


def _apply_data(fig: Any, data: list[dict[str, Any]], layout: dict[str, Any]) -> None:
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


def _empty_figure(fig_class: type, title: str | None) -> Any:
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

    fig = _empty_figure(go.Figure, title)
    data, layout = _figure_data(ladder, max_rows)
    _apply_data(fig, data, layout)
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


# --------------------------------------------------------------------------- live


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

            self.widget = _empty_figure(go.FigureWidget, title)
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
        batch = []
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
        data, layout = _figure_data(self.ladder, self.max_rows)
        with self.widget.batch_update():
            _apply_data(self.widget, data, layout)

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
