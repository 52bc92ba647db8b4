"""Group commit (vosapp.io.group_commit, Store.begin_batch): the datagrams of one wake-up of
the SIP socket share one store transaction, and no message leaves before the write it follows
is committed -- the rule the call journal and the registrar rely on."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
from pathlib import Path

import pytest

from vosapp.io import udp
from vosapp.io.runtime import Switch
from vosapp.sip import Request, Response, parse
from vosapp.sip.transaction import ServerTransaction
from vosapp.store import Store
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


def message(port: int, index: int) -> bytes:
    return (f"MESSAGE sip:switch@127.0.0.1 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKgroup{index};rport\r\n"
            "Max-Forwards: 70\r\nFrom: <sip:a@127.0.0.1>;tag=g\r\nTo: <sip:switch@127.0.0.1>\r\n"
            f"Call-ID: group-{index}@test\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n"
            ).encode()


def notes_feature(core: SwitchCore) -> None:
    """A feature that writes before it answers, as the journal and the registrar do."""
    assert core.store is not None
    core.store.ensure_schema("group_commit_test", ["CREATE TABLE notes (call_id TEXT)"])

    def on_message(request: Request, txn: ServerTransaction) -> None:
        assert core.store is not None
        with core.store.transaction() as db:
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
        transport = switch.udp.transport
        sendto = transport.sendto

        def checking_sendto(data: bytes, addr: object = None) -> None:
            answer = parse(data)
            if isinstance(answer, Response) and answer.status == 200:
                [(count,)] = other.execute("SELECT COUNT(*) FROM notes WHERE call_id = ?",
                                           (answer.call_id,)).fetchall()
                if count == 1:
                    seen_committed.append(answer.call_id)
            sendto(data, addr)

        transport.sendto = checking_sendto  # type: ignore[method-assign]
        commits: list[str] = []
        switch.store._db.set_trace_callback(
            lambda sql: commits.append(sql) if sql == "COMMIT" else None)
        client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            udp.enlarge_receive_buffer(client, udp.RECEIVE_BUFFER)
            client.bind(("127.0.0.1", 0))
            port = client.getsockname()[1]
            for index in range(BURST):  # the loop is this thread: all of them queue
                client.sendto(message(port, index), switch.sip_address)
            client.setblocking(False)
            loop = asyncio.get_running_loop()
            answered = []
            while len(answered) < BURST:
                data = await asyncio.wait_for(loop.sock_recv(client, 65535), 5.0)
                answer = parse(data)
                assert isinstance(answer, Response) and answer.status == 200
                answered.append(answer.call_id)
            return answered, seen_committed, len(commits)
        finally:
            client.close()
            other.close()
            await switch.stop()

    answered, seen_committed, commits = asyncio.run(asyncio.wait_for(scenario(), 60))
    expected = [f"group-{index}@test" for index in range(BURST)]
    assert sorted(answered) == sorted(expected)
    assert sorted(seen_committed) == sorted(expected)  # each 200 left after its commit
    # ceil(64 / DRAIN_BATCH) = 2 commits for the burst, one per write without group commit
    assert commits <= BURST // 8
