"""PRACK / 100rel (RFC 3262) and UPDATE in early dialogs (RFC 3311) through the B2BUA, on the
virtual-time network: relayed end to end, terminated on either leg, the §3 retransmission
schedule and its give-up."""

from __future__ import annotations

import pytest

from tests.switch.b2bua_harness import VENDOR_A, FakeMedia, Vendor, make_config, start_switch
from tests.switch.prack_harness import VENDOR_RSEQ, RelCaller, RelVendor
from vosapp.io.virtual import VirtualNetwork
from vosapp.sip import Request
from vosapp.sip.sdp import PCMA, build_offer


def start(extra: str = "") -> VirtualNetwork:
    net = VirtualNetwork(latency=0.001)
    start_switch(net, make_config(extra))
    return net


def sent_to(vendor: Vendor, method: str) -> list[Request]:
    return [r for r in vendor.requests if r.method == method]


def test_both_legs_support_100rel_prack_relayed_end_to_end_with_rack_rewritten() -> None:
    net = start()
    vendor = RelVendor(net, [(0.0, 100), (0.05, 183, True), (0.5, 200)])
    caller = RelCaller(net)
    caller.call(headers=[("Supported", "100rel")])
    net.run(1.0)
    invite = vendor.invites[0]
    assert "100rel" in invite.headers.get("Supported")  # the switch offers 100rel
    [p183] = caller.provisionals()
    assert p183.headers.get("Require") == "100rel"
    rseq = int(p183.headers.get("RSeq"))  # the caller leg's own RSeq space
    assert p183.body and b"m=audio" in p183.body  # early media SDP in the reliable 183
    [prack] = sent_to(vendor, "PRACK")
    assert prack.headers.get("RAck") == f"{VENDOR_RSEQ} {invite.cseq.number} INVITE"
    assert prack.to.tag == vendor.tag and prack.call_id == invite.call_id
    prack_answer = [r for r in caller.responses if r.cseq.method == "PRACK"]
    assert [(r.status, r.reason) for r in prack_answer] == [(200, "PRACK ok")]  # relayed
    assert caller.statuses() == [100, 183, 200]
    # one PRACK from the caller, no resends of the 183 after it
    assert len([r for r in caller.provisionals() if r.headers.get("RSeq") == str(rseq)]) == 1
    caller.bye()
    net.run(1.0)
    [bye] = sent_to(vendor, "BYE")
    assert bye.cseq.number == prack.cseq.number + 1  # the dialog continues the PRACK's CSeq


def test_caller_without_100rel_switch_pracks_the_vendor_and_sends_a_plain_183() -> None:
    net = start()
    # the vendor resends its reliable 183 (same RSeq) before our PRACK could count
    vendor = RelVendor(net, [(0.0, 100), (0.05, 183, True), (0.051, 183, True), (0.6, 200)])
    caller = RelCaller(net)
    caller.call()
    net.run(1.0)
    [prack] = sent_to(vendor, "PRACK")
    assert prack.headers.get("RAck") == f"{VENDOR_RSEQ} 1 INVITE"
    [p183] = caller.provisionals()  # the retransmission is not relayed again
    assert p183.headers.get("Require") is None and p183.headers.get("RSeq") is None
    assert caller.statuses() == [100, 183, 200]


def test_caller_requires_100rel_vendor_without_it_gets_reliable_18x_in_order() -> None:
    net = start()
    vendor = Vendor(net, VENDOR_A, script=[(0.0, 100), (0.05, 180), (0.06, 183, True),
                                           (1.0, 200)])
    caller = RelCaller(net, prack_delay=0.3)
    caller.call(headers=[("Require", "100rel")])
    net.run(2.0)
    provisionals = caller.provisionals()
    assert [r.status for r in provisionals] == [180, 183]
    assert all(r.headers.get("Require") == "100rel" for r in provisionals)
    first, second = (int(r.headers.get("RSeq")) for r in provisionals)
    assert second == first + 1
    # §3: the 183 waited for the PRACK of the 180
    times = {r.status: t for t, r in caller.arrivals if r.cseq.method == "INVITE"}
    assert times[183] > times[180] + 0.3
    assert [r.status for r in caller.responses if r.cseq.method == "PRACK"] == [200, 200]
    assert sent_to(vendor, "PRACK") == []  # terminated on the caller's leg
    assert caller.statuses()[-1] == 200


def test_reliable_18x_resent_at_t1_doubling_then_504_after_64_t1() -> None:
    net = start()
    vendor = Vendor(net, VENDOR_A, script=[(0.0, 100), (0.05, 180)])
    caller = RelCaller(net, prack_delay=None)  # never PRACKs
    caller.call(headers=[("Supported", "100rel"), ("Require", "100rel")])
    net.run(40.0)
    times = [t for t, r in caller.arrivals if r.status == 180]
    first = times[0]
    # T1 = 0.5 s: resent at T1, 3 T1, 7 T1, 15 T1, 31 T1, 63 T1 (doubling, no T2 cap)
    assert [round(t - first, 3) for t in times] == [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    final = caller.final()
    assert final is not None and final.status == 504
    # given up 64 T1 after the first send; the vendor leg is cancelled
    [when] = [t for t, r in caller.arrivals if r.status == 504]
    assert round(when - first, 3) == 32.0
    assert "CANCEL" in vendor.methods()


def test_answer_overtakes_an_unacknowledged_reliable_provisional() -> None:
    net = start()
    Vendor(net, VENDOR_A, script=[(0.0, 100), (0.05, 180), (0.2, 200)])
    caller = RelCaller(net, prack_delay=None)
    caller.call(headers=[("Require", "100rel")])
    net.run(5.0)
    assert caller.statuses() == [100, 180, 200]  # no resend of the 180 after the 200
    assert [r.status for _t, r in caller.arrivals if r.cseq.method == "INVITE"] == [100, 180,
                                                                                    200]


def test_prack_with_unknown_rack_gets_481_and_malformed_rack_400() -> None:
    net = start()
    RelVendor(net, [(0.0, 100), (0.05, 183, True), (2.0, 200)])
    caller = RelCaller(net, prack_delay=None)
    caller.call(headers=[("Supported", "100rel")])
    net.run(0.2)
    [p183] = caller.provisionals()
    caller.remote_tag = p183.to.tag
    caller.prack(f"{int(p183.headers.get('RSeq')) + 5} 1 INVITE")
    caller.prack("nonsense")
    net.run(0.2)
    assert [r.status for r in caller.responses if r.cseq.method == "PRACK"] == [481, 400]


def test_late_offer_in_reliable_183_answered_in_the_prack_end_to_end() -> None:
    net = start()
    vendor = RelVendor(net, [(0.0, 100), (0.05, 183, True), (0.5, 200, False)])
    answer = bytes(build_offer("10.0.0.2", 40000, [PCMA]))
    caller = RelCaller(net, prack_body=answer)
    caller.call(sdp=False, headers=[("Supported", "100rel")])
    net.run(1.0)
    [p183] = caller.provisionals()
    assert b"m=audio 30000" in p183.body  # the vendor's offer reached the caller
    [prack] = sent_to(vendor, "PRACK")
    assert prack.body == answer  # and the caller's answer reached the vendor
    assert caller.statuses() == [100, 183, 200]


def test_update_in_the_early_dialog_relayed_both_ways() -> None:
    net = start()
    vendor = RelVendor(net, [(0.0, 100), (0.05, 183, True), (2.0, 200)])
    caller = RelCaller(net)
    caller.call(headers=[("Supported", "100rel")])
    net.run(0.3)
    caller.update()
    net.run(0.3)
    [update] = sent_to(vendor, "UPDATE")
    assert update.to.tag == vendor.tag and update.call_id == vendor.invites[0].call_id
    assert [r.status for r in caller.responses if r.cseq.method == "UPDATE"] == [200]
    vendor.update()
    net.run(0.3)
    [relayed] = [r for r in caller.requests if r.method == "UPDATE"]
    assert relayed.call_id == caller.invite.call_id
    assert relayed.from_.tag == caller.remote_tag
    assert [r.status for r in vendor.answers if r.cseq.method == "UPDATE"] == [200]
    net.run(2.0)
    assert caller.statuses() == [100, 183, 200]
    caller.bye()
    net.run(1.0)
    [bye] = sent_to(vendor, "BYE")
    assert bye.cseq.number == update.cseq.number + 1


@pytest.mark.parametrize("supported", [True, False])
def test_early_media_through_the_relay_in_a_reliable_183(supported: bool) -> None:
    net = VirtualNetwork(latency=0.001)
    switch = start_switch(net, make_config(mapping='media_proxy = "On"'))
    switch.app.b2bua.media = media = FakeMedia()
    vendor = RelVendor(net, [(0.0, 100), (0.05, 183, True), (0.5, 200)])
    caller = RelCaller(net)
    caller.call(headers=[("Supported", "100rel")] if supported else [])
    net.run(1.0)
    [p183] = caller.provisionals()
    relay_port = media.sessions[0].local_a[1]
    assert f"m=audio {relay_port} ".encode() in p183.body  # the relay's SDP, early
    assert (p183.headers.get("RSeq") is not None) == supported
    assert len(sent_to(vendor, "PRACK")) == 1
    assert caller.statuses() == [100, 183, 200]


def test_late_offer_answered_in_the_prack_reaches_the_vendor_in_its_ack() -> None:
    # caller requires 100rel and offers nothing; the vendor (no 100rel) offers in a plain 183
    # and again in its 200: the caller answers in the PRACK of the switch's reliable 183
    # (RFC 3262 §5), so the vendor's ACK must carry that answer
    net = start()
    vendor = Vendor(net, VENDOR_A, script=[(0.0, 100), (0.05, 183, True), (0.5, 200)])
    answer = bytes(build_offer("10.0.0.2", 40000, [PCMA]))
    caller = RelCaller(net, prack_body=answer)
    caller.call(sdp=False, headers=[("Require", "100rel")])
    net.run(1.0)
    [p183] = caller.provisionals()
    assert p183.headers.get("RSeq") and b"m=audio 30000" in p183.body
    assert caller.statuses("PRACK") == [200] and sent_to(vendor, "PRACK") == []
    [ack] = sent_to(vendor, "ACK")
    assert ack.body == answer
