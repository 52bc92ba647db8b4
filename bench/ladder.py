"""Live ladder under load: 2,000 SIP messages into a LiveLadder on a running asyncio loop.

Usage::

    .venv/bin/python bench/ladder.py              # in this process (widget without a frontend)
    .venv/bin/python bench/ladder.py --in-kernel  # inside a real IPython kernel (ipykernel),
                                                  # so widget updates go out as comm messages

Kernel responsiveness is measured with a ticker scheduled every 10 ms on the same loop: its
lateness (how long after its due time it ran) is how long the loop was blocked. Each
scenario runs three ways in one process: a baseline (trace and ticker, no ladder), the live
ladder as shipped (at most 25 redraws/s of at most 500 records each, newest 100 rows
shown), and the same ladder
redrawing after every message, which is what batching avoids. Baseline and batched runs are
repeated 5 times, interleaved, and the median (by ticker lateness) is reported.

Scenarios: ``steady`` feeds 2,000 messages as 10 every 10 ms (1,000 msg/s for 2 s);
``burst`` adds all 2,000 in one loop iteration.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from vosapp.lab.ladder import LiveLadder
from vosapp.trace import Trace, TraceRecord

MESSAGES = 2000
TICK_S = 0.010
SWITCH = ("127.0.0.1", 5060)


def sip_records(count: int) -> list[TraceRecord]:
    """``count`` records of REGISTER/401/REGISTER/200 exchanges from 50 phones."""
    records: list[TraceRecord] = []
    for index in range(count):
        phone = (f"192.0.2.{10 + index // 4 % 50}", 5062)
        step = index % 4
        exchange = index // 4
        branch = f"z9hG4bK-{exchange}-{step // 2}"
        cseq = f"{1 + step // 2} REGISTER"
        call_id = f"reg-{exchange % 50}"
        if step in (0, 2):
            start, src, dst, status, direction = "REGISTER sip:lab SIP/2.0", phone, SWITCH, None, "in"
        else:
            start = "SIP/2.0 401 Unauthorized" if step == 1 else "SIP/2.0 200 OK"
            src, dst, status, direction = SWITCH, phone, (401 if step == 1 else 200), "out"
        raw = (f"{start}\r\nVia: SIP/2.0/UDP {phone[0]}:5062;branch={branch}\r\n"
               f"Call-ID: {call_id}\r\nCSeq: {cseq}\r\nContent-Length: 0\r\n\r\n").encode()
        records.append(TraceRecord(index * 0.001, 1.7e9 + index * 0.001, direction, "UDP",
                                   src, dst, raw, "REGISTER", status, call_id, cseq, branch))
    return records


@dataclass
class Result:
    scenario: str
    variant: str
    messages: int
    redraws: int
    max_batch: int
    max_redraw_ms: float
    total_redraw_ms: float
    ticks: int
    max_tick_late_ms: float
    p99_tick_late_ms: float
    elapsed_s: float
    widget_has_comm: bool


async def run_once(scenario: str, variant: str) -> Result:
    """One run: ticker + feeder (+ ladder unless ``variant == 'baseline'``)."""
    loop = asyncio.get_running_loop()
    trace = Trace(MESSAGES + 10)
    live = None
    if variant != "baseline":
        live = LiveLadder(trace, names={SWITCH: "switch"})  # defaults: 25 Hz, 100 rows
        if variant == "unbatched":  # the naive design: redraw for every message
            trace.subscribe(lambda record: live.flush())
    lateness: list[float] = []
    done = asyncio.Event()

    def tick(due: float) -> None:
        lateness.append(loop.time() - due)
        if not done.is_set():
            loop.call_at(due + TICK_S, tick, due + TICK_S)

    started = time.perf_counter()
    loop.call_at(loop.time() + TICK_S, tick, loop.time() + TICK_S)
    records = sip_records(MESSAGES)
    if scenario == "burst":
        for record in records:
            trace.add(record)
    else:
        for first in range(0, MESSAGES, 10):
            for record in records[first:first + 10]:
                trace.add(record)
            await asyncio.sleep(TICK_S)
    # Let the last redraw happen and the ticker run a little longer.
    while live is not None and live.pending:
        await asyncio.sleep(TICK_S)
    await asyncio.sleep(0.2)
    done.set()
    elapsed = time.perf_counter() - started
    if live is not None:
        live.close()
        assert len(live.ladder.arrows) == MESSAGES, len(live.ladder.arrows)
    stats = live.stats if live is not None else None
    comm = getattr(live.widget, "comm", None) if live is not None else None
    # Outside a kernel ipywidgets gives the widget a DummyComm that sends nothing.
    has_comm = comm is not None and type(comm).__name__ != "DummyComm"
    ordered = sorted(lateness)
    return Result(
        scenario=scenario, variant=variant, messages=MESSAGES,
        redraws=stats.flushes if stats else 0,
        max_batch=stats.max_batch if stats else 0,
        max_redraw_ms=1000 * stats.max_flush_s if stats else 0.0,
        total_redraw_ms=1000 * stats.total_flush_s if stats else 0.0,
        ticks=len(lateness),
        max_tick_late_ms=1000 * ordered[-1],
        p99_tick_late_ms=1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
        elapsed_s=elapsed,
        widget_has_comm=has_comm,
    )


async def run_all(repeats: int = 5) -> list[Result]:
    """Every scenario x variant in one process, so the baseline shares the conditions.

    Baseline and batched runs are interleaved ``repeats`` times and the run with the median
    ticker lateness is kept (a busy shared machine preempts the process now and then); the
    unbatched run, 20 s or more, once.
    """
    results = []
    for scenario in ("steady", "burst"):
        runs: dict[str, list[Result]] = {"baseline": [], "batched": []}
        for _ in range(repeats):
            for variant, so_far in runs.items():
                so_far.append(await run_once(scenario, variant))
        for variant, repeated in runs.items():
            repeated.sort(key=lambda result: result.max_tick_late_ms)
            results.append(repeated[len(repeated) // 2])
        results.append(await run_once(scenario, "unbatched"))
    return results


def table(results: list[Result], where: str) -> str:
    lines = [
        f"Where: {where}; python {sys.version.split()[0]}",
        "",
        ("| scenario | variant | run s | redraws | max batch | max redraw ms | total redraw ms"
         " | ticker max late ms | ticker p99 late ms | comm |"),
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.scenario} | {r.variant} | {r.elapsed_s:.2f} | {r.redraws} | {r.max_batch}"
            f" | {r.max_redraw_ms:.1f} | {r.total_redraw_ms:.0f}"
            f" | {r.max_tick_late_ms:.1f} | {r.p99_tick_late_ms:.1f}"
            f" | {'yes' if r.widget_has_comm else '-'} |"
        )
    return "\n".join(lines)


def _in_kernel() -> list[Result]:
    """Run :func:`run_all` inside a fresh ipykernel (top-level await on its own loop)."""
    from jupyter_client.manager import start_new_kernel

    manager, client = start_new_kernel(kernel_name="python3")
    try:
        here = Path(__file__).resolve()
        code = (
            "import json, runpy, sys\n"
            f"sys.path.insert(0, {str(here.parents[1])!r})\n"
            f"bench = runpy.run_path({str(here)!r}, run_name='bench_ladder')\n"
            "results = await bench['run_all']()\n"
            "print('RESULTS' + json.dumps([bench['asdict'](r) for r in results]))\n"
        )
        output: list[str] = []

        def collect(message: dict) -> None:
            content = message.get("content", {})
            if message["msg_type"] == "stream":
                output.append(content["text"])
            elif message["msg_type"] == "error":
                output.append("\n".join(content["traceback"]))

        reply = client.execute_interactive(code, timeout=600, output_hook=collect)
        text = "".join(output)
        if reply["content"]["status"] != "ok" or "RESULTS" not in text:
            raise SystemExit(f"kernel run failed:\n{text}")
        payload = json.loads(text.split("RESULTS", 1)[1].strip().splitlines()[0])
        return [Result(**item) for item in payload]
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--in-kernel", action="store_true",
                        help="run inside a real ipykernel (comm messages included)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    if args.in_kernel:
        results, where = _in_kernel(), "inside an ipykernel (FigureWidget comm messages sent)"
    else:
        results = asyncio.run(run_all())
        where = "plain asyncio loop (FigureWidget without a frontend)"
    if args.json:
        print(json.dumps([asdict(r) for r in results], indent=2))
    else:
        print(table(results, where))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
