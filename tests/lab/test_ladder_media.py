"""vosapp.lab.ladder.media: a real lab call's media events (RTP out with its codec, RTP in
with its payload type, DTMF sent, each RFC 2833 event received) become ladder markers on the
endpoint's column, next to the SIP arrows of the same ladder."""

from __future__ import annotations

import asyncio

import pytest

from vosapp.lab.carrier import LabCarrier
from vosapp.lab.ladder import LiveLadder, media_records
from vosapp.lab.vendor import LabVendor
from vosapp.trace import Trace

pytestmark = pytest.mark.timeout(60)


def test_media_records_of_a_real_call_on_a_live_ladder() -> None:
    async def scenario() -> tuple[list[str], list[str], LiveLadder]:
        async with LabVendor(codecs=["PCMU"], mode="silence") as vendor, \
                LabCarrier(vendor.address, codecs=["PCMU"]) as phone:
            call = await phone.call("100")
            await call.wait_answered(10)
            far = vendor.calls[-1]
            await call.send_dtmf("12")
            await asyncio.sleep(0.3)
            await call.hangup()
            mine, theirs = media_records(call), media_records(far)
            live = LiveLadder(Trace(), widget=False, names={
                phone.address: "phone", vendor.address: "vendor"})
            live.add_records(theirs + mine)
            live.flush()
            return [r.note for r in mine], [r.note for r in theirs], live

    mine, theirs, live = asyncio.run(scenario())
    assert mine[0].startswith("RTP out PCMU to 127.0.0.1:")
    assert "DTMF sent rfc2833 12" in mine and "RTP in PCMU, PT 0" in mine
    assert theirs.count("RFC 2833 in, PT 101") == 2  # one per digit, not per packet
    assert "RTP in PCMU, PT 0" in theirs
    markers = live.ladder.markers
    assert [m.time for m in markers] == sorted(m.time for m in markers)
    columns = {live.ladder.columns[m.column].label for m in markers}
    assert columns == {"phone", "vendor"}
    assert "RFC 2833 in, PT 101 (vendor)" in live.ladder.text()
