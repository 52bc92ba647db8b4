"""The registrar and SQLite: other connections' commits seen by the next REGISTER, a failed
COMMIT leaving nothing behind, and every binding on disk before its 200 leaves the switch; the
store's memo of the bindings (written through) always holding what the table holds, and the
temporary store of a switch without a data directory."""

from __future__ import annotations

import contextlib
import gc
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.switch.test_register_handler import PHONE, make_rig
from vosapp.clock import ManualClock
from vosapp.store import Store, StoreError
from vosapp.switch.core import SwitchCore
from vosapp.switch.registrar import Binding, ContactRequest, Registrar
from vosapp.switch.registrar.bindings_store import COLUMNS_SQL, bindings_from_rows, upsert
from vosapp.switch.registrar.logic import MEMO
from vosapp.switch.registrar.service import install


def table(store: Store) -> list[tuple[object, ...]]:
    return [tuple(row) for row in store.query(f"{COLUMNS_SQL} ORDER BY aor, contact")]


@contextlib.contextmanager
def trigger(store: Store, body: str) -> Iterator[None]:
    """A trigger ``body`` on the store for the ``with`` block (the stand-in for a disk that
    refuses a write)."""
    with store.transaction() as db:
        db.execute(f"CREATE TRIGGER stand_in {body}")
    try:
        yield
    finally:
        with store.transaction() as db:
            db.execute("DROP TRIGGER stand_in")


def add_deferred_foreign_key(store: Store) -> None:
    """Tables ``parent`` and ``child``: a row of ``child`` naming no parent fails only at
    COMMIT (a deferred foreign key), as a COMMIT fails when the disk fills."""
    with store.transaction() as db:
        db.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
        db.execute("CREATE TABLE child (parent INTEGER REFERENCES parent (id) "
                   "DEFERRABLE INITIALLY DEFERRED)")


def test_a_commit_by_another_connection_is_seen(tmp_path: Path) -> None:
    clock = ManualClock(wall_origin=1.7e9)
    with Store.open(tmp_path) as store, Store.open(tmp_path) as other:
        registrar = Registrar(store, clock)
        assert registrar.register("alice", [ContactRequest("sip:a@h1")], expires_header=600,
                                  call_id="cid-1", cseq=1, replace=True).ok
        # Another process (the CLI, a second switch) adds a binding of the same AOR ...
        with other.transaction() as db:
            upsert(db, Binding("alice", "sip:a@h2", clock.wall() + 600, "cid-1", 5))
        # ... which the next REGISTER of the AOR must see: the 200 lists it, and CSeq 3 of
        # cid-1 is out of order against it only if it is there.
        outcome = registrar.register("alice", [ContactRequest("sip:a@h1")],
                                     expires_header=600, call_id="cid-1", cseq=2, replace=True)
        assert [b.contact for b in outcome.bindings] == ["sip:a@h1", "sip:a@h2"]
        assert registrar.register("alice", [ContactRequest("sip:a@h2")], expires_header=600,
                                  call_id="cid-1", cseq=3, replace=True).status == 500
        # A delete by the other connection too.
        with other.transaction() as db:
            db.execute("DELETE FROM registrar_bindings WHERE contact = 'sip:a@h2'")
        outcome = registrar.register("alice", [ContactRequest("sip:a@h1")],
                                     expires_header=600, call_id="cid-1", cseq=4, replace=True)
        assert [b.contact for b in outcome.bindings] == ["sip:a@h1"]


def test_a_batch_checks_for_other_commits_once_and_each_batch_again(tmp_path: Path) -> None:
    """Group commit: the batch holds the write lock from its first write's BEGIN IMMEDIATE to
    its COMMIT, so one PRAGMA data_version per batch is enough; the next batch asks again and
    sees what another process committed in between."""
    clock = ManualClock(wall_origin=1.7e9)
    with Store.open(tmp_path) as store, Store.open(tmp_path) as other:
        registrar = Registrar(store, clock)
        statements: list[str] = []
        store._db.set_trace_callback(statements.append)

        def batch(*users: str, cseq: int) -> list[list[str]]:
            store.begin_batch()
            try:
                return [[b.contact for b in registrar.register(
                    user, [ContactRequest(f"sip:{user}@h1")], expires_header=600,
                    call_id=f"cid-{user}", cseq=cseq, replace=False).bindings]
                    for user in users]
            finally:
                store.end_batch()

        assert batch("alice", "bob", "carol", cseq=1) == [["sip:alice@h1"], ["sip:bob@h1"],
                                                          ["sip:carol@h1"]]
        assert statements.count("PRAGMA data_version") == 1
        # one statement each (an UPSERT): no savepoint for the later two
        assert statements.count("SAVEPOINT write") == 0
        # Another process binds a second contact of bob's between two batches ...
        with other.transaction() as db:
            upsert(db, Binding("bob", "sip:bob@h2", clock.wall() + 600, "cid-bob", 7))
        # ... and the next batch's first REGISTER asks again, so bob's 200 lists it.
        assert batch("alice", "bob", cseq=2) == [["sip:alice@h1"], ["sip:bob@h1", "sip:bob@h2"]]
        assert statements.count("PRAGMA data_version") == 2
        # Outside a batch: every transaction asks.
        registrar.register("alice", [ContactRequest("sip:alice@h1")], expires_header=600,
                           call_id="cid-alice", cseq=3, replace=False)
        registrar.register("carol", [ContactRequest("sip:carol@h1")], expires_header=600,
                           call_id="cid-carol", cseq=3, replace=False)
        assert statements.count("PRAGMA data_version") == 4
        store._db.set_trace_callback(None)


def test_two_registrars_on_one_store_see_each_others_writes(tmp_path: Path) -> None:
    clock = ManualClock(wall_origin=1.7e9)
    with Store.open(tmp_path) as store:
        first, second = Registrar(store, clock), Registrar(store, clock)
        assert first.register("alice", [ContactRequest("sip:a@h1")], expires_header=600,
                              call_id="cid-1", cseq=1, replace=True).ok
        assert second.register("alice", [ContactRequest("sip:a@h2")], expires_header=600,
                               call_id="cid-2", cseq=1, replace=True).ok  # replaces h1
        outcome = first.register("alice", [ContactRequest("sip:a@h3")], expires_header=600,
                                 call_id="cid-2", cseq=2, replace=False)
        assert [b.contact for b in outcome.bindings] == ["sip:a@h2", "sip:a@h3"]


def test_a_failed_commit_leaves_no_cached_rows(tmp_path: Path) -> None:
    clock = ManualClock(wall_origin=1.7e9)
    with Store.open(tmp_path) as store:
        registrar = Registrar(store, clock)
        assert registrar.register("alice", [ContactRequest("sip:a@h1")], expires_header=600,
                                  call_id="cid-1", cseq=1, replace=True).ok
        # The refresh's write fails (a trigger stands in for a full disk): rolled back.
        with trigger(store, "BEFORE UPDATE ON registrar_bindings "
                            "BEGIN SELECT RAISE(ABORT, 'disk full'); END"), \
                pytest.raises(sqlite3.IntegrityError):
            registrar.register("alice", [ContactRequest("sip:a@h1")], expires_header=600,
                               call_id="cid-1", cseq=2, replace=True)
        # CSeq 2 never happened: sending it again is in order, and the row is CSeq 1's.
        assert [row[4] for row in table(store)] == [1]
        assert registrar.register("alice", [ContactRequest("sip:a@h1")], expires_header=600,
                                  call_id="cid-1", cseq=2, replace=True).ok
        assert [row[4] for row in table(store)] == [2]


def test_every_binding_is_on_disk_before_its_200_leaves(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    database = tmp_path / "vosapp.sqlite"
    seen: list[tuple[str, int]] = []
    send = rig.core._sender
    assert send is not None

    def send_and_check(data: bytes, destination: tuple[str, int], transport: str) -> None:
        if data.startswith(b"SIP/2.0 200"):
            # Another connection, as another process would open it: the refresh is there.
            with sqlite3.connect(database) as reader:
                seen.extend(reader.execute(
                    "SELECT call_id, cseq FROM registrar_bindings WHERE aor = 'alice'"))
        send(data, destination, transport)

    rig.core.attach_sender(send_and_check)
    for n in range(1, 4):
        ok = rig.login(call_id=f"reg-{n}", cseq=10 * n)
        assert ok is not None and ok.status == 200
        assert seen[-1] == (f"reg-{n}", 10 * n + 1)
    (binding,) = rig.service.registrar.bindings("alice")
    assert (binding.received_host, binding.received_port) == PHONE


# -- the store's memo of the bindings (vosapp.store.Store.memo) ------------------------------

def memo_of(store: Store) -> dict[str, dict[str, Binding]]:
    with store.transaction() as db:
        return {aor: dict(bindings) for aor, bindings in store.memo(db, MEMO).items()}


def test_a_failed_batch_commit_empties_the_memo(tmp_path: Path) -> None:
    """A batch whose COMMIT fails loses every write in it (group commit): the bindings the
    memo took from those REGISTERs must go too, or the next REGISTER would find them."""
    clock = ManualClock(wall_origin=1.7e9)
    with Store.open(tmp_path) as store:
        registrar = Registrar(store, clock)
        add_deferred_foreign_key(store)
        store.begin_batch()
        try:
            assert registrar.register("alice", [ContactRequest("sip:a@h1")],
                                      expires_header=600, call_id="cid-1", cseq=1,
                                      replace=True).ok
            assert "alice" in memo_of(store)
            with store.transaction() as db:
                db.execute("INSERT INTO child VALUES (42)")  # the whole batch's COMMIT fails
            with pytest.raises(StoreError, match="commit failed"):
                store.commit_batch()
        finally:
            store.end_batch()
        assert table(store) == [] and memo_of(store) == {}
        # CSeq 1 never happened: it is in order, and the 200 lists h1 alone.
        outcome = registrar.register("alice", [ContactRequest("sip:a@h1")],
                                     expires_header=600, call_id="cid-1", cseq=1, replace=True)
        assert outcome.ok and [b.contact for b in outcome.bindings] == ["sip:a@h1"]


def test_the_purge_deletes_expired_bindings_from_the_memo_too(tmp_path: Path) -> None:
    clock = ManualClock(wall_origin=1.7e9)
    with Store.open(tmp_path) as store:
        registrar = Registrar(store, clock)
        for user, expires in (("alice", 60), ("bob", 600)):
            assert registrar.register(user, [ContactRequest(f"sip:{user}@h")],
                                      expires_header=expires, call_id=f"cid-{user}", cseq=1,
                                      replace=True).ok
        clock.advance(61)
        assert registrar.purge_expired() == 1
        assert list(memo_of(store)) == ["bob"]  # alice's account holds nothing in memory


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(st.tuples(
    st.sampled_from(["alice", "bob"]),
    st.lists(st.sampled_from(["sip:x@h1", "sip:x@h2", "sip:x@h3", "*"]), max_size=3),
    st.sampled_from([None, 0, 60, 600]),
    st.sampled_from(["cid-1", "cid-2"]),
    st.integers(1, 6),
    st.booleans(),
    st.sampled_from([0, 0, 30, 400, 700]),
    st.booleans()), max_size=25))
def test_the_memo_holds_what_the_table_holds(tmp_path: Path, steps: list[tuple[
        str, list[str], int | None, str, int, bool, int, bool]]) -> None:
    """Any sequence of REGISTERs (refreshes, removals, Contact *, refusals, out-of-order
    CSeqs), time passing and purges: the memo's live bindings are the table's, and each 200
    lists what a registrar reading the table afresh would list."""
    clock = ManualClock(wall_origin=1.7e9)
    with tempfile.TemporaryDirectory(dir=tmp_path) as directory, \
            Store.open(Path(directory)) as store:
        registrar = Registrar(store, clock, min_expires=60, max_contacts=2)
        for aor, contacts, expires, call_id, cseq, replace, wait, purge in steps:
            clock.advance(wait)
            if purge:
                registrar.purge_expired()
            star = "*" in contacts
            outcome = registrar.register(
                aor, [ContactRequest(c) for c in contacts if c != "*"], expires_header=expires,
                call_id=call_id, cseq=cseq, replace=replace, star=star)
            now = clock.wall()
            live = {(b.aor, b.contact, b.call_id, b.cseq, b.expires_at)
                    for b in bindings_from_rows(
                        store.query(f"{COLUMNS_SQL} ORDER BY aor, contact"), now)}
            in_memo = {(b.aor, b.contact, b.call_id, b.cseq, b.expires_at)
                       for bindings in memo_of(store).values() for b in bindings.values()
                       if b.expires_at > now}
            assert in_memo == live
            if outcome.ok and (contacts or star):
                assert {b.contact for b in outcome.bindings} == {
                    contact for (owner, contact, *_rest) in live if owner == aor}


def test_a_failed_commit_after_the_memo_took_the_binding_empties_it(tmp_path: Path) -> None:
    """The REGISTER's own COMMIT fails after its writes (a deferred foreign key stands in for a
    disk that fills at the commit): the transaction is rolled back, the memo emptied, and the
    store takes the next transaction."""
    clock = ManualClock(wall_origin=1.7e9)
    with Store.open(tmp_path) as store:
        registrar = Registrar(store, clock)
        add_deferred_foreign_key(store)
        with trigger(store, "AFTER INSERT ON registrar_bindings "
                            "BEGIN INSERT INTO child VALUES (42); END"), \
                pytest.raises(sqlite3.IntegrityError):
            registrar.register("alice", [ContactRequest("sip:a@h1")], expires_header=600,
                               call_id="cid-1", cseq=1, replace=True)
        assert table(store) == [] and memo_of(store) == {}
        assert registrar.register("alice", [ContactRequest("sip:a@h1")], expires_header=600,
                                  call_id="cid-1", cseq=1, replace=True).ok


def test_without_a_data_directory_the_bindings_store_goes_with_the_core() -> None:
    # No data directory: the registrar keeps its bindings in a temporary store, removed when
    # the core that holds it is collected, not at stop (a REGISTER may still arrive between
    # the stop hooks and the transports closing). The compiled core takes no weak reference:
    # the store removes its own directory.
    core = SwitchCore(clock=ManualClock(), sender=lambda *_: None)
    service, keepalive = install(core)
    directory = service.registrar.store.path.parent
    assert directory.is_dir()
    assert any("lost on restart" in record.note for record in core.trace.records())
    core.begin_stop()
    assert directory.is_dir()  # stopped, still answering: the store stays
    del service, keepalive
    gc.collect()
    assert directory.is_dir()
    del core
    gc.collect()
    assert not directory.exists()


def test_a_refresh_rewrites_its_times_only_and_never_loses_the_binding(tmp_path: Path) -> None:
    """A re-REGISTER of the same Contact from the same place is one narrow UPDATE (its
    expiry, Call-ID, CSeq and time), leaving the row as the UPSERT would have; a binding
    that moved (another source port) is written whole; and when the memo says a row is
    there that is not (a row deleted behind its back), the UPDATE finds nothing and the
    UPSERT writes it: the binding is never lost."""
    clock = ManualClock(wall_origin=1.7e9)
    with Store.open(tmp_path) as store:
        registrar = Registrar(store, clock)
        statements: list[str] = []
        store._db.set_trace_callback(statements.append)

        def register(cseq: int, port: int = 5061) -> None:
            outcome = registrar.register("alice", [ContactRequest("sip:a@h1")],
                                         expires_header=600, call_id="cid-1", cseq=cseq,
                                         replace=True, source=("192.0.2.1", port))
            assert outcome.status == 200

        def writes() -> list[str]:
            return [s.split(" ", 1)[0] for s in statements
                    if s.startswith(("INSERT", "UPDATE"))]

        register(1)
        clock.advance(10)
        register(2)
        assert writes() == ["INSERT", "UPDATE"]
        assert table(store) == [("alice", "sip:a@h1", 1.7e9 + 610, "cid-1", 2, None, "udp",
                                 "192.0.2.1", 5061, "[]", "", 1.7e9 + 10)]
        register(3, port=5062)  # the phone's NAT binding moved: the whole row
        assert writes()[2:] == ["INSERT"]
        assert table(store)[0][8] == 5062
        with store.transaction() as db:  # behind the memo's back (the same connection)
            db.execute("DELETE FROM registrar_bindings")
        register(4, port=5062)
        assert writes()[3:] == ["UPDATE", "INSERT"]
        assert [row[4] for row in table(store)] == [4]
