"""RFC 3261 §10.3 bindings in SQLite (registrar) and the SQLite auth journal."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from vosapp.clock import ManualClock
from vosapp.params import Params
from vosapp.store import Store
from vosapp.switch.auth import AuthPolicy, AuthRequest, Verdict
from vosapp.switch.registrar import (
    ContactRequest,
    Registrar,
    SqliteAuthJournal,
    parse_expires,
)

AOR = "alice"


@pytest.fixture()
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture()
def store(tmp_path: Path):
    with Store.open(tmp_path) as opened:
        yield opened


@pytest.fixture()
def registrar(store: Store, clock: ManualClock) -> Registrar:
    return Registrar(store, clock, min_expires=60, max_expires=3600, default_expires=1800,
                     max_contacts=3)


def reg(registrar: Registrar, *contacts: ContactRequest, expires: int | None = None,
        call_id: str = "cid-1", cseq: int = 1, replace: bool = True, **kw):
    return registrar.register(AOR, list(contacts), expires_header=expires, call_id=call_id,
                              cseq=cseq, replace=replace, **kw)


def test_register_and_fetch(registrar: Registrar, clock: ManualClock) -> None:
    outcome = reg(registrar, ContactRequest("sip:alice@192.0.2.1:5060"), expires=600,
                  source=("198.51.100.7", 40000), path=["<sip:edge.example;lr>"])
    assert outcome.status == 200
    (binding,) = outcome.bindings
    assert binding.remaining(outcome.now) == 600
    assert (binding.received_host, binding.received_port) == ("198.51.100.7", 40000)
    assert binding.path == ("<sip:edge.example;lr>",)
    assert outcome.path == ("<sip:edge.example;lr>",)
    clock.advance(100)
    fetched = registrar.register(AOR, None, expires_header=None, call_id="other", cseq=1,
                                 replace=True)
    assert fetched.status == 200
    assert [b.remaining(fetched.now) for b in fetched.bindings] == [500]


def test_contact_expires_param_beats_header_and_default(registrar: Registrar) -> None:
    outcome = reg(registrar, ContactRequest("sip:a@h1", expires=120), ContactRequest("sip:a@h2"),
                  expires=300)
    remaining = {b.contact: b.remaining(outcome.now) for b in outcome.bindings}
    assert remaining == {"sip:a@h1": 120, "sip:a@h2": 300}
    outcome = reg(registrar, ContactRequest("sip:a@h3"), cseq=2)
    assert {b.contact: b.remaining(outcome.now) for b in outcome.bindings}["sip:a@h3"] == 1800


def test_interval_too_brief_and_max_clamp(registrar: Registrar) -> None:
    brief = reg(registrar, ContactRequest("sip:a@h"), expires=30)
    assert (brief.status, brief.min_expires) == (423, 60)
    assert registrar.bindings(AOR) == []
    huge = reg(registrar, ContactRequest("sip:a@h"), expires=parse_expires("9" * 500))
    assert huge.status == 200
    assert huge.bindings[0].remaining(huge.now) == 3600


def test_parse_expires_rejects_garbage() -> None:
    assert parse_expires(None) is None
    assert parse_expires(" 60 ") == 60
    assert parse_expires("99999999999999999999") == 2**32 - 1
    for bad in ("-1", "abc", "1e3", "", "６０"):
        with pytest.raises(ValueError):
            parse_expires(bad)
    with pytest.raises(ValueError):
        parse_expires(-5)


def test_expiry_and_purge(registrar: Registrar, clock: ManualClock, store: Store) -> None:
    reg(registrar, ContactRequest("sip:a@h"), expires=60)
    clock.advance(61)
    assert registrar.bindings(AOR) == []
    assert registrar.purge_expired() == 1
    assert store.query("SELECT COUNT(*) FROM registrar_bindings")[0][0] == 0


def test_q_values_order_bindings(registrar: Registrar) -> None:
    outcome = reg(registrar, ContactRequest("sip:a@low", q=0.1), ContactRequest("sip:a@high",
                  q=0.9), ContactRequest("sip:a@none"))
    assert [b.contact for b in outcome.bindings] == ["sip:a@none", "sip:a@high", "sip:a@low"]
    assert reg(registrar, ContactRequest("sip:a@x", q=1.5), cseq=2).status == 400


def test_remove_one_and_star(registrar: Registrar) -> None:
    reg(registrar, ContactRequest("sip:a@h1"), ContactRequest("sip:a@h2"), expires=600)
    outcome = reg(registrar, ContactRequest("sip:a@h1", expires=0), cseq=2)
    assert [b.contact for b in outcome.bindings] == ["sip:a@h2"]
    assert registrar.register(AOR, [ContactRequest("sip:a@h2")], expires_header=0,
                              call_id="cid-1", cseq=3, replace=True, star=True).status == 400
    assert registrar.register(AOR, [], expires_header=600, call_id="cid-1", cseq=3,
                              replace=True, star=True).status == 400
    cleared = registrar.register(AOR, [], expires_header=0, call_id="cid-1", cseq=4,
                                 replace=True, star=True)
    assert cleared.status == 200 and registrar.bindings(AOR) == []


def test_out_of_order_cseq_fails(registrar: Registrar) -> None:
    reg(registrar, ContactRequest("sip:a@h"), cseq=5)
    assert reg(registrar, ContactRequest("sip:a@h"), cseq=5).status == 500
    assert reg(registrar, ContactRequest("sip:a@h"), cseq=6).status == 200


def test_too_many_contacts(registrar: Registrar) -> None:
    many = [ContactRequest(f"sip:a@h{i}") for i in range(4)]
    assert reg(registrar, *many).status == 403
    reg(registrar, *many[:3])
    outcome = reg(registrar, ContactRequest("sip:a@h9"), cseq=2)
    assert (outcome.status, outcome.reason) == (403, "Too Many Contacts")
    assert len(registrar.bindings(AOR)) == 3


def test_the_contact_limit_counts_what_stays_bound(registrar: Registrar) -> None:
    # max_contacts=3: bound + requested may exceed it as long as what stays bound does not.
    bound = [ContactRequest(f"sip:a@h{i}") for i in range(3)]
    assert reg(registrar, *bound[:2]).status == 200
    assert reg(registrar, bound[2], cseq=2).status == 200  # 2 + 1: at the limit
    assert reg(registrar, *bound, cseq=3).status == 200  # a refresh of all three
    unbind_one = ContactRequest("sip:a@h0", expires=0)
    outcome = reg(registrar, unbind_one, ContactRequest("sip:a@h9"), cseq=4)
    assert outcome.status == 200  # one leaves, one comes: still three
    assert sorted(b.contact for b in outcome.bindings) == ["sip:a@h1", "sip:a@h2", "sip:a@h9"]
    assert sorted(b.contact for b in registrar.bindings(AOR)) == [
        "sip:a@h1", "sip:a@h2", "sip:a@h9"]


def test_replace_on_new_registration_replaces_old(registrar: Registrar) -> None:
    reg(registrar, ContactRequest("sip:a@old"), call_id="phone-1")
    outcome = reg(registrar, ContactRequest("sip:a@new"), call_id="phone-2", replace=True)
    assert [b.contact for b in outcome.bindings] == ["sip:a@new"]


def test_replace_off_refuses_while_old_lives(registrar: Registrar, clock: ManualClock) -> None:
    reg(registrar, ContactRequest("sip:a@old"), expires=120, call_id="phone-1")
    refused = reg(registrar, ContactRequest("sip:a@new"), call_id="phone-2", replace=False)
    assert (refused.status, refused.reason) == (403, "Already Registered")
    assert [b.contact for b in registrar.bindings(AOR)] == ["sip:a@old"]
    # The same device refreshing is fine; once the old binding expired, the new one is allowed.
    assert reg(registrar, ContactRequest("sip:a@old"), call_id="phone-1", cseq=2,
               replace=False).status == 200
    clock.advance(1801)
    assert reg(registrar, ContactRequest("sip:a@new"), call_id="phone-2",
               replace=False).status == 200


def test_bindings_survive_reopen(tmp_path: Path, clock: ManualClock) -> None:
    with Store.open(tmp_path) as first:
        Registrar(first, clock).register(AOR, [ContactRequest("sip:a@h")], expires_header=600,
                                         call_id="c", cseq=1, replace=True)
    with Store.open(tmp_path) as second:
        assert [b.contact for b in Registrar(second, clock).bindings(AOR)] == ["sip:a@h"]


def test_a_contact_without_q_is_stored_as_null_and_read_back_without(tmp_path: Path,
                                                                     clock: ManualClock) -> None:
    # the statement gets a float for "no q" (bindings_store.NO_Q) and SQL turns it into NULL
    with Store.open(tmp_path) as first:
        Registrar(first, clock).register(
            AOR, [ContactRequest("sip:a@none"), ContactRequest("sip:a@half", q=0.5),
                  ContactRequest("sip:a@zero", q=0.0)],
            expires_header=600, call_id="c", cseq=1, replace=True)
        stored = dict(first.query("SELECT contact, q FROM registrar_bindings"))
    assert stored == {"sip:a@none": None, "sip:a@half": 0.5, "sip:a@zero": 0.0}
    with Store.open(tmp_path) as second:
        assert {b.contact: b.q for b in Registrar(second, clock).bindings(AOR)} == stored


def test_killed_mid_write_loses_nothing_committed(tmp_path: Path) -> None:
    # A child process commits registrations in a loop and is SIGKILLed; every binding it
    # reported as committed must be there, and the database must open cleanly.
    script = f"""
import sys
from vosapp.clock import ManualClock
from vosapp.store import Store
from vosapp.switch.registrar import ContactRequest, Registrar
store = Store.open({str(tmp_path)!r})
registrar = Registrar(store, ManualClock(wall_origin=4e9))
i = 0
while True:
    registrar.register(f"user{{i}}", [ContactRequest(f"sip:u{{i}}@h")], expires_header=600,
                       call_id=f"c{{i}}", cseq=1, replace=True)
    print(i, flush=True)
    i += 1
"""
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                             text=True, cwd=Path(__file__).resolve().parents[2],
                             env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve()
                                                                  .parents[2])})
    assert child.stdout is not None
    last = -1
    for line in child.stdout:
        last = int(line)
        if last >= 200:
            break
    child.kill()
    child.wait()
    with Store.open(tmp_path) as reopened:
        count = reopened.query("SELECT COUNT(*) FROM registrar_bindings")[0][0]
    assert count >= last + 1


def test_sqlite_journal_events_suspensions_and_cross_process_lift(store: Store,
                                                                    clock: ManualClock) -> None:
    journal = SqliteAuthJournal(store)
    policy = AuthPolicy(Params.defaults().replace(SS_AUTHENTICATION_MAX_RETRY=2), clock, journal)
    request = AuthRequest("REGISTER", "c", "alice", "192.0.2.5", 5060)
    policy.decide(request, Verdict.WRONG_PASSWORD)
    policy.decide(request, Verdict.WRONG_PASSWORD)
    assert policy.is_suspended("alice", "192.0.2.5", "REGISTER")
    reasons = [event.reason for event in journal.events()]
    assert reasons == ["wrong_password", "wrong_password", "suspended"]
    (active,) = journal.active_suspensions(clock.wall())
    assert active.until_wall - active.since_wall == 180
    # The CLI, with its own connection to the same file, lifts it.
    with Store.open(store.path.parent) as other:
        assert SqliteAuthJournal(other).lift("192.0.2.5", clock.wall(), by="test") == 1
    assert not policy.is_suspended("alice", "192.0.2.5", "REGISTER")
    assert journal.events()[-1].reason == "unsuspended"
    # A restart re-installs suspensions that are still running.
    policy.decide(AuthRequest("INVITE", "d", "bob", "192.0.2.6"), Verdict.WRONG_PASSWORD)
    policy.decide(AuthRequest("INVITE", "e", "bob", "192.0.2.6"), Verdict.WRONG_PASSWORD)
    fresh = AuthPolicy(Params.defaults(), clock, journal)
    fresh.restore(journal.active_suspensions(clock.wall()))
    assert fresh.is_suspended("bob", "192.0.2.6")


def test_audit_trail_is_pruned_to_a_bound(store: Store, clock: ManualClock) -> None:
    journal = SqliteAuthJournal(store)
    policy = AuthPolicy(Params.defaults().replace(SS_AUTHENTICATION_MAX_RETRY=0), clock, journal)
    for i in range(50):
        policy.decide(AuthRequest("INVITE", f"c{i}", "u", "192.0.2.9"), Verdict.WRONG_PASSWORD)
    assert journal.prune(10) == 40
    kept = journal.events(limit=100)
    assert len(kept) == 10 and kept[-1].call_id == "c49"


def test_schema_2_drops_the_expiry_index_and_keeps_the_bindings(tmp_path: Path,
                                                                clock: ManualClock) -> None:
    # A store written by registrar schema 1 (with the expiry index) opens under schema 2:
    # the index is gone, the bindings are all there, and purging still works.
    from vosapp.switch.registrar import REGISTRAR_MIGRATIONS, Binding
    from vosapp.switch.registrar.bindings_store import upsert

    with Store.open(tmp_path) as old:
        old.ensure_schema("registrar", REGISTRAR_MIGRATIONS[:1])
        with old.transaction() as db:
            upsert(db, Binding(AOR, "sip:alice@192.0.2.1", clock.wall() + 60, "cid-1", 1))
            upsert(db, Binding(AOR, "sip:alice@192.0.2.2", clock.wall() + 600, "cid-1", 1))
        assert old.query("SELECT name FROM sqlite_master WHERE name = ?",
                         ("registrar_bindings_expiry",)) != []
    with Store.open(tmp_path) as store:
        registrar = Registrar(store, clock)
        assert store.schema_version("registrar") == len(REGISTRAR_MIGRATIONS) == 2
        assert store.query("SELECT name FROM sqlite_master WHERE type = 'index' AND "
                           "tbl_name = 'registrar_bindings' AND sql IS NOT NULL") == []
        assert [b.contact for b in registrar.bindings(AOR)] == ["sip:alice@192.0.2.1",
                                                                "sip:alice@192.0.2.2"]
        clock.advance(61)
        assert registrar.purge_expired() == 1
        assert [b.contact for b in registrar.bindings(AOR)] == ["sip:alice@192.0.2.2"]
