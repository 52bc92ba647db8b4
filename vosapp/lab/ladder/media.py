"""Media events of a lab call as trace records, so a ladder draws them beside the SIP arrows.

The switch's trace holds SIP only; what the RTP did is known to the endpoints. A lab
:class:`~vosapp.lab.calls.Call` keeps both: its :attr:`~vosapp.lab.calls.Call.events` (media
started with a codec, DTMF sent) and its packet log (when RTP first arrived, with which payload
type; when each RFC 4733 telephone-event began). :func:`media_records` turns them into
``direction="event"`` records on the endpoint's column (its SIP address)::

    live = LiveLadder(switch.trace, names=...)
    live.add_records(media_records(call) + media_records(far))
"""

from __future__ import annotations

import time
from typing import Any

from vosapp.trace import TraceRecord

__all__ = ["media_records"]

_CALL_EVENTS = {"media": "RTP out", "DTMF": "DTMF sent"}


def media_records(call: Any) -> list[TraceRecord]:
    """Event records of ``call``'s media, in time order (see the module docstring).

    ``call`` is a :class:`~vosapp.lab.calls.Call` (anything with ``ua.address``, ``call_id``,
    ``events``, ``media`` and ``codec``). The records' ``mono`` is the call's clock, which is
    the event loop's monotonic time unless the UA was given another clock.
    """
    address = tuple(call.ua.address)
    offset = time.time() - time.monotonic()

    def record(mono: float, note: str) -> TraceRecord:
        return TraceRecord(mono, mono + offset, "event", src=address, call_id=call.call_id,
                           note=note)

    records = [record(event.time, f"{_CALL_EVENTS[event.what]} {event.detail}")
               for event in call.events if event.what in _CALL_EVENTS]
    media = call.media
    if media is not None:
        receiver = media.receiver
        event_pt = receiver.events.payload_type if receiver.events is not None else None
        audio_seen = False
        previous: Any = None
        for packet in receiver.packets:
            if packet.payload_type == event_pt:
                if previous is None or (previous.payload_type, previous.timestamp) != (
                        event_pt, packet.timestamp):  # a new event (RFC 4733 §2.5.1.2)
                    records.append(record(packet.arrival, f"RFC 2833 in, PT {event_pt}"))
            elif not audio_seen:
                audio_seen = True
                codec = receiver.payload_types.get(packet.payload_type, "?")
                records.append(record(packet.arrival,
                                      f"RTP in {codec}, PT {packet.payload_type}"))
            previous = packet
    return sorted(records, key=lambda r: r.mono)
