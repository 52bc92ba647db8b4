"""The lab vendor: an answering endpoint for routing gateways.

A :class:`LabVendor` sits where a routing gateway points (``data/lab.toml``'s
``lab-vendor`` at 127.0.0.1:5080) and answers every INVITE by itself: after
``answer_after`` seconds of ringing, with the first codec of the offer it supports (its own
``codecs`` list), then echoes what it hears (``mode="echo"``), plays a file or array in a
loop (``mode="play"``) or sends silence. With ``reliable_183=True`` it first sends a
reliable 183 Session Progress with the answer SDP (``Require: 100rel``, RFC 3262) to callers
that support it, and answers only after their PRACK; off by default.

``vosapp lab`` starts one on the configuration's first routing gateway
(:func:`start_vendor_thread`), so a softphone registered as 1001 can dial out and hear
itself. :func:`run_vendor` runs one in the foreground.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from vosapp.config import load_config
from vosapp.errors import VosappError
from vosapp.lab.calls import Call, CallError
from vosapp.lab.sip_ua import DEFAULT_CODECS, UserAgent

__all__ = ["MODES", "LabVendor", "VendorThread", "run_vendor", "start_vendor_thread",
           "vendor_address"]

MODES = ("echo", "play", "silence")


class LabVendor(UserAgent):
    """Answers every call (see the module docstring).

    Parameters
    ----------
    host, port : where it listens (port 0: any free port; ``address`` tells which).
    codecs : names
        What it accepts, in its preference order (the offer's order decides, RFC 3264).
    mode : "echo", "play" or "silence"
    play : path or array, optional
        What ``mode="play"`` sends (looped).
    answer_after : float
        Seconds of ringing (180) before the 200 OK.
    reject : int, optional
        Refuse every call with this status instead (486, 503 ...).
    reliable_183 : bool
        RFC 3262 reliable 183 + PRACK before answering, when the caller supports 100rel.
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0,
                 codecs: Iterable[str] = DEFAULT_CODECS, mode: str = "echo",
                 play: Any = None, answer_after: float = 0.0, reject: int | None = None,
                 reliable_183: bool = False, **options: Any) -> None:
        super().__init__("vendor", host=host, port=port, codecs=codecs,
                         user_agent="vosapp-lab-vendor", **options)
        if mode not in MODES:
            raise CallError(f"vendor mode must be one of {MODES}, not {mode!r}")
        if mode == "play" and play is None:
            raise CallError("mode='play' needs play=<audio file or array>")
        self.mode = mode
        self.play = play
        self.answer_after = answer_after
        self.reject = reject
        self.reliable_183 = reliable_183

    def incoming_call(self, call: Call) -> None:
        self.spawn(self._handle(call))

    async def _handle(self, call: Call) -> None:
        try:
            if self.reject is not None:
                await call.reject(self.reject)
                return
            assert call.invite is not None
            if self.reliable_183 and call.peer_supports_100rel():
                await call.progress(reliable=True)
                await call.wait_prack()
            else:
                call.ring()
            if self.answer_after > 0:
                await asyncio.sleep(self.answer_after)
            if call.ended:
                return
            await call.answer(echo=self.mode == "echo")
            if self.mode == "play":
                await call.play(self.play, wait=False, loop=True)
        except (CallError, TimeoutError, OSError, ValueError) as exc:  # a bad play file too
            call.note("vendor", f"{type(exc).__name__}: {exc}")


def vendor_address(config_path: str | Path, gateway: str | None = None) -> tuple[str, int]:
    """(host, port) of the configuration's routing gateway ``gateway`` (default: first)."""
    config = load_config(config_path)
    gateways = [g for g in config.routing_gateways if gateway is None or g.name == gateway]
    if not gateways:
        raise VosappError(f"{config_path} has no routing gateway"
                          + (f" named {gateway!r}" if gateway else ""))
    if gateways[0].transport.lower() != "udp":
        raise VosappError(f"routing gateway {gateways[0].name} uses {gateways[0].transport}; "
                          "the lab vendor speaks UDP only")
    return (gateways[0].host, gateways[0].port)


async def _serve(vendor: LabVendor, stop: asyncio.Event) -> None:
    async with vendor:
        host, port = vendor.address
        print(f"vosapp lab vendor ({vendor.mode}) listening on {host}:{port}", flush=True)
        await stop.wait()


def run_vendor(config_path: str | Path, *, gateway: str | None = None, **options: Any) -> None:
    """Run a :class:`LabVendor` on the routing gateway's address until interrupted."""
    host, port = vendor_address(config_path, gateway)
    try:
        asyncio.run(_serve(LabVendor(host=host, port=port, **options), asyncio.Event()))
    except KeyboardInterrupt:
        pass


class VendorThread:
    """A :class:`LabVendor` on its own event loop in a daemon thread (``vosapp lab``)."""

    def __init__(self, vendor: LabVendor) -> None:
        self.vendor = vendor
        self.error: OSError | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lab-vendor", daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            try:
                await self.vendor.open()
            except OSError as exc:  # the port is taken: reported by start()
                self.error = exc
                return
            finally:
                self._ready.set()
            try:
                await self._stop.wait()
            finally:
                self.vendor.close()

        asyncio.run(main())

    def start(self, timeout: float = 10.0) -> VendorThread:
        self._thread.start()
        self._ready.wait(timeout)
        if self.error is not None:
            raise VosappError(f"the lab vendor could not start: {self.error}")
        return self

    def stop(self, timeout: float = 5.0) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)


def start_vendor_thread(config_path: str | Path, **options: Any) -> VendorThread:
    """Start the echo vendor on the configuration's first routing gateway, in a thread.

    Raises :class:`~vosapp.errors.VosappError` when it cannot (no routing gateway, the
    port is taken)."""
    host, port = vendor_address(config_path)
    return VendorThread(LabVendor(host=host, port=port, **options)).start()


if __name__ == "__main__":  # python -m vosapp.lab.vendor CONFIG
    import sys

    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m vosapp.lab.vendor CONFIG.toml")
    run_vendor(sys.argv[1])
