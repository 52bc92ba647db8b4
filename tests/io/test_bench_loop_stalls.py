"""bench/loop_stalls's machinery (not a figure): with it on PYTHONPATH, a real ``vosapp
serve`` times its SIP wake-ups, group commits, timer slots and GC passes and summarises them
as it stops, so the measurements of docs/benchmarks.md "Held calls with media and new calls in
one switch" can be made again."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from tests.io.test_runtime_loopback import options
from tests.support.serving import ROOT, serve, write_config


def test_a_served_switch_summarises_what_held_its_loop(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "stalls.log"
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(ROOT / "bench" / "loop_stalls"), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("STALL_LOG", str(log))
    with serve(write_config(tmp_path)) as switch, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        probe.settimeout(5)
        port = probe.getsockname()[1]
        for n in range(5):
            probe.sendto(options(port, branch=f"z9hG4bK-stall-{n}", call_id=f"stall-{n}@test"),
                         (switch.host, switch.port))
            assert probe.recv(65535).startswith(b"SIP/2.0 200 ")
    rows = {fields[1]: fields for fields in (line.split() for line in log.read_text().splitlines())}
    # only the switch wrote (the test process runs no SIP socket of its own)
    assert {fields[0] for fields in rows.values()} == {str(switch.process.pid)}
    wakeups = rows["sip-wakeup"]
    # at least one (an OPTIONS sent as the last answer leaves can join that wake-up)
    assert int(wakeups[2]) >= 1
    count, p50, p99, longest, total, over, over5, waited = (float(v) for v in wakeups[2:10])
    assert 0 <= p50 <= p99 <= longest and total > 0 and 0 <= over5 <= over <= count
    assert 0 <= waited <= count
    # The first OPTIONS grows the empty server-transaction table: a resize, seen as one.
    resizes = rows["resize-wakeup"]
    assert 1 <= int(resizes[2]) <= count
    # The served switch stores its trace (vosapp serve's default): flushed at least at stop.
    assert int(rows["trace-flush"][2]) >= 1
