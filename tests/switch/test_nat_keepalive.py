"""SS_SIP_NAT_KEEP_ALIVE_PERIOD / _MESSAGE on the virtual network (registrar feature)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from vosapp.config import parse_config
from vosapp.io.virtual import VirtualEndpoint, VirtualNetwork, VirtualSwitch
from vosapp.params import Params
from vosapp.sip import Request, Response
from vosapp.sip.digest import answer, parse_challenge
from vosapp.store import Store
from vosapp.switch.registrar import Binding, behind_nat

SWITCH = ("10.0.0.1", 5060)
NATTED = ("203.0.113.7", 40001)  # the NAT's public mapping of 192.168.1.20:5060
DIRECT = ("198.51.100.9", 5060)  # Contact = source: not behind NAT
CONFIG = parse_config("""
[[account]]
user = "1001"
password = "pw1"

[[account]]
user = "1002"
password = "pw2"
""")

_branches = itertools.count()


def register(net: VirtualNetwork, phone: VirtualEndpoint, user: str, password: str,
             contact: str, expires: int = 600) -> None:
    """REGISTER with digest; asserts the 200."""
    def send(cseq: int, auth: str | None = None) -> Response:
        sent_by = contact.split("@")[1]
        lines = ["REGISTER sip:10.0.0.1 SIP/2.0",
                 f"Via: SIP/2.0/UDP {sent_by};branch=z9hG4bK{next(_branches)};rport",
                 "Max-Forwards: 70", f"From: <sip:{user}@10.0.0.1>;tag=t{user}",
                 f"To: <sip:{user}@10.0.0.1>", f"Call-ID: reg-{user}", f"CSeq: {cseq} REGISTER",
                 f"Contact: <sip:{user}@{contact.split('@')[1]}>", f"Expires: {expires}"]
        if auth:
            lines.append(auth)
        phone.clear()
        phone.send(("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode(), SWITCH)
        net.run(0.1)
        (packet,) = phone.received
        response = packet.parse()
        assert isinstance(response, Response)
        return response

    first = send(1)
    assert first.status == 401
    creds = answer(parse_challenge(first.headers.get("WWW-Authenticate")), "REGISTER",
                   "sip:10.0.0.1", user, password)
    assert send(2, f"Authorization: {creds}").status == 200
    phone.clear()


def make(tmp_path: Path, **changes: object) -> tuple[VirtualNetwork, VirtualSwitch]:
    net = VirtualNetwork()
    switch = net.add_switch(SWITCH, config=CONFIG, store=Store.open(tmp_path),
                            params=Params.defaults().replace(**changes), features=["registrar"])
    switch.start()
    return net, switch


def keepalives(phone: VirtualEndpoint) -> list[tuple[float, bytes]]:
    return [(round(p.time, 3), p.data) for p in phone.received]


def test_natted_binding_gets_hello_every_period_direct_one_nothing(tmp_path: Path) -> None:
    net, switch = make(tmp_path)
    natted = net.add_endpoint(NATTED)
    direct = net.add_endpoint(DIRECT)
    register(net, natted, "1001", "pw1", "1001@192.168.1.20:5060")
    register(net, direct, "1002", "pw2", "1002@198.51.100.9:5060")
    start = net.clock.now()
    net.run(95)
    times = [t for t, data in keepalives(natted)]
    assert [data for _, data in keepalives(natted)] == [b"HELLO"] * 3  # exactly the text
    assert all(p.transport == "UDP" for p in natted.received)
    assert times[1] - times[0] == pytest.approx(30) and times[2] - times[1] == pytest.approx(30)
    assert times[0] - start <= 30.01
    assert direct.received == []
    assert switch.app.nat_keepalive.sent == 3


def test_period_zero_sends_nothing_and_change_applies(tmp_path: Path) -> None:
    net, switch = make(tmp_path, SS_SIP_NAT_KEEP_ALIVE_PERIOD=0)
    natted = net.add_endpoint(NATTED)
    register(net, natted, "1001", "pw1", "1001@192.168.1.20:5060")
    net.run(200)
    assert natted.received == []
    # Turning it on starts the ticks; a new period applies from the next tick.
    switch.core.update_params(switch.core.params.replace(SS_SIP_NAT_KEEP_ALIVE_PERIOD=10))
    net.run(25)
    assert len(natted.received) == 2
    switch.core.update_params(switch.core.params.replace(SS_SIP_NAT_KEEP_ALIVE_PERIOD=0))
    natted.clear()
    net.run(100)
    assert natted.received == []


def test_custom_text_sent_as_is(tmp_path: Path) -> None:
    net, _ = make(tmp_path, SS_SIP_NAT_KEEP_ALIVE_MESSAGE="ping me", SS_SIP_NAT_KEEP_ALIVE_PERIOD=10)
    natted = net.add_endpoint(NATTED)
    register(net, natted, "1001", "pw1", "1001@192.168.1.20:5060")
    net.run(10.5)
    assert [p.data for p in natted.received] == [b"ping me"]


def test_options_mode_sends_a_real_options(tmp_path: Path) -> None:
    net, switch = make(tmp_path, SS_SIP_NAT_KEEP_ALIVE_MESSAGE="OPTIONS")
    natted = net.add_endpoint(NATTED)
    register(net, natted, "1001", "pw1", "1001@192.168.1.20:5060")

    def reply(packet) -> None:  # type: ignore[no-untyped-def]
        message = packet.parse()
        if isinstance(message, Request):
            natted.send(switch.core.make_response(message, 200), SWITCH)

    natted.on_receive = reply
    net.run(30.5)
    (packet,) = natted.received
    options = packet.parse()
    assert isinstance(options, Request) and options.method == "OPTIONS"
    assert str(options.uri) == "sip:1001@192.168.1.20:5060"
    assert options.top_via.branch.startswith("z9hG4bK")
    assert options.cseq.method == "OPTIONS" and options.from_.tag
    assert not [r for r in switch.trace.records() if "nat keep-alive" in (r.note or "")]


def test_unanswered_options_is_traced_and_binding_kept(tmp_path: Path) -> None:
    net, switch = make(tmp_path, SS_SIP_NAT_KEEP_ALIVE_MESSAGE="OPTIONS")
    natted = net.add_endpoint(NATTED)
    register(net, natted, "1001", "pw1", "1001@192.168.1.20:5060")
    net.run(30 + 33)  # Timer F = 64*T1 = 32 s after the first OPTIONS
    notes = [r.note for r in switch.trace.records() if "nat keep-alive" in (r.note or "")]
    assert notes and "timed out" in notes[0] and "binding kept" in notes[0]
    assert switch.app.registrar.registrar.bindings("1001")
    # One OPTIONS in flight per binding: the 60 s tick was skipped (the first one was still
    # retransmitting until ~62 s); the 90 s tick sends a new one.
    net.run(30)
    options = [p for p in natted.received if p.data.startswith(b"OPTIONS")]
    firsts = {}
    for packet in options:
        firsts.setdefault(packet.parse().top_via.branch, packet.time)
    assert sorted(round(t) for t in firsts.values()) == [30, 90]


def test_expired_binding_stops_receiving(tmp_path: Path) -> None:
    net, _ = make(tmp_path)
    natted = net.add_endpoint(NATTED)
    register(net, natted, "1001", "pw1", "1001@192.168.1.20:5060", expires=60)
    net.run(65)
    assert len(natted.received) == 2  # at ~30 s and ~60 s (binding ends at ~60.1 s)
    natted.clear()
    net.run(120)
    assert natted.received == []


def test_stop_cancels_the_tick(tmp_path: Path) -> None:
    net, switch = make(tmp_path)
    natted = net.add_endpoint(NATTED)
    register(net, natted, "1001", "pw1", "1001@192.168.1.20:5060")
    assert switch.stop()
    net.run(100)
    assert natted.received == []


@pytest.mark.parametrize(("contact", "received", "path", "expected"), [
    ("sip:a@192.0.2.1:5060", ("192.0.2.1", 5060), (), False),
    ("sip:a@192.0.2.1", ("192.0.2.1", 5060), (), False),           # absent port = 5060
    ("sips:a@192.0.2.1", ("192.0.2.1", 5061), (), False),          # sips default 5061
    ("sip:a@[::1]:5070", ("0:0::1", 5070), (), False),             # compared as addresses
    ("sip:a@192.168.1.2:5060", ("192.0.2.1", 5060), (), True),     # host differs
    ("sip:a@192.0.2.1:5060", ("192.0.2.1", 40000), (), True),      # port differs
    ("sip:a@phone.example:5060", ("192.0.2.1", 5060), (), True),   # a name is not the source
    ("sip:a@192.168.1.2", ("192.0.2.1", 5060), ("<sip:edge>",), False),  # via a proxy
])
def test_behind_nat_rule(contact: str, received: tuple[str, int], path: tuple[str, ...],
                         expected: bool) -> None:
    binding = Binding(aor="a", contact=contact, expires_at=0, call_id="c", cseq=1,
                      received_host=received[0], received_port=received[1], path=path)
    assert behind_nat(binding) is expected
