"""The switch's commits under constant writes with its WAL checkpoint thread running: how
long they take, and how large the log grows (vosapp.io.wal_checkpoint).

A writer like the switch's group commit: one transaction a millisecond, each inserting a
``--row-kb`` KB row (and every 50th deleting the oldest rows, as the trace's prune does),
through ``vosapp.store.Store`` with a ``WalCheckpointer`` started as ``vosapp serve`` starts
it. Printed: the commits over 1 and 5 ms, the longest, the log's high-water mark in pages
(its file is reused from the start when the log restarts, so its size is that mark) and the
checkpoints the thread ran. ``--code`` measures another checkout's vosapp (before/after).
Example (docs/benchmarks.md "The WAL checkpoint thread catches up")::

    .venv/bin/python bench/wal_commits.py
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--row-kb", type=int, default=12)
    parser.add_argument("--code", type=Path, default=ROOT,
                        help="the checkout whose vosapp runs (default: this one)")
    args = parser.parse_args()
    sys.path.insert(0, str(args.code.resolve()))
    from vosapp.io.wal_checkpoint import WalCheckpointer
    from vosapp.store import Store

    with tempfile.TemporaryDirectory(prefix="wal-commits-") as work:
        store = Store.open(work)
        store.ensure_schema("bench_rows",
                            ["CREATE TABLE bench_rows (id INTEGER PRIMARY KEY, data BLOB)"])
        checkpointer = WalCheckpointer(store)
        checkpointer.start()
        log = Path(f"{store.path}-wal")
        row = os.urandom(args.row_kb * 1000)
        took: list[float] = []
        end = time.monotonic() + args.seconds
        while time.monotonic() < end:
            began = time.perf_counter()
            with store.transaction() as db:
                db.execute("INSERT INTO bench_rows (data) VALUES (?)", (row,))
                if len(took) % 50 == 0:
                    db.execute("DELETE FROM bench_rows WHERE id < ?", (len(took) - 2_000,))
            took.append(time.perf_counter() - began)
            time.sleep(0.001)
        # read once: the file is reused from its start when the log restarts, never shrunk
        high = max(0, log.stat().st_size - 32) // (4096 + 24) if log.exists() else 0
        checkpointer.stop()
        store.close()
    took.sort()
    print(f"{args.code.resolve()}: {len(took):,} commits in {args.seconds:.0f} s; over 1 ms "
          f"{sum(t > 1e-3 for t in took)}, over 5 ms {sum(t > 5e-3 for t in took)}, longest "
          f"{took[-1] * 1e3:.1f} ms; the log's high-water mark {high:,} pages; "
          f"{checkpointer.checkpoints} checkpoints by the thread")


if __name__ == "__main__":
    main()
