"""WAL checkpoints on a thread of their own, off the switch's event loop.

In WAL mode SQLite moves the log's pages back into the database file (a checkpoint) from
inside the COMMIT that takes the log past ``wal_autocheckpoint`` pages (1,000 by default).
That commit is the switch's group commit (:mod:`vosapp.io.group_commit`), on the event loop:
with ``synchronous = NORMAL`` the checkpoint copies the pages *and* waits for two fsyncs, and
the answers of the batch and every relayed RTP packet wait with it. At 700 calls/s the
switch wrote 1,000 pages every ~0.22 s and each such commit took 2.6-2.8 ms, of which
~1.7 ms waiting for the disk (docs/benchmarks.md "WAL checkpoints off the event loop, and
what the long wake-ups are"); on a slower disk the wait is longer.

:class:`WalCheckpointer` runs ``PRAGMA wal_checkpoint(PASSIVE)`` every :data:`INTERVAL` on
its own connection and thread, and syncs the pages it copied. A passive checkpoint never
blocks a writer (it copies only what no reader still needs) and Python's sqlite3 releases
the GIL while SQLite works, so the loop runs on meanwhile. A checkpoint copies the frames
there were when it began; under constant commits new ones always arrive meanwhile, and the
log restarts only after a checkpoint that took in every frame. So once the log holds
:data:`CATCH_UP_PAGES`, the thread tries again at once (a few frames copy in a moment) until
one pass copies everything between two commits; the next commit then restarts the log. The
switch's own connection keeps a higher ``wal_autocheckpoint`` (:data:`FALLBACK_PAGES`) for
when the thread cannot keep up (a CPU it does not get): the commit that passes that bound
completes the checkpoint itself, on the loop (8-14 ms with the stored trace's writes,
docs/benchmarks.md "The WAL checkpoint thread catches up"). It gets the default back when
the checkpointer stops, so the store closes as it always did (the last connection closing
checkpoints and removes the log).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from typing import TYPE_CHECKING

from vosapp.store import StoreError

if TYPE_CHECKING:
    from vosapp.store import Store

__all__ = ["DEFAULT_PAGES", "FALLBACK_PAGES", "INTERVAL", "NICE", "WalCheckpointer"]

log = logging.getLogger(__name__)

#: Seconds between checkpoints: at 700 calls/s (~4,500 pages a second) each copies about
#: what SQLite's default checkpoint did (1,000 pages, ~4 MB); an idle switch's checkpoint
#: finds nothing to copy and costs microseconds.
INTERVAL = 0.25
#: The switch connection's ``wal_autocheckpoint`` while the thread checkpoints (~16 MB of
#: log): the bound on the log's size when the thread does not catch up (see
#: :data:`CATCH_UP_PAGES`), where the switch's own commit completes a checkpoint.
FALLBACK_PAGES = 4_000
#: SQLite's default ``wal_autocheckpoint``, given back at :meth:`WalCheckpointer.stop`.
DEFAULT_PAGES = 1_000
#: Added to the thread's niceness (the loop keeps its own): it yields a shared CPU to the loop.
NICE = 10
#: From this many pages in the log, a checkpoint that left the last frames behind (commits
#: came while it copied) is tried again at once, every :data:`CATCH_UP_PAUSE` up to
#: :data:`CATCH_UP_TRIES` times: the few frames left take a moment to copy, and once a pass
#: has copied them all between two commits the next commit restarts the log, so the
#: switch's own commit at :data:`FALLBACK_PAGES` need not complete a checkpoint.
CATCH_UP_PAGES = 1_000
CATCH_UP_TRIES = 20
CATCH_UP_PAUSE = 0.002


class WalCheckpointer:
    """Checkpoints ``store``'s log from a daemon thread until :meth:`stop`.

    :attr:`checkpoints` counts the checkpoints run and :attr:`last` keeps the last one's
    answer (busy, pages in the log, pages of it in the database file); :attr:`errors` counts
    the checkpoints that failed (logged, the first of each kind as a warning; the thread goes
    on, and the fallback bound stands)."""

    def __init__(self, store: Store, *, interval: float = INTERVAL,
                 fallback_pages: int = FALLBACK_PAGES) -> None:
        if interval <= 0:
            raise ValueError(f"the checkpoint interval must be > 0 s, got {interval!r}")
        if fallback_pages < DEFAULT_PAGES:
            raise ValueError(f"the fallback autocheckpoint must be >= {DEFAULT_PAGES} pages, "
                             f"got {fallback_pages!r}")
        self.store = store
        self.interval = interval
        self.fallback_pages = fallback_pages
        self.checkpoints = 0
        self.last: tuple[int, int, int] | None = None
        self.errors = 0
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._seen_errors: set[str] = set()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Open the thread's connection and start it; when the connection cannot be opened,
        warn and leave the store as it was (:attr:`running` stays False)."""
        if self._thread is not None:
            raise RuntimeError("the WAL checkpointer is already started")
        # Its own connection: the store's is locked by the loop for a whole batch, and a
        # checkpoint must not wait for that.
        try:
            connection = sqlite3.connect(self.store.path, isolation_level=None,
                                         check_same_thread=False, timeout=1.0)
        except sqlite3.Error as exc:  # the switch runs on, checkpointing in its commits
            log.warning("%s: no WAL checkpoint thread (%s); the switch's commits checkpoint "
                        "as SQLite does by default", self.store.path, exc)
            return
        self.store.set_wal_autocheckpoint(self.fallback_pages)
        self._stopping.clear()  # started again after a stop
        self._thread = threading.Thread(target=self._run, args=(connection,),
                                        name="vosapp-wal-checkpoint", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """End the thread (after the checkpoint under way, if any) and give the store's
        connection back SQLite's default autocheckpoint."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stopping.set()
        thread.join(timeout)
        if thread.is_alive():
            log.warning("the WAL checkpoint thread did not end within %.1f s", timeout)
        try:
            self.store.set_wal_autocheckpoint(DEFAULT_PAGES)
        except StoreError as exc:  # the store's close goes on: it says what is wrong
            log.warning("%s", exc)

    @property
    def native_id(self) -> int | None:
        """The thread's kernel id while it runs (for its scheduling, e.g. in tests)."""
        return self._thread.native_id if self._thread is not None else None

    def _run(self, connection: sqlite3.Connection) -> None:
        # Background work: on a CPU it shares with the event loop, the loop goes first.
        # (``vosapp serve --realtime-priority`` sets SCHED_RR on the loop's thread alone,
        # after this thread started, so this one stays under the normal scheduler.)
        try:
            tid = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, tid,
                           min(os.getpriority(os.PRIO_PROCESS, tid) + NICE, 19))
        except OSError as exc:  # lowering one's own priority is always allowed; be safe
            log.debug("WAL checkpoint thread keeps its priority: %s", exc)
        try:
            database = os.open(self.store.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            log.debug("WAL checkpoint thread cannot sync %s itself: %s", self.store.path, exc)
            database = None
        try:
            while not self._stopping.wait(self.interval):
                before = self.last
                self.checkpoint(connection, database)
                tries = 0
                while (tries < CATCH_UP_TRIES and self._left_behind(before)
                       and not self._stopping.wait(CATCH_UP_PAUSE)):
                    before = self.last
                    self.checkpoint(connection, database)
                    tries += 1
        finally:
            connection.close()
            if database is not None:
                os.close(database)

    def _left_behind(self, before: tuple[int, int, int] | None) -> bool:
        """The log has not restarted since it reached :data:`CATCH_UP_PAGES`, and the last
        checkpoint found frames that ``before`` (the one before it) had not: commits are
        coming. (A checkpoint that copied every frame there was reports as many copied as
        logged; frames committed after it began are counted by the next one.) A log that
        neither grew nor kept frames back is all copied, and the next commit restarts it."""
        last = self.last
        return (last is not None and last[1] >= CATCH_UP_PAGES
                and (last[2] < last[1] or before is None or last[1] != before[1]))

    def checkpoint(self, connection: sqlite3.Connection, database: int | None = None) -> None:
        """One passive checkpoint on ``connection``, then, when it copied pages, an
        fdatasync of the database file through ``database`` (a descriptor of it); failures
        are counted and logged.

        Why the sync: SQLite syncs the database file only in the checkpoint that takes in
        the log's last frames, which under constant commits is rare: a catch-up pass, or the
        switch's own commit at :data:`FALLBACK_PAGES`. That sync then flushed every page
        copied since (12-17 ms under the stored trace's writes, seen with strace). Synced
        here, as they are copied, they leave it little to flush."""
        try:
            row = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            # row[2] counts the log's frames in the database file so far: new ones, synced
            if database is not None and row[2] > 0 and (
                    self.last is None or row[2] != self.last[2]):
                os.fdatasync(database)
        except (sqlite3.Error, OSError) as exc:
            self.errors += 1
            kind = type(exc).__name__ + ": " + str(exc)
            if kind not in self._seen_errors:
                self._seen_errors.add(kind)
                log.warning("%s: WAL checkpoint failed (%s); the switch's commits checkpoint "
                            "past %d pages instead", self.store.path, kind, self.fallback_pages)
            return
        self.checkpoints += 1
        self.last = (row[0], row[1], row[2])
