"""WAL checkpoints on a thread of their own (vosapp.io.wal_checkpoint): the log reaches the
database file without the switch's commits checkpointing, the switch's connection checkpoints
only past the fallback bound meanwhile, and the store closes as it always did.

What is in the database file itself (not in the log) is read through SQLite's ``immutable``
URI, which ignores the log: a row seen there was checkpointed."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from vosapp.io.runtime import Switch
from vosapp.io.wal_checkpoint import DEFAULT_PAGES, FALLBACK_PAGES, NICE, WalCheckpointer
from vosapp.store import Store

ROW = 2_000  # bytes of blob per row: about two rows per 4 KB page


def _notes(store: Store) -> None:
    """The test table, in the database file already (so the immutable reader sees it)."""
    with store.transaction() as db:
        db.execute("CREATE TABLE notes (body BLOB)")
    other = sqlite3.connect(store.path)
    try:
        assert other.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0
    finally:
        other.close()


def _write(store: Store, rows: int) -> None:
    for _ in range(rows):  # one commit each, as the switch's batches are
        with store.transaction() as db:
            db.execute("INSERT INTO notes VALUES (randomblob(?))", (ROW,))


def _rows_in_database_file(store: Store) -> int | None:
    """None when the read was torn: an ``immutable`` reader takes no lock, so a checkpoint
    writing the file meanwhile can show it half-written ("malformed"); the polls read again."""
    reader = sqlite3.connect(f"file:{store.path}?immutable=1", uri=True)
    try:
        return int(reader.execute("SELECT count(*) FROM notes").fetchone()[0])
    except sqlite3.DatabaseError:
        return None
    finally:
        reader.close()


def _wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_the_thread_moves_the_log_into_the_database_file(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        _notes(store)
        store.set_wal_autocheckpoint(FALLBACK_PAGES)
        _write(store, 100)
        assert _rows_in_database_file(store) == 0  # all of it still in the log

        checkpointer = WalCheckpointer(store, interval=0.02)
        checkpointer.start()
        try:
            assert checkpointer.running
            _wait_for(lambda: _rows_in_database_file(store) == 100)
            # it yields a shared CPU to the event loop's thread (this one)
            tid = checkpointer.native_id
            assert tid is not None
            own = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
            assert os.getpriority(os.PRIO_PROCESS, tid) == min(own + NICE, 19)
            _write(store, 50)  # commits go on while the thread checkpoints
            _wait_for(lambda: _rows_in_database_file(store) == 150)
        finally:
            checkpointer.stop()
        assert checkpointer.checkpoints >= 2 and checkpointer.errors == 0
        assert checkpointer.last is not None and checkpointer.last[0] == 0  # never busy


def test_meanwhile_the_switch_connection_checkpoints_only_past_the_fallback(
        tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        _notes(store)
        assert store.wal_autocheckpoint() == DEFAULT_PAGES
        # A thread that never gets to checkpoint: only the switch's own commits could.
        checkpointer = WalCheckpointer(store, interval=3600)
        checkpointer.start()
        try:
            assert store.wal_autocheckpoint() == FALLBACK_PAGES
            _write(store, DEFAULT_PAGES)  # two pages or more each: past the default bound
            assert _rows_in_database_file(store) == 0
            _write(store, FALLBACK_PAGES // 2)  # past the fallback: the commits checkpoint
            assert (rows := _rows_in_database_file(store)) is not None and rows > 0
        finally:
            checkpointer.stop()
        assert store.wal_autocheckpoint() == DEFAULT_PAGES
        assert not checkpointer.running
        assert "vosapp-wal-checkpoint" not in {t.name for t in threading.enumerate()}


def test_a_checkpoint_that_took_in_every_frame_lets_the_next_commit_restart_the_log(
        tmp_path: Path) -> None:
    """What the catch-up relies on, in SQLite itself: the log restarts at a commit only once
    a checkpoint took in every frame there was. One that left frames behind (here a reader
    holding an older snapshot; in the switch, commits that came while it copied) leaves the
    log growing."""
    with Store.open(tmp_path) as store:
        _notes(store)
        store.set_wal_autocheckpoint(FALLBACK_PAGES)  # the switch's commits never checkpoint
        checkpointer = WalCheckpointer(store)  # not started: its checkpoints run here
        connection = sqlite3.connect(store.path, isolation_level=None)
        try:
            _write(store, 100)
            reader = sqlite3.connect(store.path, isolation_level=None)
            reader.execute("BEGIN")
            reader.execute("SELECT count(*) FROM notes").fetchone()  # snapshot: 100 rows
            _write(store, 100)
            checkpointer.checkpoint(connection)
            assert checkpointer.last is not None
            busy, logged, copied = checkpointer.last
            assert busy == 0 and logged >= 200 and copied < logged  # frames left behind
            _write(store, 1)
            checkpointer.checkpoint(connection)
            assert checkpointer.last[1] > logged  # no restart: the log grew on
            reader.execute("COMMIT")
            reader.close()

            checkpointer.checkpoint(connection)  # nothing holds frames back now
            assert checkpointer.last[2] == checkpointer.last[1]
            _write(store, 1)
            checkpointer.checkpoint(connection)
            assert checkpointer.last[1] <= 4  # the log restarted: that commit's frames only
        finally:
            connection.close()
        assert checkpointer.errors == 0


def _scripted_round(tmp_path: Path, answers: list[tuple[int, int, int]]) -> int:
    """Runs the checkpoint thread for one round whose checkpoints answer ``answers`` in turn
    (busy, pages in the log, pages of it copied) and returns how many it ran: the catch-up
    decision alone, without timing (real commits racing a real checkpoint decide by the
    disk's speed which pass catches up: docs/benchmarks.md "The WAL checkpoint thread
    catches up" measures that)."""
    with Store.open(tmp_path) as store:
        checkpointer = WalCheckpointer(store, interval=0.001)
        script = iter(answers)

        def checkpoint(connection: sqlite3.Connection, database: int | None = None) -> None:
            answer = next(script, None)
            if answer is None:
                checkpointer._stopping.set()  # the round is over: stop the thread
                return
            checkpointer.last = answer
            checkpointer.checkpoints += 1

        checkpointer.checkpoint = checkpoint  # type: ignore[method-assign]
        checkpointer.start()
        deadline = time.monotonic() + 10
        while checkpointer.running and time.monotonic() < deadline:
            time.sleep(0.005)
        checkpointer.stop()
        return checkpointer.checkpoints


def test_a_checkpoint_left_behind_is_tried_again_until_one_takes_in_every_frame(
        tmp_path: Path) -> None:
    from vosapp.io.wal_checkpoint import CATCH_UP_PAGES, CATCH_UP_TRIES

    big = CATCH_UP_PAGES + 200
    # frames kept back, then the log still growing, then a pass that copied all of an
    # unchanged log: three tries after the round's first checkpoint, then the next round
    caught_up = [(0, big, big - 50), (0, big + 10, big + 10), (0, big + 12, big + 12),
                 (0, big + 12, big + 12)]
    assert _scripted_round(tmp_path / "a", caught_up) == 4
    # commits keep coming in every pass: CATCH_UP_TRIES tries, then it waits for the next
    # round (the switch's commit at FALLBACK_PAGES is the bound)
    racing = [(0, big + 10 * i, big + 10 * i) for i in range(CATCH_UP_TRIES + 1)]
    assert _scripted_round(tmp_path / "b", [*racing, (0, 5, 5)]) == CATCH_UP_TRIES + 2
    # below CATCH_UP_PAGES a checkpoint that left frames is not tried again at once
    small = [(0, CATCH_UP_PAGES - 100, CATCH_UP_PAGES - 150)]
    assert _scripted_round(tmp_path / "c", [*small, *small]) == 2


def _descriptors_on(path: Path) -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}") == str(path)
        except OSError:
            pass
    return count


def test_the_thread_syncs_through_a_descriptor_it_closes(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    _notes(store)
    before = _descriptors_on(store.path)
    checkpointer = WalCheckpointer(store, interval=0.01)
    checkpointer.start()
    _write(store, 50)
    _wait_for(lambda: _rows_in_database_file(store) == 50)
    assert _descriptors_on(store.path) >= before + 1  # its sync descriptor at least
    checkpointer.stop()
    assert checkpointer.errors == 0
    store.close()
    # none left (SQLite keeps a closed connection's descriptor until the file's last
    # connection closes, so only after the store's close can all of them be counted)
    assert _descriptors_on(store.path) == 0


def test_the_store_closes_as_before_and_removes_its_log(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    _notes(store)
    checkpointer = WalCheckpointer(store, interval=0.01)
    checkpointer.start()
    _write(store, 20)
    checkpointer.stop()
    checkpointer.stop()  # a second stop changes nothing
    done = checkpointer.checkpoints
    checkpointer.start()  # and it can start again, and checkpoints again
    _write(store, 5)
    _wait_for(lambda: checkpointer.checkpoints > done)
    checkpointer.stop()
    store.close()
    assert not Path(f"{store.path}-wal").exists()
    with Store.open(tmp_path) as again:
        assert again.query("SELECT count(*) FROM notes")[0][0] == 25


def test_a_failed_checkpoint_is_counted_and_warned_once(tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture
                                                        ) -> None:
    with Store.open(tmp_path) as store:
        checkpointer = WalCheckpointer(store)
        broken = sqlite3.connect(store.path)
        broken.close()
        with caplog.at_level(logging.WARNING, logger="vosapp.io.wal_checkpoint"):
            checkpointer.checkpoint(broken)
            checkpointer.checkpoint(broken)
        assert checkpointer.errors == 2 and checkpointer.checkpoints == 0
        warnings = [r.getMessage() for r in caplog.records]
        assert len(warnings) == 1 and "WAL checkpoint failed" in warnings[0]
        assert str(FALLBACK_PAGES) in warnings[0]


def test_without_a_connection_of_its_own_the_store_stays_as_it_was(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A second connection that cannot be opened (mocked: it cannot be made to fail here
    while the store's own opens) leaves SQLite's default checkpointing in place."""
    with Store.open(tmp_path) as store:
        def refuse(*args: object, **kwargs: object) -> sqlite3.Connection:
            raise sqlite3.OperationalError("unable to open database file")

        monkeypatch.setattr("vosapp.io.wal_checkpoint.sqlite3.connect", refuse)
        checkpointer = WalCheckpointer(store)
        with caplog.at_level(logging.WARNING, logger="vosapp.io.wal_checkpoint"):
            checkpointer.start()
        assert not checkpointer.running
        assert store.wal_autocheckpoint() == DEFAULT_PAGES
        assert "no WAL checkpoint thread" in caplog.text
        checkpointer.stop()  # nothing to stop
        assert store.wal_autocheckpoint() == DEFAULT_PAGES


@pytest.mark.parametrize(("interval", "fallback"), [(0, FALLBACK_PAGES), (0.25, 10)])
def test_bad_settings_are_refused(tmp_path: Path, interval: float, fallback: int) -> None:
    with Store.open(tmp_path) as store, pytest.raises(ValueError):
        WalCheckpointer(store, interval=interval, fallback_pages=fallback)


def test_a_started_switch_checkpoints_on_its_thread_until_it_stops(tmp_path: Path) -> None:
    async def scenario() -> None:
        switch = Switch(host="127.0.0.1", port=0, data_dir=tmp_path, features=[])
        await switch.start()
        checkpointer = switch.checkpointer
        assert checkpointer is not None and checkpointer.running
        assert switch.store is not None
        assert switch.store.wal_autocheckpoint() == FALLBACK_PAGES
        await switch.stop()
        assert switch.checkpointer is None and not checkpointer.running

    asyncio.run(asyncio.wait_for(scenario(), 30))
    assert not Path(tmp_path / "vosapp.sqlite-wal").exists()
