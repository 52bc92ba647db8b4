"""Instructions per authenticated registration, counted by valgrind: vosapp serve against
Kamailio and the Python minimum, on bench/registrar.sh's traffic.

A count of executed instructions does not move with this shared VM's speed, which changes by
2 x from day to day (and moved bench/registrar.sh's ratio from 0.15 to 0.11 between two days
with no code change): two runs of the same code count the same to within a fraction of a per
cent, so a cut of a few per cent shows, and "before" and "after" need not share a run.

What is counted: user-space instructions of every process and thread of the server (valgrind's
callgrind, ``--trace-children=yes`` for Kamailio's forked workers), not the kernel's
(``recvfrom``/``sendto``: four system calls per registration for every server alike), and not
time. A registrar that executes more instructions per second (C with fewer cache and branch
misses) does better in time than in this count: the time ratio of bench/registrar.sh stays
the one the issue #14 target is judged by; this one says how much work each server does.

Method, per server: start it under ``valgrind --tool=callgrind``; bind every user once (the
warm-up: a refresh and a first binding take different paths); zero the counters
(``callgrind_control -z``), let the server idle ``--idle`` seconds and dump them: its
instructions per idle second (timers, GC, the WAL checkpoint thread); then SIPp makes
``--registrations`` registrations (REGISTER -> 401 -> REGISTER with digest -> 200, MD5,
qop=auth, bench/registrar_sipp.xml, a fresh Call-ID each) at ``--rate`` with at most
``--limit`` in flight, the server is left ``--tail`` seconds more (so that what a registration
leaves for later is counted too: vosapp's server transactions end on Timer J, 64*T1 = 32 s
after their 200, RFC 3261 §17.2.2), and the counters are dumped again. Per registration =
(that count - idle rate x (pass + tail)) / registrations. The rate is low because valgrind slows each
server 20-100 x; a pass with a retransmission or a failed registration is reported as
unclean (a resent request is counted twice).

    .venv/bin/python bench/registrar_instructions.py [--servers vosapp,kamailio,...]

Servers: vosapp (``vosapp serve --udp-only --no-trace-store``, bindings and audit in SQLite,
as bench/registrar.sh), kamailio (bench/kamailio-registrar.cfg, children=1, usrloc in memory),
kamailio-sqlite (the same with ``-A WITH_SQLITE``: write-through to SQLite, WAL, synchronous
NORMAL), minimum-memory and minimum-sqlite (bench/python_minimum_registrar.py: the cfg's work
in one Python function) and floor (bench/python_floor_registrar.py: a socket loop that answers
without parsing, checking or storing). ``--code PATH`` counts the vosapp of another checkout
(built in place, as bench/code_ab.sh does), for a before and after. valgrind and
Kamailio (with kamailio-sqlite-modules) are installed with apt-get when missing
(bench/common.sh's install_debian_packages); a server whose program is missing is skipped
with a note.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
SCENARIO = BENCH / "registrar_sipp.xml"
KAMAILIO_CFG = BENCH / "kamailio-registrar.cfg"
KAMAILIO_SCHEMA = Path("/usr/share/kamailio/db_sqlite")
SERVERS = ("vosapp", "kamailio", "kamailio-sqlite", "minimum-memory", "minimum-sqlite", "floor")
#: What the ratios are taken against: the issue #14 target's baseline, then like for like.
BASELINES = ("kamailio", "kamailio-sqlite")


@dataclass
class Count:
    server: str
    registrations: int
    seconds: float           # the pass and its tail
    instructions: int        # in them, all processes
    idle_per_second: float   # before the pass
    retransmissions: int
    failed: int

    @property
    def per_registration(self) -> float:
        return (self.instructions - self.idle_per_second * self.seconds) / self.registrations

    @property
    def clean(self) -> bool:
        return self.failed == 0 and self.retransmissions == 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", default=",".join(SERVERS),
                        help=f"comma-separated, of {', '.join(SERVERS)} (default: all)")
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--registrations", type=int, default=400)
    parser.add_argument("--rate", type=float, default=20.0, help="registrations per second")
    parser.add_argument("--limit", type=int, default=10, help="registrations in flight at most")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds of idle counted")
    parser.add_argument("--tail", type=float, default=35.0,
                        help="seconds counted after the pass (default: past 64*T1)")
    parser.add_argument("--python", default=sys.executable,
                        help="the interpreter of vosapp and the Python minimum")
    parser.add_argument("--code", metavar="PATH", type=Path, default=ROOT,
                        help="the checkout whose vosapp is counted (default: this one)")
    args = parser.parse_args()
    servers = [name for name in args.servers.split(",") if name]
    unknown = sorted(set(servers) - set(SERVERS))
    if unknown:
        parser.error(f"unknown server(s) {', '.join(unknown)}; choose from {', '.join(SERVERS)}")
    missing = [tool for tool in ("sipp", "valgrind") if shutil.which(tool) is None]
    with tempfile.TemporaryDirectory(prefix="vosapp-instructions-") as tmp:
        work = Path(tmp)
        packages = ["valgrind"] if "valgrind" in missing else []
        if any(name.startswith("kamailio") for name in servers):
            packages += ["kamailio", "kamailio-sqlite-modules"]
        _install_debian_packages(work / "apt.log", packages)
        missing = [tool for tool in ("sipp", "valgrind") if shutil.which(tool) is None]
        if missing:
            print(f"not installed: {', '.join(missing)} (apt-get install sip-tester valgrind)")
            return 1
        _write_accounts(work, args.users)
        print(f"Instructions per authenticated registration (valgrind callgrind, user space), "
              f"{args.registrations} registrations of {args.users} users at {args.rate:g}/s, "
              f"at most {args.limit} in flight, after every user was bound once, counted until "
              f"{args.tail:g} s after the last; vosapp from "
              f"{_revision(args.code)}")
        counts: dict[str, Count] = {}
        for name in servers:
            note = _unavailable(name)
            if note:
                print(f"{name:16}: skipped ({note})")
                continue
            count = _measure(name, work, args)
            counts[name] = count
            print(f"{name:16}: {count.per_registration / 1e3:,.0f} thousand instructions per "
                  f"registration ({count.registrations}, counted over {count.seconds:.1f} s, idle "
                  f"{count.idle_per_second / 1e6:.2f} M/s subtracted; "
                  f"{count.failed} failed, {count.retransmissions} retransmissions"
                  f"{'' if count.clean else ': UNCLEAN, a resent request is counted twice'})")
        for base in BASELINES:
            if base not in counts:
                continue
            for name, count in counts.items():
                if name != base:
                    ratio = counts[base].per_registration / count.per_registration
                    print(f"ratio {name}/{base} (registrations per instruction): {ratio:.2f}")
        return 0 if all(count.clean for count in counts.values()) else 1


def _revision(checkout: Path) -> str:
    rev = subprocess.run(["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True, check=False).stdout.strip()
    return f"{checkout} ({rev or 'no git revision'})"


def _install_debian_packages(log: Path, packages: list[str]) -> None:
    if packages:
        script = f'source "{BENCH}/common.sh"; install_debian_packages "$@" || true'
        # common.sh wants PY (the project's python) set before it is sourced
        subprocess.run(["bash", "-c", script, "-", str(log), *packages], check=False,
                       env=dict(os.environ, PY=sys.executable))


def _unavailable(name: str) -> str:
    if name.startswith("kamailio") and shutil.which("kamailio") is None:
        return "kamailio not installed"
    if name == "kamailio-sqlite" and not (KAMAILIO_SCHEMA / "usrloc-create.sql").exists():
        return "kamailio-sqlite-modules not installed"
    return ""


def _write_accounts(work: Path, users: int) -> None:
    names = [str(20000 + i) for i in range(users)]
    with (work / "switch.toml").open("w") as config:
        config.write(f'[switch]\nsip_listen = "127.0.0.1:5060"\ndata_dir = "{work}/data"\n')
        # SIPp sends everything from one address: the per-source limiter is off.
        config.write("[limits]\nsource_threshold = 0\n")
        for name in names:
            config.write(f'\n[[account]]\nuser = "{name}"\npassword = "pw-{name}"\n')
    with (work / "users.csv").open("w") as injection:
        injection.write("SEQUENTIAL\n")
        for name in names:
            injection.write(f"{name};[authentication username={name} password=pw-{name}]\n")


def _command(name: str, work: Path, port: int, python: str) -> list[str]:
    if name == "vosapp":
        return [python, "-m", "vosapp.cli", "serve", "--listen", f"127.0.0.1:{port}",
                "--udp-only", "--no-trace-store", "--log-level", "WARNING",
                "--config", str(work / "switch.toml")]
    if name == "floor":
        return [python, str(BENCH / "python_floor_registrar.py"), str(port)]
    if name.startswith("minimum"):
        database = ["--sqlite", str(work / "minimum.sqlite")] if name.endswith("sqlite") else []
        return [python, str(BENCH / "python_minimum_registrar.py"), str(port), *database]
    run = work / f"{name}.run"
    run.mkdir(exist_ok=True)
    command = ["kamailio", "-f", str(KAMAILIO_CFG), "-l", f"udp:127.0.0.1:{port}", "-D", "-E",
               "-Y", str(run), "-w", str(run), "-m", "128", "-M", "16"]
    if name == "kamailio-sqlite":
        database = work / "kamailio-location.sqlite"
        _kamailio_location_table(database)
        command += ["-A", "WITH_SQLITE", "-A", f'DBFILE="{database}"',
                    "-A", f'DBURL="sqlite:///{database}"',
                    "-A", f'SQLCON="ul=>sqlite:///{database}"', "-A", 'SYNCHRONOUS="NORMAL"']
    return command


def _kamailio_location_table(path: Path) -> None:
    """Kamailio's own schema (bench/registrar.sh does the same), WAL like vosapp's store."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    for part in ("standard", "usrloc"):
        db.executescript((KAMAILIO_SCHEMA / f"{part}-create.sql").read_text())
    db.close()


def _measure(name: str, work: Path, args: argparse.Namespace) -> Count:
    out = work / name
    out.mkdir()
    port = _free_port()
    # The same string hashes in every run: dict and set layouts, so the counts, repeat.
    env = dict(os.environ, PYTHONPATH=str(args.code.resolve()), PYTHONHASHSEED="0")
    server = subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--trace-children=yes",
         f"--callgrind-out-file={out}/callgrind.%p", *_command(name, work, port, args.python)],
        stdout=(out / "server.out").open("w"), stderr=(out / "server.log").open("w"),
        env=env, cwd=work, start_new_session=True)
    try:
        _wait_listening(port, server, out / "server.log")
        _sipp(port, work, out / "warm-up", args.users, args)
        pids = _process_tree(server.pid)
        _callgrind(["-z"], pids)
        time.sleep(args.idle)
        idle = sum(_dump(pids, out).values()) / args.idle
        start = time.monotonic()
        retransmissions, failed = _sipp(port, work, out / "pass", args.registrations, args)
        time.sleep(args.tail)
        seconds = time.monotonic() - start
        busy = sum(_dump(pids, out).values())
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
    return Count(name, args.registrations, seconds, busy, idle, retransmissions, failed)


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_listening(port: int, server: subprocess.Popen[bytes], log: Path,
                    timeout: float = 300.0) -> None:
    """Until a UDP socket is bound to 127.0.0.1:``port`` (valgrind starts Python in ~40 s)."""
    wanted = f"0100007F:{port:04X}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited ({server.returncode}):\n{log.read_text()[-2000:]}")
        if any(line.split()[1] == wanted
               for line in Path("/proc/net/udp").read_text().splitlines()[1:]):
            time.sleep(1.0)  # Kamailio binds before its workers are forked
            return
        time.sleep(0.5)
    raise SystemExit(f"nothing listened on 127.0.0.1:{port} after {timeout:.0f} s:\n"
                     f"{log.read_text()[-2000:]}")


def _sipp(port: int, work: Path, directory: Path, calls: int,
          args: argparse.Namespace) -> tuple[int, int]:
    """SIPp's registrations; returns (retransmissions, failed calls)."""
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    from sipp_stats import count, totals

    directory.mkdir()
    subprocess.run(
        ["sipp", f"127.0.0.1:{port}", "-sf", str(SCENARIO), "-inf", str(work / "users.csv"),
         "-i", "127.0.0.1", "-m", str(calls), "-r", f"{args.rate:g}", "-l", str(args.limit),
         "-nostdin", "-timeout", "600", "-timeout_error", "-trace_stat", "-stf", "stats.csv",
         "-fd", "3600"],
        cwd=directory, stdout=(directory / "sipp.txt").open("w"), stderr=subprocess.STDOUT,
        check=False)
    stats = totals(directory / "stats.csv")
    ok = count(stats, "SuccessfulCall")
    return count(stats, "Retransmissions"), max(count(stats, "FailedCall"), calls - ok)


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


_SUMMARY = re.compile(r"^summary:\s*(\d+)", re.MULTILINE)


def _dump(pids: list[int], out: Path) -> dict[int, int]:
    """Dump (and so zero) each process's counters; returns its instructions since the last
    zero or dump."""
    before = {path: path.stat().st_mtime_ns for path in out.glob("callgrind.*")}
    _callgrind(["-d"], pids)
    counts: dict[int, int] = {}
    for path in out.glob("callgrind.*.*"):
        if before.get(path) == path.stat().st_mtime_ns:
            continue  # an earlier dump
        match = _SUMMARY.search(path.read_text(errors="replace"))
        pid = int(path.name.split(".")[1])
        if match and pid in pids:
            counts[pid] = counts.get(pid, 0) + int(match.group(1))
    return counts


if __name__ == "__main__":
    raise SystemExit(main())
