"""bench/calls.sh's pieces against the real SIPp: the caller scenario bench/calls_uac.xml
(plain path, straight to the tests' callee) and bench/sipp_stats.py's reading of what both
SIPp processes leave behind (a clean step, then a step whose calls the callee never answers,
and a step whose callee sends a response the caller's scenario does not expect)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import free_port, needs_sipp
from tests.support.bench import load_bench
from tests.support.serving import ROOT
from tests.support.sipp import run_sipp, start_sipp

pytestmark = [pytest.mark.sipp, needs_sipp]

sipp_stats = load_bench("sipp_stats")

STATS = ["-trace_stat", "-stf", "stats.csv", "-fd", "3600"]


def caller(tmp_path: Path, remote_port: int, calls: int, timeout: float = 20) -> Path:
    uac_dir = tmp_path / "uac"
    uac_dir.mkdir()
    run_sipp(ROOT / "bench" / "calls_uac.xml", cwd=uac_dir, remote=f"127.0.0.1:{remote_port}",
             calls=calls, rate=20, timeout=timeout, timeout_error=False,
             extra=["-s", "0044123", "-mp", str(free_port()), "-trace_rtt", "-rtt_freq", "1",
                    *sipp_stats.UAC_FLAGS, *STATS])
    return uac_dir


def test_a_step_is_clean_only_when_the_callee_completed_every_call(tmp_path: Path) -> None:
    uas_dir, port = tmp_path / "uas", free_port()
    uas_dir.mkdir()
    callee = start_sipp("call_uas.xml", cwd=uas_dir, local_port=port, calls=3,
                        extra=["-mp", str(free_port()), *STATS])
    uac_dir = caller(tmp_path, port, calls=3)
    callee.wait(timeout=30)
    fields = sipp_stats.step_line(uac_dir, uas_dir / "stats.csv", 0.5).split()
    # placed ok failed retrans uas_ok uas_failed uas_retrans p50 p99 per_cpu stray clean
    assert fields[:7] == ["3", "3", "0", "0", "3", "0", "0"]
    assert fields[9:] == ["6", "0", "yes"]
    # the same step, as if one call had not reached the callee
    header, *rows = (uas_dir / "stats.csv").read_text().splitlines()
    names, values = header.split(";"), rows[-1].split(";")
    values[names.index("SuccessfulCall(C)")] = "2"
    (tmp_path / "short.csv").write_text(f"{header}\n{';'.join(values)}\n")
    fields = sipp_stats.step_line(uac_dir, tmp_path / "short.csv", 0).split()
    assert fields[4] == "2" and fields[9:] == ["-", "0", "no"]
    # bench/registrar.sh's reading of a run: rate failed elapsed ok p50 p99 per_cpu, then the
    # kernel's share of the CPU seconds when their system part is given
    assert sipp_stats.rate_line(uac_dir, 1.0, 0.5).split()[:4] == ["3", "0", "1.00", "3"]
    assert sipp_stats.rate_line(uac_dir, 1.0, 0.5).split()[6:] == ["6"]
    assert sipp_stats.rate_line(uac_dir, 1.0, 0.5, 0.05).split()[6:] == ["6", "0.10"]
    assert sipp_stats.rate_line(uac_dir, 1.0, 0, 0).split()[6:] == ["-", "-"]


def test_a_stray_response_is_counted_and_the_call_still_completes(tmp_path: Path) -> None:
    # a callee that sends a 183 between its 180 and its 200: calls_uac.xml expects none (as
    # Sippy's 180 after its 200); UAC_FLAGS make the caller ignore and count it
    scenario = (ROOT / "tests" / "sipp" / "call_uas.xml").read_text()
    ringing = scenario.index("  <send retrans=\"500\">")
    progress = scenario[scenario.index("  <send>\n    <![CDATA[\n      SIP/2.0 180"):ringing]
    stray_uas = tmp_path / "stray_uas.xml"
    stray_uas.write_text(scenario[:ringing] + progress.replace("180 Ringing", "183 Session Progress")
                         + scenario[ringing:])
    uas_dir, port = tmp_path / "uas", free_port()
    uas_dir.mkdir()
    callee = start_sipp(stray_uas, cwd=uas_dir, local_port=port, calls=2,
                        extra=["-mp", str(free_port()), *STATS])
    uac_dir = caller(tmp_path, port, calls=2)
    callee.wait(timeout=30)
    fields = sipp_stats.step_line(uac_dir, uas_dir / "stats.csv", 0.5).split()
    assert fields[:7] == ["2", "2", "0", "0", "2", "0", "0"]
    assert fields[10:] == ["2", "yes"]
