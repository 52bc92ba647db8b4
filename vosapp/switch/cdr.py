"""Call detail records (SPEC §4): one row per call attempt, in SQLite (component "cdr").

A :class:`CdrRecord` is filled in by the B2BUA while the call runs and written once when the
call ends (:meth:`CdrWriter.write`). Times are Unix seconds (``clock.wall()``); ``answer_time``
is None for a call that was never answered. ``gateways_tried`` lists every routing gateway an
INVITE was sent to, in order, with the status it answered (``"carrier-a:503"``,
``"carrier-b:timeout"``, ``"carrier-c:200"``).

CLI: ``vosapp cdr list [--limit N] [--json]`` reads the rows from the data directory.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vosapp.store import Store

__all__ = ["CdrRecord", "CdrWriter", "read_cdrs", "register"]

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

    @property
    def duration(self) -> float:
        if self.answer_time is None or self.end_time is None:
            return 0.0
        return max(0.0, self.end_time - self.answer_time)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["duration"] = self.duration
        return out


class CdrWriter:
    """Writes finished :class:`CdrRecord` rows; also keeps the last ones in memory (lab)."""

    def __init__(self, store: Store | None, keep: int = 1000) -> None:
        self.store = store
        self.recent: list[CdrRecord] = []
        self.keep = keep
        if store is not None:
            store.ensure_schema("cdr", MIGRATIONS)

    def write(self, record: CdrRecord) -> None:
        self.recent.append(record)
        del self.recent[:-self.keep]
        if self.store is None:
            return
        with self.store.transaction() as db:
            db.execute(
                "INSERT INTO cdr (call_id, caller, callee, source, mapping_gateway, account, "
                "routing_gateway, gateways_tried, caller_codec, callee_codec, media_mode, "
                "setup_time, answer_time, end_time, duration, status, end_reason, dtmf_method) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (record.call_id, record.caller, record.callee, record.source,
                 record.mapping_gateway, record.account, record.routing_gateway,
                 json.dumps(record.gateways_tried), record.caller_codec, record.callee_codec,
                 record.media_mode, record.setup_time, record.answer_time,
                 record.end_time if record.end_time is not None else record.setup_time,
                 record.duration, record.status, record.end_reason, record.dtmf_method))


def read_cdrs(store: Store, limit: int | None = None) -> list[dict[str, Any]]:
    """CDR rows, newest first, as dicts (``gateways_tried`` decoded to a list)."""
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


# ------------------------------------------------------------------------------ CLI


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("cdr", help="call detail records",
                                   description="Call detail records written by vosapp serve.")
    commands = parser.add_subparsers(dest="cdr_command", required=True)
    listing = commands.add_parser("list", help="list CDRs, newest first")
    listing.add_argument("--limit", type=int, default=50, help="at most N rows (default 50)")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(func=run_list)


def _when(wall: float | None) -> str:
    if wall is None:
        return "-"
    return datetime.fromtimestamp(wall, UTC).strftime("%Y-%m-%d %H:%M:%S") + "Z"


def run_list(args: argparse.Namespace) -> int:
    from vosapp import cli_common

    config = cli_common.load_selected_config(args)
    store = cli_common.open_store(args, config, create=False)
    rows: list[dict[str, Any]] = []
    if store is not None:
        with store:
            rows = read_cdrs(store, args.limit)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    if not rows:
        print("no call detail records")
        return 0
    for row in rows:
        tried = ", ".join(row["gateways_tried"]) or "-"
        print(f"{_when(row['setup_time'])} {row['caller']} -> {row['callee']}: "
              f"{row['status']} {row['end_reason']} ({row['duration']:.1f} s)")
        print(f"  via {row['mapping_gateway'] or '-'} -> {tried}; codecs "
              f"{row['caller_codec'] or '-'}/{row['callee_codec'] or '-'} "
              f"media {row['media_mode'] or '-'}; dtmf {row['dtmf_method'] or '-'}; "
              f"Call-ID {row['call_id']}")
    return 0
