"""Offers inside a call (hold/resume through the media relay, RFC 3264 §8; glare, RFC 3261
§14) and the vendor answer check / codec-conversion re-offer (docs/behaviour.md §5), on virtual time."""

from __future__ import annotations

from tests.switch.b2bua_harness import (
    CALLER,
    SWITCH,
    VENDOR_C,
    Caller,
    FakeMedia,
    Vendor,
    make_config,
    start_switch,
    vendor_c_routing,
)
from vosapp.io.virtual import VirtualNetwork
from vosapp.sip import Request
from vosapp.sip.sdp import G729, PCMU, Connection, SessionDescription, build_offer


def sdp(body: bytes) -> SessionDescription:
    return SessionDescription.parse(body)


def direction(body: bytes) -> str:
    parsed = sdp(body)
    audio = parsed.first_audio()
    assert audio is not None
    return parsed.direction_of(audio)


def reinvite_bodies(requests: list[Request]) -> list[bytes]:
    return [r.body for r in requests if r.method == "INVITE" and r.to.tag]


def ok_bodies(caller: Caller) -> list[bytes]:
    return [r.body for r in caller.responses
            if r.cseq.method == "INVITE" and r.status == 200 and r.cseq.number > 1]


def hold_offer(caller: Caller, version: int, mode: str) -> bytes:
    """The caller's own SDP, version ``version``: ``sendonly``/``sendrecv``, or ``zero``
    for the RFC 2543 hold form (c=0.0.0.0)."""
    assert caller.invite is not None
    offer = sdp(caller.invite.body)
    offer.origin.session_version = version
    audio = offer.first_audio()
    assert audio is not None
    if mode == "zero":
        offer.connection = Connection("0.0.0.0")
    else:
        audio.set_direction(mode)
    return bytes(offer)


def relayed_call(net: VirtualNetwork, **vendor_options):  # type: ignore[no-untyped-def]
    switch = start_switch(net, make_config(routing=vendor_c_routing('media_proxy = "On"')))
    media = FakeMedia()
    switch.app.b2bua.media = media
    vendor = Vendor(net, VENDOR_C, **vendor_options)
    caller = Caller(net)
    caller.call("123", codecs=(PCMU,))
    net.run(1.0)
    assert caller.final().status == 200
    return switch, media, vendor, caller


# ---------------------------------------------------------------- hold through the relay


def test_hold_and_resume_reach_the_vendor_through_the_relay(net: VirtualNetwork) -> None:
    _switch, media, vendor, caller = relayed_call(net)
    first_offer = sdp(vendor.invites[0].body)
    first_answer = sdp(caller.final().body)
    caller.endpoint.send(caller._in_dialog("INVITE", body=hold_offer(caller, 2, "sendonly")),
                         SWITCH)
    net.run(1.0)
    [hold] = reinvite_bodies(vendor.requests)
    offer = sdp(hold)
    # the relay's address and the vendor leg's own o=, one version up (RFC 3264 §8)
    assert (offer.connection.address, offer.first_audio().port) == ("10.0.0.1", 20002)
    assert offer.origin.session_id == first_offer.origin.session_id
    assert offer.origin.session_version == first_offer.origin.session_version + 1
    assert direction(hold) == "sendonly"
    [held] = ok_bodies(caller)
    answer = sdp(held)
    assert answer.origin.session_id == first_answer.origin.session_id
    assert answer.origin.session_version == first_answer.origin.session_version + 1
    assert direction(held) == "recvonly"
    assert (answer.connection.address, answer.first_audio().port) == ("10.0.0.1", 20000)
    session = media.sessions[0]
    assert session.directions == {"a": "sendonly", "b": "recvonly"}
    assert vendor.methods().count("ACK") == 2  # the switch ACKed the vendor's 200
    # resume
    caller.endpoint.send(caller._in_dialog("INVITE", body=hold_offer(caller, 3, "sendrecv")),
                         SWITCH)
    net.run(1.0)
    resume = reinvite_bodies(vendor.requests)[-1]
    assert direction(resume) == "sendrecv"
    assert sdp(resume).origin.session_version == first_offer.origin.session_version + 2
    assert sdp(ok_bodies(caller)[-1]).origin.session_version == (
        first_answer.origin.session_version + 2)
    assert session.directions == {"a": "sendrecv", "b": "sendrecv"}


def test_old_hold_form_zero_address_is_carried_as_sendonly(net: VirtualNetwork) -> None:
    _switch, media, vendor, caller = relayed_call(net)
    caller.endpoint.send(caller._in_dialog("INVITE", body=hold_offer(caller, 2, "zero")),
                         SWITCH)
    net.run(1.0)
    [hold] = reinvite_bodies(vendor.requests)
    assert direction(hold) == "sendonly" and sdp(hold).connection.address == "10.0.0.1"
    assert media.sessions[0].directions["a"] == "sendonly"


def test_hold_from_the_vendor_reaches_the_caller(net: VirtualNetwork) -> None:
    _switch, media, vendor, caller = relayed_call(net)
    first_answer = sdp(caller.final().body)
    held = build_offer(VENDOR_C[0], 30000, [PCMU], direction="inactive", session_version=2)
    vendor.endpoint.send(vendor.request("INVITE", 1, bytes(held)), SWITCH)
    net.run(1.0)
    [to_caller] = reinvite_bodies(caller.requests)
    offer = sdp(to_caller)
    assert direction(to_caller) == "inactive"
    assert offer.origin.session_id == first_answer.origin.session_id
    assert offer.origin.session_version == first_answer.origin.session_version + 1
    assert offer.connection.address == "10.0.0.1" and offer.first_audio().port == 20000
    [ok] = [r for r in vendor.responses if r.cseq.method == "INVITE"]
    assert ok.status == 200 and direction(ok.body) == "inactive"
    assert sdp(ok.body).first_audio().port == 20002  # the relay's vendor side
    session = media.sessions[0]
    assert session.directions == {"a": "inactive", "b": "inactive"}
    assert session.relatched[-2:] == [("a", (CALLER[0], 40000)), ("b", (VENDOR_C[0], 30000))]


def test_a_repeated_offer_is_a_refresh_answered_with_the_same_version(
        net: VirtualNetwork) -> None:
    _switch, _media, vendor, caller = relayed_call(net)
    answer = caller.final().body
    caller.endpoint.send(caller._in_dialog("INVITE", body=caller.invite.body), SWITCH)
    net.run(1.0)
    assert reinvite_bodies(vendor.requests) == []  # the vendor leg is not disturbed
    assert ok_bodies(caller) == [answer]


def test_update_carries_the_hold_through_the_relay(net: VirtualNetwork) -> None:
    _switch, media, vendor, caller = relayed_call(net)
    caller.endpoint.send(caller._in_dialog("UPDATE", body=hold_offer(caller, 2, "sendonly")),
                         SWITCH)
    net.run(1.0)
    [update] = [r for r in vendor.requests if r.method == "UPDATE"]
    assert direction(update.body) == "sendonly"
    [ok] = [r for r in caller.responses if r.cseq.method == "UPDATE"]
    assert ok.status == 200 and direction(ok.body) == "recvonly"
    assert media.sessions[0].directions == {"a": "sendonly", "b": "recvonly"}


def test_session_refresh_after_hold_resends_the_held_sdp(net: VirtualNetwork) -> None:
    switch = start_switch(net, make_config(routing=vendor_c_routing('media_proxy = "On"')))
    switch.app.b2bua.media = FakeMedia()
    vendor = Vendor(net, VENDOR_C, extra_headers=[("Session-Expires", "90;refresher=uac")])
    caller = Caller(net)
    caller.call("123", codecs=(PCMU,))
    net.run(1.0)
    caller.endpoint.send(caller._in_dialog("INVITE", body=hold_offer(caller, 2, "sendonly")),
                         SWITCH)
    net.run(1.0)
    [hold] = reinvite_bodies(vendor.requests)
    net.run(45.0)  # the switch refreshes the vendor leg (90 s / 2)
    refresh = reinvite_bodies(vendor.requests)[-1]
    assert len(reinvite_bodies(vendor.requests)) == 2
    assert refresh == hold  # same SDP, same o= version (RFC 3264 §8)
    assert "BYE" not in vendor.methods()


def test_late_offer_re_invite_without_the_relay_acks_with_the_callers_answer(
        net: VirtualNetwork) -> None:
    start_switch(net, make_config(routing=vendor_c_routing()))
    vendor = Vendor(net, VENDOR_C)
    caller = Caller(net)
    caller.call("123", codecs=(PCMU,))
    net.run(1.0)
    caller.endpoint.on_receive = lambda packet: caller.responses.append(packet.parse())
    caller.endpoint.send(caller._in_dialog("INVITE"), SWITCH)  # no SDP: offer in the 200
    net.run(0.2)
    [ok] = [r for r in caller.responses if r.cseq.method == "INVITE" and r.cseq.number > 1]
    assert ok.body and vendor.methods().count("ACK") == 1  # the vendor's ACK waits
    answer = caller.invite.body
    caller.endpoint.send(caller._in_dialog("ACK", cseq=ok.cseq.number, body=answer), SWITCH)
    net.run(1.0)
    acks = [r for r in vendor.requests if r.method == "ACK"]
    assert len(acks) == 2 and acks[-1].body == answer


# ---------------------------------------------------------------- glare (RFC 3261 §14)


def test_re_invite_crossing_a_session_refresh_gets_491(net: VirtualNetwork) -> None:
    start_switch(net, make_config(routing=vendor_c_routing()))
    vendor = Vendor(net, VENDOR_C, extra_headers=[("Session-Expires", "90;refresher=uac")],
                    hold_reinvites=True)
    caller = Caller(net)
    caller.call("123")
    net.run(46.0)
    assert len(vendor.held) == 1  # the switch's refresh waits for the vendor
    vendor.endpoint.send(vendor.request("INVITE", 1, vendor.invites[0].body), SWITCH)
    net.run(1.0)
    assert {r.status for r in vendor.responses if r.cseq.method == "INVITE"} == {491}
    vendor.answer_held()
    net.run(1.0)
    assert "BYE" not in vendor.methods()


def test_glare_on_the_vendor_leg_gets_491(net: VirtualNetwork) -> None:
    _switch, _media, vendor, caller = relayed_call(net, hold_reinvites=True)
    caller.endpoint.send(caller._in_dialog("INVITE", body=hold_offer(caller, 2, "sendonly")),
                         SWITCH)
    net.run(1.0)
    assert len(vendor.held) == 1  # our relayed re-INVITE waits for the vendor
    vendor.endpoint.send(vendor.request("INVITE", 1, bytes(
        build_offer(VENDOR_C[0], 30000, [PCMU], session_version=2))), SWITCH)
    net.run(1.0)
    assert {r.status for r in vendor.responses if r.cseq.method == "INVITE"} == {491}
    # a second offer from the caller while its first is open: 500 + Retry-After (§14.2)
    caller.endpoint.send(caller._in_dialog("INVITE", body=hold_offer(caller, 3, "sendrecv")),
                         SWITCH)
    net.run(1.0)
    crossed = [r for r in caller.responses if r.cseq.method == "INVITE" and r.status == 500]
    assert len({r.cseq.number for r in crossed}) == 1  # (and its retransmissions)
    assert 0 <= int(crossed[0].headers.get("Retry-After")) <= 10
    vendor.answer_held()
    net.run(1.0)
    assert direction(ok_bodies(caller)[-1]) == "recvonly"


def test_a_491_from_the_vendor_is_passed_back(net: VirtualNetwork) -> None:
    _switch, _media, vendor, caller = relayed_call(net, hold_reinvites=True)
    caller.endpoint.send(caller._in_dialog("INVITE", body=hold_offer(caller, 2, "sendonly")),
                         SWITCH)
    net.run(1.0)
    vendor.answer_held(491)
    net.run(1.0)
    assert caller.statuses()[-1] == 491
    # the legs are free again: the caller's retry goes through
    caller.endpoint.send(caller._in_dialog("INVITE", body=hold_offer(caller, 2, "sendonly")),
                         SWITCH)
    net.run(1.0)
    assert len(vendor.held) == 1


def test_re_invite_200_is_resent_until_the_ack(net: VirtualNetwork) -> None:
    _switch, _media, vendor, caller = relayed_call(net)
    caller.endpoint.on_receive = lambda packet: caller.responses.append(packet.parse())
    caller.endpoint.send(caller._in_dialog("INVITE", body=hold_offer(caller, 2, "sendonly")),
                         SWITCH)
    net.run(5.0)
    assert len(ok_bodies(caller)) >= 3  # 0, 0.5, 1.5, 3.5 s: no ACK comes
    net.run(40.0)
    assert "BYE" in vendor.methods()


# ---------------------------------------------------------------- answer check, conversion


def test_vendor_answer_outside_the_offer_ends_the_call(net: VirtualNetwork) -> None:
    switch = start_switch(net, make_config(routing=vendor_c_routing()))
    bogus = bytes(build_offer(VENDOR_C[0], 30000, [G729]))
    vendor = Vendor(net, VENDOR_C, answer_sdp=bogus)
    caller = Caller(net)
    caller.call("123", codecs=(PCMU,))
    net.run(2.0)
    final = caller.final()
    assert final.status == 488
    warning = final.headers.get("Warning")
    assert warning.startswith("399 ") and "G729" in warning and "PCMU" in warning
    assert vendor.methods()[-2:] == ["ACK", "BYE"]
    record = switch.app.b2bua.cdr.recent[-1]
    assert record.status == 488 and "answered G729" in record.end_reason


def test_vendor_refusing_the_offer_gets_its_own_codec_and_the_relay_transcodes(
        net: VirtualNetwork) -> None:
    conversion = "allow_codec_conversion = true\n"
    switch = start_switch(net, make_config(
        mapping=conversion,
        routing=vendor_c_routing(conversion + 'specified_codec = "G729"')))
    media = FakeMedia()
    switch.app.b2bua.media = media
    vendor = Vendor(net, VENDOR_C, accept=(G729,))
    caller = Caller(net)
    caller.call("123", codecs=(PCMU,))
    net.run(2.0)
    first, second = vendor.invites
    assert sdp(first.body).first_audio().codecs()[0].encoding == "PCMU"
    offered = sdp(second.body)
    assert offered.first_audio().codecs()[0].encoding == "G729"
    assert offered.connection.address == "10.0.0.1"
    assert second.call_id == first.call_id and second.cseq.number == first.cseq.number + 1
    final = caller.final()
    assert final.status == 200
    assert sdp(final.body).first_audio().codecs()[0].encoding == "PCMU"
    a, b, _dtmf = media.sessions[0].started
    assert (a.codec, b.codec) == ("PCMU", "G729") and a.remote == (CALLER[0], 40000)
    caller.bye()
    net.run(1.0)
    record = switch.app.b2bua.cdr.recent[-1]
    assert (record.caller_codec, record.callee_codec) == ("PCMU", "G729")
    assert record.gateways_tried == ["vendor-c:488", "vendor-c:200"]


def test_without_conversion_the_vendor_488_goes_back(net: VirtualNetwork) -> None:
    start_switch(net, make_config(routing=vendor_c_routing('specified_codec = "G729"')))
    vendor = Vendor(net, VENDOR_C, accept=(G729,))
    caller = Caller(net)
    caller.call("123", codecs=(PCMU,))
    net.run(2.0)
    assert len(vendor.invites) == 1 and caller.final().status == 488
