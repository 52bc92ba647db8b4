"""The ladder model: columns, arrows, markers and transactions from trace records.

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
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from vosapp.errors import VosappError
from vosapp.net import NO_ADDRESS, Address, as_address

ArrowKind = Literal["request", "provisional", "success", "failure"]
AddressFilter = str | Address | Collection[str | Address]

_RETRANSMISSION_MEMORY = 20_000  # datagram keys remembered (RFC 3261 timers end in 32 s)


class LadderError(VosappError, ValueError):
    """Bad ladder input (an unknown filter value, a record without addresses, an export)."""


class RecordLike(Protocol):
    """The fields of :class:`vosapp.trace.TraceRecord` a ladder reads (read-only: a frozen
    dataclass satisfies it)."""

    @property
    def mono(self) -> float: ...
    @property
    def wall(self) -> float: ...
    @property
    def direction(self) -> str: ...
    @property
    def transport(self) -> str: ...
    @property
    def src(self) -> Address: ...
    @property
    def dst(self) -> Address: ...
    @property
    def raw(self) -> bytes: ...
    @property
    def method(self) -> str | None: ...
    @property
    def status(self) -> int | None: ...
    @property
    def call_id(self) -> str | None: ...
    @property
    def cseq(self) -> str | None: ...
    @property
    def branch(self) -> str | None: ...
    @property
    def note(self) -> str: ...


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
        src, dst = as_address(record.src), as_address(record.dst)
        if src == NO_ADDRESS or dst == NO_ADDRESS:
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
        # A repeated datagram that is not SIP (a NAT keep-alive) is periodic, not a resend.
        retransmission = copies_before > 0 and (record.method, record.status) != (None, None)
        arrow = self._add_arrow(record, src, dst, retransmission=retransmission,
                                original=state[0] if retransmission else None)
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
        for end in (as_address(record.src), as_address(record.dst)):
            if end != NO_ADDRESS:
                column = self._column_for(end)
                break
        marker = Marker(seq, float(record.mono), float(record.wall), record.note or "event",
                        column, record.call_id, record)
        self._insert(marker)
        return marker


def build_ladder(records: Iterable[RecordLike], **options: Any) -> Ladder:
    """Build a :class:`Ladder` from records (``options`` as for :class:`Ladder`)."""
    return Ladder(records, **options)

