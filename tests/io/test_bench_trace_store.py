"""bench/trace_store.py's machinery (not a figure): every pass runs and reads its call back,
and the tables come out with the three schemas and both prune policies."""

from __future__ import annotations

import subprocess
import sys

from tests.support.serving import ROOT


def test_the_bench_prints_three_schemas_and_both_prune_policies() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "trace_store.py"), "--messages",
                          "2000", "--cap", "3000", "--rounds", "1", "--budget-mb", "1"],
                         check=True, capture_output=True, text=True, timeout=300).stdout
    rows = [[cell.strip() for cell in line.split("|")[1:-1]] for line in out.splitlines()
            if line.startswith("| ") and not line.startswith(("| table", "| code"))]
    assert [row[0] for row in rows] == [
        "fresh", "fresh", "fresh", "fresh: 3 / 4", "fresh: 2 / 3",
        "at its cap of 3,000 rows", "at its cap of 3,000 rows", "at its cap of 3,000 rows",
        "at its cap of 3,000 rows: 3 / 4", "at its cap of 3,000 rows: 2 / 3",
        ("before the fifteenth round: Call-ID index, fields read, pruned down to 90 %, "
         "batches of 256"),
        "this checkout (batches of 64)"], out
    assert [row[1] for row in rows[:3]] == [
        "4: fields not read (this checkout)", "3: fields read and stored",
        "2: fields read, stored, Call-ID index"], out
    # Log bytes, not time: the index's pages are written besides the table's in every run.
    assert float(rows[4][2]) > 1.0, out
