"""PESQ/STOI/segmental SNR/LSD of every codec and a few tandems on the CMU ARCTIC clip.

Usage::

    .venv/bin/python bench/codec_quality.py            # markdown table on stdout

Narrow-band chains are scored at 8 kHz with P.862.1 (PESQ nb); G.722 is also scored at
16 kHz with P.862.2 (PESQ wb). The first rows are the ceilings: the clean clip compared
with itself. Every number is deterministic (fixed input, bit-exact codecs).
"""

from __future__ import annotations

import argparse
import platform
from pathlib import Path

from vosapp.lab import quality

SPEECH = Path(__file__).resolve().parents[1] / "data" / "speech" / "arctic_a0007.wav"

#: (label, codec chain, rate the chain is scored at)
CHAINS: list[tuple[str, list[str], int]] = [
    ("reference (ceiling)", [], 8000),
    ("PCMA", ["PCMA"], 8000),
    ("PCMU", ["PCMU"], 8000),
    ("G.722 (scored nb)", ["G722"], 8000),
    ("G.729A", ["G729"], 8000),
    ("G.723.1 6.3k", ["G723"], 8000),
    ("PCMA→G.729→PCMA", ["PCMA", "G729", "PCMA"], 8000),
    ("G.729→G.729", ["G729", "G729"], 8000),
    ("G.723.1→G.729", ["G723", "G729"], 8000),
    ("G.729→G.723.1", ["G729", "G723"], 8000),
    ("reference (ceiling)", [], 16000),
    ("G.722", ["G722"], 16000),
    ("PCMA (scored wb)", ["PCMA"], 16000),
]


def measure(chain: list[str], rate: int) -> quality.QualityReport:
    """Score ``chain`` (empty: the clean clip itself) on the ARCTIC clip at ``rate``."""
    clean, _ = quality.load_audio(SPEECH, rate=rate)
    if not chain:
        return quality.compare(clean, clean, rate)
    decoded, decoded_rate = quality.through_codecs(clean, rate, chain)
    return quality.compare(clean, quality.resample(decoded, decoded_rate, rate), rate)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args()
    print(f"Clip: {SPEECH.name} (4.0 s, male, CMU ARCTIC); python {platform.python_version()}")
    print()
    print("| chain | scored at | PESQ MOS-LQO | STOI | segSNR dB | LSD dB | delay ms |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for label, chain, rate in CHAINS:
        report = measure(chain, rate)
        print(
            f"| {label} | {rate // 1000} kHz {report.pesq_mode} | {report.pesq_mos_lqo:.3f}"
            f" | {report.stoi:.3f} | {report.segmental_snr_db:.1f}"
            f" | {report.log_spectral_distance_db:.2f} | {report.delay_ms:.2f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
