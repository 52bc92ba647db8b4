"""pytest fixtures over :mod:`tests.support` (registered in tests/conftest.py).

* ``free_ports(n, transport="udp")`` - n distinct free ports;
* ``switch_config(parameters=None, accounts=None, extra="", name=...)`` - a config in tmp_path;
* ``served_switch(config=None, **serve_options)`` - ``vosapp serve`` on a free port (a fresh
  ``switch_config()`` when no config is given), stopped at teardown;
* ``net`` - a :class:`~vosapp.io.virtual.VirtualNetwork` with 1 ms latency (virtual time);
* ``relay_path`` - parametrizes a test over the media relay's two receive paths: ``"hub"``
  (the C forwarding hub, skipped when vosapp.io._rtphub is not built) and ``"python"``
  (``VOSAPP_RTP_HUB=0``: one reader per socket);
* ``sipp`` - SIPp runs with tmp_path as working directory; background runs still alive at
  teardown are killed.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from tests.support.ports import free_port
from tests.support.serving import Served, serve, write_config
from tests.support.sipp import run_sipp, start_sipp, stop_sipp
from vosapp.io.virtual import VirtualNetwork


@pytest.fixture(params=["hub", "python"])
def relay_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "hub":
        from vosapp.io import rtp_relay

        if rtp_relay._rtphub is None:
            pytest.skip("vosapp.io._rtphub is not built (setup.py build_ext --inplace)")
        monkeypatch.setenv("VOSAPP_RTP_HUB", "1")
    else:
        monkeypatch.setenv("VOSAPP_RTP_HUB", "0")
    return str(request.param)


@pytest.fixture
def net() -> VirtualNetwork:
    return VirtualNetwork(latency=0.001)


@pytest.fixture
def free_ports() -> Callable[..., list[int]]:
    def ports(count: int = 1, transport: str = "udp") -> list[int]:
        found: set[int] = set()
        while len(found) < count:
            found.add(free_port(transport))
        return sorted(found)
    return ports


@pytest.fixture
def switch_config(tmp_path: Path) -> Callable[..., Path]:
    def write(parameters: dict[str, object] | None = None,
              accounts: dict[str, str] | None = None, *, extra: str = "",
              name: str = "switch.toml") -> Path:
        return write_config(tmp_path, parameters, accounts, extra=extra, name=name)
    return write


@pytest.fixture
def served_switch(switch_config: Callable[..., Path]) -> Iterator[Callable[..., Served]]:
    with ExitStack() as stack:
        def start(config: Path | None = None, **options: Any) -> Served:
            if config is None and "data_dir" not in options:
                config = switch_config()
            return stack.enter_context(serve(config, **options))
        yield start


class SippRunner:
    """sipp with a fixed working directory (where its logs go)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.started: list[subprocess.Popen[str]] = []

    def run(self, scenario: Path | str, **options: Any) -> subprocess.CompletedProcess[str]:
        return run_sipp(scenario, cwd=self.workdir, **options)

    def start(self, scenario: Path | str, **options: Any) -> subprocess.Popen[str]:
        process = start_sipp(scenario, cwd=self.workdir, **options)
        self.started.append(process)
        return process

    def stop_all(self) -> None:
        for process in self.started:
            stop_sipp(process)


@pytest.fixture
def sipp(tmp_path: Path) -> Iterator[SippRunner]:
    runner = SippRunner(tmp_path)
    try:
        yield runner
    finally:
        runner.stop_all()
