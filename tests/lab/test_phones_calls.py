"""The lab phone's call API on loopback sockets, phone to phone and phone to lab vendor:
place, answer, reject, cancel, hold/resume, hang up, audio both ways, DTMF three ways."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import numpy as np
import pytest

from vosapp.lab import quality
from vosapp.lab.call_audio import sdp_codec
from vosapp.lab.calls import CallError
from vosapp.lab.carrier import LabCarrier
from vosapp.lab.phones import LabPhone
from vosapp.lab.vendor import LabVendor
from vosapp.sip import (
    NameAddr,
    Request,
    Response,
    SipUri,
    Via,
    make_response,
    new_branch,
    new_tag,
    parse,
    sdp,
)

pytestmark = pytest.mark.timeout(120)
SPEECH = quality.load_speech(8000)[: 8000 * 2]


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 90))


def whats(call: Any) -> list[str]:
    return [event.what for event in call.events]


def test_phone_calls_phone_answer_audio_both_ways_and_remote_hangup() -> None:
    async def scenario() -> None:
        async with LabPhone("1002", "x", ("127.0.0.1", 9), codecs=["PCMU"]) as callee, \
                LabPhone("1001", "x", callee.address) as caller:
            call = await caller.call("1002")
            incoming = await callee.next_call(10)
            assert incoming.state == "ringing" and incoming.caller == "1001"
            assert call.state == "ringing"  # the 180 arrived
            await incoming.answer()
            await call.wait_answered(10)
            assert call.codec == incoming.codec == "PCMU"  # the callee's only codec
            await asyncio.gather(call.play(SPEECH), incoming.play(SPEECH[::-1].copy()))
            await asyncio.sleep(0.3)
            for end, sent in ((incoming, SPEECH), (call, SPEECH[::-1].copy())):
                report = quality.compare(sent, end.recording(), 8000)
                assert report.pesq_mos_lqo > 4.0  # G.711 over loopback: near transparent
            await incoming.hangup()
            await call.wait_ended(10)
            assert call.state == incoming.state == "ended"
            assert whats(call)[:2] == ["INVITE", "100"] or "180" in whats(call)
            assert "ACK" in whats(incoming)

    run(scenario())


def test_reject_gives_the_caller_the_status() -> None:
    async def scenario() -> None:
        async with LabVendor(reject=486) as vendor, LabPhone("1001", "x", vendor.address) as phone:
            call = await phone.call("1002")
            with pytest.raises(CallError) as refused:
                await call.wait_answered(10)
            assert refused.value.status == 486 and call.state == "failed"
            # the INVITE client transaction ACKed the 486 itself (RFC 3261 §17.1.1.3): the
            # vendor's server transaction is Confirmed
            await asyncio.sleep(0.2)
            assert vendor.transactions is not None
            [server] = vendor.transactions.servers.values()
            assert server.state.value == "Confirmed"

    run(scenario())


def test_cancel_before_answer_ends_with_487() -> None:
    async def scenario() -> None:
        async with LabVendor(answer_after=30) as vendor, \
                LabPhone("1001", "x", vendor.address) as phone:
            call = await phone.call("1002")
            while call.state != "ringing":
                await asyncio.sleep(0.01)
            await call.cancel()
            assert call.state == "failed" and call.status == 487
            assert vendor.calls[0].state == "failed" and vendor.calls[0].status == 487
            with pytest.raises(CallError, match="cannot be cancelled|only an unanswered"):
                await call.cancel()

    run(scenario())


def test_echo_vendor_hold_resume_dtmf_three_ways_and_hangup() -> None:
    async def scenario() -> None:
        async with LabVendor(codecs=["G722", "PCMA"]) as vendor, \
                LabPhone("1001", "x", vendor.address, codecs=["PCMA", "G722"]) as phone:
            call = await phone.call("1002")
            await call.wait_answered(10)
            assert call.codec == "PCMA"  # the offerer's order decides (RFC 3264 §6.1)
            far = vendor.calls[0]
            await call.play(SPEECH)
            await asyncio.sleep(0.4)
            # what the vendor heard, and what it sent back as heard by the phone (the echo's
            # own timing under load is its business: see ECHO_CUSHION)
            assert quality.compare(SPEECH, far.recording(), 8000).pesq_mos_lqo > 4.0
            assert quality.compare(far.sent_audio(), call.recording(), 8000).pesq_mos_lqo > 4.0
            echo = quality.compare(SPEECH, far.sent_audio(), 8000)
            assert echo.pesq_mos_lqo > 2.5 and echo.delay_ms > 0  # the speech came back
            await call.send_dtmf("12", method="rfc2833")
            await call.send_dtmf("3", method="info")
            await call.send_dtmf("4", method="inband")
            await asyncio.sleep(0.4)
            assert far.received_digits("rfc2833") == "12"
            assert far.received_digits("info") == "3"
            assert far.received_digits("inband") == "4"
            assert "4" in call.received_digits("inband")  # the echo brought the tone back
            await call.hold()
            assert call.held and far.remote_held
            await call.resume()
            assert not call.held and not far.remote_held
            await call.hangup()
            assert call.state == "ended"
            await far.wait_ended(5)
            assert whats(far)[-1] == "ended"
            stats = call.rtp_stats()
            assert stats["received"] > 100 and stats["lost"] == 0

    run(scenario())


def test_a_reliable_183_is_pracked_before_the_answer() -> None:
    async def scenario() -> None:
        async with LabVendor(reliable_183=True, codecs=["G729"]) as vendor, \
                LabPhone("1001", "x", vendor.address) as phone:
            call = await phone.call("1002")
            await call.wait_answered(10)
            far = vendor.calls[0]
            assert whats(call)[-3:] == ["media", "PRACK", "200"] or \
                whats(call).index("PRACK") < whats(call).index("200")
            assert whats(far).index("PRACK") < whats(far).index("200")
            assert call.codec == "G729"
            await call.hangup()

    run(scenario())


def test_no_common_codec_is_488() -> None:
    async def scenario() -> None:
        async with LabVendor(codecs=["G723"]) as vendor, \
                LabPhone("1001", "x", vendor.address, codecs=["PCMA"]) as phone:
            call = await phone.call("1002")
            with pytest.raises(CallError) as refused:
                await call.wait_answered(10)
            assert refused.value.status == 488
            [response] = [r for r in phone.responses if r.status == 488]
            assert response.headers.get("Warning").startswith('305 127.0.0.1 "no common codec')

    run(scenario())


def test_impairing_the_phone_side_loses_packets_at_the_far_end() -> None:
    async def scenario() -> None:
        async with LabVendor(mode="silence") as vendor, \
                LabPhone("1001", "x", vendor.address) as phone:
            call = await phone.call("1002")
            await call.wait_answered(10)
            impairment = call.impair(loss=0.3, seed=2)
            assert impairment.loss == 0.3
            await call.play(np.zeros(8000 * 2, dtype=np.int16))
            await call.hangup()  # no more packets: every drop but a trailing run is a gap
            await asyncio.sleep(0.2)
            lost = vendor.calls[0].rtp_stats()["lost"]
            dropped = call.media.sender.impairer.dropped  # type: ignore[union-attr]
            assert 10 < lost <= dropped and lost >= dropped - 8

    run(scenario())


def test_call_api_misuse_is_a_clear_error() -> None:
    async def scenario() -> None:
        async with LabVendor() as vendor, LabPhone("1001", "x", vendor.address) as phone:
            call = await phone.call("1002")
            await call.wait_answered(10)
            with pytest.raises(CallError, match="ringing incoming"):
                await call.answer()
            with pytest.raises(CallError, match="DTMF method"):
                await call.send_dtmf("1", method="smoke")
            await call.hangup()
            with pytest.raises(CallError, match="no established dialog|terminated"):
                await call.hold()

    run(scenario())


def test_carrier_calls_a_phone_that_answers_from_on_incoming() -> None:
    async def scenario() -> None:
        async with LabPhone("1002", "x", ("127.0.0.1", 9), codecs=["G723"]) as phone:
            seen: list[Any] = []

            async def pick_up(incoming: Any) -> None:
                seen.append(incoming)
                await incoming.answer(echo=True)

            phone.on_incoming = pick_up
            async with LabCarrier(phone.address, caller="0044123") as carrier:
                call = await carrier.call("1002")
                await call.wait_answered(10)
                assert seen[0].caller == "0044123" and call.codec == "G723"
                assert call.media is not None and call.media.sender.ptime_ms == 30
                await call.play(SPEECH)
                await asyncio.sleep(0.4)
                report = quality.compare(SPEECH, seen[0].recording(), 8000)
                assert report.pesq_mos_lqo > 3.0  # G.723.1 6.3 kbit/s, once
                await call.hangup()
                await seen[0].wait_ended(5)

    run(scenario())


class RawPeer(asyncio.DatagramProtocol):
    """A UDP socket that hands SIP messages to the test (to send broken ones back)."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[Any, Any]] = asyncio.Queue()
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.queue.put_nowait((parse(data), addr))

    async def next(self, method: str) -> tuple[Any, Any]:
        while True:
            message, addr = await asyncio.wait_for(self.queue.get(), 10)
            if getattr(message, "method", None) == method:
                return message, addr


def test_broken_peers_get_clear_failures_not_hung_calls() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        transport, peer = await loop.create_datagram_endpoint(
            RawPeer, local_addr=("127.0.0.1", 0))
        address = transport.get_extra_info("sockname")
        try:
            async with LabPhone("1001", "x", address) as phone:
                # a 200 OK without Contact: no dialog can exist, the call fails
                call = await phone.call("1002")
                invite, source = await peer.next("INVITE")
                transport.sendto(bytes(make_response(invite, 200, to_tag=new_tag())), source)
                with pytest.raises(CallError, match="unusable 2xx"):
                    await call.wait_answered(10)
                # an INVITE without Contact is refused with 400
                request = Request.build(
                    "INVITE", f"sip:1001@{phone.address[0]}:{phone.address[1]}",
                    via=Via("UDP", address[0], address[1], {"branch": new_branch()}),
                    from_=NameAddr(SipUri(host="127.0.0.1", user="x"), params={"tag": "t"}),
                    to=NameAddr(SipUri(host="127.0.0.1", user="1001")), cseq=1)
                transport.sendto(bytes(request), phone.address)
                while True:
                    reply, _ = await asyncio.wait_for(peer.queue.get(), 10)
                    if isinstance(reply, Response) and reply.cseq.method == "INVITE" \
                            and reply.call_id == request.call_id:
                        break
                assert reply.status == 400 and phone.calls == [call]
        finally:
            transport.close()

    run(scenario())


def test_hold_and_resume_offers_carry_a_new_sdp_version() -> None:
    """RFC 3264 §8: a changed offer increments o=<sess-version>, or the peer may ignore it."""
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        transport, peer = await loop.create_datagram_endpoint(
            RawPeer, local_addr=("127.0.0.1", 0))
        address = transport.get_extra_info("sockname")
        contact = ("Contact", f"<sip:peer@{address[0]}:{address[1]}>")

        def answered(offer: Request, to_tag: str) -> bytes:
            response = make_response(offer, 200, to_tag=to_tag)
            response.headers.add(*contact)
            response.headers.add("Content-Type", "application/sdp")
            response.body = bytes(sdp.answer(offer.body, [sdp_codec("PCMA")],
                                             address=address[0], port=9).sdp)
            return bytes(response)

        try:
            async with LabPhone("1001", "x", address, codecs=["PCMA"]) as phone:
                call = await phone.call("1002")
                invite, source = await peer.next("INVITE")
                to_tag = new_tag()
                transport.sendto(answered(invite, to_tag), source)
                await call.wait_answered(10)
                versions = [sdp.SessionDescription.parse(invite.body).origin.session_version]
                for change in (call.hold, call.resume):
                    pending = asyncio.ensure_future(change())
                    reinvite, source = await peer.next("INVITE")
                    versions.append(
                        sdp.SessionDescription.parse(reinvite.body).origin.session_version)
                    transport.sendto(answered(reinvite, to_tag), source)
                    await pending
                assert versions[0] < versions[1] < versions[2]
                hangup = asyncio.ensure_future(call.hangup())
                bye, source = await peer.next("BYE")
                transport.sendto(bytes(make_response(bye, 200)), source)
                await hangup
        finally:
            transport.close()

    run(scenario())
