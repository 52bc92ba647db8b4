"""The registry is honest: a parameter no feature reads says so in its description."""

from __future__ import annotations

from pathlib import Path

import pytest

from vosapp.params import REGISTRY

PACKAGE = Path(__file__).resolve().parents[2] / "vosapp"
# Where switch behaviour lives; the registry itself, its CLI and the lab widgets do not count.
FEATURE_SOURCES = "\n".join(
    path.read_text(encoding="utf-8")
    for folder in ("switch", "sip", "io", "media")
    for path in sorted((PACKAGE / folder).rglob("*.py")))
UNUSED_NOTE = "no feature reads this value yet"


@pytest.mark.parametrize("name", [param.name for param in REGISTRY])
def test_unused_parameters_say_so(name: str) -> None:
    read = f'"{name}"' in FEATURE_SOURCES or f"'{name}'" in FEATURE_SOURCES
    noted = UNUSED_NOTE in REGISTRY[name].description
    assert read != noted, (f"{name}: read by a feature={read}, description says unused={noted}"
                           " (add or remove the note and run `make docs`)")


def test_publish_expire_is_marked_unused() -> None:
    description = REGISTRY["SS_SIP_PUBLISH_EXPIRE"].description
    assert UNUSED_NOTE in description and "405" in description
