"""The SQLite store: WAL, migrations, parameter values and history, two processes,
and damaged files that must be reported, never replaced."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from vosapp.errors import VosappError
from vosapp.params import ParameterError, Params
from vosapp.store import DB_FILENAME, Store, StoreError, storable_text


def test_open_creates_a_wal_database(tmp_path: Path) -> None:
    data_dir = tmp_path / "a" / "b"
    with Store.open(data_dir) as store:
        assert store.path == data_dir / DB_FILENAME
        assert store.query("PRAGMA journal_mode")[0][0] == "wal"
        assert store.schema_version("params") == 1
    assert (data_dir / DB_FILENAME).read_bytes().startswith(b"SQLite format 3\x00")


def test_set_load_reset_and_history(tmp_path: Path) -> None:
    base = Params.defaults().replace(SS_SIP_AUTHENTICATION_TIMEOUT=20)  # as a config would
    with Store.open(tmp_path) as store:
        assert store.load_params(base) == base
        assert store.set_param("SS_SIP_AUTHENTICATION_RETRY", "5", "cli", base=base) == 5
        assert store.set_param("SS_SIP_AUTHENTICATION_TIMEOUT", "30s", "notebook",
                               base=base) == 30
        assert store.set_param("SS_SIP_AUTHENTICATION_RETRY", 4, "cli") == 4
        params = store.load_params(base)
        assert params["SS_SIP_AUTHENTICATION_RETRY"] == 4
        assert params["SS_SIP_AUTHENTICATION_TIMEOUT"] == 30
        with pytest.raises(ParameterError, match="60-3600"):
            store.set_param("SS_AUTHENTICATION_FAILED_SUSPEND", 10, "cli")
        with pytest.raises(ParameterError, match="not a known parameter"):
            store.set_param("SS_TYPO", 1, "cli")
        with pytest.raises(ValueError, match="interface"):
            store.set_param("SS_SIP_AUTHENTICATION_RETRY", 1, "")
        assert store.reset_param("SS_SIP_AUTHENTICATION_TIMEOUT", "cli", base=base) == [
            "SS_SIP_AUTHENTICATION_TIMEOUT"]
        assert store.load_params(base)["SS_SIP_AUTHENTICATION_TIMEOUT"] == 20  # config value
        assert store.reset_param("SS_SIP_AUTHENTICATION_TIMEOUT", "cli") == []
        assert store.reset_param(None, "cli") == ["SS_SIP_AUTHENTICATION_RETRY"]
        assert store.load_params() == Params.defaults()
        history = store.param_history()
        assert [(c.name, c.action, c.old, c.new, c.by) for c in history] == [
            ("SS_SIP_AUTHENTICATION_RETRY", "set", 6, 5, "cli"),
            ("SS_SIP_AUTHENTICATION_TIMEOUT", "set", 20, 30, "notebook"),
            ("SS_SIP_AUTHENTICATION_RETRY", "set", 5, 4, "cli"),
            ("SS_SIP_AUTHENTICATION_TIMEOUT", "reset", 30, 20, "cli"),
            ("SS_SIP_AUTHENTICATION_RETRY", "reset", 4, 6, "cli"),
        ]
        assert all(c.at > 1e9 for c in history)
        assert len(store.param_history("SS_SIP_AUTHENTICATION_TIMEOUT")) == 2


def test_change_marker_moves_on_changes_from_another_connection(tmp_path: Path) -> None:
    with Store.open(tmp_path) as switch_side, Store.open(tmp_path) as cli_side:
        before = switch_side.param_change_marker()
        assert switch_side.param_change_marker() == before
        cli_side.set_param("SS_REPLY_UNAUTHORIZED", "Off", "cli")
        after = switch_side.param_change_marker()
        assert after > before
        assert switch_side.load_params()["SS_REPLY_UNAUTHORIZED"] is False
        cli_side.reset_param(None, "cli")
        assert switch_side.param_change_marker() > after


def test_values_keep_their_types_across_reopen(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        store.set_param("SS_REPLY_UNAUTHORIZED", "off", "cli")
        store.set_param("SS_SIP_USER_AGENT_EXPIRE", "auto", "cli")
        store.set_param("SS_SIP_AUTHENTICATION_CODE", "407 Proxy Authentication Required",
                        "cli")
    with Store.open(tmp_path) as store:
        params = store.load_params()
    assert params["SS_REPLY_UNAUTHORIZED"] is False
    assert params["SS_SIP_USER_AGENT_EXPIRE"] == "Auto"
    assert params["SS_SIP_AUTHENTICATION_CODE"] == 407


def test_a_stored_value_that_became_invalid_is_reported(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store, store.transaction() as db:
        db.execute("INSERT INTO param_values VALUES ('SS_AUTHENTICATION_FAILED_SUSPEND',"
                   " '5', 0, 'test')")
        db.execute("INSERT INTO param_values VALUES ('SS_REMOVED_LONG_AGO', '1', 0, 'test')")
    with Store.open(tmp_path) as store:
        with pytest.raises(StoreError, match="params reset SS_"):
            store.load_params()
        assert store.reset_param("SS_REMOVED_LONG_AGO", "cli") == ["SS_REMOVED_LONG_AGO"]
        with pytest.raises(StoreError, match="no longer valid.*60-3600"):
            store.load_params()
        store.reset_param("SS_AUTHENTICATION_FAILED_SUSPEND", "cli")
        assert store.load_params() == Params.defaults()


MIGRATIONS_V1 = ("CREATE TABLE demo_calls (id INTEGER PRIMARY KEY, callee TEXT);",)
MIGRATIONS_V2 = (*MIGRATIONS_V1, """
    ALTER TABLE demo_calls ADD COLUMN ended REAL;
    CREATE TABLE demo_log (id INTEGER PRIMARY KEY, note TEXT);
    CREATE TRIGGER demo_log_calls AFTER INSERT ON demo_calls BEGIN
        INSERT INTO demo_log (note) VALUES ('call ' || NEW.callee);
    END;
""")


def test_ensure_schema_applies_each_migration_once_in_order(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        assert store.ensure_schema("demo", MIGRATIONS_V1) == 1
        assert store.ensure_schema("demo", MIGRATIONS_V1) == 1  # idempotent
        assert store.ensure_schema("demo", MIGRATIONS_V2) == 2
        with store.transaction() as db:
            db.execute("INSERT INTO demo_calls (callee, ended) VALUES ('1002', 1.5)")
        assert [tuple(r) for r in store.query("SELECT note FROM demo_log")] == [("call 1002",)]
        rows = store.query("SELECT component, version FROM schema_migrations ORDER BY 1, 2")
        assert [tuple(r) for r in rows] == [("demo", 1), ("demo", 2), ("params", 1)]
        with pytest.raises(StoreError, match="newer than this vosapp knows"):
            store.ensure_schema("demo", MIGRATIONS_V1)
        with pytest.raises(ValueError):
            store.ensure_schema("bad name;", MIGRATIONS_V1)


def test_a_failing_migration_changes_nothing(tmp_path: Path) -> None:
    broken = ("CREATE TABLE half (x); CREATE TABLE half (y);",)
    with Store.open(tmp_path) as store:
        with pytest.raises(StoreError, match="migration 1 of 'broken' failed"):
            store.ensure_schema("broken", broken)
        assert store.schema_version("broken") == 0
        assert store.query("SELECT name FROM sqlite_master WHERE name = 'half'") == []


def test_not_sqlite_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / DB_FILENAME
    content = b"these are my notes, not a database\n" * 10
    path.write_bytes(content)
    with pytest.raises(StoreError) as info:
        Store.open(tmp_path)
    assert str(path) in str(info.value) and "not an SQLite database" in str(info.value)
    assert isinstance(info.value, VosappError)
    assert path.read_bytes() == content


@pytest.mark.parametrize("keep", [100, 4096, 12000])
def test_half_written_database_is_refused_and_left_untouched(tmp_path: Path,
                                                            keep: int) -> None:
    with Store.open(tmp_path) as store:
        for value in range(40):
            store.set_param("SS_SIP_AUTHENTICATION_RETRY", value, "cli")
    path = tmp_path / DB_FILENAME
    truncated = path.read_bytes()[:keep]
    path.write_bytes(truncated)
    with pytest.raises(StoreError) as info:
        Store.open(tmp_path)
    message = str(info.value)
    assert str(path) in message and "damaged or half-written" in message
    assert "will not replace it" in message
    assert path.read_bytes() == truncated


def test_an_empty_file_is_an_empty_database(tmp_path: Path) -> None:
    (tmp_path / DB_FILENAME).touch()  # SQLite's own convention: a new, empty database
    with Store.open(tmp_path) as store:
        assert store.load_params() == Params.defaults()


WRITER = textwrap.dedent("""
    import sys
    from vosapp.store import Store
    data_dir, tag, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with Store.open(data_dir) as store:
        for i in range(count):
            store.set_param("SS_SIP_AUTHENTICATION_RETRY", i, tag)
    print("done")
""")


def test_two_processes_write_concurrently(tmp_path: Path) -> None:
    Store.open(tmp_path).close()
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), tag, "60"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for tag in ("proc-a", "proc-b")]
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert out.strip() == "done"
    with Store.open(tmp_path) as store:
        history = store.param_history()
        assert len(history) == 120
        assert {c.by for c in history} == {"proc-a", "proc-b"}
        assert store.load_params()["SS_SIP_AUTHENTICATION_RETRY"] == 59


def test_values_are_readable_by_plain_sqlite(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        store.set_param("SS_SIP_NAT_KEEP_ALIVE_MESSAGE", "ping", "cli")
    db = sqlite3.connect(tmp_path / DB_FILENAME)
    try:
        (value,) = db.execute("SELECT value FROM param_values").fetchone()
    finally:
        db.close()
    assert json.loads(value) == "ping"


@pytest.mark.parametrize(("text", "stored"), [
    ("1001", "1001"),
    ("café", "café"),                                              # valid UTF-8 unchanged
    (b"\xc3\x28".decode("utf-8", "surrogateescape"), "\\xc3("),    # the bytes that arrived
    ("\ud800x", "\\ud800x"),                                       # any other lone surrogate
])
def test_storable_text_keeps_every_byte_and_sqlite_accepts_it(tmp_path: Path, text: str,
                                                              stored: str) -> None:
    assert storable_text(text) == stored
    with Store.open(tmp_path) as store, store.transaction() as db:
        db.execute("CREATE TABLE t (v TEXT)")
        db.execute("INSERT INTO t VALUES (?)", (storable_text(text),))


def test_claim_is_held_by_one_open_store_until_it_closes(tmp_path: Path) -> None:
    first = Store.open(tmp_path)
    second = Store.open(tmp_path)
    assert first.claim("calls") and first.claim("calls")  # again: still held
    assert not second.claim("calls")
    assert second.claim("other")  # another name is another lock
    first.close()  # as when its process dies
    assert second.claim("calls")
    second.close()
