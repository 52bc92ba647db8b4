"""vosapp.lab.call_timers: the call-side SS_* timers of notebook 08 in virtual time
(docs/behaviour.md §2.6, §4.2–§4.4)."""

from __future__ import annotations

from itertools import pairwise

import pytest

from vosapp.lab.call_timers import (
    ANSWER,
    CALLER,
    SILENT,
    SWITCH,
    VENDORS,
    call_lab,
    expected_invite_schedule,
    lab_config_text,
    nat_keepalive_lab,
    retransmission_schedule,
)


@pytest.mark.parametrize("t1_ms", [500, 200])
def test_invite_retransmissions_follow_t1_until_timer_b(t1_ms: int) -> None:
    times, lab = retransmission_schedule(t1_ms)
    expected, timer_b = expected_invite_schedule(t1_ms)
    assert times == pytest.approx(expected, abs=1e-3)
    assert len(times) == 7 and timer_b == pytest.approx(64 * t1_ms / 1000)
    assert lab.caller.statuses() == [100, 503]  # the only gateway timed out at Timer B
    assert lab.cdr.end_time - lab.cdr.setup_time == pytest.approx(timer_b, abs=0.05)


def test_invite_timeout_fails_over_to_the_next_gateway() -> None:
    lab = call_lab({"SS_SIP_TIMEOUT_INVITE": 3}, vendors={"vendor-a": SILENT,
                                                          "vendor-b": ANSWER})
    lab.caller.call()
    lab.run(5.0)
    [first] = lab.sent_times("INVITE", "vendor-b")
    assert first - lab.sent_times("INVITE", "vendor-a")[0] == pytest.approx(3.0, abs=0.01)
    assert lab.caller.statuses() == [100, 180, 200]
    lab.caller.bye()
    lab.run(1.0)
    assert lab.cdr.gateways_tried == ["vendor-a:timeout", "vendor-b:200"]


def test_stop_switch_after_invite_timeout_ends_the_call_with_408() -> None:
    lab = call_lab({"SS_SIP_TIMEOUT_INVITE": 3,
                    "SS_SIP_USER_AGENT_STOP_SWITCH_AFTER_INVITE_TIMEOUT": "On"},
                   vendors={"vendor-a": SILENT, "vendor-b": ANSWER})
    lab.caller.call()
    lab.run(5.0)
    assert lab.caller.statuses() == [100, 408]
    assert lab.vendors["vendor-b"].invites == []


@pytest.mark.parametrize("param, script, reason", [
    ("SS_SIP_TIMEOUT_TRYING", [(0.0, 100)], "trying timeout"),
    ("SS_SIP_TIMEOUT_RINGING", [(0.0, 100), (0.1, 180)], "ringing timeout"),
    ("SS_SIP_TIMEOUT_SESSION_PROGRESS", [(0.0, 183, False)], "session progress timeout"),
    ("SS_SIP_TIMEOUT_SESSION_PROGRESS_SDP", [(0.0, 183, True)], "session progress timeout"),
])
def test_progress_timeouts_cancel_the_vendor(param: str, script, reason: str) -> None:  # type: ignore[no-untyped-def]
    lab = call_lab({param: 5}, vendors={"vendor-a": script})
    lab.caller.call()
    lab.run(7.0)
    assert lab.caller.final.status == 408 and lab.cdr.end_reason == reason
    [cancel] = lab.sent_times("CANCEL", "vendor-a")
    assert 5.0 <= cancel <= 5.2
    assert lab.vendors["vendor-a"].methods() == ["INVITE", "CANCEL", "ACK"]


@pytest.mark.parametrize("ttl, segment, refreshes", [(90, 2, [45, 90, 135]),
                                                      (120, 2, [60, 120]),
                                                      (120, 3, [40, 80, 120])])
def test_refresh_every_ttl_over_segment(ttl: int, segment: int, refreshes: list[int]) -> None:
    lab = call_lab({"SS_SIP_SESSION_TTL": ttl, "SS_SIP_SESSION_UPDATE_SEGMENT": segment},
                   session_timers=["vendor-a"])
    lab.caller.call()
    lab.run(max(refreshes) + 1.0)
    [invite] = lab.vendors["vendor-a"].invites
    assert invite.headers.get("Session-Expires") == str(ttl)
    assert lab.sent_times("INVITE", "vendor-a")[1:] == pytest.approx(
        [0.1 + 0.01 * n + t for n, t in enumerate(refreshes)], abs=0.05)
    assert lab.cdr is None


def test_a_vendor_without_session_timers_is_not_refreshed() -> None:
    lab = call_lab({"SS_SIP_SESSION_TTL": 90})
    lab.caller.call()
    lab.run(200.0)
    assert lab.sent_times("INVITE", "vendor-a") == pytest.approx([0.005])
    assert lab.cdr is None


@pytest.mark.parametrize("early, hangup", [("On", 135.1 + 32), ("Off", 90.1 + 90)])
def test_session_refresh_and_early_hangup(early: str, hangup: float) -> None:
    lab = call_lab({"SS_SIP_SESSION_TTL": 90, "SS_SIP_SESSION_TIMEOUT_EARLY_HANGUP": early},
                   session_timers=["vendor-a"])
    lab.caller.call()
    lab.run(100.0)
    refreshes = lab.sent_times("INVITE", "vendor-a")[1:]
    assert refreshes == pytest.approx([45.1, 90.1], abs=0.1)  # 90 / segment 2
    lab.net.blocked.add((SWITCH, VENDORS["vendor-a"]))  # the vendor is gone
    lab.run(100.0)
    [bye] = lab.sent_times("BYE", "caller")
    assert bye == pytest.approx(hangup, abs=0.2)


def test_no_timer_reinvite_reaches_both_legs() -> None:
    lab = call_lab({"SS_SIP_NO_TIMER_REINVITE_INTERVAL": 60})
    lab.caller.call()
    lab.run(125.0)
    assert lab.sent_times("INVITE", "vendor-a")[1:] == pytest.approx([60.1, 120.1], abs=0.1)
    assert lab.sent_times("INVITE", "caller") == pytest.approx([60.1, 120.1], abs=0.1)
    assert lab.cdr is None  # both legs answered: the call lives on


def test_nat_keepalive_period_and_message() -> None:
    nat = nat_keepalive_lab({"SS_SIP_NAT_KEEP_ALIVE_PERIOD": 20,
                             "SS_SIP_NAT_KEEP_ALIVE_MESSAGE": "PING"}).run(65.0)
    got = nat.keepalives()
    assert [data for _, data in got] == [b"PING"] * 3
    assert [b - a for (a, _), (b, _) in pairwise(got)] == \
        pytest.approx([20.0, 20.0])
    assert nat.ladder("keep-alive") is not None


def test_vendor_leg_privacy_pai_and_display_from() -> None:
    lab = call_lab(gateways={"vendor-a": {"display_from": False, "privacy": "Id",
                                          "p_asserted_identity": "From caller"}})
    lab.caller.call(headers=[("Privacy", "none")])
    lab.run(1.0)
    [invite] = lab.vendors["vendor-a"].invites
    assert invite.from_.display is None and invite.from_.uri.user == "1001"
    assert invite.headers.get("Privacy") == "id"
    assert invite.headers.get("P-Asserted-Identity") == f"<sip:1001@{SWITCH[0]}>"
    figure = lab.ladder("privacy")
    assert "caller" in str(figure.layout) and "vendor-a" in str(figure.layout)


def test_config_rejects_an_unknown_gateway() -> None:
    with pytest.raises(ValueError, match="vendor-z"):
        lab_config_text(gateways={"vendor-z": {}})
    assert f'addresses = ["{CALLER[0]}"]' in lab_config_text()
