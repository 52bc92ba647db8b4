"""Arbitrary input never raises out of SwitchCore.receive, and the switch keeps answering."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vosapp.io.virtual import VirtualNetwork

SWITCH = ("10.0.0.1", 5060)
PHONE = ("10.0.0.2", 5060)
OPTIONS = (b"OPTIONS sip:10.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bKf\r\n"
           b"Max-Forwards: 70\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@x>\r\nCall-ID: fuzz\r\n"
           b"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")


def _mutations() -> st.SearchStrategy[bytes]:
    lines = OPTIONS.split(b"\r\n")
    return st.one_of(
        st.binary(max_size=600),
        st.lists(st.sampled_from(lines + [b"", b"Via: garbage", b"CSeq: 99999999999 X",
                                          b"Content-Length: 99", b"\xff\xfe"]),
                 max_size=12).map(b"\r\n".join),
        st.tuples(st.integers(0, len(OPTIONS)), st.binary(max_size=20)).map(
            lambda cut: OPTIONS[:cut[0]] + cut[1] + OPTIONS[cut[0]:]),
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_mutations(), min_size=1, max_size=5))
def test_any_bytes_then_options_still_answered(payloads: list[bytes]) -> None:
    net = VirtualNetwork()
    switch = net.add_switch(SWITCH)
    phone = net.add_endpoint(PHONE)
    for payload in payloads:
        switch.core.receive(payload, PHONE, "UDP")  # must not raise
    phone.clear()
    phone.send(OPTIONS.replace(b"z9hG4bKf", b"z9hG4bKafterfuzz"), SWITCH)
    net.run(0.1)
    assert any(p.data.startswith(b"SIP/2.0 200 ") for p in phone.received)
