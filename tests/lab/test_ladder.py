"""vosapp.lab.ladder: the ladder model, the plotly figure and the live batching logic."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import pytest

from vosapp.clock import ManualClock
from vosapp.lab.ladder import (
    Arrow,
    Ladder,
    LadderError,
    LiveLadder,
    Marker,
    export_html,
    export_image,
    figure,
    format_address,
)
from vosapp.trace import Trace, TraceRecord

PHONE = ("192.0.2.10", 5062)
SWITCH = ("127.0.0.1", 5060)
CARRIER = ("198.51.100.7", 5060)
NAMES = {SWITCH: "switch", "192.0.2.10:5062": "1001"}


def _raw(start_line: str, branch: str, call_id: str, cseq: str, extra: str = "") -> bytes:
    return (
        f"{start_line}\r\nVia: SIP/2.0/UDP 192.0.2.10:5062;branch={branch}\r\n"
        f"Call-ID: {call_id}\r\nCSeq: {cseq}\r\n{extra}Content-Length: 0\r\n\r\n"
    ).encode()


def request(
    t: float, method: str, src=PHONE, dst=SWITCH, *, branch="z9hG4bK-1", call_id="call-1",
    number=1, direction="in", extra="",
) -> TraceRecord:
    cseq = f"{number} {method}"
    raw = _raw(f"{method} sip:switch SIP/2.0", branch, call_id, cseq, extra)
    return TraceRecord(t, 1.7e9 + t, direction, "UDP", src, dst, raw, method, None, call_id,
                       cseq, branch)


def response(
    t: float, status: int, reason: str, method: str, src=SWITCH, dst=PHONE, *,
    branch="z9hG4bK-1", call_id="call-1", number=1, direction="out",
) -> TraceRecord:
    cseq = f"{number} {method}"
    raw = _raw(f"SIP/2.0 {status} {reason}", branch, call_id, cseq)
    return TraceRecord(t, 1.7e9 + t, direction, "UDP", src, dst, raw, method, status,
                       call_id, cseq, branch)


def event(t: float, text: str, **fields) -> TraceRecord:
    return TraceRecord(t, 1.7e9 + t, "event", note=text, **fields)


def registration() -> list[TraceRecord]:
    """REGISTER, 401, REGISTER with credentials, 200 — and a retransmitted 200."""
    return [
        request(0.000, "REGISTER", branch="z9hG4bK-a"),
        response(0.002, 401, "Unauthorized", "REGISTER", branch="z9hG4bK-a"),
        request(0.050, "REGISTER", branch="z9hG4bK-b", number=2, extra="Authorization: x\r\n"),
        response(0.052, 200, "OK", "REGISTER", branch="z9hG4bK-b", number=2),
        response(0.552, 200, "OK", "REGISTER", branch="z9hG4bK-b", number=2),
    ]


# ----------------------------------------------------------------------- model


def test_columns_in_order_of_appearance_with_names() -> None:
    ladder = Ladder(registration(), names=NAMES)
    assert [c.label for c in ladder.columns] == ["1001", "switch"]
    assert [c.address for c in ladder.columns] == [PHONE, SWITCH]
    assert ladder.column_of("switch").index == 1
    assert ladder.column_of("127.0.0.1:5060").label == "switch"


def test_unnamed_columns_say_host_port_and_fixed_order_comes_first() -> None:
    records = [request(0.0, "OPTIONS", src=CARRIER, dst=SWITCH)]
    ladder = Ladder(records, columns=[SWITCH, "[2001:db8::1]:5070"], names={"198.51.100.7": "gw"})
    assert [c.label for c in ladder.columns] == ["127.0.0.1:5060", "[2001:db8::1]:5070",
                                                 "gw:5060"]
    assert format_address(("::1", 5060)) == "[::1]:5060"
    with pytest.raises(LadderError, match="no column for 'nowhere:1'.*127.0.0.1:5060"):
        ladder.column_of("nowhere:1")


def test_arrows_have_direction_label_kind_and_time() -> None:
    ladder = Ladder(registration(), names=NAMES)
    arrows = ladder.arrows
    assert [(a.src, a.dst) for a in arrows] == [(0, 1), (1, 0), (0, 1), (1, 0), (1, 0)]
    assert [a.label for a in arrows] == ["REGISTER", "401 Unauthorized", "REGISTER", "200 OK",
                                         "200 OK"]
    assert [a.kind for a in arrows] == ["request", "failure", "request", "success", "success"]
    assert arrows[1].first_line == "SIP/2.0 401 Unauthorized"
    assert arrows[2].time == pytest.approx(0.050) and ladder.origin == 0.0


def test_transactions_group_branch_and_cseq_method() -> None:
    ladder = Ladder(registration())
    assert len(ladder.transactions) == 2
    first, second = ladder.transactions
    assert (first.branch, first.method, first.final_status) == ("z9hG4bK-a", "REGISTER", 401)
    assert first.arrows == [0, 1]
    assert second.arrows == [2, 3, 4] and second.final_status == 200
    assert [a.transaction for a in ladder.arrows] == [0, 0, 1, 1, 1]


def test_ack_to_a_failure_joins_its_invite_but_a_2xx_ack_does_not() -> None:
    records = [
        request(0.0, "INVITE", branch="z9hG4bK-inv"),
        response(0.1, 486, "Busy Here", "INVITE", branch="z9hG4bK-inv"),
        request(0.2, "ACK", branch="z9hG4bK-inv"),
        request(1.0, "INVITE", branch="z9hG4bK-inv2", call_id="call-2"),
        response(1.1, 200, "OK", "INVITE", branch="z9hG4bK-inv2", call_id="call-2"),
        request(1.2, "ACK", branch="z9hG4bK-ack2", call_id="call-2"),
    ]
    ladder = Ladder(records)
    assert [a.transaction for a in ladder.arrows] == [0, 0, 0, 1, 1, 2]
    assert ladder.transactions[2].method == "ACK"


def test_retransmissions_are_marked_with_their_original() -> None:
    records = registration() + [request(0.6, "REGISTER", branch="z9hG4bK-b", number=2,
                                        extra="Authorization: x\r\n")]
    ladder = Ladder(records)
    flags = [(a.retransmission, a.original) for a in ladder.arrows]
    assert flags == [(False, None), (False, None), (False, None), (False, None), (True, 3),
                     (True, 2)]


def test_same_branch_different_bytes_is_not_a_retransmission() -> None:
    records = [
        request(0.0, "INVITE", branch="z9hG4bK-x"),
        response(0.01, 100, "Trying", "INVITE", branch="z9hG4bK-x"),
        response(0.02, 180, "Ringing", "INVITE", branch="z9hG4bK-x"),
    ]
    assert not any(a.retransmission for a in Ladder(records).arrows)


def test_same_datagram_seen_by_both_ends_is_drawn_once() -> None:
    sent = request(0.0, "REGISTER", direction="out")
    received = request(0.0004, "REGISTER", direction="in")
    resent = request(0.5, "REGISTER", direction="out")
    received_again = request(0.5004, "REGISTER", direction="in")
    ladder = Ladder([sent, received, resent, received_again])
    assert len(ladder.arrows) == 2
    assert [a.retransmission for a in ladder.arrows] == [False, True]
    assert ladder.merged == 2


def test_repeated_keepalive_is_periodic_not_a_retransmission() -> None:
    def hello(t: float, direction: str) -> TraceRecord:
        return TraceRecord(t, 1.7e9 + t, direction, "UDP", SWITCH, PHONE, b"HELLO",
                           note="NAT keep-alive 1001")

    ladder = Ladder([hello(0.0, "out"), hello(0.001, "in"), hello(30.0, "out")])
    assert [(a.label, a.retransmission, a.original) for a in ladder.arrows] == [
        ("HELLO", False, None), ("HELLO", False, None)]
    assert ladder.merged == 1  # the phone's view of the first one


def test_rows_are_time_ordered_even_when_records_arrive_late() -> None:
    ladder = Ladder()
    records = registration()
    for record in (records[0], records[2], records[1], records[4], records[3]):
        ladder.add(record)
    assert [row.time for row in ladder.rows] == sorted(r.mono for r in records)
    assert [a.label for a in ladder.arrows][:2] == ["REGISTER", "401 Unauthorized"]


def test_events_become_markers_on_their_column() -> None:
    records = registration() + [
        event(0.7, "suspended 192.0.2.10 for 180 s", src=PHONE),
        event(0.8, "switch started"),
    ]
    ladder = Ladder(records, names=NAMES)
    markers = ladder.markers
    assert [(m.text, m.column) for m in markers] == [
        ("suspended 192.0.2.10 for 180 s", 0), ("switch started", None)]
    assert isinstance(ladder.rows[-1], Marker) and isinstance(ladder.rows[0], Arrow)
    assert Ladder(records, events=False).markers == []


def test_text_rendering() -> None:
    records = registration() + [event(0.7, "suspended", src=PHONE)]
    assert Ladder(records, names=NAMES).text().splitlines() == [
        "+0.000 s  1001 -> switch  REGISTER  [t0]",
        "+0.002 s  switch -> 1001  401 Unauthorized  [t0]",
        "+0.050 s  1001 -> switch  REGISTER  [t1]",
        "+0.052 s  switch -> 1001  200 OK  [t1]",
        "+0.552 s  switch -> 1001  200 OK (retransmission)  [t1]",
        "+0.700 s  * suspended (1001)",
    ]


# ----------------------------------------------------------------------- filters


def two_calls() -> list[TraceRecord]:
    return [
        request(0.0, "INVITE", branch="z9hG4bK-1", call_id="A"),
        request(0.1, "INVITE", src=SWITCH, dst=CARRIER, branch="z9hG4bK-2", call_id="B",
                direction="out"),
        response(0.2, 200, "OK", "INVITE", src=CARRIER, dst=SWITCH, branch="z9hG4bK-2",
                 call_id="B", direction="in"),
        response(0.3, 200, "OK", "INVITE", branch="z9hG4bK-1", call_id="A"),
        request(0.4, "BYE", branch="z9hG4bK-3", call_id="A", number=2),
        event(0.5, "call A ended", call_id="A"),
    ]


def test_filter_by_call_id() -> None:
    ladder = Ladder(two_calls(), call_id="B")
    assert [a.label for a in ladder.arrows] == ["INVITE", "200 OK"]
    assert [c.address for c in ladder.columns] == [SWITCH, CARRIER]
    assert [m.text for m in Ladder(two_calls(), call_id=["A"]).markers] == ["call A ended"]


def test_filter_by_address_host_port_or_name() -> None:
    by_host = Ladder(two_calls(), address="198.51.100.7")
    assert len(by_host.arrows) == 2
    by_name = Ladder(two_calls(), address="1001", names=NAMES)
    assert {a.call_id for a in by_name.arrows} == {"A"}
    by_port = Ladder(two_calls(), address=("198.51.100.7", 5999))
    assert by_port.arrows == []


def test_filter_by_method_and_time() -> None:
    invites = Ladder(two_calls(), method="invite")
    assert [a.label for a in invites.arrows] == ["INVITE", "INVITE", "200 OK", "200 OK"]
    window = Ladder(two_calls(), since=0.15, until=0.35, events=False)
    assert [a.time for a in window.arrows] == [0.2, 0.3]
    with pytest.raises(LadderError, match="before since"):
        Ladder(since=2, until=1)


def test_retransmission_known_across_a_time_filter() -> None:
    ladder = Ladder(registration(), since=0.5)
    assert [(a.label, a.retransmission) for a in ladder.arrows] == [("200 OK", True)]


def test_bad_records_are_refused_clearly() -> None:
    with pytest.raises(LadderError, match="needs src and dst"):
        Ladder([TraceRecord(0.0, 0.0, "in", "UDP", raw=b"OPTIONS x SIP/2.0", method="OPTIONS")])
    with pytest.raises(LadderError, match="'in', 'out' or 'event'"):
        Ladder([TraceRecord(0.0, 0.0, "sideways", "UDP", PHONE, SWITCH)])
    with pytest.raises(LadderError, match="port in 'host:x' is not a number"):
        Ladder(address="host:x")


# ----------------------------------------------------------------------- figure


def test_figure_has_one_arrow_per_message_and_columns_on_top() -> None:
    fig = figure(Ladder(registration(), names=NAMES), title="registration")
    traces = {trace.name: trace for trace in fig.data}
    assert list(fig.layout.xaxis.ticktext) == ["1001", "switch"]
    assert fig.layout.xaxis.side == "top"
    assert list(traces["labels"].text) == ["REGISTER", "401 Unauthorized", "REGISTER",
                                           "200 OK", "200 OK (retransmission)"]
    # Each arrow is (x0, x1, None); the arrowhead is drawn at its end only.
    assert list(traces["request"].x) == [0, 1, None, 0, 1, None]
    assert list(traces["request"].marker.size) == [0, 11, 0, 0, 11, 0]
    assert list(traces["failure"].x) == [1, 0, None]
    assert list(traces["retransmission"].y) == [4, 4, None]
    assert "transaction #1" in traces["labels"].hovertext[3]
    assert list(fig.layout.yaxis.ticktext)[:2] == ["+0.000", "+0.002"]


def test_figure_layout_keeps_column_names_under_the_title_and_event_texts_inside() -> None:
    # Issue: long column names were rotated up over the title, and an event's text on the
    # last column ran past the right edge of the figure.
    suspended = "auth suspended: user 1001 from 192.0.2.10 for 180 s after 6 failures"
    records = [*registration(), event(0.6, suspended, src=SWITCH),
               event(0.7, "phone event", src=PHONE)]
    names = {SWITCH: "switch (vosapp serve on 127.0.0.1)", "192.0.2.10:5062": "1001"}
    fig = figure(Ladder(records, names=names), title="registration")
    layout = fig.layout

    # Column names stay horizontal, wrapped; the title sits at the very top and the top
    # margin holds the title band plus every line of the tallest name.
    assert layout.xaxis.tickangle == 0
    assert list(layout.xaxis.ticktext) == ["1001", "switch (vosapp<br>serve on<br>127.0.0.1)"]
    assert (layout.title.yref, layout.title.y, layout.title.yanchor) == ("container", 1, "top")
    # A title line (17 px font and its padding), then three lines of 12 px column names.
    assert layout.margin.t >= layout.title.pad.t + 17 + 3 * 12

    # Event texts: written towards the side with more room (left on the last column),
    # wrapped, never clipped at the plot area.
    events = next(trace for trace in fig.data if trace.name == "events")
    assert list(events.x) == [1, 0]
    assert list(events.textposition) == ["middle left", "middle right"]
    assert events.cliponaxis is False
    assert all(len(line) <= 48 for line in events.text[0].split("<br>"))
    assert events.text[0].replace("<br>", " ") == suspended
    assert suspended in events.hovertext[0]


def test_figure_without_title_needs_no_title_band() -> None:
    titled = figure(Ladder(registration(), names=NAMES), title="registration")
    untitled = figure(Ladder(registration(), names=NAMES))
    assert untitled.layout.margin.t < titled.layout.margin.t


def test_figure_keeps_only_the_last_rows_when_asked() -> None:
    fig = figure(Ladder(registration()), max_rows=2)
    assert list(fig.layout.yaxis.tickvals) == [3, 4]


def test_export_html_is_self_contained(tmp_path: Path) -> None:
    path = export_html(Ladder(registration(), names=NAMES), tmp_path / "ladder.html")
    html = path.read_text()
    assert "401 Unauthorized" in html and "plotly" in html and 'src="https://cdn.plot.ly' not in html
    assert len(html) > 1_000_000  # plotly.js is inlined, so it opens offline
    with pytest.raises(LadderError, match=".html"):
        export_html(Ladder(), tmp_path / "ladder.txt")
    with pytest.raises(LadderError, match=".svg or .png"):
        export_image(Ladder(), tmp_path / "ladder.jpg")


# ----------------------------------------------------------------------- live


def test_live_batches_a_burst_into_one_redraw_per_interval() -> None:
    clock = ManualClock()
    trace = Trace(1000)
    live = LiveLadder(trace, scheduler=clock, max_rate_hz=25, widget=False)
    for record in registration():
        trace.add(record)
    assert live.pending == 5 and live.stats.flushes == 0  # nothing drawn synchronously
    clock.advance(0.0)
    assert live.pending == 0 and live.stats.flushes == 1 and live.stats.max_batch == 5
    assert len(live.ladder.arrows) == 5
    # More records right after the redraw wait for the 40 ms interval, then go together.
    trace.add(request(1.0, "OPTIONS", branch="z9hG4bK-o1"))
    clock.advance(0.02)
    trace.add(request(1.1, "OPTIONS", branch="z9hG4bK-o2"))
    assert live.stats.flushes == 1 and live.pending == 2
    clock.advance(0.02)
    assert live.stats.flushes == 2 and live.pending == 0 and live.stats.records == 7


def test_live_never_redraws_faster_than_the_rate() -> None:
    clock = ManualClock()
    trace = Trace(5000)
    live = LiveLadder(trace, scheduler=clock, max_rate_hz=25, widget=False)
    flush_times: list[float] = []
    original = live._draw

    def recording_draw(limit: int | None) -> int:
        flush_times.append(clock.now())
        return original(limit)

    live._draw = recording_draw  # type: ignore[method-assign]
    for i in range(2000):  # one message per millisecond for two seconds
        trace.add(request(i / 1000, "OPTIONS", branch=f"z9hG4bK-{i}", call_id=f"c{i}"))
        clock.advance(0.001)
    clock.advance(1.0)
    gaps = [b - a for a, b in itertools.pairwise(flush_times)]
    assert min(gaps) >= 0.04 - 1e-9
    assert 45 <= live.stats.flushes <= 52  # ~2 s at 25 Hz
    assert live.stats.records == 2000 and len(live.ladder.arrows) == 2000


def test_live_spreads_a_big_burst_over_several_intervals() -> None:
    clock = ManualClock()
    trace = Trace(5000)
    live = LiveLadder(trace, scheduler=clock, max_batch=500, widget=False)
    for i in range(1800):
        trace.add(request(i / 1e6, "OPTIONS", branch=f"z9hG4bK-{i}", call_id=f"c{i}"))
    clock.advance(0.0)
    assert (live.stats.flushes, live.pending) == (1, 1300)
    clock.advance(0.039)
    assert live.stats.flushes == 1
    clock.advance(0.001)
    assert (live.stats.flushes, live.pending) == (2, 800)
    clock.advance(0.08)
    assert (live.stats.flushes, live.pending, live.stats.max_batch) == (4, 0, 500)
    assert len(live.ladder.arrows) == 1800


def test_live_starts_from_existing_records_and_can_refilter_and_close() -> None:
    clock = ManualClock()
    trace = Trace(100)
    for record in two_calls():
        trace.add(record)
    live = LiveLadder(trace, scheduler=clock, widget=False, call_id="A")
    assert len(live.ladder.arrows) == 3
    live.refilter(call_id="B")
    assert [a.call_id for a in live.ladder.arrows] == ["B", "B"]
    live.close()
    trace.add(request(2.0, "OPTIONS", call_id="B", branch="z9hG4bK-late"))
    clock.advance(1.0)
    assert live.pending == 0 and len(live.ladder.arrows) == 2


def test_live_widget_is_updated_in_place() -> None:
    clock = ManualClock()
    trace = Trace(100)
    live = LiveLadder(trace, scheduler=clock, names=NAMES)
    widget = live.widget
    assert widget is not None and list(widget.data[-2].text) == []
    for record in registration():
        trace.add(record)
    clock.advance(0.0)
    assert live.widget is widget
    assert list(widget.layout.xaxis.ticktext) == ["1001", "switch"]
    assert len(widget.data[-2].text) == 5


def test_live_without_a_loop_draws_each_record_at_once() -> None:
    trace = Trace(100)
    live = LiveLadder(trace, widget=False)  # no running asyncio loop in this test
    trace.add(registration()[0])
    assert live.pending == 0 and len(live.ladder.arrows) == 1


def test_live_on_an_asyncio_loop_coalesces() -> None:
    import asyncio

    async def scenario() -> LiveLadder:
        trace = Trace(100)
        live = LiveLadder(trace, widget=False)
        for record in registration():
            trace.add(record)
        assert live.pending == 5
        await asyncio.sleep(0.01)
        return live

    live = asyncio.run(scenario())
    assert live.stats.flushes == 1 and live.stats.max_batch == 5


def test_bad_live_options() -> None:
    with pytest.raises(LadderError, match="max_rate_hz"):
        LiveLadder(Trace(10), max_rate_hz=0, widget=False)
    with pytest.raises(LadderError, match="max_rows"):
        LiveLadder(Trace(10), max_rows=0, widget=False)
    with pytest.raises(LadderError, match="max_batch"):
        LiveLadder(Trace(10), max_batch=0, widget=False)


@pytest.mark.skipif(
    shutil.which("chromium") is None and shutil.which("google-chrome") is None,
    reason="SVG/PNG export needs kaleido and a Chromium (Debian package 'chromium')",
)
def test_export_svg(tmp_path: Path) -> None:
    pytest.importorskip("kaleido", reason="SVG/PNG export needs the kaleido package")
    path = export_image(Ladder(registration(), names=NAMES), tmp_path / "ladder.svg")
    svg = path.read_text()
    assert svg.startswith("<svg") and "401 Unauthorized" in svg and "switch" in svg
