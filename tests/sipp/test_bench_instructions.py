"""bench/registrar_instructions.py and bench/calls_instructions.py: instructions per
registration and per call counted by valgrind (bench/instruction_count.py), so that the
benchmarks cannot rot silently, and the property they exist for: two runs of the same server
count the same, where time moves by 2 x from day to day."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import needs_sipp
from tests.support.serving import ROOT
from vosapp import compiled

needs_valgrind = pytest.mark.skipif(shutil.which("valgrind") is None,
                                    reason="valgrind not installed (scripts/sysdeps.sh)")
LINE = re.compile(r"^(\S+)\s*: ([\d,]+) thousand instructions per (?:registration|call) "
                  r"\((\d+), counted over "
                  r"[\d.]+ s, idle [\d.]+ M/s subtracted; (\d+) failed, (\d+) retransmissions\)$",
                  re.MULTILINE)


def _count(*servers: str, registrations: int = 40) -> tuple[dict[str, int], str]:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "registrar_instructions.py"),
         "--servers", ",".join(servers), "--users", "20",
         "--registrations", str(registrations), "--idle", "1", "--tail", "1",
         "--period", "1"],
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


@pytest.mark.sipp
@needs_sipp
@needs_valgrind
def test_calls_through_vosapp_with_digest_are_counted_and_a_missing_sippy_is_said(
        tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "calls_instructions.py"), "--b2buas",
         "digest,sippy", "--calls", "20", "--warm-up", "5", "--idle", "1", "--tail", "1",
         "--period", "1"],
        capture_output=True, text=True, timeout=400, check=False,
        env=dict(os.environ, SIPPY_VENV=str(tmp_path / "no-sippy")))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    [(server, thousands, done, failed, resent)] = LINE.findall(result.stdout)
    assert (server, done, failed, resent) == ("digest", "20", "0", "0"), result.stdout
    # a call through a B2BUA is two INVITE transactions, a challenge, two BYEs and their
    # dialogs: hundreds of thousands of instructions at least
    assert int(thousands.replace(",", "")) > 200, result.stdout
    assert f"sippy           : skipped (no Sippy in {tmp_path / 'no-sippy'}" in result.stdout
    assert re.search(r"^ratio ", result.stdout, re.MULTILINE) is None


def test_an_unknown_server_is_refused_by_name() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "registrar_instructions.py"),
         "--servers", "vosapp,asterisk"], capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert "unknown server(s) asterisk" in result.stderr
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "calls_instructions.py"),
         "--b2buas", "vosapp,yate"], capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert "unknown B2BUA(s) yate" in result.stderr


STAGE = re.compile(r"^  (.+?) +([\d.]+)  +(\S+)  \(([\d.]+)\)$", re.MULTILINE)


@needs_valgrind
def test_a_registration_is_counted_stage_by_stage_in_process(tmp_path: Path) -> None:
    """bench/registrar_stages.py --instructions: each stage counted in a callgrind child of
    its own, beside the whole registration and the Python minimum on the same traffic; with
    --keep, each stage's callgrind output stays for callgrind_annotate. --sources: the
    stages inside the switch's request path, which compiled code calls natively."""
    stages = ["SwitchCore.receive (the whole registration)",
              "python minimum: answer() (bindings in memory)", "Registrar.register",
              "SQL COMMIT", "respond 200 (bytes, trace, send)"]  # a label with commas
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "registrar_stages.py"), "--instructions",
         "--registrations", "20", "--users", "20", "--only", ",".join(stages),
         "--keep", str(tmp_path), "--sources"],
        capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = {label.strip(): (float(thousands), share, float(calls))
            for label, thousands, share, calls in STAGE.findall(result.stdout)}
    assert set(rows) == set(stages), result.stdout
    whole, minimum, register, commit, respond = (rows[stage] for stage in stages)
    assert whole[1:] == ("100.0%", 2.0) and minimum[2] == 2.0, result.stdout  # 2 requests each
    assert register[2] == 1.0 and commit[2] == 1.0, result.stdout  # one binding, one commit
    assert respond[2] == 1.0 and 0 < respond[0] < whole[0], result.stdout
    # nested stages count less than what holds them, and every one counts something
    assert whole[0] > register[0] > commit[0] > 0, result.stdout
    assert 0 < minimum[0] < whole[0], result.stdout
    kept = sorted(path.name for path in tmp_path.iterdir())
    assert kept == ["callgrind.Registrar-register.out", "callgrind.SQL-COMMIT.out",
                    "callgrind.SwitchCore-receive-the-whole-registration.out",
                    "callgrind.python-minimum-answer-bindings-in-memory.out",
                    "callgrind.respond-200-bytes-trace-send.out"], kept
    # callgrind_annotate reads it: the stage's functions, under the one collected from
    annotated = subprocess.run(
        ["callgrind_annotate", "--inclusive=yes",
         str(tmp_path / "callgrind.SwitchCore-receive-the-whole-registration.out")],
        capture_output=True, text=True, timeout=120, check=True).stdout
    assert "PROGRAM TOTALS" in annotated and "_operator_call" in annotated, annotated[:2000]


def test_a_stage_that_does_not_exist_is_named_in_the_error() -> None:
    """--only with a label no stage has: the run stops before counting anything, naming it
    and the stages there are (a typo would otherwise count nothing, silently)."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "registrar_stages.py"), "--instructions",
         "--users", "20", "--only", "Registrar.register,Registrar.registr"],
        capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode != 0
    assert "--only: no stage " in result.stderr, result.stderr[-2000:]
    assert "'Registrar.registr'" in result.stderr, result.stderr[-2000:]
    assert "Trace.message (4)" in result.stderr, result.stderr[-2000:]
    if compiled.why_sources() is None:
        # compiled, the switch's request path calls Registrar.register natively: the error
        # says where the stage is
        assert "'Registrar.register'" in result.stderr and "--sources" in result.stderr
    sources = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "registrar_stages.py"), "--instructions",
         "--users", "20", "--only", "Registrar.register,Registrar.registr", "--sources"],
        capture_output=True, text=True, timeout=300, check=False)
    assert sources.returncode != 0
    assert "--only: no stage 'Registrar.registr';" in sources.stderr, sources.stderr[-2000:]
    assert "respond 200 (bytes, trace, send)" in sources.stderr, sources.stderr[-2000:]
