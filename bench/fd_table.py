"""What opening a socket costs when the process's descriptor table must grow, with a second
thread running (as vosapp serve has: the WAL checkpoint thread), with and without the
switch's reservation at start (vosapp.io.descriptors.reserve_descriptors).

Each mode runs in a fresh Python process: a thread that only waits is started, then SOCKETS
UDP sockets are opened one by one, each ``socket()`` timed. Printed per mode: the descriptor
table's size before and after (``FDSize``), and each ``socket()`` over 1 ms with the
descriptor it got. Example (docs/benchmarks.md "WAL checkpoints off the event loop, and what
the long wake-ups are")::

    .venv/bin/python bench/fd_table.py --sockets 1500
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_mode(reserve: int, sockets: int) -> dict[str, object]:
    """In this process: start a waiting thread, reserve ``reserve`` descriptors (0: none),
    then open ``sockets`` sockets."""
    from vosapp.io.descriptors import reserve_descriptors, table_size

    idle = threading.Event()
    threading.Thread(target=idle.wait, daemon=True).start()
    before = table_size()
    began = time.perf_counter()
    reserved = reserve_descriptors(reserve) if reserve else 0
    reserving_ms = (time.perf_counter() - began) * 1e3
    opened, slow = [], []
    for _ in range(sockets):
        began = time.perf_counter()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        took = time.perf_counter() - began
        opened.append(sock)
        if took > 1e-3:
            slow.append((sock.fileno(), round(took * 1e3, 2)))
    result = {"reserved": reserved, "reserving_ms": round(reserving_ms, 2),
              "table_before": before, "table_after": table_size(), "slow": slow}
    for sock in opened:
        sock.close()
    idle.set()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", type=int, default=1500)
    parser.add_argument("--reserve", type=int, default=4096,
                        help="descriptors reserved in the second mode (default 4096)")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(run_mode(args.child, args.sockets)))
        return
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), os.environ.get("PYTHONPATH", "")])}
    for label, reserve in (("without reservation", 0), ("reserved at start", args.reserve)):
        out = subprocess.run([sys.executable, __file__, "--child", str(reserve),
                              "--sockets", str(args.sockets)], env=env, check=True,
                             capture_output=True, text=True).stdout
        result = json.loads(out)
        slow = ", ".join(f"fd {fd}: {ms} ms" for fd, ms in result["slow"]) or "none"
        print(f"{label:20s}: table {result['table_before']} -> {result['table_after']}, "
              f"reserved {result['reserved']} in {result['reserving_ms']} ms; "
              f"socket() over 1 ms: {slow}")


if __name__ == "__main__":
    main()
