"""bench/fd_table.py's machinery (not a figure): both modes run in fresh processes, and the
reserving one reports the descriptor table grown to the size asked before any socket."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.support.serving import ROOT


def test_the_bench_reports_both_modes_and_the_reserved_table() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "fd_table.py"), "--sockets",
                          "300", "--reserve", "2000"], check=True, capture_output=True,
                         text=True, timeout=120).stdout
    lines = out.splitlines()
    assert [line.split(":")[0].strip() for line in lines] == [
        "without reservation", "reserved at start"]
    without = re.search(r"table (\d+) -> (\d+), reserved 0 ", lines[0])
    reserved = re.search(r"table (\d+) -> (\d+), reserved 2000 ", lines[1])
    assert without and reserved, out
    assert int(without.group(2)) < 2000 <= int(reserved.group(2))
