"""vosapp.lab.dtmf_conversion: driving a DtmfConverter as the relay does, and describing it."""

from __future__ import annotations

from vosapp.lab.dtmf_conversion import describe, feed_audio, feed_rfc2833, rfc2833_packets
from vosapp.media.dtmf import DtmfConverter, DtmfSideSettings, generate_digits
from vosapp.media.dtmf.convert import ForwardEvent


def test_rfc2833_packets_one_event_per_digit_in_order() -> None:
    packets = rfc2833_packets("12", payload_type=101)
    assert {p.payload_type for p in packets} == {101}
    starts = sorted({p.timestamp for p in packets})
    assert len(starts) == 2 and starts[1] - starts[0] == 8 * 220
    assert [p.sequence for p in packets] == list(range(1, len(packets) + 1))


def test_feeding_events_and_audio_through_a_converter() -> None:
    caller, carrier = DtmfSideSettings(payload_type=101), DtmfSideSettings(payload_type=96)
    forwarded = feed_rfc2833(DtmfConverter(caller, carrier, far_rfc2833=True),
                             rfc2833_packets("3"))
    assert forwarded and all(isinstance(a, ForwardEvent) for a in forwarded)
    assert describe(forwarded[:1]) == "ForwardEvent(PT 96)"

    to_events = DtmfSideSettings(send="RFC2833", payload_type=96)
    actions = feed_audio(DtmfConverter(caller, to_events, far_rfc2833=True),
                         generate_digits("7", on_ms=100, off_ms=60))
    assert describe(actions).startswith("SendEvent(7, PT 96, ")
    assert describe([]) == "(nothing)"
