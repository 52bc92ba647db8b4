"""bench/unauthenticated_flood.py's machinery (not a figure): the flood is answered, every
request with a 401, and since challenges to requests without credentials are stateless (RFC
3261 §26.3.2.4) the switch holds no transaction for them, REGISTER or INVITE."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.support.serving import ROOT


@pytest.mark.parametrize("method", ["REGISTER", "INVITE"])
def test_the_flood_is_challenged_and_holds_no_transaction(method: str) -> None:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "unauthenticated_flood.py"),
                          "--requests", "3000", "--method", method],
                         check=True, capture_output=True, text=True, timeout=300).stdout
    match = re.search(rf"3,000 unauthenticated {method}s .* RSS \d+ -> \d+ MB, "
                      r"(\d+) server transactions held \((\d+) forgotten at the cap\), "
                      r"[\d.]+ us CPU per request", out)
    assert match is not None, out
    assert match.groups() == ("0", "0"), out
