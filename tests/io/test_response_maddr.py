"""Issue 12 item 1: a Via ``maddr`` never redirects a UDP response and is never resolved.

The rule (docs/security.md): responses go to the packet's source IP -- with ``rport`` to its
source port (RFC 3581 §4), without it to the sent-by port (RFC 3261 §18.2.2). ``maddr`` is
ignored: a host name there made the switch resolve DNS inside its event loop (one OPTIONS
froze every other request), an IP there aimed the 200 at a third address (reflection).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import threading

from vosapp.io.runtime import Switch
from vosapp.sip import Request, Response, parse
from vosapp.sip.transaction import TransportFailed


def options(sent_by_port: int, via_params: str, call_id: str) -> bytes:
    return (f"OPTIONS sip:127.0.0.1 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{sent_by_port};branch=z9hG4bK{call_id}{via_params}\r\n"
            "Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=p\r\nTo: <sip:127.0.0.1>\r\n"
            f"Call-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").encode()


async def answer(sock: socket.socket, timeout: float) -> Response | None:
    loop = asyncio.get_running_loop()
    try:
        data, _ = await asyncio.wait_for(loop.sock_recvfrom(sock, 65535), timeout)
    except TimeoutError:
        return None
    response = parse(data)
    assert isinstance(response, Response)
    return response


def udp_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    return sock


def test_maddr_host_name_is_never_resolved_and_other_requests_are_answered() -> None:
    destinations: list[tuple[str, int]] = []

    async def scenario() -> None:
        async with Switch(host="127.0.0.1", port=0, transports=("UDP",), features=[],
                          persist_trace=False) as switch:
            real_sender = switch.core._sender

            def sender(data: bytes, destination: tuple[str, int], transport: str) -> None:
                destinations.append(destination)
                # A host name here would reach socket.sendto, which resolves it with a
                # blocking getaddrinfo() on the event loop: record it, never send it.
                ipaddress.ip_address(destination[0])
                real_sender(data, destination, transport)

            switch.core._sender = sender
            loop = asyncio.get_running_loop()
            poisoned, normal = udp_socket(), udp_socket()
            try:
                for via, call_id in ((";rport;maddr=stall.vosapp.test", "p1"),
                                     (";maddr=stall.vosapp.test", "p2")):
                    await loop.sock_sendto(poisoned, options(poisoned.getsockname()[1], via,
                                                             call_id), switch.sip_address)
                await loop.sock_sendto(normal, options(normal.getsockname()[1], ";rport", "n"),
                                       switch.sip_address)
                reply = await answer(normal, 10)
                assert reply is not None and reply.status == 200
                # Both poisoned requests were answered at their source, not at the maddr.
                for _ in range(2):
                    reply = await answer(poisoned, 10)
                    assert reply is not None and reply.status == 200
            finally:
                poisoned.close()
                normal.close()

    asyncio.run(asyncio.wait_for(scenario(), 30))
    assert destinations and all(host == "127.0.0.1" for host, _ in destinations)


def test_maddr_ip_does_not_reflect_the_response_to_a_third_address() -> None:
    async def scenario() -> None:
        async with Switch(host="127.0.0.1", port=0, transports=("UDP",), features=[],
                          persist_trace=False) as switch:
            loop = asyncio.get_running_loop()
            third = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            third.bind(("127.0.0.7", 0))
            third.setblocking(False)
            client = udp_socket()
            try:
                third_port = third.getsockname()[1]
                # sent-by names the third party's port, maddr its address: with rport the
                # answer still goes to the source address and port (RFC 3581 §4).
                await loop.sock_sendto(client, options(third_port, ";rport;maddr=127.0.0.7",
                                                       "r1"), switch.sip_address)
                reply = await answer(client, 10)
                assert reply is not None and reply.status == 200
                assert reply.top_via.params.get("rport") == str(client.getsockname()[1])
                assert await answer(third, 0.5) is None
            finally:
                third.close()
                client.close()

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_a_configured_host_name_is_resolved_off_the_event_loop(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Requests to a gateway or proxy configured by name: the name is resolved in a worker
    thread (once, then cached), never by a blocking call on the loop, and a name that does not
    resolve fails its transactions instead of stalling the switch."""
    resolver_threads: list[int] = []
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):  # type: ignore[no-untyped-def]
        resolver_threads.append(threading.get_ident())
        if host == "nowhere.vosapp.test":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real_getaddrinfo("127.0.0.1" if host == "gateway.vosapp.test" else host,
                                *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    failed: list[tuple[tuple[str, int], str]] = []

    async def scenario() -> None:
        async with Switch(host="127.0.0.1", port=0, transports=("UDP",), features=[],
                          persist_trace=False) as switch:
            gateway = udp_socket()
            try:
                port = gateway.getsockname()[1]
                for payload in (b"one", b"two"):
                    switch._send(payload, ("gateway.vosapp.test", port), "UDP")
                # A request to a name that does not resolve: its client transaction fails
                # (RFC 3261 §17.1.2.2 transport error) instead of waiting for Timer F.
                lost = parse(
                    b"OPTIONS sip:nowhere.vosapp.test SIP/2.0\r\n"
                    b"Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKlost\r\n"
                    b"Max-Forwards: 70\r\nFrom: <sip:vosapp@127.0.0.1>;tag=f\r\n"
                    b"To: <sip:nowhere.vosapp.test>\r\nCall-ID: lost\r\n"
                    b"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
                assert isinstance(lost, Request)
                destination = ("nowhere.vosapp.test", port)
                switch.core.send_request(
                    lost, destination, "UDP",
                    lambda event: failed.append((destination, event.reason))
                    if isinstance(event, TransportFailed) else None)
                loop = asyncio.get_running_loop()
                received = [(await asyncio.wait_for(loop.sock_recvfrom(gateway, 100), 10))[0]
                            for _ in range(2)]
                assert received == [b"one", b"two"]
                switch._send(b"three", ("gateway.vosapp.test", port), "UDP")  # cached
                data, _ = await asyncio.wait_for(loop.sock_recvfrom(gateway, 100), 10)
                assert data == b"three"
                for _ in range(1000):
                    if failed:
                        break
                    await asyncio.sleep(0.01)
            finally:
                gateway.close()

    asyncio.run(asyncio.wait_for(scenario(), 30))
    assert len(resolver_threads) == 2  # gateway once (then cached), nowhere once
    assert threading.get_ident() not in resolver_threads  # never on the loop's thread
    [(destination, reason)] = failed
    assert destination[0] == "nowhere.vosapp.test" and "cannot resolve" in reason
