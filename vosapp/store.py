"""The SQLite store in ``data_dir/vosapp.sqlite``: parameter values with their change
history now; bindings, auth events and CDRs (other components) later, in the same file.

* WAL journal, ``busy_timeout`` and short ``BEGIN IMMEDIATE`` transactions, so the switch
  process, the CLI and a notebook can use the same file at the same time.
* Each component owns its tables and brings its own ordered list of migrations;
  :meth:`Store.ensure_schema` applies the missing ones in one transaction and records them
  in ``schema_migrations``. A database written by a newer vosapp is refused.
* A file that is not SQLite, or is half-written/corrupt, raises :class:`StoreError` naming
  the file and what to do. It is never replaced or "repaired" silently: it may hold CDRs.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from vosapp.errors import VosappError
from vosapp.params import REGISTRY, ParameterError, Params
from vosapp.store_transaction import StoreTransaction, store_memo

__all__ = ["DB_FILENAME", "ParamChange", "Store", "StoreError", "storable_text"]

DB_FILENAME = "vosapp.sqlite"
_SQLITE_MAGIC = b"SQLite format 3\x00"
_BUSY_TIMEOUT_MS = 10_000

log = logging.getLogger(__name__)

def storable_text(text: str) -> str:
    """``text`` as SQLite can store it, every byte still shown.

    SQLite refuses strings with surrogates, so one such value fails the whole insert. Bytes
    that arrived as invalid UTF-8 (decoded with ``surrogateescape`` by the SIP parser, e.g.
    ``\\udcc3``) become backslash escapes of those bytes (``\\xc3``); any other lone
    surrogate becomes ``\\udXXX``. Valid text is returned as it is.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        try:
            return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        except UnicodeEncodeError:
            return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


PARAMS_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE param_values (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL,          -- JSON of the coerced Python value
        changed_at REAL NOT NULL,     -- Unix time
        changed_by TEXT NOT NULL
    );
    CREATE TABLE param_history (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at REAL NOT NULL,             -- Unix time
        name TEXT NOT NULL,
        action TEXT NOT NULL CHECK (action IN ('set', 'reset')),
        old TEXT NOT NULL,            -- JSON of the effective value before
        new TEXT NOT NULL,            -- JSON of the effective value after
        by TEXT NOT NULL              -- which interface: cli, notebook, api, ...
    );
    CREATE INDEX param_history_name ON param_history (name, id);
    """,
)


class StoreError(VosappError):
    """The store cannot be opened or used (corrupt, not SQLite, newer schema, locked)."""


@dataclass(frozen=True)
class ParamChange:
    """One row of the parameter change history."""

    at: float
    name: str
    action: str
    old: Any
    new: Any
    by: str


def _split_statements(script: str) -> Iterator[str]:
    """Split an SQL script into complete statements (``executescript`` would COMMIT)."""
    buffer = ""
    for piece in script.split(";"):
        buffer += piece + ";"
        if sqlite3.complete_statement(buffer):
            if buffer.strip(" \t\r\n;"):
                yield buffer
            buffer = ""
    if buffer.strip(" \t\r\n;"):
        yield buffer


class Store:
    """A connection to ``data_dir/vosapp.sqlite``. Use :meth:`open`; close with :meth:`close`
    or a ``with`` block. Thread-safe (one lock around the connection)."""

    def __init__(self, path: Path, connection: sqlite3.Connection) -> None:
        self.path = path
        self._db = connection
        #: The cursor of the store's own statements that return no rows (BEGIN, SAVEPOINT,
        #: RELEASE, COMMIT: two or three of them for every registration): Connection.execute
        #: makes a cursor for each statement and lists it in the connection, about 3,000
        #: instructions each time (docs/benchmarks.md, thirty-sixth round).
        self._statements = connection.cursor()
        self._lock = threading.RLock()
        self._claims: dict[str, int] = {}  # name -> file descriptor holding its flock
        #: Inside :meth:`begin_batch` / :meth:`end_batch` (group commit): the transaction
        #: blocks share one transaction, begun by the first of them; the others are
        #: savepoints in it.
        self._batching = False
        #: Whether the open batch has writes not yet committed. Read-only outside the store;
        #: a plain attribute, not a property: the group commit reads it for every datagram
        #: the switch sends, from compiled code, where a property is a Python call.
        self.batch_pending = False
        #: Rows kept in memory by the component that owns their table (:meth:`memo`), and
        #: PRAGMA data_version when they were last known to match the file.
        self._memos: dict[str, dict[Any, Any]] = {}
        self._data_version = -1
        #: The open batch's transaction checked data_version already (:meth:`memo`): it holds
        #: the write lock since its BEGIN IMMEDIATE, so no other connection can commit before
        #: its COMMIT and the memos stay as they were checked.
        self._memos_checked_in_batch = False

    # -- opening -------------------------------------------------------------------------
    @classmethod
    def open(cls, data_dir: str | Path) -> Store:
        """Open (creating when absent) the store in ``data_dir``; apply the params schema."""
        data_dir = Path(data_dir)
        path = data_dir / DB_FILENAME
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create data directory {data_dir}: {exc.strerror}") from None
        cls._check_header(path)
        try:
            connection = sqlite3.connect(path, timeout=_BUSY_TIMEOUT_MS / 1000,
                                         isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open {path}: {exc}") from None
        store = cls(path, connection)
        try:
            store._configure()
            store.ensure_schema("params", PARAMS_MIGRATIONS)
        except BaseException:
            connection.close()
            raise
        return store

    @classmethod
    def open_temporary(cls, prefix: str) -> Store:
        """A store in a new temporary directory that is removed with the store: when nothing
        holds it any more, or at interpreter exit (whichever comes first)."""
        import shutil
        import tempfile
        import weakref

        directory = tempfile.mkdtemp(prefix=prefix)
        store = cls.open(directory)
        # The finalizer holds the connection, not the store: the store can still be collected.
        weakref.finalize(store, _close_and_remove, store._db, directory, shutil.rmtree)
        return store

    @staticmethod
    def _check_header(path: Path) -> None:
        # An empty file is a valid empty SQLite database; anything else must start with the
        # SQLite magic, or we would let sqlite3 fail later with a vaguer message.
        try:
            with path.open("rb") as handle:
                head = handle.read(len(_SQLITE_MAGIC))
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StoreError(f"cannot read {path}: {exc.strerror}") from None
        if head and head != _SQLITE_MAGIC:
            raise StoreError(
                f"{path} is not an SQLite database; vosapp will not overwrite it. "
                "Move it aside (or use another --data-dir) and vosapp creates a fresh one."
            )

    def _configure(self) -> None:
        try:
            self._db.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            self._db.execute("PRAGMA synchronous = NORMAL")  # safe with WAL
            self._db.execute("PRAGMA foreign_keys = ON")
            check = self._db.execute("PRAGMA quick_check").fetchall()
        except sqlite3.DatabaseError as exc:
            raise self._corrupt(exc) from None
        if [row[0] for row in check] != ["ok"]:
            detail = "; ".join(str(row[0]) for row in check[:3])
            raise self._corrupt(detail)
        if str(mode).lower() != "wal":
            raise StoreError(f"{self.path}: cannot switch to WAL journal mode (got {mode!r}); "
                             "is the data directory on a network file system?")

    def _corrupt(self, detail: object) -> StoreError:
        return StoreError(
            f"{self.path} is damaged or half-written ({detail}); vosapp will not replace it. "
            f"Keep a copy, then try `sqlite3 {self.path} .recover`, or move it aside to "
            "start afresh."
        )

    def close(self) -> None:
        with self._lock:
            self._db.close()
            for fd in self._claims.values():
                os.close(fd)  # releases the lock
            self._claims.clear()

    def set_wal_autocheckpoint(self, pages: int) -> None:
        """Have this connection's commits checkpoint the log once it is past ``pages``
        (SQLite's ``wal_autocheckpoint``; vosapp.io.wal_checkpoint raises it while a thread
        of its own checkpoints)."""
        with self._lock:
            try:
                self._db.execute(f"PRAGMA wal_autocheckpoint = {int(pages)}")
            except sqlite3.Error as exc:
                raise StoreError(f"{self.path}: cannot set wal_autocheckpoint ({exc})") from None

    def wal_autocheckpoint(self) -> int:
        """This connection's ``wal_autocheckpoint`` (pages)."""
        with self._lock:
            return int(self._db.execute("PRAGMA wal_autocheckpoint").fetchone()[0])

    def claim(self, name: str) -> bool:
        """Hold ``<data dir>/<name>.lock`` until :meth:`close`; False when another open store
        (this process or another) holds it. The OS releases it when its holder dies, so a
        switch that finds it free knows no other switch runs on this data directory."""
        if name in self._claims:
            return True
        import fcntl

        fd = os.open(self.path.parent / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._claims[name] = fd
        return True

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transactions and schema ---------------------------------------------------------
    def transaction(self) -> StoreTransaction:
        """A short write transaction (``BEGIN IMMEDIATE``: take the write lock up front so
        two processes never deadlock upgrading a read lock): ``with store.transaction() as db``
        commits when the block ends, rolls back when it raises (vosapp/store_transaction.py,
        compiled: the registrar opens one per REGISTER)."""
        return StoreTransaction(self)

    def _begin_failed(self, exc: BaseException) -> StoreError | None:
        """What :meth:`transaction` raises when its start failed with ``exc`` (None: ``exc``
        itself)."""
        if isinstance(exc, sqlite3.OperationalError):
            return StoreError(f"{self.path}: cannot start a transaction ({exc})")
        if isinstance(exc, sqlite3.DatabaseError):
            return self._corrupt(exc)
        return None

    # -- group commit ---------------------------------------------------------------------
    # The switch handles the datagrams queued on its socket in one go (vosapp.io.udp): their
    # writes share one transaction, committed once, before any answer of theirs is sent
    # (the runtime holds the answers meanwhile). Each write stays atomic on its own (the
    # first is the transaction itself, the others savepoints in it) and "committed before
    # the message it records is sent" still holds; what goes is a BEGIN/COMMIT, its file
    # locks and its WAL frames per write.
    def begin_batch(self) -> None:
        """From now until :meth:`end_batch`, :meth:`transaction` blocks share one
        transaction, begun by the first of them. Holds the store's lock until then."""
        self._lock.acquire()
        if self._batching:
            self._lock.release()
            raise RuntimeError("a store batch is already open")
        self._batching = True

    def commit_batch(self) -> None:
        """Commit the batch's writes so far (the batch stays open). A failed commit rolls them
        back and raises :class:`StoreError`."""
        if not self.batch_pending:
            return
        self.batch_pending = False
        try:
            self._statements.execute("COMMIT")
        except sqlite3.Error as exc:
            self._forget_memos()
            try:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # the connection is beyond use; the next BEGIN will say so
            raise StoreError(f"{self.path}: commit failed, the batch's writes are lost "
                             f"({exc})") from None

    def end_batch(self) -> None:
        """Commit what the batch wrote (:meth:`commit_batch`) and close it."""
        try:
            self.commit_batch()
        finally:
            self._batching = False
            self._lock.release()

    # -- memos ------------------------------------------------------------------------------
    # A write-through copy of rows in memory, for a table one component owns (the
    # registrar's bindings, read and rewritten on every REGISTER): the owner keeps it equal
    # to what it committed. It is emptied whenever it could differ from the file: another
    # connection committed (another process on the same data directory), or a write of this
    # connection rolled back (a failed statement, a failed commit, a batch lost whole).
    def memo(self, db: sqlite3.Connection, name: str) -> dict[Any, Any]:
        """The memo ``name`` (created empty), checked against the file first. Call it inside
        :meth:`transaction` (``db`` is its connection): BEGIN IMMEDIATE holds the write
        lock, so no other connection commits until the block's own writes are done. (The
        check is vosapp/store_transaction.py's ``store_memo``, compiled; the registrar asks
        its transaction, ``StoreTransaction.memo``.)"""
        return store_memo(self, name)

    def _forget_memos(self) -> None:
        for memo in self._memos.values():
            memo.clear()

    def query(self, sql: str, parameters: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """Run a read-only query and return its rows (``sqlite3.Row``: by index or name)."""
        with self._lock:
            try:
                cursor = self._db.execute(sql, parameters)
                cursor.row_factory = sqlite3.Row
                return cursor.fetchall()
            except sqlite3.DatabaseError as exc:
                raise StoreError(f"{self.path}: query failed ({exc})") from None

    def ensure_schema(self, component: str, migrations: Sequence[str]) -> int:
        """Apply ``component``'s migrations not yet applied, in order, in one transaction.

        ``migrations[i]`` is version ``i + 1``; a migration, once released, must never change
        (append a new one instead). Returns the component's schema version.
        """
        if not component or not component.replace("_", "").isalnum():
            raise ValueError(f"component name {component!r} must be a simple identifier")
        with self.transaction() as db:
            try:
                db.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations ("
                    " component TEXT NOT NULL, version INTEGER NOT NULL,"
                    " applied_at REAL NOT NULL, PRIMARY KEY (component, version))"
                )
                row = db.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations"
                                 " WHERE component = ?", (component,)).fetchone()
            except sqlite3.DatabaseError as exc:
                raise self._corrupt(exc) from None
            current = int(row[0])
            if current > len(migrations):
                raise StoreError(
                    f"{self.path}: component {component!r} is at schema version {current}, "
                    f"newer than this vosapp knows ({len(migrations)}); upgrade vosapp or use "
                    "another --data-dir"
                )
            for version in range(current + 1, len(migrations) + 1):
                try:
                    for statement in _split_statements(migrations[version - 1]):
                        db.execute(statement)
                except sqlite3.Error as exc:
                    raise StoreError(f"{self.path}: migration {version} of {component!r} "
                                     f"failed: {exc}") from None
                db.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)",
                           (component, version, time.time()))
            return len(migrations)

    def schema_version(self, component: str) -> int:
        rows = self.query("SELECT COALESCE(MAX(version), 0) FROM schema_migrations "
                          "WHERE component = ?", (component,))
        return int(rows[0][0])

    # -- parameters ----------------------------------------------------------------------
    def stored_params(self) -> dict[str, Any]:
        """The values changed through the store (name -> Python value), unvalidated."""
        rows = self.query("SELECT name, value FROM param_values ORDER BY name")
        return {row["name"]: json.loads(row["value"]) for row in rows}

    def load_params(self, base: Params | None = None) -> Params:
        """``base`` (defaults, or the config file's values) with the stored values on top."""
        params = base if base is not None else Params.defaults()
        for name, value in self.stored_params().items():
            if name not in REGISTRY:
                raise StoreError(f"{self.path}: stored parameter {name} is not known to this "
                                 f"vosapp; run `vosapp params reset {name}`")
            try:
                params = params.replace(**{name: value})
            except ParameterError as exc:
                raise StoreError(f"{self.path}: stored value no longer valid ({exc}); run "
                                 f"`vosapp params reset {name}`") from None
        return params

    def set_param(self, name: str, value: object, by: str, *, base: Params | None = None
                  ) -> Any:
        """Validate and persist ``value``; record the change. Returns the coerced value.

        ``base`` (the config file's values) is only used to record the right "old" value
        when the parameter had not been changed through the store before.
        """
        coerced = REGISTRY[name].coerce(value)
        self._check_by(by)
        with self.transaction() as db:
            old = self._effective(db, name, base)
            db.execute(
                "INSERT INTO param_values (name, value, changed_at, changed_by)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET"
                " value = excluded.value, changed_at = excluded.changed_at,"
                " changed_by = excluded.changed_by",
                (name, json.dumps(coerced), time.time(), by),
            )
            self._record(db, name, "set", old, coerced, by)
        return coerced

    def reset_param(self, name: str | None, by: str, *, base: Params | None = None
                    ) -> list[str]:
        """Forget the stored value of ``name`` (all when None) so the default/config value
        applies again. Returns the names that were reset."""
        self._check_by(by)
        if name is not None and name not in REGISTRY and name not in self.stored_params():
            raise REGISTRY.unknown(name)
        with self.transaction() as db:
            if name is None:
                names = [r[0] for r in db.execute("SELECT name FROM param_values ORDER BY name")]
            else:
                found = db.execute("SELECT 1 FROM param_values WHERE name = ?", (name,))
                names = [name] if found.fetchone() else []
            for each in names:
                old = self._effective(db, each, base)
                db.execute("DELETE FROM param_values WHERE name = ?", (each,))
                new = self._base_value(each, base) if each in REGISTRY else None
                self._record(db, each, "reset", old, new, by)
        return names

    def param_change_marker(self) -> int:
        """A number that grows with every parameter change (from any process).

        A running switch polls it cheaply and calls :meth:`load_params` only when it moved,
        so `vosapp params set` in a shell reaches the switch's *new* sessions (docs/behaviour.md
        §1).
        """
        rows = self.query("SELECT COALESCE(MAX(id), 0) FROM param_history")
        return int(rows[0][0])

    def param_history(self, name: str | None = None) -> list[ParamChange]:
        """Every recorded change, oldest first (of ``name`` only, when given)."""
        sql = "SELECT at, name, action, old, new, by FROM param_history"
        args: tuple[Any, ...] = ()
        if name is not None:
            sql += " WHERE name = ?"
            args = (name,)
        rows = self.query(sql + " ORDER BY id", args)
        return [ParamChange(at=r["at"], name=r["name"], action=r["action"],
                            old=json.loads(r["old"]), new=json.loads(r["new"]), by=r["by"])
                for r in rows]

    @staticmethod
    def _check_by(by: str) -> None:
        if not isinstance(by, str) or not by.strip():
            raise ValueError("`by` must name the interface making the change (e.g. 'cli')")

    @staticmethod
    def _base_value(name: str, base: Params | None) -> Any:
        return base[name] if base is not None else REGISTRY[name].default

    def _effective(self, db: sqlite3.Connection, name: str, base: Params | None) -> Any:
        row = db.execute("SELECT value FROM param_values WHERE name = ?", (name,)).fetchone()
        if row is not None:
            return json.loads(row[0])
        return self._base_value(name, base) if name in REGISTRY else None

    @staticmethod
    def _record(db: sqlite3.Connection, name: str, action: str, old: Any, new: Any,
                by: str) -> None:
        db.execute("INSERT INTO param_history (at, name, action, old, new, by)"
                   " VALUES (?, ?, ?, ?, ?, ?)",
                   (time.time(), name, action, json.dumps(old), json.dumps(new), by))


def _close_and_remove(connection: sqlite3.Connection, directory: str,
                      rmtree: Callable[..., object]) -> None:
    connection.close()
    rmtree(directory, ignore_errors=True)
