"""Clocks: the only way sans-IO code learns the time.

Sans-IO layers (``vosapp.sip``, ``vosapp.switch``) never read the wall clock; they are
handed a :class:`Clock`. The asyncio runtime passes :class:`MonotonicClock` bound to the
event loop; tests and notebooks pass :class:`ManualClock` and move time themselves, so a
180 s suspension replays in microseconds and deterministically.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    """What sans-IO code may ask of time."""

    def now(self) -> float:
        """Monotonic seconds (arbitrary origin)."""
        ...

    def wall(self) -> float:
        """Seconds since the Unix epoch, for records people read."""
        ...

    def call_at(self, when: float, callback: Callable[[], None]) -> TimerHandle:
        """Run ``callback`` once ``now() >= when``."""
        ...

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        ...


@dataclass(order=True)
class _Scheduled:
    when: float
    seq: int
    callback: Callable[[], None] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    """A clock that only moves when told to; timers fire in time order during ``advance``."""

    def __init__(self, start: float = 0.0, wall_origin: float = 1_700_000_000.0) -> None:
        self._now = float(start)
        self._wall_origin = wall_origin - start
        self._queue: list[_Scheduled] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    def wall(self) -> float:
        return self._wall_origin + self._now

    def call_at(self, when: float, callback: Callable[[], None]) -> _Scheduled:
        item = _Scheduled(float(when), next(self._seq), callback)
        heapq.heappush(self._queue, item)
        return item

    def call_later(self, delay: float, callback: Callable[[], None]) -> _Scheduled:
        return self.call_at(self._now + max(0.0, delay), callback)

    def next_deadline(self) -> float | None:
        """When the earliest pending timer fires, or None when nothing is pending."""
        while self._queue and self._queue[0].cancelled:
            heapq.heappop(self._queue)
        return self._queue[0].when if self._queue else None

    def advance(self, seconds: float) -> int:
        """Move time forward by ``seconds``, firing due timers in order; returns how many fired."""
        if seconds < 0:
            raise ValueError(f"a clock cannot go backwards (advance by {seconds!r} s)")
        return self.advance_to(self._now + seconds)

    def advance_to(self, when: float) -> int:
        fired = 0
        while True:
            deadline = self.next_deadline()
            if deadline is None or deadline > when:
                break
            item = heapq.heappop(self._queue)
            self._now = max(self._now, item.when)
            item.callback()
            fired += 1
        self._now = max(self._now, when)
        return fired

    def run_until_idle(self, limit: float = 1e9) -> int:
        """Fire every pending timer (and those they schedule) up to ``now() + limit``."""
        return self.advance_to(self._now + limit) if self.next_deadline() is not None else 0


class MonotonicClock:
    """Real time for the asyncio runtime: ``call_at`` schedules on the running event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop

    def now(self) -> float:
        return self._loop.time() if self._loop is not None else time.monotonic()

    def wall(self) -> float:
        return time.time()

    def call_at(self, when: float, callback: Callable[[], None]) -> TimerHandle:
        if self._loop is None:
            raise RuntimeError("MonotonicClock needs an event loop to schedule timers")
        return self._loop.call_at(when, callback)

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        return self.call_at(self.now() + max(0.0, delay), callback)
