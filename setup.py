"""The optional C extensions (everything else is in pyproject.toml): the G.711 <-> G.729
transcoder's lane and the media relay's forwarding hub.

``vosapp.media.codecs._g729lane`` needs a C compiler and the Python headers (``make lab``'s
scripts/sysdeps.sh installs gcc and python3-dev when missing), not bcg729's headers: it calls
the bcg729 functions whose addresses ctypes hands it. ``optional=True``: when it cannot be
built, the install goes on and vosapp.media.codecs.g729 runs the same lane through ctypes.
``vosapp.io._rtphub`` (Linux epoll) likewise: without it vosapp.io.rtp_relay reads each relay
socket from Python.
"""

from setuptools import Extension, setup

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
    ]
)
