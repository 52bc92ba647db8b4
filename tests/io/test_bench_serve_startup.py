"""bench/serve_startup.py, so that it cannot rot silently: it starts ``vosapp serve`` and
reads its ready line, says whether the start imported scipy.signal, and shows serve's own
error when a configuration stops it (the seconds are not checked: no speed in tests)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.support.serving import ROOT

BENCH = str(ROOT / "bench" / "serve_startup.py")
ROW = re.compile(r"^  (\S+) +median ([\d.]+) s \(([\d. ]+)\); import ([\d.]+) s, "
                 r"scipy\.signal (imported|not imported)$", re.MULTILINE)


def test_two_starts_are_timed_and_the_start_imports_no_scipy() -> None:
    result = subprocess.run([sys.executable, BENCH, "--runs", "2"], capture_output=True,
                            text=True, timeout=120, check=True)
    [(checkout, median, runs, _imported, scipy)] = ROW.findall(result.stdout)
    assert Path(checkout) == ROOT and len(runs.split()) == 2, result.stdout
    assert float(median) > 0 and scipy == "not imported", result.stdout


def test_a_configuration_serve_refuses_is_reported_with_serves_error(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[[mapping_gateway]]\nname = "customer"\n')
    result = subprocess.run([sys.executable, BENCH, "--runs", "1", "--config", str(config)],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode != 0
    assert "printed no ready line" in result.stderr, result.stderr
    assert "a mapping gateway needs accounts or addresses" in result.stderr, result.stderr
