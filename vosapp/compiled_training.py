"""The training run of the profile-guided build of the compiled modules (setup.py).

setup.py builds :data:`vosapp.compiled.COMPILED_MODULES` twice on Linux with GCC: first with
``-fprofile-generate``, then runs this module (``python -m vosapp.compiled_training``) on that
build, then builds them again with ``-fprofile-use``. GCC then lays out each function's hot
paths straight, moves code never run in training out of the way and inlines where the counts
say it pays (a median 1.10 x registrations per CPU-second live, docs/benchmarks.md,
thirty-first round). Code this run does not reach is compiled as it is without a profile
(``-fprofile-partial-training``), so a path left out is not made slower than it was.

What it runs, in process, on the virtual network (no sockets, nothing outside a temporary
directory): what the switch does most, in the shapes SIPp and phones send.

- REGISTERs with digest authentication (RFC 3261 §10, RFC 7616): each user's REGISTER, its
  401, the REGISTER with credentials, its 200; and a refresh with the next nonce count;
- basic calls through the B2BUA (media proxy Off): INVITE, 100/180/200, ACK, BYE/200, from a
  mapping gateway to a routing gateway;
- requests the switch refuses: a REGISTER with a wrong password (its 403) and one that does
  not parse (its 400).

It checks that the compiled modules ran and that every exchange ended as it should; it exits
with status 1 and says why otherwise, and setup.py then builds without a profile.
"""

from __future__ import annotations

import sys
import tempfile

from vosapp import compiled
from vosapp.config import parse_config
from vosapp.io.virtual import Packet, VirtualEndpoint, VirtualNetwork
from vosapp.sip import NameAddr, Request, Response, SipUri, Via, make_response, parse
from vosapp.sip.digest import answer
from vosapp.sip.sdp import PCMA, PCMU, build_offer
from vosapp.store import Store

SWITCH = ("10.0.0.1", 5060)
PHONE = ("10.0.0.2", 5060)
CALLER = ("10.0.0.3", 5060)
VENDOR = ("10.0.0.9", 5060)

#: How much of each: enough for GCC's counts to tell hot from cold (a few seconds on the
#: instrumented build), not a benchmark.
USERS = 200
REGISTRATIONS = 3000
CALLS = 1000


def _config(users: int) -> str:
    accounts = "".join(f'\n[[account]]\nuser = "{20000 + n}"\npassword = "pw-{20000 + n}"\n'
                       for n in range(users))
    return f"""
[switch]
sip_listen = "{SWITCH[0]}:{SWITCH[1]}"
[limits]
source_threshold = 0
[[mapping_gateway]]
name = "customer"
addresses = ["{CALLER[0]}"]
media_proxy = "Off"
[[routing_gateway]]
name = "vendor"
address = "{VENDOR[0]}:{VENDOR[1]}"
prefixes = ["00"]
media_proxy = "Off"
{accounts}"""


def _register(user: str, call: int, cseq: int, authorization: str | None) -> bytes:
    """A REGISTER with the headers SIPp's registrar scenario sends (bench/registrar_sipp.xml)."""
    extra = [("Expires", "3600")]
    if authorization is not None:
        extra.append(("Authorization", authorization))
    return bytes(Request.build(
        "REGISTER", SipUri(host=SWITCH[0], port=SWITCH[1]),
        via=Via("UDP", PHONE[0], PHONE[1], {"branch": f"z9hG4bK-{call}-{cseq}", "rport": None}),
        from_=NameAddr(SipUri(user=user, host=SWITCH[0]), None, {"tag": f"{call}SIPpTag00"}),
        to=NameAddr(SipUri(user=user, host=SWITCH[0])), call_id=f"{call}-training@{PHONE[0]}",
        cseq=cseq, contact=NameAddr(SipUri(user=user, host=PHONE[0], port=PHONE[1])),
        headers=extra))


def _exchange(net: VirtualNetwork, phone: VirtualEndpoint, data: bytes) -> Response:
    """``phone`` sends ``data`` to the switch; returns the switch's final answer."""
    phone.received.clear()
    phone.send(data, SWITCH)
    net.run(0.01)
    for packet in reversed(phone.received):
        message = parse(packet.data)
        if isinstance(message, Response) and message.status >= 200:
            return message
    raise RuntimeError(f"no final answer to {data[:40]!r}")


def registrations(net: VirtualNetwork, count: int, users: int) -> None:
    phone = net.add_endpoint(PHONE)
    uri = f"sip:{SWITCH[0]}:{SWITCH[1]}"
    for n in range(count):
        user = str(20000 + n % users)
        challenge = _exchange(net, phone, _register(user, n, 1, None))
        if challenge.status != 401:
            raise RuntimeError(f"REGISTER without credentials: {challenge.status}, not 401")
        value = challenge.headers.get("WWW-Authenticate") or ""
        # every tenth registration also refreshes with the next nonce count (RFC 7616 §3.4)
        for nc, cseq in ((1, 2), (2, 3)) if n % 10 == 0 else ((1, 2),):
            credentials = answer(value, "REGISTER", uri, user, f"pw-{user}", nc=nc,
                                 cnonce=f"{n:08x}")
            done = _exchange(net, phone, _register(user, n, cseq, str(credentials)))
            if done.status != 200:
                raise RuntimeError(f"REGISTER with credentials: {done.status}, not 200")
        if n % 100 == 0:  # the answers the switch refuses with
            wrong = answer(value, "REGISTER", uri, user, "not-the-password", cnonce="0")
            refused = _exchange(net, phone, _register(user, n, 9, str(wrong)))
            if refused.status < 400:
                raise RuntimeError(f"a wrong password was taken ({refused.status})")
            phone.received.clear()
            phone.send(b"REGISTER sip:" + SWITCH[0].encode() + b" SIP/2.0\r\nVia: SIP/2.0/UDP "
                       + PHONE[0].encode() + b";branch=z9hG4bKbad\r\n\r\n", SWITCH)
            net.run(0.01)


class _Vendor:
    """A UAS: 100, 180 and 200 (with its SDP answer) to an INVITE, 200 to a BYE."""

    def __init__(self, net: VirtualNetwork) -> None:
        self.endpoint = net.add_endpoint(VENDOR)
        self.endpoint.on_receive = self._on
        self.sdp = bytes(build_offer(VENDOR[0], 30000, [PCMA]))

    def _on(self, packet: Packet) -> None:
        message = parse(packet.data)
        if not isinstance(message, Request) or message.method == "ACK":
            return
        if message.method == "INVITE":
            self.endpoint.send(make_response(message, 100), packet.source)
            for status in (180, 200):
                response = make_response(message, status, to_tag="vendor-tag")
                response.headers.add("Contact", f"<sip:vendor@{VENDOR[0]}:{VENDOR[1]}>")
                if status == 200:
                    response.headers.add("Content-Type", "application/sdp")
                    response.body = self.sdp
                self.endpoint.send(response, packet.source)
        else:
            self.endpoint.send(make_response(message, 200), packet.source)


def _caller_request(method: str, call: int, cseq: int, to_tag: str | None = None,
                    body: bytes = b"") -> bytes:
    """The caller's INVITE (with an SDP offer), ACK or BYE, in the shape of SIPp's uac."""
    return bytes(Request.build(
        method, SipUri(user="0044123", host=SWITCH[0], port=SWITCH[1]),
        via=Via("UDP", CALLER[0], CALLER[1],
                {"branch": f"z9hG4bK-c{call}-{cseq}{method}", "rport": None}),
        from_=NameAddr(SipUri(user="1001", host=CALLER[0]), "sipp", {"tag": f"{call}SIPpTag01"}),
        to=NameAddr(SipUri(user="0044123", host=SWITCH[0]), None,
                    {"tag": to_tag} if to_tag else {}),
        call_id=f"{call}-call@{CALLER[0]}", cseq=cseq,
        contact=NameAddr(SipUri(user="1001", host=CALLER[0], port=CALLER[1])),
        body=body, content_type="application/sdp" if body else None))


def calls(net: VirtualNetwork, count: int) -> None:
    _Vendor(net)
    caller = net.add_endpoint(CALLER)
    offer = bytes(build_offer(CALLER[0], 40000, [PCMA, PCMU]))
    for n in range(count):
        caller.received.clear()
        caller.send(_caller_request("INVITE", n, 1, body=offer), SWITCH)
        net.run(0.05)
        answered = [message for message in (parse(packet.data) for packet in caller.received)
                    if isinstance(message, Response) and message.status == 200]
        if not answered or not answered[0].to.tag:
            raise RuntimeError(f"call {n} was not answered")
        to_tag = answered[0].to.tag
        caller.send(_caller_request("ACK", n, 1, to_tag), SWITCH)
        net.run(0.01)
        caller.received.clear()
        caller.send(_caller_request("BYE", n, 2, to_tag), SWITCH)
        net.run(0.05)
        if not any(packet.data.startswith(b"SIP/2.0 200") for packet in caller.received):
            raise RuntimeError(f"call {n}: no 200 to its BYE")
    net.run(40.0)  # the transactions end (64*T1)


def train(registration_count: int = REGISTRATIONS, call_count: int = CALLS,
          users: int = USERS) -> None:
    with tempfile.TemporaryDirectory(prefix="vosapp-training-") as data:
        store = Store.open(data)
        try:
            net = VirtualNetwork()
            config = parse_config(_config(users))
            switch = net.add_switch(SWITCH, config=config, params=config.parameters,
                                    store=store, features=["registrar", "b2bua"])
            switch.start()
            not_compiled = sorted(name for name, ran in compiled.running_compiled().items()
                                  if not ran)
            if compiled.SOURCES_BECAUSE is not None or not_compiled:
                raise RuntimeError("the compiled modules did not load: "
                                   f"{compiled.SOURCES_BECAUSE or ', '.join(not_compiled)}")
            registrations(net, registration_count, users)
            calls(net, call_count)
            b2bua = switch.app.b2bua
            left = len(b2bua.calls) if b2bua is not None else 0
            if left:
                raise RuntimeError(f"{left} calls left up")
        finally:
            store.close()


def main() -> int:
    try:
        train()
    except Exception as exc:  # noqa: BLE001 - setup.py reads the reason and builds without
        print(f"vosapp.compiled_training: {exc!r}", file=sys.stderr)
        return 1
    print(f"vosapp.compiled_training: {REGISTRATIONS} registrations and {CALLS} calls")
    return 0


if __name__ == "__main__":
    sys.exit(main())
