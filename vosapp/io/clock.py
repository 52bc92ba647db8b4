"""The program's one real-time clock: :class:`LoopClock`, asyncio loop time.

It satisfies :class:`vosapp.clock.Clock`, the protocol sans-IO code asks time through; tests
and notebooks pass :class:`vosapp.clock.ManualClock` instead. Everything that runs on real
time (the switch runtime, the media relay, the lab phones and live ladders) uses this class, so
timers and timestamps of one program share one origin: ``loop.time()``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

__all__ = ["LoopClock"]

log = logging.getLogger(__name__)


class _TimerHandle:
    __slots__ = ("_clock", "_handle")

    def __init__(self, clock: LoopClock) -> None:
        self._clock = clock
        self._handle: asyncio.TimerHandle | None = None

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._clock._handles.discard(self)


class LoopClock:
    """Real time on an event loop; remembers its timers so a shutdown can cancel them.

    Without a loop (``bind`` not called yet, or a process that has none) ``now()`` reads the
    same monotonic clock asyncio's default loop reads, and timers cannot be scheduled.

    No reference cycles per timer: at thousands of transactions per second, objects that only
    the cyclic GC can free make it walk a huge heap (see bench/options.sh)."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.loop = loop
        self._handles: set[_TimerHandle] = set()

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def now(self) -> float:
        return self.loop.time() if self.loop is not None else time.monotonic()

    def wall(self) -> float:
        return time.time()

    def call_at(self, when: float, callback: Callable[[], None]) -> _TimerHandle:
        if self.loop is None:
            raise RuntimeError("no event loop to run timers on (LoopClock.bind not called)")
        handle = _TimerHandle(self)
        handle._handle = self.loop.call_at(when, self._fire, handle, callback)
        self._handles.add(handle)
        return handle

    def _fire(self, handle: _TimerHandle, callback: Callable[[], None]) -> None:
        handle._handle = None  # breaks handle -> asyncio handle -> args -> handle
        self._handles.discard(handle)
        try:
            callback()
        except Exception:
            log.exception("timer callback failed")

    def call_later(self, delay: float, callback: Callable[[], None]) -> _TimerHandle:
        return self.call_at(self.now() + max(0.0, delay), callback)

    def cancel_all(self) -> None:
        for handle in list(self._handles):
            handle.cancel()

    @property
    def pending(self) -> int:
        return len(self._handles)
