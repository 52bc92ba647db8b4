"""The notebooks' sources: every notebooks/NN-name.py and its .ipynb say the same, the committed
.ipynb carry no outputs, and ruff passes over the .py sources."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("jupytext")

from vosapp.lab.notebook_sources import NOTEBOOKS_DIR, problems, sources


def test_every_notebook_has_a_source_and_they_are_in_step() -> None:
    assert len(sources()) >= 6
    assert problems() == []


def test_ruff_passes_over_the_notebook_sources() -> None:
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    result = subprocess.run([ruff, "check", *map(str, sources())], capture_output=True,
                            text=True, check=False, cwd=NOTEBOOKS_DIR.parent, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
