"""Times ``vosapp serve``'s free-memory releases (``malloc_trim``) under any bench.

With this folder first on ``PYTHONPATH`` (as an absolute path: bench/media_calls.py starts
the switch in another folder) and ``RELEASE_LOG=FILE`` set, every Python process
started from then on (``vosapp serve`` included, whichever bench launches it) replaces
``release_free_memory_periodically`` by a variant that releases every ``PERIOD`` s (default
15) *whether or not media is relayed*, and appends a line per release to FILE:

    seconds-since-start  pause-ms  rss-before-MB  rss-after-MB  running-relays

``PERIOD`` below 0 times the same schedule without releasing (pause ~0: the "none" runs of
an A/B). ``PERIOD=serve`` keeps the switch's own schedule (every 15 s, while media is relayed
only while a release takes at most 2 ms: ``vosapp.io.serve``) and logs each release it makes.
Without ``RELEASE_LOG`` it does nothing. docs/benchmarks.md "Memory given back while
media is relayed" used it as::

    PYTHONPATH=$PWD/bench/release_timing:$PWD RELEASE_LOG=/tmp/r.log PERIOD=1 \\
        .venv/bin/python bench/media_calls.py --mode relay --steps 300 --no-refine
    PY=$PWD/bench/release_timing/python.sh RELEASE_LOG=/tmp/r.log PERIOD=1 \\
        ONLY=vosapp VOSAPP_START=400 STEP=1 MAX_RATE=411 bash bench/calls.sh
"""

from __future__ import annotations

import os

if os.environ.get("RELEASE_LOG"):
    import asyncio
    import time
    from collections.abc import Callable

    from vosapp.io import serve

    SERVE_SCHEDULE = os.environ.get("PERIOD") == "serve"
    PERIOD = 15.0 if SERVE_SCHEDULE else float(os.environ.get("PERIOD", "15"))
    _LOG = open(os.environ["RELEASE_LOG"], "a", buffering=1)  # noqa: SIM115 (for the process)

    def _rss_mb() -> float:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    async def _timed_releases(media: Callable[[], int], **_ignored: object) -> None:
        start = time.monotonic()
        while True:
            await asyncio.sleep(abs(PERIOD))
            before = _rss_mb()
            began = time.perf_counter()
            if PERIOD > 0:
                serve.release_free_memory()
            pause_ms = (time.perf_counter() - began) * 1e3
            _LOG.write(f"{time.monotonic() - start:.1f} {pause_ms:.3f} {before:.1f} "
                       f"{_rss_mb():.1f} {media()}\n")

    _serve_schedule = serve.release_free_memory_periodically

    async def _serve_schedule_timed(media: Callable[[], int], **kwargs: object) -> None:
        start = time.monotonic()

        def release() -> bool:
            before = _rss_mb()
            began = time.perf_counter()
            done = serve.release_free_memory()
            pause_ms = (time.perf_counter() - began) * 1e3
            # written after the switch has timed this call: a write that waits for the disk
            # would count as the release's pause, and put the next releases off
            asyncio.get_running_loop().call_soon(
                _LOG.write, f"{time.monotonic() - start:.1f} {pause_ms:.3f} {before:.1f} "
                f"{_rss_mb():.1f} {media()}\n")
            return done

        await _serve_schedule(media, release=release, **kwargs)  # type: ignore[arg-type]

    serve.release_free_memory_periodically = (  # type: ignore[assignment]
        _serve_schedule_timed if SERVE_SCHEDULE else _timed_releases)
