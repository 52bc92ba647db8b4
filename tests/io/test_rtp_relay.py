"""The asyncio RTP relay over loopback UDP: PT rewrite, transcoding, latching, stats, ports."""

from __future__ import annotations

import asyncio
import itertools
import socket
from collections.abc import Awaitable, Callable

import numpy as np
import pytest

from vosapp.io.rtp_relay import (
    EventRoute,
    LegConfig,
    PortAllocator,
    PortRangeExhausted,
    RtpRelay,
)
from vosapp.media import codecs
from vosapp.media.dtmf import (
    DtmfConverter,
    DtmfSideSettings,
    TelephoneEventSender,
    detect_digits,
    generate_digits,
)
from vosapp.media.dtmf.convert import SendInfo
from vosapp.media.rtp import OutgoingStream, RtpPacket
from vosapp.net import Address

# each test runs on both receive paths: the C hub and one Python reader per socket
pytestmark = [pytest.mark.timeout(30), pytest.mark.usefixtures("relay_path")]


class Endpoint(asyncio.DatagramProtocol):
    """A phone or carrier: one UDP socket on 127.0.0.1 that records what it receives."""

    def __init__(self) -> None:
        self.received: list[tuple[bytes, Address]] = []
        self.transport: asyncio.DatagramTransport | None = None
        self.address: Address = ("127.0.0.1", 0)

    @classmethod
    async def open(cls) -> Endpoint:
        loop = asyncio.get_running_loop()
        _, endpoint = await loop.create_datagram_endpoint(cls, local_addr=("127.0.0.1", 0))
        return endpoint

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.address = transport.get_extra_info("sockname")[:2]

    def datagram_received(self, data: bytes, addr: Address) -> None:  # type: ignore[override]
        self.received.append((data, addr))

    def send(self, data: bytes, to: Address) -> None:
        assert self.transport is not None
        self.transport.sendto(data, to)

    def packets(self) -> list[RtpPacket]:
        return [RtpPacket.parse(data) for data, _ in self.received]

    async def wait_for(self, count: int, timeout: float = 5.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self.received) < count and loop.time() < deadline:
            await asyncio.sleep(0.005)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(test())


def pcma_packets(count: int, *, ssrc: int = 0x5151, sequence: int = 1000,
                 timestamp: int = 0) -> list[bytes]:
    codec = codecs.get("PCMA")
    audio = (6000 * np.sin(np.arange(160 * count) * 2 * np.pi * 440 / 8000)).astype(np.int16)
    stream = OutgoingStream(8, ssrc=ssrc, sequence=sequence, timestamp=timestamp)
    return [stream.packet(codec.encode(audio[i * 160 : (i + 1) * 160]), 160)
            for i in range(count)]


def test_pure_relay_rewrites_payload_types_and_keeps_numbering() -> None:
    async def scenario() -> None:
        phone, carrier = await Endpoint.open(), await Endpoint.open()
        relay = await RtpRelay.open(
            LegConfig("PCMA", dtmf_payload_type=101, remote=phone.address),
            LegConfig("PCMA", dtmf_payload_type=96, remote=carrier.address),
        )
        assert relay.mode == "relay"
        sent = pcma_packets(10)
        for datagram in sent:
            phone.send(datagram, relay.a.local_address)
        event = OutgoingStream(101, ssrc=0x5151, sequence=1010, timestamp=1600)
        phone.send(event.packet_at(bytes([5, 0x8A, 0x03, 0x20]), 1600, marker=True),
                   relay.a.local_address)
        await carrier.wait_for(11)
        received = carrier.packets()
        assert [bytes(p) for p in received[:10]] == sent  # media untouched (PT 8 both sides)
        assert received[10].payload_type == 96  # telephone-event PT terminated, B's value
        assert received[10].marker and received[10].payload == bytes([5, 0x8A, 0x03, 0x20])
        assert (received[10].sequence, received[10].timestamp) == (1010, 1600)
        # and back from the carrier
        carrier.send(OutgoingStream(96, ssrc=7, sequence=1, timestamp=1).packet_at(
            bytes([1, 0x8A, 0, 160]), 1, marker=True), relay.b.local_address)
        await phone.wait_for(1)
        assert phone.packets()[0].payload_type == 101
        stats = relay.stats()
        assert stats["a"]["rx_packets"] == 11 and stats["b"]["tx_packets"] == 11
        assert stats["a"]["events_rx"] == 1 and stats["b"]["events_tx"] == 1
        assert stats["a"]["rx_lost"] == 0
        relay.close()
        phone.close()
        carrier.close()

    run(scenario)


def test_loss_and_reordering_statistics_over_loopback() -> None:
    async def scenario() -> None:
        phone, carrier = await Endpoint.open(), await Endpoint.open()
        relay = await RtpRelay.open(LegConfig("PCMA", remote=phone.address),
                                    LegConfig("PCMA", remote=carrier.address))
        sent = pcma_packets(100, sequence=65500)  # crosses the 16-bit wrap
        lost = {7, 40, 41, 42, 90}
        order = [i for i in range(100) if i not in lost]
        order[20], order[21] = order[21], order[20]  # one packet overtaken
        for i in order:
            phone.send(sent[i], relay.a.local_address)
            if i % 10 == 0:
                await asyncio.sleep(0)  # let the relay drain
        await carrier.wait_for(95)
        stats = relay.stats()["a"]
        assert stats["rx_received"] == 95
        assert stats["rx_expected"] == 100
        assert stats["rx_lost"] == 5
        assert stats["rx_reordered"] == 1
        assert stats["rx_cycles"] == 1
        assert stats["rx_jitter_ms"] >= 0.0
        assert len(carrier.received) == 95
        relay.close()
        phone.close()
        carrier.close()

    run(scenario)


def test_a_drained_burst_keeps_its_order_across_the_short_and_the_long_path() -> None:
    """Media (the core's short path) mixed with comfort noise, events and a foreign packet
    (its long path) in bursts the relay drains together: what goes out keeps the order it
    came in, and the counters match what the carrier got."""
    async def scenario() -> None:
        phone, carrier, intruder = (await Endpoint.open(), await Endpoint.open(),
                                    await Endpoint.open())
        relay = await RtpRelay.open(
            LegConfig("PCMA", dtmf_payload_type=101, remote=phone.address),
            LegConfig("PCMA", dtmf_payload_type=101, payload_type=102, remote=carrier.address),
        )
        media = pcma_packets(60, sequence=65530)
        phone.send(media[0], relay.a.local_address)  # latches leg a
        await carrier.wait_for(1)
        expected = [media[0]]
        noise = OutgoingStream(13, ssrc=0x5151, sequence=9, timestamp=0)
        event = OutgoingStream(101, ssrc=0x5151, sequence=5000, timestamp=0)
        for burst in range(3):
            for i in range(1 + 19 * burst, 20 + 19 * burst):
                phone.send(media[i], relay.a.local_address)
                expected.append(media[i])
                if i % 7 == 0:
                    cn = noise.packet(b"\x40", 0)
                    phone.send(cn, relay.a.local_address)
                    expected.append(cn)
                if i % 9 == 0:
                    dtmf = event.packet_at(bytes([3, 0x0A, 0, 160]), 0, marker=True)
                    phone.send(dtmf, relay.a.local_address)
                    expected.append(dtmf)
                if i % 11 == 0:
                    intruder.send(media[i], relay.a.local_address)  # dropped
            await carrier.wait_for(len(expected))
        got = carrier.packets()
        assert len(got) == len(expected)
        for out, original in zip(got, (RtpPacket.parse(d) for d in expected), strict=True):
            assert (out.ssrc, out.sequence, out.payload) == (original.ssrc, original.sequence,
                                                              original.payload)
            assert out.payload_type == {8: 102, 13: 13, 101: 101}[original.payload_type]
        stats = relay.stats()
        assert stats["b"]["tx_packets"] == len(got)
        assert stats["b"]["tx_bytes"] == sum(len(d) for d, _ in carrier.received)
        assert stats["a"]["rx_received"] == len(got)  # the foreign ones are not in the stream
        assert stats["a"]["dropped_foreign"] == stats["a"]["rx_packets"] - len(got) > 0
        relay.close()
        for endpoint in (phone, carrier, intruder):
            endpoint.close()

    run(scenario)


def test_transcoding_pcma_to_g729_both_directions() -> None:
    async def scenario() -> None:
        phone, carrier = await Endpoint.open(), await Endpoint.open()
        relay = await RtpRelay.open(
            LegConfig("PCMA", ptime=20, remote=phone.address, dtmf_payload_type=101),
            LegConfig("G729", ptime=20, remote=carrier.address, dtmf_payload_type=None),
        )
        assert relay.mode == "transcode"
        for datagram in pcma_packets(20):
            phone.send(datagram, relay.a.local_address)
        # an RFC 2833 digit towards a leg without telephone-event: dropped (no handler)
        phone.send(OutgoingStream(101, ssrc=0x5151, sequence=1020).packet_at(
            bytes([1, 0, 0, 160]), 3200, marker=True), relay.a.local_address)
        await carrier.wait_for(20)
        out = carrier.packets()
        assert len(out) == 20
        assert {p.payload_type for p in out} == {18} and {len(p.payload) for p in out} == {20}
        assert len({p.ssrc for p in out}) == 1 and out[0].ssrc != 0x5151
        for before, after in itertools.pairwise(out):
            assert after.sequence == (before.sequence + 1) & 0xFFFF
            assert after.timestamp == (before.timestamp + 160) & 0xFFFFFFFF
        # reverse direction: 2 x 10 ms G.729 frames -> 20 ms PCMA
        g729 = codecs.get("G729")
        stream = OutgoingStream(18, ssrc=0x7272, sequence=5, timestamp=10)
        audio = np.zeros(160 * 10, dtype=np.int16)
        for i in range(10):
            carrier.send(stream.packet(g729.encode(audio[i * 160 : (i + 1) * 160]), 160),
                         relay.b.local_address)
        await phone.wait_for(10)
        back = phone.packets()
        assert {p.payload_type for p in back} == {8} and {len(p.payload) for p in back} == {160}
        stats = relay.stats()
        assert stats["a"]["events_dropped"] == 1
        assert stats["transcoder_a"]["packets_out"] == 20
        assert stats["transcoder_b"]["packets_in"] == 10
        relay.close()
        phone.close()
        carrier.close()

    run(scenario)


def test_telephone_event_handler_seam() -> None:
    calls: list[tuple[RtpPacket, EventRoute]] = []

    def handler(packet: RtpPacket, route: EventRoute) -> list[bytes]:
        calls.append((packet, route))
        packet.payload_type = 100
        return [route.restamp(packet)]

    async def scenario() -> None:
        phone, carrier = await Endpoint.open(), await Endpoint.open()
        relay = await RtpRelay.open(
            LegConfig("PCMA", remote=phone.address, dtmf_payload_type=101),
            LegConfig("G729", remote=carrier.address, dtmf_payload_type=None),
            telephone_event_handler=handler,
        )
        for datagram in pcma_packets(2, timestamp=8000):
            phone.send(datagram, relay.a.local_address)
        phone.send(OutgoingStream(101, ssrc=0x5151, sequence=1002).packet_at(
            bytes([9, 0x0A, 0, 160]), 8320, marker=True), relay.a.local_address)
        await carrier.wait_for(3)
        media, event = carrier.packets()[1], carrier.packets()[2]
        assert len(calls) == 1 and calls[0][1].target.codec == "G729"
        assert event.payload_type == 100 and event.marker
        # restamped onto the G.729 leg: its SSRC, next sequence, mapped timestamp
        assert event.ssrc == media.ssrc
        assert event.sequence == (media.sequence + 1) & 0xFFFF
        assert event.timestamp == (media.timestamp + 160) & 0xFFFFFFFF
        relay.close()
        phone.close()
        carrier.close()

    run(scenario)


def test_symmetric_latching_and_foreign_sources() -> None:
    async def scenario() -> None:
        phone, carrier, intruder = (await Endpoint.open(), await Endpoint.open(),
                                    await Endpoint.open())
        # the phone is behind NAT: its SDP address is wrong; the carrier's SDP is unknown
        wrong = ("127.0.0.1", 9)
        relay = await RtpRelay.open(LegConfig("PCMA", remote=wrong), LegConfig("PCMA"))
        packets = pcma_packets(6)
        phone.send(packets[0], relay.a.local_address)
        await asyncio.sleep(0.05)
        assert relay.a.latched == phone.address
        assert relay.stats()["a"]["dropped_no_peer"] == 1  # nowhere to send on leg b yet
        carrier.send(pcma_packets(1, ssrc=9)[0], relay.b.local_address)
        await phone.wait_for(1)
        assert phone.received[0][1] == relay.a.local_address  # sent to the latched address
        phone.send(packets[1], relay.a.local_address)
        await carrier.wait_for(1)
        assert len(carrier.received) == 1
        intruder.send(packets[2], relay.a.local_address)  # not the latched source
        await asyncio.sleep(0.05)
        assert relay.stats()["a"]["dropped_foreign"] == 1
        assert len(carrier.received) == 1
        # junk does not latch a fresh leg
        relay.relatch("a")
        intruder.send(b"hello", relay.a.local_address)
        await asyncio.sleep(0.05)
        assert relay.a.latched is None and relay.stats()["a"]["dropped_invalid"] == 1
        relay.close()
        for endpoint in (phone, carrier, intruder):
            endpoint.close()

    run(scenario)


def test_port_allocator_even_ports_and_exhaustion() -> None:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    base = probe.getsockname()[1] & ~1
    probe.close()
    low, high = base, base + 7  # four even ports
    blocker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        blocker.bind(("127.0.0.1", base + 2))  # someone else holds one of them
    except OSError:
        blocker.close()
        pytest.skip("port range busy on this host")
    allocator = PortAllocator(low, high)
    sockets = []
    try:
        while True:
            try:
                sockets.append(allocator.bind("127.0.0.1"))
            except PortRangeExhausted:
                break
        ports = [s.getsockname()[1] for s in sockets]
        assert all(port % 2 == 0 and low <= port <= high for port in ports)
        assert base + 2 not in ports and len(ports) <= 3
        freed = ports[0]
        sockets.pop(0).close()
        allocator.release(freed)
        again = allocator.bind("127.0.0.1")
        sockets.append(again)
        assert again.getsockname()[1] == freed
    finally:
        for s in sockets:
            s.close()
        blocker.close()
    with pytest.raises(ValueError, match="1024..65535"):
        PortAllocator(80, 90)


def test_relay_uses_the_port_range_and_returns_ports() -> None:
    async def scenario() -> None:
        allocator = PortAllocator(40000, 40999)
        relay = await RtpRelay.open(LegConfig("PCMA"), LegConfig("PCMA"), ports=allocator)
        ports = {relay.a.local_address[1], relay.b.local_address[1]}
        assert all(p % 2 == 0 and 40000 <= p <= 40999 for p in ports)
        assert allocator.in_use == ports
        relay.close()
        assert allocator.in_use == frozenset()

    run(scenario)


def test_default_event_handler_applies_key_range_and_validates_payloads() -> None:
    async def scenario() -> None:
        phone, carrier = await Endpoint.open(), await Endpoint.open()
        relay = await RtpRelay.open(
            LegConfig("PCMA", remote=phone.address, dtmf_payload_type=101),
            LegConfig("PCMA", remote=carrier.address, dtmf_payload_type=97,
                      dtmf_events=frozenset(range(12))),  # keys 0-9 * # only (no A-D)
        )
        events = OutgoingStream(101, ssrc=3, sequence=1)
        for payload in (bytes([5, 0x0A, 0, 160]),  # digit 5: passes, PT 101 -> 97
                        bytes([12, 0x0A, 0, 160]),  # "A": outside the carrier's key range
                        bytes([5, 0x0A, 0])):  # malformed: 3 bytes
            phone.send(events.packet_at(payload, 800, marker=True), relay.a.local_address)
        await carrier.wait_for(1)
        await asyncio.sleep(0.05)
        assert [(p.payload_type, p.payload[0]) for p in carrier.packets()] == [(97, 5)]
        assert relay.stats()["a"]["events_dropped"] == 2
        relay.close()
        phone.close()
        carrier.close()

    run(scenario)


# -- DTMF conversion through vosapp.media.dtmf (docs/behaviour.md §6)
# ------------------------------------



def test_rfc2833_to_inband_replaces_the_audio_and_drops_the_events() -> None:
    async def scenario() -> None:
        phone, carrier = await Endpoint.open(), await Endpoint.open()
        converter = DtmfConverter(
            DtmfSideSettings(payload_type=101),
            DtmfSideSettings(payload_type=96, send="Inband"),
            far_rfc2833=False,
        )
        relay = await RtpRelay.open(
            LegConfig("PCMA", remote=phone.address, dtmf_payload_type=101),
            LegConfig("PCMA", remote=carrier.address, dtmf_payload_type=None),
            dtmf={"a": converter},
        )
        pcma = codecs.get("PCMA")
        media = OutgoingStream(8, ssrc=0x99, sequence=10, timestamp=0)
        silence = np.zeros(160, dtype=np.int16)
        for _ in range(5):
            phone.send(media.packet(pcma.encode(silence), 160), relay.a.local_address)
        events = TelephoneEventSender(101).packets("5", 120, timestamp=media.timestamp,
                                                   sequence=media.sequence)
        for event in events:
            phone.send(bytes(RtpPacket(101, event.sequence, event.timestamp, 0x99,
                                       payload=event.payload, marker=event.marker)),
                       relay.a.local_address)
        media.sequence = (events[-1].sequence + 1) & 0xFFFF
        for _ in range(15):
            phone.send(media.packet(pcma.encode(silence), 160), relay.a.local_address)
        await carrier.wait_for(20)
        await asyncio.sleep(0.05)
        received = carrier.packets()
        assert {p.payload_type for p in received} == {8}  # no telephone-event on leg b
        assert len(received) == 20
        for before, after in itertools.pairwise(received):  # the relay's own numbering
            assert after.sequence == (before.sequence + 1) & 0xFFFF
        audio = pcma.decode(b"".join(p.payload for p in received))
        assert detect_digits(audio) == "5"
        assert relay.stats()["a"]["events_dropped"] == len(events)  # none went out as events
        relay.close()
        phone.close()
        carrier.close()

    run(scenario)


def test_inband_to_rfc2833_while_transcoding_to_g729() -> None:
    async def scenario() -> None:
        phone, carrier = await Endpoint.open(), await Endpoint.open()
        converter = DtmfConverter(
            DtmfSideSettings(),
            DtmfSideSettings(payload_type=96, send="RFC2833"),
            far_rfc2833=True,
        )
        relay = await RtpRelay.open(
            LegConfig("PCMA", remote=phone.address, dtmf_payload_type=101),
            LegConfig("G729", remote=carrier.address, dtmf_payload_type=96),
            dtmf={"a": converter},
        )
        pcma = codecs.get("PCMA")
        tones = generate_digits("7", on_ms=100, off_ms=200)
        audio = np.concatenate([np.zeros(800, dtype=np.int16), tones])
        audio = audio[: audio.size - audio.size % 160]
        media = OutgoingStream(8, ssrc=0x42, sequence=0, timestamp=0)
        for i in range(0, audio.size, 160):
            phone.send(media.packet(pcma.encode(audio[i : i + 160]), 160), relay.a.local_address)
            await asyncio.sleep(0)
        await carrier.wait_for(audio.size // 160 + 5)
        await asyncio.sleep(0.3)  # the event is paced over its duration after detection
        received = carrier.packets()
        voice = [p for p in received if p.payload_type == 18]
        events = [p for p in received if p.payload_type == 96]
        assert len(voice) == audio.size // 160
        assert events, relay.dtmf_log
        assert {p.payload[0] for p in events} == {7}
        assert events[0].marker and sum(1 for p in events if p.payload[1] & 0x80) == 3
        assert {p.ssrc for p in events} == {voice[0].ssrc}  # same RTP stream on leg b
        assert len({p.sequence for p in received}) == len(received)
        relay.close()
        phone.close()
        carrier.close()

    run(scenario)


def test_sip_info_in_and_out() -> None:
    sent_info: list[tuple[str, SendInfo]] = []

    async def scenario() -> None:
        phone, carrier = await Endpoint.open(), await Endpoint.open()
        relay = await RtpRelay.open(
            LegConfig("PCMA", remote=phone.address, dtmf_payload_type=101),
            LegConfig("PCMA", remote=carrier.address, dtmf_payload_type=96),
            dtmf={
                "a": DtmfConverter(DtmfSideSettings(), DtmfSideSettings(payload_type=96,
                                                                        send="RFC2833"),
                                   far_rfc2833=True),
                "b": DtmfConverter(DtmfSideSettings(payload_type=96),
                                   DtmfSideSettings(send="SIP INFO"), far_rfc2833=True),
            },
            on_info_send=lambda side, info: sent_info.append((side, info)),
        )
        for datagram in pcma_packets(3):  # latch leg a, start the numbering
            phone.send(datagram, relay.a.local_address)
        await carrier.wait_for(3)
        # INFO from the phone -> RFC 4733 towards the carrier
        relay.info_received("a", "application/dtmf-relay", "Signal=9\r\nDuration=100\r\n")
        await carrier.wait_for(3 + 4)
        await asyncio.sleep(0.2)
        events = [p for p in carrier.packets() if p.payload_type == 96]
        assert events and {p.payload[0] for p in events} == {9}
        # RFC 4733 from the carrier -> SIP INFO towards the phone
        for event in TelephoneEventSender(96).packets("#", 80, timestamp=0, sequence=0):
            carrier.send(bytes(RtpPacket(96, event.sequence, event.timestamp, 5,
                                         payload=event.payload, marker=event.marker)),
                         relay.b.local_address)
        await asyncio.sleep(0.1)
        assert [(side, info.digit) for side, info in sent_info] == [("a", "#")]
        relay.close()
        phone.close()
        carrier.close()

    run(scenario)


def test_relay_that_cannot_bind_its_second_leg_returns_the_first_port() -> None:
    async def scenario() -> None:
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe.bind(("127.0.0.1", 0))
        base = (probe.getsockname()[1] & ~1) + 2
        probe.close()
        allocator = PortAllocator(base, base + 1)  # room for one leg only
        with pytest.raises(PortRangeExhausted):
            await RtpRelay.open(LegConfig("PCMA"), LegConfig("PCMA"), ports=allocator)
        assert allocator.in_use == frozenset()  # the first leg's port went back to the pool

    run(scenario)


def test_sdp_host_name_is_not_resolved_the_leg_waits_to_latch() -> None:
    """Issue 12 item 1 (media side): an SDP connection address given as a host name is never
    resolved on the event loop (``sendto`` with a name would, for every packet); that leg
    sends only once it has latched on the peer's own RTP (RFC 4961 symmetric RTP)."""
    async def scenario() -> None:
        phone, carrier = await Endpoint.open(), await Endpoint.open()
        # "localhost" resolves from /etc/hosts: a name sendto() would resolve, blockingly.
        relay = await RtpRelay.open(LegConfig("PCMA", remote=phone.address),
                                    LegConfig("PCMA", remote=("localhost", carrier.address[1])))
        try:
            assert relay.b.peer is None
            packets = pcma_packets(3)
            phone.send(packets[0], relay.a.local_address)
            await asyncio.sleep(0.2)
            assert carrier.received == []
            assert relay.stats()["a"]["dropped_no_peer"] == 1
            carrier.send(pcma_packets(1, ssrc=9)[0], relay.b.local_address)  # latches leg b
            await phone.wait_for(1)
            phone.send(packets[1], relay.a.local_address)
            await carrier.wait_for(1)
            assert [data for data, _ in carrier.received] == [packets[1]]
            relay.relatch("b", ("localhost", carrier.address[1]))  # a re-INVITE, same rule
            assert relay.b.peer is None
        finally:
            relay.close()
            phone.close()
            carrier.close()

    asyncio.run(asyncio.wait_for(scenario(), 30))

