"""bench/registrar_instructions.py: instructions per registration counted by valgrind, so
that the benchmark cannot rot silently, and the property it exists for: two runs of the same
server count the same, where time moves by 2 x from day to day."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest

from tests.support import needs_sipp
from tests.support.serving import ROOT

needs_valgrind = pytest.mark.skipif(shutil.which("valgrind") is None,
                                    reason="valgrind not installed (scripts/sysdeps.sh)")
LINE = re.compile(r"^(\S+)\s*: ([\d,]+) thousand instructions per registration \((\d+), counted over "
                  r"[\d.]+ s, idle [\d.]+ M/s subtracted; (\d+) failed, (\d+) retransmissions\)$",
                  re.MULTILINE)


def _count(*servers: str, registrations: int = 40) -> tuple[dict[str, int], str]:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "registrar_instructions.py"),
         "--servers", ",".join(servers), "--users", "20",
         "--registrations", str(registrations), "--idle", "1", "--tail", "1"],
        capture_output=True, text=True, timeout=400, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    counts = {}
    for server, thousands, done, failed, resent in LINE.findall(result.stdout):
        assert (int(done), int(failed), int(resent)) == (registrations, 0, 0), result.stdout
        counts[server] = int(thousands.replace(",", ""))
    return counts, result.stdout


@pytest.mark.sipp
@needs_sipp
@needs_valgrind
def test_vosapp_and_the_python_minimum_are_counted_registration_by_registration() -> None:
    counts, output = _count("vosapp", "minimum-memory")
    assert set(counts) == {"vosapp", "minimum-memory"}, output
    # A registration is tens of thousands of instructions at least (two requests parsed,
    # a digest checked, two responses built), whatever the server.
    assert all(count > 20 for count in counts.values()), output
    # no Kamailio asked for: nothing to compare with
    assert re.search(r"^ratio ", output, re.MULTILINE) is None, output


@pytest.mark.sipp
@needs_sipp
@needs_valgrind
def test_two_counts_of_the_same_server_agree() -> None:
    first, _ = _count("minimum-memory")
    second, _ = _count("minimum-memory")
    assert abs(first["minimum-memory"] - second["minimum-memory"]) \
        <= 0.02 * first["minimum-memory"], (first, second)


def test_an_unknown_server_is_refused_by_name() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "registrar_instructions.py"),
         "--servers", "vosapp,asterisk"], capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert "unknown server(s) asterisk" in result.stderr
