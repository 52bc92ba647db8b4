"""System calls per unit of work, from ``strace -c -f`` summaries (bench/registrar_syscalls.sh).

    python bench/syscall_counts.py UNITS NAME=SUMMARY [NAME=SUMMARY ...]

Each SUMMARY is a file ``strace -c -f -o SUMMARY -p PID`` wrote while the process served
UNITS units of work (registrations). Prints one row per system call, calls per unit for each
NAME side by side, the most frequent first, and the total. ``futex`` is left out of the
total: its count is threads waking each other (a lock held across a wait), not work per unit.
"""

from __future__ import annotations

import sys
from pathlib import Path

#: Not counted in the total (see the docstring).
UNCOUNTED = frozenset({"futex"})


def parse_summary(text: str) -> dict[str, int]:
    """``strace -c``'s table as {syscall: calls}: its rows are ``% time, seconds, usecs/call,
    calls, [errors,] syscall``; the header, the rules and the total row are skipped."""
    calls: dict[str, int] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 5 or fields[-1] == "total" or not fields[3].isdigit():
            continue
        try:
            float(fields[0])
        except ValueError:
            continue  # the header line
        calls[fields[-1]] = int(fields[3])
    return calls


def table(units: int, summaries: dict[str, dict[str, int]]) -> list[str]:
    names = list(summaries)
    every = sorted({call for calls in summaries.values() for call in calls},
                   key=lambda call: (-max(calls.get(call, 0) for calls in summaries.values()),
                                     call))
    rows = [f"{'system call':16s}" + "".join(f"{name:>14s}" for name in names)]
    for call in every:
        rows.append(f"{call:16s}" + "".join(
            f"{summaries[name].get(call, 0) / units:14.3f}" for name in names))
    rows.append(f"{'total (no futex)':16s}" + "".join(
        f"{sum(n for call, n in summaries[name].items() if call not in UNCOUNTED) / units:14.2f}"
        for name in names))
    return rows


def main(argv: list[str]) -> int:
    if len(argv) < 2 or not argv[0].isdigit() or not all("=" in arg for arg in argv[1:]):
        print(__doc__.strip().split("\n\n")[1], file=sys.stderr)
        return 2
    units = int(argv[0])
    summaries = {name: parse_summary(Path(path).read_text())
                 for name, path in (arg.split("=", 1) for arg in argv[1:])}
    print(f"system calls per registration ({units} registrations; strace -c -f)")
    print("\n".join(table(units, summaries)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
