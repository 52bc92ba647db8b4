"""vosapp.trace: ring, subscribers, filters, SQLite persistence, pcap that tshark decodes."""

from __future__ import annotations

import dataclasses
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

import vosapp.trace
from vosapp.clock import ManualClock
from vosapp.sip import parse
from vosapp.store import Store
from vosapp.trace import (
    Trace,
    TraceRecord,
    load_records,
    message_fields,
    records_to_json,
    replace,
    sniff_fields,
    write_pcap,
)
from vosapp.trace_ring import WireMessage

A = ("192.0.2.1", 5060)
B = ("198.51.100.2", 5070)


def options(call_id: str = "c1", branch: str = "z9hG4bKt1") -> bytes:
    return (f"OPTIONS sip:{B[0]} SIP/2.0\r\nv: SIP/2.0/UDP {A[0]}:{A[1]};rport;branch={branch}\r\n"
            f"Max-Forwards: 70\r\nf: <sip:a@x>;tag=1\r\nt: <sip:b@x>\r\ni: {call_id}\r\n"
            "CSeq: 7 OPTIONS\r\nContent-Length: 0\r\n\r\n").encode()


def ok(call_id: str = "c1", branch: str = "z9hG4bKt1") -> bytes:
    return (f"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP {A[0]}:{A[1]};branch={branch}\r\n"
            f"From: <sip:a@x>;tag=1\r\nTo: <sip:b@x>;tag=2\r\nCall-ID: {call_id}\r\n"
            "CSeq: 7 OPTIONS\r\nContent-Length: 0\r\n\r\n").encode()


def test_sniff_fields_compact_forms_and_responses() -> None:
    assert sniff_fields(options()) == {"method": "OPTIONS", "cseq": "7 OPTIONS",
                                       "call_id": "c1", "branch": "z9hG4bKt1"}
    fields = sniff_fields(ok())
    assert fields["status"] == 200 and fields["method"] == "OPTIONS"
    assert sniff_fields(b"\x00\xffjunk") == {}


@pytest.fixture
def sniffed(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The bytes vosapp.trace reads a message's fields from, one entry per read."""
    reads: list[bytes] = []

    def counting_sniff(raw: bytes) -> dict[str, object]:
        reads.append(raw)
        return sniff_fields(raw)

    monkeypatch.setattr(vosapp.trace, "sniff_fields", counting_sniff)
    return reads


def test_message_fields_are_read_from_the_bytes_when_first_asked(
        sniffed: list[bytes]) -> None:
    trace = Trace(10)
    trace.message("in", "udp", B, A, ok("lazy"))
    [record] = trace.records()  # built now, from the ring's wire tuple
    assert sniffed == []  # recording a message, or building its record, does not read it
    assert (record.status, record.method, record.call_id, record.cseq, record.branch) == (
        200, "OPTIONS", "lazy", "7 OPTIONS", "z9hG4bKt1")
    assert record.call_id == "lazy" and len(sniffed) == 1  # read once, then kept
    # a lazily read record is an ordinary record: equality, replace, JSON, the filters
    eager = TraceRecord(record.mono, record.wall, "in", "UDP", B, A, ok("lazy"), "OPTIONS", 200,
                        "lazy", "7 OPTIONS", "z9hG4bKt1")
    assert record == eager and replace(record, note="x").note == "x"
    with pytest.raises(dataclasses.FrozenInstanceError):  # filled through its slots' setters
        record.note = "x"  # type: ignore[misc]
    trace.message("out", "UDP", A, B, ok("lazy"))
    assert '"call_id": "lazy"' in records_to_json(trace.records(direction="out"))
    assert trace.records(call_id="lazy", method="OPTIONS", direction="in") == [record]
    with pytest.raises(AttributeError):
        _ = record.nonexistent  # type: ignore[attr-defined]


def test_a_parsed_message_always_sniffs_what_its_parse_says() -> None:
    # Trace.message no longer consults the parse: the bytes of any message parse() accepts
    # (Call-ID is mandatory) yield its fields, even with odd spacing and compact forms.
    for raw in (options(), ok(), options().replace(b"i: c1", b"i  :c1"),
                b"\r\n" + ok().replace(b"CSeq: 7", b"cseq:   7")):
        message = parse(raw)
        assert sniff_fields(raw)["call_id"] == message_fields(message)["call_id"]
        trace = Trace(1)
        trace.message("in", "UDP", B, A, raw)
        assert trace.records()[0].call_id == "c1"


def test_ring_is_bounded_and_subscribers_see_everything() -> None:
    clock = ManualClock()
    trace = Trace(3, clock=clock)
    seen: list[TraceRecord] = []
    unsubscribe = trace.subscribe(seen.append)
    for i in range(5):
        clock.advance(1)
        trace.message("in", "udp", B, A, options(f"c{i}"))
    assert len(trace) == 3 and [r.call_id for r in trace.records()] == ["c2", "c3", "c4"]
    assert len(seen) == 5 and seen[0].mono == 1.0 and seen[0].transport == "UDP"
    unsubscribe()
    trace.event("suspended 1001 for 180 s", src=B)
    assert len(seen) == 5
    assert trace.records(direction="event")[0].note.startswith("suspended")


class SteppedClock(ManualClock):
    """A manual clock whose wall time can be stepped apart from its monotonic time (an NTP
    step)."""

    def __init__(self) -> None:
        super().__init__()
        self.step = 0.0

    def wall(self) -> float:
        return super().wall() + self.step


def test_a_message_is_timed_by_the_wall_offset_read_again_within_a_second() -> None:
    """A message's wall time is its monotonic time plus the clock's offset between the two,
    read again at most WALL_OFFSET_KEPT (1 s) apart: exact while the clocks move together,
    a step of the wall clock shows from the next read on, and another clock is asked at
    once."""
    clock = SteppedClock()
    trace = Trace(20, clock=clock)

    def record(call_id: str) -> TraceRecord:
        trace.message("in", "UDP", B, A, options(call_id))
        return trace.records()[-1]

    first = record("c0")
    assert (first.mono, first.wall) == (clock.now(), clock.wall())
    clock.advance(0.5)
    assert record("c1").wall == clock.wall()
    clock.step = 30.0  # the wall clock stepped: not seen until the offset is read again
    assert record("c2").wall == clock.wall() - 30.0
    clock.advance(0.6)  # 1.1 s after the offset was read
    assert record("c3").wall == clock.wall()
    other = ManualClock(start=5.0, wall_origin=1_800_000_000.0)
    trace.clock = other
    assert record("c4").wall == other.wall()
    assert [r.mono for r in trace.records()] == [0.0, 0.5, 0.5, 1.1, 5.0]


def test_a_record_read_from_the_ring_is_kept_there_and_sniffed_once(
        sniffed: list[bytes]) -> None:
    """The ring holds a message as its wire tuple until a reader asks; the records
    ``records()`` builds replace the tuples, so a second read builds and sniffs nothing."""
    trace = Trace(10)
    for i in range(4):
        trace.message("in", "UDP", B, A, options(f"c{i}"))
    first = trace.records(call_id="c2")
    again = trace.records(call_id="c2")
    assert [r.call_id for r in first] == ["c2"] and again[0] is first[0]
    assert len(sniffed) == 4  # each message once, by the first filtered read
    assert [n for n, _ in trace.numbered_since(0, 10)] == [1, 2, 3, 4]
    assert trace.numbered_since(0, 10)[2][1] is first[0]


def test_records_built_while_the_ring_moves_on_go_back_in_order(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A message added (and an old one pushed out) while a reader builds records: the ring
    keeps the newest ``capacity`` in order, numbered as before, the new one after them."""
    trace = Trace(3)
    for i in range(3):
        trace.message("in", "UDP", B, A, options(f"c{i}"))
    build = vosapp.trace._record
    arrivals = iter([options("c3"), options("c4")])

    def racing_build(held: object) -> TraceRecord:
        raw = next(arrivals, None)
        if raw is not None:  # another thread records a message meanwhile
            trace.message("in", "UDP", B, A, raw)
        return build(held)  # type: ignore[arg-type]

    monkeypatch.setattr(vosapp.trace, "_record", racing_build)
    read = trace.records()
    assert [r.call_id for r in read] == ["c0", "c1", "c2"]  # what the ring held when asked
    monkeypatch.setattr(vosapp.trace, "_record", build)
    assert [r.call_id for r in trace.records()] == ["c2", "c3", "c4"]
    assert trace.records()[0] is read[2]
    assert [(n, r.call_id) for n, r in trace.numbered_since(0, 10)] == [
        (3, "c2"), (4, "c3"), (5, "c4")]


def test_a_subscriber_gets_the_record_the_ring_keeps() -> None:
    trace = Trace(10)
    seen: list[TraceRecord] = []
    trace.subscribe(seen.append)
    trace.message("in", "UDP", B, A, options("s"))
    assert trace.records()[0] is seen[0]


def test_messages_are_held_as_wire_messages_except_while_something_subscribes() -> None:
    """The ring (vosapp/trace_ring.py) holds a message as a WireMessage (one object: its times
    and (host, port) addresses inside it), a record only while a subscriber wants one at once;
    unsubscribed, back to WireMessages. What the socket layer hands it (bytes, or a bytearray
    from a stream) is held as bytes; an address that is not a (host, port) tuple (a list
    after JSON, an IPv6 socket's 4-tuple) makes it hold the message's tuple instead, the
    address a tuple as the socket gave it."""
    trace = Trace(10)
    trace.message("in", "tcp", B, list(A), bytearray(options("t1")))
    held = trace.wire.ring[-1]
    assert type(held) is tuple and type(held[6]) is bytes and held[3] == "TCP"
    assert held[5] == A and type(held[5]) is tuple
    seen: list[TraceRecord] = []
    unsubscribe = trace.subscribe(seen.append)
    trace.message("in", "UDP", B, A, options("t2"))
    assert type(trace.wire.ring[-1]) is TraceRecord and seen[-1].call_id == "t2"
    unsubscribe()
    trace.message("in", "udp", B, A, options("t3"))
    held = trace.wire.ring[-1]
    assert type(held) is WireMessage and len(seen) == 1
    mono, wall, direction, transport, src, dst, raw, note = held.fields()
    assert (direction, transport, src, dst, raw, note) == ("in", "UDP", B, A, options("t3"), "")
    assert (held.mono, held.wall) == (mono, wall) and wall > 1e9
    assert trace.added == 3
    assert [record.call_id for record in trace.records()] == ["t1", "t2", "t3"]
    six = ("2001:db8::1", 5060, 0, 0)  # what an IPv6 socket gives
    trace.message("out", "udp", A, six, options("t4"))
    assert trace.records()[-1].dst == six
    trace.message("in", "UDP", B, A, options("t5"), note="kept")
    last = trace.records()[-1]
    assert (last.src, last.dst, last.transport, last.note, last.call_id) == (
        B, A, "UDP", "kept", "t5")


def test_the_switch_records_a_message_through_compiled_code_when_built() -> None:
    """Compiled, a trace's ``message`` is the ring's compiled method itself: the switch's
    compiled core calls it with no Python frame between (a Python function would make one)."""
    import types

    from vosapp import compiled

    if compiled.why_sources() is not None:
        pytest.skip(f"running from the sources: {compiled.why_sources()}")
    assert type(Trace(10).message) is types.BuiltinMethodType


def test_failing_subscriber_does_not_break_tracing() -> None:
    trace = Trace(10)
    trace.subscribe(lambda record: 1 / 0)
    trace.message("in", "UDP", B, A, options())
    assert len(trace) == 1


def test_filters_by_address_call_id_method_since() -> None:
    clock = ManualClock()
    trace = Trace(100, clock=clock)
    trace.message("in", "UDP", B, A, options("x"))
    trace.message("out", "UDP", A, B, ok("x"))
    clock.advance(5)
    trace.message("in", "UDP", ("203.0.113.9", 5060), A, options("y", "z9hG4bKy"))
    assert len(trace.records(address=B)) == 2
    assert len(trace.records(address="203.0.113.9")) == 1
    assert len(trace.records(address=("203.0.113.9", 9999))) == 0
    assert len(trace.records(call_id="x")) == 2
    assert len(trace.records(method="options")) == 3  # responses carry their CSeq method
    assert [r.call_id for r in trace.records(since=1)] == ["y"]
    with pytest.raises(ValueError):
        Trace(0)


def test_sqlite_persistence_round_trip(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        trace = Trace(10, clock=ManualClock(), store=store)
        trace.batch_size = 2
        trace.message("in", "UDP", B, A, options())
        assert load_records(store) == []  # batched
        trace.message("out", "UDP", A, B, ok())
        trace.event("note", call_id="c1")
        assert trace.flush() == 1
        loaded = load_records(store)
    assert loaded == trace.records()
    with Store.open(tmp_path) as store:
        assert [r.direction for r in load_records(store, limit=2)] == ["out", "event"]


def test_pcap_layout_udp_and_tcp(tmp_path: Path) -> None:
    clock = ManualClock()
    trace = Trace(10, clock=clock)
    trace.message("in", "UDP", B, A, options())
    trace.message("out", "TCP", A, B, ok())
    trace.event("ignored in pcap")
    path = tmp_path / "t.pcap"
    assert trace.export_pcap(path) == 2
    data = path.read_bytes()
    magic, major, minor, _, _, _snaplen, linktype = struct.unpack("<IHHiIII", data[:24])
    assert (magic, major, minor, linktype) == (0xA1B2C3D4, 2, 4, 1)
    caplen = struct.unpack("<IIII", data[24:40])[2]
    frame = data[40:40 + caplen]
    assert frame[12:14] == b"\x08\x00" and frame[23] == 17  # IPv4, UDP
    assert frame.endswith(options())


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
def test_tshark_decodes_udp_tcp_and_ipv6_as_sip(tmp_path: Path) -> None:
    clock = ManualClock()
    trace = Trace(10, clock=clock)
    trace.message("in", "UDP", B, A, options("u"))
    clock.advance(0.25)
    trace.message("out", "UDP", A, B, ok("u"))
    trace.message("in", "TCP", B, A, options("t", "z9hG4bKt2"))
    trace.message("out", "TCP", A, B, ok("t", "z9hG4bKt2"))
    trace.message("in", "UDP", ("2001:db8::1", 5060), ("2001:db8::2", 5060), options("v6"))
    path = tmp_path / "all.pcap"
    write_pcap(path, trace.records())
    result = subprocess.run(["tshark", "-r", str(path), "-Y", "sip", "-T", "fields",
                             "-e", "sip.Call-ID", "-e", "sip.Method", "-e", "sip.Status-Code"],
                            check=False, capture_output=True, text=True, timeout=60)
    rows = [line.split("\t") for line in result.stdout.strip().split("\n")]
    assert [row[0] for row in rows] == ["u", "u", "t", "t", "v6"], result.stdout + result.stderr
    assert rows[1][2] == "200" and rows[2][1] == "OPTIONS"


def test_sqlite_keeps_only_the_newest_records(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        trace = Trace(10, clock=ManualClock(), store=store, max_persisted=3)
        for i in range(5):
            trace.message("in", "UDP", B, A, options(f"c{i}"))
        trace.flush()
        assert [r.call_id for r in load_records(store)] == ["c2", "c3", "c4"]


def test_records_are_numbered_from_one_and_read_by_number_past_the_ring() -> None:
    """Trace.numbered_since, what the control API's trace poll reads (no subscriber per
    record): numbers never repeat, the ring's oldest fall out, ``limit`` caps a read, and a
    cleared ring keeps counting."""
    trace = Trace(capacity=3, clock=ManualClock())
    for index in range(5):
        trace.event(f"e{index}")
    assert trace.added == 5
    assert [(n, r.note) for n, r in trace.numbered_since(0, 10)] == [
        (3, "e2"), (4, "e3"), (5, "e4")]  # 1 and 2 fell out of the ring
    assert [n for n, _ in trace.numbered_since(3, 10)] == [4, 5]
    assert [n for n, _ in trace.numbered_since(2, 1)] == [3]
    assert trace.numbered_since(5, 10) == []
    trace.clear()
    assert trace.numbered_since(0, 10) == []
    trace.event("after")
    assert [(n, r.note) for n, r in trace.numbered_since(5, 10)] == [(6, "after")]


def _trace_indexes(store: Store) -> list[str]:
    return [row[0] for row in store.query(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'trace_records'"
        " AND sql IS NOT NULL")]


def test_the_trace_table_has_no_call_id_index_and_an_old_store_loses_it(
        tmp_path: Path) -> None:
    """Trace schema 3 drops the Call-ID index: with random Call-IDs every record of a batch
    wrote its own index page (5-6 x the log per record, bench/trace_store.py)."""
    with Store.open(tmp_path / "new") as store:
        # A batch is written on the switch's event loop: 64 records hold it ~0.55 ms.
        assert Trace(10, store=store).batch_size == 64
        assert _trace_indexes(store) == []
        assert store.schema_version("trace") == 4
    with Store.open(tmp_path / "old") as store:  # a store an older vosapp wrote (schema 2)
        store.ensure_schema("trace", vosapp.trace._SCHEMA[:2])
        assert _trace_indexes(store) == ["trace_records_call_id"]
    with Store.open(tmp_path / "old") as store:
        trace = Trace(10, clock=ManualClock(), store=store)
        assert _trace_indexes(store) == [] and store.schema_version("trace") == 4
        trace.message("in", "UDP", B, A, options("after"))
        trace.flush()
        assert [r.call_id for r in load_records(store, call_id="after")] == ["after"]


def test_records_of_one_call_id_are_selected_in_sqlite(tmp_path: Path) -> None:
    """``load_records(call_id=)`` (``vosapp trace export --call-id``): that Call-ID's records,
    oldest first, the others never loaded; with ``limit``, those among the newest ``limit``;
    a Call-ID that is not UTF-8 (surrogate escapes, as a parsed message's field carries it;
    stored as its bytes) is found too."""
    odd = b"caf\xe9@x".decode("utf-8", "surrogateescape")
    with Store.open(tmp_path) as store:
        trace = Trace(100, clock=ManualClock(), store=store)
        for call_id in ("a", "b", "a", "odd", "b", "a"):
            if call_id == "odd":
                trace.event("odd", call_id=odd)
            else:
                trace.message("in", "UDP", B, A, options(call_id))
        trace.event("note", call_id="a")
        trace.flush()
        selected = load_records(store, call_id="a")
        assert [r.call_id for r in selected] == ["a"] * 4
        assert selected == [r for r in load_records(store) if r.call_id == "a"]
        assert [r.direction for r in selected] == ["in", "in", "in", "event"]
        assert [r.call_id for r in load_records(store, call_id="a", limit=2)] == ["a", "a"]
        assert load_records(store, call_id="a", limit=3)[0].mono == selected[2].mono
        assert load_records(store, call_id="b", limit=1) == []
        assert [r.note for r in load_records(store, call_id=odd)] == ["odd"]
        assert load_records(store, call_id="none") == []
        queries: list[str] = []
        store._db.set_trace_callback(queries.append)
        load_records(store, call_id="a")
        store._db.set_trace_callback(None)
        assert any("WHERE (call_id = 'a'" in query for query in queries), queries


def _stored_fields(store: Store) -> list[tuple[object, ...]]:
    return [tuple(row) for row in store.query(
        "SELECT direction, method, status, call_id, cseq, branch FROM trace_records ORDER BY id")]


def test_message_rows_are_stored_unsniffed_and_read_from_their_bytes_on_load(
        tmp_path: Path, sniffed: list[bytes]) -> None:
    """Trace schema 4: a message is stored without its five fields, read from the ring or not
    (reading them from the bytes was ~40 % of a stored message's cost on the event loop,
    bench/trace_store.py); a record added with its fields keeps them, an event always does;
    all load back equal, the unsniffed ones read from their bytes."""
    with Store.open(tmp_path) as store:
        trace = Trace(10, clock=ManualClock(), store=store)
        trace.message("in", "UDP", B, A, options("unread"))
        trace.message("out", "UDP", A, B, ok("read"))
        assert trace.records()[-1].status == 200 and len(sniffed) == 1
        # a record with its fields (as the store kept messages before schema 4)
        trace.add(TraceRecord(0.0, 0.0, "in", "UDP", B, A, ok("kept"), **sniff_fields(ok("kept"))))
        trace.event("suspended", call_id="ev", src=B)
        trace.flush()
        assert len(sniffed) == 1  # the insert read no bytes
        assert _stored_fields(store) == [
            ("in", None, None, None, None, None),
            ("out", None, None, None, None, None),  # read from the ring: the row is not
            ("in", "OPTIONS", 200, "kept", "7 OPTIONS", "z9hG4bKt1"),
            ("event", None, None, "ev", None, None)]
        loaded = load_records(store)
        assert loaded == trace.records()
        assert loaded[0].method == "OPTIONS" and loaded[0].call_id == "unread"


def test_call_id_selection_of_unsniffed_rows_confirms_the_bytes(tmp_path: Path) -> None:
    """``load_records(call_id=)`` finds an unsniffed message by a byte search of its raw
    (SQLite ``instr``) and keeps it only when its Call-ID header says so: a message carrying
    the Call-ID elsewhere (a Replaces header, a longer Call-ID) is not selected; the compact
    form ``i:`` and a Call-ID that was not UTF-8 on the wire are found; a row stored with its
    fields (as schema 3 stored every message; here because it was read) is selected by the
    column, as before, in a store upgraded from schema 3."""
    replaces = (b"INVITE sip:b@x SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKr\r\n"
                b"Call-ID: other\r\nCSeq: 1 INVITE\r\nReplaces: abc;to-tag=1;from-tag=2\r\n"
                b"Content-Length: 0\r\n\r\n")
    not_utf8 = ok("x").replace(b"Call-ID: x", b"Call-ID: caf\xe9-1@x")
    with Store.open(tmp_path) as store:
        store.ensure_schema("trace", vosapp.trace._SCHEMA[:3])
        old = Trace(10, clock=ManualClock(), store=store)  # upgrades the store to schema 4
        old.add(TraceRecord(0.0, 0.0, "in", "UDP", B, A, options("abc"),
                            **sniff_fields(options("abc"))))  # stored with its fields
        old.flush()
        assert _stored_fields(store)[0][3] == "abc"
        trace = Trace(10, clock=ManualClock(), store=store)
        for raw in (options("abc"), replaces, options("abcd"), ok("abc"), not_utf8):
            trace.message("in", "UDP", B, A, raw)
        trace.flush()
        assert store.schema_version("trace") == 4
        assert [r.call_id for r in load_records(store)] == [
            "abc", "abc", "other", "abcd", "abc", "caf\ufffd-1@x"]
        selected = load_records(store, call_id="abc")
        assert [r.raw for r in selected] == [options("abc"), options("abc"), ok("abc")]
        assert [r.raw for r in load_records(store, call_id="caf\ufffd-1@x")] == [not_utf8]
        assert [r.raw for r in load_records(store, call_id="abc", limit=3)] == [ok("abc")]
        assert load_records(store, call_id="ab") == []
