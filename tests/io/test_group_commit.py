"""Group commit (vosapp.io.group_commit, Store.begin_batch): the datagrams of one wake-up of
the SIP socket share one store transaction, and no message leaves before the write it follows
is committed -- the rule the call journal and the registrar rely on."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
from pathlib import Path

import pytest

from tests.io.test_runtime_loopback import options
from tests.io.test_udp_receive_buffer import send_burst
from vosapp.io.runtime import Switch
from vosapp.sip import Request, Response, parse
from vosapp.sip.transaction import ServerTransaction
from vosapp.store import Store, StoreError
from vosapp.store_transaction import StoreTransaction
from vosapp.switch.core import SwitchCore

BURST = 64


def test_a_batch_is_one_transaction_of_savepoints(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        with store.transaction() as db:
            db.execute("CREATE TABLE notes (text TEXT)")
        other = sqlite3.connect(store.path)
        statements: list[str] = []
        store._db.set_trace_callback(statements.append)
        store.begin_batch()
        with pytest.raises(RuntimeError, match="already open"):
            store.begin_batch()
        assert not store.batch_pending  # nothing written: nothing begun
        with store.transaction() as db:
            db.execute("INSERT INTO notes VALUES ('one')")
        with pytest.raises(ZeroDivisionError), store.transaction() as db:
            db.execute("INSERT INTO notes VALUES ('lost')")
            1 / 0  # noqa: B018 - a write that fails half-way
        with store.transaction() as db:
            db.execute("INSERT INTO notes VALUES ('two')")
        assert store.batch_pending
        assert other.execute("SELECT COUNT(*) FROM notes").fetchone() == (0,)  # not yet
        store.end_batch()
        assert not store.batch_pending
        assert [row for (row,) in other.execute("SELECT text FROM notes")] == ["one", "two"]
        assert statements.count("BEGIN IMMEDIATE") == 1
        assert statements.count("COMMIT") == 1
        assert statements.count("ROLLBACK TO write") == 1
        assert statements.count("SAVEPOINT write") == 2  # none for the first write
        with store.transaction() as db:  # after the batch: a transaction of its own again
            db.execute("INSERT INTO notes VALUES ('three')")
        assert statements.count("COMMIT") == 2
        # A batch whose first write fails: undoing it undoes the (empty) batch, and the next
        # write begins the batch's transaction again.
        store.begin_batch()
        with pytest.raises(ZeroDivisionError), store.transaction() as db:
            db.execute("INSERT INTO notes VALUES ('lost too')")
            1 / 0  # noqa: B018
        assert not store.batch_pending
        with store.transaction() as db:
            db.execute("INSERT INTO notes VALUES ('four')")
        store.end_batch()
        assert [row for (row,) in other.execute("SELECT text FROM notes")] == [
            "one", "two", "three", "four"]
        other.close()


def test_a_deferred_savepoint_is_taken_for_several_statements_only(tmp_path: Path) -> None:
    """The registrar's block (StoreTransaction(store, True)): a later write of a batch that
    writes one statement takes no savepoint, and when that statement fails SQLite undoes it
    alone (the batch's other writes stay); a block of several statements takes its savepoint
    before them, and a failure in the second undoes the first."""
    with Store.open(tmp_path) as store:
        with store.transaction() as db:
            db.execute("CREATE TABLE notes (text TEXT UNIQUE)")
        statements: list[str] = []
        store._db.set_trace_callback(statements.append)
        store.begin_batch()
        with store.transaction() as db:
            db.execute("INSERT INTO notes VALUES ('one')")
        one = StoreTransaction(store, True)
        with one as db:
            one.writing(1)
            db.execute("INSERT INTO notes VALUES ('two')")
        failing = StoreTransaction(store, True)
        with pytest.raises(sqlite3.IntegrityError), failing as db:
            failing.writing(1)
            db.execute("INSERT INTO notes VALUES ('one')")  # UNIQUE: the statement fails
        several = StoreTransaction(store, True)
        with pytest.raises(sqlite3.IntegrityError), several as db:
            several.writing(2)
            db.execute("INSERT INTO notes VALUES ('three')")
            db.execute("INSERT INTO notes VALUES ('two')")  # fails: 'three' goes too
        assert store.batch_pending
        store.end_batch()
        assert [row for (row,) in store.query("SELECT text FROM notes ORDER BY text")] == [
            "one", "two"]
        assert statements.count("SAVEPOINT write") == 1  # the block of two statements only
        assert statements.count("ROLLBACK TO write") == 1
        assert statements.count("COMMIT") == 1
        # Out of a batch, or as a batch's first write, the block is a transaction as before.
        alone = StoreTransaction(store, True)
        with alone as db:
            alone.writing(1)
            db.execute("INSERT INTO notes VALUES ('four')")
        assert statements.count("COMMIT") == 2 and statements.count("SAVEPOINT write") == 1


def test_a_commit_that_fails_loses_the_batch_with_a_store_error_and_closes_it(
        tmp_path: Path) -> None:
    """A deferred foreign key is checked at COMMIT: a real commit failure."""
    with Store.open(tmp_path) as store:
        with store.transaction() as db:
            db.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
            db.execute("CREATE TABLE child (parent INTEGER REFERENCES parent(id)"
                       " DEFERRABLE INITIALLY DEFERRED)")
        store.begin_batch()
        with store.transaction() as db:
            db.execute("INSERT INTO parent VALUES (1)")
        with store.transaction() as db:
            db.execute("INSERT INTO child VALUES (2)")  # no parent 2: fails at COMMIT
        with pytest.raises(StoreError, match="commit failed, the batch's writes are lost"):
            store.commit_batch()
        assert not store.batch_pending
        store.end_batch()
        assert store.query("SELECT COUNT(*) FROM parent")[0][0] == 0  # the batch is gone
        with store.transaction() as db:  # and the store goes on
            db.execute("INSERT INTO parent VALUES (3)")
        assert store.query("SELECT id FROM parent")[0][0] == 3


def message(port: int, index: int, prefix: str = "group") -> bytes:
    return options(port, branch=f"z9hG4bK{prefix}{index}", call_id=f"{prefix}-{index}@test",
                   method="MESSAGE")


def notes_schema(core: SwitchCore) -> None:
    assert core.store is not None
    core.store.ensure_schema("group_commit_test", [(
        "CREATE TABLE notes (call_id TEXT);"
        "CREATE TABLE parent (id INTEGER PRIMARY KEY);"
        "CREATE TABLE bad (parent INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED)")])


def notes_feature(core: SwitchCore) -> None:
    """A feature that writes before it answers, as the journal and the registrar do."""
    notes_schema(core)

    def on_message(request: Request, txn: ServerTransaction) -> None:
        assert core.store is not None
        with core.store.transaction() as db:
            if request.call_id.startswith("bad-"):  # passes now, fails at COMMIT
                db.execute("INSERT INTO bad VALUES (-1)")
            else:
                db.execute("INSERT INTO notes VALUES (?)", (request.call_id,))
        txn.respond(core.make_response(request, 200))

    core.add_request_handler("MESSAGE", on_message)


def test_answers_leave_after_their_writes_commit_and_a_burst_commits_once_a_batch(
        tmp_path: Path) -> None:
    async def scenario() -> tuple[list[str], list[str], int]:
        switch = Switch(host="127.0.0.1", port=0, data_dir=tmp_path, transports=("UDP",),
                        features=[notes_feature], persist_trace=False)
        await switch.start()
        assert switch.udp is not None and switch.udp.transport is not None
        assert switch.store is not None
        # A second connection sees only committed rows: what a crash would leave.
        other = sqlite3.connect(switch.store.path)
        seen_committed: list[str] = []
        # Checked where the answers meet the socket: the wire's (vosapp.io.udp_wire) sends
        # go to the socket itself while asyncio's transport holds nothing.
        sock = switch.udp.wire.sock

        class CheckingSocket:
            def recvfrom(self, size: int) -> tuple[bytes, tuple[str, int]]:
                return sock.recvfrom(size)  # type: ignore[no-any-return]

            def sendto(self, data: bytes, addr: tuple[str, int]) -> int:
                answer = parse(data)
                if isinstance(answer, Response) and answer.status == 200:
                    [(count,)] = other.execute("SELECT COUNT(*) FROM notes WHERE call_id = ?",
                                               (answer.call_id,)).fetchall()
                    if count == 1:
                        seen_committed.append(answer.call_id)
                return sock.sendto(data, addr)  # type: ignore[no-any-return]

        switch.udp.wire.sock = CheckingSocket()
        commits: list[str] = []
        switch.store._db.set_trace_callback(
            lambda sql: commits.append(sql) if sql == "COMMIT" else None)
        try:
            _, answers = await send_burst(
                switch.sip_address, lambda port: [message(port, index) for index in range(BURST)])
            answered = []
            for data in answers:
                answer = parse(data)
                assert isinstance(answer, Response) and answer.status == 200
                answered.append(answer.call_id)
            return answered, seen_committed, len(commits)
        finally:
            other.close()
            await switch.stop()

    answered, seen_committed, commits = asyncio.run(asyncio.wait_for(scenario(), 60))
    expected = [f"group-{index}@test" for index in range(BURST)]
    assert sorted(answered) == sorted(expected)
    assert sorted(seen_committed) == sorted(expected)  # each 200 left after its commit
    # ceil(64 / DRAIN_BATCH) = 2 commits for the burst, one per write without group commit
    assert commits <= BURST // 8


def test_a_failed_group_commit_is_traced_and_the_answers_still_go(tmp_path: Path) -> None:
    """As when a write of its own fails: the store's error is logged and traced, the
    switch answers and goes on."""
    async def scenario() -> tuple[int, list[str], int]:
        switch = Switch(host="127.0.0.1", port=0, data_dir=tmp_path, transports=("UDP",),
                        features=[notes_feature], persist_trace=False)
        await switch.start()
        client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            client.bind(("127.0.0.1", 0))
            client.setblocking(False)
            loop = asyncio.get_running_loop()
            port = client.getsockname()[1]
            statuses = []
            for data in (message(port, 1, "bad"), message(port, 2)):
                client.sendto(data, switch.sip_address)
                answer = parse(await asyncio.wait_for(loop.sock_recv(client, 65535), 5.0))
                assert isinstance(answer, Response)
                statuses.append(answer.status)
            assert statuses == [200, 200]
            events = [r.note for r in switch.trace.records(direction="event")]
            assert switch.store is not None
            rows = switch.store.query("SELECT COUNT(*) FROM notes")[0][0]
            return len(statuses), events, rows
        finally:
            client.close()
            await switch.stop()

    answered, events, rows = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert answered == 2
    assert any(note.startswith("store: ") and "commit failed" in note for note in events)
    assert rows == 1  # the request after the failed batch was written


def test_a_tcp_send_after_a_write_commits_the_batch_first(tmp_path: Path) -> None:
    """A message that is not held (TCP here) must not overtake the commit of a write made
    before it in the same wake-up: the batch commits, then it goes."""
    seen: list[int] = []

    def feature(core: SwitchCore) -> None:
        notes_schema(core)

        def on_message(request: Request, txn: ServerTransaction) -> None:
            assert core.store is not None
            with core.store.transaction() as db:
                db.execute("INSERT INTO notes VALUES (?)", (request.call_id,))
            core.send_raw(b"\r\n\r\n", ("127.0.0.1", 9), "TCP")  # a keep-alive, say
            txn.respond(core.make_response(request, 200))

        core.add_request_handler("MESSAGE", on_message)

    async def scenario() -> None:
        switch = Switch(host="127.0.0.1", port=0, data_dir=tmp_path, features=[feature],
                        persist_trace=False)
        await switch.start()
        assert switch.tcp is not None and switch.store is not None
        other = sqlite3.connect(switch.store.path)

        def checking_tcp_send(data: bytes, destination: object) -> None:
            seen.append(other.execute("SELECT COUNT(*) FROM notes").fetchone()[0])

        switch.tcp.send = checking_tcp_send  # type: ignore[method-assign]
        client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            client.bind(("127.0.0.1", 0))
            client.setblocking(False)
            client.sendto(message(client.getsockname()[1], 1), switch.sip_address)
            loop = asyncio.get_running_loop()
            answer = parse(await asyncio.wait_for(loop.sock_recv(client, 65535), 5.0))
            assert isinstance(answer, Response) and answer.status == 200
        finally:
            client.close()
            other.close()
            await switch.stop()

    asyncio.run(asyncio.wait_for(scenario(), 30))
    assert seen == [1]  # the row was committed when the TCP message left
