"""Inband DTMF receiver: 8 kHz channels processed in real time on one core.

Streams 20 ms blocks (one RTP packet of audio per channel per tick) into
``vosapp.media.dtmf.DtmfDetectorBank`` for a growing number of channels and reports, per
channel count, the tick time (mean, p99) against the 20 ms budget, plus two references measured
in the same run on the same arrays (times are CPU time of the benchmark thread, so other load
on a shared machine does not count; wall-clock p99 is printed too):

* ``rfft``: one real FFT of every channel's 20 ms block (``numpy.fft.rfft``), the floor of
  any FFT-based detector;
* ``one-by-one``: the same receiver used as one ``DtmfDetector`` per channel (a Python call
  per channel per tick), the way a naive relay would use it.

The answer is the largest channel count whose p99 tick fits in 20 ms, and the real-time
capacity ``channels * 20 ms / mean tick``. Every channel carries digits and white noise, and
the run checks that every digit is found.

Usage: ``python bench/dtmf.py [--seconds 2] [--max-channels 16000]`` (pins itself to one CPU
and one BLAS thread).
"""

from __future__ import annotations

import argparse
import os

# One core, one BLAS thread: set before numpy is imported.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import platform
import time

import numpy as np

from vosapp.media.dtmf import DtmfDetector, DtmfDetectorBank, generate_digits

RATE = 8000
TICK = RATE // 50  # 20 ms
DIGITS = "0123456789*#ABCD"


def make_audio(
    channels: int, seconds: float, rng: np.random.Generator
) -> tuple[np.ndarray, list[str]]:
    """Per channel: a different 4-digit string (70 ms on / 80 ms off) then noise, -20 dBm0 tones
    at 25 dB SNR. Returns int16 ``(channels, seconds * RATE)`` and the expected digits."""
    n = int(seconds * RATE) // TICK * TICK
    audio = np.zeros((channels, n), np.float64)
    expected = []
    templates = {}
    for c in range(channels):
        digits = "".join(DIGITS[(c * 7 + k * 3) % 16] for k in range(4))
        if digits not in templates:
            templates[digits] = generate_digits(digits, RATE, on_ms=70, off_ms=80, level_dbm0=-20)
        tone = templates[digits]
        offset = (c * 37) % 800
        audio[c, offset : offset + len(tone)] = tone[: n - offset]
        expected.append(digits)
    audio += rng.normal(0.0, 40.0, audio.shape)
    return np.clip(np.round(audio), -32768, 32767).astype(np.int16), expected


def time_ticks(step, audio: np.ndarray, repeats: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """CPU and wall seconds per 20 ms tick of ``step(block)`` over the whole audio.

    CPU time (``time.thread_time``) is what one core spends; wall time also counts time the
    process waited for the CPU, which on a shared machine is other people's load.
    """
    ticks = audio.shape[1] // TICK
    cpu = np.empty(ticks * repeats)
    wall = np.empty(ticks * repeats)
    for rep in range(repeats):
        for t in range(ticks):
            block = audio[:, t * TICK : (t + 1) * TICK]
            c0, w0 = time.thread_time(), time.perf_counter()
            step(block)
            cpu[rep * ticks + t] = time.thread_time() - c0
            wall[rep * ticks + t] = time.perf_counter() - w0
    return cpu, wall


def run(channels: int, seconds: float, rng: np.random.Generator) -> dict[str, float]:
    audio, expected = make_audio(channels, seconds, rng)
    bank = DtmfDetectorBank(channels, RATE)
    events: list = []
    bank_cpu, bank_wall = time_ticks(lambda b: events.extend(bank.feed(b)), audio)
    events += bank.flush()
    found = ["" for _ in range(channels)]
    for e in events:
        found[e.channel] += e.digit
    errors = sum(f != x for f, x in zip(found, expected, strict=True))
    fft_cpu, _ = time_ticks(lambda b: np.fft.rfft(b.astype(np.float32), axis=1), audio)
    return {
        "channels": channels,
        "mean_ms": bank_cpu.mean() * 1e3,
        "p99_ms": np.percentile(bank_cpu, 99) * 1e3,
        "wall_p99_ms": np.percentile(bank_wall, 99) * 1e3,
        "fft_mean_ms": fft_cpu.mean() * 1e3,
        "errors": errors,
    }


def one_speech_stream() -> float | None:
    """CPU seconds per 20 ms feed of one DtmfDetector on speech (data/speech/espeak_1.flac)."""
    from pathlib import Path

    import soundfile as sf

    path = Path(__file__).resolve().parents[1] / "data" / "speech" / "espeak_1.flac"
    if not path.exists():
        return None
    speech, _ = sf.read(path, dtype="int16")
    ticks = len(speech) // TICK
    detector = DtmfDetector(RATE)
    cpu, _ = time_ticks(lambda block: detector.feed(block[0]), speech[None, : ticks * TICK])
    return float(cpu.mean())


def quiet_capacity(channels: int, seconds: float, rng: np.random.Generator) -> float:
    """Real-time capacity (channels) when no channel carries digits: noise at -30 dBm0."""
    n = int(seconds * RATE) // TICK * TICK
    audio = np.clip(np.round(rng.normal(0.0, 600.0, (channels, n))), -32768, 32767)
    bank = DtmfDetectorBank(channels, RATE)
    cpu, _ = time_ticks(bank.feed, audio.astype(np.int16))
    return channels * 0.020 / float(cpu.mean())


def one_by_one(channels: int, seconds: float, rng: np.random.Generator) -> float:
    """Mean seconds per channel-tick with one DtmfDetector per channel."""
    audio, _ = make_audio(channels, seconds, rng)
    detectors = [DtmfDetector(RATE) for _ in range(channels)]

    def step(block: np.ndarray) -> None:
        for c, det in enumerate(detectors):
            det.feed(block[c])

    return float(time_ticks(step, audio)[0].mean() / channels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="audio per run (s)")
    parser.add_argument("--max-channels", type=int, default=16000)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    rng = np.random.default_rng(2026)
    print(
        f"# {platform.processor() or platform.machine()}, numpy {np.__version__}, "
        f"python {platform.python_version()}, 1 core, {args.seconds:g} s of audio per run"
    )
    print(
        "| channels | CPU per tick mean (ms) | CPU p99 (ms) | wall p99 (ms) "
        "| real-time capacity (channels) | rfft-only tick (ms) | detector / rfft | digit errors |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    best = 0
    for channels in (250, 500, 1000, 1500, 2000, 3000, 4000, 6000, 8000, 12000, 16000):
        if channels > args.max_channels:
            break
        r = run(channels, args.seconds, rng)
        capacity = r["channels"] * 20.0 / r["mean_ms"]
        print(
            f"| {channels} | {r['mean_ms']:.2f} | {r['p99_ms']:.2f} | {r['wall_p99_ms']:.2f} "
            f"| {capacity:,.0f} "
            f"| {r['fft_mean_ms']:.2f} | {r['mean_ms'] / r['fft_mean_ms']:.1f} | {r['errors']} |"
        )
        if r["p99_ms"] <= 20.0 and r["errors"] == 0:
            best = channels
        if r["p99_ms"] > 20.0:
            break
    quiet = quiet_capacity(2000, args.seconds, rng)
    per_channel = one_by_one(200, min(args.seconds, 1.0), rng)
    speech = one_speech_stream()
    print()
    print(f"largest channel count with CPU p99 tick <= 20 ms (all digits found): {best}")
    print(
        f"2000 channels without digits (noise only): {quiet:,.0f} channels of real-time "
        "capacity (CPU mean)"
    )
    print(
        f"one DtmfDetector per channel: {per_channel * 1e6:.0f} us per channel-tick "
        f"-> {0.020 / per_channel:,.0f} channels per core"
    )
    if speech is not None:
        print(
            f"one DtmfDetector on speech (espeak_1.flac): {speech * 1e6:.0f} us per 20 ms "
            f"-> {0.020 / speech:,.0f} channels per core"
        )


if __name__ == "__main__":
    main()
