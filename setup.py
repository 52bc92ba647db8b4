"""The optional compiled parts (everything else is in pyproject.toml): the G.711 <-> G.729
transcoder's lane and the media relay's forwarding hub in C, and the SIP layer's per-message
modules and the switch layer's request path compiled by mypyc.

``vosapp.media.codecs._g729lane`` needs a C compiler and the Python headers (``make lab``'s
scripts/sysdeps.sh installs gcc and python3-dev when missing), not bcg729's headers: it calls
the bcg729 functions whose addresses ctypes hands it. ``optional=True``: when it cannot be
built, the install goes on and vosapp.media.codecs.g729 runs the same lane through ctypes.
``vosapp.io._rtphub`` (Linux epoll) likewise: without it vosapp.io.rtp_relay reads each relay
socket from Python. ``vosapp.sip._scan`` likewise: without it vosapp.sip.parser splits every
header block and vosapp.sip.digest every Digest header's auth-params in Python.

:data:`vosapp.compiled.COMPILED_MODULES` (the SIP layer's per-message modules, the switch
layer's request path) are compiled by mypyc (a build requirement, pyproject.toml) from the same
type-checked sources, with a SHA-256 of each source in vosapp/compiled.sha256; vosapp/compiled.py
runs the sources instead when the build is missing, incomplete or older than a source, or when
``VOSAPP_PURE_PYTHON=1`` (also at build time: then nothing is compiled).
"""

import os
import runpy
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent
PACKAGE = HERE / "vosapp"
#: vosapp/compiled.py's names (it imports nothing of vosapp: run without importing the package)
COMPILED = runpy.run_path(str(PACKAGE / "compiled.py"))


#: Compiler flags of mypyc's extensions on Linux (gcc or clang, ELF). mypyc leaves the
#: group's functions, and its runtime's, at default visibility: the library exported 1,880
#: symbols where Python needs its PyInit only, so a call from one to another went through the
#: PLT and none could be inlined (CPython builds itself with -fvisibility=hidden). -fno-plt
#: calls libpython through the GOT, one jump less. 2.6 % fewer instructions per registration
#: in process, 3.7 % live (docs/benchmarks.md, thirtieth round).
GROUP_CFLAGS = ["-fvisibility=hidden", "-fno-plt"] if sys.platform.startswith("linux") else []


#: The training run of the profile-guided build (vosapp/compiled_training.py).
TRAINING = [sys.executable, "-m", "vosapp.compiled_training"]
#: Seconds the training may take on the instrumented build (it takes a few).
TRAINING_TIMEOUT = 600


def profile_refused() -> str | None:
    """Why the compiled modules are built without a profile here (None: with one)."""
    if os.environ.get("VOSAPP_PGO", "") in ("0", "no", "off"):
        return "VOSAPP_PGO=0"
    if not sys.platform.startswith("linux"):
        return f"profile-guided builds are set up for Linux with GCC, not {sys.platform}"
    compiler = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()[0]
    try:
        version = subprocess.run([compiler, "--version"], capture_output=True, text=True,
                                 check=False, timeout=30).stdout
    except OSError as exc:
        return f"cannot run the C compiler {compiler!r} ({exc})"
    if "Free Software Foundation" not in version or "clang" in version:
        return f"the C compiler {compiler!r} is not GCC"
    return None


class ProfiledBuildExt(build_ext):
    """build_ext, with the mypyc group built profile-guided (GCC's PGO): once instrumented
    (``-fprofile-generate``), the training run on that build, then again with its counts
    (``-fprofile-use``). GCC then lays out each function's hot path straight, moves code the
    training never ran out of the way and inlines where the counts say it pays: a median
    1.10 x registrations per CPU-second live (docs/benchmarks.md, thirty-first round). Code the
    training did not reach is compiled as without a profile (``-fprofile-partial-training``).

    A training that fails, or a second pass that fails, leaves a build without a profile (and
    says why in ``vosapp/compiled.profile``), never the instrumented one: that one is slower
    and writes counts to a temporary directory at every exit."""

    training = TRAINING

    def run(self) -> None:
        group = [ext for ext in self.extensions if getattr(ext, "vosapp_mypyc", False)]
        refused = profile_refused() if group else None
        if not group or refused is not None:
            super().run()
            if group:
                self._record(f"plain: {refused}")
            return
        with tempfile.TemporaryDirectory(prefix="vosapp-pgo-") as profile_dir:
            self.force = True  # both passes compile every source of the group
            flags = {id(ext): list(ext.extra_compile_args) for ext in group}
            links = {id(ext): list(ext.extra_link_args) for ext in group}
            compiler = self.compiler  # run() replaces the name with the compiler it made

            def build(compile_more: list[str], link_more: list[str]) -> None:
                for ext in group:
                    ext.extra_compile_args = [*flags[id(ext)], *compile_more]
                    ext.extra_link_args = [*links[id(ext)], *link_more]
                self.compiler = compiler
                super(ProfiledBuildExt, self).run()

            generate = [f"-fprofile-generate={profile_dir}", "-fprofile-update=single"]
            record = "plain: the build stopped"
            everything = self.extensions
            try:
                build(generate, generate)
                failed = self._train(profile_dir)
                self.extensions = group
                if failed is None:
                    trained = sum(1 for _ in Path(profile_dir).rglob("*.gcda"))
                    build([f"-fprofile-use={profile_dir}", "-fprofile-partial-training",
                           "-Wno-missing-profile"], [])
                    record = (f"profile-guided: {trained} of {len(group)} objects have counts "
                              f"from {' '.join(self.training[1:])}")
                else:
                    build([], [])
                    record = f"plain: the training failed ({failed})"
                    print(f"setup.py: {record}; built without a profile", file=sys.stderr)
            finally:
                self.extensions = everything
                # a pass that stopped, or an optional extension that failed to build again,
                # leaves an instrumented file: it names the counts files it writes at exit
                for path in self._outputs(group):
                    if b".gcda" in path.read_bytes():
                        path.unlink()
                        record = f"plain: {path.name} stayed instrumented, removed"
                        print(f"setup.py: {record}", file=sys.stderr)
                self._record(record)

    def _root(self) -> Path:
        """Where the built package is importable from."""
        return HERE if self.inplace else Path(self.build_lib).resolve()

    def _outputs(self, group: list[Extension]) -> list[Path]:
        """The group's built files: in build_lib, and their copies in the source tree."""
        inplace = self.inplace
        paths: list[Path] = []
        try:
            for mode in (0, 1) if inplace else (0,):
                self.inplace = mode
                paths += [Path(self.get_ext_fullpath(ext.name)) for ext in group]
        finally:
            self.inplace = inplace
        return [path for path in paths if path.exists()]

    def _train(self, profile_dir: str) -> str | None:
        """Run the training on the instrumented build; None when it went well, else why."""
        try:  # a fixed hash seed: the same counts from one build to the next
            done = subprocess.run(self.training, cwd=self._root(), capture_output=True,
                                  text=True, check=False, timeout=TRAINING_TIMEOUT,
                                  env=dict(os.environ, PYTHONHASHSEED="0"))
        except subprocess.TimeoutExpired:
            return f"it ran past {TRAINING_TIMEOUT} s"
        if done.returncode != 0:
            return (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        if not any(Path(profile_dir).rglob("*.gcda")):
            return "it wrote no counts (did it run the instrumented build?)"
        return None

    def _record(self, text: str) -> None:
        package = self._root() / "vosapp"
        if package.is_dir():
            (package / COMPILED["PROFILE_FILE"]).write_text(text + "\n")


def mypyc_extensions() -> list[Extension]:
    if os.environ.get("VOSAPP_PURE_PYTHON", "") not in ("", "0"):
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        print("setup.py: mypyc not found, vosapp stays pure Python", file=sys.stderr)
        return []
    source_path = COMPILED["source_path"]
    sources = [f"vosapp/{source_path(name)}" for name in COMPILED["COMPILED_MODULES"]]
    # the project's [tool.mypy] options (strict), not its files list; an unused [[overrides]]
    # section would count as an error
    try:
        extensions = mypycify(["--no-warn-unused-configs", *sources],
                              opt_level="3", group_name=COMPILED["GROUP_NAME"])
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - e.g. a newer mypy finding new errors
        print(f"setup.py: mypyc failed ({exc!r}), vosapp stays pure Python", file=sys.stderr)
        return []
    for extension in extensions:
        extension.optional = True  # all or none runs (compiled.py): a failed part means none
        # a new list: mypycify hands every extension the same one
        extension.extra_compile_args = [*extension.extra_compile_args, *GROUP_CFLAGS]
        extension.vosapp_mypyc = True  # type: ignore[attr-defined]  # built profile-guided
    COMPILED["write_digests"](PACKAGE)
    return extensions


if __name__ == "__main__":  # setup.py run, or exec'd by setuptools' build backend
    setup(
        cmdclass={"build_ext": ProfiledBuildExt},
        ext_modules=[
            Extension(
                "vosapp.media.codecs._g729lane",
                sources=["vosapp/media/codecs/_g729lane.c"],
                depends=["vosapp/media/codecs/_g729lane.h"],
                optional=True,
            ),
            Extension(
                "vosapp.io._rtphub",
                sources=["vosapp/io/_rtphub.c"],
                # the hub converts transcoded legs through _g729lane's C interface (a capsule)
                depends=["vosapp/media/codecs/_g729lane.h"],
                # the RFC 3550 A.8 jitter must match the Python path's double arithmetic bit for bit
                extra_compile_args=["-ffp-contract=off"],
                optional=True,
            ),
            Extension(
                "vosapp.sip._scan",
                sources=["vosapp/sip/_scan.c"],
                optional=True,
            ),
            *mypyc_extensions(),
        ]
    )
