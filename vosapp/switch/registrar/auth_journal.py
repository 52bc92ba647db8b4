"""The auth journal of :mod:`vosapp.switch.auth` in the store: audit events, suspensions and
the digest key, readable by ``vosapp auth ...`` from another process."""

from __future__ import annotations

import ipaddress
import os

from vosapp.store import Store, storable_text
from vosapp.switch.auth import AuthEvent, Suspension, SuspensionScope

AUTH_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE auth_events (
        id INTEGER PRIMARY KEY,
        wall REAL NOT NULL,
        source_host TEXT NOT NULL,
        source_port INTEGER NOT NULL,
        user TEXT NOT NULL,
        method TEXT NOT NULL,
        reason TEXT NOT NULL,
        call_id TEXT NOT NULL DEFAULT '',
        detail TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX auth_events_wall ON auth_events (wall);
    CREATE TABLE auth_suspensions (
        id INTEGER PRIMARY KEY,
        user TEXT NOT NULL,
        source_host TEXT NOT NULL,
        scope TEXT NOT NULL,
        since_wall REAL NOT NULL,
        until_wall REAL NOT NULL,
        failures INTEGER NOT NULL,
        lifted_at REAL,
        lifted_by TEXT
    );
    CREATE INDEX auth_suspensions_until ON auth_suspensions (until_wall);
    """,
    # The digest nonce key survives restarts: a phone's nonce from the previous run is then
    # "stale" (re-challenged silently), not "forged" (counted against it).
    """
    CREATE TABLE auth_secret (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        secret BLOB NOT NULL
    );
    """,
)

class SqliteAuthJournal:
    """:class:`vosapp.switch.auth.AuthJournal` in the store: tables ``auth_events`` and
    ``auth_suspensions``, readable by ``vosapp auth ...`` from another process."""

    def __init__(self, store: Store) -> None:
        self.store = store
        store.ensure_schema("auth", AUTH_MIGRATIONS)

    def digest_secret(self) -> bytes:
        """The switch's digest key, created on first use and kept in the store."""
        with self.store.transaction() as db:
            row = db.execute("SELECT secret FROM auth_secret WHERE id = 1").fetchone()
            if row is not None:
                return bytes(row[0])
            secret = os.urandom(32)
            db.execute("INSERT INTO auth_secret (id, secret) VALUES (1, ?)", (secret,))
            return secret

    # AuthJournal
    def record(self, event: AuthEvent) -> None:
        with self.store.transaction() as db:
            db.execute("INSERT INTO auth_events (wall, source_host, source_port, user, method,"
                       " reason, call_id, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (event.wall, event.source_host, event.source_port,
                        # What the request carried, stored even when it is not UTF-8.
                        storable_text(event.user), storable_text(event.method), event.reason,
                        storable_text(event.call_id), storable_text(event.detail)))

    def suspended(self, suspension: Suspension) -> None:
        with self.store.transaction() as db:
            db.execute("INSERT INTO auth_suspensions (user, source_host, scope, since_wall,"
                       " until_wall, failures) VALUES (?, ?, ?, ?, ?, ?)",
                       (storable_text(suspension.user), suspension.source_host,
                        suspension.scope.value, suspension.since_wall, suspension.until_wall,
                        suspension.failures))

    def lifted(self, suspension: Suspension) -> bool:
        rows = self.store.query(
            "SELECT 1 FROM auth_suspensions WHERE user = ? AND source_host = ? AND scope = ?"
            " AND since_wall = ? AND lifted_at IS NOT NULL LIMIT 1",
            (storable_text(suspension.user), suspension.source_host, suspension.scope.value,
             suspension.since_wall))
        return bool(rows)

    # reading and operator actions (CLI, lab)
    def events(self, *, limit: int = 50, user: str | None = None,
               source_host: str | None = None) -> list[AuthEvent]:
        where, args = _filters(user=user, source_host=source_host)
        rows = self.store.query(f"SELECT * FROM auth_events {where} ORDER BY id DESC LIMIT ?",
                                (*args, limit))
        return [AuthEvent(wall=r["wall"], source_host=r["source_host"],
                          source_port=r["source_port"], user=r["user"], method=r["method"],
                          reason=r["reason"], call_id=r["call_id"], detail=r["detail"])
                for r in reversed(rows)]

    def active_suspensions(self, wall: float) -> list[Suspension]:
        rows = self.store.query("SELECT * FROM auth_suspensions WHERE until_wall > ? AND "
                                "lifted_at IS NULL ORDER BY until_wall", (wall,))
        return [Suspension(user=r["user"], source_host=r["source_host"],
                           scope=SuspensionScope(r["scope"]), since_wall=r["since_wall"],
                           until_wall=r["until_wall"], until=0.0, failures=r["failures"])
                for r in rows]

    def prune(self, keep_events: int) -> int:
        """Keep the newest ``keep_events`` audit rows (a flood must not fill the disk)."""
        with self.store.transaction() as db:
            cursor = db.execute("DELETE FROM auth_events WHERE id <= "
                                "(SELECT MAX(id) FROM auth_events) - ?", (keep_events,))
            return cursor.rowcount

    def lift(self, target: str, wall: float, by: str) -> int:
        """Mark active suspensions of user or address ``target`` as lifted; returns how many."""
        with self.store.transaction() as db:
            cursor = db.execute(
                "UPDATE auth_suspensions SET lifted_at = ?, lifted_by = ? WHERE lifted_at IS "
                "NULL AND until_wall > ? AND (user = ? OR source_host = ?)",
                (wall, by, wall, target, target))
            count = cursor.rowcount
            if count:
                db.execute("INSERT INTO auth_events (wall, source_host, source_port, user,"
                           " method, reason, call_id, detail) VALUES (?, ?, 0, ?, '-',"
                           " 'unsuspended', '', ?)",
                           (wall, target if _looks_like_address(target) else "",
                            "" if _looks_like_address(target) else target,
                            f"{count} suspension(s) lifted by {by}"))
            return count


def _looks_like_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _filters(**values: str | None) -> tuple[str, tuple[str, ...]]:
    clauses = [f"{name} = ?" for name, value in values.items() if value is not None]
    args = tuple(value for value in values.values() if value is not None)
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", args
