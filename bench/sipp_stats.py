"""Reads what SIPp leaves behind for the shell benchmarks (bench/calls.sh, bench/registrar.sh).

    python bench/sipp_stats.py step UAC_DIR UAS_DIR CPU_SECONDS
        one step of the calls step search; prints "offered ok failed retrans uas_ok
        uas_failed uas_retrans p50 p99 per_cpu_second stray clean" (clean = "yes" when no
        call failed at either end, nothing was retransmitted, the UAS completed every call
        the UAC placed and received every call's ACK: RFC 7501 section 4's criterion).
        retrans counts what that SIPp retransmitted plus the messages the B2BUA retransmitted
        after the call had ended (SIPp's dead-call messages, e.g. a 200 resent because the
        ACK came late). stray counts the messages either SIPp ignored within a call
        (UAC_FLAGS, UAS_FLAGS: e.g. a 180 that came after the 200, an ACK that came after the
        BYE); they do not make a step unclean, a call that did not complete does
    python bench/sipp_stats.py uac-flags
        prints UAC_FLAGS, the options bench/calls.sh gives its SIPp caller
    python bench/sipp_stats.py uas-flags
        prints UAS_FLAGS, the options it gives its SIPp callee
    python bench/sipp_stats.py uas-scenario DEST
        writes the callee's scenario (uas_scenario) to DEST
    python bench/sipp_stats.py rate DIR ELAPSED CPU_SECONDS [SYSTEM_SECONDS]
        a rate run (bench/registrar.sh); prints "rate failed elapsed ok p50 p99 per_cpu_second",
        and with SYSTEM_SECONDS (the part of CPU_SECONDS spent in the kernel) its share of
        CPU_SECONDS after them ("-" when CPU_SECONDS is 0)

UAC_DIR / DIR holds SIPp's ``-trace_stat -stf stats.csv`` and ``-trace_rtt`` files; UAS_DIR
the callee's ``-trace_stat -stf stats.csv``, ``-trace_counts`` and ``-trace_err`` files.
Latencies are the rtd 1 response times in ms (SIPp's resolution). A CPU_SECONDS of 0 means
unknown (per_cpu_second "-").
"""

from __future__ import annotations

import csv
import re
import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent


def totals(path: Path) -> dict[str, str]:
    """The cumulative counters of a SIPp ``-trace_stat`` file: its last row by column name
    (empty when SIPp never wrote one, e.g. it could not start)."""
    if not path.exists():
        return {}
    rows = list(csv.reader(path.read_text(errors="replace").splitlines(), delimiter=";"))
    if len(rows) < 2:
        return {}
    return dict(zip(rows[0], rows[-1], strict=False))


def count(stats: dict[str, str], name: str) -> int:
    """One cumulative counter, e.g. ``count(stats, "SuccessfulCall")``; 0 when absent."""
    value = stats.get(f"{name}(C)", "")
    return int(value) if value.isdigit() else 0


def response_times(directory: Path) -> list[float]:
    """Every rtd response time (ms) SIPp wrote with ``-trace_rtt -rtt_freq 1``, sorted."""
    times = []
    for path in directory.glob("*_rtt.csv"):
        for line in path.read_text(errors="replace").splitlines():
            parts = line.split(";")
            if len(parts) >= 3 and parts[0][:1].isdigit():
                times.append(float(parts[1]))
    return sorted(times)


def percentile(ordered: list[float], fraction: float) -> float:
    """The nearest-rank percentile of an ordered list (nan when empty)."""
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


#: The calls bench's caller does not abort a call on a message its scenario does not expect
#: at that point: a UA drops a provisional response that arrives after the final one (RFC 3261
#: 17.1.1.2: the INVITE client transaction has ended), and Sippy B2BUA's sender threads let
#: a 180 overtake its 200 at times. SIPp logs each such message (-trace_err); the call must
#: still complete to count.
UAC_FLAGS = ("-default_behaviors", "all,-abortunexp", "-trace_err")
#: The callee likewise, and it counts the messages of each scenario step (-trace_counts): the
#: same threads let the caller's BYE overtake its ACK at times (the caller sends them back to
#: back). The callee's scenario takes that order (uas_scenario) and ignores the ACK that comes
#: after, during its 500 ms wait; step_line checks that every call's ACK came all the same.
UAS_FLAGS = (*UAC_FLAGS, "-trace_counts")
_STRAY = "Continuing call on unexpected message"
# the first line of such an entry ends with the first line of the message SIPp ignored
_LATE_ACK = re.compile(re.escape(_STRAY) + r"[^\n]*received 'ACK ")

#: What the calls bench's callee changes in the tests' tests/sipp/call_uas.xml:
#: - no ";transport=UDP" in its Contact: Sippy 2.5 sends nothing (not even the BYE) to a URI
#:   whose transport parameter is upper case ("unsupported transport");
#: - its ACK is optional, so a BYE that overtook the ACK ends the call. The UAS's dialog
#:   exists once it has sent its 2xx (RFC 3261 12.1.1) and a BYE on it ends the session
#:   (15.1.2); the ACK, never answered, is then ignored by the callee and counted (UAS_FLAGS).
_UAS_EDITS = ((";transport=[transport]", ""),
              ('<recv request="ACK" crlf="true"/>',
               '<recv request="ACK" crlf="true" optional="true"/>'))


def uas_scenario(text: str) -> str:
    """The calls bench's callee scenario made from ``text`` (tests/sipp/call_uas.xml's); a
    ValueError when an edit of _UAS_EDITS finds nothing to change (the scenario moved on)."""
    for old, new in _UAS_EDITS:
        if old not in text:
            raise ValueError(f"call_uas.xml has no {old!r} to change")
        text = text.replace(old, new)
    return text


def callee_scenario() -> str:
    """The calls bench's callee scenario: tests/sipp/call_uas.xml through uas_scenario."""
    return uas_scenario((_ROOT / "tests" / "sipp" / "call_uas.xml").read_text())


def _errors(directory: Path) -> str:
    """The -trace_err log(s) of the SIPp in ``directory`` ("" when it wrote none)."""
    return "".join(path.read_text(errors="replace") for path in directory.glob("*_errors.log"))


def stray(directory: Path) -> int:
    """Messages the SIPp in ``directory`` ignored within a call (its -trace_err log)."""
    return _errors(directory).count(_STRAY)


def late_acks(directory: Path) -> int:
    """ACKs the callee in ``directory`` ignored because its call had taken the BYE already."""
    return len(_LATE_ACK.findall(_errors(directory)))


def acks_received(directory: Path) -> int:
    """ACKs the callee in ``directory`` received in their place in the scenario (its
    -trace_counts file's last row; -1 when there is none, e.g. SIPp without -trace_counts)."""
    for path in directory.glob("*_counts.csv"):
        rows = list(csv.reader(path.read_text(errors="replace").splitlines(), delimiter=";"))
        if len(rows) >= 2:
            for name, value in zip(rows[0], rows[-1], strict=False):
                if name.endswith("_ACK_Recv") and value.isdigit():
                    return int(value)
    return -1


def per_cpu(done: int, cpu_seconds: float) -> str:
    return f"{done / cpu_seconds:.0f}" if cpu_seconds > 0 else "-"


def step_line(uac_dir: Path, uas_dir: Path, cpu_seconds: float) -> str:
    uac, uas = totals(uac_dir / "stats.csv"), totals(uas_dir / "stats.csv")
    placed, ok, failed = (count(uac, "OutgoingCall"), count(uac, "SuccessfulCall"),
                          count(uac, "FailedCall"))
    retrans = count(uac, "Retransmissions") + count(uac, "DeadCallMsgs")
    uas_ok, uas_failed = count(uas, "SuccessfulCall"), count(uas, "FailedCall")
    uas_retrans = count(uas, "Retransmissions") + count(uas, "DeadCallMsgs")
    # every completed call was ACKed: in its place, or after the BYE (uas_scenario)
    uas_errors = _errors(uas_dir)
    acked = acks_received(uas_dir) + len(_LATE_ACK.findall(uas_errors)) == uas_ok
    clean = (placed > 0 and failed == 0 and uas_failed == 0 and retrans == 0
             and uas_retrans == 0 and ok == placed and uas_ok == placed and acked)
    times = response_times(uac_dir)
    return (f"{placed} {ok} {failed} {retrans} {uas_ok} {uas_failed} {uas_retrans} "
            f"{percentile(times, 0.5):.0f} {percentile(times, 0.99):.0f} "
            f"{per_cpu(ok, cpu_seconds)} {stray(uac_dir) + uas_errors.count(_STRAY)} "
            f"{'yes' if clean else 'no'}")


def rate_line(directory: Path, elapsed: float, cpu_seconds: float,
              system_seconds: float | None = None) -> str:
    stats = totals(directory / "stats.csv")
    ok, failed = count(stats, "SuccessfulCall"), count(stats, "FailedCall")
    times = response_times(directory)
    line = (f"{ok / elapsed:.0f} {failed} {elapsed:.2f} {ok} {percentile(times, 0.5):.1f} "
            f"{percentile(times, 0.99):.1f} {per_cpu(ok, cpu_seconds)}")
    if system_seconds is None:
        return line
    return f"{line} {system_seconds / cpu_seconds:.2f}" if cpu_seconds > 0 else f"{line} -"


def main(argv: list[str]) -> None:
    if len(argv) == 4 and argv[0] == "step":
        print(step_line(Path(argv[1]), Path(argv[2]), float(argv[3])))
    elif argv == ["uac-flags"]:
        print(" ".join(UAC_FLAGS))
    elif argv == ["uas-flags"]:
        print(" ".join(UAS_FLAGS))
    elif len(argv) == 2 and argv[0] == "uas-scenario":
        Path(argv[1]).write_text(callee_scenario())
    elif len(argv) in (4, 5) and argv[0] == "rate":
        print(rate_line(Path(argv[1]), float(argv[2]), float(argv[3]),
                        float(argv[4]) if len(argv) == 5 else None))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
