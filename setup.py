"""The optional compiled parts (everything else is in pyproject.toml): the G.711 <-> G.729
transcoder's lane and the media relay's forwarding hub in C, and the SIP layer's per-message
modules and the switch layer's request path compiled by mypyc.

``vosapp.media.codecs._g729lane`` needs a C compiler and the Python headers (``make lab``'s
scripts/sysdeps.sh installs gcc and python3-dev when missing), not bcg729's headers: it calls
the bcg729 functions whose addresses ctypes hands it. ``optional=True``: when it cannot be
built, the install goes on and vosapp.media.codecs.g729 runs the same lane through ctypes.
``vosapp.io._rtphub`` (Linux epoll) likewise: without it vosapp.io.rtp_relay reads each relay
socket from Python.

:data:`vosapp.compiled.COMPILED_MODULES` (the SIP layer's per-message modules, the switch
layer's request path) are compiled by mypyc (a build requirement, pyproject.toml) from the same
type-checked sources, with a SHA-256 of each source in vosapp/compiled.sha256; vosapp/compiled.py
runs the sources instead when the build is missing, incomplete or older than a source, or when
``VOSAPP_PURE_PYTHON=1`` (also at build time: then nothing is compiled).
"""

import os
import runpy
import sys
from pathlib import Path

from setuptools import Extension, setup

HERE = Path(__file__).resolve().parent
PACKAGE = HERE / "vosapp"


#: Compiler flags of mypyc's extensions on Linux (gcc or clang, ELF). mypyc leaves the
#: group's functions, and its runtime's, at default visibility: the library exported 1,880
#: symbols where Python needs its PyInit only, so a call from one to another went through the
#: PLT and none could be inlined (CPython builds itself with -fvisibility=hidden). -fno-plt
#: calls libpython through the GOT, one jump less. 2.6 % fewer instructions per registration
#: in process, 3.7 % live (docs/benchmarks.md, thirtieth round).
GROUP_CFLAGS = ["-fvisibility=hidden", "-fno-plt"] if sys.platform.startswith("linux") else []


def mypyc_extensions() -> list[Extension]:
    if os.environ.get("VOSAPP_PURE_PYTHON", "") not in ("", "0"):
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        print("setup.py: mypyc not found, vosapp stays pure Python", file=sys.stderr)
        return []
    # compiled.py imports nothing of vosapp: read it without importing the package
    compiled = runpy.run_path(str(PACKAGE / "compiled.py"))
    source_path = compiled["source_path"]
    sources = [f"vosapp/{source_path(name)}" for name in compiled["COMPILED_MODULES"]]
    # the project's [tool.mypy] options (strict), not its files list; an unused [[overrides]]
    # section would count as an error
    try:
        extensions = mypycify(["--no-warn-unused-configs", *sources],
                              opt_level="3", group_name=compiled["GROUP_NAME"])
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - e.g. a newer mypy finding new errors
        print(f"setup.py: mypyc failed ({exc!r}), vosapp stays pure Python", file=sys.stderr)
        return []
    for extension in extensions:
        extension.optional = True  # all or none runs (compiled.py): a failed part means none
        # a new list: mypycify hands every extension the same one
        extension.extra_compile_args = [*extension.extra_compile_args, *GROUP_CFLAGS]
    compiled["write_digests"](PACKAGE)
    return extensions


setup(
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
        *mypyc_extensions(),
    ]
)
