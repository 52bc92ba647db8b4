"""Why vosapp's registration costs more time than its instruction count says: cache misses and
branch mispredictions per registration, vosapp against the Python minimum, simulated by
valgrind's cachegrind (issue #14 part 3).

Counted live, vosapp executes 0.27 x Kamailio's instructions per registration but reaches only
0.12-0.14 x its registrations per CPU-second; in process it executes 3.2 x the Python
minimum's instructions (bench/registrar_stages.py) and takes 4-6 x its CPU time
(bench/registrar_profile.py --minimum). This runs bench/registrar_profile.py's traffic in
process under ``valgrind --tool=cachegrind --cache-sim=yes --branch-sim=yes`` for both, twice
each (SMALL and LARGE registrations after the same warm-up), and prints per registration the
difference of the two runs: start-up and warm-up cancel out. Each column still holds the
bench's own client work (building the requests, answering the challenges), the same for
both servers, so the "vosapp - minimum" column is vosapp's work beyond the minimum's alone.

    .venv/bin/python bench/registrar_cache_sim.py [--small 200] [--large 1200] [--code PATH]

cachegrind's caches and branch predictor are models (the host's cache sizes, a simple
predictor), so read the rates against each other, not as the CPU's own.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: cachegrind's events, in its order: instructions, their L1/LL misses, data reads and
#: writes with theirs, conditional branches and indirect ones with their mispredictions.
EVENTS = ("Ir", "I1mr", "ILmr", "Dr", "D1mr", "DLmr", "Dw", "D1mw", "DLmw",
          "Bc", "Bcm", "Bi", "Bim")
#: (misses, of what): the rates printed, each per 100 of its base.
RATES = (("I1mr", "Ir"), ("D1mr", "Dr"), ("D1mw", "Dw"), ("Bcm", "Bc"), ("Bim", "Bi"))


def traffic(server: str, registrations: int, code: Path | None) -> None:
    """bench/registrar_profile.py's registrations through ``server`` ("vosapp" or
    "minimum", bindings in memory), after a warm-up binding each of 1,000 users once."""
    if code is not None:
        sys.path.insert(0, str(code))
    sys.path.insert(0, str(HERE))
    import registrar_profile as profile
    from python_minimum_registrar import MinimumRegistrar

    from vosapp.io.serve import tune_gc

    with tempfile.TemporaryDirectory(prefix="vosapp-cachesim-") as tmp:
        if server == "vosapp":
            core, sent, store = profile.build(Path(tmp), 1000)
            profile.run(core, sent, 1000, 1000)
            tune_gc()
            profile.run(core, sent, registrations, 1000, 1000)
            store.close()
        else:
            minimum = MinimumRegistrar(None)
            profile.run_minimum(minimum, 1000, 1000)
            profile.run_minimum(minimum, registrations, 1000, 1000)


def totals(annotated: str) -> dict[str, int]:
    """The PROGRAM TOTALS row of ``cg_annotate``'s output, by event."""
    for line in annotated.splitlines():
        if "PROGRAM TOTALS" in line:
            counts = [int(n.replace(",", "")) for n in re.findall(r"([\d,]+) \(", line)]
            if len(counts) != len(EVENTS):
                raise SystemExit(f"cg_annotate gave {len(counts)} events, not "
                                 f"{len(EVENTS)}: {line!r}")
            return dict(zip(EVENTS, counts, strict=True))
    raise SystemExit("cg_annotate printed no PROGRAM TOTALS row")


def simulate(server: str, registrations: int, code: Path | None, work: Path) -> dict[str, int]:
    out = work / f"cachegrind.{server}.{registrations}.out"
    command = ["valgrind", "--tool=cachegrind", "--cache-sim=yes", "--branch-sim=yes",
               f"--cachegrind-out-file={out}", sys.executable, str(Path(__file__).resolve()),
               "--traffic", server, "--registrations", str(registrations)]
    if code is not None:
        command += ["--code", str(code)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"valgrind failed ({done.returncode}): {done.stderr[-2000:]}")
    annotated = subprocess.run(["cg_annotate", str(out)], capture_output=True, text=True,
                               check=True).stdout
    return totals(annotated)


def per_registration(small: dict[str, int], large: dict[str, int],
                     registrations: int) -> dict[str, float]:
    return {event: (large[event] - small[event]) / registrations for event in EVENTS}


def report(vosapp: dict[str, float], minimum: dict[str, float]) -> str:
    extra = {event: vosapp[event] - minimum[event] for event in EVENTS}
    lines = [f"{'per registration':<18}{'vosapp':>12}{'minimum':>12}{'vosapp - minimum':>18}"]
    for event in EVENTS:
        lines.append(f"{event:<18}{vosapp[event]:>12,.0f}{minimum[event]:>12,.0f}"
                     f"{extra[event]:>18,.0f}")
    lines.append("per 100 of the base (misses of instruction fetches, data reads, data writes; "
                 "mispredicted conditional and indirect branches):")
    for misses, base in RATES:
        rates = [f"{column[misses] / column[base] * 100:>12.2f}" if column[base] else
                 f"{'-':>12}" for column in (vosapp, minimum)]
        rates.append(f"{extra[misses] / extra[base] * 100:>18.2f}" if extra[base] > 0
                     else f"{'-':>18}")
        lines.append(f"{misses + '/' + base:<18}{''.join(rates)}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=200)
    parser.add_argument("--large", type=int, default=1200)
    parser.add_argument("--code", metavar="PATH",
                        help="measure the vosapp of another checkout (default: this one)")
    parser.add_argument("--traffic", choices=("vosapp", "minimum"), help=argparse.SUPPRESS)
    parser.add_argument("--registrations", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    code = Path(args.code).resolve() if args.code else None
    if args.traffic:  # the child valgrind runs
        traffic(args.traffic, args.registrations, code)
        return 0
    if args.large <= args.small:
        raise SystemExit("--large must be above --small")
    with tempfile.TemporaryDirectory(prefix="vosapp-cachesim-") as tmp:
        columns = {}
        for server in ("vosapp", "minimum"):
            small = simulate(server, args.small, code, Path(tmp))
            large = simulate(server, args.large, code, Path(tmp))
            columns[server] = per_registration(small, large, args.large - args.small)
    print(f"cachegrind (--cache-sim=yes --branch-sim=yes), {args.large - args.small} "
          f"registrations in process (bench/registrar_profile.py's traffic; the client's work "
          f"included in both columns), python {sys.version.split()[0]}")
    print(report(columns["vosapp"], columns["minimum"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
