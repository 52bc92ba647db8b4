"""Cyclic-GC pauses inside a real ``vosapp serve`` under calls with media (issue #14, part 2).

The RTP relay (the C hub) is driven by the switch's asyncio loop, in the thread the cyclic
GC stops: every packet due while a collection runs waits for it. This tool runs
bench/media_calls.py's steps (WAVES waves of N calls: set up at --setup-rate, media both
ways for --hold seconds, hang-up) against ``vosapp serve`` started through this file's
``serve`` launcher, which records every collection's duration per generation through
``gc.callbacks`` and writes them out when the switch stops (a bench-only hook, like
bench/reuseport_serve.py; no product flag). Reports per generation: collections, per second,
p50 / p99 / max pause (wall time; and the thread's CPU time, which a preemption does not
stretch), objects collected, how many ran while relays had sockets in the hub
(media waiting) and their max, and the steps' relay-added jitter p99 (hold windows only).

    PYTHONPATH=$PWD .venv/bin/python bench/gc_pauses.py                  # this checkout
    PYTHONPATH=$PWD .venv/bin/python bench/gc_pauses.py --base /tmp/base  # before/after,
        alternating which runs first, --rounds rounds, in one run
    PYTHONPATH=$PWD .venv/bin/python bench/gc_pauses.py --types           # + what the
        collections found unreachable (gc.DEBUG_SAVEALL: object types; a diagnostic run)

The launcher: ``python bench/gc_pauses.py serve ARGS`` = ``vosapp serve ARGS`` of the
checkout in $GC_PAUSES_CODE (default this one), recording into the JSON file
$GC_PAUSES_OUT.
"""

from __future__ import annotations

import argparse
import atexit
import gc
import json
import os
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


# -- the launcher (inside the switch process) ------------------------------------------------


def record_collections(out: str, types: bool) -> None:
    """Append (monotonic start s, generation, duration s, collected) for every collection
    to a list written as JSON to ``out`` at exit; with ``types``, also count the types of
    what each collection found unreachable (DEBUG_SAVEALL keeps it in gc.garbage: the
    process leaks it, so only for a diagnostic run)."""
    events: list[tuple[float, int, float, int, int, float]] = []
    cycles: list[str] = []
    found: Counter[str] = Counter()
    started = [0.0, 0.0]
    seen = [0]
    clock = time.perf_counter

    media = [0]

    def relay_sockets() -> int:
        """The RTP sockets in the loop's hub: media waits for this collection when > 0."""
        rtp_relay = sys.modules.get("vosapp.io.rtp_relay")
        hubs = getattr(rtp_relay, "_hubs", {})
        return sum(len(hub.hub) for hub in hubs.values())

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            media[0] = relay_sockets()
            started[:] = [clock(), time.thread_time()]
            return
        duration = clock() - started[0]
        # the thread's CPU time too: the wall time includes any preemption by other work
        events.append((time.monotonic() - duration, info["generation"], duration,
                       info["collected"], media[0], time.thread_time() - started[1]))
        if types:
            garbage = gc.garbage
            if gc.get_freeze_count():  # past start-up (serve's tune_gc froze it)
                for obj in garbage[seen[0]:]:
                    kind = type(obj)
                    found[f"{kind.__module__}.{kind.__qualname__}"] += 1
            seen[0] = len(garbage)

    def write() -> None:
        gc.callbacks.remove(callback)
        Path(out).write_text(json.dumps({"events": events, "types": found.most_common(80),
                                         "cycles": cycles,
                                         "threshold": gc.get_threshold()}))

    if types:
        gc.set_debug(gc.DEBUG_SAVEALL)
        # the driver's signal once the calls' transactions are over: a full collection finds
        # what became unreachable in the old generations too
        signal.signal(signal.SIGUSR1, lambda *_: cycles.extend(collect_and_trace()))
    threshold = os.environ.get("GC_PAUSES_THRESHOLD")
    if threshold:  # an experiment: these thresholds instead of serve's, once it set them
        from vosapp.io import serve

        tune = serve.tune_gc

        def tune_then_set() -> None:
            tune()
            gc.set_threshold(*(int(t) for t in threshold.split(",")))

        serve.tune_gc = tune_then_set
    gc.callbacks.append(callback)
    atexit.register(write)


def describe_edge(parent: object, child: object) -> str:
    """How ``parent`` refers to ``child``: an attribute or key name when it has one."""
    names = getattr(parent, "__dict__", None)
    for source in (names, parent if isinstance(parent, dict) else None):
        if source:
            for key, value in source.items():
                if value is child:
                    return f".{key}"
    for slot in getattr(type(parent), "__slots__", ()):
        if getattr(parent, slot, None) is child:
            return f".{slot}"
    return ""


def collect_and_trace(per_type: int = 1) -> list[str]:
    """A full collection (DEBUG_SAVEALL on), then one shortest reference cycle through an
    object of each type found, as text: which references make the garbage cyclic."""
    before = len(gc.garbage)
    gc.collect()
    garbage = gc.garbage[before:]
    ids = {id(o) for o in garbage}
    traced: Counter[type] = Counter()
    out = []
    for start in garbage:
        kind = type(start)
        if traced[kind] >= per_type or kind in (list, dict, tuple, set, type(describe_edge)):
            continue
        traced[kind] += 1
        parents: dict[int, tuple[object, object] | None] = {id(start): None}
        frontier = [start]
        found = None
        while frontier and found is None:
            nxt = []
            for obj in frontier:
                for ref in gc.get_referents(obj):
                    if ref is start:
                        found = obj
                        break
                    if id(ref) in ids and id(ref) not in parents:
                        parents[id(ref)] = (obj, ref)
                        nxt.append(ref)
                if found is not None:
                    break
            frontier = nxt
        if found is None:
            continue
        chain = [(found, start)]
        node = found
        while parents[id(node)] is not None:
            parent, _ = parents[id(node)]  # type: ignore[misc]
            chain.append((parent, node))
            node = parent
        chain.reverse()
        out.append(f"{kind.__qualname__}: " + " -> ".join(
            f"{type(p).__qualname__}{describe_edge(p, c)}" for p, c in chain)
            + f" -> {kind.__qualname__}")
    return out


def launch(argv: list[str]) -> int:
    code = os.environ.get("GC_PAUSES_CODE", str(ROOT))
    sys.path.insert(0, code)
    record_collections(os.environ["GC_PAUSES_OUT"], os.environ.get("GC_PAUSES_TYPES") == "1")
    from vosapp.cli import main

    return int(main(argv) or 0)


# -- the driver --------------------------------------------------------------------------------


def start_switch(code: Path, mode: str, work: Path, rtp_ports: tuple[int, int], out: Path,
                 types: bool, threshold: str | None, pin: bool = True) -> Any:
    """bench/media_calls.py's switch, run through the launcher with ``code``'s vosapp."""
    import bench.media_calls as mc

    env = dict(os.environ, PYTHONPATH=str(code), GC_PAUSES_CODE=str(code),
               GC_PAUSES_OUT=str(out), GC_PAUSES_TYPES="1" if types else "0",
               GC_PAUSES_THRESHOLD=threshold or "")
    # pinned as bench/media_calls.py pins: the switch on the last CPU, generators elsewhere
    return mc.start_switch(mode, work, rtp_ports, pin=pin, env=env,
                           launcher=[sys.executable, str(Path(__file__).resolve())])


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def one_run(label: str, code: Path, args: argparse.Namespace,
            payloads: dict[str, list[bytes]], work: Path) -> dict[str, Any]:
    import bench.media_calls as mc

    out = work / f"gc-{label}.json"
    low, high = (int(p) for p in args.rtp_ports.split("-"))
    switch = start_switch(code, args.mode, work, (low, high), out, args.types, args.threshold,
                          args.pin)
    steps = []
    try:
        time.sleep(0.5)
        start = time.monotonic()
        for _ in range(args.waves):
            steps.append(mc.run_step(switch, args.mode, args.calls, args.hold,
                                     setup_rate=args.setup_rate, payloads=payloads))
        if args.types:  # the transactions end (Timer J/H/L, 32 s), then a full collection
            time.sleep(34)
            switch.process.send_signal(signal.SIGUSR1)
            time.sleep(2)
        end = time.monotonic()
    finally:
        mc.stop_switch(switch)
    data = json.loads(out.read_text())
    events = [e for e in data["events"] if start <= e[0] <= end]
    wall = end - start
    per_gen = {}
    for gen in range(3):
        mine = [e for e in events if e[1] == gen]
        pauses = [e[2] * 1e3 for e in mine]
        per_gen[gen] = {
            "n": len(mine), "per_s": len(mine) / wall,
            "p50": percentile(pauses, 50), "p99": percentile(pauses, 99),
            "max": max(pauses, default=float("nan")),
            "total_ms": sum(pauses), "collected": sum(e[3] for e in mine),
            "cpu_p99": percentile([e[5] * 1e3 for e in mine], 99),
            "cpu_max": max((e[5] * 1e3 for e in mine), default=float("nan")),
            "media_n": sum(1 for e in mine if e[4]),
            "media_max": max((e[2] * 1e3 for e in mine if e[4]), default=float("nan")),
        }
    return {"label": label, "wall": wall, "gens": per_gen, "types": data["types"], "cycles": data["cycles"],
            "threshold": data["threshold"],
            "jitter": [s["relay_jitter_p99"] for s in steps],
            "ok": all(s["established"] == args.calls and s["hung_up"] == args.calls
                      and not s["lost"] for s in steps),
            "cpu_s": sum(s["step_cpu_s"] for s in steps)}


def report(r: dict[str, Any]) -> str:
    head = (f"{r['label']}: threshold {tuple(r['threshold'])}, {r['wall']:.0f} s, switch CPU "
            f"{r['cpu_s']:.1f} s over the steps, relay-added jitter p99 per step "
            f"{', '.join(f'{j:.2f}' for j in r['jitter'])} ms, calls/media "
            f"{'ok' if r['ok'] else 'NOT ok'}")
    lines = [head]
    for gen, g in r["gens"].items():
        lines.append(f"  gen{gen}: {g['n']:5d} collections ({g['per_s']:6.2f}/s)  pause p50 "
                     f"{g['p50']:6.2f}  p99 {g['p99']:6.2f}  max {g['max']:6.2f} ms  "
                     f"total {g['total_ms']:7.1f} ms  (CPU p99 {g['cpu_p99']:.2f} max "
                     f"{g['cpu_max']:.2f} ms)  collected {g['collected']}; with relays "
                     f"running: {g['media_n']}, max {g['media_max']:6.2f} ms")
    for name, count in r["types"][:40]:
        lines.append(f"    {count:8d} {name}")
    lines += [f"    cycle {c}" for c in r["cycles"]]
    return "\n".join(lines)


def main() -> int:
    if sys.argv[1:2] == ["serve"]:
        return launch(sys.argv[1:])
    sys.path.insert(0, str(ROOT))
    import bench.media_calls as mc

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=["transcode", "relay"], default="relay")
    parser.add_argument("--calls", type=int, default=100, help="calls per wave (default 100)")
    parser.add_argument("--waves", type=int, default=4, help="waves per switch (default 4)")
    parser.add_argument("--hold", type=float, default=10.0,
                        help="seconds of media per wave after set-up (default 10)")
    parser.add_argument("--setup-rate", type=float, default=50.0)
    parser.add_argument("--rtp-ports", default="41000-44999")
    parser.add_argument("--no-pin", dest="pin", action="store_false",
                        help="do not pin the switch to the last CPU (pinned by default)")
    parser.add_argument("--base", type=Path, help="another checkout to compare against")
    parser.add_argument("--rounds", type=int, default=1,
                        help="with --base: rounds, alternating which checkout goes first")
    parser.add_argument("--threshold", metavar="T0,T1,T2",
                        help="an experiment: these gc thresholds in the switch (after serve's)")
    parser.add_argument("--types", action="store_true",
                        help="count the types of what each collection found unreachable")
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()}", flush=True)
    payloads = {name: mc.speechlike_payloads(name) for name in ("PCMA", "G729")}
    runs = [("after", ROOT)] if args.base is None else [("before", args.base.resolve()),
                                                         ("after", ROOT)]
    with tempfile.TemporaryDirectory(prefix="gc-pauses-") as tmp:
        for round_ in range(args.rounds):
            order = runs if round_ % 2 == 0 else runs[::-1]
            for label, code in order:
                print(report(one_run(label, code, args, payloads, Path(tmp))), flush=True)
    print(f"load average at end: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
