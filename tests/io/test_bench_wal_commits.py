"""bench/wal_commits.py's machinery (not a figure): a short run prints its line, the thread
having checkpointed."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.support.serving import ROOT


def test_the_bench_prints_the_commits_and_the_log() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "wal_commits.py"), "--seconds",
                          "1", "--row-kb", "4"], check=True, capture_output=True, text=True,
                         timeout=60).stdout
    line = re.search(r"([\d,]+) commits in 1 s; over 1 ms (\d+), over 5 ms (\d+), longest "
                     r"[\d.]+ ms; the log's high-water mark ([\d,]+) pages; (\d+) checkpoints",
                     out)
    assert line, out
    commits = int(line.group(1).replace(",", ""))
    assert commits > 100 and int(line.group(3)) <= int(line.group(2)) <= commits
    assert int(line.group(5)) >= 1
