"""bench/trace_store.py's machinery (not a figure): every pass runs and reads its call back,
and the three tables come out with both schemas and both prune policies."""

from __future__ import annotations

import subprocess
import sys

from tests.support.serving import ROOT


def test_the_bench_prints_both_schemas_and_both_prune_policies() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "trace_store.py"), "--messages",
                          "2000", "--cap", "3000", "--rounds", "1", "--budget-mb", "1"],
                         check=True, capture_output=True, text=True, timeout=300).stdout
    rows = [[cell.strip() for cell in line.split("|")[1:-1]] for line in out.splitlines()
            if line.startswith("| ") and not line.startswith(("| table", "| code"))]
    assert [row[0] for row in rows] == [
        "fresh", "fresh", "fresh: index / no index",
        "at its cap of 3,000 rows", "at its cap of 3,000 rows",
        "at its cap of 3,000 rows: index / no index",
        "before: Call-ID index, pruned down to 90 %, batches of 256",
        "this checkout (batches of 64)"], out
    assert [row[1] for row in rows[:2]] == ["no (this checkout)", "yes (schema 2)"], out
    # Log bytes, not time: the index's pages are written besides the table's in every run.
    assert float(rows[2][2]) > 1.0, out
