"""Waiting in a notebook cell for something the switch does in the background."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

__all__ = ["wait_until"]


async def wait_until(predicate: Callable[[], object], timeout: float = 5.0,
                     interval: float = 0.05) -> bool:
    """Poll ``predicate`` every ``interval`` s until it is true or ``timeout`` s have passed.

    Returns whether it became true (the last check is made at the deadline).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(interval)
    return bool(predicate())
