"""bench/media_with_calls.py's machinery on a real ``vosapp serve`` (not timed): two relayed
calls held with RTP while SIPp places calls through the same switch to its own callee, each
with the media proxy On, so the combined bench cannot silently rot."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.calls.test_bench_media_calls import rtp_range
from tests.support import needs_sipp
from tests.support.bench import load_bench

pytestmark = [pytest.mark.timeout(120), pytest.mark.sipp, needs_sipp]

media_calls = load_bench("media_calls")
media_with_calls = load_bench("media_with_calls")


def test_held_relayed_calls_and_sipp_calls_share_one_switch(tmp_path: Path) -> None:
    payloads = {name: media_calls.speechlike_payloads(name, packets=50)
                for name in ("PCMA", "G729")}
    low, high = rtp_range()
    uas_port = media_with_calls.free_port((low, high))
    switch = media_calls.start_switch("relay", tmp_path, (low, high),
                                      extra_config=media_with_calls.sipp_route(uas_port))
    try:
        hook = media_with_calls.sipp_calls(switch, uas_port, 4, 2.0, tmp_path / "sipp", 30,
                                           trace=True)
        result = media_calls.run_step(switch, "relay", 2, 7.0, setup_rate=20.0,
                                      payloads=payloads, during_hold=hook)
    finally:
        media_calls.stop_switch(switch)
    # the held calls kept their media: set up, hung up, nothing lost
    assert (result["established"], result["hung_up"]) == (2, 2)
    assert result["lost"] == 0 and result["failures"] == {}
    # SIPp's 8 calls (4/s for 2 s) all completed at both ends, none retransmitted
    sipp = result["during_hold"]
    assert (sipp["offered"], sipp["ok"], sipp["uas_ok"]) == ("8", "8", "8")
    assert (sipp["failed"], sipp["retrans"], sipp["uas_retrans"], sipp["clean"]) == \
        ("0", "0", "0", "yes")
    # they went through the media proxy: the callee was offered the switch's relay ports
    messages = "".join(p.read_text(errors="replace")
                       for p in (tmp_path / "sipp" / "uas").glob("*_messages.log"))
    invites = [block for block in re.split(r"^-{20,}.*$", messages, flags=re.MULTILINE)
               if "message received" in block and "\nINVITE sip:" in block]
    ports = {int(p) for block in invites
             for p in re.findall(r"^m=audio (\d+) ", block, flags=re.MULTILINE)}
    assert len(invites) == 8 and len(ports) == 8
    assert all(low <= p <= high for p in ports)
