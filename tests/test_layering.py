"""Imports point one way only (docs/architecture.md): params, clock <- sip, media <- switch <- io
<- lab <- cli, and nothing below ``vosapp.cli`` imports it. Every import statement counts,
including the lazy ones inside functions."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "vosapp"

CLI = "vosapp.cli"
# package prefix -> packages it must never import (a name matches itself and its submodules)
FORBIDDEN = {
    "vosapp.sip": ("vosapp.media", "vosapp.switch", "vosapp.io", "vosapp.lab", CLI),
    "vosapp.media": ("vosapp.sip", "vosapp.switch", "vosapp.io", "vosapp.lab", CLI),
    "vosapp.switch": ("vosapp.io", "vosapp.lab", CLI),
    "vosapp.io": ("vosapp.lab", CLI),
    "vosapp.lab": (CLI,),
    "vosapp.params": ("vosapp.sip", "vosapp.media", "vosapp.switch", "vosapp.io", "vosapp.lab",
                      CLI),
    "vosapp.store": ("vosapp.sip", "vosapp.media", "vosapp.switch", "vosapp.io", "vosapp.lab",
                     CLI),
    "vosapp.config": ("vosapp.sip", "vosapp.media", "vosapp.switch", "vosapp.io", "vosapp.lab",
                      CLI),
    "vosapp.trace": ("vosapp.io", "vosapp.lab", CLI),
    "vosapp.errors": ("vosapp.",),
    "vosapp.clock": ("vosapp.",),
    "vosapp.net": ("vosapp.",),
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from vosapp import cli` imports vosapp.cli: count each name as a submodule too.
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=[_module_name(p) for p in MODULES])
def test_imports_point_one_way(path: Path) -> None:
    module = _module_name(path)
    rules = [bad for prefix, bad in FORBIDDEN.items()
             if module == prefix or module.startswith(prefix + ".")]
    violations = [
        f"{path.relative_to(PACKAGE.parent)}:{line} imports {name}"
        for line, name in _imports(path)
        for forbidden in (f for group in rules for f in group)
        if name == forbidden or name.startswith(forbidden if forbidden.endswith(".")
                                                 else forbidden + ".")
    ]
    assert not violations, "layering broken:\n" + "\n".join(violations)
