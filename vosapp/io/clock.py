"""The program's one real-time clock: :class:`LoopClock`, asyncio loop time.

It satisfies :class:`vosapp.clock.Clock`, the protocol sans-IO code asks time through; tests
and notebooks pass :class:`vosapp.clock.ManualClock` instead. Everything that runs on real
time (the switch runtime, the media relay, the lab phones and live ladders) uses this class, so
timers and timestamps of one program share one origin: ``loop.time()``.

Compiled (vosapp/compiled.py): every SIP transaction sets its timers here, from compiled
code, and the clock's two interpreted frames per timer set were 2-3 % of a registrar's event
loop at capacity (docs/benchmarks.md, thirty-fifth round).
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
import time
from collections.abc import Callable
from typing import Final

__all__ = ["LoopClock"]

log: Final = logging.getLogger(__name__)

#: Timers at least this many seconds away go on the clock's wheel (below) instead of each
#: taking a place in asyncio's timer heap: the RFC 3261 guard timers (B, D, F, H, J, K, L, M
#: = 64*T1 or T4, the switch's no-answer and ACK timers) are seconds long, mostly cancelled
#: long before they are due, and asyncio keeps a cancelled timer in its heap until its time.
WHEEL_MIN_DELAY: Final = 1.0
#: Slots of the wheel per second: a wheel timer fires up to 1/16 s after its time, never
#: before (RFC 3261's timers are minimum durations; 1/16 s is < 7 % of the shortest).
WHEEL_SLOTS_PER_SECOND: Final = 16


class _TimerHandle:
    __slots__ = ("_callback", "_clock", "_handle", "when")

    def __init__(self, clock: LoopClock, when: float, callback: Callable[[], None]) -> None:
        self._clock = clock
        self.when = when
        self._callback: Callable[[], None] | None = callback
        #: The asyncio timer of a timer off the wheel (None on the wheel or once done).
        self._handle: asyncio.TimerHandle | None = None

    def cancel(self) -> None:
        if self._callback is None:
            return  # fired or cancelled already
        self._callback = None  # a wheel slot skips it (and lets go of what it holds)
        clock = self._clock
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
            clock._precise.discard(self)
        else:
            clock._wheel_pending -= 1


def _time_of(loop: asyncio.AbstractEventLoop | None) -> Callable[[], float]:
    """What reads ``loop``'s time: ``time.monotonic`` itself for an asyncio loop (whose
    ``BaseEventLoop.time`` returns it) or none, else the loop's own ``time``."""
    if loop is None or type(loop).time is asyncio.BaseEventLoop.time:
        return time.monotonic
    return loop.time


def _when(handle: _TimerHandle) -> float:
    return handle.when


class LoopClock:
    """Real time on an event loop; remembers its timers so a shutdown can cancel them.

    Without a loop (``bind`` not called yet, or a process that has none) ``now()`` reads the
    same monotonic clock asyncio's default loop reads, and timers cannot be scheduled.

    Timers due in :data:`WHEEL_MIN_DELAY` or more share a wheel: 1/16 s slots, each slot's
    timers in a list (cancelling one only marks it), and one asyncio timer for the whole
    wheel, armed for its earliest slot. The slots wait in a heap of their numbers, not in
    asyncio's heap: asyncio orders its timers with ``TimerHandle.__lt__``, a Python method,
    and with a timer per slot of the next 64*T1 = 32 s (up to 512) every timer it took in or
    ran was compared with up to ~20 of them (bench/registrar_instructions.py: 5 % of the
    instructions of a registration at 20/s; docs/benchmarks.md, thirty-third round).

    No reference cycles per timer: at thousands of transactions per second, objects that only
    the cyclic GC can free make it walk a huge heap (see bench/options.sh)."""

    #: Monotonic seconds: the loop's time (Clock.now). Read several times per message, so an
    #: attribute holding the function that reads it, not a method that calls it: a C call
    #: (asyncio's ``loop.time()`` is ``time.monotonic()``) instead of two Python frames.
    now: Callable[[], float]
    #: Seconds since the Unix epoch (Clock.wall): ``time.time``, for the same reason.
    wall: Callable[[], float]

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None, *,
                 wheel_min_delay: float = WHEEL_MIN_DELAY) -> None:
        self.wall = time.time
        self.loop = loop
        self.now = _time_of(loop)
        #: The pending timers off the wheel (short: retransmissions, at most seconds' worth).
        self._precise: set[_TimerHandle] = set()
        #: slot number (ceil(when * WHEEL_SLOTS_PER_SECOND)) -> its timers
        self._wheel: dict[int, list[_TimerHandle]] = {}
        #: Wheel timers neither fired nor cancelled. Counted, not kept in a set: at hundreds
        #: of calls/s the wheel holds tens of thousands of them (64*T1 of each transaction),
        #: and a set that size, under constant adds and discards, rebuilds itself now and
        #: then, holding the loop for milliseconds (2-12 ms at 100,000 in bench/timer_churn.py;
        #: docs/benchmarks.md "Held calls with media and new calls in one switch").
        self._wheel_pending = 0
        #: The slot numbers of _wheel, a heap (ints: compared in C).
        self._slots: list[int] = []
        #: The wheel's asyncio timer, armed for the earliest slot (_slots[0]) while any is.
        self._armed: asyncio.TimerHandle | None = None
        #: Timers due in this many seconds or more go on the wheel (:data:`WHEEL_MIN_DELAY`;
        #: a test passes less, for the same code path in a short run).
        self.wheel_min_delay = wheel_min_delay

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.now = _time_of(loop)

    def call_at(self, when: float, callback: Callable[[], None]) -> _TimerHandle:
        loop = self.loop
        if loop is None:
            raise RuntimeError("no event loop to run timers on (LoopClock.bind not called)")
        handle = _TimerHandle(self, when, callback)
        # self.now() is loop.time() (bind), without asyncio's Python method around it
        if when - self.now() >= self.wheel_min_delay:
            slot = math.ceil(when * WHEEL_SLOTS_PER_SECOND)
            timers = self._wheel.get(slot)
            if timers is None:
                timers = self._wheel[slot] = []
                earliest = not self._slots or slot < self._slots[0]
                heapq.heappush(self._slots, slot)
                if earliest:
                    self._arm(slot)
            timers.append(handle)
            self._wheel_pending += 1
        else:
            handle._handle = loop.call_at(when, self._fire, handle)
            self._precise.add(handle)
        return handle

    def _fire(self, handle: _TimerHandle) -> None:
        callback = handle._callback
        handle._callback = None
        handle._handle = None  # breaks handle -> asyncio handle -> args -> handle
        self._precise.discard(handle)
        if callback is not None:
            _run(callback)

    def _arm(self, slot: int) -> None:
        """Point the wheel's asyncio timer at ``slot``."""
        if self._armed is not None:
            self._armed.cancel()
        assert self.loop is not None  # the wheel is filled by call_at, which has a loop
        self._armed = self.loop.call_at(slot / WHEEL_SLOTS_PER_SECOND, self._fire_wheel)

    def _fire_wheel(self) -> None:
        """The wheel's asyncio timer: fire its earliest slot (the armed one). The next is
        armed first, so a timer set by a callback of this slot finds the wheel armed."""
        self._armed = None
        slot = heapq.heappop(self._slots)
        if self._slots:
            self._arm(self._slots[0])
        self._fire_slot(slot)

    def _fire_slot(self, slot: int) -> None:
        timers = self._wheel.pop(slot, [])
        if len(timers) > 1:
            timers.sort(key=_when)  # in time order, like asyncio's heap (stable for ties)
        for handle in timers:
            callback = handle._callback
            if callback is None:
                continue  # cancelled
            handle._callback = None
            self._wheel_pending -= 1
            _run(callback)

    def call_later(self, delay: float, callback: Callable[[], None]) -> _TimerHandle:
        return self.call_at(self.now() + max(0.0, delay), callback)

    def cancel_all(self) -> None:
        for handle in list(self._precise):
            handle.cancel()
        for timers in self._wheel.values():
            for handle in timers:
                handle.cancel()

    @property
    def pending(self) -> int:
        """Timers neither fired nor cancelled."""
        return len(self._precise) + self._wheel_pending


def _run(callback: Callable[[], None]) -> None:
    try:
        callback()
    except Exception:
        log.exception("timer callback failed")
