"""The README's pictures, exported by ``make docs`` into ``docs/img/``.

* ``call-ladder.png``: a real call through a switch started here — SIPp's built-in UAC
  (a trusted mapping gateway on 127.0.0.1) → vosapp → SIPp's built-in UAS as the vendor —
  drawn from the switch's own trace;
* ``spectrograms.png``: the CMU ARCTIC clip clean, through G.711, G.729A and the
  PCMA → G.729 → PCMA tandem, each through the relay's transcoder (notebook 04);
* ``q24-heatmap.png``: the inband DTMF receiver's ITU-T Q.24 grid, default tuning
  (notebook 05).

Run ``python -m vosapp.lab.docs_images [DIRECTORY]``. Needs ``sipp`` and kaleido's Chromium.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any

from vosapp.errors import VosappError
from vosapp.lab import plots, quality
from vosapp.lab.attach import LabSwitch
from vosapp.lab.call_lab import loopback_gateways
from vosapp.lab.ladder import build_ladder, export_image, figure
from vosapp.lab.media_path import through_switch
from vosapp.lab.q24 import Q24Grid, grid_title
from vosapp.media.dtmf import DetectorTuning

__all__ = ["call_ladder", "export_all", "q24_heatmap", "spectrogram_comparison"]

DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
WIDTH = 1000  # px; each PNG stays under 200 KB


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _call_config(directory: Path, vendor_port: int) -> Path:
    path = directory / "call.toml"
    path.write_text(f"""
[switch]
sip_listen = "127.0.0.1:5060"
data_dir = "data"
{loopback_gateways(vendor_port)}""")
    return path


async def _sipp(*args: str, cwd: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        "sipp", *args, "-i", "127.0.0.1", "-m", "1", "-nostdin", "-timeout", "20",
        "-timeout_error", cwd=cwd, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE)


async def _finish(process: asyncio.subprocess.Process, name: str) -> None:
    try:
        _, err = await asyncio.wait_for(process.communicate(), 30)
    except TimeoutError:
        process.kill()
        _, err = await process.communicate()
    if process.returncode != 0:
        raise VosappError(f"sipp {name} exited {process.returncode}: {err.decode()[-1500:]}")


async def _record_call() -> tuple[list[Any], dict[str, str]]:
    with tempfile.TemporaryDirectory(prefix="vosapp-docs-call-") as scratch:
        work = Path(scratch)
        vendor_port, caller_port = _free_udp_port(), _free_udp_port()
        vendor = await _sipp("-sn", "uas", "-p", str(vendor_port), cwd=work)
        switch = await LabSwitch.start(_call_config(work, vendor_port), data_dir=work / "data")
        try:
            host, port = switch.address
            caller = await _sipp("-sn", "uac", "-p", str(caller_port), "-s", "1002",
                                 "-d", "500", f"{host}:{port}", cwd=work)
            await _finish(caller, "uac")
            await _finish(vendor, "uas")
            await asyncio.sleep(0.2)
            records = switch.trace.records()
        finally:
            if vendor.returncode is None:
                vendor.kill()
                await vendor.wait()
            await switch.stop()
    names = {f"127.0.0.1:{caller_port}": "caller (SIPp)", f"{host}:{port}": "vosapp",
             f"127.0.0.1:{vendor_port}": "vendor (SIPp)"}
    return records, names


def call_ladder(target: Path) -> Path:
    """A call placed through a fresh switch, as its trace draws it."""
    records, names = asyncio.run(_record_call())
    ladder = build_ladder(records, names=names, events=False)
    fig = figure(ladder, title="a call through vosapp: INVITE, 180, 200, ACK, BYE on both legs")
    fig.update_layout(width=WIDTH)
    return export_image(fig, target)


def spectrogram_comparison(target: Path) -> Path:
    """Speech clean and through the relay's codecs, on one colour scale."""
    clean = quality.load_speech(8000)
    signals = {"clean": clean}
    for name, chain in (("G.711 A-law", ["PCMA"]), ("G.729A", ["G729"]),
                        ("PCMA → G.729 → PCMA", ["PCMA", "G729", "PCMA"])):
        signals[name] = through_switch(clean, 8000, chain)
    # a -65 dB floor flattens the noise between words: the PNG compresses to < 200 KB
    fig = plots.spectrograms(signals, 8000, floor_db=-65.0,
                             title="the same speech through the switch's codecs")
    fig.update_layout(width=WIDTH, height=330)
    fig.write_image(str(target))
    return target


def q24_heatmap(target: Path) -> Path:
    """The inband DTMF receiver against ITU-T Q.24, default tuning."""
    tuning = DetectorTuning()
    fig = plots.compliance_heatmap(Q24Grid.build().panels(tuning), title=grid_title(tuning))
    fig.update_layout(width=WIDTH)
    fig.write_image(str(target))
    return target


def export_all(directory: Path = DOCS_IMG) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    return [call_ladder(directory / "call-ladder.png"),
            spectrogram_comparison(directory / "spectrograms.png"),
            q24_heatmap(directory / "q24-heatmap.png")]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    for path in export_all(Path(args[0]) if args else DOCS_IMG):
        print(f"wrote {path} ({path.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
