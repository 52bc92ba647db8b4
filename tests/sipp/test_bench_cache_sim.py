"""bench/registrar_cache_sim.py, so that it cannot rot silently: the traffic each valgrind child
runs completes its registrations through both servers, and cachegrind's totals are read and
turned into per-registration figures and rates (a whole cachegrind run per server takes
minutes: the valgrind part runs in the bench only)."""

from __future__ import annotations

import pytest

from tests.support.bench import load_bench

cache_sim = load_bench("registrar_cache_sim")

ANNOTATED = """\
--------------------------------------------------------------------------------
Ir                     I1mr               ILmr           Dr                   D1mr
--------------------------------------------------------------------------------
{values} PROGRAM TOTALS
"""


def _annotated(counts: list[int]) -> str:
    return ANNOTATED.format(values=" ".join(f"{n:,} (100.0%)" for n in counts))


@pytest.mark.parametrize("server", ["vosapp", "minimum"])
def test_the_traffic_completes_registrations_through_each_server(server: str) -> None:
    # registrar_profile's run raises SystemExit when a REGISTER is not challenged, or its
    # answer with credentials is not a 200
    cache_sim.traffic(server, 5, None)


def test_totals_become_figures_per_registration_and_rates() -> None:
    small = cache_sim.totals(_annotated([1000 + i for i in range(13)]))
    large = cache_sim.totals(_annotated([1000 + 100 * (i + 1) + i for i in range(13)]))
    assert list(small) == list(cache_sim.EVENTS) and small["Ir"] == 1000
    per = cache_sim.per_registration(small, large, 10)
    assert per["Ir"] == 10.0 and per["Bim"] == 130.0
    minimum = {event: value / 2 for event, value in per.items()}
    text = cache_sim.report(per, minimum)
    # Ir row: vosapp 10, minimum 5, the difference 5; I1mr/Ir: 20/10 = 200 per 100
    assert text.splitlines()[1].split() == ["Ir", "10", "5", "5"]
    assert "I1mr/Ir" in text and text.split("I1mr/Ir")[1].split()[:3] == ["200.00"] * 3


def test_a_cg_annotate_output_without_totals_is_an_error() -> None:
    with pytest.raises(SystemExit, match="no PROGRAM TOTALS"):
        cache_sim.totals("nothing here\n")
    with pytest.raises(SystemExit, match="gave 2 events"):
        cache_sim.totals(_annotated([1, 2]))
