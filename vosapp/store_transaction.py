"""The write transaction of :meth:`vosapp.store.Store.transaction`, compiled.

The registrar opens one for every REGISTER it binds (vosapp/switch/registrar/logic.py), from
compiled code; written as a class in vosapp/store.py it was two interpreted frames per write,
its ``__enter__`` and ``__exit__``: 4-5 % of the event loop's time in a registrar at capacity
(docs/benchmarks.md, thirty-fifth round). Compiled (vosapp/compiled.py), the registrar's
``with`` calls both as C functions. It reads the store's private state: it is the store's
own, in a module of its own only because vosapp/store.py is not compiled.

Errors keep their meaning: what SQLite refuses at the start becomes a
:class:`~vosapp.store.StoreError` (through the store's ``_begin_failed``, so this module
imports nothing of the store at run time: vosapp/store.py imports it).
"""

from __future__ import annotations

import logging
import sqlite3
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from vosapp.store import Store

__all__ = ["StoreTransaction"]

log: Final = logging.getLogger("vosapp.store")

#: What :meth:`StoreTransaction.__enter__` began (plain ints: compared in C).
OWN: Final = 0  # its own transaction (no batch open)
BATCH: Final = 1  # the open batch's transaction, as its first write
SAVEPOINT: Final = 2  # a savepoint in the open batch's transaction (a later write)
#: A later write of the batch whose savepoint waits for :meth:`StoreTransaction.writing`:
#: a block that writes one statement needs none (SQLite undoes a failed statement by itself,
#: the transaction staying open: "statement journal"; an error that ends the whole
#: transaction is seen in __exit__ as for a savepoint).
SAVEPOINT_DEFERRED: Final = 3


class StoreTransaction:
    """``with store.transaction() as db``: a short write transaction (``BEGIN IMMEDIATE``:
    take the write lock up front so two processes never deadlock upgrading a read lock),
    committed when the block ends, rolled back when it raises. Inside a batch
    (:meth:`Store.begin_batch`, the group commit) the block is the batch's transaction when it
    is the batch's first write, else a savepoint in it: atomic on its own either way.

    ``deferred_savepoint``: the block says how many statements it writes (:meth:`writing`)
    before it writes any, and a later write of a batch takes its savepoint only for more than
    one: a SAVEPOINT and its RELEASE were two of a registration's four statements at capacity
    (docs/benchmarks.md, forty-first round). Such a block must not raise after its one
    statement (nothing would undo it)."""

    __slots__ = ("began", "deferred", "store")

    def __init__(self, store: Store, deferred_savepoint: bool = False) -> None:
        self.store = store
        self.began = OWN
        self.deferred = deferred_savepoint

    def __enter__(self) -> sqlite3.Connection:
        store = self.store
        store._lock.acquire()
        db = store._db
        statements = store._statements
        try:
            if not store._batching:
                statements.execute("BEGIN IMMEDIATE")
            elif not store.batch_pending:
                # The batch's first write needs no savepoint: undoing it undoes the batch.
                statements.execute("BEGIN IMMEDIATE")
                store.batch_pending = True
                store._memos_checked_in_batch = False
                self.began = BATCH
            elif self.deferred:
                self.began = SAVEPOINT_DEFERRED
            else:
                statements.execute("SAVEPOINT write")
                self.began = SAVEPOINT
        except BaseException as exc:
            store._lock.release()
            error = store._begin_failed(exc)
            if error is None:
                raise
            raise error from None
        return db

    @property
    def cursor(self) -> sqlite3.Cursor:
        """The store's statement cursor, for a write inside the block that returns no rows
        (the registrar's UPSERT): ``Connection.execute`` makes and lists a new cursor for
        each statement, about 3,000 instructions (docs/benchmarks.md, thirty-sixth and
        thirty-seventh rounds)."""
        return self.store._statements

    def writing(self, statements: int) -> None:
        """What a ``deferred_savepoint`` block calls before its writes, with how many
        statements it is about to execute: the savepoint a later write of a batch waits for
        is taken now when there are several."""
        if self.began == SAVEPOINT_DEFERRED and statements > 1:
            self.store._statements.execute("SAVEPOINT write")
            self.began = SAVEPOINT

    def memo(self, name: str) -> dict[Any, Any]:
        """:meth:`Store.memo` of this block (compiled: the registrar asks for its bindings'
        memo in every REGISTER)."""
        return store_memo(self.store, name)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: object) -> None:
        store = self.store
        db = store._db
        statements = store._statements
        kept = False  # the block's writes stand (committed, or pending in the open batch)
        try:
            began = self.began
            if began == SAVEPOINT:
                if not db.in_transaction:
                    # SQLite rolled the whole transaction back (a full disk, an I/O error):
                    # the batch's earlier writes went with it.
                    store.batch_pending = False
                    log.error("%s: a failed write rolled back its whole batch", store.path)
                else:
                    if exc_type is not None:
                        statements.execute("ROLLBACK TO write")  # this write only
                    statements.execute("RELEASE write")
                    kept = exc_type is None
            elif began == SAVEPOINT_DEFERRED:
                if not db.in_transaction:  # as for a savepoint: the whole batch rolled back
                    store.batch_pending = False
                    log.error("%s: a failed write rolled back its whole batch", store.path)
                else:
                    kept = exc_type is None  # a failed statement undid itself
            elif began == BATCH:
                in_transaction = db.in_transaction
                if exc_type is not None or not in_transaction:  # nothing else in it yet
                    if in_transaction:
                        statements.execute("ROLLBACK")
                    store.batch_pending = False
                else:
                    kept = True
            elif exc_type is None:
                try:
                    statements.execute("COMMIT")
                except sqlite3.Error:
                    # A COMMIT refused by a deferred constraint leaves the transaction open:
                    # undone, or every later BEGIN of this connection would fail.
                    if db.in_transaction:
                        statements.execute("ROLLBACK")
                    raise
                kept = True
            elif db.in_transaction:
                statements.execute("ROLLBACK")
        finally:
            if not kept:
                store._forget_memos()  # they may hold what was just undone
            store._lock.release()


def store_memo(store: Store, name: str) -> dict[Any, Any]:
    """:meth:`Store.memo`: the memo ``name`` (created empty), checked against the file first.
    Call it inside a write transaction of the store: BEGIN IMMEDIATE holds the write lock, so
    no other connection commits until the block's own writes are done."""
    # PRAGMA data_version changes when another connection has committed since this one
    # last asked (SQLite's "PRAGMA data_version"); this connection's own commits and the
    # WAL checkpoints (which change no content) leave it as it is.
    # Once per transaction: in a batch, the first write's check holds for the others.
    # On the store's statement cursor: no cursor made per check (thirty-seventh round).
    if not (store.batch_pending and store._memos_checked_in_batch):
        row = store._statements.execute("PRAGMA data_version").fetchone()
        store._memos_checked_in_batch = store.batch_pending
        version: int = row[0]  # an int from SQLite; int() of it would be a call of the type
        if version != store._data_version:
            store._data_version = version
            store._forget_memos()
    memos = store._memos
    memo = memos.get(name)
    if memo is None:
        memo = memos[name] = {}
    return memo
