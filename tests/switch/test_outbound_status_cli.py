"""`vosapp status` rendering and its behaviour without a store."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from vosapp.cli import main
from vosapp.cli.status import describe
from vosapp.switch.outbound import UpstreamStatus

NOW = 1_800_000_000.0


BASE = UpstreamStatus(
    gateway="carrier", proxy="192.0.2.9:5060", transport="UDP", aor="sip:u@192.0.2.9",
    contact='<sip:u@192.0.2.1:5060>;+sip.instance="<urn:uuid:x>"', state="registered",
    granted_expires=600, expires_at=NOW + 500, next_action="refresh",
    next_action_at=NOW + 460, last_response="200 OK", last_error=None, call_id="c@x",
    cseq=7, updated_at=NOW - 100)


def row(**changes: object) -> UpstreamStatus:
    return dataclasses.replace(BASE, **changes)  # type: ignore[arg-type]


def test_registered_row() -> None:
    text = "\n".join(describe(row(), NOW))
    assert text.startswith("carrier: registered  sip:u@192.0.2.9 via 192.0.2.9:5060 (udp)")
    assert "granted 600 s, expires in 500 s" in text and "refresh in 460 s" in text
    assert "last answer 200 OK" in text and "(100 s ago)" in text and "CSeq 7" in text


def test_a_killed_switch_shows_a_lapsed_binding() -> None:
    text = "\n".join(describe(row(expires_at=NOW - 5, next_action_at=NOW - 45), NOW))
    assert "registered (lapsed" in text and "expires 5 s ago" in text


def test_failed_row_shows_the_error() -> None:
    text = "\n".join(describe(row(state="failed", granted_expires=None, expires_at=None,
                                  next_action="retry", last_response="403 Forbidden",
                                  last_error="rejected: 403 Forbidden"), NOW))
    assert "carrier: failed" in text and "retry in 460 s" in text
    assert "last error: rejected: 403 Forbidden" in text


def test_cli_without_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--data-dir", str(tmp_path)]) == 0
    assert "no upstream registrations recorded" in capsys.readouterr().out
    assert not (tmp_path / "vosapp.sqlite").exists()  # reading never creates a store
    assert main(["status", "--json", "--data-dir", str(tmp_path)]) == 0
    assert json.loads(capsys.readouterr().out) == []
