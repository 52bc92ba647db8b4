"""The process's file-descriptor table grown once, at start, not in the middle of a call.

Linux keeps a process's open files in a table that starts with room for 64 descriptors and
doubles when a new one does not fit (256, 512, 1,024, ...). In a process with more than one
thread the kernel then waits for an RCU grace period before it frees the old table
(``expand_fdtable``), and the ``socket()`` that needed the room waits with it: 6-15 ms on
this machine, measured by ``bench/fd_table.py``. The switch has threads (the WAL checkpoint
thread, vosapp.io.wal_checkpoint), and the media proxy opens a socket per relayed leg, so
the call that took the 256th, 512th, 1,024th descriptor held the event loop that long: the
one wake-up over 10 ms of a run at 700 calls/s with 200 relayed calls (docs/benchmarks.md
"WAL checkpoints off the event loop, and what the long wake-ups are").

:func:`reserve_descriptors` duplicates a descriptor to the highest number the switch may
need and closes it again: the table grows to that size at once, and never shrinks. When the
soft ``RLIMIT_NOFILE`` is below that number (1,024 is a common default) it first raises it,
up to the hard limit, as a switch that opens a socket per RTP port must: past the soft limit
a relay's ``socket()`` fails with EMFILE.
"""

from __future__ import annotations

import fcntl
import logging
import os
import resource

__all__ = ["reserve_descriptors", "table_size"]

log = logging.getLogger(__name__)


def reserve_descriptors(count: int) -> int:
    """Grow the descriptor table to hold ``count`` descriptors, raising the soft
    ``RLIMIT_NOFILE`` to ``count`` first when it is lower (never past the hard limit); return
    the number reserved (0 when nothing could be).

    ``F_DUPFD`` takes the lowest free number at or above the one asked for, so an open
    descriptor is never replaced."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < count:
        raised = count if hard == resource.RLIM_INFINITY else min(count, hard)
        if raised > soft:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            except (OSError, ValueError) as exc:
                log.debug("cannot raise the open-files limit to %d: %s", raised, exc)
            else:
                log.info("open-files limit raised from %d to %d for the RTP ports and TCP "
                         "connections", soft, raised)
                soft = raised
        count = min(count, soft)
    if count <= 3:
        return 0
    probe = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    try:
        high = fcntl.fcntl(probe, fcntl.F_DUPFD_CLOEXEC, count - 1)
    except OSError as exc:  # every number from count - 1 up is taken, or the limit moved
        log.debug("cannot reserve %d file descriptors: %s", count, exc)
        return 0
    finally:
        os.close(probe)
    os.close(high)
    return count


def table_size(pid: int | str = "self") -> int:
    """The descriptor table's size (``FDSize`` in /proc/PID/status); 0 when unknown."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("FDSize:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0
