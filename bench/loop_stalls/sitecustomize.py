"""Times what holds ``vosapp serve``'s event loop, under any bench (a relayed RTP packet that
arrives meanwhile waits for it).

With this folder first on ``PYTHONPATH`` (an absolute path: bench/media_calls.py starts the
switch in another folder) and ``STALL_LOG=FILE`` set, every Python process started from then
on times each of the calls below, and a process that ran a switch appends a summary to FILE
as it exits (one line per kind):

    pid  kind  count  p50-ms  p99-ms  max-ms  total-s  over-1-ms  over-5-ms  waited-over-1-ms
    [longest...]

where ``waited-over-1-ms`` counts the calls that spent over 1 ms of their time off the CPU
(the wall time less the thread's CPU time: waiting for the disk, or for the CPU another
process held), and each of the (up to three) longest calls over 5 ms is given as
``DURATIONms@Ts/cpuCPUms``, T in seconds since the process started: whether it fell inside a
step's hold or outside; for a wake-up also ``/nN``, the datagrams it handled.

Kinds:
* ``sip-wakeup``: one wake-up of the SIP socket (the protocol's ``datagram_received``, its
  ``UdpWire``'s: up to ``DRAIN_BATCH`` datagrams handled, then the group commit and the
  datagrams that waited for it);
* ``commit``: the group commit's COMMIT alone (``Store.commit_batch``);
* ``timer-slot``: one slot of the clock's timer wheel firing (the wheel's asyncio timer,
  ``LoopClock._fire_wheel``);
* ``resize-wakeup``: the SIP wake-ups in which one of the tables that keep transactions and
  ended calls for 64*T1 (the transaction layer's servers and clients, the B2BUA's INVITE keys)
  was resized by Python (``sys.getsizeof`` changed): what those resizes cost the loop;
* ``trace-flush``: one batch of the stored SIP trace written (``Trace.flush``: its rows, and
  the oldest pruned past the store's budget); inside a wake-up or a timer;
* ``gc-0``, ``gc-1``, ``gc-2``: the cyclic garbage collector, per generation.

Without ``STALL_LOG`` it does nothing. docs/benchmarks.md "Held calls with media and new calls
in one switch" used it as::

    PYTHONPATH=$PWD/bench/loop_stalls:$PWD STALL_LOG=/tmp/s.log .venv/bin/python \\
        bench/media_with_calls.py --media-calls 200 --rates 700
"""

from __future__ import annotations

import os

if os.environ.get("STALL_LOG"):
    import atexit
    import gc
    import sys
    import time
    from collections.abc import Callable
    from typing import Any

    _TIMES: dict[str, list[float]] = {}

    _START = time.perf_counter()
    #: kind -> the (duration, seconds since start, detail) of its calls over 5 ms
    _LONGEST: dict[str, list[tuple[float, float, str]]] = {}
    #: kind -> how many of its calls waited (off the CPU) over 1 ms
    _WAITED: dict[str, int] = {}
    def _record(kind: str, times: list[float], began: float, took: float,
                cpu: float | None = None, detail: str = "") -> None:
        times.append(took)
        if cpu is not None and took - cpu > 1e-3:
            _WAITED[kind] = _WAITED.get(kind, 0) + 1
        if took > 5e-3:  # rare: where in the run the long ones fell
            if cpu is not None:
                detail = f"/cpu{cpu * 1e3:.1f}ms{detail}"
            _LONGEST.setdefault(kind, []).append((took, began - _START, detail))

    def _timed(kind: str, function: Callable[..., Any]) -> Callable[..., Any]:
        times = _TIMES.setdefault(kind, [])
        clock, cpu_clock = time.perf_counter, time.thread_time

        def timed(*args: Any) -> Any:
            began, cpu = clock(), cpu_clock()
            try:
                return function(*args)
            finally:
                _record(kind, times, began, clock() - began, cpu_clock() - cpu)
        return timed

    #: id(transport) -> the dicts that keep an entry per transaction or call for 64*T1
    #: (made once: the switch never replaces them)
    _TABLES: dict[int, list[Any]] = {}

    def _long_lived_tables(transport: Any) -> list[Any]:
        tables = _TABLES.get(id(transport))
        if tables is None:
            core = transport.core
            tables = [core.transactions.servers, core.transactions.clients]
            owner = getattr(core._handlers.get("INVITE"), "__self__", None)  # the B2BUA
            if owner is not None:
                tables.append(owner.invites)
            _TABLES[id(transport)] = tables
        return tables

    def _wakeup(transport: Any, function: Callable[..., Any]) -> Callable[..., Any]:
        times = _TIMES.setdefault("sip-wakeup", [])
        resizes = _TIMES.setdefault("resize-wakeup", [])
        clock, cpu_clock, size = time.perf_counter, time.thread_time, sys.getsizeof
        stats = transport.core.stats

        def wakeup(*args: Any) -> Any:
            tables = _long_lived_tables(transport)
            sizes = [size(table) for table in tables]
            received = stats.received  # the core counts every datagram it is handed
            began, cpu = clock(), cpu_clock()
            try:
                return function(*args)
            finally:
                took, cpu = clock() - began, cpu_clock() - cpu
                detail = f"/n{stats.received - received}"
                _record("sip-wakeup", times, began, took, cpu, detail)
                if sizes != [size(table) for table in tables]:
                    _record("resize-wakeup", resizes, began, took, cpu, detail)
        return wakeup

    def _instrument() -> None:
        from vosapp import store, trace
        from vosapp.io import clock, udp

        # The wire is compiled (its methods cannot be wrapped); asyncio calls the protocol's
        # datagram_received, an attribute each instance sets in __init__: wrapped there.
        init = udp.UdpTransport.__init__

        def instrumented_init(self: Any, *args: Any, **kwargs: Any) -> None:
            init(self, *args, **kwargs)
            self.datagram_received = _wakeup(self, self.datagram_received)
        udp.UdpTransport.__init__ = instrumented_init  # type: ignore[method-assign]
        store.Store.commit_batch = _timed(  # type: ignore[method-assign]
            "commit", store.Store.commit_batch)
        # The clock is compiled too: its wheel's asyncio timer is timed where asyncio takes
        # it in (the bound method LoopClock._fire_wheel, whatever the loop).
        import asyncio

        call_at = asyncio.BaseEventLoop.call_at

        def timed_call_at(self: Any, when: float, callback: Any, *args: Any,
                          **kwargs: Any) -> Any:
            if getattr(callback, "__name__", "") == "_fire_wheel" and isinstance(
                    getattr(callback, "__self__", None), clock.LoopClock):
                callback = _timed("timer-slot", callback)
            return call_at(self, when, callback, *args, **kwargs)
        asyncio.BaseEventLoop.call_at = timed_call_at  # type: ignore[method-assign]
        trace.Trace.flush = _timed(  # type: ignore[method-assign]
            "trace-flush", trace.Trace.flush)
        started: list[float] = [0.0]

        def gc_phase(phase: str, info: dict[str, int]) -> None:
            if phase == "start":
                started[0] = time.perf_counter()
            else:
                kind = f"gc-{info['generation']}"
                _record(kind, _TIMES.setdefault(kind, []), started[0],
                        time.perf_counter() - started[0])

        gc.callbacks.append(gc_phase)

    def _summary() -> None:
        if not _TIMES.get("sip-wakeup"):
            return  # a process that ran no switch (the bench itself, a load generator)
        with open(os.environ["STALL_LOG"], "a") as log:
            for kind, times in sorted(_TIMES.items()):
                if not times:
                    continue
                ordered = sorted(times)
                count = len(ordered)
                log.write(f"{os.getpid()} {kind} {count} {ordered[count // 2] * 1e3:.3f} "
                          f"{ordered[min(count - 1, int(count * 0.99))] * 1e3:.3f} "
                          # total to the microsecond: a few quick wake-ups sum to under
                          # half a millisecond, which three decimals of a second printed as 0
                          f"{ordered[-1] * 1e3:.3f} {sum(ordered):.6f} "
                          f"{sum(1 for t in ordered if t > 1e-3)} "
                          f"{len(_LONGEST.get(kind, []))} {_WAITED.get(kind, 0)}"
                          + "".join(f" {took * 1e3:.1f}ms@{at:.1f}s{detail}"
                                    for took, at, detail
                                    in sorted(_LONGEST.get(kind, []), reverse=True)[:3])
                          + "\n")

    try:
        _instrument()
    except ImportError:  # a Python without vosapp on its path
        pass
    else:
        atexit.register(_summary)
