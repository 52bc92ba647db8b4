"""vosapp.lab.waiting.wait_until: true as soon as the predicate is, false at the deadline."""

from __future__ import annotations

import asyncio

from vosapp.lab.waiting import wait_until


def test_wait_until_returns_when_the_predicate_holds_or_times_out() -> None:
    async def scenario() -> tuple[bool, bool]:
        flag: list[bool] = []
        asyncio.get_running_loop().call_later(0.1, flag.append, True)
        became_true = await wait_until(lambda: flag, timeout=10, interval=0.01)
        never = await wait_until(lambda: False, timeout=0.1, interval=0.02)
        return became_true, never

    assert asyncio.run(scenario()) == (True, False)
