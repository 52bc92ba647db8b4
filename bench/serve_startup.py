"""Seconds from launching ``vosapp serve`` to its ready line, and what its start imports.

Usage: ``.venv/bin/python bench/serve_startup.py [--code PATH] [--runs N] [--config FILE]``

Each run starts ``python -m vosapp.cli serve --listen 127.0.0.1:0`` on an empty data directory
(with ``--config``, on that file) and stops it once it prints ``vosapp listening on ...``. With
``--code``, the vosapp of another checkout is started too, the two alternating run by run (the
machine's speed moves from minute to minute; only the two side by side compare). Also printed,
per checkout: the seconds ``import vosapp.io.serve`` takes in a fresh interpreter, and whether
scipy.signal is among what it imported (docs/benchmarks.md, twenty-third round: a switch that
cannot convert codecs does not import it).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IMPORT_PROBE = ("import sys, time; t = time.perf_counter(); import vosapp.io.serve; "
                "print(time.perf_counter() - t, 'scipy.signal' in sys.modules)")


def environment(checkout: Path) -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(checkout), PYTHONUNBUFFERED="1")


def ready_seconds(checkout: Path, config: Path | None, timeout: float = 60.0) -> float:
    """One start of ``vosapp serve`` from ``checkout``: launch to the ready line."""
    with tempfile.TemporaryDirectory(prefix="vosapp-startup-") as data:
        args = [sys.executable, "-m", "vosapp.cli", "serve", "--listen", "127.0.0.1:0",
                "--data-dir", data, "--no-control"]
        if config is not None:
            args += ["--config", str(config)]
        log = Path(data) / "stderr.log"
        start = time.perf_counter()
        with log.open("w") as errors:
            process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=errors, text=True,
                                       cwd=checkout, env=environment(checkout))
        try:
            assert process.stdout is not None
            for line in process.stdout:
                if line.startswith("vosapp listening on "):
                    return time.perf_counter() - start
                if time.perf_counter() - start > timeout:
                    break
            raise SystemExit(f"vosapp serve from {checkout} printed no ready line (exit "
                             f"status {process.poll()}):\n{log.read_text()[-2000:]}")
        finally:
            process.terminate()
            process.wait(timeout=30)


def import_seconds(checkout: Path) -> tuple[float, bool]:
    """``import vosapp.io.serve`` in a fresh interpreter: seconds, and scipy.signal loaded?"""
    done = subprocess.run([sys.executable, "-c", IMPORT_PROBE], capture_output=True, text=True,
                          cwd=checkout, env=environment(checkout), check=True, timeout=120)
    seconds, scipy = done.stdout.split()
    return float(seconds), scipy == "True"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--code", metavar="PATH", type=Path,
                        help="also start the vosapp of another checkout, alternating")
    parser.add_argument("--runs", type=int, default=5, help="starts per checkout")
    parser.add_argument("--config", type=Path, help="serve this configuration file")
    args = parser.parse_args()
    checkouts = [ROOT] + ([args.code.resolve()] if args.code else [])
    seconds: dict[Path, list[float]] = {checkout: [] for checkout in checkouts}
    for run in range(args.runs):
        for checkout in checkouts if run % 2 == 0 else checkouts[::-1]:
            seconds[checkout].append(ready_seconds(checkout, args.config))
    print(f"vosapp serve, launch to ready line, {args.runs} runs (python "
          f"{sys.version.split()[0]}); import vosapp.io.serve in a fresh interpreter:")
    for checkout, runs in seconds.items():
        imported, scipy = import_seconds(checkout)
        print(f"  {checkout!s:40s} median {statistics.median(runs):.2f} s "
              f"({' '.join(f'{s:.2f}' for s in runs)}); import {imported:.3f} s, "
              f"scipy.signal {'imported' if scipy else 'not imported'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
