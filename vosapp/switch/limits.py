"""Load protection, sans-IO: a per-source flood limiter and the overload gate for new calls.

Theory of operation
-------------------
*Per-source limiter* (:class:`SourceLimiter`), in the spirit of Kamailio's ``pike`` module.
Every message from a source IP address counts in a sampling window of ``source_window``
seconds; the message that takes a source past ``source_threshold`` in one window *trips* it:
the source is blocked for ``source_block`` seconds, and every message from it is dropped
before it is parsed. A source that keeps flooding while blocked stays blocked (each window
that is again over the threshold pushes the end of the block out), so the block ends
``source_block`` seconds after the flood stops. The action is **drop**, not 503: a flood is
cheapest to ignore, a 503 per datagram would cost what answering costs, and towards a spoofed
source address it would turn the switch into a reflector. Trusted gateway addresses
(``[[mapping_gateway]] addresses``) and the routing gateways' hosts are exempt: one carrier
legitimately sends more than any phone, and the overload gate below protects the switch from
its peaks. A trip is audited once (trace event, persisted with the trace, and a log line) and
the end of a block is traced with how many messages were dropped. State is kept for at most
``max_sources`` addresses (least recently seen forgotten first, never a blocked one while
there are others), so a spoofed-address flood cannot grow it without bound.

*Overload gate* (:class:`OverloadGate`). Past capacity the switch must shed new work early
instead of letting every call time out (RFC 3261 §21.5.4, RFC 5390): a new INVITE gets
``503 Service Unavailable`` with ``Retry-After`` before routing, authentication or media,
while in-dialog requests, CANCEL, ACK and retransmissions (absorbed by their transactions) go
on, so established calls and calls in progress stay whole. Two measured signals, either one
trips it: the *receive delay* above ``overload_receive_delay`` seconds -- how long a datagram
waits before the switch reads it, which the runtime measures with a probe datagram it sends
to its own UDP socket every 100 ms: the probe queues behind every datagram waiting in the
kernel and behind a busy or starved event loop, so this is the backlog itself (the
event-loop lag alone is not: asyncio reads one datagram per loop turn, so the loop stays
punctual while the kernel queue overflows) -- and *calls in setup* (INVITE server
transactions without a final response) above ``max_calls_in_setup``, a cap on work in
progress.
Recovery is automatic: the gate opens as soon as both signals are back under their limits.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from vosapp.config import Limits
from vosapp.enums import IdentityEnum

__all__ = ["Admission", "Limits", "OverloadGate", "SourceLimiter"]

#: The receive delay sheds calls only with at least this many calls in setup: with fewer, a
#: delay is a stall (a first import, a slow disk write), not load that refusing calls relieves.
SHED_FLOOR: Final = 10


class Admission(IdentityEnum):
    ADMIT = "admit"
    DROP = "drop"  # the source is blocked
    TRIPPED = "tripped"  # this message blocked the source (dropped too; audit it)


class _Source:
    __slots__ = ("blocked_until", "count", "dropped", "window_start")

    def __init__(self, now: float) -> None:
        self.window_start = now
        self.count = 0
        self.blocked_until = 0.0
        self.dropped = 0


class SourceLimiter:
    """Per-source-address message counting and blocking (see the module docstring).

    ``exempt(host)`` says whether a source is never limited (trusted gateways); its answer is
    cached per host. ``on_unblock(host, dropped)`` is told when a block ends (checked lazily,
    at the source's next message or when its state is forgotten).
    """

    def __init__(self, limits: Limits, exempt: Callable[[str], bool] = lambda host: False, *,
                 max_sources: int = 100_000,
                 on_unblock: Callable[[str, int], None] | None = None) -> None:
        self.limits = limits
        self._exempt = exempt
        self._exempt_cache: dict[str, bool] = {}
        self._sources: dict[str, _Source] = {}
        self.max_sources = max_sources
        self.on_unblock = on_unblock

    def check(self, host: str, now: float) -> Admission:
        """Count one message from ``host`` at ``now`` and say whether it may be handled."""
        limits = self.limits
        if not limits.source_threshold or self._is_exempt(host):
            return Admission.ADMIT
        state = self._sources.pop(host, None)
        if state is None:
            state = _Source(now)
            self._forget_oldest()
        self._sources[host] = state  # re-inserted: the dict's order is least recently seen
        if now - state.window_start >= limits.source_window:
            over = state.count > limits.source_threshold
            state.window_start, state.count = now, 0
            if over and state.blocked_until > now:  # still flooding: stay blocked
                state.blocked_until = now + limits.source_block
        state.count += 1
        if state.blocked_until > now:
            state.dropped += 1
            return Admission.DROP
        if state.dropped:
            self._unblocked(host, state)
        if state.count > limits.source_threshold:
            state.blocked_until = now + limits.source_block
            state.dropped = 1
            return Admission.TRIPPED
        return Admission.ADMIT

    def blocked(self, now: float) -> list[str]:
        """The sources blocked at ``now``."""
        return [host for host, s in self._sources.items() if s.blocked_until > now]

    def __len__(self) -> int:
        return len(self._sources)

    def _is_exempt(self, host: str) -> bool:
        exempt = self._exempt_cache.get(host)
        if exempt is None:
            if len(self._exempt_cache) >= self.max_sources:
                self._exempt_cache.clear()
            exempt = self._exempt_cache[host] = self._exempt(host)
        return exempt

    def _forget_oldest(self) -> None:
        sources = self._sources
        for _ in range(min(len(sources) - self.max_sources + 1, 64)):
            host, oldest = next(iter(sources.items()))
            del sources[host]
            if oldest.dropped:
                self._unblocked(host, oldest)

    def _unblocked(self, host: str, state: _Source) -> None:
        if self.on_unblock is not None:
            self.on_unblock(host, state.dropped)
        state.dropped = 0


class OverloadGate:
    """Whether a new INVITE is refused for overload (see the module docstring).

    The core reports calls in setup as it sees them (:meth:`overloaded` takes the count);
    the runtime reports the receive delay it measures (:meth:`report_receive_delay`). A test
    forces the state with :meth:`report_receive_delay` or a tiny ``max_calls_in_setup``.
    """

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.receive_delay = 0.0
        self.refused = 0
        self._delayed = False

    def report_receive_delay(self, seconds: float) -> None:
        """The runtime's measurement. Hysteresis: the gate closes past the limit and opens
        again below half of it, so it does not flap around the limit, admitting bursts."""
        self.receive_delay = max(0.0, seconds)
        limit = self.limits.overload_receive_delay
        if not limit:
            self._delayed = False
        elif self.receive_delay > limit:
            self._delayed = True
        elif self.receive_delay < limit / 2:
            self._delayed = False

    def overloaded(self, calls_in_setup: int) -> str:
        """Why a new INVITE must be refused now ("" when it may go on)."""
        limits = self.limits
        if limits.max_calls_in_setup and calls_in_setup >= limits.max_calls_in_setup:
            reason = f"{calls_in_setup} calls in setup (limit {limits.max_calls_in_setup})"
        elif self._delayed and calls_in_setup >= SHED_FLOOR:
            reason = (f"datagrams wait {self.receive_delay * 1000:.0f} ms to be read "
                      f"(limit {limits.overload_receive_delay * 1000:.0f} ms)")
        else:
            reason = ""
        if reason:
            self.refused += 1
        return reason
