"""Lab scenarios leave no temporary directories behind."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from vosapp.lab.scenarios import virtual_outbound


def test_virtual_outbound_removes_its_scratch_config(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    run = virtual_outbound(max_expires=120)
    run.run(200)
    assert run.stop()
    assert list(tmp_path.iterdir()) == []
