"""vosapp.net.same_host: the one host comparison the switch uses for "is this Via ours" and
"is this terminal behind NAT"."""

from __future__ import annotations

import pytest

from vosapp.net import same_host


@pytest.mark.parametrize(("a", "b", "expected"), [
    ("127.0.0.1", "127.0.0.1", True),
    ("::1", "0:0::1", True),            # addresses compared as addresses
    ("[::1]", "::1", True),             # URI brackets ignored on either side
    ("::1", "[0:0:0:0:0:0:0:1]", True),
    ("Switch.Example.COM", "switch.example.com", True),   # RFC 3261 §19.1.4
    ("127.0.0.1", "127.0.0.2", False),
    ("127.0.0.1", "localhost", False),  # a name never equals an address (no DNS)
    ("a.example", "b.example", False),
    ("", "", True),
])
def test_same_host(a: str, b: str, expected: bool) -> None:
    assert same_host(a, b) is expected
    assert same_host(b, a) is expected
