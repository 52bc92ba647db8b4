"""bench/via_memo.py, so that it cannot rot silently: both memos read the Vias it builds, and
each answer is the parse of its text (the timing itself is not checked: no speed in tests)."""

from __future__ import annotations

import subprocess
import sys

from tests.support.bench import load_bench
from tests.support.serving import ROOT
from vosapp.sip.headers import HeaderMemo, ViaMemo, parse_vias

via_memo = load_bench("via_memo")


def test_both_memos_answer_what_parsing_answers() -> None:
    for memo in (HeaderMemo(parse_vias), ViaMemo()):
        seen: list[str] = []

        def checked(text: str, memo: object = memo, seen: list[str] = seen) -> object:
            seen.append(text)
            answer = memo(text)  # type: ignore[operator]
            assert answer == parse_vias(text)
            return answer

        assert via_memo.per_via(checked, 3, 20) > 0
        # a new branch every time, from three sources in turn
        assert len(set(seen)) == len(seen) and len({text.split(";")[0] for text in seen}) == 3


def test_the_bench_prints_a_row_per_number_of_sources() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "via_memo.py"),
                             "--sources", "1,50", "--vias", "50"],
                            capture_output=True, text=True, timeout=120, check=True)
    rows = result.stdout.splitlines()[1:]
    assert [row.split()[0] for row in rows] == ["1", "50"], result.stdout
