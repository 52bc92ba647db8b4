"""Calls to registered phones on loopback against `vosapp serve`: SIPp phones register with
digest (tests/sipp/phone_register.xml), then answer as UAS on the same port; a carrier at a
trusted address (127.0.0.2) or another phone (digest) calls them. Each SIPp exits 0 only
when its scenario ran exactly; the CDR is read back with `vosapp cdr list --json`.
Phones on plain sockets check the NAT rule: a UDP phone whose Contact names another port is
reached at its REGISTER's source, a TCP phone over its REGISTER's connection."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support import cdr_rows as cdrs
from tests.support import finish_sipp as finish
from tests.support import free_port, serve, start_sipp, write_config
from vosapp.io.tcp import split_messages
from vosapp.sip import Request, Response, make_response, parse
from vosapp.sip.digest import DigestClient

pytestmark = [pytest.mark.sipp,
              pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp not installed")]

CARRIER_IP = "127.0.0.2"


#: The phones' accounts and the carrier, trusted by address.
ACCOUNTS = {"1001": "secret-1001", "1002": "secret-1002"}
GATEWAYS = f"""
[[mapping_gateway]]
name = "carrier"
addresses = ["{CARRIER_IP}"]

[[mapping_gateway]]
name = "phones"
accounts = ["1001", "1002"]
"""


@contextmanager
def switch(tmp_path: Path, *, udp_only: bool = True) -> Iterator[tuple[Path, int]]:
    config = write_config(tmp_path, {"SS_SIP_TIMEOUT_INVITE": 5}, ACCOUNTS, extra=GATEWAYS,
                          name="phones.toml")
    with serve(config, cwd=tmp_path, udp_only=udp_only) as served:
        yield config, served.port


def sipp(scenario: str, cwd: Path, port: int, *extra: str, ip: str = "127.0.0.1"
         ) -> subprocess.Popen[str]:
    """A SIPp on ``port`` (and a free media port) from ``ip``; ``extra`` its other arguments."""
    return start_sipp(scenario, cwd=cwd, local_port=port, ip=ip,
                      extra=extra)


def register(tmp_path: Path, switch_port: int, user: str, port: int, *, q: str = "1.0"
             ) -> None:
    process = sipp("phone_register.xml", tmp_path, port, f"127.0.0.1:{switch_port}",
                   "-s", user, "-au", user, "-ap", f"secret-{user}",
                   "-key", "regq", q, "-cid_str", f"phones-{user}@vosapp-test")
    finish(process, f"register {user}", tmp_path)


Phone = tuple[str, int, str]  # (UAS scenario, port, account)


def call_phones(tmp_path: Path, phones: Sequence[Phone],
                call: Callable[[], subprocess.Popen[str]]) -> None:
    """Start the phones' UAS scenarios, then ``call``; every SIPp must exit 0."""
    answering = [sipp(scenario, tmp_path, port, "-s", user) for scenario, port, user in phones]
    try:
        for _scenario, port, _user in phones:
            wait_bound(port)
        finish(call(), "caller", tmp_path)
        for process, (scenario, _port, _user) in zip(answering, phones, strict=True):
            finish(process, scenario, tmp_path)
    finally:
        for process in answering:
            if process.poll() is None:
                process.kill()
                process.wait()


def wait_bound(port: int, timeout: float = 20.0) -> None:
    """Until a SIPp UAS holds ``port``: an INVITE sent earlier would be lost, and its
    retransmission races a fork's CANCEL (SIPp aborts on a CANCEL between two sends)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                return
        time.sleep(0.05)
    raise AssertionError(f"no SIPp listening on UDP port {port}")


def carrier_calls(tmp_path: Path, switch_port: int, number: str,
                  scenario: str = "carrier_uac.xml") -> subprocess.Popen[str]:
    return sipp(scenario, tmp_path, free_port(), f"127.0.0.1:{switch_port}", "-s", number,
                ip=CARRIER_IP)


def test_carrier_calls_a_registered_phone_caller_hangs_up(tmp_path: Path) -> None:
    port = free_port()
    with switch(tmp_path) as (config, switch_port):
        register(tmp_path, switch_port, "1001", port)
        call_phones(tmp_path, [("call_uas.xml", port, "1001")],
                    lambda: carrier_calls(tmp_path, switch_port, "1001"))
        time.sleep(0.3)
        [row] = cdrs(config, tmp_path)
    assert row["status"] == 200 and row["end_reason"] == "caller hung up"
    assert row["mapping_gateway"] == "carrier" and row["account"] is None
    assert row["callee"] == "1001" and row["callee_account"] == "1001"
    assert row["callee_contact"] == f"sip:1001@127.0.0.1:{port};transport=UDP"
    assert row["routing_gateway"] is None and row["caller_codec"] == "PCMA"


def test_carrier_calls_a_registered_phone_phone_hangs_up(tmp_path: Path) -> None:
    port = free_port()
    with switch(tmp_path) as (config, switch_port):
        register(tmp_path, switch_port, "1001", port)
        call_phones(tmp_path, [("phone_uas_bye.xml", port, "1001")],
                    lambda: carrier_calls(tmp_path, switch_port, "1001",
                                          "carrier_uac_callee_bye.xml"))
        time.sleep(0.3)
        [row] = cdrs(config, tmp_path)
    assert row["status"] == 200 and row["end_reason"] == "callee hung up"


def test_phone_calls_phone_on_net_with_digest(tmp_path: Path) -> None:
    port = free_port()
    with switch(tmp_path) as (config, switch_port):
        register(tmp_path, switch_port, "1002", port)
        call_phones(tmp_path, [("call_uas.xml", port, "1002")],
                    lambda: sipp("call_uac.xml", tmp_path, free_port(),
                                 f"127.0.0.1:{switch_port}", "-s", "1002", "-au", "1001",
                                 "-ap", "secret-1001"))
        time.sleep(0.3)
        [row] = cdrs(config, tmp_path)
    assert row["status"] == 200 and row["account"] == "1001"
    assert row["mapping_gateway"] == "phones" and row["callee_account"] == "1002"


def test_two_contacts_fork_and_the_loser_gets_cancel(tmp_path: Path) -> None:
    winner, loser = free_port(), free_port()
    with switch(tmp_path) as (config, switch_port):
        register(tmp_path, switch_port, "1001", winner, q="1.0")
        register(tmp_path, switch_port, "1001", loser, q="0.5")
        call_phones(tmp_path, [("call_uas.xml", winner, "1001"),
                               ("call_uas_cancel.xml", loser, "1001")],
                    lambda: carrier_calls(tmp_path, switch_port, "1001"))
        time.sleep(0.3)
        [row] = cdrs(config, tmp_path)
    assert row["status"] == 200
    assert row["callee_contact"] == f"sip:1001@127.0.0.1:{winner};transport=UDP"
    assert row["gateways_tried"] == [
        f"1001 sip:1001@127.0.0.1:{winner};transport=UDP:200",
        f"1001 sip:1001@127.0.0.1:{loser};transport=UDP:cancelled"]


def test_an_account_without_binding_gets_480(tmp_path: Path) -> None:
    with switch(tmp_path) as (config, switch_port):
        caller = carrier_calls(tmp_path, switch_port, "1001", "carrier_uac_480.xml")
        finish(caller, "carrier 480", tmp_path)
        time.sleep(0.3)
        [row] = cdrs(config, tmp_path)
    assert row["status"] == 480 and row["end_reason"] == "1001 not registered"
    assert row["callee_account"] == "1001" and row["gateways_tried"] == []


# ------------------------------------------------------------- phones on plain sockets


class SocketPhone:
    """A phone on one socket (UDP, or one TCP connection): REGISTER with digest from that
    socket, then answers what comes on it. ``contact_port``: the port its Contact claims
    (another than the socket's: a phone behind NAT that does not know its public port)."""

    def __init__(self, switch_port: int, user: str, transport: str, *,
                 contact_port: int | None = None) -> None:
        self.user = user
        self.transport = transport
        if transport == "TCP":
            self.sock = socket.create_connection(("127.0.0.1", switch_port), timeout=20)
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.settimeout(20)
            self.sock.connect(("127.0.0.1", switch_port))
        self.local = self.sock.getsockname()
        params = ";transport=tcp" if transport == "TCP" else ""
        self.contact = f"sip:{user}@127.0.0.1:{contact_port or self.local[1]}{params}"
        self.buffer = bytearray()
        self.cseq = 0

    def send(self, message: Request | Response) -> None:
        self.sock.sendall(bytes(message))

    def receive(self) -> Request | Response:
        if self.transport == "UDP":
            return parse(self.sock.recv(65535))
        while True:
            messages = split_messages(self.buffer, 65535)
            if messages:
                self.buffer[:0] = b"".join(messages[1:])  # keep the rest for later
                return parse(messages[0])
            data = self.sock.recv(65535)
            if not data:
                raise ConnectionError("the switch closed the connection")
            self.buffer += data

    def _register(self, authorization: str | None = None) -> Response:
        host, port = self.local
        self.cseq += 1
        lines = ["REGISTER sip:127.0.0.1 SIP/2.0",
                 f"Via: SIP/2.0/{self.transport} {host}:{port};rport;branch=z9hG4bK-{self.cseq}",
                 f"From: <sip:{self.user}@127.0.0.1>;tag=socketphone",
                 f"To: <sip:{self.user}@127.0.0.1>", "Call-ID: socket-phone-reg@vosapp-test",
                 f"CSeq: {self.cseq} REGISTER", f"Contact: <{self.contact}>", "Expires: 600",
                 "Max-Forwards: 70"]
        if authorization:
            lines.append(f"Authorization: {authorization}")
        self.sock.sendall(("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode())
        response = self.receive()
        assert isinstance(response, Response)
        return response

    def register(self) -> None:
        challenge = self._register()
        assert challenge.status == 401
        credentials = DigestClient(self.user, f"secret-{self.user}").authorize(
            challenge.headers.get("WWW-Authenticate") or "", "REGISTER", "sip:127.0.0.1")
        assert self._register(str(credentials)).status == 200

    def answer_call(self) -> Request:
        """Take the INVITE on this socket, answer 200, take the ACK and the caller's BYE."""
        invite = self.receive()
        while isinstance(invite, Response) or invite.method != "INVITE":  # e.g. keep-alive
            invite = self.receive()
        ok = make_response(invite, 200, to_tag="socketphone-callee")
        ok.headers.add("Contact", f"<{self.contact}>")
        ok.headers.add("Content-Type", "application/sdp")
        ok.body = (b"v=0\r\no=phone 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
                   b"t=0 0\r\nm=audio 30000 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n")
        self.send(ok)
        ack = self.receive()
        assert isinstance(ack, Request) and ack.method == "ACK"
        bye = self.receive()
        assert isinstance(bye, Request) and bye.method == "BYE"
        self.send(make_response(bye, 200))
        return invite

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize("transport", ["UDP", "TCP"])
def test_a_phone_is_reached_at_its_register_source(tmp_path: Path, transport: str) -> None:
    """UDP: the Contact names a port nobody listens on (a NAT'd phone): the INVITE comes to
    the REGISTER's source port. TCP: over the connection the REGISTER came on."""
    with switch(tmp_path, udp_only=False) as (config, switch_port):
        phone = SocketPhone(switch_port, "1001", transport,
                            contact_port=free_port() if transport == "UDP" else None)
        try:
            phone.register()
            caller = carrier_calls(tmp_path, switch_port, "1001")
            invite = phone.answer_call()
            finish(caller, "carrier", tmp_path)
        finally:
            phone.close()
        time.sleep(0.3)
        [row] = cdrs(config, tmp_path)
    assert str(invite.uri) == phone.contact  # the Request-URI is the Contact, not the source
    assert invite.top_via.transport == transport
    assert row["status"] == 200 and row["callee_contact"] == phone.contact
