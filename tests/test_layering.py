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
    "vosapp.enums": ("vosapp.",),
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


# Sans-IO layers get time as data (a vosapp.clock.Clock, or `now` with every input) and leave
# sockets and the event loop to vosapp.io. Kept apart from FORBIDDEN on purpose.
SANS_IO_PACKAGES = ("vosapp.sip", "vosapp.switch", "vosapp.media")
SANS_IO_FORBIDDEN = ("asyncio", "socket", "time")
SANS_IO_MODULES = [
    p for p in MODULES
    if _module_name(p).startswith(tuple(pkg + "." for pkg in SANS_IO_PACKAGES))
    or _module_name(p) in SANS_IO_PACKAGES
]


@pytest.mark.parametrize("path", SANS_IO_MODULES, ids=[_module_name(p) for p in SANS_IO_MODULES])
def test_sans_io_layers_import_no_socket_loop_or_clock(path: Path) -> None:
    violations = [
        f"{path.relative_to(PACKAGE.parent)}:{line} imports {name}"
        for line, name in _imports(path)
        if name.split(".")[0] in SANS_IO_FORBIDDEN
    ]
    assert not violations, "sans-IO layer touches I/O or a clock:\n" + "\n".join(violations)
