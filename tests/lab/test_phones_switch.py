"""Lab phones through a real `vosapp serve` (subprocess, loopback): phone 1001 -> switch ->
lab vendor, audio both ways, a CDR at hangup; PESQ through the transcoding relay against the
same codec chain computed offline; and the lab carrier calling in to a registered phone."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from vosapp.lab import quality
from vosapp.lab.attach import BackgroundSwitch
from vosapp.lab.carrier import LabCarrier
from vosapp.lab.phones import LabPhone
from vosapp.lab.vendor import LabVendor
from vosapp.store import Store
from vosapp.switch.cdr import read_cdrs

pytestmark = pytest.mark.timeout(180)
SPEECH = quality.load_speech(8000)[: 8000 * 3]
LAB_TOML = Path(__file__).resolve().parents[2] / "data" / "lab.toml"


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 150))


def write_config(directory: Path, vendor_port: int, *, mapping: str = "", routing: str = "",
                 customers: str = 'accounts = ["1001", "1002"]') -> Path:
    base = random.Random().randrange(30000, 39000, 100)  # apart from other tests' relays
    path = directory / "lab.toml"
    path.write_text(f"""
[switch]
sip_listen = "127.0.0.1:5060"   # overridden by --listen 127.0.0.1:0
media_ip = "127.0.0.1"
rtp_ports = "{base}-{base + 99}"
data_dir = "data"

[[account]]
user = "1001"
password = "lab-1001-secret"

[[account]]
user = "1002"
password = "lab-1002-secret"

[[mapping_gateway]]
name = "lab-customers"
{customers}
prefixes = [""]
{mapping}

[[routing_gateway]]
name = "lab-vendor"
address = "127.0.0.1:{vendor_port}"
prefixes = [""]
{routing}
""")
    return path


def make_lab_config(directory: Path, vendor_port: int) -> Path:
    """data/lab.toml itself (what `make lab` runs), on this test's vendor port, RTP range
    and data directory."""
    base = random.Random().randrange(30000, 39000, 100)
    text = LAB_TOML.read_text()
    for old, new in (('"127.0.0.1:5080"', f'"127.0.0.1:{vendor_port}"'),
                     ('"20000-20999"', f'"{base}-{base + 99}"'),
                     ('"../var/lab"', '"data"')):
        assert old in text, old
        text = text.replace(old, new)
    path = directory / "lab.toml"
    path.write_text(text)
    return path


@asynccontextmanager
async def lab(tmp_path: Path, vendor: LabVendor, **config: str
              ) -> AsyncIterator[tuple[BackgroundSwitch, LabVendor]]:
    """The vendor in this loop, a `vosapp serve` routing to it; its data in tmp/data.
    No ``config``: data/lab.toml as `make lab` uses it."""
    async with vendor:
        path = (write_config(tmp_path, vendor.address[1], **config) if config
                else make_lab_config(tmp_path, vendor.address[1]))
        switch = await asyncio.to_thread(BackgroundSwitch.spawn, tmp_path / "data", path,
                                         listen="127.0.0.1:0", udp_only=True)
        try:
            yield switch, vendor
        finally:
            await asyncio.to_thread(switch.terminate)


async def registered(user: str, switch: BackgroundSwitch, **options: Any) -> LabPhone:
    phone = LabPhone(user, f"lab-{user}-secret", switch.sip_address, **options)
    response = await phone.register(expires=300)
    assert response is not None and response.status == 200
    return phone


def test_make_lab_softphone_1001_dials_out_and_hears_the_echo_vendor(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with lab(tmp_path, LabVendor(mode="echo")) as (switch, vendor):
            phone = await registered("1001", switch)
            try:
                call = await phone.call("5551234")
                await call.wait_answered(20)
                far = vendor.calls[-1]
                await call.play(SPEECH)
                await asyncio.sleep(0.5)
                there = quality.compare(SPEECH, far.recording(), 8000)
                back = quality.compare(far.sent_audio(), call.recording(), 8000)
                assert there.pesq_mos_lqo > 3.5 and back.pesq_mos_lqo > 3.5
                await call.send_dtmf("59", method="rfc2833")
                await asyncio.sleep(0.3)
                assert far.received_digits("rfc2833") == "59"
                await call.hangup()
                assert call.state == "ended"
                await far.wait_ended(10)
            finally:
                phone.close()
        [row] = read_cdrs(Store.open(tmp_path / "data"))
        assert row["callee"] == "5551234" and row["status"] == 200
        assert row["routing_gateway"] == "lab-vendor" and row["duration"] > 0

    run(scenario())


TRANSCODING = {
    "mapping": 'codec_mode = "Softswitch specified"\nspecified_codec = "PCMA"\n'
               'allow_codec_conversion = true\nmedia_proxy = "On"',
    "routing": 'codec_mode = "Softswitch specified"\nspecified_codec = "G729"\n'
               'allow_codec_conversion = true\nmedia_proxy = "On"',
}


def pesq_pair(source: Any, live: Any, chain: list[str]) -> tuple[float, float]:
    """PESQ of what arrived live and of ``source`` through ``chain`` offline."""
    offline, rate = quality.through_codecs(source, 8000, chain)
    return (quality.compare(source, live, 8000).pesq_mos_lqo,
            quality.compare(source, offline, rate).pesq_mos_lqo)


def test_pesq_through_the_transcoding_switch_matches_the_offline_codec_chain(
        tmp_path: Path) -> None:
    async def scenario() -> tuple[tuple[float, float], tuple[float, float]]:
        async with lab(tmp_path, LabVendor(mode="echo", codecs=["G729"]),
                       **TRANSCODING) as (switch, vendor):
            phone = await registered("1001", switch, codecs=["PCMA"])
            try:
                call = await phone.call("5551234")
                await call.wait_answered(20)
                far = vendor.calls[-1]
                assert (call.codec, far.codec) == ("PCMA", "G729")
                await call.play(SPEECH)
                await asyncio.sleep(0.5)
                await call.hangup()
                # phone PCMA -> relay decodes, encodes G.729 -> vendor decodes
                there = pesq_pair(SPEECH, far.recording(), ["PCMA", "G729"])
                # the echo as the vendor sent it: G.729 -> relay decodes, encodes PCMA ->
                # phone decodes (the echo's own timing under load is not the switch's)
                back = pesq_pair(far.sent_audio(), call.recording(), ["G729", "PCMA"])
            finally:
                phone.close()
        [row] = read_cdrs(Store.open(tmp_path / "data"))
        assert (row["caller_codec"], row["callee_codec"], row["media_mode"]) == (
            "PCMA", "G729", "transcode")
        return there, back

    there, back = run(scenario())
    print(f"PESQ phone->vendor {there[0]:.3f} (offline {there[1]:.3f}), "
          f"vendor->phone {back[0]:.3f} (offline {back[1]:.3f})")
    assert abs(there[0] - there[1]) <= 0.1
    assert abs(back[0] - back[1]) <= 0.1


def test_carrier_calls_a_registered_phone_through_the_switch(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with lab(tmp_path, LabVendor(reject=503),
                       customers='addresses = ["127.0.0.1"]') as (switch, _vendor):
            phone = await registered("1002", switch)
            try:
                async with LabCarrier(switch.sip_address) as carrier:
                    call = await carrier.call("1002")
                    incoming = await phone.next_call(20)
                    await incoming.answer()
                    await call.wait_answered(20)
                    await call.play(SPEECH[: 8000])
                    await asyncio.sleep(0.5)
                    report = quality.compare(SPEECH[: 8000], incoming.recording(), 8000)
                    assert report.pesq_mos_lqo > 3.5
                    await incoming.hangup()
                    await call.wait_ended(10)
            finally:
                phone.close()

    run(scenario())
