"""bench/media_calls.py's machinery on a real ``vosapp serve`` (not timed): two PCMA ↔ G.729
calls through the media proxy for 2 s, caller and callee load generators in their own
processes, so the end-to-end media bench cannot silently rot."""

from __future__ import annotations

import os
import resource
import socket
from pathlib import Path

import pytest

from tests.support.bench import load_bench

pytestmark = pytest.mark.timeout(90)

media_calls = load_bench("media_calls")


def may_use_sched_rr() -> bool:
    return hasattr(os, "SCHED_RR") and (
        os.geteuid() == 0 or resource.getrlimit(resource.RLIMIT_RTPRIO)[0] > 0)


def rtp_range() -> tuple[int, int]:
    """A small RTP range around a port the kernel just handed out (no fixed ports in tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        base = probe.getsockname()[1]
    low = max(1024, base - base % 2 - 40)
    return low, min(65535, low + 80)


# (None, False): the defaults; (1, False): --realtime-priority 1 (SCHED_RR); (2, True):
# --realtime-priority 2 --generators-everywhere (the switch pinned, the generators on every CPU
# one priority below it)
@pytest.mark.parametrize(("realtime_priority", "generators_everywhere"),
                         [(None, False), (1, False), (2, True)])
def test_two_transcoded_calls_carry_pcma_to_the_caller_and_g729_to_the_callee(
        tmp_path: Path, realtime_priority: int | None, generators_everywhere: bool) -> None:
    if realtime_priority is not None and not may_use_sched_rr():
        pytest.skip("SCHED_RR needs root or CAP_SYS_NICE (RLIMIT_RTPRIO)")
    cpus = sorted(os.sched_getaffinity(0))
    if generators_everywhere and len(cpus) < 2:
        pytest.skip("pinning the switch apart needs 2 CPUs")
    payloads = {name: media_calls.speechlike_payloads(name, packets=50)
                for name in ("PCMA", "G729")}
    switch = media_calls.start_switch("transcode", tmp_path, rtp_range(),
                                      realtime_priority=realtime_priority,
                                      pin=generators_everywhere,
                                      generators_everywhere=generators_everywhere)
    try:
        result = media_calls.run_step(switch, "transcode", 2, 2.0, setup_rate=20.0,
                                      payloads=payloads)
    finally:
        media_calls.stop_switch(switch)
    assert (result["established"], result["callee_established"], result["hung_up"]) == (2, 2, 2)
    assert result["failures"] == {}
    # vosapp transcodes: the callee was offered only G.729 without Annex B and receives
    # payload type 18, the caller receives PCMA (8)
    assert result["callee_offers"] == ["G729/18 annexb=no telephone-event/101 0-16"]
    assert result["callee_pts"] == [18] and result["caller_pts"] == [8]
    for sent, received in (result["forward"], result["backward"]):
        assert sent >= 2 * 50 * 2  # 2 calls, 50 packets/s, the 2 s hold at least
        assert received == sent
    assert result["lost"] == 0 and result["generator_drops"] == 0
    assert result["switch_cpu_s"] > 0
    if generators_everywhere:
        # the switch alone on the last CPU, the generators on all of them, one priority below
        # the switch (so that it preempts them on its CPU)
        assert switch.cpus == ({cpus[-1]}, set(cpus))
        assert result["generator_scheduling"] == ((cpus, os.SCHED_RR, 1),) * 2
    elif realtime_priority is not None:
        assert result["generator_scheduling"] == ((cpus, os.SCHED_RR, realtime_priority),) * 2
