"""Instructions per call, counted by valgrind: vosapp serve against Sippy B2BUA, on
bench/calls.sh's traffic.

bench/calls.sh judges issue #14's call targets in time (the highest clean step, vosapp against
Sippy in the same run); those steps move with this shared VM's speed, and the ratio moved
between 3.29 x and 5.71 x over the rounds. This counts the work each B2BUA does per call
instead, which does not move: bench/instruction_count.py says how, and what the count leaves
out (the kernel, and time).

Per B2BUA (bench/instruction_count.py's ``count_server``): it starts under ``valgrind
--tool=callgrind``; a warm-up of ``--warm-up`` calls, then ``--tail`` seconds until their
transactions have ended; an idle minute is counted (timers, GC); then SIPp bench/calls_uac.xml
places ``--calls`` calls (INVITE, 100/180, 200, ACK, BYE at once, 200; no RTP, media proxy Off)
at ``--rate`` through it to SIPp tests/sipp/call_uas.xml, and the count goes on at least
``--tail`` seconds after the last (an ended call's transactions last 64*T1 = 32 s, RFC 6026),
to the end of a whole minute. Per call = (count - idle rate x duration) / calls. A pass where a
call failed or a message was resent at either SIPp is marked unclean.

    .venv/bin/python bench/calls_instructions.py [--b2buas vosapp,digest,sippy]

B2BUAs: vosapp (``vosapp serve --udp-only --no-trace-store``, the caller's gateway trusted by
address), digest (the same with every INVITE challenged: the caller answers the 401), sippy
(Sippy B2BUA 2.5, ``b2bua -f -u -A 0``, from the bench-only virtual environment that
bench/calls.sh creates: SIPPY_VENV, default ~/.cache/vosapp-bench/sippy-2.5; skipped with a
note when it is missing). ``--code PATH`` counts another checkout's vosapp.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# bench/ is not a package: its helpers are imported from beside this script
sys.path.insert(0, str(Path(__file__).resolve().parent))
from instruction_count import (
    BENCH,
    Count,
    add_counting_options,
    chosen,
    count_server,
    free_port,
    missing_tools,
    revision,
    sipp_outcome,
)
from sipp_stats import callee_scenario

UAC = BENCH / "calls_uac.xml"
B2BUAS = ("vosapp", "digest", "sippy")
SIPPY_VENV = Path(os.environ.get("SIPPY_VENV") or Path(
    os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vosapp-bench" / "sippy-2.5")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--b2buas", default=",".join(B2BUAS),
                        help=f"comma-separated, of {', '.join(B2BUAS)} (default: all)")
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--warm-up", type=int, default=40)
    parser.add_argument("--rate", type=float, default=10.0, help="calls per second")
    add_counting_options(parser)
    args = parser.parse_args()
    b2buas = chosen(parser, args.b2buas, B2BUAS, "B2BUA")
    with tempfile.TemporaryDirectory(prefix="vosapp-call-instructions-") as tmp:
        work = Path(tmp)
        missing = missing_tools(work, [])
        if missing:
            print(missing)
            return 1
        # bench/calls.sh's callee: the tests' vendor without ";transport=UDP" in its Contact
        # (Sippy 2.5 sends nothing to it), a BYE that overtook the ACK ending the call
        uas = work / "call_uas.xml"
        uas.write_text(callee_scenario())
        print(f"Instructions per call (valgrind callgrind, user space), {args.calls} calls at "
              f"{args.rate:g}/s after {args.warm_up}, counted at least {args.tail:g} s after "
              f"the last, over whole periods of {args.period:g} s; vosapp from "
              f"{revision(args.code)}")
        counts: dict[str, Count] = {}
        for name in b2buas:
            if name == "sippy" and not (SIPPY_VENV / "bin" / "b2bua").exists():
                print(f"{name:16}: skipped (no Sippy in {SIPPY_VENV}: bash bench/calls.sh "
                      "creates it)")
                continue
            count = _measure(name, work, uas, args)
            counts[name] = count
            print(count.line("call"))
        if "sippy" in counts:
            for name in ("vosapp", "digest"):
                if name in counts:
                    ratio = counts["sippy"].per_unit / counts[name].per_unit
                    print(f"ratio {name}/sippy (calls per instruction): {ratio:.2f}")
        return 0 if all(count.clean for count in counts.values()) else 1


def _measure(name: str, work: Path, uas: Path, args: argparse.Namespace) -> Count:
    out = work / name
    out.mkdir()
    port, uas_port = free_port(), free_port()
    caller_options: list[str] = []
    env: dict[str, str] = {}
    if name == "sippy":
        command = [str(SIPPY_VENV / "bin" / "b2bua"), "-f", "-u", "-A", "0", "-l", "127.0.0.1",
                   "-p", str(port), "-s", f"127.0.0.1:{uas_port}", "-L", str(out / "b2bua.log"),
                   "-P", str(out / "b2bua.pid"), f"--b2bua_socket={out / 'b2bua.sock'}"]
        env = {"SIPLOG_BEND": "none"}  # no per-message log, as bench/calls.sh
    else:
        # bench/common.sh's write_calls_config: account 1001, the caller's mapping gateway,
        # a routing gateway (prefix 00) to the callee SIPp, media proxy Off
        mapping = 'accounts = ["1001"]' if name == "digest" else 'addresses = ["127.0.0.1/32"]'
        config = out / "switch.toml"
        subprocess.run(["bash", "-c", f'source "{BENCH}/common.sh"; write_calls_config "$@"',
                        "-", str(config), str(out / "data"), mapping, str(uas_port)],
                       check=True, env=dict(os.environ, PY=sys.executable))
        command = [args.python, "-m", "vosapp.cli", "serve", "--listen", f"127.0.0.1:{port}",
                   "--udp-only", "--no-trace-store", "--log-level", "WARNING",
                   "--config", str(config)]
        if name == "digest":
            caller_options = ["-au", "1001", "-ap", "secret-1001"]
    return count_server(
        name, args.calls, command, out, port, args,
        lambda label, calls: _calls(port, uas_port, uas, out / label, calls, caller_options,
                                    args),
        warm_up=args.warm_up, cwd=out, env=env)


def _calls(port: int, uas_port: int, uas: Path, directory: Path, calls: int,
           caller_options: list[str], args: argparse.Namespace) -> tuple[int, int]:
    """``calls`` calls from the caller SIPp through the B2BUA on ``port`` to a callee SIPp on
    ``uas_port``; returns (retransmissions, failed calls), both SIPps together."""
    (directory / "uas").mkdir(parents=True)
    timeout = str(int(calls / args.rate) + 120)
    callee = subprocess.Popen(
        ["sipp", "-sf", str(uas), "-i", "127.0.0.1", "-p", str(uas_port), "-t", "u1",
         "-m", str(calls), "-mp", str(free_port()), "-nostdin", "-timeout", timeout,
         "-trace_stat", "-stf", "stats.csv", "-fd", "3600"],
        cwd=directory / "uas", stdout=(directory / "uas" / "sipp.txt").open("w"),
        stderr=subprocess.STDOUT)
    time.sleep(0.3)
    flags = subprocess.run([sys.executable, str(BENCH / "sipp_stats.py"), "uac-flags"],
                           capture_output=True, text=True, check=True).stdout.split()
    subprocess.run(
        ["sipp", f"127.0.0.1:{port}", "-sf", str(UAC), "-s", "0044123", "-t", "u1",
         "-i", "127.0.0.1", *flags, "-mp", str(free_port()), "-m", str(calls),
         "-r", f"{args.rate:g}", "-nostdin", "-timeout", timeout, "-trace_stat",
         "-stf", "stats.csv", "-fd", "3600", *caller_options],
        cwd=directory, stdout=(directory / "sipp.txt").open("w"), stderr=subprocess.STDOUT,
        check=False)
    try:
        callee.wait(timeout=30)
    except subprocess.TimeoutExpired:
        callee.terminate()  # SIPp writes its statistics and exits
        callee.wait()
    caller = sipp_outcome(directory, calls)
    answered = sipp_outcome(directory / "uas", calls)
    return caller[0] + answered[0], max(caller[1], answered[1])


if __name__ == "__main__":
    raise SystemExit(main())
