"""A crash with calls up (issue: no CDR lost, no far leg left up): SIPp callers hold calls
through `vosapp serve` to a SIPp vendor, the switch is killed with SIGKILL and started again
on the same data directory and port. Its CDR rows are closed ("switch restarted", ended at
the last heartbeat) and both SIPp sides receive a BYE -- each SIPp exits 0 only when its
scenario (which waits for that BYE and answers it) ran to the end."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from tests.support import finish_sipp, free_port, needs_sipp, serve, start_sipp, write_config
from vosapp.lab.call_lab import loopback_gateways

pytestmark = [pytest.mark.sipp, needs_sipp]

CALLS = 3
#: SIPp's whole run: the calls, up to one heartbeat (5 s), the kill and the restart.
SIPP_TIMEOUT = 90


def query(database: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10) as db:
        return db.execute(sql).fetchall()


def wait_for(what: str, check, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_kill_with_calls_up_then_restart_closes_cdrs_and_byes_both_legs(
        tmp_path: Path) -> None:
    vendor_port = free_port()
    config = write_config(tmp_path, accounts={}, name="crash.toml",
                          extra=loopback_gateways(vendor_port, prefix="00"))
    database = tmp_path / "data" / "vosapp.sqlite"
    vendor = start_sipp("call_uas.xml", cwd=tmp_path, local_port=vendor_port, calls=CALLS,
                        timeout=SIPP_TIMEOUT)
    callers = None
    try:
        with serve(config, cwd=tmp_path) as served:
            process, port = served.process, served.port
            callers = start_sipp("call_uac_held.xml", cwd=tmp_path, remote=f"127.0.0.1:{port}",
                                 local_port=free_port(), calls=CALLS, timeout=SIPP_TIMEOUT,
                                 extra=["-s", "0044123"])
            answered = wait_for(f"{CALLS} answered calls", lambda: (
                rows if len(rows := query(database, "SELECT answer_time FROM cdr WHERE "
                                          "answer_time IS NOT NULL")) == CALLS else None))
            last_answer = max(row[0] for row in answered)
            # a heartbeat after the answers, so the end time is the heartbeat's
            wait_for("a heartbeat after the answers", lambda: query(
                database, f"SELECT 1 FROM switch_heartbeat WHERE alive_at > {last_answer}"))
            process.kill()
            process.wait(10)
        assert query(database, "SELECT COUNT(*) FROM cdr WHERE end_time IS NULL") == [(CALLS,)]
        assert query(database, "SELECT COUNT(*) FROM cdr_dialogs") == [(2 * CALLS,)]
        [(alive_at,)] = query(database, "SELECT alive_at FROM switch_heartbeat")
        with serve(config, cwd=tmp_path, listen=f"127.0.0.1:{port}"):
            finish_sipp(callers, "call_uac_held.xml", tmp_path, timeout=SIPP_TIMEOUT + 10)
            finish_sipp(vendor, "call_uas.xml", tmp_path, timeout=SIPP_TIMEOUT + 10)
            rows = query(database, "SELECT status, end_reason, end_time, answer_time, "
                                   "duration FROM cdr")
    finally:
        for process in (vendor, callers):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
    assert len(rows) == CALLS
    for status, end_reason, end_time, answer_time, duration in rows:
        assert status == 200 and end_reason == "switch restarted"
        assert end_time == pytest.approx(alive_at)
        assert duration == pytest.approx(end_time - answer_time)
    assert query(database, "SELECT COUNT(*) FROM cdr_dialogs") == [(0,)]
