"""Media benchmarks: transcoding capacity and relay packet rate, each against a baseline.

Usage::

    .venv/bin/python bench/media.py                 # both parts, markdown on stdout
    .venv/bin/python bench/media.py --part 1        # transcoding only
    .venv/bin/python bench/media.py --write         # also update docs/benchmarks.md "Media"

(1) Transcoding capacity. N concurrent calls, each two-way: PCMA 20 ms -> G.729 2 x 10 ms in
one direction, G.729 -> PCMA in the other, through :class:`vosapp.media.transcoder.Transcoder`
(the relay's per-packet path: RTP header parse, decode, reframe, encode, RTP build). One
"tick" feeds every call one 20 ms packet per direction. The result is the largest N whose
tick takes at most 20 ms at the 99th percentile, on one core (the process is pinned); found
twice: with every call carrying the same packet in a tick (lockstep, the original figure) and
with each call at its own point of the audio (staggered, as calls are in a switch). The
baseline is the raw bcg729 bound measured in the same run: the cost of exactly the codec work
of one call-tick (2 encodes + 2 decodes of 10 ms frames) called through ctypes in a tight loop
with no Python around it; ``20 ms / that cost`` calls. Ratio = N / raw bound.

(2) DTMF detector channels: owned by the DTMF engineer, in ``bench/dtmf.py`` (run it
separately; its section of docs/benchmarks.md is its own).

(3) Relay packet rate. A forwarder process pinned to one core relays RTP from a sender to a
receiver (both in another process on another core). For each offered rate (packets per second,
paced in 1 ms bursts for 1.5 s) it counts what arrives; the result is the highest rate with
0 loss. Forwarders: :class:`vosapp.io.rtp_relay.RtpRelay` in relay mode (latching, stats, PT
rewrite) and, as the baseline, a raw forwarder on the same asyncio loop that drains its socket
and re-sends each datagram unchanged.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import multiprocessing as mp
import os
import platform
import re
import socket
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def code_root(argv: list[str]) -> Path:
    """The checkout whose vosapp is measured: ``--code PATH`` (e.g. the revision before a
    change, for a before/after comparison in one run), else this one."""
    if "--code" in argv[:-1]:
        return Path(argv[argv.index("--code") + 1]).resolve()
    return ROOT


sys.path.insert(0, str(code_root(sys.argv)))

from vosapp.media import codecs
from vosapp.media.codecs import g729 as g729_binding
from vosapp.media.rtp import OutgoingStream
from vosapp.media.transcoder import Transcoder

TICK_S = 0.020


def packet_lane() -> str:
    """How the measured checkout's transcoder converts a G.711 <-> G.729 packet: the C lane
    (and the file it was imported from) or ctypes (a revision without it, or not built)."""
    if getattr(g729_binding, "NATIVE_LANE", False):
        return f"C extension ({g729_binding._native.__file__})"
    return "ctypes"


def pin(cpu: int) -> str:
    """Pin this process to one CPU; return a note saying whether it worked."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
        chosen = cpus[cpu % len(cpus)]
        os.sched_setaffinity(0, {chosen})
        return f"cpu {chosen}"
    except (AttributeError, OSError):
        return "not pinned"


def speechlike(samples: int, seed: int = 1) -> np.ndarray:
    """Noise-excited formant-ish signal (the codec work depends a little on the content)."""
    from scipy.signal import lfilter

    rng = np.random.default_rng(seed)
    t = np.arange(samples) / 8000
    pulses = (np.diff(np.floor(np.cumsum((120 + 20 * np.sin(t)) / 8000)), prepend=0) > 0)
    excitation = pulses * 1.0 + 0.05 * rng.standard_normal(samples)
    y = lfilter([1.0], [1.0, -1.3, 0.8], excitation)
    y *= 9000 / np.max(np.abs(y))
    return y.astype(np.int16)


# -- (1) transcoding capacity ---------------------------------------------------------------


def make_streams(ticks: int) -> tuple[list[bytes], list[bytes]]:
    """RTP packets of one PCMA and one G.729 20 ms stream, ``ticks`` long."""
    audio = speechlike(160 * ticks)
    pcma, g729 = codecs.get("PCMA"), codecs.get("G729")
    out_a = OutgoingStream(8, ssrc=1, sequence=0, timestamp=0)
    out_g = OutgoingStream(18, ssrc=2, sequence=0, timestamp=0)
    a = [out_a.packet(pcma.encode(audio[i * 160 : (i + 1) * 160]), 160) for i in range(ticks)]
    g = [out_g.packet(g729.encode(audio[i * 160 : (i + 1) * 160]), 160) for i in range(ticks)]
    return a, g


#: staggered audio: call i starts (i * STAGGER_STRIDE) % STAGGER_SPAN packets into the streams
#: (no call wraps around: a packet sequence going back would be dropped as late, not coded)
STAGGER_STRIDE = 37
STAGGER_SPAN = 250


def tick_times(
    calls: int, ticks: int, pcma: list[bytes], g729: list[bytes], staggered: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """(CPU seconds, wall seconds) per tick for ``calls`` two-way transcoded calls.

    The criterion uses the tick's CPU time (``CLOCK_THREAD_CPUTIME_ID``): on a shared machine
    the wall time also counts the slices the scheduler gives to other processes, which says
    nothing about whether the work fits a 20 ms tick on one core. Wall times are reported too.

    By default every call carries the same packet in a tick (lockstep: G.729's cost varies
    with the audio, so a costly stretch lands on all calls at once and sets the p99 tick);
    ``staggered``: each call is at its own point of the audio, as the calls in a switch are
    (bench/media_calls.py starts each stream at a random packet).
    """
    pairs = [(Transcoder("PCMA", "G729").process, Transcoder("G729", "PCMA").process)
             for _ in range(calls)]
    offsets = [(i * STAGGER_STRIDE) % STAGGER_SPAN if staggered else 0 for i in range(calls)]
    if ticks + max(offsets) > min(len(pcma), len(g729)):
        raise ValueError("streams too short for the ticks and offsets")
    plan = [(f, b, offset) for (f, b), offset in zip(pairs, offsets, strict=True)]
    warm = 5
    cpu = np.empty(ticks - warm)
    wall = np.empty(ticks - warm)
    cpu_clock, wall_clock = time.thread_time, time.perf_counter
    for k in range(ticks):
        cpu_start, wall_start = cpu_clock(), wall_clock()
        for forward, backward, offset in plan:
            forward(pcma[k + offset])
            backward(g729[k + offset])
        if k >= warm:
            cpu[k - warm] = cpu_clock() - cpu_start
            wall[k - warm] = wall_clock() - wall_start
    return cpu, wall


class RawCodecBuffers:
    """What the bare bcg729 loops call through ctypes, built once: the library's encode and
    decode functions and the addresses of ``frames`` 10 ms pairs of speech-like input, their
    G.729 bits (from ``g729``'s payloads) and the output buffers (kept alive with this
    object). Each loop unpacks the fields into locals, so the timed code stays bare."""

    def __init__(self, g729: list[bytes], frames: int) -> None:
        import ctypes

        codec = codecs.get("G729")
        self.encode_fn, self.decode_fn = codec._encode_fn, codec._decode_fn
        self._audio = speechlike(160 * frames)
        self.in_addr = self._audio.ctypes.data
        self._out = ctypes.create_string_buffer(20)
        self.out_addr = ctypes.addressof(self._out)
        self._length = ctypes.c_uint8(0)
        self.length_addr = ctypes.addressof(self._length)
        self._bits = ctypes.create_string_buffer(b"".join(p[12:] for p in g729[:frames]))
        self.bits_addr = ctypes.addressof(self._bits)
        self._pcm = np.zeros(160, dtype=np.int16)
        self.pcm_addr = self._pcm.ctypes.data


def interleaved_call_ticks(
    calls: int, ticks: int, pcma: list[bytes], g729: list[bytes]
) -> tuple[np.ndarray, np.ndarray]:
    """(transcoders, bare bcg729) CPU seconds per call-tick, tick by tick in alternation.

    Each tick runs ``calls`` two-way transcoded calls, then the bare bcg729 work of as many
    calls (2 encodes + 2 decodes through ctypes, one encoder and one decoder per call as the
    transcoders have). Alternating puts both under the same machine load at the same moment,
    which the best-of-3 raw bound cannot (on a loaded machine it is the luckiest stretch).
    """
    pairs = [(Transcoder("PCMA", "G729").process, Transcoder("G729", "PCMA").process)
             for _ in range(calls)]
    channels = [codecs.get("G729") for _ in range(calls)]
    contexts = [(c._encoder, c._decoder) for c in channels]
    raw_codec = RawCodecBuffers(g729, ticks)
    encode_fn, decode_fn = raw_codec.encode_fn, raw_codec.decode_fn
    in_addr, bits_addr = raw_codec.in_addr, raw_codec.bits_addr
    out_addr, length_addr, pcm_addr = raw_codec.out_addr, raw_codec.length_addr, raw_codec.pcm_addr
    warm = 5
    ours, raw = np.empty(ticks - warm), np.empty(ticks - warm)
    clock = time.thread_time
    for k in range(ticks):
        a, g = pcma[k], g729[k]
        start = clock()
        for forward, backward in pairs:
            forward(a)
            backward(g)
        middle = clock()
        frame_in, frame_bits = in_addr + 320 * k, bits_addr + 20 * k
        for enc_ctx, dec_ctx in contexts:
            encode_fn(enc_ctx, frame_in, out_addr, length_addr)
            encode_fn(enc_ctx, frame_in + 160, out_addr + 10, length_addr)
            decode_fn(dec_ctx, frame_bits, 10, 0, 0, 0, pcm_addr)
            decode_fn(dec_ctx, frame_bits + 10, 10, 0, 0, 0, pcm_addr + 160)
        if k >= warm:
            ours[k - warm] = (middle - start) / calls
            raw[k - warm] = (clock() - middle) / calls
    return ours, raw


def layer_costs(calls: int = 100, ticks: int = 80) -> dict[str, float]:
    """Median µs per call-tick of the transcoding path peeled layer by layer, interleaved.

    Two passes, each alternating two measurements tick by tick for ``calls`` calls: the
    transcoders and the bare bcg729 calls (:func:`interleaved_call_ticks`), then the codec
    objects alone (PCMA decode -> G729 encode, G729 decode -> PCMA encode) and the G729
    objects alone. The differences are what each layer adds.
    """
    pcma, g729 = make_streams(ticks)
    chains = [(codecs.get("PCMA"), codecs.get("G729"), codecs.get("G729"), codecs.get("PCMA"))
              for _ in range(calls)]
    ours, bare = interleaved_call_ticks(calls, ticks, pcma, g729)
    objects, g729_only = [], []
    clock = time.thread_time
    for k in range(ticks):
        a, g = pcma[k][12:], g729[k][12:]
        audio = chains[0][0].decode(a)
        start = clock()
        for pcma_in, g729_out, g729_in, pcma_out in chains:
            g729_out.encode(pcma_in.decode(a))
            pcma_out.encode(g729_in.decode(g))
        middle = clock()
        for _pcma_in, g729_out, g729_in, _pcma_out in chains:
            g729_out.encode(audio)
            g729_in.decode(g)
        objects.append((middle - start) / calls)
        g729_only.append((clock() - middle) / calls)
    return {
        "bare bcg729": float(np.median(bare)) * 1e6,
        "G729 objects": float(np.median(g729_only[5:])) * 1e6,
        "G729 + G.711 objects": float(np.median(objects[5:])) * 1e6,
        "Transcoder.process": float(np.median(ours)) * 1e6,
    }


def bare_tick_times(calls: int, ticks: int, g729: list[bytes], staggered: bool = False
                     ) -> np.ndarray:
    """CPU seconds per tick of the bare bcg729 work of ``calls`` calls: per call its own
    encoder and decoder (as each call's transcoders have), 2 encodes + 2 decodes of 10 ms
    frames through ctypes, no Python object around them; each call's frames from its own point
    of the audio when ``staggered``. :func:`tick_times`' criterion applied to the codec alone:
    the raw bound measured the same way as the transcoders (N contexts, not one cache-hot
    context in a tight loop, and the p99 tick, not the best mean)."""
    channels = [codecs.get("G729") for _ in range(calls)]
    offsets = [(i * STAGGER_STRIDE) % STAGGER_SPAN if staggered else 0 for i in range(calls)]
    span = ticks + max(offsets)
    if span > len(g729):
        raise ValueError("stream too short for the ticks and offsets")
    raw_codec = RawCodecBuffers(g729, span)
    encode_fn, decode_fn = raw_codec.encode_fn, raw_codec.decode_fn
    in_addr, bits_addr = raw_codec.in_addr, raw_codec.bits_addr
    out_addr, length_addr, pcm_addr = raw_codec.out_addr, raw_codec.length_addr, raw_codec.pcm_addr
    plan = [(c._encoder, c._decoder, offset) for c, offset in zip(channels, offsets, strict=True)]
    warm = 5
    cpu = np.empty(ticks - warm)
    clock = time.thread_time
    for k in range(ticks):
        start = clock()
        for enc_ctx, dec_ctx, offset in plan:
            frame_in, frame_bits = in_addr + 320 * (k + offset), bits_addr + 20 * (k + offset)
            encode_fn(enc_ctx, frame_in, out_addr, length_addr)
            encode_fn(enc_ctx, frame_in + 160, out_addr + 10, length_addr)
            decode_fn(dec_ctx, frame_bits, 10, 0, 0, 0, pcm_addr)
            decode_fn(dec_ctx, frame_bits + 10, 10, 0, 0, 0, pcm_addr + 160)
        if k >= warm:
            cpu[k - warm] = clock() - start
    return cpu


def raw_call_tick_seconds(g729: list[bytes], repeats: int = 3000) -> float:
    """Cost of the bcg729 work of one call-tick (2 encodes + 2 decodes), ctypes tight loop."""
    codec = codecs.get("G729")
    enc_ctx, dec_ctx = codec._encoder, codec._decoder
    raw_codec = RawCodecBuffers(g729, 50)
    encode_fn, decode_fn = raw_codec.encode_fn, raw_codec.decode_fn
    in_addr, bits_addr = raw_codec.in_addr, raw_codec.bits_addr
    out_addr, length_addr, pcm_addr = raw_codec.out_addr, raw_codec.length_addr, raw_codec.pcm_addr
    best = float("inf")
    for _ in range(3):  # best of 3: the bound is what the library can do undisturbed
        start = time.thread_time()
        for i in range(repeats):
            j = i % 50
            encode_fn(enc_ctx, in_addr + 320 * j, out_addr, length_addr)
            encode_fn(enc_ctx, in_addr + 320 * j + 160, out_addr + 10, length_addr)
            decode_fn(dec_ctx, bits_addr + 20 * j, 10, 0, 0, 0, pcm_addr)
            decode_fn(dec_ctx, bits_addr + 20 * j + 10, 10, 0, 0, 0, pcm_addr + 160)
        best = min(best, (time.thread_time() - start) / repeats)
    return best


def part1(ticks: int = 150) -> dict[str, object]:
    """Largest N with p99 tick <= 20 ms, and the raw bound measured alongside."""
    where = pin(0)
    pcma, g729 = make_streams(ticks + STAGGER_SPAN)
    raw = raw_call_tick_seconds(g729)
    raw_calls = TICK_S / raw

    def largest(guess: int, staggered: bool, bare: bool = False
                ) -> tuple[int, np.ndarray, np.ndarray]:
        """Bracket from ``guess``, then bisect on calls; confirm the result once more.
        ``bare``: the bcg729 work alone (:func:`bare_tick_times`) instead of the transcoders."""
        def measure(calls: int) -> tuple[np.ndarray, np.ndarray]:
            if bare:
                cpu = bare_tick_times(calls, ticks, g729, staggered)
                return cpu, cpu
            return tick_times(calls, ticks, pcma, g729, staggered)

        def fits(calls: int) -> bool:
            return float(np.percentile(measure(calls)[0], 99)) <= TICK_S

        low, high = 1, None
        while high is None:
            if fits(guess):
                low = guess
                guess = int(guess * 1.25) + 1
            else:
                high = guess
        while high - low > max(2, low // 50):
            middle = (low + high) // 2
            if fits(middle):
                low = middle
            else:
                high = middle
        confirm, confirm_wall = measure(low)
        while np.percentile(confirm, 99) > TICK_S and low > 1:  # noisy neighbour: step down
            low = int(low * 0.97)
            confirm, confirm_wall = measure(low)
        return low, confirm, confirm_wall

    gc.collect()
    # start from the raw bound's estimate
    low, confirm, confirm_wall = largest(max(10, int(raw_calls * 0.6)), staggered=False)
    staggered_calls, staggered_confirm, _ = largest(low, staggered=True)
    # The raw codec under the same criterion: as many bcg729 contexts as calls, p99 tick
    bare_calls, bare_confirm, _ = largest(low, staggered=False, bare=True)
    bare_staggered_calls, _, _ = largest(bare_calls, staggered=True, bare=True)
    ours, bare = interleaved_call_ticks(low, ticks, pcma, g729)
    raw_after = raw_call_tick_seconds(g729)  # re-measure: the machine may be shared
    raw_best = min(raw, raw_after)
    return {
        "pinned": where,
        "lane": packet_lane(),
        "calls": low,
        "p99_ms": float(np.percentile(confirm, 99)) * 1e3,
        "median_ms": float(np.median(confirm)) * 1e3,
        "wall_p99_ms": float(np.percentile(confirm_wall, 99)) * 1e3,
        "wall_median_ms": float(np.median(confirm_wall)) * 1e3,
        "per_call_tick_us": float(np.median(confirm)) / low * 1e6,
        "raw_call_tick_us": raw_best * 1e6,
        "raw_bound_calls": TICK_S / raw_best,
        "ratio": low / (TICK_S / raw_best),
        "staggered_calls": staggered_calls,
        "staggered_p99_ms": float(np.percentile(staggered_confirm, 99)) * 1e3,
        "staggered_median_ms": float(np.median(staggered_confirm)) * 1e3,
        "staggered_ratio": staggered_calls / (TICK_S / raw_best),
        # the same comparison on the median tick: steadier than p99 on a loaded machine
        "median_ratio": raw_best / (float(np.median(confirm)) / low),
        "interleaved_us": (float(np.median(ours)) * 1e6, float(np.median(bare)) * 1e6),
        "interleaved_ratio": float(np.median(bare) / np.median(ours)),
        # the same at the p99 tick: bcg729 with one context per call has a tail of its own
        "interleaved_p99_us": (float(np.percentile(ours, 99)) * 1e6,
                               float(np.percentile(bare, 99)) * 1e6),
        "interleaved_p99_ratio": float(np.percentile(bare, 99) / np.percentile(ours, 99)),
        # the raw bound by the transcoders' own criterion (N contexts, p99 tick <= 20 ms)
        "bare_calls": bare_calls,
        "bare_p99_ms": float(np.percentile(bare_confirm, 99)) * 1e3,
        "bare_median_ms": float(np.median(bare_confirm)) * 1e3,
        "bare_ratio": low / bare_calls,
        "bare_staggered_calls": bare_staggered_calls,
        "bare_staggered_ratio": staggered_calls / bare_staggered_calls,
    }


# -- (3) relay packet rate ------------------------------------------------------------------


def _forwarder(
    kind: str, destination: tuple[str, int], ready: mp.Queue, stop: mp.Event, cpu: int | None
) -> None:
    if cpu is not None:
        pin(cpu)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        if kind == "vosapp":
            from vosapp.io.rtp_relay import LegConfig, RtpRelay

            relay = await RtpRelay.open(LegConfig("PCMA", dtmf_payload_type=None),
                                        LegConfig("PCMA", dtmf_payload_type=None,
                                                  remote=destination))
            ready.put(relay.a.local_address)
            cpu_start = time.process_time()
            while not stop.is_set():
                await asyncio.sleep(0.05)
            relay.close()
            ready.put(time.process_time() - cpu_start)
            return

        # baseline: the least a forwarder can do on asyncio - drain the socket when it is
        # readable and re-send every datagram as is (no parsing, no latching, no stats)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)

        def drain() -> None:
            for _ in range(256):
                try:
                    data, _addr = sock.recvfrom(2048)
                except BlockingIOError:
                    return
                sock.sendto(data, destination)

        loop.add_reader(sock.fileno(), drain)
        ready.put(sock.getsockname())
        cpu_start = time.process_time()
        while not stop.is_set():
            await asyncio.sleep(0.05)
        loop.remove_reader(sock.fileno())
        sock.close()
        ready.put(time.process_time() - cpu_start)

    asyncio.run(main())


def _sender(target: tuple[str, int], rate: int, seconds: float, done: mp.Queue) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    stream = OutgoingStream(8, ssrc=7, sequence=0, timestamp=0)
    payload = b"\xd5" * 160
    packets = [stream.packet(payload, 160) for _ in range(4096)]
    total = int(rate * seconds)
    sent = 0
    start = time.perf_counter()
    while sent < total:
        due = min(total, int((time.perf_counter() - start) * rate) + 1)
        while sent < due:
            sock.sendto(packets[sent & 4095], target)
            sent += 1
        time.sleep(0.001)
    done.put(sent)


PIN_FORWARDER: int | None = None  # --pin-forwarder N: pin it (quiet machines only)


def offered_rate_delivered(
    kind: str, rate: int, seconds: float = 1.5
) -> tuple[int, int, float]:
    """(sent, received, forwarder CPU seconds) for one forwarder at one offered rate."""
    ctx = mp.get_context("fork")
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(0.3)
    ready, done, stop = ctx.Queue(), ctx.Queue(), ctx.Event()
    forwarder = ctx.Process(
        target=_forwarder, args=(kind, receiver.getsockname(), ready, stop, PIN_FORWARDER)
    )
    forwarder.start()
    target = ready.get(timeout=10)
    sender = ctx.Process(target=_sender, args=(target, rate, seconds, done))
    sender.start()
    received = 0
    with contextlib.suppress(TimeoutError):
        while True:
            receiver.recv(2048)
            received += 1
    sent = done.get(timeout=30)
    sender.join()
    stop.set()
    cpu_seconds = ready.get(timeout=10)
    forwarder.join(timeout=5)
    receiver.close()
    return sent, received, cpu_seconds


def part3(rates: tuple[int, ...] = (5_000, 10_000, 15_000, *range(20_000, 150_001, 10_000))
          ) -> dict[str, object]:
    """Highest lossless offered rate for vosapp's relay and for the raw forwarder."""
    results: dict[str, object] = {}
    for kind in ("vosapp", "baseline"):
        best, trail, per_cpu = 0, [], 0.0
        for rate in rates:
            sent, received, cpu = offered_rate_delivered(kind, rate)
            trail.append((rate, sent - received))
            # forwarded packets per CPU-second of the (single-threaded) forwarder: its
            # capacity per core, unaffected by time slices other processes take
            per_cpu = max(per_cpu, received / max(cpu, 1e-6))
            if received != sent:
                # one retry: a neighbour's burst on a shared machine should not end the climb
                sent, received, cpu = offered_rate_delivered(kind, rate)
                trail.append((rate, sent - received))
                per_cpu = max(per_cpu, received / max(cpu, 1e-6))
                if received != sent:
                    break
            best = rate
        results[kind] = {"lossless_pps": best, "trail": trail, "per_cpu_second": per_cpu}
    baseline_pps = results["baseline"]["lossless_pps"]  # type: ignore[index]
    results["ratio"] = (results["vosapp"]["lossless_pps"] / baseline_pps  # type: ignore[index]
                        if baseline_pps else float("nan"))
    results["cpu_ratio"] = (results["vosapp"]["per_cpu_second"]  # type: ignore[index]
                            / max(1.0, results["baseline"]["per_cpu_second"]))  # type: ignore[index]
    return results


# -- report ---------------------------------------------------------------------------------


def markdown(p1: dict[str, object] | None, p3: dict[str, object] | None) -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [
        "## Media",
        "",
        ("Command: `.venv/bin/python bench/media.py --write` (< 3 min). "
         f"Python {platform.python_version()}, {os.cpu_count()} CPUs, "
         f"load average at the end {load:.1f} (other work on the machine disturbs timings; "
         "ratios are measured in the same run)."),
        "",
    ]
    if p1:
        lines += [
            "### (1) Two-way PCMA ↔ G.729 transcoding on one core",
            "",
            ("Each call: PCMA 20 ms → G.729 (2 × 10 ms frames in one packet) and back, "
             "through `Transcoder.process` (RTP in, RTP out). Criterion: the tick's CPU time "
             "(thread CPU clock) at p99, so time slices taken by other processes on a shared "
             "machine do not count; wall times are shown too. Raw bound: the same call's "
             "bcg729 work (2 encodes + 2 decodes) through ctypes in a tight loop, best of 6 "
             "runs, same clock."),
            "",
            "| measure | value |",
            "|---|---:|",
            f"| calls with p99 tick ≤ 20 ms | **{p1['calls']}** (target ≥ 200) |",
            (f"| tick CPU time at that load: p99 / median | {p1['p99_ms']:.1f} ms / "
             f"{p1['median_ms']:.1f} ms |"),
            (f"| tick wall time at that load: p99 / median | {p1['wall_p99_ms']:.1f} ms / "
             f"{p1['wall_median_ms']:.1f} ms |"),
            f"| cost per call-tick (median) | {p1['per_call_tick_us']:.1f} µs |",
            f"| raw bcg729 cost per call-tick | {p1['raw_call_tick_us']:.1f} µs |",
            f"| raw bound (20 ms / raw cost) | {p1['raw_bound_calls']:.0f} calls |",
            f"| ratio to the raw bound | **{p1['ratio']:.2f}** (target ≥ 0.8) |",
            (f"| raw cost / cost per call-tick (median tick) | {p1['median_ratio']:.2f} |"),
            (f"| staggered audio (each call at its own point of the audio, as in a switch): "
             f"calls within 20 ms at p99 | **{p1['staggered_calls']}** (tick p99 / median "
             f"{p1['staggered_p99_ms']:.1f} / {p1['staggered_median_ms']:.1f} ms) |"),
            (f"| ratio to the raw bound, staggered audio | **{p1['staggered_ratio']:.2f}** "
             "(target ≥ 0.8) |"),
            (f"| same, bare bcg729 ticks interleaved with the transcoders' (median µs: "
             f"{p1['interleaved_us'][1]:.1f} bare / {p1['interleaved_us'][0]:.1f} ours) | "
             f"{p1['interleaved_ratio']:.2f} |"),
            (f"| same at the p99 tick (µs: {p1['interleaved_p99_us'][1]:.1f} bare / "
             f"{p1['interleaved_p99_us'][0]:.1f} ours) | {p1['interleaved_p99_ratio']:.2f} |"),
            *([(f"| raw bcg729 by the same criterion: bare codec work of N calls (one encoder "
                f"and decoder each, no Python), largest N with p99 tick ≤ 20 ms | "
                f"**{p1['bare_calls']}** (tick p99 / median {p1['bare_p99_ms']:.1f} / "
                f"{p1['bare_median_ms']:.1f} ms); staggered {p1['bare_staggered_calls']} |"),
               (f"| ratio to the raw codec by the same criterion | **{p1['bare_ratio']:.2f}**; "
                f"staggered **{p1['bare_staggered_ratio']:.2f}** |")]
              if "bare_calls" in p1 else []),
            f"| pinned to | {p1['pinned']} |",
            f"| G.711 ↔ G.729 packet lane | {p1['lane']} |",
            "",
        ]
    if p3:
        v, b = p3["vosapp"], p3["baseline"]  # type: ignore[index]
        lines += [
            "### (3) Relay packets per second over loopback, 0 loss",
            "",
            ("Forwarder (single-threaded asyncio process) and a sender/receiver pair in "
             "other processes; offered rates paced in 1 ms bursts for 1.5 s; result = highest "
             "rate with nothing lost (one retry per rate); 172-byte PCMA packets. The "
             "forwarder's own CPU time gives its capacity per core independent of what else "
             "runs on the machine (the kernel's loopback delivery to the receiver is charged "
             "to the forwarder's sendto, so this is conservative)."),
            "",
            ("| forwarder | lossless packets/s (wall) | forwarded per CPU-second | "
            "(rate, lost) trail |"),
            "|---|---:|---:|---|",
            (f"| vosapp `RtpRelay` (relay mode: latching, stats, PT kept) | "
             f"**{v['lossless_pps']:,}** (target ≥ 50,000) | {v['per_cpu_second']:,.0f} | "
             f"{v['trail']} |"),
            (f"| baseline: raw asyncio socket forwarder (drain + re-send) | "
             f"{b['lossless_pps']:,} | {b['per_cpu_second']:,.0f} | {b['trail']} |"),
            (f"| ratio vosapp / baseline | {p3['ratio']:.2f} | {p3['cpu_ratio']:.2f} | |"),
            "",
        ]
    readings = []
    if p1:
        readings.append(
            f"- Transcoding: {p1['calls']} two-way calls fit a 20 ms tick on one core, "
            f"{p1['ratio']:.2f} of what bcg729 alone allows ({p1['staggered_calls']} calls, "
            f"{p1['staggered_ratio']:.2f}, with staggered audio); the rest of the per-packet path "
            "(RTP parse/build, G.711 tables, reframing FIFO, ctypes calls into preallocated "
            f"buffers) costs {p1['per_call_tick_us'] - p1['raw_call_tick_us']:.0f} µs per "
            "call-tick. Wall-clock ticks on this shared machine are longer than CPU time "
            "because other processes get time slices; on a dedicated core they coincide."
        )
    if p3:
        v = p3["vosapp"]  # type: ignore[index]
        readings.append(
            f"- Relay: {v['per_cpu_second']:,.0f} packets forwarded per CPU-second, i.e. "
            "the single-threaded relay's capacity per core; the wall-clock lossless rate is "
            "bounded by the CPU share the process gets on this (loaded) machine, so it "
            "can fall short of that capacity"
            + (" and of the 50,000 target here." if v["lossless_pps"] < 50_000 else ".")
            + " Per packet the relay costs about "
            f"{1e6 / v['per_cpu_second']:.1f} µs against "
            f"{1e6 / max(1.0, p3['baseline']['per_cpu_second']):.1f} µs for the bare "  # type: ignore[index]
            "forwarder; most of both is the kernel's UDP receive and loopback send."
        )
    if readings:
        lines += ["Readings:", *readings, ""]
    lines.append(
        "(2) Inband DTMF detector channels: see the DTMF section (`bench/dtmf.py`)."
    )
    return "\n".join(lines) + "\n"


def write_section(text: str, path: Path = ROOT / "docs" / "benchmarks.md") -> None:
    """Replace (or append) the "## Media" section of docs/benchmarks.md."""
    current = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(r"^## Media\n.*?(?=^## |\Z)", re.DOTALL | re.MULTILINE)
    if pattern.search(current):
        updated = pattern.sub(lambda _: text + "\n", current, count=1)
    else:
        updated = current.rstrip("\n") + "\n\n" + text
    path.write_text(updated)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=["1", "3", "all", "layers"], default="all",
                        help="layers: where the transcoding time goes, layer by layer")
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument("--code", metavar="PATH",
                        help="measure the vosapp of another checkout (default: this one)")
    args = parser.parse_args()
    started = time.perf_counter()
    if args.part == "layers":
        pin(0)
        for layer, micros in layer_costs().items():
            print(f"{layer:24s} {micros:7.1f} µs per call-tick (median, 100 calls)")
        return 0
    p1 = part1() if args.part in ("1", "all") else None
    p3 = part3() if args.part in ("3", "all") else None
    text = markdown(p1, p3)
    print(text)
    print(f"(bench took {time.perf_counter() - started:.0f} s)", file=sys.stderr)
    if args.write:
        write_section(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
