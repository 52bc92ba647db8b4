"""bench/backlog_sampler.py, which bench/calls.sh runs beside each step: it reads a real
socket's receive queue and a real process's CPU time and state from /proc, and its summary
finds the longest stretch with datagrams waiting and what the switch did over it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

from tests.support.bench import load_bench
from tests.support.serving import ROOT

backlog = load_bench("backlog_sampler")


def test_the_queue_of_a_loopback_socket_is_read_from_proc() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as unread, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        unread.bind(("127.0.0.1", 0))
        port = unread.getsockname()[1]
        assert backlog.queue_bytes(port) == 0
        for _ in range(20):
            sender.sendto(b"x" * 500, ("127.0.0.1", port))
        assert backlog.queue_bytes(port) >= 20 * 500  # kernel bytes, more than the payload
        while True:  # read it all: the queue empties
            unread.setblocking(False)
            try:
                unread.recv(2048)
            except BlockingIOError:
                break
        assert backlog.queue_bytes(port) == 0
    cpu, state = backlog.cpu_and_state(os.getpid())
    assert cpu > 0 and state == "R"  # this test is running
    assert 0 < backlog.canary() < 1


def test_the_summary_names_the_longest_stretch_with_datagrams_waiting() -> None:
    sample = backlog.Sample
    samples = [sample(0.05, 0, 0.05, 0.05, "R", 0.001),
               sample(0.10, 100_000, 0.05, 0.05, "R", 0.001),  # a short stretch, on the CPU
               sample(0.15, 0, 0.05, 0.05, "S", 0.001),
               # the long one, mostly off the CPU, the canary slower meanwhile
               sample(0.20, 70_000, 0.05, 0.0, "R", 0.002),
               sample(0.25, 300_000, 0.05, 0.01, "R", 0.002),
               sample(0.30, 500_000, 0.05, 0.0, "D", 0.0014),
               sample(0.35, 1_000, 0.05, 0.05, "S", 0.001)]
    assert backlog.summarize(samples) == (
        "backlog max 488 KiB at 0.3 s; longest stretch with over 64 KiB waiting: 150 ms from "
        "0.2 s, switch CPU 0.07 of a core, main thread states D1 R2, canary 1.80 x its step "
        "median; canary median 1.00 ms")
    assert backlog.summarize(samples[:3]).endswith(
        "50 ms from 0.1 s, switch CPU 1.00 of a core, main thread states R1, canary 1.00 x its "
        "step median; canary median 1.00 ms")
    assert "no stretch with over 64 KiB waiting" in backlog.summarize([samples[0]])


def test_it_samples_a_process_until_told_to_stop() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as unread:
        unread.bind(("127.0.0.1", 0))
        sampler = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "backlog_sampler.py"), str(os.getpid()),
             str(unread.getsockname()[1])], stdout=subprocess.PIPE, text=True)
        time.sleep(0.5)
        sampler.send_signal(signal.SIGTERM)
        out, _ = sampler.communicate(timeout=10)
    assert sampler.returncode == 0
    assert out.startswith("backlog max 0 KiB at ") and "no stretch" in out
    assert out.rstrip().endswith(" MB") and "switch RSS 0 MB" not in out  # this process's
