"""Random tokens from kernel blocks (vosapp.sip.entropy): the tags, branches, Call-IDs and
nonce bytes of RFC 3261 §19.3, §8.1.1.7, §8.1.1.4 and RFC 7616 §3.3. Each token is handed out
once, across threads, and a forked child never hands out what its parent read."""

from __future__ import annotations

import os
import re
import threading

import pytest

from vosapp.clock import ManualClock
from vosapp.sip import new_branch, new_call_id, new_tag
from vosapp.sip.digest import DigestServer
from vosapp.sip.entropy import BLOCK_BYTES, token_bytes, token_hex


def test_tokens_have_their_size_and_are_never_handed_out_twice() -> None:
    # Many blocks' worth of each size: the pools refill, and every token is new.
    for size in (1, 6, 8, 10, 12, 7, BLOCK_BYTES, BLOCK_BYTES + 1):
        hexes = [token_hex(size) for _ in range(3 * BLOCK_BYTES // size + 5)]
        assert all(re.fullmatch(f"[0-9a-f]{{{2 * size}}}", value) for value in hexes)
        raw = [token_bytes(size) for _ in range(3 * BLOCK_BYTES // size + 5)]
        assert all(type(value) is bytes and len(value) == size for value in raw)
        if size >= 6:  # 48 bits and more: a repeat among these would be a bug, not chance
            assert len(set(hexes)) == len(hexes) and len(set(raw)) == len(raw)


def test_a_token_of_no_bytes_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one byte"):
        token_hex(0)
    with pytest.raises(ValueError, match="at least one byte"):
        token_bytes(-1)


def test_the_sip_tokens_keep_their_forms() -> None:
    assert re.fullmatch(r"z9hG4bK[0-9a-f]{20}", new_branch())  # §8.1.1.7 magic cookie
    assert re.fullmatch(r"[0-9a-f]{12}", new_tag())  # 48 random bits (§19.3: at least 32)
    assert re.fullmatch(r"[0-9a-f]{24}@example\.net", new_call_id("example.net"))
    server = DigestServer("vosapp", b"k" * 32, ManualClock())
    nonces = {server.challenge().nonce for _ in range(2 * BLOCK_BYTES // 8)}
    assert len(nonces) == 2 * BLOCK_BYTES // 8  # a fresh 8-byte draw in every nonce


def test_threads_drawing_at_once_never_get_the_same_token() -> None:
    drawn: list[list[str]] = [[] for _ in range(4)]
    start = threading.Barrier(len(drawn))

    def draw(into: list[str]) -> None:
        start.wait()
        for _ in range(20 * BLOCK_BYTES // 6):  # ~20 refills each, racing the others'
            into.append(token_hex(6))

    threads = [threading.Thread(target=draw, args=(into,)) for into in drawn]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [token for into in drawn for token in into]
    assert len(set(every)) == len(every)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork")
def test_a_forked_child_draws_its_own_tokens() -> None:
    """Without the pools emptied at fork, the child would hand out the rest of the parent's
    block: the same tags, branches and nonces as the parent, from two processes."""
    token_hex(6)
    token_bytes(8)  # both pools hold the rest of a block now
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next tokens, to the parent
        try:
            os.close(read_end)
            tokens = [token_hex(6) for _ in range(50)] + [token_bytes(8).hex() for _ in range(50)]
            os.write(write_end, " ".join(tokens).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        child = pipe.read().decode().split()
    os.waitpid(pid, 0)
    parent = [token_hex(6) for _ in range(50)] + [token_bytes(8).hex() for _ in range(50)]
    assert len(child) == 100
    assert not set(child) & set(parent)
