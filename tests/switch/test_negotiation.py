"""The pure negotiation functions for offers inside a call (RFC 3264 §6, §8) and the vendor
answer check / codec-conversion plan (docs/behaviour.md §5)."""

from __future__ import annotations

import pytest

from vosapp.params import GatewaySettings
from vosapp.sip.sdp import G729, PCMA, PCMU, Connection, NoCommonCodec, build_offer
from vosapp.switch.call.negotiation import (
    AnswerRefused,
    answer_direction,
    checked_answer,
    conversion_plan,
    next_leg_sdp,
    offered_direction,
    plan_media,
    relay_reanswer,
    relay_reoffer,
    unchanged_offer,
)

RELAY_A = ("10.0.0.1", 20000)
RELAY_B = ("10.0.0.1", 20002)


def offer(codecs=(PCMU,), direction="sendrecv", version=1, address="10.0.0.2"):  # type: ignore[no-untyped-def]
    return build_offer(address, 40000, list(codecs), direction=direction,
                       session_id="777", session_version=version)


@pytest.mark.parametrize("direction, zero, expected", [
    ("sendrecv", False, "sendrecv"), ("sendonly", False, "sendonly"),
    ("recvonly", False, "recvonly"), ("inactive", False, "inactive"),
    ("sendrecv", True, "sendonly"), ("recvonly", True, "inactive"),
    ("sendonly", True, "sendonly"),
])
def test_offered_direction_reads_the_old_hold_form(direction: str, zero: bool,
                                                   expected: str) -> None:
    sdp = offer(direction=direction)
    if zero:
        sdp.connection = Connection("0.0.0.0")
    assert offered_direction(sdp) == expected


@pytest.mark.parametrize("offered, answered, expected", [
    ("sendrecv", "sendrecv", "sendrecv"), ("sendonly", "recvonly", "recvonly"),
    ("sendonly", "sendrecv", "recvonly"), ("recvonly", "sendrecv", "sendonly"),
    ("inactive", "sendrecv", "inactive"), ("sendrecv", "inactive", "inactive"),
    ("sendonly", "sendonly", "inactive"),
])
def test_answer_direction_stays_within_the_offer(offered: str, answered: str,
                                                 expected: str) -> None:
    assert answer_direction(offered, answered) == expected


def test_next_leg_sdp_keeps_the_origin_and_counts_changes() -> None:
    last = bytes(build_offer("10.0.0.1", 20002, [PCMU], session_id="42", session_version=7))
    other = offer(direction="sendonly", version=99)  # another o= entirely
    changed = next_leg_sdp(other, last)
    assert (changed.origin.session_id, changed.origin.session_version) == ("42", 8)
    same = build_offer("10.0.0.1", 20002, [PCMU], session_id="x", session_version=1)
    unchanged = next_leg_sdp(same, last)
    assert (unchanged.origin.session_id, unchanged.origin.session_version) == ("42", 7)
    assert bytes(unchanged) == last


def test_relay_reoffer_carries_the_direction_on_the_relay_address() -> None:
    vendor_leg = bytes(build_offer(*RELAY_B, [PCMU, PCMA], session_id="9", session_version=1))
    hold = relay_reoffer(offer(direction="sendonly", version=2), vendor_leg, PCMU)
    audio = hold.first_audio()
    assert hold.connection.address == "10.0.0.1" and audio.port == 20002
    assert hold.direction_of(audio) == "sendonly"
    assert [c.encoding for c in audio.codecs()] == ["PCMU", "telephone-event"]
    assert (hold.origin.session_id, hold.origin.session_version) == ("9", 2)


def test_relay_reanswer_answers_with_the_running_codec_and_the_far_direction() -> None:
    caller_leg = bytes(build_offer(*RELAY_A, [PCMU], session_id="5", session_version=3))
    hold = offer(codecs=(PCMU, PCMA), direction="sendonly", version=2)
    result = relay_reanswer(hold, PCMU, RELAY_A, caller_leg, far_direction="recvonly",
                            telephone_event=False, g729_mode="Auto")
    assert result.direction == "recvonly" and result.codec.encoding == "PCMU"
    assert (result.sdp.origin.session_id, result.sdp.origin.session_version) == ("5", 4)
    assert result.remote_port == 40000
    with pytest.raises(NoCommonCodec):  # the re-offer dropped the running codec
        relay_reanswer(offer(codecs=(PCMA,)), PCMU, RELAY_A, caller_leg,
                       far_direction="sendrecv", telephone_event=False, g729_mode="Auto")


def test_unchanged_offer_is_a_refresh() -> None:
    first = offer()
    assert unchanged_offer(offer(), bytes(first))
    assert not unchanged_offer(offer(version=2, direction="sendonly"), bytes(first))
    assert not unchanged_offer(first, b"")


def test_checked_answer_refuses_a_codec_that_was_not_offered() -> None:
    sent = offer(codecs=(PCMU,))
    good = bytes(build_offer("10.0.0.9", 30000, [PCMU]))
    assert checked_answer(good, sent).codec.encoding == "PCMU"
    with pytest.raises(AnswerRefused, match="answered G729 to an offer of PCMU"):
        checked_answer(bytes(build_offer("10.0.0.9", 30000, [G729])), sent)


def settings(**values: object) -> GatewaySettings:
    return GatewaySettings(**values)  # type: ignore[arg-type]


def test_conversion_plan_offers_the_vendor_its_own_codec() -> None:
    caller = offer(codecs=(PCMU,))
    mapping = settings(allow_codec_conversion=True)
    routing = settings(allow_codec_conversion=True, specified_codec="G729")
    plan = plan_media(caller, "10.0.0.2", mapping, routing)
    assert not plan.relay
    again = conversion_plan(plan, caller, mapping, routing)
    assert again is not None and again.relay and again.transcode
    assert [c.encoding for c in again.b_codecs] == ["G729"]
    assert [c.encoding for c in again.a_codecs] == ["PCMU"]
    assert conversion_plan(again, caller, mapping, routing) is None  # once


@pytest.mark.parametrize("mapping, routing", [
    ({}, {"allow_codec_conversion": True, "specified_codec": "G729"}),
    ({"allow_codec_conversion": True},
     {"allow_codec_conversion": True, "specified_codec": "G729", "media_proxy": "Off"}),
    ({"allow_codec_conversion": True},  # its own codec was offered already and refused
     {"allow_codec_conversion": True, "specified_codec": "PCMU"}),
])
def test_no_conversion_plan(mapping: dict, routing: dict) -> None:  # type: ignore[type-arg]
    caller = offer(codecs=(PCMU,))
    m, r = settings(**mapping), settings(**routing)
    plan = plan_media(caller, "10.0.0.2", m, r)
    assert conversion_plan(plan, caller, m, r) is None
