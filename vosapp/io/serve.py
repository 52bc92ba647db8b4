"""Run a switch in the foreground until SIGINT/SIGTERM: the runtime half of ``vosapp serve``.

The command line half (options, the ``vosapp listening on ...`` line, exit status) is
:mod:`vosapp.cli.serve`; this module starts the :class:`~vosapp.io.runtime.Switch` and the
control channel, tells the caller when it is ready, and on a stop signal runs the stop hooks
(docs/behaviour.md §3) before the sockets close.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import logging
import os
import signal
from collections.abc import Callable, Sized
from dataclasses import dataclass
from pathlib import Path

from vosapp.config import Config
from vosapp.errors import VosappError
from vosapp.io.control import ControlServer, SwitchControl
from vosapp.io.rtp_relay import running_relays
from vosapp.io.runtime import Switch

log = logging.getLogger("vosapp.serve")


@dataclass(frozen=True)
class ServeOptions:
    """How to run the switch (``vosapp serve``'s options, already parsed)."""

    config: Config | None
    host: str | None = None  # None: the config's sip_listen
    port: int | None = None
    data_dir: Path | None = None
    transports: tuple[str, ...] = ("UDP", "TCP")
    persist_trace: bool = True
    trace_max_bytes: int = 256 * 1024 * 1024  # the stored trace's byte budget
    stop_timeout: float = 5.0
    control_port: int | None = 0  # None: no control channel
    realtime_priority: int | None = None  # SCHED_RR priority (1-99); None: the normal scheduler


#: CPython's cyclic GC collects the young generation once this many more container objects
#: were allocated than freed, scanning the survivors with the event loop (and every RTP
#: relay driven by it) stopped: ~0.4-1 us an object, so 50_000 held media up 15-35 ms,
#: 2_000 0.4 ms (p50), 3-4 ms at most under load (bench/gc_pauses.py).
YOUNG_GC_THRESHOLD = 2_000
#: ...but CPython counts the frees of *old* objects against that threshold too. While the
#: transactions and calls of 32 s ago die about as fast as new objects are made (the quiet
#: after a burst), the count stays under it and no young collection comes:
#: 13 s without one between two steps of bench/media_with_calls.py, 68,000 young objects,
#: then a 20-53 ms pause when calls came again (docs/benchmarks.md "The young generation
#: collected by time too"). So it is also collected every this many seconds.
YOUNG_GC_PERIOD = 0.1
#: The older generations hold what lives long (transactions for 32 s, calls, bindings): a
#: full scan of a busy switch's heap takes tens to hundreds of ms, so allocation counts never
#: trigger it. Calls and transactions free themselves by reference count (no cycles:
#: tests/calls/test_call_media.py); :func:`collect_old_generations` still collects them, for
#: whatever cyclic garbage there is, when no relay forwards media, or after a long while.
OLD_GC_PERIOD = 60.0  # s between looks for a quiet moment (no media, few transactions)
OLD_GC_MAX_DELAY = 3600.0  # s: collected then even with media (one pause an hour)
#: Live SIP transactions above which the switch is busy for the sweep too: each lingers 32 s
#: after its call (Timers J/H/L), so at 200 calls/s ~25,000 of them made the full scan ~0.5 s,
#: every 60 s, and the responses of that moment late past T1 (retransmissions: docs/
#: benchmarks.md "The SIP layer compiled"). Under 1,000 the scan stays within tens of ms.
QUIET_TRANSACTIONS = 1_000
_NEVER = 2**31 - 1  # a generation threshold no allocation count reaches (a C int)


def tune_gc() -> None:
    """A long-running switch keeps many transactions alive for 32 s (Timers J/H/L); with the
    default thresholds CPython's cyclic GC rescans them hundreds of times a second. Move the
    start-up objects out of its sight, collect the young generation in small steps and the
    old ones only from :func:`collect_old_generations`."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_GC_THRESHOLD, _NEVER, _NEVER)


def sweep_waits_for(transactions: Sized) -> Callable[[], bool]:
    """``vosapp serve``'s busy test for :func:`collect_old_generations`: a relay forwarding
    media, or more than :data:`QUIET_TRANSACTIONS` live SIP transactions."""
    return lambda: running_relays() > 0 or len(transactions) > QUIET_TRANSACTIONS


async def collect_old_generations(busy: Callable[[], int | bool],
                                  period: float = OLD_GC_PERIOD,
                                  max_delay: float = OLD_GC_MAX_DELAY) -> None:
    """Every ``period`` s: a full collection when ``busy()`` is false (no relay's packets nor
    a load of transactions wait for it), or when the last one is ``max_delay`` s old. Runs
    until cancelled."""
    await _every_period_unless_busy(gc.collect, busy, period, max_delay,
                                    asyncio.get_running_loop().time)


async def collect_young_generation_periodically(period: float = YOUNG_GC_PERIOD) -> None:
    """Every ``period`` s, collect the young generation (:data:`YOUNG_GC_PERIOD`), whatever
    the allocation count says. Runs until cancelled."""
    await _every_period_unless_busy(lambda: gc.collect(0), lambda: False, period, period,
                                    asyncio.get_running_loop().time)


async def _every_period_unless_busy(action: Callable[[], object],
                                   busy: Callable[[], int | bool], period: float,
                                   max_delay: float, clock: Callable[[], float]) -> None:
    """Every ``period`` s, ``action()`` when ``busy()`` is false or the last one is
    ``max_delay`` s old (the sweep's and the memory release's schedule)."""
    last = clock()
    while True:
        await asyncio.sleep(period)
        if not busy() or clock() - last >= max_delay:
            action()
            last = clock()


#: glibc's malloc keeps what Python frees in its heap; at a steady call rate the switch's RSS
#: crept up ~0.8 MB/s while its live heap stayed flat, and ``malloc_trim(0)`` gave 17-70 MB
#: back in 5-14 ms (docs/benchmarks.md "Ended calls freed at their end"). None: no glibc.
_MALLOC_TRIM = getattr(ctypes.CDLL(None), "malloc_trim", None) if os.name == "posix" else None
#: s between releases: the RSS a switch gains meanwhile (~1 MB/s at 400 calls/s) is what it
#: gives back, in a pause that grows with what call churn left in the heap (3-5 ms at 400
#: calls/s; 0.05-0.3 ms for a switch relaying 200-300 calls, with or without 2,000 OPTIONS/s).
FREE_MEMORY_PERIOD = 15.0
#: While relays forward RTP, a release may stop the loop this long: the relayed packets of
#: that moment arrive that much late, within the relay-added jitter the media bench allows
#: (p99 <= 5 ms). A release that took longer puts the next ones off.
MEDIA_RELEASE_BUDGET = 0.002  # s
#: ...to this long after it: the retention that builds meanwhile (only SIP churn makes any)
#: is given back in one longer pause, as the sweep's OLD_GC_MAX_DELAY does for the GC.
FREE_MEMORY_MAX_DELAY = 600.0  # s


def release_free_memory() -> bool:
    """Give the C allocator's free pages back to the system (glibc ``malloc_trim(0)``);
    False where there is no such call (another libc)."""
    if _MALLOC_TRIM is None:
        return False
    _MALLOC_TRIM(0)
    return True


async def release_free_memory_periodically(media: Callable[[], int], *,
                                           period: float = FREE_MEMORY_PERIOD,
                                           budget: float = MEDIA_RELEASE_BUDGET,
                                           max_delay: float = FREE_MEMORY_MAX_DELAY,
                                           release: Callable[[], bool] = release_free_memory,
                                           clock: Callable[[], float] | None = None
                                           ) -> None:
    """Every ``period`` s, :func:`release_free_memory`. While ``media()`` (relays forwarding
    RTP, whose packets wait for the loop the release stops) only as long as the last release
    took at most ``budget`` s, or once ``max_delay`` s have passed since it. SIP does not
    notice the pause (T1 is 500 ms). ``clock``: the loop's time unless given. Runs until
    cancelled."""
    now = clock or asyncio.get_running_loop().time
    last_pause = 0.0  # unknown yet: the first release is tried

    def timed_release() -> None:
        nonlocal last_pause
        started = now()
        release()
        last_pause = now() - started

    await _every_period_unless_busy(timed_release,
                                    lambda: bool(media()) and last_pause > budget,
                                    period, max_delay, now)


def raise_priority(priority: int) -> bool:
    """Run this process under SCHED_RR at ``priority`` (1-99; needs CAP_SYS_NICE). Relayed
    media waits for every run of whatever else shares the switch's CPU: the normal scheduler
    lets another busy process run for a slice of 10-30 ms before the switch gets its CPU
    back, i.e. every relayed packet of that moment arrives that much late. A real-time switch
    runs whenever it has work; the kernel's RT throttling (sched_rt_runtime_us) still leaves
    the others a share if it never stops. False (and a warning) when not permitted."""
    if not hasattr(os, "sched_setscheduler"):  # not Linux
        log.warning("real-time priority %d not set: no SCHED_RR on this platform", priority)
        return False
    try:
        os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(priority))
    except OSError as exc:
        log.warning("real-time priority %d not set (%s): the normal scheduler stays", priority,
                    exc)
        return False
    return True


async def serve(options: ServeOptions, on_ready: Callable[[Switch], None]) -> None:
    """Start the switch, call ``on_ready(switch)``, run until SIGINT/SIGTERM (or a control
    channel ``stop``), then stop it. Raises VosappError when it cannot listen."""
    try:
        switch = Switch(config=options.config, host=options.host, port=options.port,
                        data_dir=options.data_dir, transports=options.transports,
                        persist_trace=options.persist_trace,
                        trace_max_bytes=options.trace_max_bytes,
                        stop_timeout=options.stop_timeout)
        await switch.start()
        tune_gc()
        if options.realtime_priority is not None:
            raise_priority(options.realtime_priority)
    except OSError as exc:
        raise VosappError(f"cannot listen on {options.host or '?'}:{options.port}: "
                          f"{exc}") from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        control = (await _start_control(switch, options.control_port, stop)
                   if options.control_port is not None else None)
    except VosappError:
        await switch.stop()
        raise
    on_ready(switch)
    sweeper = loop.create_task(collect_old_generations(sweep_waits_for(switch.core.transactions)))
    releaser = loop.create_task(release_free_memory_periodically(running_relays))
    young_collector = loop.create_task(collect_young_generation_periodically())
    await stop.wait()
    sweeper.cancel()
    releaser.cancel()
    young_collector.cancel()
    log.info("stopping (running stop hooks, at most %.1f s)", switch.stop_timeout)
    if control is not None:
        await control.close()
        if switch.data_dir is not None:
            control.remove_file(switch.data_dir)
        control.control.close()
    await switch.stop()
    log.info("stopped")


async def _start_control(switch: Switch, port: int,
                         stop: asyncio.Event) -> ControlServer | None:
    """The control channel (vosapp.io.control); written to <data_dir>/control.json."""
    data = switch.data_dir
    if data is None:
        log.warning("no data directory: control channel off (nowhere to put control.json)")
        return None
    control = SwitchControl(switch, by="control", on_stop=stop.set)
    server = ControlServer(control, port=port)
    try:
        await server.start()
    except OSError as exc:
        raise VosappError(f"cannot open the control channel on 127.0.0.1:{port}: "
                          f"{exc}") from None
    path = server.write_file(data)
    log.info("control channel on %s:%d (token in %s)", *server.address, path)
    return server
