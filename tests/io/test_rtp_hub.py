"""The relay's native forwarding hub (vosapp.io._rtphub) against the Python path: the same
traffic through both gives the same counters and statistics and the same datagrams at the
peers; the hub's own API over loopback sockets."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from tests.io.test_rtp_relay import Endpoint, pcma_packets, run
from vosapp.clock import ManualClock
from vosapp.io import rtp_relay
from vosapp.io.rtp_relay import LegConfig, RtpRelay
from vosapp.media.relay import RelayCore
from vosapp.media.rtp import OutgoingStream, RtpStreamStats

pytestmark = [
    pytest.mark.timeout(30),
    pytest.mark.skipif(rtp_relay._rtphub is None, reason="vosapp.io._rtphub is not built"),
]


async def settle(relay: RtpRelay, sent: dict[str, int], a_peers: list[Endpoint],
                 b_peer: Endpoint) -> None:
    """Wait until the relay has taken every datagram sent to it (``sent`` per leg) and the
    peers have everything it sent them."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5.0
    while loop.time() < deadline:
        stats = relay.stats()
        if (all(stats[side]["rx_packets"] == count for side, count in sent.items())
                and sum(len(peer.received) for peer in a_peers) == stats["a"]["tx_packets"]
                and len(b_peer.received) == stats["b"]["tx_packets"]):
            await asyncio.sleep(0.005)  # nothing more in flight
            return
        await asyncio.sleep(0.002)
    raise AssertionError(f"relay did not settle: {relay.stats()} vs {sent}")


def start_on_loopback(relay: RtpRelay) -> None:
    """Start the relay on two fresh loopback sockets, one per leg."""
    socks = {side: socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for side in ("a", "b")}
    for sock in socks.values():
        sock.bind(("127.0.0.1", 0))
    relay.start_on(socks)


async def send_random_bursts(rng: Any, relay: RtpRelay, sent: dict[str, int],
                             endpoints: tuple[Endpoint, Endpoint, Endpoint],
                             datagram: Callable[[str], bytes], clock: ManualClock, *,
                             bursts: int, burst_size: int, stranger_share: float,
                             clock_steps: list[float],
                             settle_burst: Callable[[RtpRelay, dict[str, int], list[Endpoint],
                                                     Endpoint], Awaitable[None]] | None = None,
                             ) -> dict[str, Any]:
    """The random traffic tests' driver: ``bursts`` bursts of up to ``burst_size`` datagrams
    from the phone (leg a), the carrier (leg b) or now and then the stranger, each burst
    settled (``settle_burst``, by default ``settle``) and followed by a clock step; then the relay is closed and what it gave out
    (``stats()`` and every datagram each endpoint received) is returned."""
    phone, carrier, stranger = endpoints
    for _ in range(bursts):
        for _ in range(rng.randrange(1, burst_size)):
            side = rng.choice("ab")
            endpoint = ((phone if side == "a" else carrier) if rng.random() >= stranger_share
                        else stranger)
            endpoint.send(datagram(side), relay.a.local_address if side == "a"
                          else relay.b.local_address)
            sent[side] += 1
        await (settle_burst or settle)(relay, sent, [phone], carrier)
        clock.advance(rng.choice(clock_steps))
    relay.close()
    out = {"stats": relay.stats(),
           "received": {"phone": [d for d, _ in phone.received],
                        "carrier": [d for d, _ in carrier.received],
                        "stranger": [d for d, _ in stranger.received]}}
    for endpoint in endpoints:
        endpoint.close()
    return out


async def traffic(forwarded: list[int], *, owned: bool = False) -> dict[str, Any]:
    """One call's worth of awkward traffic, step by step under a manual clock (so that the
    jitter depends on the packets only, not on when the loop ran). ``owned``: the hub's
    clock is the relay's, so the hub holds the legs' statistics (own_stats)."""
    clock = ManualClock(100.0)
    if owned:
        rtp_relay._loop_hub(asyncio.get_running_loop()).clock = clock
    phone, carrier, intruder, moved = (await Endpoint.open(), await Endpoint.open(),
                                       await Endpoint.open(), await Endpoint.open())
    relay = RtpRelay(
        # different dynamic media payload types: the PT is rewritten in both directions
        LegConfig("PCMA", payload_type=96, dtmf_payload_type=101, remote=phone.address),
        LegConfig("PCMA", payload_type=97, dtmf_payload_type=100, remote=carrier.address),
        clock=clock,
    )
    sock_a, sock_b = (socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2))
    sock_a.bind(("127.0.0.1", 0))
    sock_b.bind(("127.0.0.1", 0))
    relay.start_on({"a": sock_a, "b": sock_b})
    sent = {"a": 0, "b": 0}

    def send(endpoint: Endpoint, side: str, datagrams: list[bytes]) -> None:
        to = relay.a.local_address if side == "a" else relay.b.local_address
        for datagram in datagrams:
            endpoint.send(datagram, to)
        sent[side] += len(datagrams)

    def media(count: int, *, sequence: int, pt: int = 96, ssrc: int = 0x5151) -> list[bytes]:
        out = []
        for datagram in pcma_packets(count, ssrc=ssrc, sequence=sequence,
                                     timestamp=160 * sequence):
            changed = bytearray(datagram)
            changed[1] = (changed[1] & 0x80) | pt
            out.append(bytes(changed))
        return out

    async def step(*datagrams: tuple[Endpoint, str, list[bytes]]) -> None:
        for endpoint, side, batch in datagrams:
            send(endpoint, side, batch)
        await settle(relay, sent, [phone, moved], carrier)
        clock.advance(0.02)

    await step((phone, "a", media(5, sequence=10)),  # latches leg a
               (carrier, "b", media(3, sequence=500, pt=97, ssrc=7)))  # latches leg b
    await step((phone, "a", media(20, sequence=15)))  # in order
    await step((phone, "a", media(1, sequence=40) + media(1, sequence=38)  # gap, then late
                + media(1, sequence=39) + media(1, sequence=41)))
    await step((phone, "a", media(1, sequence=30000)))  # a jump (A.1: restart unconfirmed)
    await step((phone, "a", media(3, sequence=30001)))  # ... confirmed
    await step((intruder, "a", media(2, sequence=30004)))  # foreign source: dropped
    event = OutgoingStream(101, ssrc=0x5151, sequence=30004, timestamp=0)
    await step((phone, "a", media(2, sequence=30004)
                + [event.packet_at(bytes([5, 0x8A, 0, 160]), 160 * 30005, marker=True)]
                + media(2, sequence=30006)))  # DTMF in the middle of a burst
    await step((phone, "a", [b"\x80\x60\x00"] + media(1, sequence=30008)))  # too short
    await step((phone, "a", [bytes([0x90]) + media(1, sequence=30009)[0][1:]]))  # extension bit
    cn = bytearray(media(1, sequence=30010)[0])
    cn[1] = 13  # comfort noise: the core passes it through
    await step((phone, "a", [bytes(cn)] + media(2, sequence=30011)))
    await step((carrier, "b", media(4, sequence=503, pt=97, ssrc=7)))
    relay.relatch("a", moved.address)  # re-INVITE: the phone moved
    await step((carrier, "b", media(2, sequence=507, pt=97, ssrc=7)))  # towards the new SDP
    await step((moved, "a", media(3, sequence=31000)))  # latches the new address
    await step((phone, "a", media(1, sequence=31003)))  # the old one is foreign now
    relay.set_direction("b", "inactive")  # hold
    await step((moved, "a", media(3, sequence=31003)), (carrier, "b",
                                                         media(2, sequence=509, pt=97, ssrc=7)))
    relay.set_direction("b", "sendrecv")
    await step((moved, "a", media(3, sequence=31006)))
    send(moved, "a", media(5, sequence=31009))  # queued, never read: the relay closes first
    relay.close()
    stats = relay.stats()
    received = {name: [data for data, _ in endpoint.received]
                for name, endpoint in (("phone", phone), ("carrier", carrier),
                                       ("moved", moved), ("intruder", intruder))}
    sources = {name: {source for _, source in endpoint.received}
               for name, endpoint in (("phone", phone), ("carrier", carrier), ("moved", moved))}
    assert sources == {"phone": {relay.a.local_address}, "carrier": {relay.b.local_address},
                       "moved": {relay.a.local_address}}
    for endpoint in (phone, carrier, intruder, moved):
        endpoint.close()
    return {"stats": stats, "received": received, "forwarded": sum(forwarded)}


@pytest.fixture
def forwarded_in_c(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Datagrams the hub forwarded: those RelayCore.account_forwarded counted (statistics
    reported) and those the hub accounted itself (statistics owned)."""
    counts: list[int] = []
    account = RelayCore.account_forwarded
    resume = RtpStreamStats.resume_in_order

    def spy(self: RelayCore, side: Any, headers: Any, size: int, now: float) -> None:
        counts.append(len(headers))
        account(self, side, headers, size, now)

    def resume_spy(self: RtpStreamStats, received: int, state: Any) -> None:
        counts.append(received)
        resume(self, received, state)

    monkeypatch.setattr(RelayCore, "account_forwarded", spy)
    monkeypatch.setattr(RtpStreamStats, "resume_in_order", resume_spy)
    yield counts


@pytest.mark.parametrize("statistics", ["reported", "owned"])
def test_the_hub_and_the_python_path_count_and_forward_the_same(
        monkeypatch: pytest.MonkeyPatch, forwarded_in_c: list[int], statistics: str) -> None:
    results = {}
    for path in ("python", "hub"):
        monkeypatch.setenv("VOSAPP_RTP_HUB", "0" if path == "python" else "1")
        forwarded_in_c.clear()
        results[path] = asyncio.run(traffic(forwarded_in_c, owned=statistics == "owned"))
    python, hub = results["python"], results["hub"]
    assert python["forwarded"] == 0
    assert hub["forwarded"] > 40  # most media went through C
    assert hub["received"] == python["received"]
    assert hub["stats"] == python["stats"]  # the jitter too, bit for bit
    a = hub["stats"]["a"]
    assert a["dropped_foreign"] == 3 and a["dropped_invalid"] == 1
    assert a["dropped_direction"] == 3 and hub["stats"]["b"]["dropped_direction"] == 2
    assert a["events_rx"] == 1 and a["rx_reordered"] == 2  # 38 and 39 after 40
    carrier_pts = {data[1] & 0x7F for data in hub["received"]["carrier"]}
    assert carrier_pts == {97, 100, 13}  # media and event PTs rewritten, CN as is


def test_one_hub_per_loop_one_reader_closed_with_its_last_socket(
        relay_path: str) -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        relays = [await RtpRelay.open(LegConfig("PCMA"), LegConfig("PCMA")) for _ in range(3)]
        if relay_path == "python":
            assert loop not in rtp_relay._hubs
            for relay in relays:
                relay.close()
            return
        hub = rtp_relay._hubs[loop]
        assert all(relay._hub is hub for relay in relays) and len(hub.hub) == 6
        for relay in relays[:2]:
            relay.close()
        assert rtp_relay._hubs[loop] is hub and len(hub.hub) == 2
        relays[2].close()
        assert loop not in rtp_relay._hubs
        with pytest.raises(ValueError):
            hub.hub.fileno()  # closed

    run(scenario)


def backend_session(codec_a: str, remote_a: tuple[str, int], codec_b: str,
                    remote_b: tuple[str, int]) -> Any:
    """A started io.call_media.RelaySession (what `vosapp serve` runs per call) on two fresh
    loopback sockets, with the least of a backend and of the legs' negotiated media."""
    from vosapp.io.call_media import RelaySession

    a, b = (socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2))
    a.bind(("127.0.0.1", 0))
    b.bind(("127.0.0.1", 0))

    class Backend:
        def __init__(self) -> None:
            self.ports = None
            self.sessions: set[Any] = set()

    class Spec:
        ptime, payload_type, dtmf_payload_type = 20, None, 101

        def __init__(self, codec: str, remote: tuple[str, int]) -> None:
            self.codec, self.remote = codec, remote

    session = RelaySession(Backend(), a, b)  # type: ignore[arg-type]
    session.start(Spec(codec_a, remote_a), Spec(codec_b, remote_b), dtmf={}, on_info_send=None)
    return session


def test_the_b2bua_media_backend_relays_through_the_hub(relay_path: str) -> None:
    async def scenario() -> None:
        phone, carrier = await Endpoint.open(), await Endpoint.open()
        session = backend_session("PCMA", phone.address, "PCMA", carrier.address)
        assert session.relay is not None
        assert (session.relay._hub is not None) == (relay_path == "hub")
        for datagram in pcma_packets(10):
            phone.send(datagram, session.local_a)
        await carrier.wait_for(10)
        assert [data for data, _ in carrier.received] == pcma_packets(10)
        session.close()
        phone.close()
        carrier.close()

    run(scenario)


def udp() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    return sock


def test_hub_api_routes_reports_and_send_failures() -> None:
    assert rtp_relay._rtphub is not None
    hub = rtp_relay._rtphub.Hub(0.001, 4, 16)
    inbound, outbound, sender, peer = udp(), udp(), udp(), udp()
    try:
        hub.add(inbound.fileno(), "in")
        with pytest.raises(KeyError):
            hub.add(inbound.fileno(), "again")
        assert hub.poll(0.0) == []
        sender.sendto(b"hello", inbound.getsockname())
        assert hub.poll(0.0) == [("in", None, 0, 0, 0, 0, 0, None)]  # no route: readable
        assert inbound.recvfrom(2048)[0] == b"hello"
        source, to = sender.getsockname(), peer.getsockname()
        with pytest.raises(ValueError):
            hub.set_route(inbound.fileno(), "::1", 5, 8, -1, outbound.fileno(), *to)
        hub.set_route(inbound.fileno(), *source, 8, 18, outbound.fileno(), *to)
        media = pcma_packets(3, sequence=65535)
        for datagram in media:
            sender.sendto(datagram, inbound.getsockname())
        sender.sendto(b"\x80\x08", inbound.getsockname())  # short: back to Python
        reports = hub.poll(1.0)  # not backlogged: one read
        assert reports == [("in", [(0x80, 8, 65535, 0)], 172, 1, 172, 0, 0, None)]
        reports = hub.poll(1.0005)  # woken again within the gap: a drain
        assert reports == [("in", [(0x80, 8, 0, 160), (0x80, 8, 1, 320)], 344, 2, 344, 0, 0,
                            (b"\x80\x08", source))]
        out = [peer.recvfrom(2048) for _ in range(3)]
        assert [data[1] for data, _ in out] == [18, 18, 18]  # rewritten, marker clear
        assert [data[2:] for data, _ in out] == [d[2:] for d in media]
        assert {address for _, address in out} == {outbound.getsockname()}
        # a peer the kernel refuses to send to counts as a send error, the packet as received
        hub.set_route(inbound.fileno(), *source, 8, -1, outbound.fileno(), "0.0.0.0", 0)
        sender.sendto(media[0], inbound.getsockname())
        assert hub.poll(5.0) == [("in", [(0x80, 8, 65535, 0)], 172, 0, 0, 0, 1, None)]
        hub.clear_route(inbound.fileno())
        sender.sendto(media[0], inbound.getsockname())
        assert hub.poll(6.0) == [("in", None, 0, 0, 0, 0, 0, None)]
        hub.remove(inbound.fileno())
        assert len(hub) == 0 and hub.poll(7.0) == []
        with pytest.raises(KeyError):
            hub.remove(inbound.fileno())
    finally:
        hub.close()
        for sock in (inbound, outbound, sender, peer):
            sock.close()


def test_hub_owned_statistics_match_rtp_stream_stats() -> None:
    """Packets in order accounted in C (RFC 3550 A.1 wrap, A.8 jitter with a timestamp that
    wraps and steps back) give RtpStreamStats.update's state bit for bit; a packet out of
    order goes back to Python."""
    assert rtp_relay._rtphub is not None
    hub = rtp_relay._rtphub.Hub(0.001, 8, 16)
    inbound, outbound, sender, peer = udp(), udp(), udp(), udp()
    try:
        hub.add(inbound.fileno(), "in")
        source, to = sender.getsockname(), peer.getsockname()
        hub.set_route(inbound.fileno(), *source, 8, -1, outbound.fileno(), *to)
        reference = RtpStreamStats(8000)
        reference.update(65530, 0xFFFFFE00, 10.0)  # the core accounted the latching packet
        mine = RtpStreamStats(8000)
        mine.update(65530, 0xFFFFFE00, 10.0)
        state = mine.in_order_state()
        assert state is not None
        hub.own_stats(inbound.fileno(), *state, 8000)
        with pytest.raises(RuntimeError):
            hub.clear_route(inbound.fileno())  # owned statistics are taken back first
        timestamps = [0xFFFFFEA0, 0xFFFFFF40, 0x40, 0x20, 0x1E0, 0x280, 0x320, 0x3C0]
        arrivals = [10.021, 10.0437, 10.0605, 10.07, 10.1033, 10.1201, 10.1402, 10.1599]
        for i, (timestamp, arrival) in enumerate(zip(timestamps, arrivals, strict=True)):
            sequence = (65531 + i) & 0xFFFF
            datagram = bytes([0x80, 8]) + sequence.to_bytes(2, "big") + \
                timestamp.to_bytes(4, "big") + b"\x00\x00\x51\x51" + b"\xd5" * 160
            sender.sendto(datagram, inbound.getsockname())
            assert hub.poll(arrival) == []  # forwarded and accounted in C
            reference.update(sequence, timestamp, arrival)
        late = bytes([0x80, 8]) + (65533).to_bytes(2, "big") + bytes(8) + b"\xd5" * 160
        sender.sendto(late, inbound.getsockname())
        assert hub.poll(11.0) == [("in", [], 0, 0, 0, 0, 0, (late, source))]
        taken = hub.take_stats(inbound.fileno())
        assert taken is not None and hub.take_stats(inbound.fileno()) is None
        rx_packets, rx_bytes, received, *in_order, tx_packets, tx_bytes, _, _ = taken
        assert (rx_packets, rx_bytes, received, tx_packets, tx_bytes) == (8, 8 * 172, 8, 8,
                                                                          8 * 172)
        mine.resume_in_order(received, tuple(in_order))  # type: ignore[arg-type]
        assert mine.as_dict() == reference.as_dict()  # cycles and jitter included
        assert mine.in_order_state() == reference.in_order_state()
        assert reference.cycles == 65536 and reference.jitter > 0
        hub.clear_route(inbound.fileno())
    finally:
        hub.close()
        for sock in (inbound, outbound, sender, peer):
            sock.close()


def test_a_relay_that_fails_does_not_cost_the_others_in_the_poll_their_turn(
        caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        carriers = [await Endpoint.open() for _ in range(2)]
        phones = [await Endpoint.open() for _ in range(2)]
        relays = [await RtpRelay.open(LegConfig("PCMA"), LegConfig("PCMA", remote=c.address))
                  for c in carriers]
        packets = pcma_packets(4)
        for phone, relay in zip(phones, relays, strict=True):  # latch leg a: a route each
            phone.send(packets[0], relay.a.local_address)
        await asyncio.sleep(0.05)
        assert all(relay._routes["a"] is not None for relay in relays)

        def broken(*_args: object) -> None:
            raise RuntimeError("a bug in one call")

        relays[0]._forwarded = broken  # type: ignore[method-assign]
        # two media packets and an RFC 4733 event (digit 1): the event ends the hub's turn and
        # is reported to Python, which hands it to the core. The failing relay's socket becomes
        # ready first, so the hub reports it first.
        event = bytes([0x80, 101]) + packets[3][2:12] + bytes([1, 10, 0, 160])
        for phone, relay in zip(phones, relays, strict=True):
            for packet in (packets[1], packets[2], event):
                phone.send(packet, relay.a.local_address)
        await carriers[1].wait_for(4)
        await asyncio.sleep(0.05)
        assert [data[1] & 0x7F for data, _ in carriers[1].received] == [8, 8, 8, 101]
        assert relays[1].stats()["a"]["rx_packets"] == 4
        for relay in relays:
            relay.close()
        for endpoint in (*carriers, *phones):
            endpoint.close()

    with caplog.at_level("ERROR", logger="vosapp.io.rtp_relay"):
        run(scenario)
    assert "handling its datagrams failed" in caplog.text


async def random_traffic(seed: int, forwarded: list[int]) -> dict[str, Any]:
    """Seeded random datagrams from the latched phone, the carrier and a stranger: mostly
    media in and out of order, with PT changes, garbage, short and oversized datagrams; the
    hub owns the statistics (its clock is the relay's) and hands them back and forth."""
    import random

    rng = random.Random(seed)
    clock = ManualClock(100.0)
    rtp_relay._loop_hub(asyncio.get_running_loop()).clock = clock
    phone, carrier, stranger = (await Endpoint.open(), await Endpoint.open(),
                                await Endpoint.open())
    relay = RtpRelay(LegConfig("PCMA", remote=phone.address),
                     LegConfig("PCMA", remote=carrier.address), clock=clock)
    start_on_loopback(relay)
    sent = {"a": 0, "b": 0}
    sequence = {"a": 1000, "b": 60000}

    def datagram(side: str) -> bytes:
        kind = rng.random()
        if kind < 0.05:
            return rng.randbytes(rng.randrange(1, 40))  # garbage, often shorter than a header
        if kind < 0.07:
            return bytes([0x80, 8]) + rng.randbytes(rng.randrange(1500, 2100))  # oversized
        step = rng.choice([1] * 12 + [0, 2, 5, -1, -3, 3000])  # mostly in order
        sequence[side] = (sequence[side] + step) & 0xFFFF
        packet = bytearray(pcma_packets(1, ssrc=0x77 if side == "a" else 0x88,
                                        sequence=sequence[side],
                                        timestamp=(160 * sequence[side]) & 0xFFFFFFFF)[0])
        if rng.random() < 0.05:
            packet[1] = rng.choice([0, 13, 101, 0x80 | 8])  # PCMU, CN, event, marker
        if rng.random() < 0.03:
            packet[0] = rng.choice([0x90, 0xA0, 0x81, 0x40])  # extension, padding, CSRC, v1
        return bytes(packet)

    def latch(endpoint: Endpoint, side: str) -> None:  # a stranger first would latch the leg
        endpoint.send(pcma_packets(1, sequence=sequence[side])[0],
                      relay.a.local_address if side == "a" else relay.b.local_address)
        sent[side] += 1

    latch(phone, "a")
    latch(carrier, "b")
    out = await send_random_bursts(rng, relay, sent, (phone, carrier, stranger), datagram, clock,
                                   bursts=40, burst_size=6, stranger_share=0.05,
                                   clock_steps=[0.0, 0.005, 0.02, 0.02, 0.03])
    return {**out, "forwarded": sum(forwarded)}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_traffic_gives_the_same_through_the_hub_and_the_python_path(
        monkeypatch: pytest.MonkeyPatch, forwarded_in_c: list[int], seed: int) -> None:
    results = {}
    for path in ("python", "hub"):
        monkeypatch.setenv("VOSAPP_RTP_HUB", "0" if path == "python" else "1")
        forwarded_in_c.clear()
        results[path] = asyncio.run(random_traffic(seed, forwarded_in_c))
    python, hub = results["python"], results["hub"]
    assert python["forwarded"] == 0 and hub["forwarded"] > 20
    assert hub["received"] == python["received"]
    assert hub["stats"] == python["stats"]
