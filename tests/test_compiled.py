"""The SIP layer and the switch layer's request path compiled by mypyc, and the guard that
runs the sources instead (vosapp/compiled.py): never a stale or partial build, and the sources
stay correct."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.serving import environment, needs_build
from vosapp import compiled
from vosapp.store import Store

ROOT = Path(__file__).resolve().parents[1]

# What a fresh interpreter runs: the reason the sources run (or None), and per module whether
# it is the extension.
PROBE = """
import json, warnings
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as caught:
    import vosapp.compiled as c
    for name in c.COMPILED_MODULES:
        __import__("vosapp." + name)
print(json.dumps({"because": c.SOURCES_BECAUSE, "compiled": c.running_compiled(),
                  "warnings": [str(w.message) for w in caught]}))
"""


def probe(root: Path, **env: str) -> dict[str, object]:
    environ = environment(**env, PYTHONPATH=str(root))
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=root, env=environ, check=True,
                         capture_output=True, text=True, timeout=60).stdout
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def copy_of_the_package(tmp_path: Path) -> Path:
    """This checkout's vosapp/ (built parts included) in a directory of its own."""
    shutil.copytree(ROOT / "vosapp", tmp_path / "vosapp",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def test_the_install_compiled_the_sip_and_switch_layers() -> None:
    # `make setup` builds with mypyc (a build requirement): if that silently stopped working,
    # every figure of docs/benchmarks.md "The SIP layer compiled" (and of the twenty-fourth
    # round, the switch layer's request path) would be wrong
    assert compiled.why_sources(environ={}) is None
    result = probe(ROOT)
    assert result["because"] is None and result["warnings"] == []
    assert result["compiled"] == dict.fromkeys(compiled.COMPILED_MODULES, True)


def test_pure_python_on_request_runs_every_source() -> None:
    result = probe(ROOT, VOSAPP_PURE_PYTHON="1")
    assert result["because"] == "VOSAPP_PURE_PYTHON is set" and result["warnings"] == []
    assert result["compiled"] == dict.fromkeys(compiled.COMPILED_MODULES, False)


@needs_build
def test_an_edited_source_runs_from_source_with_a_warning(tmp_path: Path) -> None:
    root = copy_of_the_package(tmp_path)
    assert probe(root)["compiled"] == dict.fromkeys(compiled.COMPILED_MODULES, True)
    sdp = root / "vosapp" / "sip" / "sdp.py"
    sdp.write_text(sdp.read_text() + "\n# edited after the build\n")
    result = probe(root)
    # all or none: the others are unchanged, yet run from source too (the switch layer's too)
    assert result["compiled"] == dict.fromkeys(compiled.COMPILED_MODULES, False)
    assert "sip/sdp.py changed since the build" in str(result["because"])
    assert any("make setup" in str(w) for w in result["warnings"])  # type: ignore[attr-defined]


@needs_build
def test_a_partial_build_runs_from_source_with_a_warning(tmp_path: Path) -> None:
    root = copy_of_the_package(tmp_path)
    (extension,) = (root / "vosapp" / "sip").glob("dialog.*.so")
    extension.unlink()
    result = probe(root)
    assert result["compiled"] == dict.fromkeys(compiled.COMPILED_MODULES, False)
    assert "incomplete (sip.dialog missing)" in str(result["because"])
    (root / "vosapp" / compiled.DIGEST_FILE).unlink()
    shutil.copy(ROOT / "vosapp" / "sip" / extension.name, extension)
    assert "compiled.sha256 missing" in str(probe(root)["because"])


@needs_build
def test_an_edited_switch_source_runs_every_module_from_source(tmp_path: Path) -> None:
    root = copy_of_the_package(tmp_path)
    core = root / "vosapp" / "switch" / "core.py"
    core.write_text(core.read_text() + "\n# edited after the build\n")
    result = probe(root)
    assert result["compiled"] == dict.fromkeys(compiled.COMPILED_MODULES, False)
    assert "switch/core.py changed since the build" in str(result["because"])
    (extension,) = (root / "vosapp" / "switch" / "registrar").glob("logic.*.so")
    extension.unlink()
    assert "incomplete (switch.registrar.logic missing)" in str(probe(root)["because"])


def test_why_sources_of_a_tree_with_nothing_compiled(tmp_path: Path) -> None:
    for name in compiled.COMPILED_MODULES:
        source = tmp_path / compiled.source_path(name)
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_text("")
    assert compiled.why_sources(tmp_path, {}) == "the install compiled nothing"
    assert compiled.why_sources(tmp_path, {"VOSAPP_PURE_PYTHON": "0"}) == (
        "the install compiled nothing")
    compiled.write_digests(tmp_path)
    lines = (tmp_path / compiled.DIGEST_FILE).read_text().splitlines()
    assert [line.split(" ")[1] for line in lines] == [
        "sip/entropy.py", "sip/uri.py", "sip/headers.py", "sip/message.py", "sip/parser.py",
        "sip/transaction.py",
        "sip/dialog.py", "sip/sdp.py", "sip/digest.py", "switch/core.py", "switch/limits.py",
        "switch/auth.py",
        "switch/registrar/model.py", "switch/registrar/logic.py",
        "switch/registrar/bindings_store.py", "switch/registrar/service.py", "trace_ring.py",
        "io/udp_wire.py", "io/group_commit.py", "store_transaction.py", "io/clock.py"]


def test_the_sources_pass_the_sip_and_switch_tests() -> None:
    # The sources are what runs without a compiler (and what a developer edits): the SIP and
    # switch tests, again, on them. The rest of the suite runs on what the install built.
    environ = dict(os.environ, VOSAPP_PURE_PYTHON="1")
    tests = [str(path) for layer in ("sip", "switch")
             for path in sorted((ROOT / "tests" / layer).glob("test_*.py"))]
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-x", *tests], check=False, cwd=ROOT, env=environ,
                          capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert " passed" in done.stdout.splitlines()[-1]


def serve_log_line(tmp_path: Path, **env: str) -> str:
    """The "SIP and switch layers" line `vosapp serve` logs at start."""
    environ = environment(**env)
    process = subprocess.Popen([sys.executable, "-m", "vosapp.cli", "serve", "--listen",
                                "127.0.0.1:0", "--udp-only", "--data-dir", str(tmp_path)],
                               cwd=ROOT, env=environ, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        for line in process.stderr:
            if "SIP and switch layers: " in line:
                return line.split("SIP and switch layers: ", 1)[1].strip()
        raise AssertionError("vosapp serve logged no line saying what runs compiled")
    finally:
        process.terminate()
        process.wait(timeout=15)


def test_serve_logs_which_build_runs(tmp_path: Path) -> None:
    assert serve_log_line(tmp_path / "a", VOSAPP_PURE_PYTHON="1") == (
        "sources (VOSAPP_PURE_PYTHON is set)")
    # setup.py builds them profile-guided (GCC on Linux), which the line says
    assert serve_log_line(tmp_path / "b") == (
        "compiled (mypyc, profile-guided): " + ", ".join(compiled.COMPILED_MODULES))


def test_a_temporary_store_is_removed_with_what_holds_it() -> None:
    # A compiled SwitchCore takes no weak reference: a switch without a data directory keeps
    # its bindings in a store that removes its own directory when collected.
    store = Store.open_temporary("vosapp-test-")
    directory = store.path.parent
    assert directory.is_dir()
    del store
    assert not directory.exists()


def readelf(*args: str) -> str:
    return subprocess.run(["readelf", "-W", *args], check=True, capture_output=True,
                          text=True, timeout=60).stdout


@needs_build
@pytest.mark.skipif(not sys.platform.startswith("linux") or shutil.which("readelf") is None,
                    reason="an ELF build, read with binutils' readelf")
def test_the_compiled_group_calls_itself_directly() -> None:
    # setup.py GROUP_CFLAGS: mypyc's library exported its 1,880 functions, so every call from
    # one to another went through the PLT and none could be inlined (3.7 % of a registration's
    # instructions live: docs/benchmarks.md, thirtieth round)
    library = compiled._extension(compiled.HERE, compiled.GROUP_LIBRARY)
    assert library is not None
    rows = [line.split() for line in readelf("--dyn-syms", str(library)).splitlines()]
    # Num: Value Size Type Bind Vis Ndx Name; Ndx UND: a symbol the library uses
    defined = [row[7] for row in rows
               if len(row) >= 8 and row[0][:-1].isdigit() and row[6] != "UND"]
    assert defined == ["PyInit__compiled__mypyc"]
    # -fno-plt: calls into libpython through the GOT, no lazily bound jump slots
    assert "JUMP_SLOT" not in readelf("--relocs", str(library))


@needs_build
def test_the_compiled_group_is_built_from_its_training_counts() -> None:
    # setup.py's ProfiledBuildExt: built instrumented, trained (vosapp/compiled_training.py),
    # built again with the counts (a median 1.10 x registrations per CPU-second live:
    # docs/benchmarks.md, thirty-first round). What is installed is the second build: an
    # instrumented library names the counts files it would write at every exit.
    profile = compiled.build_profile()
    assert profile is not None and profile.startswith("profile-guided: "), profile
    for stem in (compiled.GROUP_LIBRARY, *[name.replace(".", "/")
                                           for name in compiled.COMPILED_MODULES]):
        library = compiled._extension(compiled.HERE, stem)
        assert library is not None
        built = library.read_bytes()
        assert b".gcda" not in built, library
        # built from the counts: GCC's debug info names its options (Python builds with -g)
        assert b"GNU C" not in built or b"-fprofile-use" in built, library
