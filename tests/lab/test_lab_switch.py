"""vosapp.lab.lab_switch: notebooks attach to the make-lab switch when it runs, else start
their own in the kernel, and only ever stop their own."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

from vosapp.lab.attach import BackgroundSwitch, LabSwitch, RemoteSwitch
from vosapp.lab.lab_switch import NotebookSwitch, find_lab_switch

LAB_CONFIG = Path(__file__).resolve().parents[2] / "data" / "lab.toml"


def test_without_a_lab_switch_the_notebook_gets_its_own(tmp_path: Path) -> None:
    async def scenario() -> tuple[NotebookSwitch, bool]:
        lab = await NotebookSwitch.open(LAB_CONFIG, data_dir=tmp_path)
        running = lab.switch.switch.core is not None
        await lab.release()
        return lab, running

    lab, running = asyncio.run(scenario())
    assert isinstance(lab.switch, LabSwitch) and not lab.attached and running
    assert "make lab is not running" in lab.why and "in this kernel" in lab.summary
    assert find_lab_switch(LAB_CONFIG, data_dir=tmp_path) == (None, lab.why)


def test_a_stale_control_file_is_reported_not_trusted(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
    (tmp_path / "control.json").write_text(json.dumps(
        {"address": "127.0.0.1", "port": dead, "token": "x", "pid": 1}))
    remote, why = find_lab_switch(LAB_CONFIG, data_dir=tmp_path)
    assert remote is None and "nothing answers" in why


def test_attaches_to_the_running_switch_and_leaves_it_running(tmp_path: Path) -> None:
    background = BackgroundSwitch.spawn(tmp_path / "lab", LAB_CONFIG)
    try:
        async def scenario() -> NotebookSwitch:
            lab = await NotebookSwitch.open(LAB_CONFIG, data_dir=tmp_path / "lab")
            await lab.release()
            return lab

        lab = asyncio.run(scenario())
        assert isinstance(lab.switch, RemoteSwitch) and lab.attached
        assert tuple(lab.switch.address) == background.sip_address
        assert "make-lab switch" in lab.summary
        assert background.process.poll() is None  # release() did not stop it
        assert lab.switch.status()["pid"] == background.process.pid
    finally:
        background.terminate()
