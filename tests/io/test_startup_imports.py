"""What a starting switch imports: scipy.signal (0.6 s here, three quarters of ``vosapp
serve``'s start-up) only when some gateway may convert codecs, and then before the first call
(vosapp.media.transcoder, ``vosapp.io.runtime.Switch.start``). Each case runs in a fresh
interpreter: this suite's own process has scipy loaded already."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.support import write_config
from tests.support.serving import ROOT, checkout_env

GATEWAYS = """
[[mapping_gateway]]
name = "customer"
accounts = ["1001"]
allow_codec_conversion = {mapping}

[[routing_gateway]]
name = "vendor"
address = "127.0.0.1:5999"
prefixes = ["00"]
allow_codec_conversion = {routing}
"""

# Start a Switch on the config (ephemeral port, no features beyond the default wiring), say
# which heavy modules are loaded before and after, then make a G.722 -> PCMA transcoder.
CHILD = """
import asyncio, json, sys
from vosapp.config import load_config
from vosapp.io.runtime import Switch

async def main():
    loaded = {"imported": "scipy.signal" in sys.modules}
    switch = Switch(config=load_config(sys.argv[1]), host="127.0.0.1", port=0)
    await switch.start()
    loaded["started"] = "scipy.signal" in sys.modules
    await switch.stop()
    from vosapp.media.transcoder import Transcoder
    Transcoder("G722", "PCMA")
    loaded["transcoder"] = "scipy.signal" in sys.modules
    print(json.dumps(loaded))

asyncio.run(main())
"""


def loaded_modules(config: Path) -> dict[str, bool]:
    done = subprocess.run([sys.executable, "-c", CHILD, str(config)], capture_output=True,
                          text=True, timeout=120, check=False, cwd=ROOT, env=checkout_env())
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result: dict[str, bool] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize(("mapping", "routing", "at_start"), [
    ("false", "false", False),
    ("true", "false", True),
    ("false", "true", True),
])
def test_scipy_is_loaded_at_start_only_when_a_gateway_converts_codecs(
        tmp_path: Path, mapping: str, routing: str, at_start: bool) -> None:
    config = write_config(tmp_path, extra=GATEWAYS.format(mapping=mapping, routing=routing))
    loaded = loaded_modules(config)
    # importing the runtime (and with it the relay and the transcoder) never loads it
    assert loaded == {"imported": False, "started": at_start, "transcoder": True}, loaded


def test_a_switch_on_an_empty_config_starts_without_scipy(tmp_path: Path) -> None:
    config = tmp_path / "empty.toml"
    config.write_text("")
    assert loaded_modules(config) == {"imported": False, "started": False,
                                      "transcoder": True}


def test_the_resampler_loaded_late_equals_the_whole_signal_result() -> None:
    """The lazily imported resample_poly is scipy's: a stream resampled block by block (8 ->
    16 kHz) equals the whole signal resampled at once, as before the import moved."""
    from scipy.signal import resample_poly

    from vosapp.media.transcoder import StreamingResampler, load_resampler

    assert load_resampler() is resample_poly
    signal = np.sin(np.arange(1600) * 2 * np.pi * 440 / 8000) * 8000
    resampler = StreamingResampler(2, 1)
    streamed = np.concatenate([resampler.process(signal[i:i + 160])
                               for i in range(0, 1600, 160)])
    whole = resample_poly(signal, 2, 1)
    assert len(streamed) > 0
    np.testing.assert_allclose(streamed, whole[:len(streamed)], atol=1e-6)
