"""`vosapp auth events|suspended|unsuspend` against a real store."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from vosapp.cli import main
from vosapp.clock import ManualClock
from vosapp.params import Params
from vosapp.store import Store
from vosapp.switch.auth import AuthPolicy, AuthRequest, Verdict
from vosapp.switch.registrar import SqliteAuthJournal


@pytest.fixture()
def data_dir(tmp_path: Path) -> Path:
    clock = ManualClock(wall_origin=time.time())
    with Store.open(tmp_path) as store:
        policy = AuthPolicy(Params.defaults().replace(SS_AUTHENTICATION_MAX_RETRY=2), clock,
                            SqliteAuthJournal(store))
        for i in range(2):
            policy.decide(AuthRequest("REGISTER", f"c{i}", "1001", "192.0.2.7", 5060),
                          Verdict.WRONG_PASSWORD)
    return tmp_path


def test_events_and_suspended(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["auth", "events", "--data-dir", str(data_dir)]) == 0
    out = capsys.readouterr().out
    assert out.count("wrong_password") == 2 and "suspended" in out and "192.0.2.7" in out
    assert main(["auth", "suspended", "--json", "--data-dir", str(data_dir)]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["user"], row["address"], row["scope"]) == ("1001", "192.0.2.7", "terminal")


def test_unsuspend_by_user_then_nothing_left(data_dir: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["auth", "unsuspend", "1001", "--data-dir", str(data_dir)]) == 0
    assert "lifted 1" in capsys.readouterr().out
    assert main(["auth", "unsuspend", "1001", "--data-dir", str(data_dir)]) == 1
    assert main(["auth", "suspended", "--data-dir", str(data_dir)]) == 0
    assert "no suspended terminals" in capsys.readouterr().out


def test_no_store_yet_is_not_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["auth", "events", "--data-dir", str(tmp_path / "none")]) == 0
    assert "no authentication events" in capsys.readouterr().out
    assert not (tmp_path / "none").exists()


def test_bad_limit_is_one_line_error(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["auth", "events", "--limit", "0", "--data-dir", str(data_dir)]) == 2
    assert "--limit must be at least 1" in capsys.readouterr().err
