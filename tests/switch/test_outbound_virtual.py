"""Outbound registration (docs/behaviour.md §3) on the virtual-time network against a scripted
carrier."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.switch.outbound_carrier import CARRIER, PASSWORD, SWITCH, USER, Carrier, config
from vosapp.io.virtual import VirtualNetwork, VirtualSwitch
from vosapp.sip import Request
from vosapp.sip.digest import parse_credentials
from vosapp.store import Store
from vosapp.switch import outbound
from vosapp.switch.outbound import read_status, refresh_delay


def start(net: VirtualNetwork, cfg=None, *, store: Store | None = None,  # type: ignore[no-untyped-def]
          address: tuple[str, int] = SWITCH) -> VirtualSwitch:
    cfg = cfg if cfg is not None else config()
    switch = net.add_switch(address, config=cfg, params=cfg.parameters, store=store,
                            features=["outbound"])
    switch.start()
    return switch


def state(switch: VirtualSwitch, gateway: str = "carrier") -> outbound.UpstreamStatus:
    return next(s for s in switch.app.outbound.status() if s.gateway == gateway)


def events(switch: VirtualSwitch) -> list[str]:
    return [r.note for r in switch.trace.records(direction="event")]


# ---------------------------------------------------------------------------- register


@pytest.mark.parametrize("code, header", [(401, "Authorization"), (407, "Proxy-Authorization")])
def test_challenge_answered_with_the_right_header(net: VirtualNetwork, code: int,
                                                  header: str) -> None:
    carrier = Carrier(net, code=code)
    switch = start(net)
    net.run(1.0)
    first, second = (s.request for s in carrier.registers())
    assert header not in first.headers
    credentials = parse_credentials(second.headers.get(header))
    other = "Proxy-Authorization" if code == 401 else "Authorization"
    assert other not in second.headers
    assert credentials.username == USER and credentials.uri == str(second.uri)
    # §10.2.4: same Call-ID and From tag, CSeq + 1
    assert second.call_id == first.call_id and second.from_.tag == first.from_.tag
    assert (first.cseq.number, second.cseq.number) == (1, 2)
    status = state(switch)
    assert status.state == "registered" and status.granted_expires == 300
    assert status.last_response == "200 OK" and status.last_error is None
    assert any("registered at 10.0.0.9:5060 for 300 s" in e for e in events(switch))


def test_request_shape_uri_aor_contact(net: VirtualNetwork) -> None:
    Carrier(net)
    carrier_requests = net.nodes[CARRIER]
    start(net)
    net.run(1.0)
    request = carrier_requests.received[0].parse()
    assert isinstance(request, Request)
    assert str(request.uri) == "sip:10.0.0.9"  # §10.2: the registrar's domain
    assert str(request.to.uri) == f"sip:{USER}@10.0.0.9" == str(request.from_.uri)
    [contact] = request.contacts
    assert (contact.uri.user, contact.uri.host, contact.uri.port) == (USER, *SWITCH)
    assert contact.params["+sip.instance"].startswith('"<urn:uuid:')
    assert request.top_via.host == SWITCH[0] and "rport" in request.top_via.params
    assert "Privacy" not in request.headers  # SS_SIP_USER_AGENT_PRIVACY=Ignore


def test_host_name_and_signaling_port_go_into_the_contact(net: VirtualNetwork) -> None:
    carrier = Carrier(net)
    switch = start(net, config(register_extra='host_name = "sbc.example.net"\n'
                                              "signaling_port = 5070"))
    net.run(1.0)
    contact = carrier.registers()[0].request.contacts[0]
    assert (contact.uri.host, contact.uri.port) == ("sbc.example.net", 5070)
    assert state(switch).state == "registered"  # the 200 lists that contact: matched
    assert any("advertises port 5070" in e for e in events(switch))


def test_two_instances_on_one_account_have_different_contacts(net: VirtualNetwork,
                                                              tmp_path: Path) -> None:
    carrier = Carrier(net)
    store_a, store_b = Store.open(tmp_path / "a"), Store.open(tmp_path / "b")
    start(net, store=store_a)
    start(net, config(), store=store_b, address=("10.0.0.2", 5060))
    net.run(1.0)
    contacts = {str(s.request.contacts[0]) for s in carrier.registers()
                if s.request.headers.get("Authorization")}
    assert len(contacts) == 2
    instances = {s.request.contacts[0].params["+sip.instance"] for s in carrier.registers()}
    assert len(instances) == 2
    # The instance UUID belongs to the data directory: the same after a restart.
    again = VirtualNetwork()
    Carrier(again)
    restarted = start(again, store=Store.open(tmp_path / "a"))
    again.run(1.0)
    first_a = next(s for s in carrier.registers() if s.request.top_via.host == SWITCH[0])
    assert str(restarted.app.outbound.status()[0].contact).split(";+sip.instance=")[1] == \
        first_a.request.contacts[0].params["+sip.instance"]


@pytest.mark.parametrize("privacy, header", [("Ignore", None), ("Id", "id"), ("None", "none")])
def test_privacy_header(net: VirtualNetwork, privacy: str, header: str | None) -> None:
    carrier = Carrier(net)
    start(net, config(parameters=f'SS_SIP_USER_AGENT_PRIVACY = "{privacy}"'))
    net.run(1.0)
    assert all(s.request.headers.get("Privacy") == header for s in carrier.registers())
    assert len(carrier.registers()) == 2


# ---------------------------------------------------------------------------- expiry


def test_auto_sends_no_expires_and_takes_the_grant(net: VirtualNetwork) -> None:
    carrier = Carrier(net, default_expires=300)
    switch = start(net)  # SS_SIP_USER_AGENT_EXPIRE = Auto (default)
    net.run(1.0)
    assert all(s.expires is None and "expires" not in s.request.contacts[0].params
               for s in carrier.registers())  # RFC 3261 §10.2.1.1: the server chooses
    assert state(switch).granted_expires == 300


def test_fixed_expiry_is_requested(net: VirtualNetwork) -> None:
    carrier = Carrier(net)
    switch = start(net, config(parameters="SS_SIP_USER_AGENT_EXPIRE = 120"))
    net.run(1.0)
    assert [s.expires for s in carrier.registers()] == ["120", "120"]
    assert state(switch).granted_expires == 120


def test_gateway_auto_negotiation_overrides_the_fixed_parameter(net: VirtualNetwork) -> None:
    carrier = Carrier(net, default_expires=900)
    switch = start(net, config(parameters="SS_SIP_USER_AGENT_EXPIRE = 120",
                               register_extra='register_period = "Auto negotiation"'))
    net.run(1.0)
    assert [s.expires for s in carrier.registers()] == [None, None]
    assert state(switch).granted_expires == 900


def test_shorter_grant_than_asked_is_obeyed(net: VirtualNetwork) -> None:
    carrier = Carrier(net, max_expires=90)
    switch = start(net, config(parameters="SS_SIP_USER_AGENT_EXPIRE = 3600"))
    net.run(1.0)
    assert state(switch).granted_expires == 90
    net.run(refresh_delay(90) + 0.5)
    assert len(carrier.registers()) >= 3  # refreshed on the 90 s grant, not the 3600 asked


def test_refresh_timing_same_call_id_increasing_cseq(net: VirtualNetwork) -> None:
    carrier = Carrier(net)
    switch = start(net, config(parameters="SS_SIP_USER_AGENT_EXPIRE = 600"))
    net.run(1.0)
    registered_at = carrier.times()[1]
    assert refresh_delay(600) == 560  # 600 - (64*T1 + 8 s)
    net.run(559.0 - net.clock.now() + registered_at)
    assert len(carrier.registers()) == 2
    status = state(switch)
    assert status.next_action == "refresh"
    assert status.next_action_at == pytest.approx(net.clock.wall() + 1.0, abs=0.1)
    net.run(2.0)
    refreshes = carrier.registers()[2:]
    assert refreshes and refreshes[0].time == pytest.approx(registered_at + 560, abs=0.01)
    requests = [s.request for s in carrier.registers()]
    assert len({r.call_id for r in requests}) == 1
    assert len({r.from_.tag for r in requests}) == 1
    assert [r.cseq.number for r in requests] == list(range(1, len(requests) + 1))
    # the refresh carries credentials up front (nc 2 on the cached nonce, RFC 3261 §22.3);
    # the nonce is older than the carrier's 300 s lifetime, so it answers stale=true and the
    # switch answers that challenge too.
    assert refreshes[0].request.headers.get("Authorization")
    net.run(5.0)
    assert state(switch).state == "registered"
    assert len(carrier.registers()) == 4


def test_short_grants_refresh_half_way(net: VirtualNetwork) -> None:
    assert refresh_delay(60) == 30 and refresh_delay(20) == 10 and refresh_delay(3600) == 3560
    assert refresh_delay(1) == outbound.MIN_REFRESH_DELAY  # never a tight loop


def test_423_min_expires_is_obeyed(net: VirtualNetwork) -> None:
    carrier = Carrier(net)
    carrier.script.append(lambda r: carrier.respond(r, 423, Min_Expires="1800"))
    switch = start(net, config(parameters="SS_SIP_USER_AGENT_EXPIRE = 60"))
    net.run(1.0)
    assert [s.expires for s in carrier.registers()] == ["60", "1800", "1800"]
    assert state(switch).granted_expires == 1800
    net.run(refresh_delay(1800) + 1)
    assert carrier.registers()[3].expires == "1800"  # keeps asking at least Min-Expires


def test_423_without_usable_min_expires_fails_and_retries_later(net: VirtualNetwork) -> None:
    carrier = Carrier(net)
    carrier.script += [lambda r: carrier.respond(r, 423), lambda r: carrier.respond(r, 423)]
    switch = start(net, config(parameters="SS_SIP_USER_AGENT_EXPIRE = 60"))
    net.run(1.0)
    assert state(switch).state == "failed" and "423" in state(switch).last_error
    net.run(59.0)
    assert len(carrier.registers()) == 1
    net.run(2.0)
    assert len(carrier.registers()) == 2


# ---------------------------------------------------------------------------- failures


@pytest.mark.parametrize("delay", [60, 30])
def test_403_fails_and_retries_after_the_retry_delay(net: VirtualNetwork, delay: int) -> None:
    carrier = Carrier(net)
    carrier.script.append(lambda r: carrier.respond(r, 403))
    switch = start(net, config(parameters=f"SS_SIP_USER_AGENT_RETRY_DELAY = {delay}"))
    net.run(1.0)
    status = state(switch)
    assert status.state == "failed" and status.granted_expires is None
    assert status.last_error == "rejected: 403 Forbidden" and status.next_action == "retry"
    net.run(delay - 1.5)
    assert len(carrier.registers()) == 1
    net.run(1.0)
    assert carrier.times()[1] == pytest.approx(delay, abs=0.01)
    net.run(1.0)
    assert state(switch).state == "registered" and state(switch).last_error is None


def test_wrong_password_is_not_a_tight_loop(net: VirtualNetwork) -> None:
    carrier = Carrier(net, password="not-what-the-switch-has")
    switch = start(net)
    net.run(600.0)
    # one challenge answered per attempt, then "rejected" and SS_SIP_USER_AGENT_RETRY_DELAY
    attempts = [s for s in carrier.registers() if "Authorization" not in s.request.headers]
    assert len(carrier.registers()) <= 2 * (600 // 60 + 1)
    assert len(attempts) >= 1
    assert state(switch).state == "failed"
    assert "403" in (state(switch).last_response or "")


def test_repeated_challenge_is_rejected_credentials(net: VirtualNetwork) -> None:
    carrier = Carrier(net)
    carrier.script += [carrier.challenge, carrier.challenge]
    switch = start(net)
    net.run(1.0)
    assert len(carrier.registers()) == 2
    assert "credentials" in state(switch).last_error and state(switch).state == "failed"


@pytest.mark.parametrize("status, retry_after, expected", [
    (503, "300", 300), (500, "120 (maintenance);duration=60", 120), (503, None, 60),
    (500, "5", 60),  # shorter than the retry delay: the retry delay wins
    (503, "999999", outbound.MAX_RETRY_AFTER),
])
def test_5xx_retry_after_backs_off(net: VirtualNetwork, status: int, retry_after: str | None,
                                   expected: int) -> None:
    carrier = Carrier(net)
    extra = {"Retry_After": retry_after} if retry_after else {}
    carrier.script.append(lambda r: carrier.respond(r, status, **extra))
    switch = start(net)
    net.run(1.0)
    assert state(switch).state == "failed" and str(status) in state(switch).last_error
    net.run(expected - 1.5)
    assert len(carrier.registers()) == 1
    net.run(1.0)
    assert carrier.times()[1] == pytest.approx(expected, abs=0.01)


@pytest.mark.parametrize("reply", [None, b"\x00\xffgarbage\r\n\r\n", b"SIP/2.0 200\r\n\r\n"])
def test_no_answer_or_garbage_times_out_then_retries(net: VirtualNetwork,
                                                     reply: bytes | None) -> None:
    carrier = Carrier(net)
    carrier.script.append(lambda r: reply)
    switch = start(net)
    net.run(31.0)
    assert state(switch).state == "registering"
    net.run(2.0)  # Timer F = 64*T1 = 32 s
    status = state(switch)
    assert status.state == "failed" and "no answer" in status.last_error
    assert status.next_action == "retry"
    net.run(58.9)
    assert len(carrier.registers()) == 1
    net.run(1.0)
    assert carrier.times()[1] == pytest.approx(92.0, abs=0.1)
    assert state(switch).state == "registered"


def test_dead_carrier_costs_one_attempt_per_timeout_plus_delay(net: VirtualNetwork) -> None:
    carrier = Carrier(net)
    carrier.script += [lambda r: None] * 100
    start(net)
    net.run(3600.0)
    # each attempt: Timer F (32 s) + SS_SIP_USER_AGENT_RETRY_DELAY (60 s)
    assert len(carrier.registers()) == 3600 // 92 + 1


def test_failed_refresh_clears_the_binding_and_retries(net: VirtualNetwork) -> None:
    carrier = Carrier(net)
    switch = start(net, config(parameters="SS_SIP_USER_AGENT_EXPIRE = 60"))
    net.run(1.0)
    carrier.script.append(lambda r: carrier.respond(r, 403))
    net.run(30.0)
    assert state(switch).state == "failed" and state(switch).expires_at is None
    net.run(61.0)
    assert state(switch).state == "registered"


# ---------------------------------------------------------------------------- unregister


def test_unregister_on_stop_with_auth(net: VirtualNetwork) -> None:
    carrier = Carrier(net, challenge_unregister=True)
    switch = start(net)
    net.run(1.0)
    registered = carrier.registers()[-1].request
    assert switch.stop(timeout=5.0)
    unregisters = [s.request for s in carrier.registers() if s.expires == "0"]
    assert len(unregisters) == 2  # challenged once, answered
    for request in unregisters:
        assert request.call_id == registered.call_id
        assert request.from_.tag == registered.from_.tag
        assert request.contacts[0].uri == registered.contacts[0].uri
        assert request.contacts[0].params["expires"] == "0"
    assert unregisters[1].cseq.number > unregisters[0].cseq.number > registered.cseq.number
    credentials = parse_credentials(unregisters[1].headers.get("Authorization"))
    assert credentials.username == USER and credentials.uri == str(unregisters[1].uri)
    status = state(switch)
    assert status.state == "unregistered" and status.granted_expires is None
    assert any("unregistered (200 OK)" in e for e in events(switch))


def test_unregister_with_407(net: VirtualNetwork) -> None:
    carrier = Carrier(net, code=407, challenge_unregister=True)
    switch = start(net)
    net.run(1.0)
    assert switch.stop()
    last = carrier.registers()[-1].request
    assert last.headers.get("Expires") == "0" and last.headers.get("Proxy-Authorization")
    assert state(switch).state == "unregistered"


def test_unregister_off_sends_nothing(net: VirtualNetwork) -> None:
    carrier = Carrier(net)
    switch = start(net, config(parameters='SS_SIP_USER_AGENT_SEND_UNREGISTER = "Off"'))
    net.run(1.0)
    before = len(carrier.registers())
    assert switch.stop()
    net.run(40.0)
    assert len(carrier.registers()) == before
    assert state(switch).state == "stopped"
    assert any("not sent (SS_SIP_USER_AGENT_SEND_UNREGISTER=Off); the carrier keeps the "
               "binding for up to 300 s" in e for e in events(switch))


def test_unregister_to_every_upstream_in_parallel_bounded(net: VirtualNetwork) -> None:
    Carrier(net)
    silent = Carrier(net, address=("10.0.0.8", 5060))
    gateways = "".join(f"""
[[routing_gateway]]
name = "{name}"
address = "{host}:5060"
[routing_gateway.register]
sip_proxy = "{host}:5060"
auth_user = "{USER}"
password = "{PASSWORD}"
""" for name, host in (("alpha", "10.0.0.9"), ("beta", "10.0.0.8")))
    switch = start(net, config(gateways=gateways))
    net.run(1.0)
    assert {s.state for s in switch.app.outbound.status()} == {"registered"}
    silent.script += [lambda r: None] * 10
    began = net.clock.now()
    assert switch.stop(timeout=10.0)
    assert net.clock.now() - began == pytest.approx(outbound.UNREGISTER_WAIT, abs=0.05)
    assert state(switch, "alpha").state == "unregistered"
    beta = state(switch, "beta")
    assert beta.state == "stopped" and "unanswered" in beta.last_error
    notes = events(switch)
    assert any("alpha: unregistered (200 OK)" in e for e in notes)
    assert any("beta: unregister unanswered after 4 s" in e for e in notes)


def test_unregister_waits_for_the_register_in_flight(net: VirtualNetwork) -> None:
    carrier = Carrier(net)
    switch = start(net, config(parameters="SS_SIP_USER_AGENT_EXPIRE = 60"))
    net.run(1.0)
    carrier.net.latency = 0.5  # the refresh is in flight when the stop begins
    net.run(30.0 - net.clock.now() + carrier.times()[-1] + 0.1)
    assert state(switch).state == "refreshing"
    assert switch.stop(timeout=5.0)
    expires = [s.expires for s in carrier.registers()]
    assert expires[-1] == "0" and expires.count("0") == 1
    assert state(switch).state == "unregistered"


def test_never_registered_sends_no_unregister(net: VirtualNetwork) -> None:
    carrier = Carrier(net)
    carrier.script.append(lambda r: carrier.respond(r, 403))
    switch = start(net)
    net.run(1.0)
    assert switch.stop()
    assert len(carrier.registers()) == 1
    assert any("no unregister needed" in e for e in events(switch))


# ---------------------------------------------------------------------------- status


def test_status_rows_in_the_store(net: VirtualNetwork, tmp_path: Path) -> None:
    Carrier(net)
    store = Store.open(tmp_path)
    switch = start(net, store=store)
    net.run(1.0)
    [row] = read_status(store)
    assert row.state == "registered" and row.granted_expires == 300
    assert row.proxy == "10.0.0.9:5060" and row.aor == f"sip:{USER}@10.0.0.9"
    assert row.expires_at == pytest.approx(net.clock.wall() + 299, abs=1)
    assert row.next_action == "refresh" and row.call_id == state(switch).call_id
    switch.stop()
    assert read_status(store)[0].state == "unregistered"
    # a later run whose config has no such gateway drops the old row
    later = VirtualNetwork()
    start(later, config(gateways=""), store=store)
    assert read_status(store) == []


def test_no_gateway_with_register_means_no_feature_work(net: VirtualNetwork) -> None:
    switch = start(net, config(gateways='[[routing_gateway]]\nname = "x"\n'
                                        'address = "10.0.0.9:5060"\n'))
    net.run(1.0)
    assert switch.app.outbound.status() == [] and switch.stop()
    assert net.dropped == [] and net.nodes.get(CARRIER) is None


def test_start_after_stop_registers_again(net: VirtualNetwork) -> None:
    carrier = Carrier(net)
    switch = start(net)
    net.run(1.0)
    first_call_id = state(switch).call_id
    assert switch.stop() and state(switch).state == "unregistered"
    switch.start()  # a restart in the same process (notebook): a new registration cycle
    net.run(1.0)
    assert state(switch).state == "registered" and state(switch).call_id != first_call_id
    # 2 to register, 1 unregister (cached credentials still good), 2 to register again
    assert state(switch).cseq == 2 and len(carrier.registers()) == 5


def test_challenge_after_423_is_answered_again(net: VirtualNetwork) -> None:
    carrier = Carrier(net)
    carrier.script += [carrier.challenge, lambda r: carrier.respond(r, 423, Min_Expires="900"),
                       carrier.challenge]
    switch = start(net, config(parameters="SS_SIP_USER_AGENT_EXPIRE = 60"))
    net.run(1.0)
    assert [s.expires for s in carrier.registers()] == ["60", "60", "900", "900"]
    assert state(switch).state == "registered" and state(switch).granted_expires == 900


@pytest.mark.parametrize("headers, granted", [
    ({"Contact": "<sip:someone-else@192.0.2.7>;expires=30", "Expires": "240"}, 240),
    ({"Contact": "<<<not a contact", "Expires": "180"}, 180),
    ({}, 120),  # states nothing: what was asked (fixed 120), with a warning in the trace
])
def test_200_with_odd_expiry_information(net: VirtualNetwork, headers: dict[str, str],
                                         granted: int) -> None:
    carrier = Carrier(net)
    carrier.script += [carrier.challenge, lambda r: carrier.respond(r, 200, **headers)]
    switch = start(net, config(parameters="SS_SIP_USER_AGENT_EXPIRE = 120"))
    net.run(1.0)
    assert state(switch).state == "registered" and state(switch).granted_expires == granted


def test_redirect_is_a_failure_not_followed(net: VirtualNetwork) -> None:
    carrier = Carrier(net)
    carrier.script.append(lambda r: carrier.respond(r, 302, Contact="<sip:10.0.0.7>"))
    switch = start(net)
    net.run(1.0)
    assert state(switch).state == "failed" and "302" in state(switch).last_error
    assert net.nodes.get(("10.0.0.7", 5060)) is None and len(carrier.registers()) == 1
