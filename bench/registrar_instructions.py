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

Method, per server (bench/instruction_count.py's ``count_server``): start it under ``valgrind
--tool=callgrind``; bind every user once (the warm-up: a refresh and a first binding take
different paths) and wait ``--tail`` seconds, until the warm-up's transactions have ended; zero
the counters (``callgrind_control -z``), let the server idle for a minute (``--period``) and
dump them: its instructions per idle second (timers, GC, the WAL checkpoint thread); then SIPp
makes ``--registrations`` registrations (REGISTER -> 401 -> REGISTER with digest -> 200, MD5,
qop=auth, bench/registrar_sipp.xml, a fresh Call-ID each) at ``--rate`` with at most
``--limit`` in flight; the count goes on at least ``--tail`` seconds more (so that what a
registration leaves for later is counted too: vosapp's server transactions end on Timer J,
64*T1 = 32 s after their 200, RFC 3261 §17.2.2), to the end of a whole minute, and the
counters are dumped again. Per registration = (that count - idle rate x its duration) /
registrations. The rate is low because valgrind slows each server 20-100 x; a pass with a
retransmission or a failed registration is reported as unclean (a resent request is counted
twice).

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
import contextlib
import shutil
import subprocess
import sys
import tempfile
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
from registrar_setup import KAMAILIO_SCHEMA, kamailio_location_table, write_accounts

SCENARIO = BENCH / "registrar_sipp.xml"
KAMAILIO_CFG = BENCH / "kamailio-registrar.cfg"
SERVERS = ("vosapp", "kamailio", "kamailio-sqlite", "minimum-memory", "minimum-sqlite", "floor")
#: What the ratios are taken against: the issue #14 target's baseline, then like for like.
BASELINES = ("kamailio", "kamailio-sqlite")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", default=",".join(SERVERS),
                        help=f"comma-separated, of {', '.join(SERVERS)} (default: all)")
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--registrations", type=int, default=400)
    parser.add_argument("--rate", type=float, default=20.0, help="registrations per second")
    parser.add_argument("--limit", type=int, default=10, help="registrations in flight at most")
    parser.add_argument("--keep", metavar="DIR", type=Path,
                        help="work in DIR and keep it: each server's callgrind files in "
                             "DIR/<server>/, for callgrind_annotate --inclusive=yes")
    add_counting_options(parser)
    args = parser.parse_args()
    servers = chosen(parser, args.servers, SERVERS, "server")
    with contextlib.ExitStack() as stack:
        if args.keep is not None:
            args.keep.mkdir(parents=True, exist_ok=True)
            work = args.keep.resolve()
        else:
            work = Path(stack.enter_context(
                tempfile.TemporaryDirectory(prefix="vosapp-instructions-")))
        kamailio = any(name.startswith("kamailio") for name in servers)
        missing = missing_tools(work, ["kamailio", "kamailio-sqlite-modules"] if kamailio else [])
        if missing:
            print(missing)
            return 1
        write_accounts(work, args.users)
        print(f"Instructions per authenticated registration (valgrind callgrind, user space), "
              f"{args.registrations} registrations of {args.users} users at {args.rate:g}/s, "
              f"at most {args.limit} in flight, after every user was bound once, counted at "
              f"least {args.tail:g} s after the last, over whole periods of {args.period:g} s; "
              f"vosapp from {revision(args.code)}")
        counts: dict[str, Count] = {}
        for name in servers:
            note = _unavailable(name)
            if note:
                print(f"{name:16}: skipped ({note})")
                continue
            count = _measure(name, work, args)
            counts[name] = count
            print(count.line("registration"))
        for base in BASELINES:
            if base not in counts:
                continue
            for name, count in counts.items():
                if name != base:
                    ratio = counts[base].per_unit / count.per_unit
                    print(f"ratio {name}/{base} (registrations per instruction): {ratio:.2f}")
        return 0 if all(count.clean for count in counts.values()) else 1


def _unavailable(name: str) -> str:
    if name.startswith("kamailio") and shutil.which("kamailio") is None:
        return "kamailio not installed"
    if name == "kamailio-sqlite" and not (KAMAILIO_SCHEMA / "usrloc-create.sql").exists():
        return "kamailio-sqlite-modules not installed"
    return ""


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
        kamailio_location_table(database)
        command += ["-A", "WITH_SQLITE", "-A", f'DBFILE="{database}"',
                    "-A", f'DBURL="sqlite:///{database}"',
                    "-A", f'SQLCON="ul=>sqlite:///{database}"', "-A", 'SYNCHRONOUS="NORMAL"']
    return command


def _measure(name: str, work: Path, args: argparse.Namespace) -> Count:
    port = free_port()
    return count_server(
        name, args.registrations, _command(name, work, port, args.python), work / name, port,
        args, lambda label, calls: _sipp(port, work, work / name / label, calls, args),
        warm_up=args.users, cwd=work)


def _sipp(port: int, work: Path, directory: Path, calls: int,
          args: argparse.Namespace) -> tuple[int, int]:
    """SIPp's registrations; returns (retransmissions, failed calls)."""
    directory.mkdir()
    subprocess.run(
        ["sipp", f"127.0.0.1:{port}", "-sf", str(SCENARIO), "-inf", str(work / "users.csv"),
         "-i", "127.0.0.1", "-m", str(calls), "-r", f"{args.rate:g}", "-l", str(args.limit),
         "-nostdin", "-timeout", "600", "-timeout_error", "-trace_stat", "-stf", "stats.csv",
         "-fd", "3600"],
        cwd=directory, stdout=(directory / "sipp.txt").open("w"), stderr=subprocess.STDOUT,
        check=False)
    return sipp_outcome(directory, calls)


if __name__ == "__main__":
    raise SystemExit(main())
