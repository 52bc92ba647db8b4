"""vosapp.io.clock.LoopClock on a real event loop: precise timers and the timer wheel."""

from __future__ import annotations

import asyncio

import pytest

from vosapp.io import clock as loop_clock
from vosapp.io.clock import LoopClock


def test_wheel_timers_fire_in_time_order_never_early_and_cancelled_ones_never() -> None:

    async def run() -> None:
        loop = asyncio.get_running_loop()
        clock = LoopClock(loop, wheel_min_delay=0.1)  # a short test, same code path
        fired: list[tuple[str, float, float]] = []
        start = clock.now()

        def timer(name: str, delay: float) -> loop_clock._TimerHandle:
            when = start + delay
            return clock.call_at(when, lambda: fired.append((name, when, clock.now())))

        scheduled_before = len(loop._scheduled)  # type: ignore[attr-defined]
        # many timers due in the same 1/16 s share one asyncio timer
        for i in range(50):
            timer(f"same-slot-{i}", 0.2)
        assert len(loop._scheduled) - scheduled_before == 1  # type: ignore[attr-defined]
        late = timer("late", 0.3)
        cancelled = timer("cancelled", 0.25)
        first = timer("first", 0.15)
        short = timer("short", 0.01)  # below wheel_min_delay: an asyncio timer of its own
        assert short._handle is not None and first._handle is None
        assert clock.pending == 54
        cancelled.cancel()
        cancelled.cancel()  # once is what counts
        assert clock.pending == 53
        short_cancelled = timer("short-cancelled", 0.02)
        assert clock.pending == 54
        short_cancelled.cancel()
        short_cancelled.cancel()
        assert clock.pending == 53
        await asyncio.sleep(0.45)
        names = [name for name, _, _ in fired]
        assert names[0] == "short" and names[1] == "first" and names[-1] == "late"
        assert "cancelled" not in names and "short-cancelled" not in names
        assert len(names) == 53
        assert all(at >= when for _, when, at in fired)  # a timer never fires before its time
        assert [when for _, when, _ in fired] == sorted(when for _, when, _ in fired)
        assert clock.pending == 0 and not clock._wheel and late._callback is None
        late.cancel()  # after it fired: nothing to undo
        short.cancel()
        assert clock.pending == 0

    asyncio.run(run())


def _live_asyncio_timers(loop: asyncio.AbstractEventLoop) -> int:
    return sum(not handle.cancelled() for handle in loop._scheduled)  # type: ignore[attr-defined]


def test_the_wheel_takes_one_asyncio_timer_whatever_its_slots() -> None:
    """Slots wait in the clock's own heap: asyncio's heap, ordered by a Python ``__lt__``,
    holds one timer for the whole wheel, re-armed when an earlier slot comes, and a timer a
    callback sets on the wheel still fires in its turn."""

    async def run() -> None:
        loop = asyncio.get_running_loop()
        clock = LoopClock(loop, wheel_min_delay=0.1)  # a short test, same code path
        fired: list[tuple[str, float, float]] = []
        start = clock.now()
        before = _live_asyncio_timers(loop)

        def timer(name: str, delay: float) -> loop_clock._TimerHandle:
            when = start + delay
            return clock.call_at(when, lambda: fired.append((name, when, clock.now())))

        for i in range(12):  # 12 slots, latest first: each new one is the earliest
            timer(f"slot-{i}", 0.15 + (11 - i) / loop_clock.WHEEL_SLOTS_PER_SECOND)
        assert len(clock._slots) == 12 and _live_asyncio_timers(loop) - before == 1

        def chain() -> None:
            fired.append(("chain", start + 0.2, clock.now()))
            timer("set-by-a-callback", 0.7)  # among the pending slots, half a second on

        clock.call_at(start + 0.2, chain)
        assert _live_asyncio_timers(loop) - before == 1
        await asyncio.sleep(1.0)
        names = [name for name, _, _ in fired]
        assert len(names) == 14 and "set-by-a-callback" in names
        assert all(at >= when for _, when, at in fired)
        assert [when for _, when, _ in fired] == sorted(when for _, when, _ in fired)
        assert clock.pending == 0 and not clock._slots and not clock._wheel
        assert _live_asyncio_timers(loop) == before  # nothing left armed
        timer("after a quiet spell", clock.now() - start + 0.15)  # an empty wheel arms again
        assert _live_asyncio_timers(loop) - before == 1
        await asyncio.sleep(0.3)
        assert fired[-1][0] == "after a quiet spell"

    asyncio.run(run())


def test_cancel_all_stops_wheel_and_precise_timers_and_a_failing_callback_is_contained() -> None:

    async def run() -> None:
        clock = LoopClock(asyncio.get_running_loop(), wheel_min_delay=0.1)
        fired: list[str] = []
        clock.call_later(0.2, lambda: fired.append("wheel"))
        clock.call_later(0.2, lambda: fired.append("wheel, same slot"))
        clock.call_later(0.5, lambda: fired.append("wheel, later"))
        clock.call_later(0.01, lambda: fired.append("precise"))
        assert clock.pending == 4
        clock.cancel_all()
        assert clock.pending == 0
        clock.call_later(0.15, lambda: 1 / 0)  # logged, does not stop the slot's others
        clock.call_later(0.15, lambda: fired.append("after the failure"))
        await asyncio.sleep(0.6)
        assert fired == ["after the failure"] and clock.pending == 0

    asyncio.run(run())


def test_a_clock_without_a_loop_cannot_schedule() -> None:
    with pytest.raises(RuntimeError):
        LoopClock().call_later(5, lambda: None)


def test_now_is_the_loops_time_read_without_a_python_frame() -> None:
    """Clock.now is read several times per message: for an asyncio loop (whose time() is
    time.monotonic()) the clock holds time.monotonic itself; a loop with a time of its own
    (a virtual-time loop) is read through it, and bind() follows a new loop."""
    import time

    class ShiftedLoop(asyncio.SelectorEventLoop):
        def time(self) -> float:
            return 1000.0 + super().time()

    plain, shifted = asyncio.new_event_loop(), ShiftedLoop()
    try:
        clock = LoopClock(plain)
        assert clock.now is time.monotonic and clock.wall is time.time
        assert abs(clock.now() - plain.time()) < 0.5
        clock.bind(shifted)
        assert clock.now() - plain.time() > 999
        assert LoopClock().now is time.monotonic  # no loop yet: the same clock asyncio reads
    finally:
        plain.close()
        shifted.close()
