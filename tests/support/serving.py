"""``vosapp`` as a real subprocess: a configuration written for the test, ``vosapp serve`` on a
free port (ready once it printed ``vosapp listening on HOST:PORT``), other commands."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from vosapp import compiled
from vosapp.config import load_config

ROOT = Path(__file__).resolve().parents[2]
READY = re.compile(r"vosapp listening on (\S+):(\d+)")
USER, PASSWORD = "1001", "pw-1001-lab"  # the account write_config adds unless told otherwise


def checkout_env() -> dict[str, str]:
    """This checkout's vosapp first on the path; output unbuffered (the ready line)."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=path)


def environment(**env: str) -> dict[str, str]:
    """This process's environment without VOSAPP_PURE_PYTHON (a child chooses compiled modules
    or sources by itself, vosapp/compiled.py), plus ``env``."""
    environ = {key: value for key, value in os.environ.items() if key != "VOSAPP_PURE_PYTHON"}
    environ.update(env)
    return environ


#: Why the compiled modules would not run here (None: they are built and current).
NOT_BUILT = compiled.why_sources(environ={})
needs_build = pytest.mark.skipif(NOT_BUILT is not None,
                                 reason=f"nothing is compiled here: {NOT_BUILT}")


def write_config(directory: Path, parameters: Mapping[str, object] | None = None,
                 accounts: Mapping[str, str] | None = None, *, extra: str = "",
                 name: str = "switch.toml") -> Path:
    """``directory/name``: listen 127.0.0.1:5060 (``serve`` overrides it with a free port),
    data in ``directory/data``, ``parameters``, ``accounts`` (default: USER/PASSWORD; ``{}``
    for none), then the TOML text ``extra`` (gateways)."""
    lines = ["[switch]", 'sip_listen = "127.0.0.1:5060"', f'data_dir = "{directory / "data"}"',
             "", "[parameters]"]
    for key, value in (parameters or {}).items():
        lines.append(f"{key} = {value!r}" if isinstance(value, int) else f'{key} = "{value}"')
    for user, password in ({USER: PASSWORD} if accounts is None else accounts).items():
        lines += ["", "[[account]]", f'user = "{user}"', f'password = "{password}"']
    path = directory / name
    path.write_text("\n".join(lines) + "\n" + extra)
    return path


@dataclass
class Served:
    """A running ``vosapp serve``: where it listens, its process, its files."""

    host: str
    port: int
    process: subprocess.Popen[str]
    config: Path | None
    data_dir: Path


@contextmanager
def serve(config: Path | None = None, *, data_dir: Path | None = None,
          cwd: Path | None = None, udp_only: bool = True, extra: Sequence[str] = (),
          timeout: float = 30.0, listen: str = "127.0.0.1:0") -> Iterator[Served]:
    """``vosapp serve --listen LISTEN [--config F] [--data-dir D] [--udp-only]`` (``listen``
    names a fixed port to start again where a killed switch was).

    Yields once the switch printed its listening line; on exit SIGTERM (graceful stop, stop
    hooks run) and wait, kill when it does not stop within 15 s.
    """
    if config is None and data_dir is None:
        raise ValueError("serve() needs a config or a data directory")
    args = [sys.executable, "-m", "vosapp.cli", "serve", "--listen", listen,
            *(["--udp-only"] if udp_only else [])]
    if config is not None:
        args += ["--config", str(config)]
    if data_dir is not None:
        args += ["--data-dir", str(data_dir)]
    args += list(extra)
    if data_dir is None:
        assert config is not None
        data_dir = load_config(config).switch.data_dir
    workdir = cwd or (config.parent if config is not None else data_dir)
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=checkout_env(), cwd=workdir)
    try:
        yield wait_ready(process, config, data_dir, timeout)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_ready(process: subprocess.Popen[str], config: Path | None, data_dir: Path,
               timeout: float) -> Served:
    """The switch a started ``vosapp serve`` process is, once it printed its listening line
    (RuntimeError when it exits first or stays silent for ``timeout`` seconds)."""
    assert process.stdout is not None and process.stderr is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], 0.2)
        if ready:
            match = READY.search(process.stdout.readline())
            if match:
                return Served(match.group(1), int(match.group(2)), process, config, data_dir)
        if process.poll() is not None:
            raise RuntimeError(f"vosapp serve exited {process.returncode}: "
                               f"{process.stderr.read()}")
    raise RuntimeError(f"vosapp serve did not print its listening line within {timeout} s")


def run_vosapp(*args: str, cwd: Path | None = None, check: bool = False,
               timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """``python -m vosapp.cli ARGS`` to completion, output captured as text."""
    return subprocess.run([sys.executable, "-m", "vosapp.cli", *args], check=check,
                          capture_output=True, text=True, timeout=timeout, cwd=cwd or ROOT,
                          env=checkout_env())


def cdr_rows(config: Path, cwd: Path) -> list[dict[str, Any]]:
    """The switch's CDRs, newest first, as ``vosapp cdr list --json`` prints them."""
    result = run_vosapp("cdr", "list", "--json", "--config", str(config), cwd=cwd, check=True)
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return rows
