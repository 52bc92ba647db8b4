"""The relay's C forwarding hub is built in this checkout and is what a relay uses by default.

tests/io/test_rtp_hub.py and the relay tests' hub cases skip when the extension is missing (a
checkout built without a compiler still runs the Python path); this test is what fails then."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from vosapp.io import rtp_relay
from vosapp.io.rtp_relay import LegConfig, RtpRelay


def test_the_hub_is_built_and_a_relay_reads_through_it(monkeypatch: pytest.MonkeyPatch) -> None:
    if rtp_relay._rtphub is None:
        pytest.fail("vosapp.io._rtphub is not built: run `make setup`, or "
                    "`python setup.py build_ext --inplace` in this checkout")
    assert Path(rtp_relay._rtphub.__file__).parent == Path(rtp_relay.__file__).parent
    monkeypatch.delenv("VOSAPP_RTP_HUB", raising=False)  # the default, as `vosapp serve` runs

    async def scenario() -> None:
        relay = await RtpRelay.open(LegConfig("PCMA"), LegConfig("PCMA"))
        try:
            assert relay._hub is rtp_relay._hubs[asyncio.get_running_loop()]
        finally:
            relay.close()

    asyncio.run(scenario())
    assert os.environ.get("VOSAPP_RTP_HUB") is None
