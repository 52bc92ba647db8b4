"""The optional C lane of the G.711 <-> G.729 transcoder (everything else is in pyproject.toml).

``vosapp.media.codecs._g729lane`` needs a C compiler and the Python headers (``make lab``'s
scripts/sysdeps.sh installs gcc and python3-dev when missing), not bcg729's headers: it calls
the bcg729 functions whose addresses ctypes hands it. ``optional=True``: when it cannot be
built, the install goes on and vosapp.media.codecs.g729 runs the same lane through ctypes.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "vosapp.media.codecs._g729lane",
            sources=["vosapp/media/codecs/_g729lane.c"],
            optional=True,
        )
    ]
)
