"""Held calls with RTP and new calls set up, both through one ``vosapp serve`` (issue #14).

Usage::

    PYTHONPATH=$PWD .venv/bin/python bench/media_with_calls.py     # 1, then 200 relayed
    PYTHONPATH=$PWD .venv/bin/python bench/media_with_calls.py --media-calls 1,100 \\
        --rates 0,100,200 --hold 20 --mode transcode
    PYTHONPATH=$PWD/bench/release_timing:$PWD RELEASE_LOG=/tmp/r.log PERIOD=serve \\
        .venv/bin/python bench/media_with_calls.py          # + the switch's memory releases

bench/media_calls.py measures calls held with media, bench/calls.sh calls set up without
media; a switch in service does both at once. Here a switch (bench/media_calls.py's, kept
running across one search's steps) holds N calls with RTP both ways (``--mode relay``: PCMA
both sides; ``transcode``: PCMA ↔ G.729) and, during each step's hold, SIPp places calls at
RATE/s through it (bench/calls_uac.xml: INVITE, 100/180/200, ACK, BYE at once; a routing
gateway with prefix 77 and media proxy On leads to bench/calls.sh's SIPp callee, so each
of these calls also opens and closes a media relay, without RTP). The SIPp calls run for the
hold less 5 s. One step per RATE of ``--rates``, in order, until a step is not clean
(``--all``: every rate). One such search per N of ``--media-calls``, each on a fresh switch:
the first N (default 1: SIP alone, with one call's media to watch) is the same-run baseline
the others are compared with.

A step is clean when both are:
* the held media, by bench/media_calls.py's criterion: every held call set up and hung up,
  0 packets lost, relay-added jitter p99 ≤ 5 ms;
* the SIPp calls, by bench/calls.sh's (RFC 7501 section 4): none failed at either SIPp,
  nothing retransmitted, the callee completed every call placed.

With bench/release_timing on ``PYTHONPATH`` and ``RELEASE_LOG`` set, each step also shows the
free-memory releases the switch made during it (``PERIOD=serve``: the switch's own schedule).
The SIPp processes run on the load generators' CPUs (the switch alone on the last CPU).
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import bench.media_calls as mc
from bench import sipp_stats

PREFIX = "77"  # the SIPp callee's prefix; the held calls use media_calls.PREFIX (00)
UAC = ROOT / "bench" / "calls_uac.xml"
SIPP_BUFFER = 4 * 2**20  # bench/calls.sh's -buff_size: SIPp's own 64 KiB drop at bursts
SETTLE_S = 5.0  # of the hold, left for the last SIPp calls to end inside it


def sipp_route(uas_port: int) -> str:
    """The config tables that route ``PREFIX`` numbers to the SIPp callee, media proxy On."""
    return f"""
[[routing_gateway]]
name = "sipp-callee"
address = "127.0.0.1:{uas_port}"
prefixes = ["{PREFIX}"]
media_proxy = "On"
"""


def free_port(avoid: tuple[int, int]) -> int:
    """A UDP port free now and outside ``avoid`` (the switch's RTP range: a SIPp there could
    take a port the switch hands to a relay next, or find its own port taken by one)."""
    while True:
        port = mc.free_udp_port()
        if not avoid[0] - 4 <= port <= avoid[1]:  # SIPp's media ports: -mp and the next ones
            return port


def on_cpus(cpus: set[int] | None) -> list[str]:
    """The command prefix that runs a program on ``cpus`` only (all CPUs when None)."""
    return ["taskset", "-c", ",".join(map(str, sorted(cpus)))] if cpus else []


def sipp_calls(switch: mc.Switch, uas_port: int, rate: int, seconds: float, work: Path,
               timeout: float, *, trace: bool = False
               ) -> Callable[[], Callable[[], dict[str, Any]]]:
    """``during_hold`` for :func:`bench.media_calls.run_step`: SIPp places ``rate`` calls/s
    for ``seconds`` through the switch; the returned ``finish`` waits for both SIPps and
    reads their statistics (sipp_stats.step_line's fields). ``trace``: the callee SIPp also
    writes the messages it got (``-trace_msg``, in ``work/uas``)."""
    def start() -> Callable[[], dict[str, Any]]:
        calls = max(1, round(rate * seconds))
        (work / "uas").mkdir(parents=True)
        # bench/calls.sh's callee (a BYE that overtook its ACK ends the call there)
        uas_scenario = work / "call_uas.xml"
        uas_scenario.write_text(sipp_stats.callee_scenario())
        pin = on_cpus(switch.cpus[1] if switch.cpus else None)  # the generators' CPUs
        common = ["-t", "u1", "-i", "127.0.0.1", "-buff_size", str(SIPP_BUFFER), "-nostdin",
                  "-timeout", str(int(timeout)), "-trace_stat", "-stf", "stats.csv",
                  "-fd", "3600", "-m", str(calls)]
        with open(work / "uas" / "sipp.err", "w") as uas_err, \
                open(work / "sipp.err", "w") as uac_err:  # the children keep their copies
            uas = subprocess.Popen(
                [*pin, "sipp", "-sf", str(uas_scenario), "-p", str(uas_port), "-mp",
                 str(free_port(switch.rtp_ports)), *sipp_stats.UAS_FLAGS, *common,
                 *(["-trace_msg"] if trace else [])],
                cwd=work / "uas", stdout=subprocess.DEVNULL, stderr=uas_err,
                start_new_session=True)  # stopping it cannot signal this process
            time.sleep(0.3)
            uac = subprocess.Popen(
                [*pin, "sipp", f"127.0.0.1:{switch.port}", "-sf", str(UAC), "-s",
                 f"{PREFIX}123", *sipp_stats.UAC_FLAGS, "-mp", str(free_port(switch.rtp_ports)),
                 "-r", str(rate), "-trace_rtt", "-rtt_freq", "1", *common],
                cwd=work, stdout=subprocess.DEVNULL, stderr=uac_err, start_new_session=True)

        def finish() -> dict[str, Any]:
            try:
                uac.wait(timeout=timeout + 10)
            except subprocess.TimeoutExpired:
                uac.kill()
                uac.wait()
            for _ in range(30):  # the callee ends after its last call; one still waiting
                if uas.poll() is not None:  # for calls that never came is told to stop
                    break
                time.sleep(0.1)
            else:
                uas.send_signal(signal.SIGTERM)  # SIPp writes its statistics and exits
                try:
                    uas.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    uas.kill()
                    uas.wait()
            fields = sipp_stats.step_line(work, work / "uas", 0).split()
            names = ("offered", "ok", "failed", "retrans", "uas_ok", "uas_failed",
                     "uas_retrans", "setup_p50_ms", "setup_p99_ms", "per_cpu", "stray", "clean")
            result: dict[str, Any] = dict(zip(names, fields, strict=True))
            if result["offered"] == "0":  # SIPp could not start: say why
                result["error"] = " ".join(
                    f"{name}: {(path / 'sipp.err').read_text(errors='replace').strip()[-300:]}"
                    for name, path in (("caller", work), ("callee", work / "uas")))
            return result
        return finish
    return start


def release_lines(log: Path | None) -> list[list[float]]:
    """The releases logged so far by bench/release_timing (seconds, pause ms, RSS before and
    after in MB, relays running), none without a log."""
    if log is None or not log.exists():
        return []
    return [[float(v) for v in line.split()] for line in log.read_text().splitlines()
            if len(line.split()) == 5]


def step_line(result: dict[str, Any], rate: int, releases: list[list[float]]) -> str:
    sipp = result["during_hold"]
    if sipp and "error" in sipp:
        sip = f"SIPp did not run ({sipp['error']})"
    elif sipp:
        sip = (f"{sipp['ok']}/{sipp['offered']} ok, {sipp['failed']} failed, "
               f"{sipp['retrans']}+{sipp['uas_retrans']} retrans, callee {sipp['uas_ok']}; "
               f"setup p50/p99 {sipp['setup_p50_ms']}/{sipp['setup_p99_ms']} ms")
    else:
        sip = "-"
    pauses = [r[1] for r in releases]
    released = (f"{len(pauses)}, max {max(pauses):.2f} ms, RSS {releases[-1][3]:.0f} MB"
                if pauses else "0")
    media_ok = not result["why"]
    return (f"| {result['calls']} | {rate} | {result['established']}/{result['hung_up']} | "
            f"{result['lost']} | {result['relay_jitter_p99']:.2f} | "
            f"{'yes' if media_ok else 'no: ' + ', '.join(result['why'])} | {sip} | "
            f"{'yes' if not sipp or sipp['clean'] == 'yes' else 'no'} | "
            f"{result['switch_cpu_share']:.2f} | {result['switch_wait_share']:.2f} | "
            f"{sum(result['generator_cpu_share']):.2f} | {released} | {result['load']:.2f} |")


HEADER = ("| held calls | SIP calls/s | held: set up/hung up | held: lost | relay-added jitter "
          "p99 ms | held media clean | SIPp calls | SIPp clean | switch CPU share | switch "
          "run-queue wait | RTP generators' CPU share | memory releases in the step | load |\n"
          "|---:|---:|---|---:|---:|---|---|---|---:|---:|---:|---|---:|")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=["relay", "transcode"], default="relay")
    parser.add_argument("--media-calls", default="1,200",
                        help="calls held with RTP both ways in every step; a comma list runs "
                        "one search per count, each on a fresh switch, and compares them "
                        "with the first (default 1,200: the SIP-only reference, then 200)")
    parser.add_argument("--rates", default="0,200,400,600,700,800,900,1000,1100",
                        help="SIPp calls/s, one step each, in order; 0: the held calls only "
                        "(default 0,200,400,600,700,...,1100)")
    parser.add_argument("--all", action="store_true",
                        help="run every rate, not only up to the first unclean step")
    parser.add_argument("--hold", type=float, default=30.0,
                        help="seconds each step holds its calls (default 30)")
    parser.add_argument("--setup-rate", type=float, default=50.0,
                        help="calls/s setting up the held calls (default 50)")
    parser.add_argument("--rtp-ports", default="41000-44999")
    parser.add_argument("--lock", metavar="FILE", help="flock FILE during each step")
    parser.add_argument("--trace-store-mb", type=int, metavar="MB",
                        help="the switch stores the SIP trace within MB, as vosapp serve does "
                        "by default (256); without it, --no-trace-store")
    args = parser.parse_args()
    rates = [int(r) for r in args.rates.split(",")]
    media_calls = [int(n) for n in args.media_calls.split(",")]
    if min(media_calls) < 1:
        parser.error("--media-calls: at least 1 held call per step (its media is measured)")
    if args.hold <= SETTLE_S + 1:
        parser.error(f"--hold must exceed {SETTLE_S + 1:.0f} s")
    low, high = (int(p) for p in args.rtp_ports.split("-"))
    log = Path(os.environ["RELEASE_LOG"]) if os.environ.get("RELEASE_LOG") else None
    payloads = {name: mc.speechlike_payloads(name) for name in ("PCMA", "G729")}
    command = "PYTHONPATH=$PWD .venv/bin/python " + shlex.join(
        ["bench/media_with_calls.py", *sys.argv[1:]])
    started = time.monotonic()
    lines: list[str] = []
    best: dict[int, tuple[int, str]] = {}  # held calls -> (highest clean rate, next step)
    cpus = None
    print(f"load average at start: {os.getloadavg()}", file=sys.stderr)
    print(HEADER, file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(prefix="media-with-calls-") as tmp:
        for held in media_calls:  # a fresh switch each: the same history before each search
            work = Path(tmp) / f"held-{held}"
            work.mkdir()
            uas_port = free_port((low, high))
            switch = mc.start_switch(args.mode, work, (low, high), pin=True,
                                     extra_config=sipp_route(uas_port),
                                     trace_store_mb=args.trace_store_mb)
            cpus = switch.cpus
            best[held] = (0, "-")
            try:
                for step, rate in enumerate(rates, 1):  # a rate may repeat (--all)
                    seen = len(release_lines(log))
                    hook = (sipp_calls(switch, uas_port, rate, args.hold - SETTLE_S,
                                       work / f"sipp-{step}-{rate}", args.hold + 30)
                            if rate else None)
                    with mc.locked(args.lock):
                        result = mc.run_step(switch, args.mode, held, args.hold,
                                             setup_rate=args.setup_rate, payloads=payloads,
                                             during_hold=hook)
                    line = step_line(result, rate, release_lines(log)[seen:])
                    lines.append(line)
                    print(line, file=sys.stderr, flush=True)
                    sipp = result["during_hold"]
                    clean = not result["why"] and (not sipp or sipp["clean"] == "yes")
                    if clean:
                        best[held] = (max(best[held][0], rate), "-")
                    else:
                        best[held] = (best[held][0], f"{rate}/s")
                        if not args.all:
                            break
            finally:
                mc.stop_switch(switch)
    first = media_calls[0]
    summary = [f"| held calls | highest clean SIP calls/s | first unclean | against {first} held |",
               "|---:|---:|---|---:|"]
    for held, (rate, unclean) in best.items():
        ratio = f"{rate / best[first][0]:.2f}" if best[first][0] else "-"
        summary.append(f"| {held} | {rate} | {unclean} | {ratio} |")
    print("\n".join([
        "### Held calls with media and new calls in one switch (bench/media_with_calls.py)",
        "",
        f"Command: `{command}` ({time.monotonic() - started:.0f} s; {os.cpu_count()} CPUs; "
        f"load average at the end {' '.join(f'{v:.2f}' for v in os.getloadavg())}; "
        + (f"switch on CPU {sorted(cpus[0])}, generators and SIPp on {sorted(cpus[1])}"
           if cpus else "nothing pinned") + ").",
        "",
        HEADER, *lines, "", *summary]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
