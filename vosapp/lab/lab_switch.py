"""The switch a notebook works against: the one `make lab` started, else one in the kernel.

``make lab`` (``vosapp lab``) runs ``vosapp serve`` on ``data/lab.toml`` beside JupyterLab:
the centre of the lab, where softphones register. A notebook that only needs *a* switch uses
that one, so what it does shows up where the user looks (trace, bindings, parameters)::

    lab = await NotebookSwitch.open()
    print(lab.summary)
    ... lab.switch.address, lab.switch.set_param(...), LiveLadder(lab.switch.trace) ...
    await lab.release()     # stops an in-kernel switch; leaves the make-lab switch running

It attaches when ``<data_dir>/control.json`` of the configured data directory exists and the
switch behind it answers; otherwise (no ``make lab``, ``make test``, a stale file) it starts a
switch in the kernel on the same config and data directory, SIP on a free port.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vosapp.io.control import CONTROL_FILE, ControlError
from vosapp.lab.attach import (
    LabSwitch,
    RemoteSwitch,
    attach,
    default_config_path,
    default_data_dir,
)

__all__ = ["NotebookSwitch", "find_lab_switch"]


def find_lab_switch(config: str | Path | None = None, *, data_dir: str | Path | None = None
                    ) -> tuple[RemoteSwitch | None, str]:
    """The running make-lab switch (attached), or None and why not."""
    path = Path(config) if config is not None else default_config_path()
    directory = Path(data_dir) if data_dir is not None else default_data_dir(path)
    if directory is None:
        return None, "no data directory configured"
    if not (directory / CONTROL_FILE).exists():
        return None, f"no {directory / CONTROL_FILE}: make lab is not running"
    try:
        return attach(directory, path), ""
    except ControlError as exc:
        return None, str(exc)


@dataclass
class NotebookSwitch:
    """A switch for a notebook and where it came from."""

    switch: LabSwitch | RemoteSwitch
    attached: bool  # True: the make-lab switch (shared, left running); False: in this kernel
    why: str = ""   # when not attached: why not

    @classmethod
    async def open(cls, config: str | Path | None = None, *,
                   data_dir: str | Path | None = None) -> NotebookSwitch:
        remote, why = find_lab_switch(config, data_dir=data_dir)
        if remote is not None:
            return cls(remote, attached=True)
        path = Path(config) if config is not None else default_config_path()
        directory = Path(data_dir) if data_dir is not None else default_data_dir(path)
        switch = await LabSwitch.start(path, data_dir=directory, port=0)
        return cls(switch, attached=False, why=why)

    @property
    def summary(self) -> str:
        host, port = self.switch.address
        if self.attached:
            return (f"attached to the make-lab switch (vosapp serve) on {host}:{port}: what "
                    "this notebook does shows in its trace, bindings and parameters")
        return (f"started a switch in this kernel on {host}:{port} ({self.why}); it stops "
                "at the end of the notebook")

    async def release(self) -> None:
        """Stop the switch if this notebook started it; the make-lab switch keeps running."""
        if not self.attached:
            await self.switch.stop()
