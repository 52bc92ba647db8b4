"""Executes every notebook under notebooks/ top to bottom on the `vosapp` kernel.

Notebooks carry their own assertions (e.g. measured guesses per hour <= 120), so a notebook
that runs to the end is a notebook whose claims held on this run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.notebook
@pytest.mark.timeout(600)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(path: Path, tmp_path: Path) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.read(path, as_version=4)
    # Each run gets its own data directory so notebooks never share state with a user's lab.
    env_backup = dict(os.environ)
    os.environ["VOSAPP_DATA_DIR"] = str(tmp_path / "data")
    os.environ["VOSAPP_CONFIG"] = str(ROOT / "data" / "lab.toml")
    scratch = tmp_path / "tmp"  # the kernel's temporary directory: must be clean afterwards
    scratch.mkdir()
    os.environ["TMPDIR"] = str(scratch)
    try:
        client = nbclient.NotebookClient(
            notebook,
            timeout=300,
            kernel_name="vosapp",
            resources={"metadata": {"path": str(path.parent)}},
        )
        client.execute()
    finally:
        os.environ.clear()
        os.environ.update(env_backup)
    left = sorted(p.name for p in scratch.iterdir() if p.name.startswith("vosapp-"))
    assert left == [], f"{path.name} left temporary directories behind: {left}"
