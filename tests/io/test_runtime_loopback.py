"""The asyncio runtime on real loopback sockets (ephemeral ports)."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from tests.support import run_vosapp, serve
from vosapp.io.runtime import Switch
from vosapp.io.tcp import FramingError, split_messages
from vosapp.sip import Response, parse
from vosapp.switch.core import SwitchCore


def options(port: int, transport: str = "UDP", branch: str = "z9hG4bKlb1",
            call_id: str = "loop@test", method: str = "OPTIONS") -> bytes:
    return (f"{method} sip:127.0.0.1 SIP/2.0\r\n"
            f"Via: SIP/2.0/{transport} 127.0.0.1:{port};branch={branch};rport\r\n"
            "Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=p\r\nTo: <sip:127.0.0.1>\r\n"
            f"Call-ID: {call_id}\r\nCSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n").encode()


async def udp_exchange(address: tuple[str, int], *payloads: bytes,
                       timeout: float = 5.0) -> list[bytes]:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    try:
        for payload in payloads:
            await loop.sock_sendto(sock, payload, address)
        data, _ = await asyncio.wait_for(loop.sock_recvfrom(sock, 65535), timeout)
        return [data]
    finally:
        sock.close()


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(asyncio.wait_for(coro, 30))


def test_udp_and_tcp_options_on_one_ephemeral_port(tmp_path: Path) -> None:
    async def scenario() -> None:
        switch = Switch(host="127.0.0.1", port=0, data_dir=tmp_path, features=[])
        await switch.start()
        try:
            host, port = switch.sip_address
            assert port != 0 and switch.tcp is not None and switch.tcp.local[1] == port
            [reply] = await udp_exchange((host, port), options(1))
            response = parse(reply)
            assert isinstance(response, Response) and response.status == 200
            reader, writer = await asyncio.open_connection(host, port)
            message = options(1, "TCP", "z9hG4bKtcp")
            writer.write(b"\r\n\r\n" + message[:30])  # keep-alive, then a message in pieces
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.write(message[30:])
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            tcp_response = parse(head)
            assert tcp_response.status == 200  # type: ignore[union-attr]
            assert tcp_response.top_via.branch == "z9hG4bKtcp"
            writer.close()
        finally:
            await switch.stop()
        assert not switch.started

    run(scenario())


def test_garbage_datagrams_get_400_or_nothing_and_switch_keeps_answering() -> None:
    async def scenario() -> None:
        async with Switch(host="127.0.0.1", port=0, transports=("UDP",), features=[],
                          persist_trace=False) as switch:
            address = switch.sip_address
            loop = asyncio.get_running_loop()
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind(("127.0.0.1", 0))
            sock.setblocking(False)
            junk = [b"", b"\x00" * 100, b"INVITE\r\n\r\n", bytes(range(256)) * 10,
                    options(1).replace(b"SIP/2.0\r\n", b"SIP/9.9\r\n", 1),
                    options(1).replace(b"CSeq: 1 OPTIONS", b"CSeq: x OPTIONS"),
                    b"SIP/2.0 200 OK\r\n\r\n"]
            for payload in junk:
                await loop.sock_sendto(sock, payload, address)
            await loop.sock_sendto(sock, options(1, branch="z9hG4bKafter"), address)
            statuses = []
            while True:
                data, _ = await asyncio.wait_for(loop.sock_recvfrom(sock, 65535), 5)
                message = parse(data)
                statuses.append(message.status)  # type: ignore[union-attr]
                if message.top_via.branch == "z9hG4bKafter":
                    break
            sock.close()
            assert statuses[-1] == 200
            assert all(status in (400, 505) for status in statuses[:-1])
            assert switch.core.stats.parse_errors >= 3

    run(scenario())


def test_tcp_connection_limit_and_oversized_stream_closed() -> None:
    async def scenario() -> None:
        async with Switch(host="127.0.0.1", port=0, features=[], persist_trace=False,
                          max_tcp_connections=2, max_message_size=4096) as switch:
            host, port = switch.sip_address
            conns = [await asyncio.open_connection(host, port) for _ in range(3)]
            await asyncio.sleep(0.1)
            assert len(switch.tcp.connections) == 2  # type: ignore[union-attr]
            reader, writer = conns[0]
            writer.write(b"OPTIONS sip:x SIP/2.0\r\nX: " + b"a" * 5000)
            await writer.drain()
            assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the switch
            for _, w in conns:
                w.close()
            assert any("closed" in r.note for r in switch.trace.records(direction="event"))

    run(scenario())


def test_stop_hook_runs_before_transports_close_with_bounded_wait() -> None:
    calls: list[str] = []

    def install(core: SwitchCore) -> None:
        core.add_stop_hook(lambda: (calls.append("hook"), lambda: False)[1])

    async def scenario() -> None:
        switch = Switch(host="127.0.0.1", port=0, features=[install], persist_trace=False,
                        stop_timeout=0.2)
        await switch.start()
        await switch.stop()

    run(scenario())
    assert calls == ["hook"]


def test_split_messages_framing() -> None:
    buffer = bytearray(b"\r\n" + options(1) + options(2)[:20])
    assert len(split_messages(buffer, 65535)) == 1
    assert bytes(buffer) == options(2)[:20]
    with pytest.raises(FramingError):
        split_messages(bytearray(b"OPTIONS x SIP/2.0\r\n\r\n"), 65535)  # no Content-Length
    with pytest.raises(FramingError):
        split_messages(bytearray(b"A" * 100), 50)


def _write_config(tmp_path: Path) -> Path:
    config = tmp_path / "switch.toml"
    # vosapp.config refuses port 0 in sip_listen for now; the test overrides the port instead.
    config.write_text('[switch]\nsip_listen = "127.0.0.1:5060"\ndata_dir = "data"\n')
    return config


def test_from_config_persisted_trace_and_pcap_export(tmp_path: Path) -> None:
    config = _write_config(tmp_path)

    async def scenario() -> None:
        switch = Switch.from_config(config, port=0, features=[])
        await switch.start()
        try:
            await udp_exchange(switch.sip_address, options(1, call_id="pcap-me"))
        finally:
            await switch.stop()

    run(scenario())
    pcap = tmp_path / "out.pcap"
    result = run_vosapp("trace", "export", "--config", str(config), "--pcap", str(pcap))
    assert result.returncode == 0, result.stderr
    assert "2 SIP messages" in result.stdout
    if shutil.which("tshark") is None:
        pytest.skip("tshark not installed")
    decoded = subprocess.run(["tshark", "-r", str(pcap), "-Y", "sip", "-T", "fields",
                              "-e", "sip.Call-ID", "-e", "sip.Status-Code"],
                             check=False, capture_output=True, text=True, timeout=60)
    lines = decoded.stdout.split("\n")
    assert lines[0].startswith("pcap-me") and lines[1] == "pcap-me\t200", decoded.stdout


def test_tcp_client_transaction_reports_connect_failure() -> None:
    from vosapp.sip import Request, parse_name_addr, parse_vias
    from vosapp.sip.transaction import Terminated, TransportFailed

    async def scenario() -> list[object]:
        async with Switch(host="127.0.0.1", port=0, features=[], persist_trace=False) as switch:
            closed = socket.socket()
            closed.bind(("127.0.0.1", 0))
            port = closed.getsockname()[1]
            closed.close()  # nothing listens there: connect is refused
            events: list[object] = []
            core = switch.core
            request = Request.build(
                "OPTIONS", f"sip:127.0.0.1:{port};transport=tcp",
                via=parse_vias(core.new_via("TCP"))[0],
                from_=parse_name_addr("<sip:switch@127.0.0.1>;tag=a"),
                to=parse_name_addr(f"<sip:127.0.0.1:{port}>"))
            core.send_request(request, ("127.0.0.1", port), "TCP", events.append)
            for _ in range(200):
                if events:
                    break
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.05)
            return events

    events = run(scenario())
    assert [type(e) for e in events] == [TransportFailed, Terminated]


def test_serve_stops_cleanly_on_sigint(tmp_path: Path) -> None:
    import signal

    with serve(data_dir=tmp_path, udp_only=False) as served:
        assert served.host == "127.0.0.1"
        process = served.process
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=20)
    assert process.returncode == 0
    assert "stopped" in err


def test_tcp_response_after_connection_closed_goes_to_sent_by_port() -> None:
    def install(core: SwitchCore) -> None:
        def slow(request, txn) -> None:  # type: ignore[no-untyped-def]
            core.clock.call_later(0.3, lambda: txn.respond(core.make_response(request, 200)))
        core.add_request_handler("MESSAGE", slow)

    async def scenario() -> bytes:
        async with Switch(host="127.0.0.1", port=0, features=[install],
                          persist_trace=False) as switch:
            host, port = switch.sip_address
            received: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

            async def on_connect(reader: asyncio.StreamReader,
                                 writer: asyncio.StreamWriter) -> None:
                received.set_result(await reader.readuntil(b"\r\n\r\n"))
                writer.close()

            listener = await asyncio.start_server(on_connect, "127.0.0.1", 0)
            sent_by_port = listener.sockets[0].getsockname()[1]
            _, writer = await asyncio.open_connection(host, port)
            message = options(sent_by_port, "TCP", "z9hG4bKslow").replace(b"OPTIONS", b"MESSAGE")
            writer.write(message)
            await writer.drain()
            await asyncio.sleep(0.1)
            writer.close()  # gone before the 200 is ready
            data = await asyncio.wait_for(received, 5)
            listener.close()
            return data

    reply = parse(run(scenario()))
    assert reply.status == 200 and reply.top_via.branch == "z9hG4bKslow"  # type: ignore[union-attr]
