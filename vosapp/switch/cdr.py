"""Call detail records (docs/behaviour.md §4): one row per call attempt, in SQLite (component "cdr").

A :class:`CdrRecord` is filled in by the B2BUA while the call runs. The row is written in
three steps, each one short transaction committed before the SIP message it records is sent
on (the rule the registrar follows for bindings): :meth:`CdrWriter.attempted` inserts it
(``end_time`` NULL: the call is up) before the first INVITE goes to a vendor,
:meth:`CdrWriter.answered` records the answer and the dialog state of both legs
(:class:`DialogRecord`, table ``cdr_dialogs``) before the 2xx is relayed, and
:meth:`CdrWriter.write` closes the row and forgets the dialogs. A call refused before any
INVITE left is written once, by :meth:`CdrWriter.write`.

A crash leaves the rows of the calls that were up open, with their dialogs. The switch
writes ``alive_at`` (:meth:`CdrWriter.heartbeat`) every few seconds; at the next start -- when
no other switch holds the data directory (:meth:`CdrWriter.take_over`) --
:meth:`CdrWriter.close_open` ends every open row at the last heartbeat (never before the call
was set up or answered) with end reason :data:`RESTARTED` and hands back the dialogs, so the
call feature can send each leg a BYE (:mod:`vosapp.switch.call.journal`).

Times are Unix seconds (``clock.wall()``); ``answer_time`` is None for a call that was never
answered. ``gateways_tried`` lists every routing gateway an INVITE was sent to, in order, with
the status it answered (``"carrier-a:503"``, ``"carrier-b:timeout"``, ``"carrier-c:200"``); a
gateway the switch skipped itself (e.g. its codecs cannot be met, 488) is not listed. A call to
a registered phone has no routing gateway: ``callee_account`` names the phone's account,
``callee_contact`` the Contact that answered, and ``gateways_tried`` lists each contact of the
fork as ``"<account> <contact>"``.

:func:`read_cdrs` returns the rows; ``vosapp cdr list`` (:mod:`vosapp.cli.cdr`) prints them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import sqlite3

    from vosapp.store import Store

__all__ = ["RESTARTED", "CdrRecord", "CdrWriter", "ClosedCall", "DialogRecord", "read_cdrs"]

#: The end reason of a call the switch found open when it started again (it crashed).
RESTARTED = "switch restarted"

MIGRATIONS = [
    """
    CREATE TABLE cdr (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        call_id TEXT NOT NULL,
        caller TEXT NOT NULL,
        callee TEXT NOT NULL,
        source TEXT NOT NULL,
        mapping_gateway TEXT,
        account TEXT,
        routing_gateway TEXT,
        gateways_tried TEXT NOT NULL,
        caller_codec TEXT,
        callee_codec TEXT,
        media_mode TEXT,
        setup_time REAL NOT NULL,
        answer_time REAL,
        end_time REAL NOT NULL,
        duration REAL NOT NULL,
        status INTEGER NOT NULL,
        end_reason TEXT NOT NULL,
        dtmf_method TEXT
    );
    CREATE INDEX cdr_setup ON cdr(setup_time);
    """,
    # 2: rows written while the call runs (end_time NULL = up), the dialogs needed to hang
    # up after a crash, and the switch's heartbeat.
    """
    CREATE TABLE cdr_v2 (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        call_id TEXT NOT NULL,
        caller TEXT NOT NULL,
        callee TEXT NOT NULL,
        source TEXT NOT NULL,
        mapping_gateway TEXT,
        account TEXT,
        routing_gateway TEXT,
        gateways_tried TEXT NOT NULL,
        caller_codec TEXT,
        callee_codec TEXT,
        media_mode TEXT,
        setup_time REAL NOT NULL,
        answer_time REAL,
        end_time REAL,
        duration REAL NOT NULL DEFAULT 0,
        status INTEGER NOT NULL DEFAULT 0,
        end_reason TEXT NOT NULL DEFAULT '',
        dtmf_method TEXT
    );
    INSERT INTO cdr_v2 SELECT * FROM cdr;
    DROP TABLE cdr;
    ALTER TABLE cdr_v2 RENAME TO cdr;
    CREATE INDEX cdr_setup ON cdr(setup_time);
    CREATE INDEX cdr_open ON cdr(id) WHERE end_time IS NULL;
    CREATE TABLE cdr_dialogs (
        cdr_id INTEGER NOT NULL REFERENCES cdr(id) ON DELETE CASCADE,
        side TEXT NOT NULL CHECK (side IN ('a', 'b')),
        call_id TEXT NOT NULL,
        local_tag TEXT NOT NULL,
        remote_tag TEXT NOT NULL,
        local_uri TEXT NOT NULL,
        remote_uri TEXT NOT NULL,
        remote_target TEXT NOT NULL,
        route_set TEXT NOT NULL,      -- JSON list of Route values
        cseq INTEGER NOT NULL,        -- every CSeq sent on the leg is at most this
        transport TEXT NOT NULL,
        host TEXT NOT NULL,
        port INTEGER NOT NULL,
        PRIMARY KEY (cdr_id, side)
    );
    CREATE TABLE switch_heartbeat (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        alive_at REAL NOT NULL        -- Unix time the switch last said it was running
    );
    """,
    # 3: a call to a registered phone: its account and the Contact that answered.
    """
    ALTER TABLE cdr ADD COLUMN callee_account TEXT;
    ALTER TABLE cdr ADD COLUMN callee_contact TEXT;
    """,
]


@dataclass
class CdrRecord:
    """One call attempt, as the B2BUA saw it."""

    call_id: str
    caller: str
    callee: str
    source: str
    setup_time: float
    mapping_gateway: str | None = None
    account: str | None = None
    routing_gateway: str | None = None  # the one that answered (or the last tried)
    gateways_tried: list[str] = field(default_factory=list)
    caller_codec: str | None = None
    callee_codec: str | None = None
    media_mode: str | None = None  # "direct", "relay", "transcode"
    answer_time: float | None = None
    end_time: float | None = None
    status: int = 0  # final status sent to the caller (200 for an answered call)
    end_reason: str = ""
    dtmf_method: str | None = None
    callee_account: str | None = None  # the dialled number is this registered account
    callee_contact: str | None = None  # ... and this binding answered
    row_id: int | None = None  # the store's row, once written

    @property
    def duration(self) -> float:
        if self.answer_time is None or self.end_time is None:
            return 0.0
        return max(0.0, self.end_time - self.answer_time)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["duration"] = self.duration
        return out


@dataclass(frozen=True)
class DialogRecord:
    """What it takes to send a BYE on one leg of an answered call (RFC 3261 §12.2.1.1):
    the dialog's identifiers, URIs and route set as header text, a CSeq no request on the
    leg has gone beyond, and where the leg's requests go."""

    side: str  # "a" (caller) or "b" (vendor)
    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: str
    remote_uri: str
    remote_target: str
    route_set: tuple[str, ...]
    cseq: int
    transport: str
    host: str
    port: int


@dataclass(frozen=True)
class ClosedCall:
    """A call :meth:`CdrWriter.close_open` found open and closed."""

    row_id: int
    call_id: str
    callee: str
    end_time: float
    dialogs: tuple[DialogRecord, ...]


# Constant SQL strings: sqlite3 keeps them prepared in its per-connection statement cache.
_INSERT_SQL = (
    "INSERT INTO cdr (call_id, caller, callee, source, mapping_gateway, account, "
    "routing_gateway, gateways_tried, caller_codec, callee_codec, media_mode, setup_time, "
    "answer_time, end_time, duration, status, end_reason, dtmf_method, callee_account, "
    "callee_contact) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)")
_UPDATE_SQL = (
    "UPDATE cdr SET routing_gateway = ?, gateways_tried = ?, caller_codec = ?, "
    "callee_codec = ?, media_mode = ?, answer_time = ?, end_time = ?, duration = ?, "
    "status = ?, end_reason = ?, dtmf_method = ?, callee_account = ?, callee_contact = ? "
    "WHERE id = ?")
_DIALOG_SQL = (
    "INSERT OR REPLACE INTO cdr_dialogs (cdr_id, side, call_id, local_tag, remote_tag, "
    "local_uri, remote_uri, remote_target, route_set, cseq, transport, host, port) "
    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)")
_DIALOG_UPDATE_SQL = (
    "UPDATE cdr_dialogs SET remote_target = ?, cseq = ? WHERE cdr_id = ? AND side = ?")
_FORGET_DIALOGS_SQL = "DELETE FROM cdr_dialogs WHERE cdr_id = ?"
_HEARTBEAT_SQL = ("INSERT INTO switch_heartbeat (id, alive_at) VALUES (1, ?) "
                  "ON CONFLICT (id) DO UPDATE SET alive_at = excluded.alive_at")


def _row(record: CdrRecord) -> tuple[Any, ...]:
    return (record.call_id, record.caller, record.callee, record.source,
            record.mapping_gateway, record.account, record.routing_gateway,
            json.dumps(record.gateways_tried), record.caller_codec, record.callee_codec,
            record.media_mode, record.setup_time, record.answer_time, record.end_time,
            record.duration, record.status, record.end_reason, record.dtmf_method,
            record.callee_account, record.callee_contact)


def _changes(record: CdrRecord) -> tuple[Any, ...]:
    return (record.routing_gateway, json.dumps(record.gateways_tried), record.caller_codec,
            record.callee_codec, record.media_mode, record.answer_time, record.end_time,
            record.duration, record.status, record.end_reason, record.dtmf_method,
            record.callee_account, record.callee_contact, record.row_id)


def _dialog_row(row_id: int, dialog: DialogRecord) -> tuple[Any, ...]:
    return (row_id, dialog.side, dialog.call_id, dialog.local_tag, dialog.remote_tag,
            dialog.local_uri, dialog.remote_uri, dialog.remote_target,
            json.dumps(list(dialog.route_set)) if dialog.route_set else "[]",  # the usual: none
            dialog.cseq, dialog.transport, dialog.host, dialog.port)


class CdrWriter:
    """Writes :class:`CdrRecord` rows as the call goes (no store: memory only); keeps the
    last finished ones in memory (``recent``, for the lab)."""

    def __init__(self, store: Store | None, keep: int = 1000) -> None:
        self.store = store
        self.recent: list[CdrRecord] = []
        self.keep = keep
        if store is not None:
            store.ensure_schema("cdr", MIGRATIONS)

    def attempted(self, record: CdrRecord) -> None:
        """Insert the row of a call that is about to reach a vendor (still open)."""
        if self.store is None or record.row_id is not None:
            return
        with self.store.transaction() as db:
            record.row_id = db.execute(_INSERT_SQL, _row(record)).lastrowid

    def answered(self, record: CdrRecord, dialogs: list[DialogRecord]) -> None:
        """Record the answer and the dialogs of both legs, in one transaction."""
        if self.store is None:
            return
        with self.store.transaction() as db:
            self._save(db, record)
            assert record.row_id is not None
            db.executemany(_DIALOG_SQL, [_dialog_row(record.row_id, d) for d in dialogs])

    def dialog_changed(self, record: CdrRecord, side: str, remote_target: str,
                       cseq: int) -> None:
        """A leg's remote target moved (target refresh) or its CSeq ceiling was raised."""
        if self.store is None or record.row_id is None:
            return
        with self.store.transaction() as db:
            db.execute(_DIALOG_UPDATE_SQL, (remote_target, cseq, record.row_id, side))

    def write(self, record: CdrRecord) -> None:
        """The call has ended: close its row (insert it when none was written yet) and forget
        its dialogs."""
        self.recent.append(record)
        del self.recent[:-self.keep]
        if self.store is None:
            return
        if record.end_time is None:
            record.end_time = record.setup_time
        with self.store.transaction() as db:
            if record.row_id is not None:
                db.execute(_FORGET_DIALOGS_SQL, (record.row_id,))
            self._save(db, record)

    @staticmethod
    def _save(db: sqlite3.Connection, record: CdrRecord) -> None:
        if record.row_id is None:
            record.row_id = db.execute(_INSERT_SQL, _row(record)).lastrowid
        else:
            db.execute(_UPDATE_SQL, _changes(record))

    def take_over(self) -> bool:
        """Whether this writer may close what a crash left open and keep the heartbeat: it
        holds the data directory's "calls" lock (:meth:`Store.claim`), so no other switch
        runs on it (that one's open calls are live, not left over)."""
        return self.store is not None and self.store.claim("calls")

    def heartbeat(self, wall: float) -> None:
        """The switch is alive at ``wall`` (the end time of the calls a crash leaves open)."""
        if self.store is None:
            return
        with self.store.transaction() as db:
            db.execute(_HEARTBEAT_SQL, (wall,))

    def last_heartbeat(self) -> float | None:
        if self.store is None:
            return None
        rows = self.store.query("SELECT alive_at FROM switch_heartbeat WHERE id = 1")
        return float(rows[0][0]) if rows else None

    def close_open(self, reason: str = RESTARTED) -> list[ClosedCall]:
        """End every open row (a call the previous run of the switch left up) at the last
        heartbeat -- not before its setup or answer time -- with ``reason``; forget their
        dialogs and return them. One transaction."""
        if self.store is None:
            return []
        closed: list[ClosedCall] = []
        with self.store.transaction() as db:
            beat = db.execute("SELECT alive_at FROM switch_heartbeat WHERE id = 1").fetchone()
            alive_at = float(beat[0]) if beat else None
            rows = db.execute("SELECT id, call_id, callee, setup_time, answer_time FROM cdr "
                              "WHERE end_time IS NULL ORDER BY id").fetchall()
            for row_id, call_id, callee, setup_time, answer_time in rows:
                start = answer_time if answer_time is not None else setup_time
                end = max(start, alive_at) if alive_at is not None else start
                duration = end - answer_time if answer_time is not None else 0.0
                db.execute("UPDATE cdr SET end_time = ?, duration = ?, end_reason = ? "
                           "WHERE id = ?", (end, duration, reason, row_id))
                dialogs = tuple(
                    DialogRecord(side, cid, lt, rt, lu, ru, target, tuple(json.loads(routes)),
                                 cseq, transport, host, port)
                    for side, cid, lt, rt, lu, ru, target, routes, cseq, transport, host, port
                    in db.execute("SELECT side, call_id, local_tag, remote_tag, local_uri, "
                                  "remote_uri, remote_target, route_set, cseq, transport, "
                                  "host, port FROM cdr_dialogs WHERE cdr_id = ? ORDER BY side",
                                  (row_id,)))
                db.execute(_FORGET_DIALOGS_SQL, (row_id,))
                closed.append(ClosedCall(row_id, call_id, callee, end, dialogs))
        return closed


def read_cdrs(store: Store, limit: int | None = None) -> list[dict[str, Any]]:
    """CDR rows, newest first, as dicts (``gateways_tried`` decoded to a list). A call still
    up has ``end_time`` None."""
    if store.schema_version("cdr") == 0:
        return []
    sql = "SELECT * FROM cdr ORDER BY id DESC"
    params: tuple[Any, ...] = ()
    if limit is not None:
        sql += " LIMIT ?"
        params = (limit,)
    rows = []
    for row in store.query(sql, params):
        item = dict(row)
        item["gateways_tried"] = json.loads(item["gateways_tried"])
        rows.append(item)
    return rows

