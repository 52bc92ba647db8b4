"""What the Via memo by shape (vosapp.sip.headers.ViaMemo) saves and costs per top Via, against
the plain memo by text it replaced (a HeaderMemo of parse_vias), by how many sources send.

Every Via carries a new branch, as a request's top Via does (RFC 3261 §8.1.1.7), so the memo
by text never knows it. The shape (the text without its branch value) repeats when few
sources send (a trunk, SIPp): then the shape answers. With more sources than the memo holds
(1,024), the shape is rarely known and the memo pays its look-up on top of the parse.

    .venv/bin/python bench/via_memo.py [--sources 1,100,100000] [--vias 100000]

Prints microseconds per Via (best of five rounds; each includes building the text, the same
for both).
"""

from __future__ import annotations

import argparse
import sys
import timeit
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vosapp.sip.headers import HeaderMemo, Via, ViaMemo, parse_vias


def per_via(memo: Callable[[str], list[Via]], sources: int, vias: int) -> float:
    """Microseconds per top Via read through ``memo``, the Vias coming from ``sources``
    addresses in turn, each with a new branch."""
    count = 0

    def read() -> list[Via]:
        nonlocal count
        count += 1
        source = count % sources
        host = f"10.{source // 62500 % 256}.{source // 250 % 250}.{source % 250 + 1}"
        return memo(f"SIP/2.0/UDP {host}:5060;branch=z9hG4bK-{count}-1;rport")

    return min(timeit.repeat(read, number=vias, repeat=5)) / vias * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sources", default="1,100,100000",
                        help="numbers of sending addresses, comma-separated")
    parser.add_argument("--vias", type=int, default=100_000, help="Vias read per round")
    args = parser.parse_args()
    print(f"{'sources':>8}  {'memo by text':>12}  {'memo by shape':>13}  difference (us per Via)")
    for sources in (int(part) for part in args.sources.split(",")):
        by_text = per_via(HeaderMemo(parse_vias), sources, args.vias)
        by_shape = per_via(ViaMemo(), sources, args.vias)
        print(f"{sources:>8}  {by_text:>12.2f}  {by_shape:>13.2f}  {by_shape - by_text:+.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
