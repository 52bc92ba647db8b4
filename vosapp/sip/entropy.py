"""Random tokens for tags, branches, Call-IDs and nonces, drawn from the kernel in blocks.

RFC 3261 wants a tag with at least 32 random bits (§19.3), a branch unique in space and time
(§8.1.1.7) and a globally unique Call-ID (§8.1.1.4); a digest nonce must not be guessable
(RFC 7616 §3.3). ``os.urandom`` gives all of that, at one ``getrandom`` system call per
token: three per registration (the nonce, the 401's and the 200's To tags), more per call.
Here each call takes a whole block and cuts it into tokens of one size, handed out once each.

The tokens are the kernel's random bytes all the same, each used once. What a process
buffers, a child forked from it would hand out again: the pools are emptied in the child
(``os.register_at_fork``). ``deque.popleft`` and ``deque.extend`` are atomic, so threads never
get the same token, even while two of them refill a pool at once.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable
from typing import Final, TypeVar

__all__ = ["token_bytes", "token_hex"]

#: Random bytes read per refill of a pool (one system call for ~170 six-byte tags).
BLOCK_BYTES: Final = 1024

#: token size in bytes -> tokens not handed out yet
_BYTES: Final[dict[int, deque[bytes]]] = {}
_HEX: Final[dict[int, deque[str]]] = {}

_Token = TypeVar("_Token", bytes, str)


def token_bytes(size: int) -> bytes:
    """``size`` random bytes (``os.urandom(size)``, taken from a block read earlier)."""
    return _take(_BYTES, size, _cut_bytes)


def token_hex(size: int) -> str:
    """``size`` random bytes as ``2 * size`` lower-case hex digits (``os.urandom(size).hex()``,
    from a block read and turned to hex earlier)."""
    return _take(_HEX, size, _cut_hex)


def _take(pools: dict[int, deque[_Token]], size: int,
          cut: Callable[[int], list[_Token]]) -> _Token:
    pool = pools.get(size)
    if pool is None:
        pool = pools.setdefault(size, deque())
    while True:
        try:
            return pool.popleft()
        except IndexError:
            pool.extend(cut(size))


def _cut_bytes(size: int) -> list[bytes]:
    """A fresh block as tokens of ``size`` bytes."""
    block = os.urandom(_block_size(size))
    return [block[at:at + size] for at in range(0, len(block), size)]


def _cut_hex(size: int) -> list[str]:
    """A fresh block in hex, as tokens of ``2 * size`` digits."""
    digits = os.urandom(_block_size(size)).hex()
    width = 2 * size
    return [digits[at:at + width] for at in range(0, len(digits), width)]


def _block_size(size: int) -> int:
    if size < 1:
        raise ValueError(f"a random token needs at least one byte, not {size}")
    return max(1, BLOCK_BYTES // size) * size


def _forget_pools() -> None:
    """In a forked child: what the parent read is the parent's (its tokens may be in use)."""
    _BYTES.clear()
    _HEX.clear()


os.register_at_fork(after_in_child=_forget_pools)
