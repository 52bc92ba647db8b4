"""``vosapp serve``'s garbage collection policy (issue #14): the young generation is collected
in small steps, the old ones only by :func:`collect_old_generations`, which waits for a
moment without media (a full collection stops the event loop and every relay in it)."""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path

import pytest

from vosapp.io import serve
from vosapp.io.rtp_relay import LegConfig, RtpRelay, running_relays
from vosapp.io.runtime import Switch


def test_tune_gc_leaves_the_old_generations_to_the_sweep() -> None:
    before = gc.get_threshold()
    try:
        serve.tune_gc()
        young, middle, old = gc.get_threshold()
        assert young == serve.YOUNG_GC_THRESHOLD
        assert middle == old == 2**31 - 1
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_the_young_generation_is_collected_by_time_while_old_objects_die() -> None:
    """CPython counts the frees of old objects against the young generation's threshold:
    while old objects die as fast as new ones are made, no young collection comes and the
    young generation grows without bound (68,000 objects in 13 s between two steps of
    bench/media_with_calls.py, then a 20-53 ms pause). The switch's periodic young collection
    bounds it by time. Real CPython GC, no mock: first without the task, then with it."""
    before = gc.get_threshold()

    async def churn(young: list[list[int]], old: list[list[int]], chunks: int) -> int:
        """Each step frees an old container and keeps a new one; returns the largest young
        generation seen between chunks."""
        largest = 0
        for _ in range(chunks):
            for _ in range(1_000):
                old.pop()
                young.append([0])
            largest = max(largest, len(gc.get_objects(0)))
            await asyncio.sleep(0.01)
        return largest

    async def scenario() -> tuple[int, int]:
        old = [[index] for index in range(100_000)]
        gc.collect()  # out of the young generation: these are the old objects that die
        alone = await churn([], old, 40)
        gc.collect()
        collector = asyncio.create_task(serve.collect_young_generation_periodically(0.005))
        try:
            with_task = await churn([], old, 40)
        finally:
            collector.cancel()
        return alone, with_task

    try:
        serve.tune_gc()
        alone, with_task = asyncio.run(scenario())
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
    assert alone >= 35_000  # no young collection in 40,000 net-zero allocations
    assert with_task < 10_000


def test_old_generations_collected_only_without_media_or_after_the_longest_delay(
        monkeypatch: pytest.MonkeyPatch) -> None:
    collections: list[int] = []
    media = [1]
    monkeypatch.setattr(serve.gc, "collect", lambda: collections.append(media[0]) or 0)

    async def scenario() -> None:
        # with media running: only once max_delay has passed since the last collection
        sweep = asyncio.create_task(serve.collect_old_generations(
            lambda: media[0], period=0.001, max_delay=3600.0))
        for _ in range(20):
            await asyncio.sleep(0.001)
        assert collections == []
        media[0] = 0  # the last call hung up
        while not collections:
            await asyncio.sleep(0.001)
        sweep.cancel()
        media[0] = 1
        forced = asyncio.create_task(serve.collect_old_generations(
            lambda: media[0], period=0.001, max_delay=0.0))
        while len(collections) < 2:
            await asyncio.sleep(0.001)
        forced.cancel()

    asyncio.run(scenario())
    assert collections[:2] == [0, 1]


def test_running_relays_counts_relays_from_start_to_close() -> None:
    async def scenario() -> None:
        before = running_relays()
        relay = await RtpRelay.open(LegConfig("PCMA", remote=("127.0.0.1", 9)),
                                    LegConfig("PCMA", remote=("127.0.0.1", 9)))
        assert running_relays() == before + 1
        relay.close()
        relay.close()  # closing twice counts once
        assert running_relays() == before

    asyncio.run(scenario())


def test_serve_postpones_the_sweep_while_many_transactions_live() -> None:
    # At 200 calls/s ~25,000 transactions linger (Timers J/H/L): a full scan then stopped the
    # loop ~0.5 s every 60 s and the calls of that moment saw retransmissions
    # (docs/benchmarks.md "The SIP layer compiled").
    live: list[int] = []
    busy = serve.sweep_waits_for(live)
    assert running_relays() == 0 and not busy()
    live.extend(range(serve.QUIET_TRANSACTIONS))
    assert not busy()
    live.append(0)
    assert busy()


def test_serve_sweeps_a_lab_switch_every_period(tmp_path: Path) -> None:
    # what serve() hands the sweep: the running switch's own transaction layer
    async def scenario() -> None:
        switch = Switch(host="127.0.0.1", port=0, data_dir=tmp_path, features=[])
        await switch.start()
        try:
            busy = serve.sweep_waits_for(switch.core.transactions)
            assert not busy() and len(switch.core.transactions) == 0
        finally:
            await switch.stop()

    asyncio.run(scenario())


def test_free_memory_given_back_periodically_and_while_media_runs_only_when_quick() -> None:
    # glibc keeps what Python frees; at a steady call rate the RSS crept while the live heap
    # stayed flat (docs/benchmarks.md "Ended calls freed at their end"). The release stops
    # the loop: 0.05 ms for a switch only relaying media, 3-14 ms under heavy SIP churn
    # (docs/benchmarks.md "Memory given back while media is relayed"). While a relay forwards
    # RTP a release is made only when the last one was within the budget, or after max_delay.
    assert serve.release_free_memory()  # this machine's libc is glibc
    now = [0.0]
    pause = [0.0]  # how long the next release stops the loop
    media = [0]
    released_at: list[float] = []

    def release() -> bool:
        released_at.append(now[0])
        now[0] += pause[0]
        return True

    async def ticks(n: int) -> None:  # n periods of 1 s of the fake clock
        for _ in range(n):
            now[0] += 1.0
            await asyncio.sleep(0.002)

    async def scenario() -> None:
        task = asyncio.create_task(serve.release_free_memory_periodically(
            lambda: media[0], period=0.001, budget=0.002, max_delay=10.0, release=release,
            clock=lambda: now[0]))
        await ticks(3)
        assert len(released_at) >= 3  # no media: every period
        media[0] = 1
        count = len(released_at)
        await ticks(3)
        assert len(released_at) > count  # media, quick releases: they go on
        pause[0] = 0.005  # heavy churn: the next release takes 5 ms, past the budget
        count = len(released_at)
        while len(released_at) == count:
            await ticks(1)
        slow = released_at[-1]
        await ticks(5)
        assert released_at[-1] == slow  # put off while media runs
        await ticks(7)
        assert released_at[-1] >= slow + 10.0  # ...until max_delay has passed
        media[0] = 0  # the last relayed call hung up
        count = len(released_at)
        await ticks(2)
        assert len(released_at) > count  # no media: every period again
        task.cancel()

    asyncio.run(scenario())
