"""The registrar and SQLite: other connections' commits seen by the next REGISTER, a failed
COMMIT leaving nothing behind, and every binding on disk before its 200 leaves the switch."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.switch.test_register_handler import PHONE, make_rig
from vosapp.clock import ManualClock
from vosapp.store import Store
from vosapp.switch.registrar import Binding, ContactRequest, Registrar
from vosapp.switch.registrar.bindings_store import COLUMNS_SQL, upsert


def table(store: Store) -> list[tuple[object, ...]]:
    return [tuple(row) for row in store.query(f"{COLUMNS_SQL} ORDER BY aor, contact")]


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
        with store.transaction() as db:
            db.execute("CREATE TRIGGER refuse BEFORE UPDATE ON registrar_bindings "
                       "BEGIN SELECT RAISE(ABORT, 'disk full'); END")
        with pytest.raises(sqlite3.IntegrityError):
            registrar.register("alice", [ContactRequest("sip:a@h1")], expires_header=600,
                               call_id="cid-1", cseq=2, replace=True)
        with store.transaction() as db:
            db.execute("DROP TRIGGER refuse")
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
