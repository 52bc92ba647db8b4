"""The compiled modules' module-level values are ``Final``: mypyc keeps them in C statics.

Compiled code reads a module-level name that is not ``Final`` from the module's ``__dict__``,
one dictionary lookup per use; a registration made ~230 of them (header-name lookups, memos,
regexes, constants) before its constants were ``Final`` (docs/benchmarks.md, "Module
constants as C statics", thirty-second round). So every module-level binding of a compiled
module is ``Final``, a type (``TypeAlias``, ``TypeVar``), ``__all__``, or a name a function
of the module rebinds (``global``).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.serving import environment, needs_build
from vosapp import compiled

PACKAGE = Path(compiled.__file__).resolve().parent
ROOT = PACKAGE.parent


def _bindings(name: str) -> list[tuple[str, str, bool]]:
    """(name, annotation, rebound by a ``global``) of each module-level binding of a name in
    compiled module ``name``'s source."""
    tree = ast.parse((PACKAGE / compiled.source_path(name)).read_text())
    rebound = {n for node in ast.walk(tree) if isinstance(node, ast.Global) for n in node.names}
    found = []
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets = [target for target in node.targets if isinstance(target, ast.Name)]
            value: ast.expr | None = node.value
            annotation = ""
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            targets, value = [node.target], node.value
            annotation = ast.unparse(node.annotation)
        else:
            continue
        if isinstance(value, ast.Call) and ast.unparse(value.func) == "TypeVar":
            annotation = "TypeVar"
        found.extend((target.id, annotation, target.id in rebound) for target in targets)
    return found


@pytest.mark.parametrize("module", compiled.COMPILED_MODULES)
def test_every_module_level_value_of_a_compiled_module_is_final(module: str) -> None:
    loose = [name for name, annotation, rebound in _bindings(module)
             if name != "__all__" and not rebound
             and not annotation.startswith(("Final", "TypeAlias", "TypeVar"))]
    assert loose == [], (f"vosapp/{compiled.source_path(module)}: annotate these Final (or "
                         "TypeAlias for a type): compiled code looks each use up in the "
                         "module's dict")


def test_the_rule_has_values_to_check() -> None:
    finals = [name for module in compiled.COMPILED_MODULES
              for name, annotation, _ in _bindings(module) if annotation.startswith("Final")]
    assert len(finals) > 100 and "VIAS_MEMO" in finals and "_CANONICAL" in finals


# Rebinding a module attribute from outside: interpreted code sees the new value, compiled
# code keeps reading its C static (what the constant being Final bought).
PROBE = """
import json
from vosapp import compiled
from vosapp.sip import headers
original = headers._CANONICAL
headers._CANONICAL = {}
headers.canonical_key("X-Probe-Name")
print(json.dumps({"static": "X-Probe-Name" in original,
                  "compiled": compiled.running_compiled()["sip.headers"]}))
"""


def _probe(**env: str) -> dict[str, bool]:
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT,
                         env=environment(**env, PYTHONPATH=str(ROOT)), check=True,
                         capture_output=True, text=True, timeout=60).stdout
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


@needs_build
def test_compiled_code_reads_a_final_value_from_its_static() -> None:
    assert _probe() == {"static": True, "compiled": True}


def test_interpreted_code_reads_the_module_dict() -> None:
    # the probe tells the two apart: from the sources, the rebound name is what is read
    assert _probe(VOSAPP_PURE_PYTHON="1") == {"static": False, "compiled": False}
