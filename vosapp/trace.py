"""Every SIP message in and out, as plain records: a bounded ring, live subscribers, SQLite, pcap.

The switch core records each datagram/stream message it receives (``direction="in"``), each
one it sends (``"out"``) and noteworthy non-message happenings (``"event"``: a parse failure,
a silent drop, a suspension, an unregister outcome). Ladder diagrams, the debug trace (filter
by address, like VOS3000's) and pcap export all read these records.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import sqlite3
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, replace
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vosapp.net import NO_ADDRESS, Address
from vosapp.sip import Response
from vosapp.trace_ring import TraceRing, WireFields, WireMessage

if TYPE_CHECKING:
    from vosapp.clock import Clock
    from vosapp.sip import Request, Via
    from vosapp.store import Store

log = logging.getLogger(__name__)


#: The fields a message record reads from its bytes when first asked (:func:`sniff_fields`).
SNIFFED_FIELDS = ("method", "status", "call_id", "cseq", "branch")


@dataclass(frozen=True, slots=True, init=False)
class TraceRecord:
    """One message or event. ``raw`` is the exact bytes on the wire (empty for events).

    A message recorded by :meth:`Trace.message` is cheap to record: the trace keeps its
    :class:`~vosapp.trace_ring.WireMessage` and builds the record (``sniff=True``) when
    something reads it, and its method/status/Call-ID/CSeq/branch are read from ``raw`` the
    first time one of them is asked for (most records are never looked at), then kept."""

    mono: float
    wall: float
    direction: str  # "in" | "out" | "event"
    transport: str = ""
    src: Address = NO_ADDRESS
    dst: Address = NO_ADDRESS
    raw: bytes = b""
    method: str | None = None
    status: int | None = None
    call_id: str | None = None
    cseq: str | None = None
    branch: str | None = None
    note: str = ""

    def __init__(self, mono: float, wall: float, direction: str, transport: str = "",
                 src: Address = NO_ADDRESS, dst: Address = NO_ADDRESS, raw: bytes = b"",
                 method: str | None = None, status: int | None = None,
                 call_id: str | None = None, cseq: str | None = None,
                 branch: str | None = None, note: str = "", *, sniff: bool = False) -> None:
        """``sniff``: leave the five message fields unset, to be read from ``raw`` later
        (the values given for them are ignored)."""
        _fill_slots(self, mono, wall, direction, transport, src, dst, raw, note)
        if not sniff:
            set_field = object.__setattr__
            set_field(self, "method", method)
            set_field(self, "status", status)
            set_field(self, "call_id", call_id)
            set_field(self, "cseq", cseq)
            set_field(self, "branch", branch)

    if not TYPE_CHECKING:  # mypy keeps checking attribute names
        def __getattr__(self, name: str) -> Any:
            # Reached only for an unset slot: a sniffed field not yet read from the bytes.
            if name not in SNIFFED_FIELDS:
                raise AttributeError(name)
            fields = sniff_fields(self.raw)
            for field_name in SNIFFED_FIELDS:
                object.__setattr__(self, field_name, fields.get(field_name))
            return fields.get(name)

    @property
    def label(self) -> str:
        """What a ladder arrow says: the method, or ``status reason``-ish for responses."""
        if self.status is not None:
            return f"{self.status} ({self.cseq.split()[-1] if self.cseq else '?'})"
        return self.method or self.note

    def involves(self, address: str | Address) -> bool:
        """True when ``address`` (a host, or a (host, port)) is the source or destination."""
        if isinstance(address, str):
            return address in (self.src[0], self.dst[0])
        return tuple(address) in (tuple(self.src), tuple(self.dst))


#: The setters of the slots every record fills (the member descriptors of the class that
#: ``dataclass(slots=True)`` returns).
_SLOT_SETTERS = tuple(TraceRecord.__dict__[name].__set__ for name in (
    "mono", "wall", "direction", "transport", "src", "dst", "raw", "note"))


def _fill_slots(record: TraceRecord, mono: float, wall: float, direction: str, transport: str,
                src: Address, dst: Address, raw: bytes, note: str) -> TraceRecord:
    """Set the slots every record has. Frozen: each slot through its own descriptor
    (_SLOT_SETTERS; half the cost of object.__setattr__, which looks it up by name)."""
    (set_mono, set_wall, set_direction, set_transport, set_src, set_dst, set_raw,
     set_note) = _SLOT_SETTERS
    set_mono(record, mono)
    set_wall(record, wall)
    set_direction(record, direction)
    set_transport(record, transport)
    set_src(record, src)
    set_dst(record, dst)
    set_raw(record, raw)
    set_note(record, note)
    return record


_new_record = object.__new__

#: What the ring and the store's queue hold: a record (events, and what :meth:`Trace.add` was
#: given), or a message not yet made a record until something asks for its record: a
#: :class:`~vosapp.trace_ring.WireMessage`, or, for an address that is not a (host, port) pair
#: (an IPv6 socket's 4-tuple), the tuple (mono, wall, direction, transport, src, dst, raw,
#: note), :data:`~vosapp.trace_ring.WireFields`; either gives the arguments of
#: :func:`_fill_slots`. Most messages are never looked at (a registration records four), and
#: building the record cost ~7 thousand instructions of the ~656 thousand a registration
#: costs in process (docs/benchmarks.md, "Records as native classes, and the trace's wire
#: records").
_Held = TraceRecord | WireMessage | WireFields


def _wire_fields(held: WireMessage | WireFields) -> WireFields:
    return held if isinstance(held, tuple) else held.fields()


def _record(held: _Held) -> TraceRecord:
    """The record of what the ring holds (a message's is built here, sniffed when read)."""
    if isinstance(held, TraceRecord):
        return held
    return _fill_slots(_new_record(TraceRecord), *_wire_fields(held))


def message_fields(message: Request | Response | None, via: Via | None = None
                   ) -> dict[str, Any]:
    """The searchable fields of a parsed message (method, status, Call-ID, CSeq, branch);
    ``via``: its already parsed top Via, to save parsing it again."""
    if message is None:
        return {}
    fields: dict[str, Any] = {}
    if isinstance(message, Response):
        fields["status"] = int(message.status)
    else:
        fields["method"] = message.method
    try:
        fields["call_id"] = message.call_id
        cseq = message.cseq
        number, method = cseq.number, cseq.method
        fields["cseq"] = f"{number} {method}"
        if isinstance(message, Response):
            fields["method"] = method
        via = via if via is not None else message.top_via
        fields["branch"] = via.branch if via is not None else None
    except Exception as exc:  # noqa: BLE001 - a message missing headers is still traced
        log.debug("trace: incomplete message fields (%s)", exc)
    return fields


_FIELD = re.compile(rb"\n(via|v|call-id|i|cseq)[ \t]*:[ \t]*([^\r\n]*)", re.IGNORECASE)
_BRANCH_PARAM = re.compile(rb";[ \t]*branch[ \t]*=[ \t]*([^;, \t]+)", re.IGNORECASE)
_CSEQ_VALUE = re.compile(rb"(\d+)[ \t]+([!-~]+)")
_STATUS_LINE = re.compile(rb"SIP/2\.0[ \t]+(\d{3})\b")
_REQUEST_LINE = re.compile(rb"([!-~]+)[ \t]+\S+[ \t]+SIP/")


def sniff_fields(raw: bytes) -> dict[str, Any]:
    """Method/status, Call-ID, CSeq and top branch read straight from the bytes.

    Cheap (one regex scan of the header block, no full parse) and tolerant: a message that
    failed to parse still shows its Call-ID in the trace. Folded header lines are not unfolded.
    """
    end = raw.find(b"\r\n\r\n")
    head = raw[:end] if end >= 0 else raw[:8192]
    fields: dict[str, Any] = {}
    status = _STATUS_LINE.match(head)
    if status:
        fields["status"] = int(status.group(1))
    else:
        request = _REQUEST_LINE.match(head)
        if request:
            fields["method"] = request.group(1).decode("ascii", "replace")
    for match in _FIELD.finditer(head):
        name = match.group(1).lower()
        value = match.group(2).rstrip(b" \t")
        if name in (b"via", b"v"):
            if "branch" not in fields:
                branch = _BRANCH_PARAM.search(value.split(b",", 1)[0])
                fields["branch"] = branch.group(1).decode("utf-8", "replace") if branch else None
        elif name == b"cseq":
            cseq = _CSEQ_VALUE.match(value)
            if cseq and "cseq" not in fields:
                method = cseq.group(2).decode("ascii", "replace")
                fields["cseq"] = f"{int(cseq.group(1))} {method}"
                fields.setdefault("method", method)
        elif "call_id" not in fields:
            fields["call_id"] = value.decode("utf-8", "replace")
    if fields.get("branch", 0) is None:
        del fields["branch"]
    return fields


#: The byte budget counts each row as its raw message and note plus this much for the other
#: columns and the Call-ID index (an estimate of SQLite's per-row cost, not an exact figure).
ROW_OVERHEAD = 100
DEFAULT_MAX_PERSISTED_BYTES = 256 * 1024 * 1024
_SIZE_SQL = "length(raw) + length(CAST(note AS BLOB))"


_SCHEMA = [
    """CREATE TABLE trace_records (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        mono REAL NOT NULL, wall REAL NOT NULL, direction TEXT NOT NULL, transport TEXT,
        src_host TEXT, src_port INTEGER, dst_host TEXT, dst_port INTEGER, raw BLOB,
        method TEXT, status INTEGER, call_id TEXT, cseq TEXT, branch TEXT, note TEXT)""",
    "CREATE INDEX trace_records_call_id ON trace_records(call_id)",
    # Version 3: no Call-ID index. Call-IDs are random, so each record of a batch went into
    # its own page of the index and the commit logged that whole page: 5-6 x the WAL bytes
    # and 2-4 x the CPU per record (bench/trace_store.py), on the switch's event loop,
    # for an index no query used. :func:`load_records` finds a Call-ID by scanning the table.
    "DROP INDEX IF EXISTS trace_records_call_id",
    # Version 4: a message row read from the wire (Trace.message) leaves method, status,
    # call_id, cseq and branch NULL; load_records reads them from raw, as the ring does.
    # Sniffing them before the insert was ~4.5 of ~11.5 µs a message on the switch's event
    # loop (bench/trace_store.py). Nothing to rewrite: older rows keep their fields, and a
    # vosapp that would read the NULLs as missing refuses the newer version.
    "SELECT 4",
]


class Trace:
    """A bounded ring of :class:`TraceRecord` with live subscribers and optional SQLite copy."""

    def __init__(self, capacity: int = 10_000, *, clock: Clock | None = None,
                 store: Store | None = None, max_persisted: int = 1_000_000,
                 max_persisted_bytes: int = DEFAULT_MAX_PERSISTED_BYTES) -> None:
        if capacity < 1:
            raise ValueError(f"trace capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        #: The ring, its count and the store's queue, kept by compiled code (vosapp/trace_ring.py).
        self.wire = TraceRing(capacity, clock)
        #: Record a message on the wire: ``message(direction, transport, src, dst, raw,
        #: note="")``. Its record is built when something reads it (a reader of the ring, a
        #: subscriber: at once), and its fields (method, status, Call-ID, CSeq, branch) are read
        #: from the bytes (:func:`sniff_fields`) when first asked for: the bytes of a message
        #: that parsed always carry its Call-ID line, so its parse is not needed. The store
        #: writes it without either. The ring's own method, so that the switch's compiled
        #: code calls compiled code (TraceRing.message), with no Python frame between.
        self.message = self.wire.message
        self._subscribers: list[Callable[[TraceRecord], None]] = []
        self._store: Store | None = None
        #: The SQLite table keeps the newest this many records (older ones are pruned on flush).
        self.max_persisted = max_persisted
        #: ... and the newest records within this many bytes (:func:`stored_size`): a flood of
        #: large messages must not fill the disk before the row cap bites.
        self.max_persisted_bytes = max_persisted_bytes
        #: A prune over the byte budget deletes this many bytes more than the excess. 0: each
        #: flush deletes about what it wrote, the oldest rows. The flush runs on the switch's
        #: event loop, and the time of a DELETE grows with its rows: down to 90 % of 256 MB
        #: held the loop 130-430 ms once a full store took in 26 MB (bench/trace_store.py).
        self.prune_headroom_bytes = 0
        self._persisted_bytes = 0
        if store is not None:
            self.persist_to(store)

    # writing ----------------------------------------------------------------------
    def persist_to(self, store: Store) -> None:
        """Also write every record to ``store`` (table ``trace_records``)."""
        store.ensure_schema("trace", _SCHEMA)
        [(rows, size)] = store.query(f"SELECT COUNT(*), COALESCE(SUM({_SIZE_SQL}), 0)"
                                     " FROM trace_records")
        self._persisted_bytes = size + rows * ROW_OVERHEAD
        self._store = store
        self.wire.flush = self.flush

    @property
    def clock(self) -> Clock | None:
        """What times the records; None: the monotonic and wall clocks."""
        return self.wire.clock

    @clock.setter
    def clock(self, clock: Clock | None) -> None:
        self.wire.clock = clock

    @property
    def added(self) -> int:
        """Records ever added: the newest one's number (:meth:`numbered_since`)."""
        return self.wire.added

    @property
    def batch_size(self) -> int:
        """Records are written to SQLite in batches of this size (and on :meth:`flush`);
        64, the ring's default. A batch is written on the switch's event loop, ~8.5 µs a
        record: 64 holds the loop ~0.55 ms, where 256 held it ~2.2 ms, for ~30 % more log
        bytes per record (the table's last page is written again with each batch;
        bench/trace_store.py)."""
        return self.wire.batch_size

    @batch_size.setter
    def batch_size(self, size: int) -> None:
        self.wire.batch_size = size

    def add(self, record: TraceRecord) -> TraceRecord:
        self.wire.hold(record)
        return record

    def _publish(self, held: _Held) -> None:
        """What the ring does with what it is given while anything subscribes: a subscriber
        gets a record at once, the one the ring keeps (its fields, once read, are read for
        every later reader too)."""
        record = _record(held)
        self.wire.keep(record)
        for callback in list(self._subscribers):
            try:
                callback(record)
            except Exception:
                log.exception("trace subscriber %r failed", callback)

    def flush(self) -> int:
        """Write pending records to SQLite (one transaction); returns how many."""
        wire = self.wire
        if self._store is None or not wire.pending:
            return 0
        batch, wire.pending = wire.pending, []
        try:
            with self._store.transaction() as db:
                written = _insert(db, batch)
                self._persisted_bytes += sum(map(_stored_size, written))
                self._prune(db)
        except Exception:  # persistence must never take the switch down
            log.exception("could not persist %d trace records", len(batch))
            return 0
        return len(written)

    def _prune(self, db: sqlite3.Connection) -> None:
        """Delete the oldest rows beyond ``max_persisted`` rows or ``max_persisted_bytes``."""
        [(newest,)] = db.execute("SELECT COALESCE(MAX(id), 0) FROM trace_records").fetchall()
        cutoff = newest - self.max_persisted
        freed = 0
        if self._persisted_bytes > self.max_persisted_bytes:
            excess = (self._persisted_bytes - self.max_persisted_bytes
                      + self.prune_headroom_bytes)
            for row_id, size in db.execute(f"SELECT id, {_SIZE_SQL} FROM trace_records"
                                           " ORDER BY id"):
                if freed >= excess:
                    break
                cutoff = max(cutoff, row_id)
                freed += size + ROW_OVERHEAD
        if cutoff <= 0:
            return
        [(rows, size)] = db.execute(f"SELECT COUNT(*), COALESCE(SUM({_SIZE_SQL}), 0)"
                                    " FROM trace_records WHERE id <= ?", (cutoff,)).fetchall()
        db.execute("DELETE FROM trace_records WHERE id <= ?", (cutoff,))
        self._persisted_bytes -= size + rows * ROW_OVERHEAD

    def _times(self) -> tuple[float, float]:
        if self.clock is None:
            import time

            return time.monotonic(), time.time()
        return self.clock.now(), self.clock.wall()

    def event(self, text: str, **fields: Any) -> TraceRecord:
        """Record a non-message event; ``fields`` are TraceRecord fields (call_id, src, …)."""
        mono, wall = self._times()
        return self.add(TraceRecord(mono, wall, "event", note=text, **fields))

    # reading ----------------------------------------------------------------------
    def subscribe(self, callback: Callable[[TraceRecord], None]) -> Callable[[], None]:
        """Call ``callback`` with every new record; returns the function that unsubscribes."""
        self._subscribers.append(callback)
        self.wire.publish = self._publish

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)
                if not self._subscribers:
                    self.wire.publish = None

        return unsubscribe

    def records(self, *, address: str | Address | None = None, call_id: str | None = None,
                method: str | None = None, direction: str | None = None,
                since: float | None = None) -> list[TraceRecord]:
        """Records in the ring, oldest first, filtered like VOS3000's debug trace."""
        wire = self.wire
        with wire.lock:
            snapshot = list(wire.ring)
            newest = wire.added
        built = list(map(_record, snapshot))
        if not all(isinstance(held, TraceRecord) for held in snapshot):
            self._keep(built, newest)
        return list(filter_records(built, address=address, call_id=call_id, method=method,
                                   direction=direction, since=since))

    def _keep(self, built: list[TraceRecord], newest: int) -> None:
        """Put the records built from the ring (whose newest was number ``newest``) back in
        place of the messages they were built from, so that the next reader neither builds nor sniffs them again
        (a filtered read of a full ring sniffs every message once: ~60 ms for 10,000). What
        was added meanwhile stays after them; what left the ring meanwhile is not put back."""
        wire = self.wire
        with wire.lock:
            ring = wire.ring
            first_built = newest - len(built) + 1
            first_held = wire.added - len(ring) + 1
            start = max(first_built, first_held)
            newer = list(islice(ring, max(0, newest + 1 - first_held), None))
            ring.clear()
            ring.extend(built[start - first_built:])
            ring.extend(newer)

    def numbered_since(self, since: int, limit: int) -> list[tuple[int, TraceRecord]]:
        """The records numbered above ``since`` still in the ring, oldest first, at most
        ``limit``, with their numbers: the n-th record ever added is number n (from 1, never
        reused), so a reader polls with the last number it got."""
        wire = self.wire
        with wire.lock:
            newest = wire.added
            first = newest - len(wire.ring) + 1  # the oldest record still held
            start = max(since + 1, first)
            stop = min(newest, start + limit - 1)
            if stop < start:
                return []
            held = list(islice(wire.ring, start - first, stop - first + 1))
        return list(zip(range(start, stop + 1), map(_record, held), strict=True))

    def clear(self) -> None:
        with self.wire.lock:
            self.wire.ring.clear()

    def __len__(self) -> int:
        return len(self.wire.ring)

    def __iter__(self) -> Iterator[TraceRecord]:
        return iter(self.records())

    def export_pcap(self, path: str | Path, **filters: Any) -> int:
        """Write the (filtered) messages as a pcap file; returns how many packets."""
        return write_pcap(path, self.records(**filters))


def filter_records(records: Iterable[TraceRecord], *, address: str | Address | None = None,
                   call_id: str | None = None, method: str | None = None,
                   direction: str | None = None, since: float | None = None
                   ) -> Iterator[TraceRecord]:
    for record in records:
        if address is not None and not record.involves(address):
            continue
        if call_id is not None and record.call_id != call_id:
            continue
        if method is not None and (record.method or "").upper() != method.upper():
            continue
        if direction is not None and record.direction != direction:
            continue
        if since is not None and record.mono < since:
            continue
        yield record


# --------------------------------------------------------------------------- SQLite

_INSERT = ("INSERT INTO trace_records (mono, wall, direction, transport, src_host, src_port,"
           " dst_host, dst_port, raw, method, status, call_id, cseq, branch, note)"
           " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)")


def stored_size(record: TraceRecord) -> int:
    """What ``record`` counts against the byte budget (the same sum as ``_SIZE_SQL``)."""
    return _stored_size(record)


def _stored_size(held: _Held) -> int:
    if isinstance(held, tuple):
        raw, note = held[6], held[7]
    else:
        raw, note = held.raw, held.note
    return len(raw) + len(note.encode("utf-8", "surrogateescape")) + ROW_OVERHEAD


def _lossless(text: str | None) -> str | bytes | None:
    """Text as SQLite can store it. Field values decoded from the wire may carry undecodable
    bytes as surrogate escapes (e.g. 0xE7 -> U+DCE7), which SQLite's UTF-8 text refuses:
    those are stored as the original bytes (a BLOB) and :func:`_text` decodes them back."""
    if text is None:
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape")
    return text


def _text(value: str | bytes | None) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return value


#: Reads a record's Call-ID slot without the fallback that sniffs it (AttributeError when
#: unset: a message whose fields were never asked for).
_CALL_ID_SLOT = TraceRecord.__dict__["call_id"].__get__


_UNSNIFFED = (None, None, None, None, None)


def _row(held: _Held) -> tuple[Any, ...]:
    fields: tuple[Any, ...] = _UNSNIFFED  # a message nobody read is stored without them
    if isinstance(held, TraceRecord):
        record = held
        try:
            _CALL_ID_SLOT(record)
        except AttributeError:  # not yet sniffed: stored without its fields (schema 4)
            pass
        else:
            fields = (_lossless(record.method), record.status, _lossless(record.call_id),
                      _lossless(record.cseq), _lossless(record.branch))
        held = (record.mono, record.wall, record.direction, record.transport, record.src,
                record.dst, record.raw, record.note)
    mono, wall, direction, transport, src, dst, raw, note = _wire_fields(held)
    return (mono, wall, direction, transport, _lossless(src[0]), src[1], _lossless(dst[0]),
            dst[1], raw, *fields, _lossless(note))


def _insert(db: sqlite3.Connection, batch: list[_Held]) -> list[_Held]:
    """Insert ``batch``; returns the records written. One record SQLite refuses is logged and
    skipped: it must not take its whole batch with it."""
    db.execute("SAVEPOINT trace_batch")
    try:
        db.executemany(_INSERT, [_row(record) for record in batch])
    except (sqlite3.Error, ValueError, OverflowError):
        db.execute("ROLLBACK TO trace_batch")
    else:
        db.execute("RELEASE trace_batch")
        return batch
    db.execute("RELEASE trace_batch")
    written = []
    for held in batch:  # the slow path, only for a batch holding an unstorable record
        try:
            db.execute(_INSERT, _row(held))
        except (sqlite3.Error, ValueError, OverflowError) as exc:
            log.error("trace record not persisted (%s): %r", exc, _record(held))
        else:
            written.append(held)
    return written


def load_records(store: Store, *, limit: int | None = None, call_id: str | None = None
                 ) -> list[TraceRecord]:
    """Records persisted in ``store`` (oldest first): those among the newest ``limit`` when
    given, and only ``call_id``'s when given (selected by SQLite, so the other records are
    never loaded into Python).

    A message row whose five fields are NULL (schema 4: stored unsniffed) loads as a record
    that reads them from its bytes, as :meth:`Trace.message` made it."""
    store.ensure_schema("trace", _SCHEMA)
    query = ("SELECT mono, wall, direction, transport, src_host, src_port, dst_host, dst_port,"
             " raw, method, status, call_id, cseq, branch, note FROM trace_records")
    parameters: list[Any] = []
    if call_id is not None:
        # A stored Call-ID, or an unsniffed message whose bytes hold it (instr: a byte
        # search in SQLite; the candidates are sniffed below and kept only on a match).
        query += (" WHERE (call_id = ? OR (call_id IS NULL AND method IS NULL"
                  " AND status IS NULL AND instr(raw, ?) > 0))")
        parameters += [_lossless(call_id), _call_id_needle(call_id)]
        if limit:  # the Call-ID's records among the newest ``limit``, as without it
            query += (" AND id >= (SELECT MIN(id) FROM (SELECT id FROM trace_records"
                      " ORDER BY id DESC LIMIT ?))")
            parameters.append(int(limit))
            limit = None
    query += " ORDER BY id DESC"
    rows = store.query(query + (f" LIMIT {int(limit)}" if limit else ""), parameters)
    out = []
    for row in reversed(rows):
        (mono, wall, direction, transport, sh, sp, dh, dp, raw, method, status, stored_call_id,
         cseq, branch, note) = tuple(row)
        raw = bytes(raw or b"")
        fields = (method, status, stored_call_id, cseq, branch)
        record = TraceRecord(mono, wall, direction, transport or "",
                             (_text(sh) or "", sp or 0), (_text(dh) or "", dp or 0), raw,
                             _text(method), status, _text(stored_call_id), _text(cseq),
                             _text(branch), _text(note) or "",
                             sniff=direction != "event" and bool(raw) and fields == _UNSNIFFED)
        if call_id is not None and record.call_id != call_id:
            continue  # the bytes hold the Call-ID elsewhere (a body, another header)
        out.append(record)
    return out


def _call_id_needle(call_id: str) -> bytes:
    """Bytes every message carrying ``call_id`` holds: the Call-ID as sent, or, for one read
    from bytes that were not UTF-8 (:func:`sniff_fields` puts U+FFFD for them), its longest
    piece between replacement characters."""
    piece = max(call_id.split("\ufffd"), key=len)
    return piece.encode("utf-8", "surrogateescape")


# --------------------------------------------------------------------------- pcap

_PCAP_GLOBAL = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)  # linktype 1: Ethernet
_MAC_A = bytes.fromhex("020000000001")
_MAC_B = bytes.fromhex("020000000002")


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return ipaddress.ip_address("127.0.0.1")  # hostnames: pcap needs some address


def _frame(record: TraceRecord, tcp_seq: dict[tuple[Address, Address], int]) -> bytes:
    src_ip, dst_ip = _ip(record.src[0]), _ip(record.dst[0])
    if src_ip.version != dst_ip.version:
        src_ip = ipaddress.ip_address("127.0.0.1")
        dst_ip = ipaddress.ip_address("127.0.0.1")
    payload = record.raw[:65000]
    sport, dport = record.src[1] or 5060, record.dst[1] or 5060
    if record.transport in ("TCP", "TLS"):
        key = (record.src, record.dst)
        seq = tcp_seq.get(key, 1)
        tcp_seq[key] = (seq + len(payload)) & 0xFFFFFFFF
        ack = tcp_seq.get((record.dst, record.src), 1)
        l4 = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, 0x18, 65535, 0, 0)
        proto = 6
    else:
        l4 = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0)  # checksum 0: not computed
        proto = 17
    segment = l4 + payload
    if src_ip.version == 4:
        header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(segment), 0, 0x4000, 64, proto,
                             0, src_ip.packed, dst_ip.packed)
        header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
        ethertype = 0x0800
    else:
        header = struct.pack("!IHBB16s16s", 6 << 28, len(segment), proto, 64, src_ip.packed,
                             dst_ip.packed)
        ethertype = 0x86DD
    if proto == 6:  # TCP checksum is mandatory for tshark not to flag the segment
        if src_ip.version == 4:
            pseudo = src_ip.packed + dst_ip.packed + struct.pack("!BBH", 0, 6, len(segment))
        else:
            pseudo = src_ip.packed + dst_ip.packed + struct.pack("!IxxxB", len(segment), 6)
        csum = _checksum(pseudo + segment)
        segment = segment[:16] + struct.pack("!H", csum) + segment[18:]
    return _MAC_B + _MAC_A + struct.pack("!H", ethertype) + header + segment


def write_pcap(path: str | Path, records: Iterable[TraceRecord]) -> int:
    """Write messages (events are skipped) as Ethernet/IP/UDP-or-TCP frames."""
    tcp_seq: dict[tuple[Address, Address], int] = {}
    count = 0
    with open(path, "wb") as out:
        out.write(_PCAP_GLOBAL)
        for record in records:
            if record.direction == "event" or not record.raw:
                continue
            frame = _frame(record, tcp_seq)
            seconds = int(record.wall)
            micros = round((record.wall - seconds) * 1e6) % 1_000_000
            out.write(struct.pack("<IIII", seconds, micros, len(frame), len(frame)))
            out.write(frame)
            count += 1
    return count


def records_to_json(records: Iterable[TraceRecord]) -> str:
    """A JSON list (raw as text) for notebooks and the CLI."""
    rows = []
    for record in records:
        row = asdict(record)
        row["raw"] = record.raw.decode("utf-8", "replace")
        rows.append(row)
    return json.dumps(rows, indent=1)


__all__ = ["Trace", "TraceRecord", "filter_records", "load_records", "message_fields",
           "records_to_json", "replace", "sniff_fields", "write_pcap"]
