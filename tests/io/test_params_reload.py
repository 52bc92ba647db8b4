"""`vosapp params set` in another process reaches a running `vosapp serve` (SPEC §1: new
sessions get the new value, sessions already open keep theirs)."""

from __future__ import annotations

import signal
import socket
import time
from pathlib import Path

from tests.support import run_vosapp, serve
from vosapp.sip import Response, parse
from vosapp.store import Store
from vosapp.trace import load_records


def register(port: int, call_id: str, cseq: int = 1) -> bytes:
    return (f"REGISTER sip:127.0.0.1 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-{call_id}-{cseq};rport\r\n"
            "Max-Forwards: 70\r\nFrom: <sip:1001@127.0.0.1>;tag=reload\r\n"
            "To: <sip:1001@127.0.0.1>\r\n"
            f"Call-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\n"
            f"Contact: <sip:1001@127.0.0.1:{port}>\r\nExpires: 300\r\n"
            "Content-Length: 0\r\n\r\n").encode()


def exchange(sock: socket.socket, switch: tuple[str, int], call_id: str,
             cseq: int = 1) -> Response:
    sock.sendto(register(sock.getsockname()[1], call_id, cseq), switch)
    while True:
        data, _ = sock.recvfrom(65535)
        message = parse(data)
        if isinstance(message, Response) and message.call_id == call_id:
            return message


def test_params_set_in_a_shell_reaches_a_running_serve(tmp_path: Path) -> None:
    data = tmp_path / "data"
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5.0)
    with sock, serve(data_dir=data, cwd=tmp_path, extra=["--no-control"]) as served:
        assert served.host == "127.0.0.1"
        switch = (served.host, served.port)

        before = exchange(sock, switch, "old-session")
        assert before.status == 401 and before.headers.get("WWW-Authenticate")

        result = run_vosapp("params", "set", "SS_SIP_AUTHENTICATION_CODE", "407",
                            "--data-dir", str(data), cwd=tmp_path)
        assert result.returncode == 0, result.stderr

        # The switch polls the store's change marker about once a second.
        deadline = time.monotonic() + 20
        attempt = 0
        while True:
            attempt += 1
            after = exchange(sock, switch, f"new-session-{attempt}")
            if after.status == 407 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert after.status == 407
        assert after.headers.get("Proxy-Authenticate")
        assert not after.headers.get("WWW-Authenticate")

        # The auth session opened before the change keeps the value it started with.
        again = exchange(sock, switch, "old-session", cseq=2)
        assert again.status == 401 and again.headers.get("WWW-Authenticate")
        served.process.send_signal(signal.SIGINT)
        _, err = served.process.communicate(timeout=20)
    assert served.process.returncode == 0, err
    with Store.open(data) as store:
        notes = [r.note for r in load_records(store) if r.direction == "event"]
    assert "parameters reloaded: SS_SIP_AUTHENTICATION_CODE 401→407" in notes, notes


def test_reload_in_process_keeps_running_values_when_the_store_holds_a_bad_one(
        tmp_path: Path) -> None:
    import asyncio

    from vosapp.io.runtime import Switch

    async def scenario() -> None:
        switch = Switch(data_dir=tmp_path, port=0, transports=("UDP",), features=[],
                        param_poll_interval=0.05)
        await switch.start()
        try:
            seen: list[dict[str, tuple[object, object]]] = []
            switch.core.add_params_listener(lambda _params, changes: seen.append(changes))
            with Store.open(tmp_path) as other:  # another process's connection
                other.set_param("SS_SIP_RESEND_INTERVAL", 200, by="cli")
                for _ in range(200):
                    if seen:
                        break
                    await asyncio.sleep(0.02)
                assert seen == [{"SS_SIP_RESEND_INTERVAL": (500, 200)}]
                assert switch.core.transactions.timers.t1 == 0.2
                assert switch.reload_params() == {}  # marker unchanged: nothing to do
                # A value this vosapp cannot use: reported, running values kept.
                with other.transaction() as db:
                    db.execute("UPDATE param_values SET value = '5' "
                               "WHERE name = 'SS_SIP_RESEND_INTERVAL'")
                    db.execute("INSERT INTO param_history (at, name, action, old, new, by) "
                               "VALUES (0, 'SS_SIP_RESEND_INTERVAL', 'set', '200', '5', 'x')")
                for _ in range(200):
                    if any("parameters not reloaded" in r.note
                           for r in switch.trace.records()):
                        break
                    await asyncio.sleep(0.02)
            notes = [r.note for r in switch.trace.records()]
            assert "parameters reloaded: SS_SIP_RESEND_INTERVAL 500→200" in notes
            assert any("parameters not reloaded" in n and "SS_SIP_RESEND_INTERVAL" in n
                       for n in notes), notes
            assert switch.core.params["SS_SIP_RESEND_INTERVAL"] == 200
        finally:
            await switch.stop()

    asyncio.run(asyncio.wait_for(scenario(), 30))
