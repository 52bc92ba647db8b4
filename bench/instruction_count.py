"""Counting a server's instructions per unit of SIPp traffic with valgrind's callgrind: the
machinery of bench/registrar_instructions.py and bench/calls_instructions.py.

A count of executed instructions (user space, every process and thread of the server) does not
move with this shared VM's speed, which changes by 2 x from day to day: two counts of the same
code agree to a fraction of a per cent. It leaves out the kernel (system calls, writes) and
time itself: the benches judged in time stay the targets' judges.

:func:`count_server` is the whole sequence for one server: :func:`counted` starts it under
valgrind and waits until it listens; the caller's traffic warms it up; then
:meth:`Counted.idle_rate` and :meth:`Counted.count_pass`, each over whole periods of the
switch's periodic work (:data:`PERIOD`); :class:`Count` subtracts the idle rate.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

# bench/ is on the path: each script puts it there before it imports this module
from sipp_stats import count, totals

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
#: vosapp serve's longest periodic work: a full collection when quiet (vosapp.io.serve
#: OLD_GC_PERIOD) and the registrar's purge of expired bindings (PURGE_INTERVAL), both 60 s;
#: the memory release every 15 s divides it. An idle stretch and a pass that each last whole
#: periods hold each of them as many times in every run: counted over 55 s, two counts of one
#: code differed by 3 %.
PERIOD = 60.0
_SUMMARY = re.compile(r"^summary:\s*(\d+)", re.MULTILINE)


@dataclass
class Count:
    """One server's counted pass: ``units`` registrations or calls."""

    server: str
    units: int
    seconds: float           # the pass and its tail
    instructions: int        # in them, all processes
    idle_per_second: float   # before the pass
    retransmissions: int
    failed: int

    @property
    def per_unit(self) -> float:
        return (self.instructions - self.idle_per_second * self.seconds) / self.units

    @property
    def clean(self) -> bool:
        return self.failed == 0 and self.retransmissions == 0

    def line(self, unit: str) -> str:
        """``NAME: N thousand instructions per UNIT (...)``, the form the tests read."""
        return (f"{self.server:16}: {self.per_unit / 1e3:,.0f} thousand instructions per {unit} "
                f"({self.units}, counted over {self.seconds:.1f} s, idle "
                f"{self.idle_per_second / 1e6:.2f} M/s subtracted; {self.failed} failed, "
                f"{self.retransmissions} retransmissions"
                f"{'' if self.clean else ': UNCLEAN, a resent message is counted twice'})")


class Counted:
    """A server running under callgrind (see :func:`counted`)."""

    def __init__(self, process: subprocess.Popen[bytes], out: Path) -> None:
        self.process = process
        self.out = out
        self.pids: list[int] = []

    def zero(self) -> None:
        """Zero the counters of the server and of every process it forked by now."""
        self.pids = _process_tree(self.process.pid)
        _callgrind(["-z"], self.pids)

    def idle_rate(self, seconds: float = PERIOD) -> float:
        """Instructions per second while nothing is sent (timers, GC, helper threads)."""
        self.zero()
        time.sleep(seconds)
        return self.dump() / seconds

    def count_pass(self, run: Callable[[], tuple[int, int]], tail: float,
                   period: float = PERIOD) -> tuple[int, float, int, int]:
        """Zero, ``run()`` the traffic (it returns retransmissions and failures), wait at least
        ``tail`` seconds more and to the end of a whole ``period``, and dump: returns
        (instructions, seconds counted, retransmissions, failures)."""
        self.zero()
        start = time.monotonic()
        retransmissions, failed = run()
        elapsed = time.monotonic() - start
        window = math.ceil((elapsed + tail) / period) * period
        time.sleep(window - elapsed)
        seconds = time.monotonic() - start
        return self.dump(), seconds, retransmissions, failed

    def dump(self) -> int:
        """Instructions since the last zero or dump, all processes (a dump zeroes too)."""
        before = {path: path.stat().st_mtime_ns for path in self.out.glob("callgrind.*")}
        _callgrind(["-d"], self.pids)
        total = 0
        for path in self.out.glob("callgrind.*.*"):
            if before.get(path) == path.stat().st_mtime_ns:
                continue  # an earlier dump
            counted_here = callgrind_total(path)
            if counted_here is not None and int(path.name.split(".")[1]) in self.pids:
                total += counted_here
        return total


def callgrind_total(path: Path) -> int | None:
    """The instructions a callgrind output file holds (its summary line); None without one."""
    match = _SUMMARY.search(path.read_text(errors="replace"))
    return int(match.group(1)) if match else None


@contextmanager
def counted(command: list[str], out: Path, port: int, *, code: Path = ROOT,
            cwd: Path | None = None, env: dict[str, str] | None = None) -> Iterator[Counted]:
    """``command`` under callgrind (its forked children too), its files in ``out``, once a
    UDP socket is bound to 127.0.0.1:``port``; stopped (SIGTERM to its session) at the end.
    Python finds vosapp in ``code`` first, and hashes strings the same way every run (dict and
    set layouts, so the counts, repeat). ``env``: more environment variables."""
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=str(code.resolve()), PYTHONHASHSEED="0", **(env or {}))
    process = subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--trace-children=yes",
         f"--callgrind-out-file={out}/callgrind.%p", *command],
        stdout=(out / "server.out").open("w"), stderr=(out / "server.log").open("w"),
        env=env, cwd=cwd or out, start_new_session=True)
    try:
        _wait_listening(port, process, out / "server.log")
        yield Counted(process, out)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def add_counting_options(parser: argparse.ArgumentParser) -> None:
    """The options both counts share: --period, --idle, --tail, --python, --code."""
    parser.add_argument("--period", type=float, default=PERIOD,
                        help="the idle stretch and the pass last whole periods of this (default: "
                             "vosapp's longest periodic work)")
    parser.add_argument("--idle", type=float,
                        help="seconds of idle counted (default: one period)")
    parser.add_argument("--tail", type=float, default=35.0,
                        help="seconds counted after the pass (default: past 64*T1)")
    parser.add_argument("--python", default=sys.executable,
                        help="the interpreter of vosapp (and of the Python registrars)")
    parser.add_argument("--code", metavar="PATH", type=Path, default=ROOT,
                        help="the checkout whose vosapp is counted (default: this one)")


def chosen(parser: argparse.ArgumentParser, text: str, choices: tuple[str, ...],
           what: str) -> list[str]:
    """The comma-separated ``text`` as a list; a name not in ``choices`` is a usage error."""
    names = [name for name in text.split(",") if name]
    unknown = sorted(set(names) - set(choices))
    if unknown:
        parser.error(f"unknown {what}(s) {', '.join(unknown)}; choose from {', '.join(choices)}")
    return names


def missing_tools(work: Path, packages: list[str]) -> str:
    """Installs valgrind and ``packages`` when missing (apt-get); says what is still missing
    of sipp and valgrind ("" when nothing)."""
    install_debian_packages(work / "apt.log",
                            (["valgrind"] if shutil.which("valgrind") is None else []) + packages)
    missing = [tool for tool in ("sipp", "valgrind") if shutil.which(tool) is None]
    return (f"not installed: {', '.join(missing)} (apt-get install sip-tester valgrind)"
            if missing else "")


def count_server(name: str, units: int, command: list[str], out: Path, port: int,
                 args: argparse.Namespace, traffic: Callable[[str, int], tuple[int, int]], *,
                 warm_up: int, cwd: Path | None = None,
                 env: dict[str, str] | None = None) -> Count:
    """``command`` counted under callgrind: ``traffic("warm-up", warm_up)``, ``--tail`` seconds
    for its transactions to end, an idle stretch, then ``traffic("pass", units)`` (it returns
    retransmissions and failures) and its tail, over whole ``--period``s."""
    with counted(command, out, port, code=args.code, cwd=cwd, env=env) as server:
        traffic("warm-up", warm_up)
        time.sleep(args.tail)  # the warm-up's transactions end (64*T1), outside any count
        idle = server.idle_rate(args.idle or args.period)
        instructions, seconds, retransmissions, failed = server.count_pass(
            lambda: traffic("pass", units), args.tail, args.period)
    return Count(name, units, seconds, instructions, idle, retransmissions, failed)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def install_debian_packages(log: Path, packages: list[str]) -> None:
    """bench/common.sh's ``install_debian_packages`` (apt-get as root or with sudo -n), for
    the packages not installed; what is still missing afterwards the caller finds out."""
    if packages:
        script = f'source "{BENCH}/common.sh"; install_debian_packages "$@" || true'
        # common.sh wants PY (the project's python) set before it is sourced
        subprocess.run(["bash", "-c", script, "-", str(log), *packages], check=False,
                       env=dict(os.environ, PY=sys.executable))


def revision(checkout: Path) -> str:
    rev = subprocess.run(["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True, check=False).stdout.strip()
    return f"{checkout} ({rev or 'no git revision'})"


def sipp_outcome(directory: Path, calls: int) -> tuple[int, int]:
    """(retransmissions, failed calls) of the SIPp that ran in ``directory`` with ``-trace_stat
    -stf stats.csv`` for ``calls`` calls (a call that never ended counts as failed)."""
    stats = totals(directory / "stats.csv")
    ok = count(stats, "SuccessfulCall")
    return count(stats, "Retransmissions"), max(count(stats, "FailedCall"), calls - ok)


def _wait_listening(port: int, process: subprocess.Popen[bytes], log: Path,
                    timeout: float = 300.0) -> None:
    """Until a UDP socket is bound to 127.0.0.1:``port`` (valgrind starts vosapp in ~40 s)."""
    wanted = f"0100007F:{port:04X}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited ({process.returncode}):\n"
                             f"{log.read_text()[-2000:]}")
        if any(line.split()[1] == wanted
               for line in Path("/proc/net/udp").read_text().splitlines()[1:]):
            time.sleep(1.0)  # Kamailio binds before its workers are forked
            return
        time.sleep(0.5)
    raise SystemExit(f"nothing listened on 127.0.0.1:{port} after {timeout:.0f} s:\n"
                     f"{log.read_text()[-2000:]}")


def _process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (Kamailio forks its workers under valgrind too)."""
    tree, queue = [], [pid]
    while queue:
        current = queue.pop()
        tree.append(current)
        children = Path(f"/proc/{current}/task/{current}/children")
        if children.exists():
            queue += [int(child) for child in children.read_text().split()]
    return tree


def _callgrind(options: list[str], pids: list[int]) -> None:
    for pid in pids:
        subprocess.run(["callgrind_control", *options, str(pid)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
