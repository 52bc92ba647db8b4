"""bench/timer_churn.py's machinery (not a figure): it keeps the asked number of timers
pending while it adds and cancels, so docs/benchmarks.md's timer-churn figures can be made
again."""

from __future__ import annotations

import gc

from tests.support.bench import load_bench

timer_churn = load_bench("timer_churn")


def test_timer_churn_keeps_its_timers_pending_while_it_adds_and_cancels() -> None:
    thresholds = gc.get_threshold()
    try:
        mean, slow = timer_churn.churn(live=2_000, ops=5_000)  # asserts pending == live
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)  # tune_gc's settings are the switch's, not the suite's
    assert mean > 0 and all(took > 1e-3 for took in slow)
