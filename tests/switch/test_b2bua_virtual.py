"""B2BUA (docs/behaviour.md §4, §5) on the virtual-time network: routing, failover, timeouts,
CANCEL, BYE, CDRs, 488."""

from __future__ import annotations

import gc
import weakref

import pytest

from tests.switch.b2bua_harness import (
    CALLER,
    SWITCH,
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
from vosapp.sip.sdp import G729, PCMA, SessionDescription
from vosapp.store import Store
from vosapp.switch.cdr import read_cdrs
from vosapp.switch.routing import route


def cdr(switch):  # type: ignore[no-untyped-def]
    return switch.app.b2bua.cdr.recent


# ---------------------------------------------------------------------------- routing


def test_route_order_longest_prefix_then_priority_then_config_order() -> None:
    cfg = make_config(routing="""
[[routing_gateway]]
name = "default"
address = "10.0.0.20:5060"
[[routing_gateway]]
name = "uk-2"
address = "10.0.0.21:5060"
prefixes = ["0044"]
priority = 2
[[routing_gateway]]
name = "uk-1"
address = "10.0.0.22:5060"
prefixes = ["0044", "0033"]
priority = 1
[[routing_gateway]]
name = "uk-1b"
address = "10.0.0.23:5060"
prefixes = ["0044"]
priority = 1
[[routing_gateway]]
name = "intl"
address = "10.0.0.24:5060"
prefixes = ["00"]
""")
    assert [g.name for g in route(cfg, "00441234")] == ["uk-1", "uk-1b", "uk-2", "intl",
                                                         "default"]
    assert [g.name for g in route(cfg, "0033")] == ["uk-1", "intl", "default"]
    assert [g.name for g in route(cfg, "123")] == ["default"]


# ---------------------------------------------------------------------------- basic call


def test_basic_call_relayed_and_bye_from_caller(net: VirtualNetwork, tmp_path) -> None:
    store = Store.open(tmp_path)
    switch = start_switch(net, make_config(), store)
    vendor = Vendor(net, VENDOR_A)
    caller = Caller(net)
    invite = caller.call("0044123", headers=[("Privacy", "id")])
    net.run(1.0)
    assert caller.statuses() == [100, 180, 200]
    [b_invite] = vendor.invites
    # a new call on the vendor leg: new Call-ID and tags, user parts kept
    assert b_invite.call_id != invite.call_id
    assert b_invite.from_.tag != invite.from_.tag
    assert b_invite.from_.uri.user == "1001" and b_invite.to.uri.user == "0044123"
    assert b_invite.from_.display == "Alice"  # display_from default On
    assert b_invite.headers.get("Privacy") == "id"  # privacy Passthrough
    assert b_invite.top_via.host == SWITCH[0]
    # media proxy Auto, same address as signalling: SDP passes through untouched
    assert b_invite.body == invite.body
    assert "ACK" in vendor.methods()
    final = caller.final()
    assert final is not None and final.to.tag == caller.responses[1].to.tag  # one To tag
    caller.bye()
    net.run(1.0)
    assert caller.statuses("BYE") == [200]
    assert vendor.methods()[-1] == "BYE"
    [row] = read_cdrs(store)
    assert row["status"] == 200 and row["end_reason"] == "caller hung up"
    assert row["gateways_tried"] == ["vendor-a:200"]
    assert row["mapping_gateway"] == "customer" and row["routing_gateway"] == "vendor-a"
    assert row["caller"] == "1001" and row["callee"] == "0044123"
    assert row["caller_codec"] == row["callee_codec"] == "PCMA"
    assert row["media_mode"] == "direct" and row["answer_time"] is not None
    assert row["dtmf_method"] == "RFC2833 (end to end)"
    assert not switch.app.b2bua.calls and not switch.app.b2bua.dialogs
    store.close()


def test_an_ended_call_is_freed_at_once_without_the_cyclic_gc_and_its_late_2xx_still_acked(
        net: VirtualNetwork) -> None:
    # Both INVITE transactions outlive the call by 64*T1 (RFC 6026 Accepted: Timers L, M),
    # and the vendor may resend its 2xx until then (§13.3.1.4). What that needs is kept
    # apart (EndedCall), so the call's own graph (legs, dialogs, messages, SDP, CDR record)
    # is freed when it ends, by reference counting alone; and transactions let go of the
    # TU's callbacks when they end (they close over what holds the transactions: a cycle
    # would leave it all to the cyclic garbage collector).
    switch = start_switch(net, make_config())
    vendor = Vendor(net, VENDOR_A)
    caller = Caller(net)
    gc.collect()
    gc.disable()
    try:
        caller.call("0044123")
        net.run(1.0)
        [call] = switch.app.b2bua.calls.values()
        freed = weakref.ref(call)
        a_txn, b_txn = call.a_txn, call.answered.txn if call.answered else None
        del call
        caller.bye()
        net.run(1.0)
        assert caller.statuses("BYE") == [200] and vendor.methods() == ["INVITE", "ACK", "BYE"]
        assert b_txn is not None and not a_txn.terminated and not b_txn.terminated
        assert freed() is None
        statuses = caller.statuses()
        vendor.endpoint.send(vendor._response(vendor.invites[0], 200, True), SWITCH)
        caller.endpoint.send(caller.invite, SWITCH)  # absorbed by its transaction (Accepted)
        net.run(1.0)
        assert vendor.methods() == ["INVITE", "ACK", "BYE", "ACK"]  # the same ACK, no BYE
        assert bytes(vendor.requests[3]) == bytes(vendor.requests[1])
        assert caller.statuses() == statuses
        net.run(40.0)  # every transaction of the call ends (Timers L, M, J, K)
        assert a_txn.terminated and b_txn.terminated and not switch.app.b2bua.invites
        assert not a_txn.listeners and not a_txn.cancel_listeners and not b_txn.listeners
        # the EndedCall and its attempt are gone too: nothing but this frame holds b_txn
        assert all(type(holder).__name__ == "frame" for holder in gc.get_referrers(b_txn))
    finally:
        gc.enable()


def test_bye_from_callee_reaches_caller(net: VirtualNetwork) -> None:
    switch = start_switch(net, make_config())
    vendor = Vendor(net, VENDOR_A)
    caller = Caller(net)
    caller.call()
    net.run(1.0)
    b_invite = vendor.invites[0]
    from vosapp.sip import CSeq, NameAddr, Request, Via, new_branch

    bye = Request.build("BYE", b_invite.contacts[0].uri,
                        via=Via("UDP", *VENDOR_A, {"branch": new_branch()}),
                        from_=NameAddr(b_invite.to.uri, None, {"tag": vendor.tag}),
                        to=b_invite.from_, call_id=b_invite.call_id, cseq=CSeq(1, "BYE"))
    vendor.endpoint.send(bye, SWITCH)
    net.run(1.0)
    assert [r.method for r in caller.requests] == ["BYE"]
    assert cdr(switch)[-1].end_reason == "callee hung up"


def test_no_route_is_404(net: VirtualNetwork) -> None:
    switch = start_switch(net, make_config())
    caller = Caller(net)
    caller.call("99123")
    net.run(1.0)
    assert caller.statuses() == [100, 404]
    assert cdr(switch)[-1].end_reason == "no route"


def test_untrusted_caller_is_challenged(net: VirtualNetwork) -> None:
    start_switch(net, make_config())
    stranger = Caller(net, ("10.0.0.77", 5060))
    stranger.call()
    net.run(1.0)
    assert stranger.statuses() == [401]


# ---------------------------------------------------------------------------- failover


def test_503_fails_over_to_the_next_gateway(net: VirtualNetwork) -> None:
    switch = start_switch(net, make_config())
    first = Vendor(net, VENDOR_A, [(0.0, 100), (0.05, 503)])
    second = Vendor(net, VENDOR_B)
    caller = Caller(net)
    caller.call()
    net.run(1.0)
    assert len(first.invites) == len(second.invites) == 1
    assert caller.statuses() == [100, 180, 200]
    assert cdr(switch) == [] and switch.app.b2bua.calls
    caller.bye()
    net.run(1.0)
    assert cdr(switch)[-1].gateways_tried == ["vendor-a:503", "vendor-b:200"]


def test_486_busy_is_final_no_failover(net: VirtualNetwork) -> None:
    switch = start_switch(net, make_config())
    Vendor(net, VENDOR_A, [(0.0, 100), (0.05, 486)])
    second = Vendor(net, VENDOR_B)
    caller = Caller(net)
    caller.call()
    net.run(1.0)
    assert caller.statuses() == [100, 486]
    assert second.invites == []
    assert cdr(switch)[-1].status == 486


def test_all_gateways_failing_gives_503(net: VirtualNetwork) -> None:
    switch = start_switch(net, make_config())
    Vendor(net, VENDOR_A, [(0.0, 500)])
    Vendor(net, VENDOR_B, [(0.0, 480)])
    caller = Caller(net)
    caller.call()
    net.run(1.0)
    assert caller.statuses() == [100, 503]
    assert cdr(switch)[-1].gateways_tried == ["vendor-a:500", "vendor-b:480"]


def test_invite_timeout_fails_over(net: VirtualNetwork) -> None:
    switch = start_switch(net, make_config("SS_SIP_TIMEOUT_INVITE = 3"))
    silent = Vendor(net, VENDOR_A, [])
    Vendor(net, VENDOR_B)
    caller = Caller(net)
    caller.call()
    net.run(2.9)
    assert caller.statuses() == [100]
    net.run(0.5)
    assert caller.statuses() == [100, 180, 200]
    assert len(silent.invites) == 3  # T1 retransmissions at 0.5 s and 1.5 s
    net.run(30.0)
    assert len(silent.invites) == 3  # abandoned after SS_SIP_TIMEOUT_INVITE
    caller.bye()
    net.run(1.0)
    assert cdr(switch)[-1].gateways_tried == ["vendor-a:timeout", "vendor-b:200"]


def test_invite_timeout_stops_with_stop_switch_on(net: VirtualNetwork) -> None:
    switch = start_switch(net, make_config(
        "SS_SIP_TIMEOUT_INVITE = 3\nSS_SIP_USER_AGENT_STOP_SWITCH_AFTER_INVITE_TIMEOUT = 'On'"))
    Vendor(net, VENDOR_A, [])
    second = Vendor(net, VENDOR_B)
    caller = Caller(net)
    caller.call()
    net.run(5.0)
    assert caller.statuses() == [100, 408]
    assert second.invites == []
    assert cdr(switch)[-1].gateways_tried == ["vendor-a:timeout"]


def test_late_200_after_invite_timeout_is_acked_and_byed_once(net: VirtualNetwork) -> None:
    # §13.2.2.4 / §15: the 2xx of an attempt given up (SS_SIP_TIMEOUT_INVITE, failover) is
    # ACKed and BYEd; its retransmission (after the transaction is gone) is only ACKed again
    switch = start_switch(net, make_config("SS_SIP_TIMEOUT_INVITE = 3"))
    late = Vendor(net, VENDOR_A, [(4.0, 200)])
    Vendor(net, VENDOR_B)
    caller = Caller(net)
    caller.call()
    net.run(6.0)
    assert caller.statuses() == [100, 180, 200]
    assert late.methods() == ["INVITE", "INVITE", "INVITE", "ACK", "BYE"]
    assert {r.to.tag for r in late.requests[3:]} == {late.tag}
    late.endpoint.send(late._response(late.invites[0], 200, True), SWITCH)
    net.run(1.0)
    assert late.methods()[3:] == ["ACK", "BYE", "ACK"]
    caller.bye()
    net.run(1.0)
    assert cdr(switch)[-1].gateways_tried == ["vendor-a:timeout", "vendor-b:200"]
    assert cdr(switch)[-1].status == 200


def test_late_200_offer_to_a_late_offer_invite_is_answered_rejected_in_the_ack(
        net: VirtualNetwork) -> None:
    # §13.2.2.4: the ACK for a 2xx offer must carry an answer, even for a 2xx about to be BYEd
    start_switch(net, make_config("SS_SIP_TIMEOUT_INVITE = 3"))
    late = Vendor(net, VENDOR_A, [(4.0, 200)])
    Vendor(net, VENDOR_B)
    caller = Caller(net)
    caller.call(sdp=False)
    net.run(6.0)
    assert late.methods()[-2:] == ["ACK", "BYE"]
    ack = late.requests[-2]
    assert ack.headers.get("Content-Type") == "application/sdp"
    assert all(m.port == 0 for m in SessionDescription.parse(ack.body).media)


def test_late_200_after_the_call_ended_408_is_acked_and_byed(net: VirtualNetwork) -> None:
    switch = start_switch(net, make_config(
        "SS_SIP_TIMEOUT_INVITE = 3\nSS_SIP_USER_AGENT_STOP_SWITCH_AFTER_INVITE_TIMEOUT = 'On'"))
    late = Vendor(net, VENDOR_A, [(4.0, 200)])
    caller = Caller(net)
    caller.call()
    net.run(6.0)
    assert caller.statuses() == [100, 408]
    assert late.methods() == ["INVITE", "INVITE", "INVITE", "ACK", "BYE"]
    assert cdr(switch)[-1].status == 408
    assert cdr(switch)[-1].gateways_tried == ["vendor-a:timeout"]


def test_late_provisional_after_invite_timeout_gets_cancel_and_its_487_an_ack(
        net: VirtualNetwork) -> None:
    # the INVITE's transaction was stopped at SS_SIP_TIMEOUT_INVITE; the vendor's late 180
    # is matched by Call-ID/From tag: CANCEL (§9.1), and its 487 is ACKed (§17.1.1.3)
    start_switch(net, make_config("SS_SIP_TIMEOUT_INVITE = 3"))
    late = Vendor(net, VENDOR_A, [(4.0, 180)])
    Vendor(net, VENDOR_B)
    caller = Caller(net)
    caller.call()
    net.run(6.0)
    assert caller.statuses() == [100, 180, 200]
    assert late.methods() == ["INVITE", "INVITE", "INVITE", "CANCEL", "ACK"]
    assert late.requests[-1].cseq.method == "ACK" and late.requests[-1].to.tag == late.tag


def test_2xx_retransmission_after_the_transaction_ended_is_acked_again(
        net: VirtualNetwork) -> None:
    start_switch(net, make_config())
    vendor = Vendor(net, VENDOR_A)
    caller = Caller(net)
    caller.call()
    net.run(40.0)  # past 64*T1: the INVITE client transaction is gone (RFC 6026 Timer M)
    assert vendor.methods() == ["INVITE", "ACK"]
    vendor.endpoint.send(vendor._response(vendor.invites[0], 200, True), SWITCH)
    vendor.endpoint.send(vendor._response(vendor.invites[0], 180, False), SWITCH)
    net.run(1.0)
    assert vendor.methods() == ["INVITE", "ACK", "ACK"]  # a stray 180: nothing to CANCEL


# ---------------------------------------------------------------------------- progress timeouts


@pytest.mark.parametrize("param, script, what", [
    ("SS_SIP_TIMEOUT_TRYING", [(0.0, 100)], "trying"),
    ("SS_SIP_TIMEOUT_RINGING", [(0.0, 100), (0.1, 180)], "ringing"),
    ("SS_SIP_TIMEOUT_SESSION_PROGRESS", [(0.0, 183, False)], "session progress"),
    ("SS_SIP_TIMEOUT_SESSION_PROGRESS_SDP", [(0.0, 183, True)], "session progress"),
])
def test_progress_timeouts_cancel_and_fail(net: VirtualNetwork, param: str, script,
                                           what: str) -> None:
    switch = start_switch(net, make_config(f"{param} = 5"))
    vendor = Vendor(net, VENDOR_A, script)
    second = Vendor(net, VENDOR_B)
    caller = Caller(net)
    caller.call()
    net.run(4.5)
    assert caller.final() is None
    net.run(1.0)
    assert caller.final().status == 408
    assert "CANCEL" in vendor.methods() and second.invites == []
    assert cdr(switch)[-1].end_reason == f"{what} timeout"


# ---------------------------------------------------------------------------- CANCEL


def test_cancel_from_caller_cancels_vendor_and_487(net: VirtualNetwork) -> None:
    switch = start_switch(net, make_config())
    vendor = Vendor(net, VENDOR_A, [(0.0, 100), (0.05, 180), (10.0, 200)])
    caller = Caller(net)
    caller.call()
    net.run(1.0)
    caller.cancel()
    net.run(1.0)
    assert caller.statuses("CANCEL") == [200]
    assert caller.statuses() == [100, 180, 487]
    assert "CANCEL" in vendor.methods()
    net.run(15.0)
    assert caller.statuses() == [100, 180, 487]
    assert cdr(switch)[-1].status == 487
    assert cdr(switch)[-1].end_reason == "cancelled by caller"


def test_cancel_before_any_vendor_answer_is_sent_after_the_first_provisional(
        net: VirtualNetwork) -> None:
    start_switch(net, make_config())
    vendor = Vendor(net, VENDOR_A, [(2.0, 180), (10.0, 200)])
    caller = Caller(net)
    caller.call()
    net.run(0.5)
    caller.cancel()
    net.run(0.5)
    assert caller.statuses() == [100, 487] and "CANCEL" not in vendor.methods()
    net.run(2.0)
    assert "CANCEL" in vendor.methods()


# ---------------------------------------------------------------------------- codecs


SPECIFIED_A = """
codec_mode = "Softswitch specified"
specified_codec = "PCMA"
"""


def test_specified_codecs_differ_without_conversion_is_488(net: VirtualNetwork) -> None:
    switch = start_switch(net, make_config(
        mapping=SPECIFIED_A,
        routing=vendor_c_routing('codec_mode = "Softswitch specified"\nspecified_codec = "G729"')))
    vendor = Vendor(net, VENDOR_C)
    caller = Caller(net)
    caller.call("123")
    net.run(1.0)
    assert caller.statuses() == [100, 488]
    warning = caller.final().headers.get("Warning")
    assert warning.startswith("305 ") and "Allow codec conversion is off" in warning
    assert vendor.invites == []
    record = cdr(switch)[-1]
    assert record.status == 488 and record.gateways_tried == []  # never contacted


def test_specified_codec_with_media_proxy_off_restricts_the_offer(net: VirtualNetwork) -> None:
    start_switch(net, make_config(routing=vendor_c_routing(
        'codec_mode = "Softswitch specified"\nspecified_codec = "PCMU"\nmedia_proxy = "Off"')))
    vendor = Vendor(net, VENDOR_C)
    caller = Caller(net)
    caller.call("123")
    net.run(1.0)
    sdp = SessionDescription.parse(vendor.invites[0].body)
    assert [c.encoding for c in sdp.first_audio().codecs()] == ["PCMU", "telephone-event"]
    assert sdp.connection.address == CALLER[0]  # still end to end
    assert caller.statuses() == [100, 180, 200]


def test_conversion_needs_media_proxy(net: VirtualNetwork) -> None:
    start_switch(net, make_config(
        mapping=SPECIFIED_A + "allow_codec_conversion = true\n",
        routing=vendor_c_routing('codec_mode = "Softswitch specified"\nspecified_codec = "G729"\n'
                             'allow_codec_conversion = true\nmedia_proxy = "Off"')))
    caller = Caller(net)
    caller.call("123", codecs=(PCMA,))
    net.run(1.0)
    assert caller.statuses() == [100, 488]
    assert "media proxy" in caller.final().headers.get("Warning")


def test_transcoding_plan_offers_each_side_its_codec(net: VirtualNetwork) -> None:
    switch = start_switch(net, make_config(
        mapping=SPECIFIED_A + "allow_codec_conversion = true\n",
        routing=vendor_c_routing('codec_mode = "Softswitch specified"\nspecified_codec = "G729"\n'
                             'allow_codec_conversion = true')))
    media = FakeMedia()
    switch.app.b2bua.media = media
    vendor = Vendor(net, VENDOR_C)
    caller = Caller(net)
    caller.call("123", codecs=(PCMA, G729))
    net.run(1.0)
    offer = SessionDescription.parse(vendor.invites[0].body)
    assert next(c.encoding for c in offer.first_audio().codecs()) == "G729"
    assert offer.connection.address == "10.0.0.1" and offer.first_audio().port == 20002
    final = caller.final()
    assert final.status == 200
    answer = SessionDescription.parse(final.body)
    assert answer.first_audio().port == 20000
    assert next(c.encoding for c in answer.first_audio().codecs()) == "PCMA"
    a, b, _dtmf = media.sessions[0].started
    assert (a.codec, b.codec) == ("PCMA", "G729")
    assert a.remote == (CALLER[0], 40000)
    caller.bye()
    net.run(1.0)
    assert media.sessions[0].closed
    record = cdr(switch)[-1]
    assert (record.caller_codec, record.callee_codec, record.media_mode) == (
        "PCMA", "G729", "transcode")


def test_nat_address_mismatch_uses_the_relay(net: VirtualNetwork) -> None:
    switch = start_switch(net, make_config())
    media = FakeMedia()
    switch.app.b2bua.media = media
    vendor = Vendor(net, VENDOR_A)
    caller = Caller(net)
    caller.call(sdp_address="192.168.1.5")  # behind NAT: SDP names a private address
    net.run(1.0)
    [session] = media.sessions
    offer = SessionDescription.parse(vendor.invites[0].body)
    assert offer.connection.address == "10.0.0.1" and offer.first_audio().port == 20002
    a, b, _ = session.started
    assert a.remote == ("192.168.1.5", 40000) and (a.codec, b.codec) == ("PCMA", "PCMA")
    assert caller.final().status == 200
    assert cdr(switch) == []
    caller.bye()
    net.run(1.0)
    assert cdr(switch)[-1].media_mode == "relay" and session.closed


def test_late_offer_caller_ack_carries_the_answer(net: VirtualNetwork) -> None:
    start_switch(net, make_config())
    vendor = Vendor(net, VENDOR_A)
    caller = Caller(net)
    caller.call(sdp=False)
    net.run(1.0)
    assert vendor.invites[0].body == b""
    assert caller.final().status == 200 and caller.final().body  # the vendor's offer
    assert "ACK" in vendor.methods()


def test_reinvite_and_info_are_relayed(net: VirtualNetwork) -> None:
    start_switch(net, make_config())
    vendor = Vendor(net, VENDOR_A)
    caller = Caller(net)
    caller.call()
    net.run(1.0)
    body = caller.invite.body
    caller.endpoint.send(caller._in_dialog("INVITE", body=body), SWITCH)
    net.run(1.0)
    assert caller.statuses()[-1] == 200
    reinvite = [r for r in vendor.requests if r.method == "INVITE"][-1]
    assert reinvite.to.tag == vendor.tag and reinvite.body == body
    assert vendor.methods().count("ACK") == 2
    caller.endpoint.send(caller._in_dialog("INFO"), SWITCH)
    net.run(1.0)
    assert caller.statuses("INFO") == [200] and "INFO" in vendor.methods()


def test_in_dialog_request_for_unknown_dialog_is_481(net: VirtualNetwork) -> None:
    start_switch(net, make_config())
    caller = Caller(net)
    caller.call("99")
    net.run(1.0)
    caller.remote_tag = "nope"
    caller.bye()
    net.run(1.0)
    assert caller.statuses("BYE") == [481]


def test_200_is_retransmitted_until_ack_then_bye_both_legs(net: VirtualNetwork) -> None:
    switch = start_switch(net, make_config())
    vendor = Vendor(net, VENDOR_A)
    caller = Caller(net)
    caller.endpoint.on_receive = lambda packet: caller.responses.append(packet.parse())
    caller.call()  # this caller never ACKs nor answers requests
    net.run(10.0)
    oks = [r for r in caller.responses if getattr(r, "status", None) == 200]
    assert 4 <= len(oks) <= 8  # 0, 0.5, 1.5, 3.5, 7.5 s ...
    net.run(30.0)
    assert "BYE" in vendor.methods()
    assert any(getattr(m, "method", None) == "BYE" for m in caller.responses)
    assert cdr(switch)[-1].end_reason == "no ACK from caller"


def test_late_offer_without_the_callers_ack_acks_the_vendor_before_the_bye(
        net: VirtualNetwork) -> None:
    # the vendor's 2xx carried the offer; the caller's ACK (with the answer) never comes:
    # the vendor still gets its ACK, answering with every stream rejected (RFC 3264 §6),
    # and only then the BYE (§13.2.2.4)
    switch = start_switch(net, make_config())
    vendor = Vendor(net, VENDOR_A)
    caller = Caller(net)
    caller.endpoint.on_receive = lambda packet: caller.responses.append(packet.parse())
    caller.call(sdp=False)  # this caller never ACKs
    net.run(40.0)
    assert vendor.methods() == ["INVITE", "ACK", "BYE"]
    ack = vendor.requests[1]
    assert ack.headers.get("Content-Type") == "application/sdp"
    answer = SessionDescription.parse(ack.body)
    assert answer.media and all(m.port == 0 for m in answer.media)
    assert cdr(switch)[-1].end_reason == "no ACK from caller"


def test_privacy_pai_and_display_from_per_routing_gateway(net: VirtualNetwork) -> None:
    start_switch(net, make_config(routing=vendor_c_routing(
        'display_from = false\nprivacy = "Id"\np_asserted_identity = "From caller"')))
    vendor = Vendor(net, VENDOR_C)
    caller = Caller(net)
    caller.call("123", headers=[("Privacy", "none"), ("P-Asserted-Identity", "<sip:x@y>")])
    net.run(1.0)
    [invite] = vendor.invites
    assert invite.from_.display is None and invite.from_.uri.user == "1001"
    assert invite.headers.get("Privacy") == "id"
    assert invite.headers.get("P-Asserted-Identity") == f"<sip:1001@{SWITCH[0]}>"


def test_pai_removed_and_privacy_removed(net: VirtualNetwork) -> None:
    start_switch(net, make_config(routing=vendor_c_routing(
        'privacy = "Remove"\np_asserted_identity = "Remove"')))
    vendor = Vendor(net, VENDOR_C)
    caller = Caller(net)
    caller.call("123", headers=[("Privacy", "id"), ("P-Asserted-Identity", "<sip:x@y>")])
    net.run(1.0)
    [invite] = vendor.invites
    assert "Privacy" not in invite.headers and "P-Asserted-Identity" not in invite.headers


def test_mapping_gateway_prefixes_restrict_the_dialled_numbers(net: VirtualNetwork) -> None:
    switch = start_switch(net, make_config(mapping='prefixes = ["0033"]'))
    vendor = Vendor(net, VENDOR_A)
    caller = Caller(net)
    caller.call("0044123")
    net.run(1.0)
    assert caller.statuses() == [100, 403]
    assert vendor.invites == []
    assert cdr(switch)[-1].end_reason == "prefix not allowed"


@pytest.mark.parametrize("mapping, routing, caller_codecs, expect", [
    ({}, {}, ["PCMA"], "direct"),
    ({}, {"media_proxy": "On"}, ["PCMA"], "relay"),
    ({"specified_codec": "PCMA", "codec_mode": "specified"},
     {"specified_codec": "G729", "codec_mode": "specified"}, ["PCMA"], "488 conversion"),
    ({"specified_codec": "PCMA", "codec_mode": "specified", "allow_codec_conversion": True},
     {"specified_codec": "G729", "codec_mode": "specified", "allow_codec_conversion": True},
     ["PCMA"], "transcode"),
    ({"specified_codec": "G729", "codec_mode": "specified"}, {}, ["PCMA"], "488 specified"),
    ({}, {"dtmf_send": "Inband"}, ["PCMA"], "relay dtmf"),
    ({}, {"dtmf_send": "Inband", "media_proxy": "Off"}, ["PCMA"], "direct"),
])
def test_media_plan_table(mapping, routing, caller_codecs, expect) -> None:  # type: ignore[no-untyped-def]
    from vosapp.params import GatewaySettings
    from vosapp.sip.sdp import build_offer
    from vosapp.switch.call import SPECIFIED, MediaRefused, plan_media

    offer = build_offer("10.0.0.2", 40000, [SPECIFIED[name] for name in caller_codecs])
    try:
        plan = plan_media(offer, "10.0.0.2", GatewaySettings(**mapping),
                          GatewaySettings(**routing))
    except MediaRefused as exc:
        assert expect.startswith("488")
        assert ("conversion" in str(exc)) == (expect == "488 conversion")
        return
    if expect == "direct":
        assert not plan.relay
    elif expect == "relay":
        assert plan.relay and not plan.transcode
    elif expect == "relay dtmf":
        assert plan.relay and plan.dtmf_conversion and plan.reason == "DTMF conversion"
    else:
        assert plan.relay and plan.transcode
        assert [c.encoding for c in plan.b_codecs] == ["G729"]


def test_cdr_list_cli_text_and_json(net: VirtualNetwork, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    import json

    from vosapp.cli import main

    store = Store.open(tmp_path)
    start_switch(net, make_config(), store)
    Vendor(net, VENDOR_A, [(0.0, 503)])
    Vendor(net, VENDOR_B, [(0.0, 486)])
    caller = Caller(net)
    caller.call()
    net.run(1.0)
    store.close()
    assert main(["cdr", "list", "--data-dir", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "1001 -> 0044123: 486" in text and "vendor-a:503, vendor-b:486" in text
    assert main(["cdr", "list", "--json", "--data-dir", str(tmp_path)]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["gateways_tried"] == ["vendor-a:503", "vendor-b:486"] and row["status"] == 486


# ---------------------------------------------------------------------------- RFC 4028


def reinvites(requests) -> list:  # type: ignore[no-untyped-def]
    return [r for r in requests if r.method == "INVITE" and r.to.tag]


def test_session_timer_offered_and_refreshed_towards_the_vendor(net: VirtualNetwork) -> None:
    start_switch(net, make_config("SS_SIP_SESSION_TTL = 1800"))
    vendor = Vendor(net, VENDOR_A, extra_headers=[("Session-Expires", "90;refresher=uac"),
                                                  ("Require", "timer")])
    caller = Caller(net)
    caller.call()
    net.run(1.0)
    [invite] = vendor.invites
    assert invite.headers.get("Session-Expires") == "1800"
    assert "timer" in invite.headers.get("Supported")
    assert reinvites(vendor.requests) == []
    net.run(45.0)  # refresh at 90 / SS_SIP_SESSION_UPDATE_SEGMENT (2)
    [refresh] = reinvites(vendor.requests)
    assert refresh.headers.get("Session-Expires") == "90;refresher=uac"
    assert refresh.body == invite.body  # same SDP: a refresh changes nothing (RFC 3264 §8)
    net.run(1.0)
    assert vendor.methods().count("ACK") == 2
    net.run(45.0)
    assert len(reinvites(vendor.requests)) == 2
    assert "BYE" not in vendor.methods()


def test_caller_is_refresher_and_its_silence_ends_the_call(net: VirtualNetwork) -> None:
    switch = start_switch(net, make_config())
    vendor = Vendor(net, VENDOR_A)
    caller = Caller(net)
    caller.call(headers=[("Supported", "timer"), ("Session-Expires", "120")])
    net.run(1.0)
    final = caller.final()
    assert final.headers.get("Session-Expires") == "120;refresher=uac"
    assert final.headers.get("Require") == "timer"
    net.run(80.0)
    assert "BYE" not in vendor.methods()
    # the caller refreshes: the watch restarts
    caller.endpoint.send(caller._in_dialog("INVITE", body=caller.invite.body), SWITCH)
    net.run(80.0)
    assert "BYE" not in vendor.methods()
    net.run(10.0)  # 120 - min(32, 40) = 88 s after the refresh
    assert "BYE" in vendor.methods()
    assert [r.method for r in caller.requests if r.method == "BYE"] == ["BYE"]
    assert cdr(switch)[-1].end_reason == "session expired"


@pytest.mark.parametrize("early, hangup_after", [("On", 45 + 32), ("Off", 90)])
def test_unanswered_refresh_ends_the_call(net: VirtualNetwork, early: str,
                                          hangup_after: float) -> None:
    switch = start_switch(net, make_config(f"SS_SIP_SESSION_TIMEOUT_EARLY_HANGUP = '{early}'"))
    Vendor(net, VENDOR_A, extra_headers=[("Session-Expires", "90;refresher=uac")])
    caller = Caller(net)
    caller.call()
    net.run(1.0)
    net.blocked.add((SWITCH, VENDOR_A))  # the vendor is gone
    net.run(hangup_after - 2.0)
    assert cdr(switch) == []
    net.run(4.0)
    assert [r.method for r in caller.requests] == ["BYE"]
    reason = cdr(switch)[-1].end_reason
    assert reason == ("session refresh failed (no answer)" if early == "On"
                      else "session expired")


def test_liveness_reinvite_without_session_timers(net: VirtualNetwork) -> None:
    start_switch(net, make_config("SS_SIP_NO_TIMER_REINVITE_INTERVAL = 60"))
    vendor = Vendor(net, VENDOR_A)
    caller = Caller(net)
    caller.call()
    net.run(1.0)
    net.run(60.0)
    assert len(reinvites(vendor.requests)) == 1
    assert len(reinvites(caller.requests)) == 1
    assert "Session-Expires" not in reinvites(vendor.requests)[0].headers
    assert caller.final().headers.get("Session-Expires") is None


def test_redirect_is_relayed_with_its_contact(net: VirtualNetwork) -> None:
    start_switch(net, make_config())
    vendor = Vendor(net, VENDOR_A, [(0.0, 302)])
    original = vendor._response

    def with_contact(request, status, with_sdp):  # type: ignore[no-untyped-def]
        response = original(request, status, with_sdp)
        if status == 302:
            response.headers.add("Contact", "<sip:0044999@10.0.0.50>")
        return response

    vendor._response = with_contact  # type: ignore[method-assign]
    caller = Caller(net)
    caller.call()
    net.run(1.0)
    final = caller.final()
    assert final.status == 302 and final.headers.get("Contact") == "<sip:0044999@10.0.0.50>"


def test_graceful_stop_hangs_up_answered_calls_and_waits_for_the_byes(
        net: VirtualNetwork) -> None:
    switch = start_switch(net, make_config())
    vendor = Vendor(net, VENDOR_A)
    caller = Caller(net)
    caller.call()
    net.run(1.0)
    assert switch.stop(timeout=2.0)
    assert "BYE" in vendor.methods() and [r.method for r in caller.requests] == ["BYE"]
    assert cdr(switch)[-1].end_reason == "switch stopped"


def test_an_invite_without_credentials_is_challenged_statelessly_and_its_ack_ignored() -> None:
    """RFC 3261 §26.3.2.4 for an INVITE (docs/behaviour.md §2.1): the challenge is sent once
    (no Timer G retransmissions, no Timer H), so the ACK for it matches no transaction and the
    B2BUA, knowing no dialog for it, ignores it; a retransmitted INVITE gets a challenge of its
    own. Answering a challenge still makes a call."""
    from vosapp.sip import Response
    from vosapp.sip.digest import answer as digest_answer
    from vosapp.sip.digest import parse_challenge

    net = VirtualNetwork()
    switch = start_switch(net, make_config(mapping='accounts = ["1001"]'))
    vendor = Vendor(net, VENDOR_A)
    phone = net.add_endpoint(("10.0.0.77", 5060))  # not a trusted gateway address

    def invite(cseq: int, branch: str, auth: str = "") -> bytes:
        return ("INVITE sip:0044123@10.0.0.1 SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 10.0.0.77:5060;branch={branch}\r\n"
                "Max-Forwards: 70\r\nFrom: <sip:1001@10.0.0.1>;tag=ph1\r\n"
                "To: <sip:0044123@10.0.0.1>\r\nCall-ID: stateless-407\r\n"
                f"CSeq: {cseq} INVITE\r\nContact: <sip:1001@10.0.0.77:5060>\r\n"
                f"{auth}Content-Length: 0\r\n\r\n").encode()

    first = invite(1, "z9hG4bK-first")
    phone.send(first, SWITCH)
    phone.send(first, SWITCH)  # the phone's Timer A retransmission
    net.run(1)
    challenges = [m for m in phone.messages() if isinstance(m, Response)]
    assert [m.status for m in challenges] == [401, 401]
    header = challenges[0].headers.get("WWW-Authenticate")
    assert header != challenges[1].headers.get("WWW-Authenticate")  # two nonces
    assert len(switch.core.transactions.servers) == 0
    net.run(4)  # no Timer G (0.5, 1, 2 s...): the challenge is never resent
    assert len(phone.received) == 2

    ack = (f"ACK sip:0044123@10.0.0.1 SIP/2.0\r\n"
           "Via: SIP/2.0/UDP 10.0.0.77:5060;branch=z9hG4bK-first\r\n"
           "Max-Forwards: 70\r\nFrom: <sip:1001@10.0.0.1>;tag=ph1\r\n"
           f"To: {challenges[0].headers.get('To')}\r\nCall-ID: stateless-407\r\n"
           "CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n").encode()
    phone.send(ack, SWITCH)
    net.run(1)
    assert len(phone.received) == 2 and vendor.methods() == []

    credentials = digest_answer(parse_challenge(header), "INVITE", "sip:0044123@10.0.0.1",
                                "1001", "secret-1001")
    phone.send(invite(2, "z9hG4bK-second", f"Authorization: {credentials}\r\n"), SWITCH)
    net.run(2)
    assert vendor.methods()[:1] == ["INVITE"]
    assert [m.status for m in phone.messages()[2:] if isinstance(m, Response)][-1] == 200
