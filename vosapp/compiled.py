"""Which modules run compiled, and the guard that never lets a stale build run.

The install compiles :data:`COMPILED_MODULES` with mypyc (setup.py): the SIP layer's
per-message modules and the switch layer's request path (issue #14: the SIP layer 1.1-1.2 x
more calls and registrations per CPU-second, docs/benchmarks.md "The SIP layer compiled"; the
switch layer's request path a further 1.2 x registrations, its twenty-fourth round). A
compiled module is an extension (``headers.cpython-311-….so``) beside its source, and Python's
import system prefers the extension. So that an edited source is never shadowed by an
extension built from its older text, the build writes :data:`DIGEST_FILE` (a SHA-256 per
source it compiled) and :func:`install` -- run by ``vosapp/__init__.py``, before any of them
can be imported -- makes every one of them load from its source when

- ``VOSAPP_PURE_PYTHON=1`` is set (pure Python on purpose: the reference the tests compare
  against, and a way to profile the Python lines),
- the build compiled nothing (no C compiler, no mypyc, or ``VOSAPP_PURE_PYTHON=1`` at build
  time), or a part of the build is missing, or
- any source differs from what was compiled (a warning says so: run ``make setup``, or
  ``pip install -e .``, to compile again).

All or none: the compiled modules call each other's native classes directly, so a compiled
one never runs beside the source of another. A compiled class takes no attribute it does not
declare, no weak reference and no patch of its methods.

Nothing here imports the rest of vosapp (setup.py reads :data:`COMPILED_MODULES` from it).
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType

#: The modules setup.py compiles, named below the package (``sip.parser`` is
#: ``vosapp/sip/parser.py``):
#: - vosapp.sip's per-message path of a call (random tokens, URIs, parse, header access,
#:   transactions, dialogs, SDP) and digest authentication (issue #14: 2-6 % more
#:   registrations per CPU-second, docs/benchmarks.md, twenty-third round);
#: - vosapp.switch's request path: the core every request goes through, the per-source
#:   limiter it asks first, the authentication policy and the registrar (twenty-fourth and
#:   twenty-sixth rounds);
#: - the trace's ring, where the core records every message it receives and sends
#:   (thirty-third round). vosapp/trace.py itself is not compiled: mypyc refuses its
#:   conditional ``__getattr__``;
#: - the SIP UDP socket's per-datagram work and the group commit's (thirty-fourth round);
#:   what needs asyncio stays in vosapp/io/udp.py;
#: - the store's write transaction, which the registrar opens per REGISTER, and the loop's
#:   clock, where every SIP transaction sets its timers (thirty-fifth round).
#: Every dataclass of these modules writes its ``__init__``: mypyc leaves a generated one to
#: the dataclasses module, which runs it interpreted (tests/foundation/test_records.py).
COMPILED_MODULES = (
    "sip.entropy", "sip.uri", "sip.headers", "sip.message", "sip.parser", "sip.transaction",
    "sip.dialog", "sip.sdp", "sip.digest",
    "switch.core", "switch.limits", "switch.auth", "switch.registrar.model",
    "switch.registrar.logic", "switch.registrar.bindings_store", "switch.registrar.service",
    "trace_ring", "io.udp_wire", "io.group_commit", "store_transaction", "io.clock",
)
#: mypyc's group: its shared library is ``vosapp/_compiled__mypyc….so``.
GROUP_NAME = "vosapp._compiled"
#: That library's name below the package, without its suffix.
GROUP_LIBRARY = GROUP_NAME.rsplit(".", 1)[1] + "__mypyc"
#: Written by setup.py in vosapp/: ``<sha256> <path below vosapp>`` per compiled module.
DIGEST_FILE = "compiled.sha256"
#: Written by setup.py in vosapp/: how the compiled modules were built, one line: "profile-guided:
#: ..." (trained by vosapp/compiled_training.py) or "plain: <why no profile>".
PROFILE_FILE = "compiled.profile"

HERE = Path(__file__).resolve().parent
SUFFIXES = tuple(importlib.machinery.EXTENSION_SUFFIXES)


def source_path(name: str) -> str:
    """A compiled module's source below the package: ``sip.parser`` -> ``sip/parser.py``."""
    return name.replace(".", "/") + ".py"


def source_digests(directory: Path = HERE) -> dict[str, str]:
    """SHA-256 of each compiled module's source, as setup.py records them."""
    return {path: hashlib.sha256((directory / path).read_bytes()).hexdigest()
            for path in map(source_path, COMPILED_MODULES)}


def write_digests(directory: Path) -> None:
    """Record the sources being compiled (setup.py, at build time)."""
    lines = [f"{digest} {path}\n" for path, digest in source_digests(directory).items()]
    (directory / DIGEST_FILE).write_text("".join(lines))


def build_profile(directory: Path = HERE) -> str | None:
    """How the compiled modules were built (:data:`PROFILE_FILE`), None if not recorded."""
    path = directory / PROFILE_FILE
    return path.read_text().strip() if path.exists() else None


def _extension(directory: Path, stem: str) -> Path | None:
    for suffix in SUFFIXES:
        path = directory / f"{stem}{suffix}"
        if path.exists():
            return path
    return None


def why_sources(directory: Path = HERE, environ: Mapping[str, str] | None = None) -> str | None:
    """None when the compiled modules may run; else why their sources run instead."""
    env = os.environ if environ is None else environ
    if env.get("VOSAPP_PURE_PYTHON", "") not in ("", "0"):
        return "VOSAPP_PURE_PYTHON is set"
    stems = [*COMPILED_MODULES, GROUP_LIBRARY]
    missing = [stem for stem in stems
               if _extension(directory, stem.replace(".", "/")) is None]
    if len(missing) == len(stems):
        return "the install compiled nothing"
    digest_path = directory / DIGEST_FILE
    if missing or not digest_path.exists():
        return f"the build is incomplete ({', '.join(missing) or DIGEST_FILE} missing)"
    recorded: dict[str, str] = {}
    for line in digest_path.read_text().splitlines():
        digest, _, path = line.partition(" ")
        recorded[path] = digest
    changed = [path for path, digest in source_digests(directory).items()
               if recorded.get(path) != digest]
    if changed:
        return (f"{', '.join(changed)} changed since the build: run `make setup` (or "
                "`pip install -e .`) to compile again")
    return None


class _SourceFinder(importlib.abc.MetaPathFinder):
    """Finds the compiled modules' sources, ahead of the extensions beside them."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.paths = {f"vosapp.{name}": source_path(name) for name in COMPILED_MODULES}

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        source = self.paths.get(fullname)
        if source is None:
            return None
        return importlib.util.spec_from_file_location(fullname, self.directory / source)


#: Why the sources run (None: compiled, or nothing compiled to choose from); set by install().
SOURCES_BECAUSE: str | None = None


def install() -> None:
    """Choose compiled modules or sources for this process (once, before they are imported)."""
    global SOURCES_BECAUSE
    if any(isinstance(finder, _SourceFinder) for finder in sys.meta_path):
        return
    reason = why_sources()
    SOURCES_BECAUSE = reason
    if reason is None:
        return
    if "changed since the build" in reason or "incomplete" in reason:
        warnings.warn(f"vosapp's compiled modules run from their sources: {reason}",
                      RuntimeWarning, stacklevel=2)
    sys.meta_path.insert(0, _SourceFinder(HERE))


def describe() -> str:
    """One line for a log: what this process runs (``vosapp serve`` logs it at start)."""
    install()
    if SOURCES_BECAUSE is None:
        profile = build_profile()  # "profile-guided" or "plain", said before its details
        how = "mypyc" if profile is None else f"mypyc, {profile.partition(':')[0]}"
        return f"compiled ({how}): {', '.join(COMPILED_MODULES)}"
    return f"sources ({SOURCES_BECAUSE})"


def running_compiled() -> dict[str, bool]:
    """For each compiled module already imported: whether it is the extension."""
    result: dict[str, bool] = {}
    for name in COMPILED_MODULES:
        module = sys.modules.get(f"vosapp.{name}")
        if module is not None:
            result[name] = not str(getattr(module, "__file__", "")).endswith(".py")
    return result
