"""Fixtures for the foundation tests (params, config, store, CLI, lab)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = REPO_ROOT / ".venv" / "bin"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "jupyter_server: starts a real JupyterLab server (headless, < 30 s)")


def vosapp_command() -> list[str]:
    """The installed console script when present, else the same entry point via -m."""
    script = VENV_BIN / "vosapp"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from vosapp.cli import main; sys.exit(main())"]


@pytest.fixture
def clean_env(tmp_path: Path) -> dict[str, str]:
    """Environment without VOSAPP_* variables, so only explicit options count."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOSAPP_")}
    env["HOME"] = str(tmp_path)
    return env


@pytest.fixture
def vosapp(tmp_path: Path, clean_env: dict[str, str]
           ) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the real `vosapp` in a subprocess (cwd: an empty temp dir, so no ./data/lab.toml)."""
    workdir = tmp_path / "cwd"
    workdir.mkdir()

    def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*vosapp_command(), *args], check=False, cwd=workdir,
                              env=env or clean_env,
                              capture_output=True, text=True, timeout=60)

    return run
