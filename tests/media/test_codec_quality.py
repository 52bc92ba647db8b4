"""PESQ floors per codec and tandem on real speech (CMU ARCTIC a0007).

The floors sit a little under values measured with ``bench/codec_quality.py`` (table in
docs/benchmarks.md, "Codec quality (PESQ)"); codecs and PESQ are deterministic, so a drop
below a floor means a codec (or the scoring) changed, not noise.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import pytest

from vosapp.lab import quality

SPEECH = Path(__file__).resolve().parents[2] / "data" / "speech" / "arctic_a0007.wav"


@cache
def _clean(rate: int) -> np.ndarray:
    return quality.load_audio(SPEECH, rate=rate)[0]


@cache
def _score(chain: tuple[str, ...], rate: int) -> quality.QualityReport:
    clean = _clean(rate)
    if not chain:
        return quality.compare(clean, clean, rate)
    decoded, decoded_rate = quality.through_codecs(clean, rate, list(chain))
    return quality.compare(clean, quality.resample(decoded, decoded_rate, rate), rate)


# (chain, scored at, PESQ floor, STOI floor); measured values in the comments.
FLOORS = [
    (("G729",), 8000, 3.60, 0.90),  # 3.732 / 0.933
    (("G723",), 8000, 3.50, 0.90),  # 3.640 / 0.931
    (("G722",), 8000, 4.40, 0.99),  # 4.531 / 0.999
    (("G722",), 16000, 4.20, 0.99),  # 4.363 / 0.999 (wide-band PESQ)
    (("PCMA", "G729", "PCMA"), 8000, 3.50, 0.90),  # 3.626 / 0.927
    (("G729", "G729"), 8000, 3.05, 0.85),  # 3.181 / 0.887
    (("G723", "G729"), 8000, 3.00, 0.84),  # 3.118 / 0.875
]


@pytest.mark.parametrize(("chain", "rate", "pesq_floor", "stoi_floor"), FLOORS)
def test_pesq_and_stoi_floors(
    chain: tuple[str, ...], rate: int, pesq_floor: float, stoi_floor: float
) -> None:
    report = _score(chain, rate)
    assert report.pesq_mos_lqo >= pesq_floor, report
    assert report.stoi >= stoi_floor, report
    assert report.pesq_mos_lqo < _score((), rate).pesq_mos_lqo


@pytest.mark.parametrize("codec", ["PCMA", "PCMU"])
def test_g711_within_a_tenth_of_the_ceiling(codec: str) -> None:
    ceiling = _score((), 8000).pesq_mos_lqo  # the clean clip against itself: 4.549
    report = _score((codec,), 8000)  # measured 4.469 (PCMA), 4.466 (PCMU)
    assert ceiling - 0.1 <= report.pesq_mos_lqo < ceiling
    assert report.delay_samples == 0  # G.711 is sample by sample
    assert report.segmental_snr_db > 30  # ~ 38 dB SNR of 8-bit log PCM, clamped per frame


def test_tandem_is_worse_than_one_pass() -> None:
    single = _score(("G729",), 8000).pesq_mos_lqo
    tandem = _score(("PCMA", "G729", "PCMA"), 8000).pesq_mos_lqo
    double = _score(("G729", "G729"), 8000).pesq_mos_lqo
    assert tandem < single
    assert double < tandem


def test_ordering_across_codecs() -> None:
    pesq = {name: _score((name,), 8000).pesq_mos_lqo for name in ("PCMA", "G729", "G723")}
    assert pesq["PCMA"] > pesq["G729"] > pesq["G723"]


def test_codec_delays_are_found() -> None:
    # G.723.1: 7.5 ms look-ahead; G.722: QMF filter bank delay (22 samples at 16 kHz).
    assert _score(("G723",), 8000).delay_ms == pytest.approx(7.5)
    assert _score(("G722",), 16000).delay_samples == 22
