"""Lab phones and the lab carrier registrar on real loopback sockets against a real Switch."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest

from vosapp.io.runtime import Switch
from vosapp.lab.phones import CarrierRegistrar, LabPhone, LabRegistrar, PhoneError
from vosapp.sip import Response
from vosapp.sip.digest import DigestClient, parse_challenge

ROOT = Path(__file__).resolve().parents[2]
LAB_CONFIG = ROOT / "data" / "lab.toml"


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 30))


async def lab_switch(tmp_path: Path, **params: object) -> Switch:
    switch = Switch.from_config(LAB_CONFIG, data_dir=tmp_path / "data", port=0,
                                transports=("UDP",))
    if params:
        switch.core.params = switch.core.params.replace(**params)
    await switch.start()
    return switch


def test_register_with_right_password_gets_200_and_a_binding(tmp_path: Path) -> None:
    async def scenario() -> None:
        switch = await lab_switch(tmp_path)
        try:
            async with LabPhone("1001", "lab-1001-secret", switch.sip_address) as phone:
                response = await phone.register(expires=300)
                assert response is not None and response.status == 200
                assert [r.status for r in phone.responses] == [401, 200]
                bindings = switch.app.registrar.registrar.bindings("1001")
                assert len(bindings) == 1
                assert bindings[0].received_port == phone.address[1]
                gone = await phone.unregister()
                assert gone is not None and gone.status == 200
                assert switch.app.registrar.registrar.bindings("1001") == []
        finally:
            await switch.stop()

    run(scenario())


def test_wrong_password_is_rechallenged_and_401_returned(tmp_path: Path) -> None:
    async def scenario() -> None:
        switch = await lab_switch(tmp_path)
        try:
            async with LabPhone("1001", "not-the-password", switch.sip_address) as phone:
                response = await phone.register()
                assert response is not None and response.status == 401
                assert phone.status_counts() == {401: 2}
                assert switch.app.registrar.registrar.bindings("1001") == []
        finally:
            await switch.stop()

    run(scenario())


def test_407_when_the_switch_challenges_with_proxy_authenticate(tmp_path: Path) -> None:
    async def scenario() -> None:
        switch = await lab_switch(tmp_path, SS_SIP_AUTHENTICATION_CODE=407)
        try:
            async with LabPhone("1002", "lab-1002-secret", switch.sip_address) as phone:
                response = await phone.register()
                assert response is not None and response.status == 200
                assert phone.responses[0].status == 407
                assert phone.responses[0].headers.get("Proxy-Authenticate")
        finally:
            await switch.stop()

    run(scenario())


def test_reply_unauthorized_off_is_silence_none_after_retransmissions(tmp_path: Path) -> None:
    async def scenario() -> None:
        switch = await lab_switch(tmp_path, SS_REPLY_UNAUTHORIZED=False)
        try:
            async with LabPhone("1001", "lab-1001-secret", switch.sip_address,
                                timeout=1.2, t1=0.2) as phone:
                assert await phone.register() is None
                assert phone.responses == []
                assert phone.sent >= 3  # Timer E retransmissions: 0, 0.2, 0.6 s ...
        finally:
            await switch.stop()

    run(scenario())


def test_phone_answers_options_and_keeps_non_sip_keepalives() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        async with LabPhone("1001", "x", ("127.0.0.1", 9)) as phone:
            received: asyncio.Future[bytes] = loop.create_future()

            class Probe(asyncio.DatagramProtocol):
                def datagram_received(self, data: bytes, addr: Any) -> None:
                    if not received.done():
                        received.set_result(data)

            transport, _ = await loop.create_datagram_endpoint(
                Probe, local_addr=("127.0.0.1", 0))
            port = transport.get_extra_info("sockname")[1]
            transport.sendto(
                (f"OPTIONS sip:1001@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};"
                 "branch=z9hG4bKp1\r\nFrom: <sip:s@127.0.0.1>;tag=1\r\nTo: <sip:1001@127.0.0.1>"
                 "\r\nCall-ID: k1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
                 "Content-Length: 0\r\n\r\n").encode(), phone.address)
            transport.sendto(b"HELLO", phone.address)
            reply = await asyncio.wait_for(received, 5)
            assert reply.startswith(b"SIP/2.0 200")
            for _ in range(50):
                if phone.keepalives:
                    break
                await asyncio.sleep(0.01)
            assert phone.keepalives == [b"HELLO"]
            transport.close()

    run(scenario())


def test_bad_switch_address_is_a_clear_error() -> None:
    with pytest.raises(PhoneError, match=r"\(host, port\)"):
        LabPhone("1001", "x", "127.0.0.1:5060")  # type: ignore[arg-type]


def test_lab_registrar_challenges_grants_and_records_unregister() -> None:
    async def scenario() -> None:
        async with LabRegistrar({"trunk": "s3cret"}, max_expires=120) as carrier:
            async with LabPhone("trunk", "s3cret", carrier.address) as phone:
                response = await phone.register(expires=600)
                assert response is not None and response.status == 200
                assert response.headers.get("Expires") == "120"  # capped by the carrier
                assert "trunk" in carrier.live_bindings()
                assert await phone.unregister() is not None
            assert [(r.status, r.authorized, r.expires) for r in carrier.registers] == [
                (401, False, 600), (200, True, 600), (401, False, 0), (200, True, 0)]
            assert [r.authorized for r in carrier.unregisters] == [False, True]
            assert carrier.live_bindings() == {}

    run(scenario())


def test_carrier_registrar_407_wrong_password_and_retransmission() -> None:
    carrier = CarrierRegistrar({"trunk": "s3cret"}, challenge_code=407)
    request = ("REGISTER sip:carrier.lab SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;"
               "branch=z9hG4bK{b}\r\nFrom: <sip:trunk@carrier.lab>;tag=1\r\n"
               "To: <sip:trunk@carrier.lab>\r\nCall-ID: c1\r\nCSeq: {n} REGISTER\r\n"
               "Contact: <sip:trunk@127.0.0.1:5999>\r\nExpires: 60\r\nMax-Forwards: 70\r\n"
               "{auth}Content-Length: 0\r\n\r\n")
    first = carrier.handle(request.format(b="a", n=1, auth="").encode(), ("127.0.0.1", 5999))
    assert first is not None
    again = carrier.handle(request.format(b="a", n=1, auth="").encode(), ("127.0.0.1", 5999))
    assert again == first and len(carrier.registers) == 1  # retransmission absorbed
    from vosapp.sip import parse

    challenge = parse(first)
    assert isinstance(challenge, Response) and challenge.status == 407
    value = challenge.headers.get("Proxy-Authenticate")
    creds = DigestClient("trunk", "wrong").authorize(parse_challenge(value), "REGISTER",
                                                     "sip:carrier.lab")
    reply = carrier.handle(request.format(b="b", n=2, auth=f"Proxy-Authorization: {creds}\r\n")
                           .encode(), ("127.0.0.1", 5999))
    assert reply is not None and reply.startswith(b"SIP/2.0 407")
    assert [r.authorized for r in carrier.registers] == [False, False]
    assert carrier.handle(b"garbage", ("127.0.0.1", 1)) is None


def test_virtual_brute_force_hour_matches_the_spec_arithmetic() -> None:
    from vosapp.lab.scenarios import brute_force_hour, expected_guesses_per_hour

    result = brute_force_hour(think=1.6)
    cycle = result.guess_times[6] - result.guess_times[0]  # suspension + making 6 guesses
    assert 185 < cycle < 195
    expected = expected_guesses_per_hour(result.params, guess_time=cycle - 180)
    assert 110 <= result.guesses <= 120 and abs(result.guesses - expected) <= 6
    assert result.suspensions == result.guesses // 6


def test_virtual_outbound_refreshes_before_expiry_and_unregisters() -> None:
    from vosapp.lab.scenarios import virtual_outbound

    run_ = virtual_outbound(max_expires=120)
    run_.run(600)
    ok = [r for r in run_.carrier.registers if r.status == 200]
    assert len(ok) >= 7
    assert all(b.time - a.time < 120 for a, b in itertools.pairwise(ok))
    assert run_.stop()
    assert [r.authorized for r in run_.carrier.unregisters][-1] is True
    assert run_.carrier.live_bindings() == {}
