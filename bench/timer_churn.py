"""The switch clock's timers under churn: how long one add + cancel can hold the loop.

A busy switch keeps ~100,000 long timers pending (64*T1 guards of its transactions, at
hundreds of calls/s) and adds and cancels thousands a second. This keeps ``--live`` wheel
timers pending in a :class:`vosapp.io.clock.LoopClock` (the GC tuned as ``vosapp serve``
tunes it), then ``--ops`` times adds one and cancels the oldest, and reports the mean cost
and the operations over 1 ms (a table rebuilding itself, docs/benchmarks.md "Held calls with
media and new calls in one switch")::

    PYTHONPATH=$PWD .venv/bin/python bench/timer_churn.py            (another checkout: its
    PYTHONPATH=<checkout> .venv/bin/python bench/timer_churn.py       path first, same script)
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import time

from vosapp.io.clock import LoopClock
from vosapp.io.serve import tune_gc


def churn(live: int, ops: int) -> tuple[float, list[float]]:
    """(mean seconds per add + cancel, the durations over 1 ms)."""
    tune_gc()
    loop = asyncio.new_event_loop()
    try:
        clock = LoopClock(loop)
        base = loop.time() + 32.0  # 64*T1 ahead: on the wheel
        pending = collections.deque(clock.call_at(base + i * 1e-4, lambda: None)
                                    for i in range(live))
        slow = []
        started = time.perf_counter()
        for i in range(ops):
            began = time.perf_counter()
            handle = clock.call_at(base + (live + i) * 1e-4, lambda: None)
            pending.popleft().cancel()
            took = time.perf_counter() - began
            if took > 1e-3:
                slow.append(took)
            pending.append(handle)
        mean = (time.perf_counter() - started) / ops
        assert clock.pending == live
        return mean, slow
    finally:
        loop.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--live", type=int, default=100_000)
    parser.add_argument("--ops", type=int, default=300_000)
    args = parser.parse_args()
    mean, slow = churn(args.live, args.ops)
    print(f"{args.live} pending timers, {args.ops} adds + cancels: {mean * 1e6:.2f} µs each; "
          f"{len(slow)} over 1 ms (longest {max(slow, default=0.0) * 1e3:.1f} ms)")


if __name__ == "__main__":
    main()
