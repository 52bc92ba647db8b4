"""bench/calls.sh's pieces against the real SIPp: the caller scenario bench/calls_uac.xml
(plain path, straight to the bench's callee) and bench/sipp_stats.py's reading of what both
SIPp processes leave behind (a clean step, then a step whose calls the callee never answers,
a step whose callee sends a response the caller's scenario does not expect, and steps through
a forwarder that lets each BYE overtake its ACK, or loses the ACKs)."""

from __future__ import annotations

import selectors
import socket
import subprocess
import threading
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


def callee(tmp_path: Path, port: int, calls: int,
           scenario: str | None = None) -> tuple[Path, subprocess.Popen[str]]:
    """bench/calls.sh's callee (``scenario``: its text changed further) on ``port``."""
    uas_dir = tmp_path / "uas"
    uas_dir.mkdir()
    path = tmp_path / "bench_uas.xml"
    path.write_text(scenario or sipp_stats.callee_scenario())
    return uas_dir, start_sipp(path, cwd=uas_dir, local_port=port, calls=calls,
                               extra=["-mp", str(free_port()), *sipp_stats.UAS_FLAGS, *STATS])


def test_a_step_is_clean_only_when_the_callee_completed_every_call(tmp_path: Path) -> None:
    port = free_port()
    uas_dir, process = callee(tmp_path, port, calls=3)
    uac_dir = caller(tmp_path, port, calls=3)
    process.wait(timeout=30)
    fields = sipp_stats.step_line(uac_dir, uas_dir, 0.5).split()
    # placed ok failed retrans uas_ok uas_failed uas_retrans p50 p99 per_cpu stray clean
    assert fields[:7] == ["3", "3", "0", "0", "3", "0", "0"]
    assert fields[9:] == ["6", "0", "yes"]
    assert sipp_stats.acks_received(uas_dir) == 3 and sipp_stats.late_acks(uas_dir) == 0
    # bench/registrar.sh's reading of a run: rate failed elapsed ok p50 p99 per_cpu, then the
    # kernel's share of the CPU seconds when their system part is given
    assert sipp_stats.rate_line(uac_dir, 1.0, 0.5).split()[:4] == ["3", "0", "1.00", "3"]
    assert sipp_stats.rate_line(uac_dir, 1.0, 0.5).split()[6:] == ["6"]
    assert sipp_stats.rate_line(uac_dir, 1.0, 0.5, 0.05).split()[6:] == ["6", "0.10"]
    assert sipp_stats.rate_line(uac_dir, 1.0, 0, 0).split()[6:] == ["-", "-"]
    # the same step, as if one call had not reached the callee
    header, *rows = (uas_dir / "stats.csv").read_text().splitlines()
    names, values = header.split(";"), rows[-1].split(";")
    values[names.index("SuccessfulCall(C)")] = "2"
    (uas_dir / "stats.csv").write_text(f"{header}\n{';'.join(values)}\n")
    fields = sipp_stats.step_line(uac_dir, uas_dir, 0).split()
    assert fields[4] == "2" and fields[9:] == ["-", "0", "no"]


def test_a_stray_response_is_counted_and_the_call_still_completes(tmp_path: Path) -> None:
    # a callee that sends a 183 between its 180 and its 200: calls_uac.xml expects none (as
    # Sippy's 180 after its 200); UAC_FLAGS make the caller ignore and count it
    scenario = sipp_stats.callee_scenario()
    ringing = scenario.index("  <send retrans=\"500\">")
    progress = scenario[scenario.index("  <send>\n    <![CDATA[\n      SIP/2.0 180"):ringing]
    port = free_port()
    uas_dir, process = callee(tmp_path, port, calls=2, scenario=scenario[:ringing] + progress.replace(
        "180 Ringing", "183 Session Progress") + scenario[ringing:])
    uac_dir = caller(tmp_path, port, calls=2)
    process.wait(timeout=30)
    fields = sipp_stats.step_line(uac_dir, uas_dir, 0.5).split()
    assert fields[:7] == ["2", "2", "0", "0", "2", "0", "0"]
    assert fields[10:] == ["2", "yes"]


class AckReorderingForwarder:
    """A B2BUA stand-in between the caller and the callee: forwards every datagram, but holds
    each ACK until the BYE of its call has gone (as Sippy's sender threads do at times), or
    with ``lose_acks`` never sends it."""

    def __init__(self, callee_port: int, lose_acks: bool = False) -> None:
        self.front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.front.bind(("127.0.0.1", 0))
        self.back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.back.bind(("127.0.0.1", 0))
        self.port = self.front.getsockname()[1]
        self.callee = ("127.0.0.1", callee_port)
        self.lose_acks = lose_acks
        self.caller: tuple[str, int] | None = None
        self.held: dict[bytes, bytes] = {}
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self.front, selectors.EVENT_READ)
            selector.register(self.back, selectors.EVENT_READ)
            while not self.stopping.is_set():
                for key, _ in selector.select(0.1):
                    data, source = key.fileobj.recvfrom(65535)  # type: ignore[union-attr]
                    if key.fileobj is self.back:
                        if self.caller is not None:
                            self.front.sendto(data, self.caller)
                        continue
                    self.caller = source
                    call_id = next(line for line in data.split(b"\r\n")
                                   if line.lower().startswith(b"call-id:"))
                    if data.startswith(b"ACK "):
                        if not self.lose_acks:
                            self.held[call_id] = data
                        continue
                    self.back.sendto(data, self.callee)
                    if data.startswith(b"BYE ") and call_id in self.held:
                        self.back.sendto(self.held.pop(call_id), self.callee)

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=5)
        self.front.close()
        self.back.close()


@pytest.mark.parametrize("lose_acks", [False, True], ids=["late-acks", "lost-acks"])
def test_a_bye_that_overtook_its_ack_completes_the_call_and_a_lost_ack_does_not(
        tmp_path: Path, lose_acks: bool) -> None:
    port = free_port()
    uas_dir, process = callee(tmp_path, port, calls=3)
    forwarder = AckReorderingForwarder(port, lose_acks=lose_acks)
    try:
        uac_dir = caller(tmp_path, forwarder.port, calls=3)
        process.wait(timeout=30)
    finally:
        forwarder.close()
    fields = sipp_stats.step_line(uac_dir, uas_dir, 0.5).split()
    # every call completed at both ends, without a retransmission, either way
    assert fields[:7] == ["3", "3", "0", "0", "3", "0", "0"]
    assert sipp_stats.acks_received(uas_dir) == 0
    if lose_acks:
        # no ACK ever reached the callee: not clean
        assert sipp_stats.late_acks(uas_dir) == 0 and fields[10:] == ["0", "no"]
    else:
        # each ACK came after its BYE: ignored and counted by the callee, and clean
        assert sipp_stats.late_acks(uas_dir) == 3 and fields[10:] == ["3", "yes"]


def test_the_callee_scenario_is_made_or_refused(tmp_path: Path) -> None:
    scenario = sipp_stats.callee_scenario()
    assert "[transport]" not in scenario and 'request="ACK" crlf="true" optional="true"' in scenario
    with pytest.raises(ValueError, match="no '<recv request=\"ACK\""):
        sipp_stats.uas_scenario(scenario.replace('<recv request="ACK" crlf="true" optional="true"/>',
                                                 '<recv request="ACK"/>')
                                .replace("Contact: <sip:[local_ip]:[local_port]>",
                                         "Contact: <sip:[local_ip]:[local_port];transport=[transport]>"))
