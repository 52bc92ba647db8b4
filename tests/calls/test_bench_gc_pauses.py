"""bench/gc_pauses.py's machinery on a real ``vosapp serve`` (not timed): one wave of two relayed
calls through its launcher, so the GC-pause bench cannot silently rot."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from tests.calls.test_bench_media_calls import media_calls, rtp_range
from tests.support.bench import load_bench
from tests.support.serving import ROOT

pytestmark = pytest.mark.timeout(120)

gc_pauses = load_bench("gc_pauses")


def test_one_wave_of_relayed_calls_reports_collections_per_generation(tmp_path: Path) -> None:
    low, high = rtp_range()
    args = argparse.Namespace(mode="relay", calls=2, waves=1, hold=1.0, setup_rate=20.0,
                              rtp_ports=f"{low}-{high}", types=False, threshold="300,10,10",
                              pin=False)
    payloads = {name: media_calls.speechlike_payloads(name, packets=50)
                for name in ("PCMA", "G729")}
    result = gc_pauses.one_run("after", ROOT, args, payloads, tmp_path)
    assert result["ok"]
    assert result["threshold"] == [300, 10, 10]  # the experiment's thresholds reached serve
    assert result["gens"][0]["n"] > 0  # collections recorded, by generation
    assert set(result["gens"]) == {0, 1, 2}
    assert "gen0:" in gc_pauses.report(result)
