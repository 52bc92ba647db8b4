"""The relay follows each endpoint's SDP direction (hold/resume, RFC 3264 §8.4): nothing is
sent to an endpoint that is sendonly or inactive; the other direction keeps flowing."""

from __future__ import annotations

import pytest

from tests.io.test_rtp_relay import Endpoint, pcma_packets, run
from vosapp.io.rtp_relay import LegConfig, RtpRelay

# each test runs on both receive paths: the C hub and one Python reader per socket
pytestmark = [pytest.mark.timeout(30), pytest.mark.usefixtures("relay_path")]


def test_held_endpoint_gets_nothing_until_it_resumes() -> None:
    async def scenario() -> None:
        phone, carrier = await Endpoint.open(), await Endpoint.open()
        relay = await RtpRelay.open(LegConfig("PCMA", remote=phone.address),
                                    LegConfig("PCMA", remote=carrier.address))
        relay.set_direction("b", "sendonly")  # the carrier put the call on hold (MOH flows)
        for datagram in pcma_packets(5):
            phone.send(datagram, relay.a.local_address)
        for datagram in pcma_packets(5, ssrc=7):
            carrier.send(datagram, relay.b.local_address)
        await phone.wait_for(5)  # the carrier's packets, sent after the phone's, arrive
        assert len(phone.received) == 5
        assert carrier.received == []
        relay.set_direction("b", "sendrecv")
        for datagram in pcma_packets(3, sequence=2000, timestamp=800):
            phone.send(datagram, relay.a.local_address)
        await carrier.wait_for(3)
        assert len(carrier.received) == 3
        relay.close()
        phone.close()
        carrier.close()

    run(scenario)
