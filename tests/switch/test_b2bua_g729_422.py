"""B2BUA on the virtual network: docs/behaviour.md §5 G.729 negotiation modes per gateway, and the
RFC 4028 §6 retry after 422 Session Interval Too Small."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.switch.b2bua_harness import (
    VENDOR_A,
    VENDOR_B,
    VENDOR_C,
    Caller,
    FakeMedia,
    Vendor,
    make_config,
    start_switch,
    vendor_c_routing,
)
from vosapp.io.virtual import VirtualNetwork
from vosapp.sip.sdp import G729, PCMA, Codec, SessionDescription, answer, build_offer

PLAIN = G729  # 18 G729/8000, no fmtp (= annexb=yes, RFC 4856)
NO_B = replace(G729, fmtp="annexb=no")
YES_B = replace(G729, fmtp="annexb=yes")
NAMED_A = Codec("G729a", 8000, 1, 97, "annexb=no")


def g729_lines(body: bytes) -> list[str]:
    """The G.729 entries of an SDP's audio line: "<pt> <rtpmap>[ <fmtp>]" in m= order."""
    audio = SessionDescription.parse(body).first_audio()
    return [f"{c.payload_type} {c.rtpmap_value}" + (f" {c.fmtp}" if c.fmtp else "")
            for c in audio.codecs() if c.family == "g729"]


def relay_config(mode: str):  # type: ignore[no-untyped-def]
    return make_config(mapping=f'media_proxy = "On"\ng729_mode = "{mode}"', routing=vendor_c_routing(f'media_proxy = "On"\ng729_mode = "{mode}"'))


# (caller offers, vendor leg offer, caller leg answer) per mode
G729_TABLE = [
    ("Auto", PLAIN, ["18 G729/8000"], ["18 G729/8000"]),
    ("Auto", NO_B, ["18 G729/8000 annexb=no"], ["18 G729/8000 annexb=no"]),
    ("Auto", YES_B, ["18 G729/8000 annexb=yes"], ["18 G729/8000 annexb=yes"]),
    ("Auto", NAMED_A, ["97 G729a/8000 annexb=no"], ["97 G729a/8000 annexb=no"]),
    ("G729", PLAIN, ["18 G729/8000 annexb=no"], ["18 G729/8000 annexb=no"]),
    ("G729", NO_B, ["18 G729/8000 annexb=no"], ["18 G729/8000 annexb=no"]),
    ("G729", YES_B, ["18 G729/8000 annexb=no"], ["18 G729/8000 annexb=no"]),
    ("G729", NAMED_A, ["18 G729/8000 annexb=no"], ["97 G729a/8000 annexb=no"]),
    ("G729a", PLAIN, ["18 G729/8000 annexb=yes"], ["18 G729/8000"]),
    ("G729a", NO_B, ["18 G729/8000 annexb=no"], ["18 G729/8000 annexb=no"]),
    ("G729a", YES_B, ["18 G729/8000 annexb=yes"], ["18 G729/8000 annexb=yes"]),
    ("G729a", NAMED_A, ["18 G729/8000 annexb=no"], ["97 G729a/8000 annexb=no"]),
    ("G729&G729a", PLAIN, ["18 G729/8000 annexb=yes", "96 G729a/8000 annexb=yes"],
     ["18 G729/8000"]),
    ("G729&G729a", NO_B, ["18 G729/8000 annexb=no", "96 G729a/8000 annexb=no"],
     ["18 G729/8000 annexb=no"]),
    ("G729&G729a", YES_B, ["18 G729/8000 annexb=yes", "96 G729a/8000 annexb=yes"],
     ["18 G729/8000 annexb=yes"]),
    ("G729&G729a", NAMED_A, ["18 G729/8000 annexb=no", "96 G729a/8000 annexb=no"],
     ["97 G729a/8000 annexb=no"]),
]


@pytest.mark.parametrize(("mode", "offered", "vendor_offer", "caller_answer"), G729_TABLE)
def test_g729_modes_on_both_legs(net: VirtualNetwork, mode: str, offered: Codec,
                                 vendor_offer: list[str], caller_answer: list[str]) -> None:
    switch = start_switch(net, relay_config(mode))
    switch.app.b2bua.media = FakeMedia()
    vendor = Vendor(net, VENDOR_C)
    caller = Caller(net)
    caller.call("123", codecs=(offered,))
    net.run(1.0)
    assert caller.statuses() == [100, 180, 200]
    [invite] = vendor.invites
    assert g729_lines(invite.body) == vendor_offer
    assert g729_lines(caller.final().body) == caller_answer
    caller.bye()
    net.run(1.0)
    record = switch.app.b2bua.cdr.recent[-1]
    assert (record.caller_codec, record.callee_codec, record.media_mode) == ("G729", "G729",
                                                                             "relay")


def passthrough_config(mode: str):  # type: ignore[no-untyped-def]
    return make_config(routing=vendor_c_routing(f'media_proxy = "Off"\ng729_mode = "{mode}"'))


def test_g729_mode_without_the_relay_sets_annexb_no_on_the_callers_entries(
        net: VirtualNetwork) -> None:
    start_switch(net, passthrough_config("G729"))
    vendor = Vendor(net, VENDOR_C)
    caller = Caller(net)
    caller.call("123", codecs=(PCMA, YES_B, NAMED_A))
    net.run(1.0)
    assert caller.statuses() == [100, 180, 200]
    sdp = SessionDescription.parse(vendor.invites[0].body)
    assert sdp.first_audio().formats == ["8", "18", "97", "101"]  # the caller's payload types
    assert g729_lines(vendor.invites[0].body) == ["18 G729/8000 annexb=no",
                                                  "97 G729a/8000 annexb=no"]
    assert sdp.connection.address == "10.0.0.2"  # still end to end


@pytest.mark.parametrize("mode", ["Auto", "G729a", "G729&G729a"])
def test_other_g729_modes_forward_the_callers_offer_untouched(net: VirtualNetwork,
                                                              mode: str) -> None:
    start_switch(net, passthrough_config(mode))
    vendor = Vendor(net, VENDOR_C)
    caller = Caller(net)
    invite = caller.call("123", codecs=(PCMA, PLAIN))
    net.run(1.0)
    assert caller.statuses() == [100, 180, 200]
    assert vendor.invites[0].body == invite.body


def test_answer_g729_mode_prefers_the_named_variant() -> None:
    offer = build_offer("10.0.0.5", 4000, [PLAIN, NAMED_A])
    assert answer(offer, [G729], address="10.0.0.1", port=5000,
                  g729_mode="G729a").codec.payload_type == 97
    assert answer(offer, [G729], address="10.0.0.1", port=5000,
                  g729_mode="Auto").codec.payload_type == 18
    chosen = answer(offer, [G729], address="10.0.0.1", port=5000, g729_mode="G729").codec
    assert (chosen.payload_type, chosen.fmtp) == (18, "annexb=no")


# ---------------------------------------------------------------------------- RFC 4028 §6


class TooSmallVendor(Vendor):
    """Answers 422 with ``Min-SE`` to the first ``rejections`` INVITEs, then runs the script."""

    def __init__(self, net: VirtualNetwork, address, min_se: str = "1800",  # type: ignore[no-untyped-def]
                 rejections: int = 1) -> None:
        super().__init__(net, address, script=[(0.0, 100), (0.05, 200)])
        self.min_se = min_se
        self.rejections = rejections

    def _respond(self, request, status, with_sdp, source) -> None:  # type: ignore[no-untyped-def]
        if self.invites.index(request) < self.rejections:
            if status == 100:
                response = self._response(request, 422, False)
                response.headers.add("Min-SE", self.min_se)
                self.endpoint.send(response, source)
            return
        super()._respond(request, status, with_sdp, source)


def test_422_retries_the_same_gateway_with_session_expires_raised(net: VirtualNetwork) -> None:
    switch = start_switch(net, make_config("SS_SIP_SESSION_TTL = 300"))
    vendor = TooSmallVendor(net, VENDOR_A)
    other = Vendor(net, VENDOR_B)
    caller = Caller(net)
    caller.call()
    net.run(1.0)
    assert caller.statuses() == [100, 200]
    first, second = vendor.invites
    assert first.headers.get("Session-Expires") == "300"
    assert second.headers.get("Session-Expires") == "1800"
    assert second.headers.get("Min-SE") == "1800"
    assert second.call_id == first.call_id and second.from_.tag == first.from_.tag
    assert (first.cseq.number, second.cseq.number) == (1, 2)
    assert first.top_via.params["branch"] != second.top_via.params["branch"]
    assert second.body == first.body
    assert vendor.methods()[:3] == ["INVITE", "ACK", "INVITE"]  # the 422 ACKed first
    assert other.invites == []
    caller.bye()
    net.run(1.0)
    record = switch.app.b2bua.cdr.recent[-1]
    assert record.gateways_tried == ["vendor-a:422", "vendor-a:200"]
    assert "BYE" in vendor.methods()


def test_second_422_is_not_retried_again_nor_failed_over(net: VirtualNetwork) -> None:
    start_switch(net, make_config("SS_SIP_SESSION_TTL = 300"))
    vendor = TooSmallVendor(net, VENDOR_A, rejections=5)
    other = Vendor(net, VENDOR_B)
    caller = Caller(net)
    caller.call()
    net.run(1.0)
    assert caller.statuses() == [100, 422]
    assert len(vendor.invites) == 2
    assert other.invites == []


def test_422_without_a_larger_min_se_is_relayed(net: VirtualNetwork) -> None:
    start_switch(net, make_config("SS_SIP_SESSION_TTL = 1800"))
    vendor = TooSmallVendor(net, VENDOR_A, min_se="90")
    caller = Caller(net)
    caller.call()
    net.run(1.0)
    assert caller.statuses() == [100, 422]
    assert len(vendor.invites) == 1
