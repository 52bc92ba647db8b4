"""What the switch was doing while datagrams waited for it: samples, every 50 ms, the receive
queue of the switch's UDP socket and the switch process's CPU time and main-thread state, for
bench/calls.sh's steps (issue #14 part 1, the pause at high call rates).

A step fails when requests wait in the switch's socket longer than RFC 3261's T1 (500 ms) and
the SIPps retransmit. A queue that grows says the switch fell behind; what it did meanwhile says
why:
- on its CPU the whole time (CPU share near 1): it was too slow for the load (capacity, or the
  work per message grew);
- runnable but off its CPU (state R, CPU share low): the machine gave the CPU to someone else
  (other processes, or the hypervisor: "steal");
- asleep with datagrams waiting (state S or D): blocked on something other than its socket
  (a lock, the GIL held by another thread, a disk write).
When the switch was on its CPU, a canary says whether the machine itself was slower then: each
sample also times (thread CPU time) a fixed pure-Python loop of about a millisecond, and the
summary gives its mean over the stretch against its median over the whole step. A machine
slowed by its neighbours (caches, memory bandwidth, clock) slows the canary too; the switch
doing more work per message does not.

    python bench/backlog_sampler.py PID PORT   (until SIGTERM; then one summary line on stdout)

The summary: the largest queue seen, and the longest stretch of samples with a queue of more
than 64 KiB, with the switch's CPU share over that stretch and its main thread's states in it;
the canary's median over the step (comparable between steps: the machine's speed of the
moment) and the switch's resident set at the end.
Reads /proc only (Linux): /proc/net/udp's rx_queue for 127.0.0.1:PORT (kernel buffer bytes,
more than the payload), /proc/PID/stat (all threads' CPU time) and /proc/PID/task/PID/stat.
"""

from __future__ import annotations

import os
import signal
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

INTERVAL = 0.05  # seconds between samples
QUEUED = 64 * 1024  # bytes of receive queue that count as "datagrams waiting"
TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Sample:
    at: float  # seconds since the first sample
    queue: int  # bytes in the socket's receive queue
    span: float  # seconds since the previous sample
    cpu: float  # the process's CPU seconds since the previous sample
    state: str  # the main thread's state letter (R, S, D, ...)
    canary: float = 0.0  # CPU seconds of the fixed loop at this sample


@dataclass
class Stretch:
    """Consecutive samples with more than QUEUED bytes waiting."""
    samples: list[Sample] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return sum(s.span for s in self.samples)

    def summary(self, canary_median: float) -> str:
        if not self.samples:
            return "no stretch with over 64 KiB waiting"
        share = sum(s.cpu for s in self.samples) / self.seconds
        states = Counter(s.state for s in self.samples)
        shown = " ".join(f"{state}{count}" for state, count in sorted(states.items()))
        canary = sum(s.canary for s in self.samples) / len(self.samples)
        return (f"longest stretch with over 64 KiB waiting: {self.seconds * 1000:.0f} ms from "
                f"{self.samples[0].at:.1f} s, switch CPU {share:.2f} of a core, main thread "
                f"states {shown}, canary {canary / canary_median if canary_median else 0:.2f} "
                "x its step median")


def queue_bytes(port: int, table: str = "/proc/net/udp") -> int:
    """rx_queue of the socket bound to 127.0.0.1:``port`` (0 when none is)."""
    local = f"0100007F:{port:04X}"
    with open(table) as lines:
        for line in lines:
            fields = line.split()
            if len(fields) > 4 and fields[1] == local:
                return int(fields[4].split(":")[1], 16)
    return 0


def cpu_and_state(pid: int) -> tuple[float, str]:
    """The process's CPU seconds (user + system, all threads) and its main thread's state."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    with open(f"/proc/{pid}/task/{pid}/stat") as stat:
        state = stat.read().rsplit(")", 1)[1].split()[0]
    return (int(fields[11]) + int(fields[12])) / TICK, state


def longest_stretch(samples: list[Sample], threshold: int = QUEUED) -> Stretch:
    best, current = Stretch(), Stretch()
    for sample in samples:
        if sample.queue > threshold:
            current.samples.append(sample)
            if len(current.samples) > len(best.samples):
                best = current
        else:
            current = Stretch()
    return best


def summarize(samples: list[Sample]) -> str:
    if not samples:
        return "backlog: no samples"
    deepest = max(samples, key=lambda s: s.queue)
    median = statistics.median(s.canary for s in samples)
    return (f"backlog max {deepest.queue // 1024} KiB at {deepest.at:.1f} s; "
            f"{longest_stretch(samples).summary(median)}; canary median "
            f"{median * 1000:.2f} ms")


def resident_mb(pid: int) -> int:
    """The process's resident set (VmRSS) in MB, 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 0


def canary() -> float:
    """CPU seconds of this thread for a fixed pure-Python loop (about 1 ms on this VM)."""
    start = time.thread_time()
    total = 0
    for n in range(20_000):
        total += n & 7
    return time.thread_time() - start


def main() -> int:
    pid, port = int(sys.argv[1]), int(sys.argv[2])
    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    samples: list[Sample] = []
    start = time.monotonic()
    try:
        cpu_before, _ = cpu_and_state(pid)
        before = start
        while not stopping:
            time.sleep(INTERVAL)
            cpu, state = cpu_and_state(pid)
            now = time.monotonic()
            samples.append(Sample(now - start, queue_bytes(port), now - before,
                                  cpu - cpu_before, state, canary()))
            cpu_before, before = cpu, now
    except (FileNotFoundError, ProcessLookupError):
        pass  # the switch ended: summarize what was seen
    print(f"{summarize(samples)}; switch RSS {resident_mb(pid)} MB", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
