"""Transcoded calls (PCMA <-> G.729, real bcg729) through the relay's C hub against the Python
path: the same traffic gives the same datagrams at every peer and the same statistics, while
the hub converted most of the media itself (vosapp.io._rtphub with a _g729lane lane)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from tests.io.test_rtp_hub import backend_session, send_random_bursts, start_on_loopback, udp
from tests.io.test_rtp_hub import settle as settle_now
from tests.io.test_rtp_relay import Endpoint
from vosapp.clock import ManualClock
from vosapp.io import rtp_relay
from vosapp.io.rtp_relay import LegConfig, RtpRelay
from vosapp.media import codecs
from vosapp.media.codecs import g729
from vosapp.media.relay import RelayCore
from vosapp.media.rtp import OutgoingStream

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(rtp_relay._rtphub is None, reason="vosapp.io._rtphub is not built"),
    pytest.mark.skipif(not g729.NATIVE_LANE, reason="vosapp.media.codecs._g729lane is not built"),
]

_AUDIO = (6000 * np.sin(np.arange(160 * 400) * 2 * np.pi * 330 / 8000)
          * (1 + 0.5 * np.sin(np.arange(160 * 400) * 2 * np.pi * 3 / 8000))).astype(np.int16)


def _payloads(codec_name: str) -> list[bytes]:
    codec = codecs.get(codec_name)
    return [codec.encode(_AUDIO[i * 160:(i + 1) * 160]) for i in range(400)]


PCMA_PAYLOADS = _payloads("PCMA")  # 160 bytes each
G729_PAYLOADS = _payloads("G729")  # 20 bytes each (2 x 10 ms)


def media(payloads: list[bytes], count: int, *, sequence: int, pt: int, ssrc: int,
          timestamp: int | None = None, marker: bool = False) -> list[bytes]:
    """``count`` packets from ``sequence`` on (timestamp 160 per sequence number unless given)."""
    start = (160 * sequence if timestamp is None else timestamp) & 0xFFFFFFFF
    stream = OutgoingStream(pt, ssrc=ssrc, sequence=sequence, timestamp=start)
    return [stream.packet(payloads[(sequence + i) % len(payloads)], 160,
                          marker=marker and i == 0) for i in range(count)]


PHONE = 65500  # where the phone's sequence numbers start


async def settle(relay: RtpRelay, sent: dict[str, int], a_peers: list[Endpoint],
                 b_peer: Endpoint) -> None:
    """tests.io.test_rtp_hub.settle, after giving the loop (the hub) a turn first: its
    RtpRelay.stats() calls take the transcoder state back, which must not hide a state the
    hub should have been handed (after a timer, a SIP INFO)."""
    await asyncio.sleep(0.005)
    await settle_now(relay, sent, a_peers, b_peer)


def make_relay(clock: ManualClock, phone: Endpoint, carrier: Endpoint) -> RtpRelay:
    """PCMA (leg a, the phone) <-> G.729 (leg b, the carrier), its outgoing numbering fixed
    so that two runs give the same bytes (it is random otherwise, RFC 3550 §5.1)."""
    relay = RtpRelay(
        LegConfig("PCMA", dtmf_payload_type=101, remote=phone.address),
        LegConfig("G729", dtmf_payload_type=100, remote=carrier.address),
        clock=clock,
    )
    assert relay.mode == "transcode"
    for side, (ssrc, sequence, timestamp) in {"a": (0xA1A1, 65530, 0xFFFFFD00),
                                              "b": (0xB2B2, 100, 5000)}.items():
        outgoing = relay.core._transcoders[side].outgoing  # type: ignore[index]
        outgoing.ssrc, outgoing.sequence, outgoing.timestamp = ssrc, sequence, timestamp
    start_on_loopback(relay)
    return relay


async def scripted(converted: list[int], *, owned: bool = True) -> dict[str, Any]:
    """One call of awkward transcoded traffic, step by step under a manual clock. ``owned``:
    it is the hub's clock too, so the hub holds the legs' statistics as well as the transcoder
    state; otherwise the hub reports the converted packets' headers to Python each poll."""
    clock = ManualClock(100.0)
    if owned:
        rtp_relay._loop_hub(asyncio.get_running_loop()).clock = clock
    phone, carrier, intruder, moved = (await Endpoint.open(), await Endpoint.open(),
                                       await Endpoint.open(), await Endpoint.open())
    relay = make_relay(clock, phone, carrier)
    sent = {"a": 0, "b": 0}

    def pcma(count: int, sequence: int, **kw: Any) -> list[bytes]:
        # the phone's numbers wrap (65536) within the first burst
        return media(PCMA_PAYLOADS, count, sequence=(PHONE + sequence) & 0xFFFF,
                     pt=kw.pop("pt", 8), ssrc=kw.pop("ssrc", 0x5151), **kw)

    def g729_media(count: int, sequence: int, **kw: Any) -> list[bytes]:
        return media(G729_PAYLOADS, count, sequence=sequence, pt=kw.pop("pt", 18),
                     ssrc=kw.pop("ssrc", 0x7777), **kw)

    async def step(*datagrams: tuple[Endpoint, str, list[bytes]]) -> None:
        for endpoint, side, batch in datagrams:
            to = relay.a.local_address if side == "a" else relay.b.local_address
            for datagram in batch:
                endpoint.send(datagram, to)
            sent[side] += len(batch)
        await settle(relay, sent, [phone, moved], carrier)
        clock.advance(0.02)

    await step((phone, "a", pcma(3, 10)), (carrier, "b", g729_media(3, 500)))  # latch both
    for i in range(4):  # in order, both ways, a packet per tick
        await step((phone, "a", pcma(1, 13 + i)), (carrier, "b", g729_media(1, 503 + i)))
    await step((phone, "a", pcma(20, 17)), (carrier, "b", g729_media(20, 507)))  # bursts
    await step((phone, "a", pcma(1, 38) + pcma(5, 39)))  # a lost packet: G.711 concealment
    await step((carrier, "b", g729_media(1, 528) + g729_media(4, 529)))  # G.729 concealment
    await step((phone, "a", pcma(1, 40) + pcma(2, 44)))  # late (dropped), then in order
    await step((phone, "a", pcma(3, 60)))  # a long gap: resynchronised, marker
    await step((phone, "a", pcma(3, 63, timestamp=160 * (PHONE + 63) + 8000)))  # DTX
    event = OutgoingStream(101, ssrc=0x5151, sequence=(PHONE + 68) & 0xFFFF, timestamp=0)
    await step((phone, "a", pcma(2, 66)
                + [event.packet_at(bytes([5, 0x8A, 0, 160]), 160 * (PHONE + 68), marker=True)]
                + pcma(2, 69)))  # an RFC 4733 event in a burst: numbered on leg b's stream
    await step((phone, "a", pcma(2, 71, marker=True)))  # an incoming marker changes nothing
    # 30 ms: the transcoder's FIFO keeps 10 ms, then a 10 ms packet evens it out
    odd = media([PCMA_PAYLOADS[0][:80] + PCMA_PAYLOADS[1]], 1, sequence=PHONE + 73, pt=8,
                ssrc=0x5151)
    await step((phone, "a", odd + media([PCMA_PAYLOADS[2][:80]], 1, sequence=PHONE + 74, pt=8,
                                        ssrc=0x5151, timestamp=160 * (PHONE + 73) + 240)
                + pcma(3, 75)))
    sid = g729_media(1, 533)[0] + b"\x12\x34"  # speech + SID (RFC 3551 §4.5.6)
    await step((carrier, "b", g729_media(1, 532) + [sid] + g729_media(3, 534)))
    await step((carrier, "b", [g729_media(1, 537)[0][:-5]] + g729_media(2, 538)))  # odd size
    cn = bytearray(pcma(1, 78)[0])
    cn[1] = 13  # comfort noise in transcode mode: unknown payload type
    await step((phone, "a", [bytes(cn)] + pcma(2, 79)))
    await step((phone, "a", [b"\x80\x08\x00"] + [bytes([0x90]) + pcma(1, 81)[0][1:]]
                + pcma(2, 82)))  # too short; extension bit
    await step((intruder, "a", pcma(2, 84)), (phone, "a", pcma(2, 84)))  # a stranger
    await step((phone, "a", pcma(1, 86, pt=0) + pcma(2, 87)))  # PCMU: not this leg's codec
    await step((phone, "a", pcma(1, 30000)))  # the sender restarts its numbering (A.1)
    await step((phone, "a", pcma(4, 30001)), (carrier, "b", g729_media(4, 540)))
    relay.relatch("a", moved.address)  # re-INVITE: the phone moved
    await step((carrier, "b", g729_media(2, 544)))
    await step((moved, "a", pcma(3, 31000, ssrc=0x6161)))
    relay.set_direction("b", "inactive")  # hold
    await step((moved, "a", pcma(2, 31003, ssrc=0x6161)), (carrier, "b", g729_media(2, 546)))
    relay.set_direction("b", "sendrecv")
    await step((moved, "a", pcma(6, 31005, ssrc=0x6161)), (carrier, "b", g729_media(6, 548)))
    for endpoint, side, batch in ((moved, "a", pcma(4, 31011, ssrc=0x6161)),
                                  (carrier, "b", g729_media(4, 554))):
        for datagram in batch:  # queued, never read: the relay closes first
            endpoint.send(datagram, relay.a.local_address if side == "a"
                          else relay.b.local_address)
    relay.close()
    stats = relay.stats()
    received = {name: [data for data, _ in endpoint.received]
                for name, endpoint in (("phone", phone), ("carrier", carrier),
                                       ("moved", moved), ("intruder", intruder))}
    for endpoint in (phone, carrier, intruder, moved):
        endpoint.close()
    return {"stats": stats, "received": received, "converted": sum(converted)}


@pytest.fixture
def converted_in_c(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Datagrams the hub converted: those the core took back with the transcoder state."""
    counts: list[int] = []
    resume = RelayCore.resume_lane

    def spy(self: RelayCore, side: Any, converted: int, *rest: Any) -> None:
        counts.append(converted)
        resume(self, side, converted, *rest)

    monkeypatch.setattr(RelayCore, "resume_lane", spy)
    yield counts


def both_paths(monkeypatch: pytest.MonkeyPatch, converted: list[int],
               scenario: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    results = {}
    for path in ("python", "hub"):
        monkeypatch.setenv("VOSAPP_RTP_HUB", "0" if path == "python" else "1")
        converted.clear()
        results[path] = asyncio.run(scenario(converted))
    return results["python"], results["hub"]


@pytest.mark.parametrize("statistics", ["owned", "reported"])
def test_transcoded_traffic_gives_the_same_through_the_hub_and_the_python_path(
        monkeypatch: pytest.MonkeyPatch, converted_in_c: list[int], statistics: str) -> None:
    python, hub = both_paths(monkeypatch, converted_in_c,
                             lambda converted: scripted(converted, owned=statistics == "owned"))
    assert python["converted"] == 0
    assert hub["converted"] > 60  # most media was converted in C
    assert hub["received"] == python["received"]  # byte for byte at every peer
    assert hub["stats"] == python["stats"]  # counters, jitter, transcoder counters
    stats = hub["stats"]
    a, b = stats["transcoder_a"], stats["transcoder_b"]
    assert a["concealed_frames"] >= 2 and b["concealed_frames"] >= 2  # losses both ways
    assert a["dropped_late"] >= 1 and a["resyncs"] >= 3
    assert stats["a"]["dropped_foreign"] == 2 and stats["a"]["dropped_unknown_pt"] == 2
    assert stats["a"]["events_rx"] == 1 and stats["b"]["events_tx"] == 1
    carrier = hub["received"]["carrier"]
    assert {data[1] & 0x7F for data in carrier} == {18, 100}  # G.729 and the event
    sequences = [int.from_bytes(data[2:4], "big") for data in carrier]
    assert sequences == [(65530 + i) & 0xFFFF for i in range(len(carrier))]  # one stream, wrapping
    assert {data[1] & 0x7F for data in hub["received"]["phone"]} == {8}


async def with_dtmf(converted: list[int]) -> dict[str, Any]:
    """Transcoded media both ways while DTMF is converted: a SIP INFO digit from the phone's
    side re-sent as paced RFC 4733 events towards the carrier (timers take leg b's next
    numbers), RFC 4733 from the phone ignored (it accepts SIP INFO only), RFC 4733 from the
    carrier out as SIP INFO."""
    from vosapp.media.dtmf.convert import DtmfConverter, DtmfSideSettings
    from vosapp.media.dtmf.rfc4733 import TelephoneEventSender

    clock = ManualClock(100.0)
    rtp_relay._loop_hub(asyncio.get_running_loop()).clock = clock
    phone, carrier = await Endpoint.open(), await Endpoint.open()
    infos: list[tuple[str, str]] = []
    relay = RtpRelay(
        LegConfig("PCMA", dtmf_payload_type=101, remote=phone.address),
        LegConfig("G729", dtmf_payload_type=100, remote=carrier.address),
        dtmf={  # no inband detector listens to the audio
            "a": DtmfConverter(DtmfSideSettings(receive="SIP INFO"),
                               DtmfSideSettings(payload_type=100, send="RFC2833"),
                               far_rfc2833=True),
            "b": DtmfConverter(DtmfSideSettings(payload_type=100, receive="RFC2833"),
                               DtmfSideSettings(send="SIP INFO"), far_rfc2833=True),
        },
        on_info_send=lambda side, info: infos.append((side, info.digit)),
        clock=clock,
    )
    for side, (ssrc, sequence, timestamp) in {"a": (0xA1A1, 65520, 0),
                                              "b": (0xB2B2, 100, 5000)}.items():
        outgoing = relay.core._transcoders[side].outgoing  # type: ignore[index]
        outgoing.ssrc, outgoing.sequence, outgoing.timestamp = ssrc, sequence, timestamp
    start_on_loopback(relay)
    sent = {"a": 0, "b": 0}
    # each endpoint's one RTP stream: media and its telephone events share the numbering
    streams = {"a": OutgoingStream(8, ssrc=0x5151, sequence=300, timestamp=48000),
               "b": OutgoingStream(18, ssrc=0x7777, sequence=9000, timestamp=0)}
    tables = {"a": PCMA_PAYLOADS, "b": G729_PAYLOADS}

    def send(side: str, datagrams: list[bytes]) -> None:
        endpoint, to = ((phone, relay.a.local_address) if side == "a"
                        else (carrier, relay.b.local_address))
        for datagram in datagrams:
            endpoint.send(datagram, to)
        sent[side] += len(datagrams)

    def events(side: str, digit: str) -> list[bytes]:
        stream = streams[side]
        pt = 101 if side == "a" else 100
        return [stream.packet_at(event.payload, stream.timestamp, marker=event.marker,
                                 payload_type=pt)
                for event in TelephoneEventSender(pt).packets(digit, 60, timestamp=0,
                                                              sequence=0)]

    for tick in range(40):
        for side in ("a", "b"):
            stream = streams[side]
            batch = [stream.packet(tables[side][tick % 400], 160)]
            if side == "a" and tick in (5, 6):  # an event in the middle of the audio
                batch += events("a", "7")[3 * (tick - 5):3 * (tick - 4)]
            if side == "b" and tick == 20:
                batch += events("b", "#")
            send(side, batch)
        if tick == 12:  # after the hub converted this tick's media: it holds the state
            await asyncio.sleep(0.005)
            relay.info_received("a", "application/dtmf-relay", "Signal=9\r\nDuration=100\r\n")
        await settle(relay, sent, [phone], carrier)
        clock.advance(0.02)
    relay.close()
    out = {"stats": relay.stats(), "converted": sum(converted), "infos": infos,
           "received": {"phone": [d for d, _ in phone.received],
                        "carrier": [d for d, _ in carrier.received]}}
    phone.close()
    carrier.close()
    return out


def test_dtmf_conversion_on_a_transcoded_call_gives_the_same_through_the_hub(
        monkeypatch: pytest.MonkeyPatch, converted_in_c: list[int]) -> None:
    python, hub = both_paths(monkeypatch, converted_in_c, with_dtmf)
    assert python["converted"] == 0 and hub["converted"] > 30
    assert hub["received"] == python["received"]
    assert hub["stats"] == python["stats"]
    assert hub["infos"] == python["infos"] == [("a", "#")]
    carrier = hub["received"]["carrier"]
    digits = {data[12] for data in carrier if data[1] & 0x7F == 100}
    assert digits == {9}  # the SIP INFO digit; the phone's RFC 4733 one was not accepted
    assert hub["stats"]["a"]["dtmf_ignored"] >= 1
    sequences = [int.from_bytes(data[2:4], "big") for data in carrier]
    assert sequences == [(65520 + i) & 0xFFFF for i in range(len(carrier))]  # one stream


async def random_traffic(seed: int, converted: list[int]) -> dict[str, Any]:
    """Seeded random datagrams both ways: mostly media in order, with losses, late and
    duplicate packets, timestamp jumps, odd sizes, events, PT changes, garbage, a stranger;
    a clock step between bursts, sometimes none."""
    rng = random.Random(seed)
    clock = ManualClock(100.0)
    rtp_relay._loop_hub(asyncio.get_running_loop()).clock = clock
    phone, carrier, stranger = (await Endpoint.open(), await Endpoint.open(),
                                await Endpoint.open())
    relay = make_relay(clock, phone, carrier)
    sent = {"a": 0, "b": 0}
    sequence = {"a": 1000, "b": 65500}
    timestamp = {"a": 0, "b": 0xFFFFF000}
    payloads = {"a": (PCMA_PAYLOADS, 8, 0x5151), "b": (G729_PAYLOADS, 18, 0x7777)}

    def datagram(side: str) -> bytes:
        kind = rng.random()
        if kind < 0.03:
            return rng.randbytes(rng.randrange(1, 40))  # garbage, often shorter than a header
        step = rng.choice([1] * 20 + [0, 2, 3, 5, -1, -2, 3000])  # mostly in order
        sequence[side] = (sequence[side] + step) & 0xFFFF
        timestamp[side] = (timestamp[side] + 160 * step
                           + (rng.choice([800, 16000]) if rng.random() < 0.03 else 0)) & 0xFFFFFFFF
        table, pt, ssrc = payloads[side]
        payload = table[sequence[side] % len(table)]
        if rng.random() < 0.03:  # an odd size: 10 ms, 30 ms, a SID after speech, a cut
            payload = rng.choice([payload[:len(payload) // 2], payload + payload[:len(payload) // 2],
                                  payload + b"\x12\x34", payload[:-3]])
        packet = bytearray(OutgoingStream(pt, ssrc=ssrc, sequence=sequence[side],
                                          timestamp=timestamp[side]).packet(payload, 160))
        if rng.random() < 0.04:
            packet[1] = rng.choice([0, 13, 0x80 | pt])  # another codec, CN, marker
        if rng.random() < 0.02:
            packet[0] = rng.choice([0x90, 0xA0, 0x81])  # extension, padding, CSRC
        if rng.random() < 0.03:  # an RFC 4733 event on the leg's stream
            event_pt = 101 if side == "a" else 100
            packet = bytearray(OutgoingStream(event_pt, ssrc=ssrc, sequence=sequence[side])
                               .packet_at(bytes([rng.randrange(16), 0x0A, 0, 160]),
                                          timestamp[side], marker=True))
        return bytes(packet)

    for side, endpoint in (("a", phone), ("b", carrier)):  # latch each leg first
        table, pt, ssrc = payloads[side]
        endpoint.send(OutgoingStream(pt, ssrc=ssrc, sequence=sequence[side],
                                     timestamp=timestamp[side]).packet(table[0], 160),
                      relay.a.local_address if side == "a" else relay.b.local_address)
        sent[side] += 1
    out = await send_random_bursts(rng, relay, sent, (phone, carrier, stranger), datagram, clock,
                                   bursts=60, burst_size=8, stranger_share=0.03,
                                   clock_steps=[0.0, 0.01, 0.02, 0.02, 0.04],
                                   settle_burst=settle)
    return {**out, "converted": sum(converted)}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_transcoded_traffic_gives_the_same_through_the_hub_and_the_python_path(
        monkeypatch: pytest.MonkeyPatch, converted_in_c: list[int], seed: int) -> None:
    python, hub = both_paths(monkeypatch, converted_in_c,
                             lambda converted: random_traffic(seed, converted))
    assert python["converted"] == 0 and hub["converted"] > 40
    assert hub["received"] == python["received"]
    assert hub["stats"] == python["stats"]


def test_hub_lane_api_converts_like_the_transcoder_and_hands_back_the_rest() -> None:
    """The hub's own_lane/take_lane against Transcoder.process on twin transcoders (fresh
    bcg729 contexts give the same bytes): the marker of a talkspurt's first packet, the
    numbering across the 16-bit wrap, the G.711 datagram kept for concealment; a gap and a
    timestamp jump go back to Python."""
    from vosapp.media.transcoder import Transcoder

    assert rtp_relay._rtphub is not None
    hub = rtp_relay._rtphub.Hub(0.001, 16, 16)
    inbound, outbound, sender, peer = udp(), udp(), udp(), udp()
    twins = [Transcoder("PCMA", "G729", ssrc=0xC0C0, sequence=65533, timestamp=77)
             for _ in range(2)]
    reference, mine = twins
    try:
        hub.add(inbound.fileno(), "in")
        source, to = sender.getsockname(), peer.getsockname()
        with pytest.raises(TypeError):
            hub.set_route(inbound.fileno(), *source, 8, -1, outbound.fileno(), *to, "lane")
        packets = media(PCMA_PAYLOADS, 12, sequence=200, pt=8, ssrc=0x5151)
        assert mine.process(packets[0]) == reference.process(packets[0])  # maps timestamps
        assert mine.native_lane is not None
        hub.set_route(inbound.fileno(), *source, 8, -1, outbound.fileno(), *to,
                      mine.native_lane)
        state = mine.lane_state()
        assert state is not None and not state.marker_next and state.keeps_heard
        reference._marker_next = True  # as after a resynchronisation: a new talkspurt
        hub.own_lane(inbound.fileno(), *state._replace(marker_next=True))
        with pytest.raises(RuntimeError):
            hub.clear_route(inbound.fileno())  # the state is taken back first
        expected = []
        for datagram in packets[1:6]:
            sender.sendto(datagram, inbound.getsockname())
            expected += reference.process(datagram)
        # converted and sent in C (headers reported: the hub does not own the statistics
        # here); one read, then a drain of the backlog
        reports = hub.poll(1.0) + hub.poll(1.0005)
        assert [[h[2] for h in r[1]] for r in reports] == [[201], [202, 203, 204, 205]]
        assert [r[2:] for r in reports] == [(172, 1, 32, 0, 0, None), (688, 4, 128, 0, 0, None)]
        out = [peer.recvfrom(2048)[0] for _ in range(5)]
        assert out == expected
        assert [data[1] for data in out] == [0x80 | 18] + [18] * 4
        gap, jump = packets[7], media(PCMA_PAYLOADS, 1, sequence=208, pt=8, ssrc=0x5151,
                                       timestamp=160 * 208 + 4000)[0]
        for datagram in (gap, jump):
            sender.sendto(datagram, inbound.getsockname())
            [(key, headers, *_, other)] = hub.poll(3.0)
            assert key == "in" and headers == [] and other == (datagram, source)
            taken = hub.take_lane(inbound.fileno())
            assert taken is not None and hub.take_lane(inbound.fileno()) is None
            mine.resume_lane(*taken)
            assert mine.process(datagram) == reference.process(datagram)  # concealed, resync
            state = mine.lane_state()
            assert state is not None
            hub.own_lane(inbound.fileno(), *state)
        assert mine.stats.as_dict() == reference.stats.as_dict()
        assert mine.outgoing.packets == reference.outgoing.packets == 9  # a concealed one too
        assert mine.outgoing.octets == reference.outgoing.octets
        assert hub.take_lane(inbound.fileno()) == (
            0, 209, 160 * 208 + 4000, False, mine.outgoing.sequence, mine.outgoing.timestamp,
            None)
        assert mine.outgoing.sequence == 6  # 65533 + 9, across the wrap
        hub.clear_route(inbound.fileno())
    finally:
        hub.close()
        for sock in (inbound, outbound, sender, peer):
            sock.close()


def test_the_b2bua_media_backend_transcodes_through_the_hub(
        monkeypatch: pytest.MonkeyPatch, converted_in_c: list[int]) -> None:
    """What `vosapp serve` runs (io/call_media.RelaySession, the hub by default, its own
    clock): a PCMA <-> G.729 call's media is converted in C."""
    from tests.io.test_rtp_relay import run

    monkeypatch.delenv("VOSAPP_RTP_HUB", raising=False)

    async def scenario() -> None:
        phone, carrier = await Endpoint.open(), await Endpoint.open()
        session = backend_session("PCMA", phone.address, "G729", carrier.address)
        relay = session.relay
        assert relay is not None and relay._hub is not None and relay.mode == "transcode"
        for datagram in media(PCMA_PAYLOADS, 10, sequence=7, pt=8, ssrc=0x5151):
            phone.send(datagram, session.local_a)
            await asyncio.sleep(0.002)
        await carrier.wait_for(10)
        stats = relay.stats()
        assert stats["transcoder_a"]["packets_out"] == 10 and stats["b"]["tx_packets"] == 10
        assert sum(converted_in_c) >= 8  # the first latches leg a through Python
        assert {len(data) for data, _ in carrier.received} == {12 + 20}
        session.close()
        phone.close()
        carrier.close()

    run(scenario)


async def many_calls(seed: int, converted: list[int], *, owned: bool) -> dict[str, Any]:
    """Several transcoded calls whose datagrams all arrive before the loop runs, so that one
    poll finds many sockets ready and the hub reads them all before converting and sending
    (its stages); now and then a call's datagram goes back to Python in the middle of such a
    poll (a loss, a late one, an odd size, an event, a timestamp jump, a stranger)."""
    rng = random.Random(seed)
    clock = ManualClock(100.0)
    if owned:
        rtp_relay._loop_hub(asyncio.get_running_loop()).clock = clock
    calls = []
    for _ in range(6):
        phone, carrier, stranger = (await Endpoint.open(), await Endpoint.open(),
                                    await Endpoint.open())
        calls.append({"relay": make_relay(clock, phone, carrier), "phone": phone,
                      "carrier": carrier, "stranger": stranger, "sent": {"a": 0, "b": 0},
                      "sequence": {"a": 1000, "b": 65530}, "timestamp": {"a": 0, "b": 0}})
    payloads = {"a": (PCMA_PAYLOADS, 8, 0x5151), "b": (G729_PAYLOADS, 18, 0x7777)}

    def datagram(call: dict[str, Any], side: str, odd: bool) -> bytes:
        table, pt, ssrc = payloads[side]
        step = rng.choice([2, -1, 1]) if odd else 1
        call["sequence"][side] = (call["sequence"][side] + step) & 0xFFFF
        call["timestamp"][side] = (call["timestamp"][side] + 160 * step) & 0xFFFFFFFF
        sequence, timestamp = call["sequence"][side], call["timestamp"][side]
        payload = table[sequence % len(table)]
        if odd and rng.random() < 0.3:
            payload = payload[:len(payload) // 2]  # 10 ms
        elif odd and rng.random() < 0.2:
            return OutgoingStream(101 if side == "a" else 100, ssrc=ssrc, sequence=sequence
                                  ).packet_at(bytes([3, 0x0A, 0, 160]), timestamp, marker=True)
        elif odd and rng.random() < 0.2:
            call["timestamp"][side] = timestamp = (timestamp + 16000) & 0xFFFFFFFF
        return OutgoingStream(pt, ssrc=ssrc, sequence=sequence,
                              timestamp=timestamp).packet(payload, 160)

    for tick in range(40):
        for call in calls:  # every socket of every call ready before the loop runs
            relay = call["relay"]
            for side in "ab":
                endpoint = call["phone"] if side == "a" else call["carrier"]
                for _ in range(rng.choice([1] * 6 + [2, 3]) if tick else 1):
                    odd = tick > 1 and rng.random() < 0.08
                    if odd and rng.random() < 0.1:
                        endpoint = call["stranger"]
                    endpoint.send(datagram(call, side, odd),
                                  relay.a.local_address if side == "a" else relay.b.local_address)
                    call["sent"][side] += 1
        await asyncio.sleep(0.005)
        for call in calls:
            await settle_now(call["relay"], call["sent"], [call["phone"]], call["carrier"])
        clock.advance(rng.choice([0.02, 0.02, 0.0, 0.04]))
    await asyncio.sleep(0.01)  # nothing arrives: a paced hub puts its reader back
    hub = rtp_relay._hubs.get(asyncio.get_running_loop())
    out: dict[str, Any] = {"converted": sum(converted), "calls": [],
                           "paced_when_idle": hub is not None and hub._paced is not None}
    for call in calls:
        call["relay"].close()
        out["calls"].append({
            "stats": call["relay"].stats(),
            "received": {name: [data for data, _ in call[name].received]
                         for name in ("phone", "carrier", "stranger")}})
        for name in ("phone", "carrier", "stranger"):
            call[name].close()
    return out


@pytest.mark.parametrize(("statistics", "batch", "paced"), [
    ("owned", None, False), ("reported", None, False), ("owned", 3, False),
    ("reported", 3, True), ("owned", None, True)])
def test_many_ready_sockets_in_one_poll_give_the_same_through_the_hub_and_the_python_path(
        monkeypatch: pytest.MonkeyPatch, converted_in_c: list[int], statistics: str,
        batch: int | None, paced: bool) -> None:
    """The hub's stages over many sockets per poll (batch 3: the read datagrams are
    converted and sent every three, in the middle of sockets' turns as well), and its
    paced polls (from 4 sockets on here), give the datagrams and statistics of the Python
    path, call by call."""
    paced_polls: list[float] = []
    paced_poll = rtp_relay._LoopHub._paced_poll

    def counting_paced_poll(self: rtp_relay._LoopHub) -> None:
        paced_polls.append(self.loop.time())
        paced_poll(self)

    monkeypatch.setattr(rtp_relay._LoopHub, "_paced_poll", counting_paced_poll)
    if paced:
        monkeypatch.setattr(rtp_relay._LoopHub, "_PACED_FROM", 4)
    native = rtp_relay._rtphub
    assert native is not None
    polls: list[int] = []  # the number of reports of each poll

    class Counting:
        """The C hub (with ``batch``), counting the reports of each poll: with the
        statistics reported, one per ready socket."""

        def __init__(self, *args: Any) -> None:
            self.hub = native.Hub(*args) if batch is None else native.Hub(*args, batch=batch)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.hub, name)

        def __len__(self) -> int:
            return len(self.hub)

        def poll(self, now: float) -> Any:
            reports = self.hub.poll(now)
            polls.append(len(reports))
            return reports

    monkeypatch.setattr(rtp_relay, "_rtphub", SimpleNamespace(Hub=Counting))
    python, hub = both_paths(monkeypatch, converted_in_c,
                             lambda converted: many_calls(4, converted,
                                                          owned=statistics == "owned"))
    assert python["converted"] == 0 and hub["converted"] > 6 * 2 * 30
    for mine, reference in zip(hub["calls"], python["calls"], strict=True):
        assert mine["received"] == reference["received"]
        assert mine["stats"] == reference["stats"]
    stats = [call["stats"] for call in hub["calls"]]
    assert sum(s["transcoder_a"]["concealed_frames"] + s["transcoder_b"]["concealed_frames"]
               for s in stats) >= 3
    assert sum(s["a"]["dropped_foreign"] + s["b"]["dropped_foreign"] for s in stats) >= 1
    assert sum(s["transcoder_a"]["resyncs"] + s["transcoder_b"]["resyncs"] for s in stats) >= 1
    if statistics == "reported":  # a report per ready socket: most polls had all twelve
        assert max(polls) == 12
    assert (len(paced_polls) > 40) == paced  # 40 ticks, each with datagrams
    assert not hub["paced_when_idle"]
