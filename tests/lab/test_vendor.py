"""The lab vendor: where it listens (the config's routing gateway), what it answers (echo,
play, reject, codec list), and the thread `vosapp lab` runs it in."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vosapp.errors import VosappError
from vosapp.lab import quality
from vosapp.lab.calls import CallError
from vosapp.lab.phones import LabPhone
from vosapp.lab.vendor import LabVendor, start_vendor_thread, vendor_address
from vosapp.sip import NameAddr, Request, new_tag

pytestmark = pytest.mark.timeout(120)
ROOT = Path(__file__).resolve().parents[2]
SPEECH = quality.load_speech(8000)[: 8000 * 2]


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 90))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def config_with_vendor(tmp_path: Path, address: str, transport: str = "udp") -> Path:
    path = tmp_path / "vendor.toml"
    path.write_text(f"""
[switch]
sip_listen = "127.0.0.1:5060"
[[routing_gateway]]
name = "v"
address = "{address}"
transport = "{transport}"
""")
    return path


def test_the_lab_config_puts_the_vendor_on_the_routing_gateway_address() -> None:
    assert vendor_address(ROOT / "data" / "lab.toml") == ("127.0.0.1", 5080)


def test_vendor_address_errors(tmp_path: Path) -> None:
    with pytest.raises(VosappError, match="no routing gateway named 'x'"):
        vendor_address(config_with_vendor(tmp_path, "127.0.0.1:5080"), "x")
    with pytest.raises(VosappError, match="UDP only"):
        vendor_address(config_with_vendor(tmp_path, "127.0.0.1:5080", "tcp"))


def test_bad_vendor_settings_are_refused() -> None:
    with pytest.raises(CallError, match="mode"):
        LabVendor(mode="karaoke")
    with pytest.raises(CallError, match="needs play="):
        LabVendor(mode="play")


def test_vendor_thread_answers_on_the_configured_port_and_echoes(tmp_path: Path) -> None:
    port = free_port()
    vendor = start_vendor_thread(config_with_vendor(tmp_path, f"127.0.0.1:{port}"))
    try:
        async def scenario() -> Any:
            async with LabPhone("1001", "x", ("127.0.0.1", port)) as phone:
                call = await phone.call("0044123")
                await call.wait_answered(10)
                await call.play(SPEECH)
                await asyncio.sleep(0.5)
                await call.hangup()
                return call.recording()

        heard = run(scenario())
    finally:
        vendor.stop()
    far = vendor.vendor.calls[0]
    assert far.state == "ended" and far.codec == "PCMA"
    assert quality.compare(SPEECH, far.recording(), 8000).pesq_mos_lqo > 4.0
    assert quality.compare(far.sent_audio(), heard, 8000).pesq_mos_lqo > 4.0
    assert quality.compare(SPEECH, far.sent_audio(), 8000).delay_ms > 0  # echoed, later
    # a second vendor on a taken port is a clear error
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        busy = taken.getsockname()[1]
        with pytest.raises(VosappError, match="could not start"):
            start_vendor_thread(config_with_vendor(tmp_path, f"127.0.0.1:{busy}"))


def test_vendor_plays_a_file_in_a_loop_with_its_codec(tmp_path: Path) -> None:
    clip = tmp_path / "clip.wav"
    piece = quality.load_speech(8000)[2000:10000]
    quality.save_audio(clip, piece, 8000)  # one second, looped

    async def scenario() -> None:
        async with LabVendor(mode="play", play=clip, codecs=["G722"]) as vendor, \
                LabPhone("1001", "x", vendor.address) as phone:
            call = await phone.call("0044123")
            await call.wait_answered(10)
            assert call.codec == "G722" and call.sample_rate == 16000
            await asyncio.sleep(2.6)
            heard = call.recording()
            await call.hangup()
            assert heard.size > 2 * 16000
            resampled = quality.resample(heard, 16000, 8000)
            report = quality.compare(np.tile(piece, 3), resampled, 8000)
            assert report.pesq_mos_lqo > 3.0

    run(scenario())


def test_vendor_answers_after_ringing_and_with_the_offer_order() -> None:
    async def scenario() -> None:
        async with LabVendor(answer_after=0.3, codecs=["G729", "PCMU"]) as vendor, \
                LabPhone("1001", "x", vendor.address, codecs=["PCMU", "G729"]) as phone:
            call = await phone.call("0044123")
            await asyncio.sleep(0.1)
            assert call.state == "ringing"
            await call.wait_answered(10)
            assert call.codec == "PCMU"  # the offerer's first supported codec
            await call.hangup()

    run(scenario())


def test_run_vendor_in_the_foreground_answers_options(tmp_path: Path) -> None:
    port = free_port()
    config = config_with_vendor(tmp_path, f"127.0.0.1:{port}")
    env = dict(os.environ, PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    process = subprocess.Popen([sys.executable, "-m", "vosapp.lab.vendor", str(config)],
                               stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert process.stdout is not None
        assert f"listening on 127.0.0.1:{port}" in process.stdout.readline()

        async def probe() -> int:
            async with LabPhone("1001", "x", ("127.0.0.1", port)) as phone:
                request = Request.build(
                    "OPTIONS", f"sip:127.0.0.1:{port}", via=phone.via(), to=phone.aor(),
                    from_=NameAddr(phone.aor().uri, params={"tag": new_tag()}), cseq=1)
                response = await phone.request(request, ("127.0.0.1", port), timeout=10)
                assert response is not None
                return response.status

        assert run(probe()) == 200
    finally:
        process.terminate()
        process.wait(10)
