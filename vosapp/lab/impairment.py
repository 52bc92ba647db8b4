"""Network impairments a lab endpoint applies to its own sending side, sans-IO and seeded.

:class:`Impairment` says what to do (random loss, Gilbert-Elliott burst loss, jitter,
reordering); :class:`Impairer` applies it packet by packet: ``plan()`` answers, for one packet
about to be sent, "drop it" (``None``) or "send it after this many seconds". It never reads a
clock or touches a socket, so a seeded run is the same run every time.

* Random loss: each packet is lost with probability ``loss`` (a Bernoulli process).
* Burst loss: the two-state Gilbert-Elliott model (ITU-T G.1050 §6, RFC 3611 §4.7.2 calls
  the states gap/burst): from *good* the channel moves to *bad* with probability
  ``burst_enter`` per packet, back with ``burst_exit``; a packet sent in *bad* is lost.
  The mean burst length is ``1 / burst_exit`` packets; the long-run loss rate
  ``burst_enter / (burst_enter + burst_exit)``.
* Jitter: each packet waits a uniform random 0..``jitter_ms`` before it leaves.
* Reordering: a packet is held back by ``reorder_by_ms`` (default 1.5 packet times) with
  probability ``reorder``, so the next one overtakes it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["Impairer", "Impairment", "ImpairmentError"]


class ImpairmentError(ValueError):
    """An impairment setting out of range."""


def _probability(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ImpairmentError(f"{name} is a probability in [0, 1], not {value!r}")


@dataclass(frozen=True)
class Impairment:
    """What to do to outgoing packets; all zero = a perfect network.

    Parameters
    ----------
    loss : float
        Independent loss probability per packet.
    burst_enter, burst_exit : float
        Gilbert-Elliott transition probabilities good -> bad and bad -> good (0: no bursts).
    jitter_ms : float
        Extra delay per packet, uniform in [0, jitter_ms].
    reorder : float
        Probability that a packet is held back by ``reorder_by_ms``.
    reorder_by_ms : float
        How long a reordered packet is held (30 ms: it goes out after the next 20 ms packet).
    seed : int or None
        Seed of the random generator (None: a different run every time).
    """

    loss: float = 0.0
    burst_enter: float = 0.0
    burst_exit: float = 1.0
    jitter_ms: float = 0.0
    reorder: float = 0.0
    reorder_by_ms: float = 30.0
    seed: int | None = None

    def __post_init__(self) -> None:
        for name in ("loss", "burst_enter", "burst_exit", "reorder"):
            _probability(name, getattr(self, name))
        if self.burst_enter > 0 and self.burst_exit == 0:
            raise ImpairmentError("burst_exit = 0 with burst_enter > 0 would lose everything "
                                  "after the first burst; use loss=1.0 for that")
        if self.jitter_ms < 0 or self.reorder_by_ms < 0:
            raise ImpairmentError(f"jitter_ms and reorder_by_ms must be >= 0, got "
                                  f"{self.jitter_ms}, {self.reorder_by_ms}")

    @property
    def is_perfect(self) -> bool:
        return not (self.loss or self.burst_enter or self.jitter_ms or self.reorder)

    @property
    def expected_loss(self) -> float:
        """Long-run fraction of packets lost (independent loss and bursts combined)."""
        burst = (self.burst_enter / (self.burst_enter + self.burst_exit)
                 if self.burst_enter else 0.0)
        return 1.0 - (1.0 - self.loss) * (1.0 - burst)


class Impairer:
    """Applies one :class:`Impairment` to a packet sequence; counts what it did."""

    def __init__(self, impairment: Impairment | None = None) -> None:
        self.impairment = impairment or Impairment()
        self.rng = random.Random(self.impairment.seed)
        self.bad = False  # the Gilbert-Elliott state
        self.planned = 0
        self.dropped = 0
        self.reordered = 0

    def plan(self) -> float | None:
        """For the next packet: ``None`` to drop it, else the delay (s) before sending it."""
        spec = self.impairment
        self.planned += 1
        if spec.is_perfect:
            return 0.0
        rng = self.rng
        if spec.burst_enter:
            self.bad = rng.random() >= spec.burst_exit if self.bad \
                else rng.random() < spec.burst_enter
        lost = self.bad or (spec.loss > 0 and rng.random() < spec.loss)
        delay = rng.uniform(0.0, spec.jitter_ms) / 1000.0 if spec.jitter_ms else 0.0
        if spec.reorder and rng.random() < spec.reorder:
            delay += spec.reorder_by_ms / 1000.0
            self.reordered += 0 if lost else 1
        if lost:
            self.dropped += 1
            return None
        return delay
