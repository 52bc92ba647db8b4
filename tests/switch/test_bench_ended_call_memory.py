"""bench/ended_call_memory.py's machinery (not a figure): it places its calls, they all end,
and it reports a positive memory per ended call, so the bench cannot silently rot."""

from __future__ import annotations

import pytest

from tests.support.bench import load_bench

ended_call_memory = load_bench("ended_call_memory")


def test_the_bench_measures_what_ended_calls_hold(capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    per_call, after, in_window = ended_call_memory.measure(160)
    assert in_window == 128 and per_call > 0 and after >= 0  # (it asserts every call ended)
    monkeypatch.setenv("CALLS", "160")
    ended_call_memory.main()
    assert "KB per ended call held within 64*T1" in capsys.readouterr().out
