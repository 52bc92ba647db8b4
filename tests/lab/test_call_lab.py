"""vosapp.lab.call_lab: the per-demonstration switch of notebook 07, on real sockets — the
config it writes loads, a transcoding call carries audio and RFC 2833 regenerated with the
vendor side's payload type, and a refused conversion is a 488 whose Warning says why."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from vosapp.config import load_config
from vosapp.lab import quality
from vosapp.lab.call_lab import CallLab, Demo, config_text, refusal, sdp_lines
from vosapp.lab.calls import CallError

pytestmark = pytest.mark.timeout(120)
SPECIFIED = {"codec_mode": "Softswitch specified", "allow_codec_conversion": True,
             "media_proxy": "On"}
DEMOS = [
    Demo("transcode", mapping={**SPECIFIED, "specified_codec": "PCMA"},
         routing={**SPECIFIED, "specified_codec": "G729", "rfc2833_payload": 96},
         vendor_codecs=("G729",)),
    Demo("refused", mapping={**SPECIFIED, "specified_codec": "PCMA",
                             "allow_codec_conversion": False},
         routing={**SPECIFIED, "specified_codec": "G729"}, vendor_codecs=("G729",)),
]


def test_config_text_gives_each_demo_its_account_prefix_and_vendor(tmp_path: Path) -> None:
    path = tmp_path / "calls.toml"
    path.write_text(config_text(DEMOS, [5081, 5082], rtp_base=30000))
    config = load_config(path)
    assert [a.user for a in config.accounts] == ["7001", "7002"]
    assert [(g.accounts, g.prefixes) for g in config.mapping_gateways] == [
        (("7001",), ("801",)), (("7002",), ("802",))]
    vendor = config.routing_gateways[0]
    assert (vendor.port, vendor.prefixes) == (5081, ("801",))
    assert vendor.settings.specified_codec == "G729" and vendor.settings.rfc2833_payload == 96
    assert config.mapping_gateways[1].settings.allow_codec_conversion is False
    with pytest.raises(ValueError, match="2 demos but 1 vendor ports"):
        config_text(DEMOS, [5081], rtp_base=30000)
    with pytest.raises(TypeError, match="text, a number or a boolean"):
        config_text([Demo("x", mapping={"codec_mode": None})], [5081], rtp_base=30000)


def test_sdp_lines_keeps_the_codec_lines() -> None:
    body = (b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\nm=audio 4000 RTP/AVP 18 101\r\n"
            b"a=rtpmap:18 G729/8000\r\na=fmtp:18 annexb=no\r\na=sendrecv\r\n")
    assert sdp_lines(body) == ["m=audio 4000 RTP/AVP 18 101", "a=rtpmap:18 G729/8000",
                               "a=fmtp:18 annexb=no"]


def test_a_transcoding_call_and_a_refused_one(tmp_path: Path) -> None:
    speech = quality.load_speech(8000)[: 8000 * 2]

    async def scenario() -> None:
        lab = await CallLab.start(DEMOS, tmp_path)
        try:
            call, far = await lab.call("transcode")
            assert (call.codec, far.codec) == ("PCMA", "G729")
            assert "a=rtpmap:96 telephone-event/8000" in sdp_lines(far.invite.body)
            await call.play(speech)
            await call.send_dtmf("59")
            await asyncio.sleep(0.5)
            clean = quality.compare(speech, far.recording(), 8000).pesq_mos_lqo
            assert clean > 3.0
            assert far.received_digits("rfc2833") == "59"
            assert 96 in {p["payload_type"] for p in far.packet_log()}
            await call.hangup()
            lossy, far = await lab.send("transcode", speech, loss=0.2, seed=3)
            assert lossy.state == "ended"
            assert quality.compare(speech, far.recording(), 8000).pesq_mos_lqo < clean - 0.5
            refused = await lab.dial("refused")
            with pytest.raises(CallError):
                await refused.wait_answered(10)
            status, warning = refusal(lab.phone("refused").responses, 488) or (0, "")
            assert status == 488 and "Allow codec conversion is off" in warning
            assert refusal(lab.phone("refused").responses, 503) is None
            with pytest.raises(CallError, match="no demo 'nope'"):
                lab.vendor("nope")
        finally:
            await lab.stop()

    asyncio.run(asyncio.wait_for(scenario(), 100))
