"""`vosapp` as a real subprocess: params round trips across processes, errors (exit 2,
one line), config check, --help everywhere, docs/parameters.md freshness, `lab --dry-run`."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess

import pytest

from vosapp.cli.params import render_markdown
from vosapp.clock import ManualClock
from vosapp.params import REGISTRY
from vosapp.store import DB_FILENAME, Store
from vosapp.switch.registrar import ContactRequest, Registrar

REPO_ROOT = Path(__file__).resolve().parents[2]
Run = Callable[..., CompletedProcess[str]]


def ok(result: CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def fails(result: CompletedProcess[str]) -> str:
    """Exit 2, nothing on stdout, exactly one line on stderr (the message)."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_set_persists_and_a_new_process_reads_it(vosapp: Run, tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    assert ok(vosapp("params", "get", "SS_SIP_AUTHENTICATION_RETRY", "--data-dir", data)) == "6\n"
    assert not (tmp_path / "data").exists()  # reading never creates the store
    out = ok(vosapp("params", "set", "SS_SIP_AUTHENTICATION_RETRY", "5", "--data-dir", data))
    assert "SS_SIP_AUTHENTICATION_RETRY = 5 (was 6" in out
    assert (tmp_path / "data" / DB_FILENAME).exists()
    assert ok(vosapp("--data-dir", data, "params", "get", "SS_SIP_AUTHENTICATION_RETRY")) == "5\n"
    listed = json.loads(ok(vosapp("params", "list", "--json", "--data-dir", data)))
    by_name = {row["name"]: row for row in listed}
    assert by_name["SS_SIP_AUTHENTICATION_RETRY"]["value"] == 5
    assert by_name["SS_SIP_AUTHENTICATION_RETRY"]["origin"] == "store"
    changed = json.loads(ok(vosapp("params", "list", "--json", "--changed", "--data-dir", data)))
    assert [row["name"] for row in changed] == ["SS_SIP_AUTHENTICATION_RETRY"]


def test_out_of_range_exits_2_naming_the_range(vosapp: Run, tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    line = fails(vosapp("params", "set", "SS_AUTHENTICATION_FAILED_SUSPEND", "10",
                        "--data-dir", data))
    assert "SS_AUTHENTICATION_FAILED_SUSPEND" in line and "60-3600" in line and "'10'" in line
    assert not (tmp_path / "data").exists()  # a rejected value touches nothing


def test_list_json_has_every_parameter_with_its_default(vosapp: Run) -> None:
    rows = json.loads(ok(vosapp("params", "list", "--json")))
    assert [row["name"] for row in rows] == list(REGISTRY.names())
    for row in rows:
        param = REGISTRY[row["name"]]
        assert row["default"] == param.default == row["value"]
        assert row["source"] in ("seed", "secondary")
        assert row["navigation"] and row["value_source"] and row["allowed"]
    text = ok(vosapp("params", "list"))
    assert text.splitlines()[0].split() == ["NAME", "VALUE", "DEFAULT", "ALLOWED", "FROM"]
    assert len(text.splitlines()) == len(REGISTRY) + 1
    assert "no parameter differs" in ok(vosapp("params", "list", "--changed"))


def test_multi_word_values_reset_and_history(vosapp: Run, tmp_path: Path) -> None:
    data = ("--data-dir", str(tmp_path / "data"))
    ok(vosapp("params", "set", "SS_SIP_AUTHENTICATION_CODE", "407", "Proxy", "Authentication",
              "Required", *data))
    ok(vosapp("params", "set", "SS_REPLY_UNAUTHORIZED", "off", *data))
    ok(vosapp("params", "set", "SS_SIP_RESEND_INTERVAL", "1s", *data))
    assert ok(vosapp("params", "get", "SS_SIP_AUTHENTICATION_CODE", *data)) == "407\n"
    assert ok(vosapp("params", "get", "SS_REPLY_UNAUTHORIZED", *data)) == "Off\n"
    assert ok(vosapp("params", "get", "SS_SIP_RESEND_INTERVAL", *data)) == "1000\n"
    assert "SS_REPLY_UNAUTHORIZED = On (reset)" in ok(
        vosapp("params", "reset", "SS_REPLY_UNAUTHORIZED", *data))
    assert "nothing to reset" in ok(vosapp("params", "reset", "SS_REPLY_UNAUTHORIZED", *data))
    out = ok(vosapp("params", "reset", "--all", *data))
    assert "SS_SIP_AUTHENTICATION_CODE = 401 (reset)" in out
    history = json.loads(ok(vosapp("params", "history", "--json", *data)))
    assert [(h["name"], h["action"], h["old"], h["new"], h["by"]) for h in history] == [
        ("SS_SIP_AUTHENTICATION_CODE", "set", 401, 407, "cli"),
        ("SS_REPLY_UNAUTHORIZED", "set", True, False, "cli"),
        ("SS_SIP_RESEND_INTERVAL", "set", 500, 1000, "cli"),
        ("SS_REPLY_UNAUTHORIZED", "reset", False, True, "cli"),
        ("SS_SIP_AUTHENTICATION_CODE", "reset", 407, 401, "cli"),
        ("SS_SIP_RESEND_INTERVAL", "reset", 1000, 500, "cli"),
    ]
    table = ok(vosapp("params", "history", "SS_REPLY_UNAUTHORIZED", *data))
    assert len(table.splitlines()) == 3 and "On" in table and "Off" in table


def test_config_parameters_and_data_dir_are_used(vosapp: Run, tmp_path: Path,
                                                 clean_env: dict[str, str]) -> None:
    config = tmp_path / "site" / "switch.toml"
    config.parent.mkdir()
    config.write_text('[switch]\ndata_dir = "state"\n[parameters]\n'
                      'SS_SIP_AUTHENTICATION_TIMEOUT = "20s"\n')
    assert ok(vosapp("--config", str(config), "params", "get",
                     "SS_SIP_AUTHENTICATION_TIMEOUT")) == "20\n"
    ok(vosapp("params", "set", "SS_SIP_AUTHENTICATION_TIMEOUT", "30", "--config", str(config)))
    assert (config.parent / "state" / DB_FILENAME).exists()  # relative to the config file
    env = dict(clean_env, VOSAPP_CONFIG=str(config))
    assert ok(vosapp("params", "get", "SS_SIP_AUTHENTICATION_TIMEOUT", env=env)) == "30\n"
    rows = json.loads(ok(vosapp("params", "list", "--json", env=env)))
    assert {r["name"]: r["origin"] for r in rows}["SS_SIP_AUTHENTICATION_TIMEOUT"] == "store"
    out = ok(vosapp("params", "reset", "SS_SIP_AUTHENTICATION_TIMEOUT", env=env))
    assert "SS_SIP_AUTHENTICATION_TIMEOUT = 20 (reset)" in out  # back to the config's value
    rows = json.loads(ok(vosapp("params", "list", "--json", env=env)))
    assert {r["name"]: r["origin"] for r in rows}["SS_SIP_AUTHENTICATION_TIMEOUT"] == "config"


def test_default_config_is_data_lab_toml_in_the_current_directory(
        vosapp: Run, tmp_path: Path) -> None:
    workdir = tmp_path / "cwd"
    (workdir / "data").mkdir()
    shutil.copy(REPO_ROOT / "data" / "lab.toml", workdir / "data" / "lab.toml")
    ok(vosapp("params", "set", "SS_SIP_AUTHENTICATION_RETRY", "3"))
    assert (tmp_path / "cwd" / "var" / "lab" / DB_FILENAME).exists()  # ../var/lab from data/


@pytest.mark.parametrize("args", [
    ("params", "get", "SS_NOT_THERE"),
    ("params", "set", "SS_SIP_AUTHENTICATION_RETRY", "many", "--data-dir", "{tmp}"),
    ("params", "set", "SS_REPLY_UNAUTHORIZED", "perhaps", "--data-dir", "{tmp}"),
    ("params", "set", "SS_SIP_AUTHENTICATION_RETRY", "5"),  # no data dir selected
    ("params", "reset", "SS_NOT_THERE"),
    ("params", "history", "SS_NOT_THERE"),
    ("params", "frobnicate"),
    ("params",),
    ("params", "reset"),
    ("params", "reset", "SS_REPLY_UNAUTHORIZED", "--all"),
    ("params", "list", "--jsn"),
    ("nonsense",),
    (),
    ("--config", "{tmp}/missing.toml", "params", "list"),
    ("config", "check", "{tmp}/missing.toml"),
    ("--config",),
    ("lab", "--port", "99999", "--dry-run"),
    ("serve", "--realtime-priority", "0"),  # SCHED_RR priorities are 1-99
    ("serve", "--realtime-priority", "100"),
    ("lab", "--port", "http"),
])
def test_bad_input_is_one_line_and_exit_2(vosapp: Run, tmp_path: Path,
                                          args: tuple[str, ...]) -> None:
    line = fails(vosapp(*(a.replace("{tmp}", str(tmp_path)) for a in args)))
    assert line.startswith("vosapp")


def test_corrupt_store_is_a_clear_error(vosapp: Run, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / DB_FILENAME).write_bytes(b"not a database at all" * 50)
    line = fails(vosapp("params", "list", "--data-dir", str(data)))
    assert str(data / DB_FILENAME) in line and "not an SQLite database" in line


def test_config_check(vosapp: Run, tmp_path: Path) -> None:
    out = ok(vosapp("config", "check", str(REPO_ROOT / "data" / "lab.toml")))
    assert "ok" in out.splitlines()[0]
    assert "2 accounts, 1 mapping gateway, 1 routing gateway, 0 parameter overrides" in out
    bad = tmp_path / "bad.toml"
    bad.write_text('[[account]]\nuser = "1001"\npassword = "x"\npasswrod = "y"\n')
    line = fails(vosapp("config", "check", str(bad)))
    assert str(bad) in line and "[account #1] passwrod" in line and "password" in line
    assert "note:" not in out  # lab.toml sets sip_listen: nothing falls back silently


def test_config_check_says_an_empty_file_runs_on_defaults(vosapp: Run, tmp_path: Path) -> None:
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    out = ok(vosapp("config", "check", str(empty)))
    assert out.splitlines()[0] == f"{empty}: ok"
    assert "note: the file sets nothing; every setting is a default" in out
    assert "note: no [switch] sip_listen: SIP listens on the default 127.0.0.1:5060" in out
    only_accounts = tmp_path / "accounts.toml"
    only_accounts.write_text('[[account]]\nuser = "1001"\npassword = "x"\n')
    out = ok(vosapp("config", "check", str(only_accounts)))
    assert "sets nothing" not in out and "default 127.0.0.1:5060" in out


def test_bindings_lists_registered_phones(vosapp: Run, tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert ok(vosapp("bindings", "--data-dir", str(data))) == "no registered phones\n"
    assert json.loads(ok(vosapp("bindings", "--json", "--data-dir", str(data)))) == []
    assert not data.exists()  # listing never creates the store
    now = time.time()
    with Store.open(data) as store:
        registrar = Registrar(store, ManualClock(wall_origin=now))
        registrar.register("1001", [ContactRequest("sip:1001@192.0.2.7:5062", q=0.5)],
                           expires_header=600, call_id="c1", cseq=1, replace=True,
                           source=("198.51.100.9", 40000), transport="tcp",
                           user_agent="Linphone/5.2")
        registrar.register("1002", [ContactRequest("sip:1002@127.0.0.1:5070")],
                           expires_header=120, call_id="c2", cseq=1, replace=True,
                           source=("127.0.0.1", 5070))
    rows = json.loads(ok(vosapp("bindings", "--json", "--data-dir", str(data))))
    assert [(r["user"], r["contact"], r["source_host"], r["source_port"], r["transport"],
             r["q"], r["user_agent"]) for r in rows] == [
        ("1001", "sip:1001@192.0.2.7:5062", "198.51.100.9", 40000, "tcp", 0.5, "Linphone/5.2"),
        ("1002", "sip:1002@127.0.0.1:5070", "127.0.0.1", 5070, "udp", None, ""),
    ]
    assert 0 < rows[0]["expires_in"] <= 600 and 0 < rows[1]["expires_in"] <= 120
    lines = ok(vosapp("bindings", "--data-dir", str(data))).splitlines()
    assert lines[0].split()[:4] == ["USER", "CONTACT", "RECEIVED", "FROM"]
    assert lines[1].split()[:4] == ["1001", "sip:1001@192.0.2.7:5062", "198.51.100.9:40000",
                                    "TCP"]
    assert "Linphone/5.2" in lines[1] and " 0.5 " in lines[1]
    assert lines[2].split()[:4] == ["1002", "sip:1002@127.0.0.1:5070", "127.0.0.1:5070", "UDP"]


@pytest.mark.parametrize("command", [
    (), ("params",), ("params", "list"), ("params", "get"), ("params", "set"),
    ("params", "reset"), ("params", "history"), ("params", "doc"), ("config",),
    ("config", "check"), ("lab",), ("bindings",), ("serve",), ("trace", "export"),
    ("status",), ("auth", "events"), ("cdr", "list"),
])
def test_help_everywhere(vosapp: Run, command: tuple[str, ...]) -> None:
    out = ok(vosapp(*command, "--help"))
    assert out.startswith("usage: vosapp")


def test_docs_parameters_md_is_up_to_date(vosapp: Run) -> None:
    committed = (REPO_ROOT / "docs" / "parameters.md").read_text(encoding="utf-8")
    generated = ok(vosapp("params", "doc"))
    assert generated == render_markdown()
    assert committed == generated, "docs/parameters.md is stale: run `make docs` and commit it"
    for param in REGISTRY:
        assert f"`{param.name}`" in generated


def test_lab_dry_run_shows_the_jupyter_command(vosapp: Run, tmp_path: Path) -> None:
    out = ok(vosapp("lab", "--no-browser", "--port", "8899", "--dry-run"))
    assert f"VOSAPP_CONFIG={REPO_ROOT / 'data' / 'lab.toml'}" in out
    assert "/bin/jupyter lab" in out
    assert f"--notebook-dir={REPO_ROOT / 'notebooks'}" in out
    assert "--no-browser" in out and "--port=8899" in out
    custom = tmp_path / "c.toml"
    custom.write_text("")
    out = ok(vosapp("--config", str(custom), "lab", "--dry-run"))
    assert f"VOSAPP_CONFIG={custom}" in out and "--no-browser" not in out
    bad = tmp_path / "bad.toml"
    bad.write_text("[swtich]\n")
    assert "swtich" in fails(vosapp("lab", "--config", str(bad), "--dry-run"))
