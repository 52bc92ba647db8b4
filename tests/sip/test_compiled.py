"""The SIP layer compiled by mypyc, and the guard that runs the sources instead
(vosapp/sip/compiled.py): never a stale or partial build, and the sources stay correct."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vosapp.sip import compiled

ROOT = Path(__file__).resolve().parents[2]

# What a fresh interpreter runs: the reason the sources run (or None), and per module whether
# it is the extension.
PROBE = """
import json, warnings
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as caught:
    import vosapp.sip, vosapp.sip.compiled as c
    for name in c.COMPILED_MODULES:
        __import__("vosapp.sip." + name)
print(json.dumps({"because": c.SOURCES_BECAUSE, "compiled": c.running_compiled(),
                  "warnings": [str(w.message) for w in caught]}))
"""


def environment(**env: str) -> dict[str, str]:
    """This process's environment without VOSAPP_PURE_PYTHON, plus ``env``."""
    environ = {key: value for key, value in os.environ.items() if key != "VOSAPP_PURE_PYTHON"}
    environ.update(env)
    return environ


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


NOT_BUILT = compiled.why_sources(environ={})
needs_build = pytest.mark.skipif(NOT_BUILT is not None,
                                 reason=f"the SIP layer is not compiled here: {NOT_BUILT}")


def test_the_install_compiled_the_sip_layer() -> None:
    # `make setup` builds with mypyc (a build requirement): if that silently stopped working,
    # every figure of docs/benchmarks.md "The SIP layer compiled" would be wrong
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
    # all or none: the other five are unchanged, yet run from source too
    assert result["compiled"] == dict.fromkeys(compiled.COMPILED_MODULES, False)
    assert "sdp.py changed since the build" in str(result["because"])
    assert any("make setup" in str(w) for w in result["warnings"])  # type: ignore[attr-defined]


@needs_build
def test_a_partial_build_runs_from_source_with_a_warning(tmp_path: Path) -> None:
    root = copy_of_the_package(tmp_path)
    (extension,) = (root / "vosapp" / "sip").glob("dialog.*.so")
    extension.unlink()
    result = probe(root)
    assert result["compiled"] == dict.fromkeys(compiled.COMPILED_MODULES, False)
    assert "incomplete (dialog missing)" in str(result["because"])
    (root / "vosapp" / "sip" / compiled.DIGEST_FILE).unlink()
    shutil.copy(ROOT / "vosapp" / "sip" / extension.name, extension)
    assert "compiled.sha256 missing" in str(probe(root)["because"])


def test_why_sources_of_a_tree_with_nothing_compiled(tmp_path: Path) -> None:
    for name in compiled.COMPILED_MODULES:
        (tmp_path / f"{name}.py").write_text("")
    assert compiled.why_sources(tmp_path, {}) == "the install compiled nothing"
    assert compiled.why_sources(tmp_path, {"VOSAPP_PURE_PYTHON": "0"}) == (
        "the install compiled nothing")
    compiled.write_digests(tmp_path)
    lines = (tmp_path / compiled.DIGEST_FILE).read_text().splitlines()
    assert [line.split(" ")[1] for line in lines] == [
        f"{name}.py" for name in compiled.COMPILED_MODULES]


def test_the_sources_pass_the_sip_tests() -> None:
    # The sources are what runs without a compiler (and what a developer edits): the SIP
    # tests, again, on them. The rest of the suite runs on what the install built.
    environ = dict(os.environ, VOSAPP_PURE_PYTHON="1")
    tests = [str(path) for path in sorted((ROOT / "tests" / "sip").glob("test_*.py"))
             if path.name != Path(__file__).name]
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-x", *tests], check=False, cwd=ROOT, env=environ,
                          capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert " passed" in done.stdout.splitlines()[-1]


def serve_log_line(tmp_path: Path, **env: str) -> str:
    """The "SIP layer" line `vosapp serve` logs at start."""
    environ = environment(**env)
    process = subprocess.Popen([sys.executable, "-m", "vosapp.cli", "serve", "--listen",
                                "127.0.0.1:0", "--udp-only", "--data-dir", str(tmp_path)],
                               cwd=ROOT, env=environ, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        for line in process.stderr:
            if "SIP layer: " in line:
                return line.split("SIP layer: ", 1)[1].strip()
        raise AssertionError("vosapp serve logged no SIP layer line")
    finally:
        process.terminate()
        process.wait(timeout=15)


def test_serve_logs_which_sip_layer_runs(tmp_path: Path) -> None:
    assert serve_log_line(tmp_path / "a", VOSAPP_PURE_PYTHON="1") == (
        "sources (VOSAPP_PURE_PYTHON is set)")
    assert serve_log_line(tmp_path / "b") == (
        "compiled (mypyc): " + ", ".join(compiled.COMPILED_MODULES))
