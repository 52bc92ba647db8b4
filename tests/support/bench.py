"""A script of ``bench/`` as a module, for the tests that keep the benchmarks from rotting."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

from tests.support.serving import ROOT


def load_bench(name: str) -> ModuleType:
    """``bench/<name>.py`` as module ``name``, loaded once and shared by every test that asks.

    It is registered in ``sys.modules`` before it runs: its dataclasses look their module up
    there, and one bench importing another (bench/gc_pauses.py uses media_calls) gets the same
    module object as the tests."""
    path = ROOT / "bench" / f"{name}.py"
    loaded = sys.modules.get(name)
    if loaded is not None and getattr(loaded, "__file__", None) == str(path):
        return loaded
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
