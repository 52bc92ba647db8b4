"""RFC 3261 §18.1.2: a UDP response whose top Via sent-by is not ours is discarded."""

from __future__ import annotations

from vosapp.io.virtual import VirtualNetwork
from vosapp.sip import NameAddr, Request, Response, parse_uri, parse_vias
from vosapp.sip.transaction import DeliverResponse

SWITCH = ("10.0.0.1", 5060)
PEER = ("10.0.0.2", 5060)


def response(via: str, *, branch: str = "z9hG4bKstray1", status: int = 200) -> bytes:
    return (f"SIP/2.0 {status} OK\r\nVia: SIP/2.0/UDP {via};branch={branch}\r\n"
            "From: <sip:a@10.0.0.2>;tag=1\r\nTo: <sip:b@10.0.0.1>;tag=2\r\n"
            "Call-ID: stray-1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n").encode()


def rig():  # type: ignore[no-untyped-def]
    net = VirtualNetwork()
    switch = net.add_switch(SWITCH)
    peer = net.add_endpoint(PEER)
    strays: list[Response] = []
    switch.core.add_stray_response_handler(lambda r, source, transport: strays.append(r))
    switch.start()
    return net, switch, peer, strays


def dropped_notes(switch) -> list[str]:  # type: ignore[no-untyped-def]
    return [r.note for r in switch.trace.records(direction="event") if "§18.1.2" in r.note]


def test_response_with_our_sent_by_reaches_stray_handlers() -> None:
    net, switch, peer, strays = rig()
    peer.send(response("10.0.0.1:5060"), SWITCH)
    peer.send(response("10.0.0.1"), SWITCH)  # absent port = 5060
    net.run(1)
    assert len(strays) == 2 and not dropped_notes(switch)


def test_foreign_sent_by_is_dropped_and_traced() -> None:
    net, switch, peer, strays = rig()
    peer.send(response("192.0.2.99:5060"), SWITCH)  # another host
    peer.send(response("10.0.0.1:5999"), SWITCH)  # our host, another port
    net.run(1)
    assert strays == []
    notes = dropped_notes(switch)
    assert len(notes) == 2 and "192.0.2.99:5060" in notes[0] and "dropped" in notes[0]


def test_wildcard_bind_matches_on_port() -> None:
    net, switch, peer, strays = rig()
    switch.core.local_addresses["UDP"] = ("0.0.0.0", 5060)  # bound to any address
    peer.send(response("10.0.0.1:5060"), SWITCH)
    peer.send(response("switch.example:5060"), SWITCH)
    peer.send(response("10.0.0.1:5061"), SWITCH)
    net.run(1)
    assert len(strays) == 2 and len(dropped_notes(switch)) == 1


def test_tcp_responses_are_not_checked() -> None:
    net, _switch, peer, strays = rig()
    peer.send(response("192.0.2.99:5060"), SWITCH, transport="TCP")
    net.run(1)
    assert len(strays) == 1


def test_client_transaction_gets_real_answer_not_a_forged_one() -> None:
    net, switch, peer, strays = rig()
    core = switch.core
    events: list[object] = []
    uri = parse_uri("sip:b@10.0.0.2")
    request = Request.build("OPTIONS", uri, via=parse_vias(core.new_via("UDP"))[0],
                            from_=NameAddr(parse_uri("sip:a@10.0.0.1"), params={"tag": "x"}),
                            to=NameAddr(uri))
    core.send_request(request, PEER, "UDP", listener=events.append)
    net.run(0.01)
    (packet,) = peer.received
    options = packet.parse()
    assert isinstance(options, Request)
    branch = options.top_via.branch
    # A forged answer: right branch, but a sent-by that is not the switch.
    forged = bytes(core.make_response(options, 503)).replace(b"10.0.0.1:5060", b"10.9.9.9:5060")
    peer.send(forged, SWITCH)
    net.run(0.01)
    assert not [e for e in events if isinstance(e, DeliverResponse)]
    assert dropped_notes(switch) and strays == []
    peer.send(core.make_response(options, 200), SWITCH)
    net.run(0.01)
    delivered = [e.response.status for e in events if isinstance(e, DeliverResponse)]
    assert delivered == [200] and branch
