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
import urllib.request
from pathlib import Path

import pytest

from tests.foundation.conftest import REPO_ROOT, VENV_BIN, vosapp_command
from tests.support import free_port

pytestmark = [pytest.mark.jupyter_server, pytest.mark.timeout(60)]
STARTUP_LIMIT_S = 30


def wait_for_server_info(runtime_dir: Path, proc: subprocess.Popen[bytes]) -> dict:
    deadline = time.monotonic() + STARTUP_LIMIT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"jupyter lab exited early with {proc.returncode}")
        for info_file in runtime_dir.glob("jpserver-*.json"):
            try:
                return json.loads(info_file.read_text())
            except (json.JSONDecodeError, OSError):
                pass  # being written
        time.sleep(0.2)
    raise AssertionError(f"jupyter lab did not start within {STARTUP_LIMIT_S} s")


def test_vosapp_lab_serves_the_vosapp_kernelspec(tmp_path: Path,
                                                 clean_env: dict[str, str]) -> None:
    if not (VENV_BIN / "jupyter").exists():
        pytest.fail("JupyterLab is not installed in .venv: run `make setup`")
    token = secrets.token_hex(16)
    runtime_dir = tmp_path / "runtime"
    env = dict(clean_env, JUPYTER_TOKEN=token, JUPYTER_RUNTIME_DIR=str(runtime_dir),
               JUPYTER_CONFIG_DIR=str(tmp_path / "jupyter-config"),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "workspaces"),
               IPYTHONDIR=str(tmp_path / "ipython"))
    log = (tmp_path / "jupyter.log").open("wb")
    data_dir = tmp_path / "data"
    proc = subprocess.Popen([*vosapp_command(), "lab", "--no-browser",
                             "--port", str(free_port("tcp")), "--data-dir", str(data_dir),
                             "--switch-listen", "127.0.0.1:0"],
                            cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        info = wait_for_server_info(runtime_dir, proc)
        assert info["root_dir"] == str(REPO_ROOT / "notebooks")
        request = urllib.request.Request(
            f"http://127.0.0.1:{info['port']}/api/kernelspecs",
            headers={"Authorization": f"token {token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            specs = json.load(response)
        assert "vosapp" in specs["kernelspecs"], (
            f"kernelspec 'vosapp' missing (found {sorted(specs['kernelspecs'])}); "
            "run `make setup` to install it into the venv")
        spec = specs["kernelspecs"]["vosapp"]["spec"]
        assert spec["language"] == "python" and "ipykernel_launcher" in spec["argv"]
        # ... and a working switch beside it, on the selected configuration
        control = json.loads((data_dir / "control.json").read_text())
        switch_pid = control["pid"]
        from vosapp.lab.attach import attach
        status = attach(data_dir).status()
        host, port = status["sip_address"]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(5)
            sock.bind(("127.0.0.1", 0))
            sock.sendto(OPTIONS.format(port=sock.getsockname()[1]).encode(), (host, int(port)))
            answer = sock.recv(65535)
        assert answer.startswith(b"SIP/2.0 200"), answer[:80]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        log.close()
    # vosapp lab stopped its switch gracefully when JupyterLab ended
    assert not (data_dir / "control.json").exists(), (tmp_path / "jupyter.log").read_text()
    with pytest.raises(ProcessLookupError):
        os.kill(switch_pid, 0)


OPTIONS = ("OPTIONS sip:lab@127.0.0.1 SIP/2.0\r\n"
           "Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-lab-check\r\n"
           "From: <sip:check@127.0.0.1>;tag=1\r\nTo: <sip:lab@127.0.0.1>\r\n"
           "Call-ID: lab-check\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
           "Content-Length: 0\r\n\r\n")
