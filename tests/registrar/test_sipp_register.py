"""Loopback: real SIPp against a real `vosapp serve` (docs/behaviour.md §2 and RFC 3261 §10 on the
wire)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.support import (
    PASSWORD,
    SCENARIOS,
    USER,
    needs_sipp,
    register_with_sipp,
    run_vosapp,
    serve,
    write_config,
)

pytestmark = [pytest.mark.sipp, needs_sipp, pytest.mark.timeout(120)]


def test_vosapp_bindings_lists_a_phone_sipp_registered(tmp_path: Path) -> None:
    with serve(write_config(tmp_path)) as served:
        run = register_with_sipp(served, "register_auth.xml", tmp_path)
        assert run.returncode == 0, run.stdout[-2000:]
        listing = run_vosapp("bindings", "--json", "--data-dir", str(served.data_dir))
        text = run_vosapp("bindings", "--data-dir", str(served.data_dir)).stdout
    [row] = json.loads(listing.stdout)
    assert (row["user"], row["source_host"], row["transport"]) == (USER, "127.0.0.1", "udp")
    assert row["user_agent"] == "SIPp vosapp-test" and 0 < row["expires_in"] <= 3600
    assert row["contact"].startswith(f"sip:{USER}@127.0.0.1:")
    assert f"{USER}  {row['contact']}" in text and "SIPp vosapp-test" in text


@pytest.mark.parametrize("code", [401, 407])
def test_sipp_registers_with_digest(tmp_path: Path, code: int) -> None:
    config = write_config(tmp_path, {"SS_SIP_AUTHENTICATION_CODE": code})
    with serve(config) as served:
        run = register_with_sipp(served, "register_auth.xml", tmp_path, calls=3)
    assert run.returncode == 0, run.stdout[-2000:]
    assert run.statuses() == [code, 200] * 3
    header = "Proxy-Authenticate" if code == 407 else "WWW-Authenticate"
    assert header in run.messages


def test_sipp_registers_over_tcp(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"SS_SIP_AUTHENTICATION_CODE": 407})
    with serve(config, udp_only=False) as served:
        run = register_with_sipp(served, "register_auth.xml", tmp_path, calls=2, transport="t1")
    assert run.returncode == 0, run.stdout[-2000:]
    assert run.statuses() == [407, 200] * 2


def test_wrong_password_until_suspended_then_refused(tmp_path: Path) -> None:
    config = write_config(tmp_path)  # defaults: SS_AUTHENTICATION_MAX_RETRY 6, suspend 180 s
    with serve(config) as served:
        guesses = register_with_sipp(served, "register_attempt.xml", tmp_path, password="wrong", calls=6)
        assert guesses.returncode == 0, guesses.stdout[-2000:]
        # Each call: challenge, wrong answer re-challenged ... the 6th failure suspends.
        assert guesses.statuses() == [401, 401] * 5 + [401, 403]
        assert "suspended" in guesses.messages
        # The right password no longer helps: refused before any challenge.
        refused = register_with_sipp(served, "register_attempt.xml", tmp_path, calls=1)
        assert refused.statuses() == [403]
        listing = run_vosapp("auth", "suspended", "--data-dir", str(served.data_dir))
        assert f"{USER}@127.0.0.1" in listing.stdout
        events = run_vosapp("auth", "events", "--data-dir", str(served.data_dir))
        assert events.stdout.count("wrong_password") == 6
        assert "suspended" in events.stdout
        # The operator lifts it from another process; the running switch honours it.
        lifted = run_vosapp("auth", "unsuspend", "127.0.0.1", "--data-dir",
                            str(served.data_dir))
        assert lifted.returncode == 0, lifted.stdout + lifted.stderr
        again = register_with_sipp(served, "register_auth.xml", tmp_path, calls=1)
        assert again.returncode == 0 and again.statuses() == [401, 200]


def test_reply_unauthorized_off_is_silence_seen_as_sipp_timeouts(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"SS_REPLY_UNAUTHORIZED": "Off"})
    with serve(config) as served:
        run = register_with_sipp(served, "register_auth.xml", tmp_path, calls=1,
                       extra=("-recv_timeout", "3000"), timeout=20)
        events = run_vosapp("auth", "events", "--data-dir", str(served.data_dir))
    assert run.returncode != 0
    assert run.statuses() == []  # not a single response
    assert "challenge" in events.stdout and "SS_REPLY_UNAUTHORIZED=Off" in events.stdout


def test_bindings_survive_a_restart(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    with serve(config) as served:
        assert register_with_sipp(served, "register_auth.xml", tmp_path).returncode == 0
    with serve(config) as served:  # same data directory, new process
        fetched = register_with_sipp(served, "register_fetch.xml", tmp_path)
    assert fetched.returncode == 0, fetched.stdout[-2000:]
    assert fetched.statuses() == [401, 200]
    assert f"<sip:{USER}@127.0.0.1:" in fetched.messages.split("SIP/2.0 200")[1]


def test_suspension_survives_a_restart(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"SS_AUTHENTICATION_MAX_RETRY": 2})
    with serve(config) as served:
        register_with_sipp(served, "register_attempt.xml", tmp_path, password="bad", calls=2)
    with serve(config) as served:
        refused = register_with_sipp(served, "register_attempt.xml", tmp_path, password=PASSWORD)
    assert refused.statuses() == [403]


def test_sigkill_under_load_loses_no_acknowledged_binding(tmp_path: Path) -> None:
    import re
    import signal
    import threading
    import time

    from vosapp.io.clock import LoopClock
    from vosapp.store import Store
    from vosapp.switch.registrar import Registrar

    users = {str(30000 + i): f"pw-{30000 + i}" for i in range(200)}
    config = write_config(tmp_path, accounts=users)
    injection = tmp_path / "many.csv"
    injection.write_text("SEQUENTIAL\n" + "".join(
        f"{u};[authentication username={u} password={p}]\n" for u, p in users.items()))
    messages = tmp_path / "load.log"
    with serve(config) as served:
        killer = threading.Timer(1.5, lambda: served.process.send_signal(signal.SIGKILL))
        killer.start()
        subprocess.run(["sipp", f"127.0.0.1:{served.port}", "-sf",
                        str(SCENARIOS / "register_auth.xml"), "-inf", str(injection),
                        "-m", "2000", "-r", "200", "-l", "20", "-i", "127.0.0.1", "-p", "0",
                        "-trace_msg", "-message_file", str(messages), "-timeout", "4s",
                        # after the kill, calls in flight fail fast instead of
                        # retransmitting for 32 s
                        "-recv_timeout", "2000", "-max_retrans", "2", "-nostdin"], capture_output=True, timeout=60, check=False,
                       cwd=tmp_path)
        killer.join()
        served.process.wait(timeout=10)
        assert served.process.returncode == -signal.SIGKILL
        time.sleep(0.1)
    log = messages.read_text(errors="replace")
    acknowledged = set()
    for block in log.split("-----------------------------------------------"):
        if "\nSIP/2.0 200 OK" in block:
            acknowledged.update(re.findall(r"^To: <sip:(\d+)@", block, re.MULTILINE))
    assert len(acknowledged) > 20  # the kill came in the middle of the load
    with Store.open(served.data_dir) as store:  # opens: the file passed SQLite's quick_check
        bound = {b.aor for b in Registrar(store, LoopClock()).all_bindings()}
    assert acknowledged <= bound


def test_vosapp_params_set_reaches_new_registrations(tmp_path: Path) -> None:
    import time

    config = write_config(tmp_path)
    with serve(config) as served:
        before = register_with_sipp(served, "register_auth.xml", tmp_path)
        changed = run_vosapp("params", "set", "SS_SIP_AUTHENTICATION_CODE", "407",
                             "--config", str(config))
        assert changed.returncode == 0, changed.stderr
        deadline = time.monotonic() + 10
        while True:  # the running switch reloads stored parameters about once a second
            after = register_with_sipp(served, "register_auth.xml", tmp_path)
            if after.statuses()[:1] == [407] or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    assert before.statuses() == [401, 200]
    assert after.statuses() == [407, 200]
