"""Drive a :class:`~vosapp.media.dtmf.DtmfConverter` the way the RTP relay does (notebook 05):
RFC 2833 packets one by one, audio in 20 ms chunks; describe the actions it returns in a line.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from numpy.typing import NDArray

from vosapp.media.dtmf import DtmfConverter, TelephoneEventSender
from vosapp.media.dtmf.convert import (
    Action,
    ForwardEvent,
    GenerateTones,
    SendEvent,
    SendInfo,
)
from vosapp.media.dtmf.rfc4733 import EventPacket

__all__ = ["describe", "describe_action", "feed_audio", "feed_rfc2833", "rfc2833_packets"]

def rfc2833_packets(digits: str, payload_type: int = 101, duration_ms: int = 120
                    ) -> list[EventPacket]:
    """The RFC 4733 packets a phone sends for ``digits``, 100 ms apart."""
    sender = TelephoneEventSender(payload_type)
    packets: list[EventPacket] = []
    timestamp, sequence = 1000, 1
    for digit in digits:
        batch = sender.packets(digit, duration_ms, timestamp=timestamp, sequence=sequence)
        packets += batch
        timestamp += 8 * (duration_ms + 100)
        sequence += len(batch)
    return packets


def feed_rfc2833(converter: DtmfConverter, packets: Iterable[EventPacket]) -> list[Action]:
    """Every action ``converter`` returns for ``packets``, in order."""
    actions: list[Action] = []
    for packet in packets:
        actions += converter.on_rfc2833(packet.payload_type, packet.timestamp, packet.payload,
                                        marker=packet.marker)
    return actions


def feed_audio(converter: DtmfConverter, audio: NDArray[np.int16], chunk: int = 160
               ) -> list[Action]:
    """Every action ``converter`` returns for ``audio`` fed in ``chunk``-sample packets."""
    actions: list[Action] = []
    for start in range(0, audio.size, chunk):
        actions += converter.on_audio(audio[start : start + chunk])
    return actions


def describe_action(action: Action) -> str:
    """``SendEvent(5, PT 96, 80 ms)``-style one-liner."""
    if isinstance(action, ForwardEvent):
        return f"ForwardEvent(PT {action.payload_type})"
    if isinstance(action, SendEvent):
        detail = f", PT {action.payload_type}, {action.duration_ms} ms"
    elif isinstance(action, SendInfo):
        detail = f", {action.duration_ms} ms"
    elif isinstance(action, GenerateTones):
        detail = f", {action.samples.size / action.rate * 1000:.0f} ms of tone"
    else:
        detail = f": {action.reason}"
    return f"{type(action).__name__}({action.digit}{detail})"


def describe(actions: Sequence[Action]) -> str:
    """All ``actions`` as one line (``(nothing)`` when empty)."""
    return ", ".join(describe_action(a) for a in actions) or "(nothing)"
