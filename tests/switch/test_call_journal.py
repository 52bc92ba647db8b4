"""The call journal in virtual time: the CDR row written at attempt, answer and end (each
committed before the SIP message it records leaves), refused calls that list no vendor, the
heartbeat, crash recovery (open rows closed at the last heartbeat, BYE on both legs from the
stored dialogs) and the RFC 3326 Reason on the session-expiry BYE."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.switch.b2bua_harness import (
    CALLER,
    SWITCH,
    VENDOR_A,
    VENDOR_B,
    VENDOR_C,
    Caller,
    Vendor,
    make_config,
    start_switch,
    vendor_c_routing,
)
from vosapp.clock import ManualClock
from vosapp.io.virtual import Packet, VirtualEndpoint, VirtualNetwork
from vosapp.sip import Request, Response, parse
from vosapp.store import Store
from vosapp.switch.call import journal
from vosapp.switch.cdr import MIGRATIONS, CdrRecord, CdrWriter, read_cdrs

WALL = 1_700_000_000.0  # ManualClock's default wall time at 0


@pytest.fixture
def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    with Store.open(tmp_path) as opened:
        yield opened


def dialog_rows(store: Store) -> list[tuple[str, int]]:
    return [(r["side"], r["cseq"]) for r in store.query(
        "SELECT side, cseq FROM cdr_dialogs ORDER BY side")]


def spy(endpoint: VirtualEndpoint, seen: list, when, snapshot) -> None:  # type: ignore[no-untyped-def]
    """Record ``snapshot()`` as each message for which ``when(message)`` holds arrives."""
    original = endpoint.on_receive

    def receive(packet: Packet) -> None:
        if when(parse(packet.data)):
            seen.append(snapshot())
        original(packet)

    endpoint.on_receive = receive


# ---------------------------------------------------------------------------- writes


def test_row_is_written_at_attempt_answer_and_end_before_each_message(
        store: Store) -> None:
    net = VirtualNetwork()
    start_switch(net, make_config(), store)
    vendor = Vendor(net, VENDOR_A)
    caller = Caller(net)
    at_invite: list = []
    at_answer: list = []
    at_bye: list = []
    spy(vendor.endpoint, at_invite,
        lambda m: isinstance(m, Request) and m.method == "INVITE", lambda: read_cdrs(store))
    spy(caller.endpoint, at_answer,
        lambda m: isinstance(m, Response) and m.status == 200 and m.cseq.method == "INVITE",
        lambda: (read_cdrs(store), dialog_rows(store)))
    spy(vendor.endpoint, at_bye,
        lambda m: isinstance(m, Request) and m.method == "BYE",
        lambda: (read_cdrs(store), dialog_rows(store)))
    caller.call()
    net.run(1.0)
    # the vendor's INVITE found the row already there, open and unanswered
    [[row]] = at_invite
    assert row["end_time"] is None and row["answer_time"] is None and row["status"] == 0
    assert row["caller"] == "1001" and row["callee"] == "0044123"
    # the caller's 200 found the answer and both legs' dialogs committed
    [([row], dialogs)] = at_answer
    assert row["status"] == 200 and row["answer_time"] is not None and row["end_time"] is None
    assert row["gateways_tried"] == ["vendor-a:200"] and row["media_mode"] == "direct"
    assert dialogs == [("a", journal.CSEQ_BLOCK), ("b", 1 + journal.CSEQ_BLOCK)]
    caller.bye()
    net.run(1.0)
    # the vendor's BYE found the row closed and the dialogs gone
    [([row], dialogs)] = at_bye
    assert row["end_reason"] == "caller hung up" and row["end_time"] >= row["answer_time"]
    assert dialogs == []
    assert len(read_cdrs(store)) == 1


@pytest.mark.parametrize("number, mapping, routing, status", [
    ("99123", "", None, 404),
    ("0044123", 'prefixes = ["0033"]', None, 403),
    ("123", 'codec_mode = "Softswitch specified"\nspecified_codec = "PCMA"', vendor_c_routing(
        'codec_mode = "Softswitch specified"\nspecified_codec = "G729"'), 488),
])
def test_a_call_the_switch_refuses_lists_no_vendor(store: Store, number: str, mapping: str,
                                                    routing: str | None, status: int) -> None:
    net = VirtualNetwork()
    start_switch(net, make_config(mapping=mapping, routing=routing), store)
    vendors = [Vendor(net, address) for address in (VENDOR_A, VENDOR_B, VENDOR_C)]
    caller = Caller(net)
    caller.call(number)
    net.run(1.0)
    assert caller.statuses() == [100, status]
    assert all(vendor.requests == [] for vendor in vendors)
    [row] = read_cdrs(store)
    assert row["status"] == status and row["end_time"] is not None
    assert row["routing_gateway"] is None and row["gateways_tried"] == []


def test_cseq_ceiling_is_raised_before_a_request_would_pass_it(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(journal, "CSEQ_BLOCK", 2)
    net = VirtualNetwork()
    start_switch(net, make_config(), store)
    vendor = Vendor(net, VENDOR_A)
    caller = Caller(net)
    caller.call()
    net.run(1.0)
    assert dialog_rows(store) == [("a", 2), ("b", 3)]
    for _ in range(3):  # relayed on the vendor leg as CSeq 2, 3, 4
        caller.endpoint.send(caller._in_dialog("INFO"), SWITCH)
        net.run(0.5)
    assert [r.cseq.number for r in vendor.requests if r.method == "INFO"] == [2, 3, 4]
    [(_, b_ceiling)] = [row for row in dialog_rows(store) if row[0] == "b"]
    assert b_ceiling >= 4


def test_a_target_refresh_is_saved_and_the_restart_bye_follows_it(tmp_path: Path) -> None:
    before = VirtualNetwork()
    first_store = Store.open(tmp_path)
    start_switch(before, make_config(), first_store)
    Vendor(before, VENDOR_A)
    caller = Caller(before)
    caller.call()
    before.run(1.0)
    refresh = caller._in_dialog("INVITE", body=caller.invite.body)
    refresh.headers.set("Contact", "<sip:1001@10.0.0.2:5070>")  # the caller moved
    caller.endpoint.send(refresh, SWITCH)
    before.run(1.0)
    [(target,)] = first_store.query("SELECT remote_target FROM cdr_dialogs WHERE side = 'a'")
    assert target == "sip:1001@10.0.0.2:5070"
    first_store.close()
    after = VirtualNetwork(clock=ManualClock(wall_origin=WALL + 100.0))
    Vendor(after, VENDOR_A)
    moved = Caller(after)
    with Store.open(tmp_path) as store:
        start_switch(after, make_config(), store)
        after.run(1.0)
    [bye] = moved.requests
    assert str(bye.uri) == "sip:1001@10.0.0.2:5070" and bye.cseq.number > 1


def test_migration_keeps_version_1_rows(store: Store) -> None:
    store.ensure_schema("cdr", MIGRATIONS[:1])
    with store.transaction() as db:
        db.execute("INSERT INTO cdr (call_id, caller, callee, source, gateways_tried, "
                   "setup_time, end_time, duration, status, end_reason) "
                   "VALUES ('old', '1', '2', 'x', '[]', 1.0, 2.0, 0, 486, 'busy')")
    writer = CdrWriter(store)
    assert store.schema_version("cdr") == len(MIGRATIONS)
    record = CdrRecord(call_id="new", caller="1", callee="3", source="y", setup_time=3.0)
    writer.attempted(record)
    [new, old] = read_cdrs(store)
    assert old["call_id"] == "old" and old["status"] == 486 and old["end_time"] == 2.0
    assert new["call_id"] == "new" and new["end_time"] is None and new["id"] > old["id"]


# ---------------------------------------------------------------------------- crash


def crash_config():  # type: ignore[no-untyped-def]
    return make_config(routing=f"""
[[routing_gateway]]
name = "vendor-a"
address = "{VENDOR_A[0]}:{VENDOR_A[1]}"
prefixes = ["0044"]
[[routing_gateway]]
name = "vendor-b"
address = "{VENDOR_B[0]}:{VENDOR_B[1]}"
prefixes = ["0033"]
[[routing_gateway]]
name = "vendor-c"
address = "{VENDOR_C[0]}:{VENDOR_C[1]}"
prefixes = ["0049"]
""")


SECOND_CALLER = (CALLER[0], 5062)
RINGING_CALLER = (CALLER[0], 5064)


def test_restart_closes_open_calls_at_the_last_heartbeat_and_byes_both_legs(
        tmp_path: Path) -> None:
    before = VirtualNetwork()
    first_store = Store.open(tmp_path)
    start_switch(before, crash_config(), first_store)
    vendors = [Vendor(before, VENDOR_A), Vendor(before, VENDOR_B),
               Vendor(before, VENDOR_C, [(0.0, 180)])]  # rings for ever
    callers = [Caller(before), Caller(before, SECOND_CALLER), Caller(before, RINGING_CALLER)]
    for caller, number in zip(callers, ["0044123", "0033123", "0049123"], strict=True):
        caller.call(number)
    before.run(1.0)
    assert [c.statuses()[-1] for c in callers] == [200, 200, 180]
    callers[0].endpoint.send(callers[0]._in_dialog("INFO"), SWITCH)  # vendor-a leg: CSeq 2
    before.run(11.0)  # heartbeats at 0, 5 and 10 s
    # crash: the first switch never runs again (its network's time stands still) and its
    # files close with its process
    first_store.close()
    after = VirtualNetwork(clock=ManualClock(wall_origin=WALL + 100.0))
    store = Store.open(tmp_path)
    new_vendors = [Vendor(after, address) for address in (VENDOR_A, VENDOR_B, VENDOR_C)]
    new_callers = [Caller(after, address) for address in (CALLER, SECOND_CALLER,
                                                          RINGING_CALLER)]
    switch = start_switch(after, crash_config(), store)
    after.run(1.0)
    for old, new, (host, port) in zip(vendors[:2], new_vendors[:2], [VENDOR_A, VENDOR_B],
                                      strict=True):
        [bye] = new.requests
        b_invite = old.invites[0]
        assert bye.method == "BYE" and bye.call_id == b_invite.call_id
        assert bye.from_.tag == b_invite.from_.tag and bye.to.tag == old.tag
        assert str(bye.uri) == f"sip:vendor@{host}:{port}"  # the vendor's Contact
        assert bye.cseq.number > max(r.cseq.number for r in old.requests
                                     if r.from_.tag == b_invite.from_.tag)
    for old, new in zip(callers[:2], new_callers[:2], strict=True):
        [bye] = new.requests
        assert bye.method == "BYE" and bye.call_id == old.invite.call_id
        assert bye.to.tag == old.invite.from_.tag and bye.from_.tag == old.remote_tag
    assert new_vendors[2].requests == [] and new_callers[2].requests == []  # never answered
    rows = {row["callee"]: row for row in read_cdrs(store)}
    for number in ("0044123", "0033123", "0049123"):
        row = rows[number]
        assert row["end_reason"] == "switch restarted"
        assert row["end_time"] == pytest.approx(WALL + 10.0)
    assert rows["0044123"]["status"] == 200
    assert rows["0044123"]["duration"] == pytest.approx(
        WALL + 10.0 - rows["0044123"]["answer_time"])
    assert rows["0049123"]["answer_time"] is None and rows["0049123"]["duration"] == 0
    assert store.query("SELECT COUNT(*) FROM cdr_dialogs")[0][0] == 0
    notes = [r.note for r in switch.trace.records()]
    assert notes.count("restart: BYE on the vendor leg: 200 OK") == 2
    assert notes.count("restart: BYE on the caller leg: 200 OK") == 2
    # the restarted switch keeps its own heartbeat
    assert store.query("SELECT alive_at FROM switch_heartbeat")[0][0] == pytest.approx(
        WALL + 100.0)
    store.close()


def test_a_call_answered_after_the_last_heartbeat_ends_at_its_answer(tmp_path: Path) -> None:
    before = VirtualNetwork()
    first_store = Store.open(tmp_path)
    start_switch(before, crash_config(), first_store)
    Vendor(before, VENDOR_A, [(2.0, 200)])
    Caller(before).call()
    before.run(3.0)  # heartbeat at 0; answered at 2
    first_store.close()
    after = VirtualNetwork(clock=ManualClock(wall_origin=WALL + 100.0))
    store = Store.open(tmp_path)
    start_switch(after, crash_config(), store)
    after.run(1.0)
    [row] = read_cdrs(store)
    assert row["end_time"] == row["answer_time"] == pytest.approx(WALL + 2.0, abs=0.1)
    assert row["duration"] == 0 and row["end_reason"] == "switch restarted"
    store.close()


def test_a_second_switch_on_a_running_ones_data_directory_leaves_its_calls_alone(
        tmp_path: Path) -> None:
    running = VirtualNetwork()
    first_store = Store.open(tmp_path)
    start_switch(running, crash_config(), first_store)
    Vendor(running, VENDOR_A)
    Caller(running).call()
    running.run(1.0)
    other = VirtualNetwork(clock=ManualClock(wall_origin=WALL + 100.0))
    store = Store.open(tmp_path)
    vendor = Vendor(other, VENDOR_A)
    switch = start_switch(other, crash_config(), store)
    other.run(10.0)
    assert vendor.requests == []
    [row] = read_cdrs(store)
    assert row["end_time"] is None and row["answer_time"] is not None
    assert store.query("SELECT alive_at FROM switch_heartbeat")[0][0] < WALL + 100.0
    assert any("another switch uses this data directory" in r.note
               for r in switch.trace.records())
    store.close()
    first_store.close()


# ---------------------------------------------------------------------------- RFC 3326


def test_session_expiry_bye_carries_a_reason_and_a_hangup_bye_does_not(
        store: Store) -> None:
    net = VirtualNetwork()
    start_switch(net, make_config(), store)
    vendor = Vendor(net, VENDOR_A)
    caller = Caller(net)
    caller.call(headers=[("Supported", "timer"), ("Session-Expires", "120")])
    net.run(100.0)  # the caller never refreshes: 120 - min(32, 40) = 88 s
    [to_vendor] = [r for r in vendor.requests if r.method == "BYE"]
    [to_caller] = [r for r in caller.requests if r.method == "BYE"]
    for bye in (to_vendor, to_caller):
        assert bye.headers.get("Reason") == 'SIP;cause=408;text="Session expired"'
    second = Caller(net, SECOND_CALLER)
    vendor.answered = False  # the harness vendor answers once; let it answer again
    second.call()
    net.run(1.0)
    second.bye()
    net.run(1.0)
    last = [r for r in vendor.requests if r.method == "BYE"][-1]
    assert last is not to_vendor and last.headers.get("Reason") is None
