"""Issue 12 on real loopback UDP: a flooding source is cut off while another source is still
answered (items 4), SS_REPLY_UNAUTHORIZED=Off answers nobody unknown (item 7), and RFC 4475
bext01 gets its 420 on the wire (item 8). 127.0.0.2-4 are other hosts on the loopback net."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from vosapp.config import parse_config
from vosapp.io.runtime import Switch
from vosapp.sip import Response, parse
from vosapp.switch.registrar import ContactRequest

RFC4475 = Path(__file__).parent.parent / "sip" / "rfc4475"


def request(host: str, port: int, branch: str, *, extra: str = "") -> bytes:
    return (f"OPTIONS sip:127.0.0.1 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {host}:{port};branch=z9hG4bK{branch};rport\r\n"
            "Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=p\r\nTo: <sip:127.0.0.1>\r\n"
            f"Call-ID: {branch}@loop\r\nCSeq: 1 OPTIONS\r\n{extra}Content-Length: 0\r\n\r\n"
            ).encode()


class Peer:
    """A UDP socket on one loopback address."""

    def __init__(self, host: str) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.setblocking(False)
        self.host, self.port = self.sock.getsockname()

    async def ask(self, switch: tuple[str, int], data: bytes, timeout: float) -> bytes | None:
        """Send ``data`` and retransmit it every 0.5 s (a UDP client's Timer E) until a
        reply comes or ``timeout`` passes: a flood may fill the kernel's receive buffer."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            await loop.sock_sendto(self.sock, data, switch)
            wait = min(0.5, deadline - loop.time())
            try:
                reply, _ = await asyncio.wait_for(loop.sock_recvfrom(self.sock, 65535), wait)
            except TimeoutError:
                continue
            return reply
        return None

    def drain(self) -> int:
        count = 0
        while True:
            try:
                self.sock.recv(65535)
            except BlockingIOError:
                return count
            count += 1

    def close(self) -> None:
        self.sock.close()


def serve(config_text: str, tmp_path: Path) -> Switch:
    return Switch(config=parse_config(config_text), host="127.0.0.1", port=0,
                  data_dir=tmp_path, transports=("UDP",))


def status(reply: bytes | None) -> int | None:
    if reply is None:
        return None
    response = parse(reply)
    assert isinstance(response, Response)
    return response.status


def test_flooding_source_is_dropped_while_another_source_is_answered(tmp_path: Path) -> None:
    # A long window so the trip does not depend on how fast this busy machine sends.
    switch = serve("[limits]\nsource_window = 30\nsource_threshold = 100\n"
                   "source_block = 60\n", tmp_path)

    async def scenario() -> None:
        await switch.start()
        flooder, user = Peer("127.0.0.1"), Peer("127.0.0.2")
        try:
            address = switch.sip_address
            loop = asyncio.get_running_loop()
            for i in range(1000):
                await loop.sock_sendto(flooder.sock, request(flooder.host, flooder.port,
                                                             f"flood{i}"), address)
                if i % 10 == 0:
                    await asyncio.sleep(0)  # let the switch read
            reply = await user.ask(address, request(user.host, user.port, "user1"), 10.0)
            assert status(reply) == 200
            await asyncio.sleep(0.5)
            answered = flooder.drain()
            assert 1 <= answered <= 100  # the first 100 at most (the kernel drops some)
            late = await flooder.ask(address, request(flooder.host, flooder.port, "late"), 1.0)
            assert late is None  # still blocked
            # Whatever the kernel let through past the first 100 was dropped unparsed.
            stats = switch.core.stats
            assert stats.flood_dropped >= 1 and stats.parse_errors == 0
            assert stats.received - stats.flood_dropped <= 101 + 1  # 100 + user1 (+ late)
            notes = [r.note or "" for r in switch.trace.records()]
            assert any(n.startswith("flood: 127.0.0.1 sent more than 100") for n in notes)
            assert status(await user.ask(address, request(user.host, user.port, "user2"),
                                         10.0)) == 200
        finally:
            flooder.close()
            user.close()
            await switch.stop()

    asyncio.run(asyncio.wait_for(scenario(), 120))


def test_reply_unauthorized_off_answers_only_gateways_and_registered_phones(
        tmp_path: Path) -> None:
    switch = serve('[parameters]\nSS_REPLY_UNAUTHORIZED = "Off"\n'
                   '[[account]]\nuser = "1001"\npassword = "pw"\n'
                   '[[mapping_gateway]]\nname = "carrier"\naddresses = ["127.0.0.3"]\n',
                   tmp_path)

    async def scenario() -> None:
        await switch.start()
        scanner, carrier, phone = Peer("127.0.0.2"), Peer("127.0.0.3"), Peer("127.0.0.4")
        try:
            address = switch.sip_address
            for name, data in [("OPTIONS", request(scanner.host, scanner.port, "scan1")),
                               ("405", request(scanner.host, scanner.port, "scan2").replace(
                                   b"OPTIONS", b"SUBSCRIBE")),
                               ("420", request(scanner.host, scanner.port, "scan3",
                                               extra="Require: foo\r\n")),
                               ("400", request(scanner.host, scanner.port, "scan4").replace(
                                   b"Content-Length: 0", b"Content-Length: x"))]:
                assert await scanner.ask(address, data, 1.0) is None, name
            assert status(await carrier.ask(
                address, request(carrier.host, carrier.port, "gw1"), 10.0)) == 200
            assert await phone.ask(address, request(phone.host, phone.port, "ph1"), 1.0) is None
            registrar = switch.app.registrar.registrar
            registrar.register("1001", [ContactRequest(f"sip:1001@127.0.0.4:{phone.port}")],
                               expires_header=600, call_id="r1", cseq=1, replace=True,
                               source=(phone.host, phone.port))
            assert status(await phone.ask(
                address, request(phone.host, phone.port, "ph2"), 10.0)) == 200
            assert switch.core.stats.stealth_dropped >= 5  # scan1-4 and ph1
        finally:
            for peer in (scanner, carrier, phone):
                peer.close()
            await switch.stop()

    asyncio.run(asyncio.wait_for(scenario(), 120))


def test_bext01_gets_420_with_unsupported_on_the_wire(tmp_path: Path) -> None:
    switch = serve("", tmp_path)

    async def scenario() -> None:
        await switch.start()
        peer = Peer("127.0.0.2")
        try:
            data = (RFC4475 / "bext01.dat").read_bytes().replace(
                b"SIP/2.0/TLS fold-and-staple.example.com;branch=z9hG4bKkdjuw",
                f"SIP/2.0/UDP 127.0.0.2:{peer.port};branch=z9hG4bKkdjuw;rport".encode())
            reply = await peer.ask(switch.sip_address, data, 10.0)
            assert reply is not None and status(reply) == 420
            response = parse(reply)
            assert response.headers.get_list("Unsupported") == [
                "nothingSupportsThis", "nothingSupportsThisEither"]
        finally:
            peer.close()
            await switch.stop()

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_runtime_measures_the_receive_delay_for_the_overload_gate(tmp_path: Path) -> None:
    # A probe datagram waits behind a blocked loop: the delay reaches the overload gate, and
    # the probes never reach the core.
    import time

    switch = serve("", tmp_path)

    async def scenario() -> None:
        await switch.start()
        try:
            await asyncio.sleep(0.5)
            asyncio.get_running_loop().call_soon(time.sleep, 3.0)  # blocks the loop 3 s
            await asyncio.sleep(0.5)
            # The probe's tick, due before this sleep's end, ran first after the stall: the
            # gate holds what it reported (smoothed, a 3 s stall is past the 0.5 s limit).
            assert switch.core.overload.receive_delay >= 0.5
            assert switch.core.stats.received == 0  # the probes are the runtime's own
        finally:
            await switch.stop()

    asyncio.run(asyncio.wait_for(scenario(), 60))
