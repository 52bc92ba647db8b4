"""In-process CPU cost of one authenticated registration (issue #4), without sockets.

Feeds SIPp-shaped datagrams (REGISTER -> 401 -> REGISTER with digest -> 200, MD5, qop=auth,
1000 users in turn, a fresh Call-ID per registration, like bench/registrar_sipp.xml) into
``SwitchCore.receive`` with a no-op sender, with the registrar feature installed on a real
SQLite store (WAL) and the trace ring in memory, as ``vosapp serve --no-trace-store`` runs.
Only the CPU time spent inside ``receive`` is counted (the client side - digest answers,
building the requests - is excluded). GC tuned as ``vosapp serve`` does.

    .venv/bin/python bench/registrar_profile.py [--registrations N] [--profile cprofile|pyinstrument]
                                                [--code PATH] [--minimum]

``--minimum`` also times bench/python_minimum_registrar.py (the Kamailio cfg's work in one
Python function) on the same datagrams: vosapp's per-registration cost against that of the
least registrar doing the same wire work.

Before/after a change in one run: ``bash bench/registrar_profile_ab.sh REV [ROUNDS]``.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def code_root(argv: list[str]) -> Path:
    """The checkout whose vosapp is measured: ``--code PATH`` (e.g. the revision before a
    change, for a before/after comparison in one run), else this one."""
    if "--code" in argv[:-1]:
        return Path(argv[argv.index("--code") + 1]).resolve()
    return ROOT


sys.path.insert(0, str(code_root(sys.argv)))

from vosapp.config import load_config
from vosapp.io.clock import LoopClock
from vosapp.io.serve import tune_gc
from vosapp.sip.digest import answer
from vosapp.store import Store
from vosapp.switch import registrar
from vosapp.switch.core import SwitchCore
from vosapp.trace import Trace

SERVER = ("127.0.0.1", 5060)
CLIENT = ("127.0.0.1", 5061)
_CHALLENGE = re.compile(rb"\r\nWWW-Authenticate: ([^\r\n]*)", re.IGNORECASE)


class _LoopFreeClock:
    """Monotonic/wall time without an event loop, read as :class:`LoopClock` reads them;
    timers are kept but never fire (the run is shorter than any timer that matters, as in
    the real bench's 32 s Timer J). Not a subclass: LoopClock is compiled
    (vosapp/compiled.py)."""

    def __init__(self) -> None:
        loop_clock = LoopClock(None)
        self.now = loop_clock.now
        self.wall = loop_clock.wall
        self.timers: list[object] = []

    def call_at(self, when, callback):  # type: ignore[no-untyped-def]
        handle = _Handle()
        self.timers.append(handle)
        return handle

    def call_later(self, delay, callback):  # type: ignore[no-untyped-def]
        return self.call_at(self.now() + delay, callback)


class _Handle:
    __slots__ = ("cancelled",)

    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


def register_bytes(user: str, call: int, cseq: int, authorization: str | None) -> bytes:
    lines = [
        f"REGISTER sip:{SERVER[0]}:{SERVER[1]} SIP/2.0",
        f"Via: SIP/2.0/UDP {CLIENT[0]}:{CLIENT[1]};branch=z9hG4bK-{call}-{cseq};rport",
        f"From: <sip:{user}@{SERVER[0]}>;tag=4242SIPpTag{call}",
        f"To: <sip:{user}@{SERVER[0]}>",
        f"Call-ID: {call}-4242@{CLIENT[0]}",
        f"CSeq: {cseq} REGISTER",
        f"Contact: <sip:{user}@{CLIENT[0]}:{CLIENT[1]}>",
        "Expires: 3600",
        "Max-Forwards: 70",
    ]
    if authorization is not None:
        lines.append(f"Authorization: {authorization}")
    lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def build(work: Path, users: int) -> tuple[SwitchCore, list[bytes], Store]:
    config_path = work / "switch.toml"
    with config_path.open("w") as out:
        out.write(f'[switch]\nsip_listen = "127.0.0.1:5060"\ndata_dir = "{work}/data"\n')
        # One client address sends everything, as SIPp does: the per-source limiter is off.
        out.write("[limits]\nsource_threshold = 0\n")
        for i in range(users):
            out.write(f'\n[[account]]\nuser = "{20000 + i}"\npassword = "pw-{20000 + i}"\n')
    config = load_config(config_path)
    clock = _LoopFreeClock()
    store = Store.open(work / "data")
    sent: list[bytes] = []
    core = SwitchCore(clock=clock, config=config, trace=Trace(10_000, clock=clock), store=store,
                      sender=lambda data, dest, transport: sent.append(data))
    core.local_addresses["UDP"] = SERVER
    registrar.install(core)
    core.start()
    return core, sent, store


def run(core: SwitchCore, sent: list[bytes], registrations: int, users: int,
        first_call: int = 0, profiler: object | None = None) -> float:
    """Returns the CPU seconds spent inside ``core.receive`` (``profiler``: a cProfile
    profiler switched on around those calls only)."""
    receive = core.receive
    if profiler is not None:
        def receive(data: bytes, source: tuple[str, int], transport: str) -> None:
            profiler.enable()  # type: ignore[attr-defined]
            core.receive(data, source, transport)
            profiler.disable()  # type: ignore[attr-defined]
    return _registrations(receive, sent, registrations, users, first_call)


def run_minimum(registrar: object, registrations: int, users: int, first_call: int = 0) -> float:
    """:func:`run` for bench/python_minimum_registrar.py's ``MinimumRegistrar``: the same
    datagrams and digest answers, the CPU seconds spent inside its ``answer`` (and the
    ``time.time()`` its loop passes it)."""
    sent: list[bytes] = []
    respond, wall = registrar.answer, time.time  # type: ignore[attr-defined]

    def receive(data: bytes, _source: tuple[str, int], _transport: str) -> None:
        reply = respond(data, wall())
        if reply is not None:
            sent.append(reply)

    return _registrations(receive, sent, registrations, users, first_call)


def _registrations(receive: Callable[[bytes, tuple[str, int], str], None], sent: list[bytes],
                   registrations: int, users: int, first_call: int) -> float:
    """SIPp's traffic through ``receive``, whose answers land in ``sent``: REGISTER, its 401,
    REGISTER with credentials, its 200, per registration. The CPU seconds inside ``receive``."""
    cpu = 0.0
    clock = time.process_time
    uri = f"sip:{SERVER[0]}:{SERVER[1]}"
    for n in range(first_call, first_call + registrations):
        user = str(20000 + n % users)
        sent.clear()
        data = register_bytes(user, n, 1, None)
        t0 = clock()
        receive(data, CLIENT, "UDP")
        cpu += clock() - t0
        reply = sent[-1] if sent else b""
        challenge = _CHALLENGE.search(reply)
        if challenge is None:
            raise SystemExit(f"expected a 401, got {reply[:60]!r}")
        credentials = answer(challenge.group(1).decode(), "REGISTER", uri, user, f"pw-{user}",
                             cnonce=f"{n:08x}")
        sent.clear()
        data = register_bytes(user, n, 2, str(credentials))
        t0 = clock()
        receive(data, CLIENT, "UDP")
        cpu += clock() - t0
        reply = sent[-1] if sent else b""
        if not reply.startswith(b"SIP/2.0 200"):
            raise SystemExit(f"expected a 200, got {reply[:60]!r}")
    return cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--registrations", type=int, default=4000)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3, help="best of this many rounds")
    parser.add_argument("--profile", choices=("cprofile", "pyinstrument"))
    parser.add_argument("--code", metavar="PATH",
                        help="measure the vosapp of another checkout (default: this one)")
    parser.add_argument("--minimum", action="store_true",
                        help="also time bench/python_minimum_registrar.py on the same traffic, "
                             "bindings in memory and written through to SQLite")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vosapp-regbench-") as tmp:
        core, sent, store = build(Path(tmp), args.users)
        run(core, sent, args.users, args.users)  # warm-up: every user bound once
        tune_gc()
        call = args.users
        if args.profile == "cprofile":
            import cProfile
            import pstats

            profiler = cProfile.Profile()
            run(core, sent, args.registrations, args.users, call, profiler)
            pstats.Stats(profiler).sort_stats("tottime").print_stats(40)
            return 0
        if args.profile == "pyinstrument":
            from pyinstrument import Profiler

            profiler = Profiler(interval=0.0002)
            profiler.start()
            run(core, sent, args.registrations, args.users, call)
            profiler.stop()
            print(profiler.output_text(unicode=False, color=False, show_all=False))
            return 0
        best = None
        for _ in range(args.rounds):
            cpu = run(core, sent, args.registrations, args.users, call)
            call += args.registrations
            best = cpu if best is None else min(best, cpu)
        per = best / args.registrations
        print(f"{args.registrations} authenticated registrations (2 requests each), best of "
              f"{args.rounds}: {per * 1e6:.0f} us CPU per registration in SwitchCore.receive "
              f"-> {1 / per:,.0f} registrations per CPU-second (python "
              f"{sys.version.split()[0]})")
        store.close()
        if args.minimum:
            sys.path.insert(0, str(Path(__file__).resolve().parent))
            from python_minimum_registrar import MinimumRegistrar

            for kind in ("memory", "sqlite"):
                minimum = MinimumRegistrar(f"{tmp}/minimum.sqlite" if kind == "sqlite" else None)
                run_minimum(minimum, args.users, args.users)  # warm-up, as above
                best = min(run_minimum(minimum, args.registrations, args.users, args.users)
                           for _ in range(args.rounds))
                minimum_per = best / args.registrations
                print(f"python minimum ({kind}), same traffic, best of {args.rounds}: "
                      f"{minimum_per * 1e6:.0f} us CPU per registration in answer() -> vosapp / "
                      f"minimum (registrations per CPU-second) {minimum_per / per:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
