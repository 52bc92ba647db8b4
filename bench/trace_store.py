"""What persisting the SIP trace costs per message (``vosapp serve`` without
``--no-trace-store``, the default): the trace table as this checkout writes it (schema 4: a
message's fields are not read from its bytes before the insert), as schema 3 did (each
message's method, status, Call-ID, CSeq and branch read from its bytes and stored) and with
the Call-ID index schema 2 had, in the same run.

The messages are real SIP: a call's seven messages (INVITE with SDP, 100, 180, 200 with SDP,
ACK, BYE, 200) with a Call-ID of their own, ``--calls-in-flight`` calls interleaved as a
switch's legs are, through :meth:`vosapp.trace.Trace.message` into a real SQLite store (WAL,
``synchronous = NORMAL``, as ``vosapp serve`` opens it) in batches of
:attr:`vosapp.trace.Trace.batch_size`. The log is not checkpointed while a pass runs, so its
size is what the pass wrote. Per message and per schema, printed:

- WAL bytes (what the checkpoints must copy and sync afterwards);
- CPU microseconds in ``Trace.message`` and the flushes (the switch's event loop pays them);
- both on a fresh table and on one held at its row cap (``--cap``: each flush also prunes the
  oldest rows, as a lab switch that has run for a while does).

Then the time to read one call's records back from a table of ``--cap`` rows
(:func:`vosapp.trace.load_records` with ``call_id``, as ``vosapp trace export --call-id``
does). Each pass alternates the schemas, ``--rounds`` times; the median is printed. Last, at a
byte budget, the code before the fifteenth round (index, fields read, prune down to 90 %,
batches of 256) against this checkout, every flush timed. Example (docs/benchmarks.md "The
stored trace: no Call-ID index, and pruned a batch at a time" and "Message rows stored
without reading their fields")::

    .venv/bin/python bench/trace_store.py
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vosapp.store import Store
from vosapp.trace import (
    DEFAULT_MAX_PERSISTED_BYTES,
    Trace,
    TraceRecord,
    load_records,
    sniff_fields,
)

A = ("127.0.0.1", 5060)
B = ("127.0.0.1", 5070)
SDP = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       "m=audio 40000 RTP/AVP 8 18 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:18 G729/8000\r\n"
       "a=fmtp:18 annexb=no\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n"
       "a=ptime:20\r\na=sendrecv\r\n")
INDEX = "CREATE INDEX IF NOT EXISTS trace_records_call_id ON trace_records(call_id)"


def call_id_of(n: int) -> str:
    """Call ``n``'s Call-ID: random-looking, as phones and the switch's own legs make them
    (RFC 3261 §8.1.1.4), so consecutive calls sort far apart."""
    return f"{hashlib.blake2b(n.to_bytes(8, 'big'), digest_size=16).hexdigest()}@127.0.0.1"


def call(n: int) -> list[bytes]:
    """One call's messages on one leg."""
    call_id = call_id_of(n)
    common = (f"From: <sip:1001@127.0.0.1>;tag=f{n}\r\nCall-ID: {call_id}\r\n"
              "Contact: <sip:1001@127.0.0.1:5070>\r\n")

    def request(method: str, cseq: int, to_tag: str, body: str = "") -> bytes:
        head = (f"{method} sip:0044123456@127.0.0.1:5060 SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK{n}{method}{cseq};rport\r\n"
                f"Max-Forwards: 70\r\n{common}To: <sip:0044123456@127.0.0.1>{to_tag}\r\n"
                f"CSeq: {cseq} {method}\r\nUser-Agent: bench\r\n")
        kind = "Content-Type: application/sdp\r\n" if body else ""
        return f"{head}{kind}Content-Length: {len(body)}\r\n\r\n{body}".encode()

    def response(status: str, method: str, cseq: int, to_tag: str, body: str = "") -> bytes:
        head = (f"SIP/2.0 {status}\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK{n}{method}{cseq};rport=5070\r\n"
                f"{common}To: <sip:0044123456@127.0.0.1>{to_tag}\r\nCSeq: {cseq} {method}\r\n")
        kind = "Content-Type: application/sdp\r\n" if body else ""
        return f"{head}{kind}Content-Length: {len(body)}\r\n\r\n{body}".encode()

    tag = f";tag=t{n}"
    return [request("INVITE", 1, "", SDP), response("100 Trying", "INVITE", 1, ""),
            response("180 Ringing", "INVITE", 1, tag),
            response("200 OK", "INVITE", 1, tag, SDP), request("ACK", 1, tag),
            request("BYE", 2, tag), response("200 OK", "BYE", 2, tag)]


def messages(count: int, in_flight: int, first_call: int) -> Iterator[bytes]:
    """``count`` messages of calls interleaved ``in_flight`` at a time, round robin."""
    calls = [call(first_call + i) for i in range(in_flight)]
    positions = [0] * in_flight
    following = first_call + in_flight
    sent = 0
    while sent < count:
        for slot in range(in_flight):
            if sent == count:
                return
            yield calls[slot][positions[slot]]
            sent += 1
            positions[slot] += 1
            if positions[slot] == len(calls[slot]):
                calls[slot], positions[slot] = call(following), 0
                following += 1


def wal_size(store: Store) -> int:
    wal = Path(f"{store.path}-wal")
    return wal.stat().st_size if wal.exists() else 0


class Pass:
    """One pass's figures: WAL bytes and CPU µs per message, every flush's wall time (ms),
    and the ms to read one call back."""

    def __init__(self, wal: float, cpu: float, flushes: list[float], read_ms: float) -> None:
        self.wal, self.cpu, self.flushes, self.read_ms = wal, cpu, flushes, read_ms


def one_pass(indexed: bool, *, prefill: int, count: int, in_flight: int, cap: int = 1_000_000,
             budget: int | None = None, headroom: float = 0.0, batch: int | None = None,
             sniffed: bool = False) -> Pass:
    """``count`` messages into a trace table already holding ``prefill``: with the Call-ID
    index or not, at most ``cap`` rows and ``budget`` bytes (pruning ``headroom`` of the
    budget beyond the excess; the code before schema 3 pruned down to 90 %: 0.1), in batches
    of ``batch`` records (default: this checkout's; the code before the fifteenth round's:
    256). ``sniffed``: each message's fields read from its bytes as it is recorded, so the
    insert stores them, as schemas 2 and 3 did (the same read, at record time rather than in
    the flush: the same CPU on the same thread)."""
    with tempfile.TemporaryDirectory(prefix="trace-store-") as work:
        store = Store.open(work)
        try:
            trace = Trace(capacity=1_000, store=store, max_persisted=cap,
                          max_persisted_bytes=budget or DEFAULT_MAX_PERSISTED_BYTES)
            trace.prune_headroom_bytes = int(trace.max_persisted_bytes * headroom)
            if batch:
                trace.batch_size = batch
            if indexed:
                store.query(INDEX)
            src = messages(prefill + count, in_flight, 0)

            def record(raw: bytes) -> None:
                if sniffed:  # a record with its fields read, as schemas 2 and 3 made it
                    trace.add(TraceRecord(time.monotonic(), time.time(), "in", "UDP", B, A, raw,
                                          **sniff_fields(raw)))
                else:
                    trace.message("in", "UDP", B, A, raw)

            for _, raw in zip(range(prefill), src, strict=False):
                record(raw)
            trace.flush()
            store.query("PRAGMA wal_checkpoint(TRUNCATE)")
            store.set_wal_autocheckpoint(0)  # the pass's log is all it wrote
            flushes: list[float] = []
            flush = trace.flush

            def timed_flush() -> int:
                began = time.perf_counter()
                try:
                    return flush()
                finally:
                    flushes.append((time.perf_counter() - began) * 1e3)

            trace.flush = timed_flush  # type: ignore[method-assign]
            began = time.thread_time()
            for raw in src:
                record(raw)
            trace.flush()
            cpu = time.thread_time() - began
            written = wal_size(store)
            store.set_wal_autocheckpoint(1_000)
            wanted = call_id_of((prefill + count) // 7 - in_flight)
            began = time.perf_counter()
            found = load_records(store, call_id=wanted)
            read_ms = (time.perf_counter() - began) * 1e3
            if len(found) != 7:
                raise SystemExit(f"read {len(found)} records of {wanted}, not 7")
        finally:
            store.close()
    return Pass(written / count, cpu / count * 1e6, flushes, read_ms)


def median_pass(passes: list[Pass]) -> Pass:
    flushes = sorted(f for p in passes for f in p.flushes)
    return Pass(statistics.median(p.wal for p in passes),
                statistics.median(p.cpu for p in passes), flushes,
                statistics.median(p.read_ms for p in passes))


def alternate(rounds: int, *settings: dict[str, object], **common: object) -> list[Pass]:
    """Every setting ``rounds`` times, rotating which goes first; the medians, in order."""
    results: list[list[Pass]] = [[] for _ in settings]
    for round_ in range(rounds):
        for step in range(len(settings)):
            which = (round_ + step) % len(settings)
            results[which].append(one_pass(**settings[which], **common))  # type: ignore[arg-type]
    return [median_pass(passes) for passes in results]


def percentile(values: list[float], share: float) -> float:
    return values[min(len(values) - 1, int(len(values) * share))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=50_000, help="messages timed per pass")
    parser.add_argument("--cap", type=int, default=200_000,
                        help="the table's row cap in the capped passes (default 200,000)")
    parser.add_argument("--calls-in-flight", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--budget-mb", type=int, default=64,
                        help="the byte budget of the last passes (default 64; vosapp serve's "
                        "is 256: a prune down to 90 %% deletes 4 x as much there)")
    args = parser.parse_args()
    print(f"{args.messages:,} SIP messages per pass, {args.calls_in_flight} calls in flight, "
          f"median of {args.rounds} alternating rounds (python {sys.version.split()[0]})")
    print()
    print("| table | schema | WAL bytes per message | CPU µs per message "
          "| ms to read one call back |")
    print("|---|---|---:|---:|---:|")
    common = {"count": args.messages, "in_flight": args.calls_in_flight, "cap": args.cap}
    for label, prefill in (("fresh", 0), (f"at its cap of {args.cap:,} rows", args.cap)):
        this, sniffed, indexed = alternate(
            args.rounds, {"indexed": False}, {"indexed": False, "sniffed": True},
            {"indexed": True, "sniffed": True}, prefill=prefill, **common)
        for name, result in (("4: fields not read (this checkout)", this),
                             ("3: fields read and stored", sniffed),
                             ("2: fields read, stored, Call-ID index", indexed)):
            print(f"| {label} | {name} | {result.wal:,.0f} | {result.cpu:.1f} | "
                  f"{result.read_ms:.1f} |")
        print(f"| {label}: 3 / 4 | | {sniffed.wal / this.wal:.2f} | "
              f"{sniffed.cpu / this.cpu:.2f} | |")
        print(f"| {label}: 2 / 3 | | {indexed.wal / sniffed.wal:.2f} | "
              f"{indexed.cpu / sniffed.cpu:.2f} | |", flush=True)
    budget = args.budget_mb * 1024 * 1024
    # Filled to the budget first: the messages above average ~650 bytes, 750 with the row's
    # overhead (vosapp.trace.ROW_OVERHEAD).
    prefill = budget // 750
    print()
    print(f"At the byte budget ({args.budget_mb} MB, `--trace-store-mb`), "
          f"{args.messages:,} messages after {prefill:,}: every flush timed (ms, all rounds)")
    print()
    print("| code | WAL bytes per message | CPU µs per message | flush median | p99 | "
          "longest | flushes over 20 ms |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    before, this = alternate(args.rounds,
                             {"indexed": True, "headroom": 0.1, "batch": 256, "sniffed": True},
                             {"indexed": False, "headroom": 0.0},
                             prefill=prefill, budget=budget, **common)
    for name, result in ((("before the fifteenth round: Call-ID index, fields read, pruned "
                           "down to 90 %, batches of 256"), before),
                         (f"this checkout (batches of {Trace(1).batch_size})", this)):
        times = result.flushes
        print(f"| {name} | {result.wal:,.0f} | {result.cpu:.1f} | "
              f"{statistics.median(times):.1f} | {percentile(times, 0.99):.1f} | "
              f"{times[-1]:.1f} | {sum(t > 20 for t in times)} |", flush=True)


if __name__ == "__main__":
    main()
