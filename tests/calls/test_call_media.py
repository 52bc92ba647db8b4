"""A transcoded call on real sockets (docs/behaviour.md §5): Python caller and vendor UAs (asyncio
UDP) through an in-process :class:`~vosapp.io.runtime.Switch`.

The caller's mapping gateway is Softswitch specified PCMA, the vendor's routing gateway
Softswitch specified G.729, both with Allow codec conversion, media proxy Auto: the switch must
offer the vendor only G.729 on its relay, answer the caller PCMA on its relay, and transcode
both ways. The audio that arrives at each end is decoded and correlated with what was sent.
"""

from __future__ import annotations

import asyncio
import gc
import socket
import weakref
from pathlib import Path
from typing import Self

import numpy as np
import pytest

from vosapp.config import parse_config
from vosapp.io.call_media import RelayBackend, backend_for
from vosapp.io.runtime import Switch
from vosapp.media import codecs
from vosapp.media.dtmf import TelephoneEventSender
from vosapp.media.rtp import OutgoingStream, RtpPacket
from vosapp.net import Address
from vosapp.sip import (
    CSeq,
    NameAddr,
    Request,
    Response,
    SipUri,
    Via,
    make_response,
    new_branch,
    new_tag,
    parse,
)
from vosapp.sip.sdp import G729, PCMA, PCMU, SessionDescription, answer, build_offer
from vosapp.switch.app import build_switch_app
from vosapp.switch.call import MediaRefused
from vosapp.switch.cdr import read_cdrs

pytestmark = pytest.mark.timeout(60)


class Udp(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[bytes, Address]] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None
        self.address: Address = ("127.0.0.1", 0)

    @classmethod
    async def open(cls) -> Udp:
        loop = asyncio.get_running_loop()
        _, proto = await loop.create_datagram_endpoint(cls, local_addr=("127.0.0.1", 0))
        return proto

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.address = transport.get_extra_info("sockname")[:2]

    def datagram_received(self, data: bytes, addr: Address) -> None:  # type: ignore[override]
        self.queue.put_nowait((data, addr))

    def send(self, data: bytes, to: Address) -> None:
        assert self.transport is not None
        self.transport.sendto(data, to)

    async def sip(self, want: str, timeout: float = 5.0) -> tuple[Request | Response, Address]:
        """The next SIP message matching ``want`` (a method or a status class like '2')."""
        while True:
            data, source = await asyncio.wait_for(self.queue.get(), timeout)
            message = parse(data)
            if isinstance(message, Request) and message.method == want:
                return message, source
            if isinstance(message, Response) and str(message.status).startswith(want):
                return message, source

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def tone(count: int, freq: float) -> np.ndarray:
    n = np.arange(160 * count)
    return (8000 * np.sin(2 * np.pi * freq * n / 8000)).astype(np.int16)


async def send_audio(sock: Udp, codec_name: str, pt: int, audio: np.ndarray, to: Address,
                     frame: int = 160) -> None:
    codec = codecs.get(codec_name)
    stream = OutgoingStream(pt, ssrc=0x1234 + pt, sequence=100, timestamp=0)
    for i in range(len(audio) // frame):
        sock.send(bytes(stream.packet(codec.encode(audio[i * frame:(i + 1) * frame]), frame)),
                  to)
        await asyncio.sleep(0.004)


async def collect(sock: Udp, codec_name: str, count: int, timeout: float = 8.0) -> np.ndarray:
    codec = codecs.get(codec_name)
    chunks = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while len(chunks) < count and loop.time() < deadline:
        try:
            data, _ = await asyncio.wait_for(sock.queue.get(), max(0.01, deadline - loop.time()))
        except TimeoutError:
            break
        packet = RtpPacket.parse(data)
        chunks.append(codec.decode(packet.payload))
    return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)


def best_correlation(received: np.ndarray, sent: np.ndarray) -> float:
    """Highest normalised correlation of ``received`` against ``sent`` over small lags
    (codec delay)."""
    span = 1600
    best = 0.0
    ref = sent[800:800 + span].astype(float)
    for lag in range(400):
        part = received[800 + lag:800 + lag + span].astype(float)
        if len(part) < span:
            break
        value = float(np.dot(part, ref) / (np.linalg.norm(part) * np.linalg.norm(ref) + 1e-9))
        best = max(best, value)
    return best


class Rig:
    """A switch, a caller and a vendor (SIP + RTP sockets each), and an established call."""

    def __init__(self, tmp_path: Path, mapping: str, routing: str,
                 parameters: str = "") -> None:
        self.tmp_path = tmp_path
        self.mapping = mapping
        self.routing = routing
        self.parameters = parameters

    async def __aenter__(self) -> Self:
        self.caller_sip, self.vendor_sip = await Udp.open(), await Udp.open()
        self.caller_rtp, self.vendor_rtp = await Udp.open(), await Udp.open()
        config = parse_config(f"""
[switch]
sip_listen = "127.0.0.1:5060"
[parameters]
{self.parameters}
[[mapping_gateway]]
name = "customer"
addresses = ["127.0.0.1"]
{self.mapping}
[[routing_gateway]]
name = "vendor"
address = "127.0.0.1:{self.vendor_sip.address[1]}"
{self.routing}
""")
        self.switch = Switch(config=config, params=config.parameters, host="127.0.0.1", port=0,
                             data_dir=self.tmp_path, transports=("UDP",), persist_trace=False,
                             features=["registrar", "b2bua"])
        await self.switch.start()
        self.backend = RelayBackend("127.0.0.1")  # ephemeral RTP ports (no fixed range)
        self.switch.app.b2bua.media = self.backend
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.switch.stop()
        for sock in (self.caller_sip, self.vendor_sip, self.caller_rtp, self.vendor_rtp):
            sock.close()

    async def establish(self, vendor_codecs: list) -> SessionDescription:  # type: ignore[type-arg]
        """Caller offers PCMA/PCMU (+ telephone-event 101); the vendor answers from
        ``vendor_codecs``. Returns the offer the vendor got."""
        host, port = self.switch.sip_address
        self.host_port = (host, port)
        offer = build_offer("127.0.0.1", self.caller_rtp.address[1], [PCMA, PCMU])
        self.invite = invite = Request.build(
            "INVITE", SipUri(user="0044123", host=host, port=port),
            via=Via("UDP", "127.0.0.1", self.caller_sip.address[1],
                    {"branch": new_branch(), "rport": None}),
            from_=NameAddr(SipUri(user="1001", host="127.0.0.1"), None, {"tag": new_tag()}),
            to=NameAddr(SipUri(user="0044123", host=host)), cseq=1,
            contact=NameAddr(SipUri(user="1001", host="127.0.0.1",
                                    port=self.caller_sip.address[1])),
            body=bytes(offer), content_type="application/sdp")
        self.caller_sip.send(bytes(invite), (host, port))
        vendor_invite, self.vendor_source = await self.vendor_sip.sip("INVITE")
        self.vendor_invite = vendor_invite
        vendor_offer = SessionDescription.parse(vendor_invite.body)
        self.relay_b = (vendor_offer.connection.address, vendor_offer.first_audio().port)
        vendor_answer = answer(vendor_offer, vendor_codecs, address="127.0.0.1",
                               port=self.vendor_rtp.address[1])
        self.vendor_tag = new_tag()
        ok = make_response(vendor_invite, 200, to_tag=self.vendor_tag)
        ok.headers.add("Contact", f"<sip:vendor@127.0.0.1:{self.vendor_sip.address[1]}>")
        ok.headers.add("Content-Type", "application/sdp")
        ok.body = bytes(vendor_answer.sdp)
        self.vendor_sip.send(bytes(ok), self.vendor_source)
        await self.vendor_sip.sip("ACK")
        self.final, _ = await self.caller_sip.sip("2")
        caller_answer = SessionDescription.parse(self.final.body)
        self.caller_answer = caller_answer
        self.relay_a = (caller_answer.connection.address, caller_answer.first_audio().port)
        ack = Request.build("ACK", invite.uri, via=Via("UDP", "127.0.0.1",
                                                       self.caller_sip.address[1],
                                                       {"branch": new_branch()}),
                            from_=invite.from_, to=self.final.to, call_id=invite.call_id,
                            cseq=CSeq(1, "ACK"))
        self.caller_sip.send(bytes(ack), (host, port))
        return vendor_offer

    async def hang_up(self) -> None:
        invite = self.invite
        bye = Request.build("BYE", SipUri(host=self.host_port[0], port=self.host_port[1]),
                            via=Via("UDP", "127.0.0.1", self.caller_sip.address[1],
                                    {"branch": new_branch(), "rport": None}),
                            from_=invite.from_, to=self.final.to, call_id=invite.call_id,
                            cseq=CSeq(2, "BYE"))
        self.caller_sip.send(bytes(bye), self.host_port)
        assert (await self.caller_sip.sip("2"))[0].cseq.method == "BYE"
        vendor_bye, source = await self.vendor_sip.sip("BYE")
        self.vendor_sip.send(bytes(make_response(vendor_bye, 200)), source)
        await asyncio.sleep(0.1)


def test_pcma_caller_g729_vendor_transcoded_both_ways(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Rig(tmp_path, """
codec_mode = "Softswitch specified"
specified_codec = "PCMA"
allow_codec_conversion = true
""", """
codec_mode = "Softswitch specified"
specified_codec = "G729"
allow_codec_conversion = true
""") as rig:
            vendor_offer = await rig.establish([G729])
            # the vendor is offered only G.729, on the switch's relay
            assert [c.encoding for c in vendor_offer.first_audio().codecs()
                    if c.encoding != "telephone-event"] == ["G729"]
            assert rig.relay_b[1] != rig.caller_rtp.address[1]
            assert rig.caller_answer.first_audio().codecs()[0].encoding == "PCMA"

            # audio both ways at once: 440 Hz from the caller, 700 Hz from the vendor
            up, down = tone(50, 440.0), tone(50, 700.0)
            await asyncio.gather(
                send_audio(rig.caller_rtp, "PCMA", 8, up, rig.relay_a),
                send_audio(rig.vendor_rtp, "G729", 18, down, rig.relay_b),
            )
            at_vendor, at_caller = await asyncio.gather(collect(rig.vendor_rtp, "G729", 50),
                                                        collect(rig.caller_rtp, "PCMA", 50))
            assert len(at_vendor) >= 160 * 40 and len(at_caller) >= 160 * 40
            assert best_correlation(at_vendor, up) > 0.8
            assert best_correlation(at_caller, down) > 0.8
            # and not just any audio: the other tone does not correlate
            assert best_correlation(at_vendor, down) < 0.5

            await rig.hang_up()
            assert rig.backend.sessions == set()  # relay closed with the call
            [row] = read_cdrs(rig.switch.store)
            assert (row["caller_codec"], row["callee_codec"], row["media_mode"]) == (
                "PCMA", "G729", "transcode")

    asyncio.run(scenario())


def test_rfc2833_from_caller_reaches_a_sip_info_vendor_and_back(tmp_path: Path) -> None:
    """Vendor gateway: DTMF send SIP INFO; caller gateway: DTMF send RFC2833 (media proxy
    Auto → relayed for the conversion). Caller's RFC 2833 digit → INFO to the vendor; the
    vendor's INFO → RFC 2833 to the caller."""
    async def scenario() -> None:
        async with Rig(tmp_path, 'dtmf_send = "RFC2833"', 'dtmf_send = "SIP INFO"') as rig:
            await rig.establish([PCMA])
            assert rig.relay_a[1] != rig.caller_rtp.address[1]  # relayed, not direct
            stream = OutgoingStream(8, ssrc=0x99, sequence=1, timestamp=0)
            codec = codecs.get("PCMA")
            silence = np.zeros(160, dtype=np.int16)
            for _ in range(3):
                rig.caller_rtp.send(bytes(stream.packet(codec.encode(silence), 160)),
                                    rig.relay_a)
            for event in TelephoneEventSender(101).packets("5", 100, timestamp=480,
                                                          sequence=4):
                rig.caller_rtp.send(bytes(RtpPacket(101, event.sequence, event.timestamp,
                                                    0x99, payload=event.payload,
                                                    marker=event.marker)), rig.relay_a)
            info, source = await rig.vendor_sip.sip("INFO")
            assert info.headers.get("Content-Type") == "application/dtmf-relay"
            assert b"Signal=5" in info.body
            assert info.call_id == rig.vendor_invite.call_id
            rig.vendor_sip.send(bytes(make_response(info, 200)), source)
            # the other way: INFO from the vendor -> telephone-event packets to the caller
            back = Request.build(
                "INFO", rig.vendor_invite.contacts[0].uri,
                via=Via("UDP", "127.0.0.1", rig.vendor_sip.address[1],
                        {"branch": new_branch(), "rport": None}),
                from_=NameAddr(rig.vendor_invite.to.uri, None, {"tag": rig.vendor_tag}),
                to=rig.vendor_invite.from_, call_id=rig.vendor_invite.call_id,
                cseq=CSeq(1, "INFO"), body=b"Signal=9\r\nDuration=100\r\n",
                content_type="application/dtmf-relay")
            rig.vendor_sip.send(bytes(back), rig.host_port)
            reply, _ = await rig.vendor_sip.sip("2")
            assert reply.cseq.method == "INFO"
            events = []
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 5
            while not events and loop.time() < deadline:
                data, _ = await asyncio.wait_for(rig.caller_rtp.queue.get(), 5)
                packet = RtpPacket.parse(data)
                if packet.payload_type == 101:
                    events.append(packet.payload[0])
            assert events == [9]
            await rig.hang_up()
            [row] = read_cdrs(rig.switch.store)
            assert "a->b RFC2833 to SIP INFO" in row["dtmf_method"]
            assert "b->a SIP INFO to RFC2833" in row["dtmf_method"]
            assert row["media_mode"] == "relay"

    asyncio.run(scenario())


def test_a_relayed_call_dies_by_reference_count_once_its_transactions_end(
        tmp_path: Path) -> None:
    """No reference cycle through a call's objects (issue #14): CPython's cyclic GC would have
    to find them, stopping the event loop and every relay in it while it scans. With the GC
    off, the call and its relay must be gone once the call is over and its transactions have
    ended (64*T1 after the BYE; T1 at its minimum, 100 ms)."""
    async def scenario() -> None:
        async with Rig(tmp_path, 'dtmf_send = "RFC2833"', 'dtmf_send = "SIP INFO"',
                       "SS_SIP_RESEND_INTERVAL = 100") as rig:
            await rig.establish([PCMA])
            [call] = rig.switch.app.b2bua.calls.values()
            [session] = rig.backend.sessions
            assert session.relay is not None
            assert session.relay.core.on_info_send is not None  # SIP INFO conversion on
            alive = [weakref.ref(obj) for obj in (call, call.answered, session, session.relay,
                                                  session.relay.core)]
            del call, session
            await rig.hang_up()
            await asyncio.sleep(64 * 0.1 + 1.0)  # Timer J/K of the BYEs' transactions
            assert [type(ref()).__name__ for ref in alive if ref() is not None] == []

    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        asyncio.run(scenario())
    finally:
        if enabled:
            gc.enable()


def test_relay_backend_takes_ports_from_the_range_and_returns_them() -> None:
    # a range around a port the kernel just handed out (no fixed ports in tests)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        base = probe.getsockname()[1]
    low = max(1024, base - base % 2 - 40)
    backend = RelayBackend("127.0.0.1", low, low + 80)
    session = backend.allocate()
    ports = {session.local_a[1], session.local_b[1]}
    assert all(low <= p <= low + 80 and p % 2 == 0 for p in ports) and len(ports) == 2
    assert backend.ports.in_use == frozenset(ports)
    session.close()
    assert backend.ports.in_use == frozenset() and backend.sessions == set()


def test_default_backend_follows_the_switch_section() -> None:
    from vosapp.clock import ManualClock
    from vosapp.switch.core import SwitchCore

    config = parse_config("""
[switch]
sip_listen = "127.0.0.1:5060"
media_ip = "127.0.0.1"
rtp_ports = "30000-30999"
""")
    core = SwitchCore(clock=ManualClock(), config=config)
    b2bua = build_switch_app(core, ["b2bua"]).b2bua
    assert b2bua is not None
    with pytest.raises(MediaRefused, match="no media relay"):
        _ = b2bua.media  # a bare sans-IO core has no sockets to relay with
    b2bua.media_factory = backend_for  # what the asyncio runtime provides
    backend = b2bua.media  # built lazily, binds nothing yet
    assert isinstance(backend, RelayBackend) and backend.host == "127.0.0.1"
    assert backend.ports is not None and backend.ports.in_use == frozenset()
