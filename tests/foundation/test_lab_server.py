"""Headless check of `vosapp lab`: JupyterLab from the venv starts, serves the `vosapp`
kernelspec, and stops. Marked `jupyter_server` (select with -m jupyter_server)."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.foundation.conftest import REPO_ROOT, VENV_BIN, vosapp_command
from tests.support import free_port

pytestmark = [pytest.mark.jupyter_server, pytest.mark.timeout(60)]
STARTUP_LIMIT_S = 30


def wait_for_server_info(runtime_dir: Path, proc: subprocess.Popen[bytes]) -> dict:
    """The server's info file, once its port accepts connections: Jupyter Server 2 writes
    the file before its IO loop binds the port (``_bind_http_server`` is a loop callback), so
    a request sent on the file alone was refused once (a clean-clone run, 2026-12-05)."""
    deadline = time.monotonic() + STARTUP_LIMIT_S
    info: dict | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"jupyter lab exited early with {proc.returncode}")
        for info_file in runtime_dir.glob("jpserver-*.json"):
            try:
                info = json.loads(info_file.read_text())
            except (json.JSONDecodeError, OSError):
                pass  # being written
        if info is not None:
            try:
                socket.create_connection(("127.0.0.1", info["port"]), timeout=1).close()
            except OSError:
                pass  # not listening yet
            else:
                return info
        time.sleep(0.2)
    raise AssertionError(f"jupyter lab did not start within {STARTUP_LIMIT_S} s")


@dataclass
class RunningLab:
    proc: subprocess.Popen[bytes]
    info: dict
    data_dir: Path
    token: str
    log: Path

    def get(self, path: str) -> urllib.request.Request:
        return urllib.request.Request(f"http://127.0.0.1:{self.info['port']}{path}",
                                      headers={"Authorization": f"token {self.token}"})


@pytest.fixture
def running_lab(tmp_path: Path, clean_env: dict[str, str]) -> Iterator[RunningLab]:
    """`vosapp lab` with its background switch, in its own process group; killed at the end
    if the test did not stop it."""
    if not (VENV_BIN / "jupyter").exists():
        pytest.fail("JupyterLab is not installed in .venv: run `make setup`")
    token = secrets.token_hex(16)
    runtime_dir = tmp_path / "runtime"
    env = dict(clean_env, JUPYTER_TOKEN=token, JUPYTER_RUNTIME_DIR=str(runtime_dir),
               JUPYTER_CONFIG_DIR=str(tmp_path / "jupyter-config"),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "workspaces"),
               IPYTHONDIR=str(tmp_path / "ipython"))
    log_path = tmp_path / "jupyter.log"
    log = log_path.open("wb")
    data_dir = tmp_path / "data"
    proc = subprocess.Popen([*vosapp_command(), "lab", "--no-browser",
                             "--port", str(free_port("tcp")), "--data-dir", str(data_dir),
                             "--switch-listen", "127.0.0.1:0"],
                            cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        yield RunningLab(proc, wait_for_server_info(runtime_dir, proc), data_dir, token,
                         log_path)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        log.close()


def assert_switch_stopped(lab: RunningLab, switch_pid: int) -> None:
    """vosapp lab stopped its switch gracefully when JupyterLab ended."""
    assert not (lab.data_dir / "control.json").exists(), lab.log.read_text()
    with pytest.raises(ProcessLookupError):
        os.kill(switch_pid, 0)


def test_vosapp_lab_serves_the_vosapp_kernelspec(running_lab: RunningLab) -> None:
    lab = running_lab
    assert lab.info["root_dir"] == str(REPO_ROOT / "notebooks")
    with urllib.request.urlopen(lab.get("/api/kernelspecs"), timeout=10) as response:
        specs = json.load(response)
    assert "vosapp" in specs["kernelspecs"], (
        f"kernelspec 'vosapp' missing (found {sorted(specs['kernelspecs'])}); "
        "run `make setup` to install it into the venv")
    spec = specs["kernelspecs"]["vosapp"]["spec"]
    assert spec["language"] == "python" and "ipykernel_launcher" in spec["argv"]
    # ... and a working switch beside it, on the selected configuration
    switch_pid = json.loads((lab.data_dir / "control.json").read_text())["pid"]
    from vosapp.lab.attach import attach
    status = attach(lab.data_dir).status()
    host, port = status["sip_address"]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.bind(("127.0.0.1", 0))
        sock.sendto(OPTIONS.format(port=sock.getsockname()[1]).encode(), (host, int(port)))
        answer = sock.recv(65535)
    assert answer.startswith(b"SIP/2.0 200"), answer[:80]
    os.killpg(lab.proc.pid, signal.SIGTERM)
    lab.proc.wait(timeout=30)
    assert_switch_stopped(lab, switch_pid)


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def test_opens_start_here_and_ctrl_c_stops_everything(running_lab: RunningLab) -> None:
    lab = running_lab
    with pytest.raises(urllib.error.HTTPError) as redirect:
        urllib.request.build_opener(NoRedirect).open(lab.get("/"), timeout=10)
    assert redirect.value.code == 302
    assert redirect.value.headers["Location"].startswith("/lab/tree/00-start-here.ipynb")
    switch_pid = json.loads((lab.data_dir / "control.json").read_text())["pid"]
    # Ctrl-C in the terminal: SIGINT to `vosapp lab` (JupyterLab runs in its own session)
    os.kill(lab.proc.pid, signal.SIGINT)
    assert lab.proc.wait(timeout=30) is not None
    assert "SIGINT: stopping JupyterLab and the switch" in lab.log.read_text()
    with pytest.raises(ProcessLookupError):
        os.kill(lab.info["pid"], 0)  # JupyterLab is gone ...
    assert_switch_stopped(lab, switch_pid)  # ... and so is the switch


OPTIONS = ("OPTIONS sip:lab@127.0.0.1 SIP/2.0\r\n"
           "Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-lab-check\r\n"
           "From: <sip:check@127.0.0.1>;tag=1\r\nTo: <sip:lab@127.0.0.1>\r\n"
           "Call-ID: lab-check\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
           "Content-Length: 0\r\n\r\n")
