"""The training run of the profile-guided build (vosapp/compiled_training.py), and setup.py's
ProfiledBuildExt on a small C extension: built from its counts when the training runs,
built without them when it fails, never left instrumented."""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from vosapp import compiled_training

ROOT = Path(__file__).resolve().parents[1]


def test_the_training_registers_and_calls_through_the_switch() -> None:
    # every exchange is checked inside: a 401, then a 200, a refused password, calls answered
    # and ended, none left up
    compiled_training.train(registration_count=60, call_count=20, users=10)


def test_the_training_refuses_to_train_the_sources() -> None:
    # counts of a run on the sources would be none at all: setup.py must hear it failed
    done = subprocess.run([sys.executable, "-m", "vosapp.compiled_training"], cwd=ROOT,
                          env=dict(os.environ, VOSAPP_PURE_PYTHON="1"), capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 1
    assert "the compiled modules did not load: VOSAPP_PURE_PYTHON is set" in done.stderr


PROBE_C = textwrap.dedent("""
    #define PY_SSIZE_T_CLEAN
    #include <Python.h>
    static PyObject *work(PyObject *self, PyObject *arg) {
        long n = PyLong_AsLong(arg), odd = 0;
        for (long i = 0; i < n; i++) if (i % 3 == 1) odd++;
        return PyLong_FromLong(odd);
    }
    static PyMethodDef methods[] = {{"work", work, METH_O, NULL}, {NULL, NULL, 0, NULL}};
    static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "probe", NULL, -1, methods};
    PyMODINIT_FUNC PyInit_probe(void) { return PyModule_Create(&module); }
""")


def build_probe(tmp_path: Path, training: list[str]) -> tuple[str, bytes]:
    """Build the probe extension with setup.py's command and ``training``; returns what the
    build recorded and the built file."""
    from setuptools import Distribution, Extension

    namespace = runpy.run_path(str(ROOT / "setup.py"), run_name="setup_under_test")
    if namespace["profile_refused"]() is not None:
        pytest.skip(f"no profile-guided build here: {namespace['profile_refused']()}")
    (tmp_path / "probe.c").write_text(PROBE_C)
    extension = Extension("probe", sources=[str(tmp_path / "probe.c")])
    extension.vosapp_mypyc = True  # type: ignore[attr-defined]  # built as the group is
    lib = tmp_path / "lib"
    (lib / "vosapp").mkdir(parents=True)  # where the record goes

    class Command(namespace["ProfiledBuildExt"]):  # type: ignore[misc]
        pass

    Command.training = training
    command = Command(Distribution({"name": "probe", "ext_modules": [extension]}))
    command.build_lib, command.build_temp = str(lib), str(tmp_path / "temp")
    command.ensure_finalized()
    command.run()
    built = list(lib.glob("probe*.so"))
    assert len(built) == 1, built
    return (lib / "vosapp" / "compiled.profile").read_text().strip(), built[0].read_bytes()


def test_a_trained_build_has_the_counts_and_no_instrumentation(tmp_path: Path) -> None:
    record, built = build_probe(tmp_path, [sys.executable, "-c",
                                           "import probe; assert probe.work(3000) == 1000"])
    assert record == "profile-guided: 1 of 1 objects have counts from -c import probe; " \
                     "assert probe.work(3000) == 1000"
    assert b".gcda" not in built
    # the second build used the counts: GCC's debug info names its options (Python builds -g)
    assert b"GNU C" not in built or b"-fprofile-use" in built


def test_a_failed_training_leaves_a_build_without_a_profile(tmp_path: Path) -> None:
    record, built = build_probe(tmp_path, [sys.executable, "-c",
                                           "raise SystemExit('no training today')"])
    assert record == "plain: the training failed (no training today)"
    assert b".gcda" not in built and b"-fprofile-use" not in built


def test_a_training_that_runs_no_instrumented_code_fails(tmp_path: Path) -> None:
    record, built = build_probe(tmp_path, [sys.executable, "-c", "pass"])
    assert record == "plain: the training failed (it wrote no counts (did it run the " \
                     "instrumented build?))"
    assert b".gcda" not in built
