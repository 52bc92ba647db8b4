"""Calls to registered phones on the virtual network: the dialled number matched against the
accounts first, a fork over the live bindings (RFC 3261 §16.6/§16.7), 480 without one, the
NAT rule (reached at the REGISTER's source), the phone's own gateway settings, CDRs."""

from __future__ import annotations

from tests.switch.b2bua_harness import (
    CALLER,
    SWITCH,
    Caller,
    FakeMedia,
    Vendor,
    make_config,
    register_phone,
    start_switch,
)
from vosapp.io.virtual import VirtualNetwork
from vosapp.sip import CSeq, NameAddr, Request, Via, new_branch
from vosapp.sip.sdp import SessionDescription
from vosapp.store import Store
from vosapp.switch.call.state import AttemptState
from vosapp.switch.cdr import read_cdrs

PHONE_A = ("10.0.0.30", 5060)
PHONE_B = ("10.0.0.31", 5062)
#: a default route: a number that is an account must still go to the phone, never here
DEFAULT_ROUTE = """
[[routing_gateway]]
name = "default"
address = "10.0.0.9:5060"
"""
PHONES = """
[[mapping_gateway]]
name = "phones"
accounts = ["1001"]
"""


def test_carrier_calls_a_registered_phone(net: VirtualNetwork, tmp_path) -> None:
    store = Store.open(tmp_path)
    switch = start_switch(net, make_config(routing=DEFAULT_ROUTE), store)
    carrier_vendor = Vendor(net, ("10.0.0.9", 5060))
    contact = register_phone(switch, "1001", PHONE_A)
    phone = Vendor(net, PHONE_A)
    caller = Caller(net)  # a trusted mapping gateway address
    caller.call("1001")
    net.run(1.0)
    assert caller.statuses() == [100, 180, 200]
    [invite] = phone.invites
    assert str(invite.uri) == contact  # Request-URI = the binding's Contact
    assert invite.to.uri.user == "1001" and invite.from_.uri.user == "1001"
    assert carrier_vendor.invites == []
    phone.endpoint.send(phone._response(invite, 200, True), SWITCH)  # a 2xx retransmission
    net.run(0.5)
    assert phone.methods().count("ACK") == 2  # §13.2.2.4: re-ACKed
    caller.bye()
    net.run(1.0)
    assert phone.methods()[-1] == "BYE"
    [row] = read_cdrs(store)
    assert row["status"] == 200 and row["callee"] == "1001"
    assert row["callee_account"] == "1001" and row["callee_contact"] == contact
    assert row["routing_gateway"] is None
    assert row["gateways_tried"] == [f"1001 {contact}:200"]
    store.close()


def test_the_phone_hangs_up(net: VirtualNetwork) -> None:
    switch = start_switch(net, make_config())
    register_phone(switch, "1001", PHONE_A)
    phone = Vendor(net, PHONE_A)
    caller = Caller(net)
    caller.call("1001")
    net.run(1.0)
    [invite] = phone.invites
    bye = Request.build("BYE", invite.contacts[0].uri,
                        via=Via("UDP", *PHONE_A, {"branch": new_branch()}),
                        from_=NameAddr(invite.to.uri, params={"tag": phone.tag}),
                        to=invite.from_, call_id=invite.call_id, cseq=CSeq(1, "BYE"))
    phone.endpoint.send(bye, SWITCH)
    net.run(1.0)
    assert caller.requests[-1].method == "BYE"
    assert switch.app.b2bua.cdr.recent[-1].end_reason == "callee hung up"


def test_an_account_without_a_live_binding_gets_480(net: VirtualNetwork, tmp_path) -> None:
    store = Store.open(tmp_path)
    start_switch(net, make_config(routing=DEFAULT_ROUTE), store)
    carrier_vendor = Vendor(net, ("10.0.0.9", 5060))
    caller = Caller(net)
    caller.call("1001")
    net.run(1.0)
    assert caller.statuses() == [100, 480]
    assert carrier_vendor.invites == []  # accounts first: no fall-through to routing
    [row] = read_cdrs(store)
    assert row["status"] == 480 and row["callee_account"] == "1001"
    assert row["end_reason"] == "1001 not registered" and row["gateways_tried"] == []
    caller.call("5555")  # not an account: routed as before
    net.run(1.0)
    assert len(carrier_vendor.invites) == 1
    store.close()


def test_fork_first_2xx_wins_and_the_other_branch_is_cancelled(net: VirtualNetwork) -> None:
    switch = start_switch(net, make_config())
    low = register_phone(switch, "1001", PHONE_B, q=0.5)
    high = register_phone(switch, "1001", PHONE_A, q=1.0)
    phone_a = Vendor(net, PHONE_A, script=[(0.0, 180), (0.2, 200)])
    phone_b = Vendor(net, PHONE_B, script=[(0.0, 180)])
    caller = Caller(net)
    caller.call("1001")
    net.run(0.005)
    # both INVITEs out at once (parallel), the higher q first (§16.6)
    assert len(phone_a.invites) == len(phone_b.invites) == 1
    [call] = switch.app.b2bua.calls.values()
    assert [a.target.contact for a in call.fork.attempts] == [high, low]
    record = call.record
    net.run(1.0)
    assert caller.statuses() == [100, 180, 180, 200]
    assert phone_b.methods() == ["INVITE", "CANCEL", "ACK"]  # ACK for its 487
    assert "CANCEL" not in phone_a.methods() and "ACK" in phone_a.methods()
    assert record.gateways_tried == [f"1001 {high}:200", f"1001 {low}:cancelled"]
    assert record.callee_contact == high
    caller.bye()
    net.run(1.0)
    assert phone_a.methods()[-1] == "BYE" and "BYE" not in phone_b.methods()


def test_fork_second_2xx_gets_ack_and_bye(net: VirtualNetwork) -> None:
    switch = start_switch(net, make_config())
    register_phone(switch, "1001", PHONE_A)
    register_phone(switch, "1001", PHONE_B)
    phone_a = Vendor(net, PHONE_A, script=[(0.1, 200)])
    phone_b = Vendor(net, PHONE_B, script=[(0.1, 200)])  # crosses the CANCEL
    phone_b.endpoint.on_receive = lambda packet, on=phone_b._on: (
        None if b"CANCEL" in packet.data[:8] else on(packet))  # too late to cancel
    caller = Caller(net)
    caller.call("1001")
    net.run(1.0)
    assert caller.statuses() == [100, 200]  # one answer reaches the caller
    [call] = switch.app.b2bua.calls.values()
    loser = next(a for a in call.fork.attempts if a is not call.answered)
    assert loser.state is AttemptState.HUNG_UP
    assert "ACK" in phone_b.methods() and phone_b.methods()[-1] == "BYE"
    assert "BYE" not in phone_a.methods()
    caller.bye()
    net.run(1.0)
    assert phone_a.methods()[-1] == "BYE"


def test_fork_a_6xx_ends_it_and_all_failed_relays_the_best(net: VirtualNetwork) -> None:
    switch = start_switch(net, make_config())
    register_phone(switch, "1001", PHONE_A)
    register_phone(switch, "1001", PHONE_B)
    phone_a = Vendor(net, PHONE_A, script=[(0.0, 180)])
    Vendor(net, PHONE_B, script=[(0.1, 603)])
    caller = Caller(net)
    caller.call("1001")
    net.run(1.0)
    assert caller.statuses() == [100, 180, 603]  # §16.7: a 6xx cancels the others
    assert "CANCEL" in phone_a.methods()


def test_every_branch_failing_relays_the_phones_answer(net: VirtualNetwork) -> None:
    switch = start_switch(net, make_config())
    register_phone(switch, "1001", PHONE_A)
    register_phone(switch, "1001", PHONE_B)
    Vendor(net, PHONE_A, script=[(0.3, 486)])
    Vendor(net, PHONE_B, script=[(0.1, 503)])
    caller = Caller(net)
    caller.call("1001")
    net.run(0.2)
    assert caller.statuses() == [100]  # §16.7: waits for every branch
    net.run(1.0)
    assert caller.statuses() == [100, 486]  # the lowest class wins, 4xx over 5xx
    record = switch.app.b2bua.cdr.recent[-1]
    assert [t.rsplit(":", 1)[1] for t in record.gateways_tried] == ["503", "486"]


def test_a_silent_phone_gets_480(net: VirtualNetwork) -> None:
    switch = start_switch(net, make_config("SS_SIP_TIMEOUT_INVITE = 2"))
    register_phone(switch, "1001", PHONE_A)
    phone = Vendor(net, PHONE_A, script=[])
    caller = Caller(net)
    caller.call("1001")
    net.run(5.0)
    assert len(phone.invites) >= 1
    assert caller.statuses() == [100, 480]
    assert switch.app.b2bua.cdr.recent[-1].end_reason.startswith("1001 not reachable")


def test_nat_binding_is_reached_at_the_register_source(net: VirtualNetwork) -> None:
    switch = start_switch(net, make_config())
    public = ("10.0.0.40", 40123)  # the NAT's mapping the REGISTER came from
    contact = register_phone(switch, "1001", ("192.168.1.50", 5062), received=public)
    nat = Vendor(net, public)
    caller = Caller(net)
    caller.call("1001")
    net.run(1.0)
    assert caller.statuses() == [100, 180, 200]
    [invite] = nat.invites
    assert str(invite.uri) == contact == "sip:1001@192.168.1.50:5062"
    caller.bye()
    net.run(1.0)
    assert nat.methods()[-1] == "BYE"  # in-dialog requests take the same way


def test_the_phones_own_gateway_settings_apply_to_its_leg(net: VirtualNetwork) -> None:
    # the carrier's gateway (customer) relays nothing; the phone's (phones) says media
    # proxy On: the phone's leg gets the relay's address
    switch = start_switch(net, make_config(routing=PHONES + 'media_proxy = "On"\n'))
    media = FakeMedia()
    switch.app.b2bua.media = media
    register_phone(switch, "1001", PHONE_A)
    phone = Vendor(net, PHONE_A)
    caller = Caller(net)
    invite = caller.call("1001")
    net.run(1.0)
    assert caller.statuses() == [100, 180, 200]
    [session] = media.sessions
    offer = SessionDescription.parse(phone.invites[0].body)
    audio = offer.first_audio()
    assert audio is not None and session.started is not None
    assert (offer.connection_of(audio).address, audio.port) == session.local_b
    assert phone.invites[0].body != invite.body
    assert CALLER[0] not in phone.invites[0].body.decode()


def test_a_path_becomes_the_route_set(net: VirtualNetwork) -> None:
    switch = start_switch(net, make_config())
    proxy = ("10.0.0.50", 5060)  # an edge proxy the REGISTER came through (RFC 3327)
    register_phone(switch, "1001", PHONE_A, received=proxy,
                   path=("<sip:edge@10.0.0.50;lr>",))
    edge = Vendor(net, proxy)
    Caller(net).call("1001")
    net.run(1.0)
    [invite] = edge.invites
    assert invite.headers.get_all("Route") == ["<sip:edge@10.0.0.50;lr>"]
    assert invite.uri.host == PHONE_A[0]


def test_mapping_gateway_prefixes_decide_who_may_call_a_phone(net: VirtualNetwork) -> None:
    switch = start_switch(net, make_config(mapping='prefixes = ["00"]'))
    register_phone(switch, "1001", PHONE_A)
    phone = Vendor(net, PHONE_A)
    caller = Caller(net)
    caller.call("1001")
    net.run(1.0)
    assert caller.statuses() == [100, 403] and phone.invites == []


def test_a_stalled_branch_times_out_alone(net: VirtualNetwork) -> None:
    # one contact sends 100 and nothing more (SS_SIP_TIMEOUT_TRYING); the other rings and
    # answers later: only the stalled branch is cancelled
    switch = start_switch(net, make_config("SS_SIP_TIMEOUT_TRYING = 2\n"
                                           "SS_SIP_TIMEOUT_RINGING = 60"))
    register_phone(switch, "1001", PHONE_A)
    register_phone(switch, "1001", PHONE_B)
    stalled = Vendor(net, PHONE_A, script=[(0.0, 100)])
    Vendor(net, PHONE_B, script=[(0.0, 180), (5.0, 200)])
    caller = Caller(net)
    caller.call("1001")
    net.run(8.0)
    assert caller.statuses() == [100, 180, 200]
    assert "CANCEL" in stalled.methods()


def test_cdr_schema_upgrades_an_old_store_and_names_the_phone(net: VirtualNetwork, tmp_path,
                                                                 capsys) -> None:  # type: ignore[no-untyped-def]
    from vosapp.cli import main
    from vosapp.switch.cdr import MIGRATIONS

    store = Store.open(tmp_path)
    store.ensure_schema("cdr", MIGRATIONS[:1])  # a store from before calls to phones
    switch = start_switch(net, make_config(), store)
    assert store.schema_version("cdr") == len(MIGRATIONS)  # the writer added the callee columns
    register_phone(switch, "1001", PHONE_A)
    Vendor(net, PHONE_A, script=[(0.0, 486)])
    Caller(net).call("1001")
    net.run(1.0)
    store.close()
    assert main(["cdr", "list", "--data-dir", str(tmp_path)]) == 0
    assert "1001 -> 1001 (phone 1001): 486" in capsys.readouterr().out
