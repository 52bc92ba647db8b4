"""The ``registrar_bindings`` table: its schema, and rows to and from :class:`Binding`.

Expiry times are stored as wall-clock (Unix) times so bindings survive a restart; expired rows
are ignored on read (here) and deleted by :meth:`Registrar.purge_expired`.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any, Final

from vosapp.switch.registrar.model import Binding

REGISTRAR_MIGRATIONS: Final[tuple[str, ...]] = (
    """
    CREATE TABLE registrar_bindings (
        aor TEXT NOT NULL,
        contact TEXT NOT NULL,
        expires_at REAL NOT NULL,
        q REAL,
        call_id TEXT NOT NULL,
        cseq INTEGER NOT NULL,
        transport TEXT NOT NULL DEFAULT 'udp',
        received_host TEXT NOT NULL DEFAULT '',
        received_port INTEGER NOT NULL DEFAULT 0,
        path TEXT NOT NULL DEFAULT '[]',
        user_agent TEXT NOT NULL DEFAULT '',
        registered_at REAL NOT NULL,
        PRIMARY KEY (aor, contact)
    );
    CREATE INDEX registrar_bindings_expiry ON registrar_bindings (expires_at);
    """,
    # No index on expires_at: every refresh moved the binding's entry in it (two more b-tree
    # pages written per REGISTER, ~30 us of SQLite CPU in a ~90 us transaction). Its readers
    # scan instead: the purge once a minute (~15 ms at 100,000 bindings, against ~3 ms with
    # the index) and has_binding_from (a sequential scan, ~15 ms at 100,000, was ~40-60 ms
    # through the index's random row lookups).
    """
    DROP INDEX IF EXISTS registrar_bindings_expiry;
    """,
)

# Columns in Binding's field order: rows become Bindings without a dict per row.
COLUMNS_SQL: Final = ("SELECT aor, contact, expires_at, call_id, cseq, q, transport, received_host,"
               " received_port, path, user_agent, registered_at FROM registrar_bindings")
LIVE_SQL: Final = f"{COLUMNS_SQL} WHERE aor = ?"


def bindings_from_rows(rows: Iterable[Sequence[Any]], now: float) -> list[Binding]:
    """Rows of :data:`COLUMNS_SQL` as Bindings, those expired at ``now`` left out."""
    return [Binding(a, c, expires_at, i, n, q, t, rh, rp,
                    () if path == "[]" else tuple(json.loads(path)), ua, reg)
            for a, c, expires_at, i, n, q, t, rh, rp, path, ua, reg in rows
            if expires_at > now]


def live_bindings(db: sqlite3.Connection, aor: str, now: float) -> list[Binding]:
    return bindings_from_rows(db.execute(LIVE_SQL, (aor,)), now)


#: What stands for a Contact without q (NULL in the table) among the statement's parameters:
#: a None parameter costs the sqlite3 module an adapter look-up (~3,500 instructions), a float
#: none; a q-value is 0 to 1 (RFC 3261 §20.10), so -1 is never one.
NO_Q: Final = -1.0

# An upsert that updates a refreshed binding in place (same rowid): SQLite then rewrites the
# row only, not the primary-key index as INSERT OR REPLACE (delete + insert) does; fewer pages
# per commit. The row ends up the same either way.
UPSERT_SQL: Final = (
    "INSERT INTO registrar_bindings (aor, contact, expires_at, q, call_id, cseq,"
    " transport, received_host, received_port, path, user_agent, registered_at)"
    f" VALUES (?, ?, ?, NULLIF(?, {NO_Q!r}), ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (aor, contact) DO UPDATE SET expires_at = excluded.expires_at,"
    " q = excluded.q, call_id = excluded.call_id, cseq = excluded.cseq,"
    " transport = excluded.transport, received_host = excluded.received_host,"
    " received_port = excluded.received_port, path = excluded.path,"
    " user_agent = excluded.user_agent, registered_at = excluded.registered_at")


# A refresh that changes only what every re-REGISTER changes (RFC 3261 §10.2.4: the same
# Contact again, its expiry, Call-ID, CSeq and time): six parameters instead of twelve, and
# no failed INSERT before the update (~10 % of the write's CPU, docs/benchmarks.md,
# forty-first round).
REFRESH_SQL: Final = ("UPDATE registrar_bindings SET expires_at = ?, call_id = ?, cseq = ?,"
                      " registered_at = ? WHERE aor = ? AND contact = ?")


def write(db: sqlite3.Cursor, binding: Binding, bound: Binding | None) -> None:
    """Write ``binding``, which replaces ``bound`` (the row the table holds for its AOR and
    Contact, as the registrar's memo has it; None: no such row). One statement when the row
    is there and differs only in the columns of :data:`REFRESH_SQL`, else the UPSERT; an
    UPDATE that found no row (a memo out of step with the table) is followed by the UPSERT,
    so nothing is lost either way."""
    if (bound is not None and bound.q == binding.q and bound.transport == binding.transport
            and bound.received_port == binding.received_port
            and bound.received_host == binding.received_host
            and bound.user_agent == binding.user_agent and bound.path == binding.path):
        db.execute(REFRESH_SQL, (binding.expires_at, binding.call_id, binding.cseq,
                                 binding.registered_at, binding.aor, binding.contact))
        if db.rowcount == 1:
            return
    upsert(db, binding)


def upsert(db: sqlite3.Connection | sqlite3.Cursor, binding: Binding) -> None:
    q = binding.q
    db.execute(
        UPSERT_SQL,
        (binding.aor, binding.contact, binding.expires_at, NO_Q if q is None else q,
         binding.call_id, binding.cseq, binding.transport, binding.received_host,
         binding.received_port,
         json.dumps(list(binding.path)) if binding.path else "[]", binding.user_agent,
         binding.registered_at))
