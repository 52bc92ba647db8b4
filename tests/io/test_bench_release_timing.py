"""bench/release_timing's machinery (not a figure): with it on PYTHONPATH, a real ``vosapp
serve`` logs one timed release per period, so the measurements of docs/benchmarks.md "Memory
given back while media is relayed" can be made again."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.support.serving import ROOT, serve, write_config


def log_releases(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, period: str) -> Path:
    """The environment that has a ``vosapp serve`` started from here log its releases
    (bench/release_timing at ``PERIOD=period``); returns the log's path."""
    log = tmp_path / "releases.log"
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(ROOT / "bench" / "release_timing"), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("RELEASE_LOG", str(log))
    monkeypatch.setenv("PERIOD", period)
    return log


def test_a_served_switch_logs_each_timed_release(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    log = log_releases(tmp_path, monkeypatch, period="0.1")
    with serve(write_config(tmp_path)):
        deadline = time.monotonic() + 20.0
        while (not log.exists() or len(log.read_text().splitlines()) < 3) \
                and time.monotonic() < deadline:
            time.sleep(0.1)
    lines = [line.split() for line in log.read_text().splitlines()]
    assert len(lines) >= 3
    for seconds, pause_ms, rss_before, rss_after, relays in lines:
        assert float(seconds) > 0 and float(pause_ms) >= 0 and relays == "0"
        assert float(rss_before) > 10 and float(rss_after) > 10  # MB of a real process


def test_the_switchs_own_schedule_logged_with_period_serve(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    """``PERIOD=serve`` keeps ``vosapp.io.serve``'s schedule (its first release after
    FREE_MEMORY_PERIOD, 15 s) and logs what it releases, without changing it."""
    log = log_releases(tmp_path, monkeypatch, period="serve")
    with serve(write_config(tmp_path)):
        started = time.monotonic()
        while not (log.exists() and log.read_text()) and time.monotonic() - started < 30:
            time.sleep(0.2)
        first_after = time.monotonic() - started
    [line] = [line.split() for line in log.read_text().splitlines()]
    seconds, pause_ms, _rss_before, _rss_after, relays = line
    assert 13.0 <= first_after and 14.0 <= float(seconds) <= 17.0
    assert float(pause_ms) >= 0 and relays == "0"
