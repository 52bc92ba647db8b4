"""PRACK / 100rel (RFC 3262) and UPDATE in early dialogs (RFC 3311) on loopback: SIPp caller →
`vosapp serve` → SIPp vendor. Each SIPp exits 0 only when its scenario ran exactly (the checks
are in tests/sipp/call_*100rel*.xml, call_uac_plain_183.xml, call_uas_183.xml)."""

from __future__ import annotations

from pathlib import Path

from test_calls_sipp import pytestmark as sipp_marks
from test_calls_sipp import run_call

pytestmark = sipp_marks


def test_100rel_relayed_end_to_end_with_early_update(tmp_path: Path) -> None:
    # caller Supported: 100rel, vendor reliable 183 (RSeq 1): the caller gets a reliable 183
    # with the switch's RSeq and the early SDP; its PRACK reaches the vendor as RAck 1 1 INVITE;
    # the caller's early UPDATE (with SDP) reaches the vendor and the answer comes back
    [row] = run_call(tmp_path, "call_uac_100rel.xml", ["call_uas_100rel_update.xml"])
    assert row["status"] == 200 and row["end_reason"] == "caller hung up"


def test_100rel_terminated_on_the_vendor_leg(tmp_path: Path) -> None:
    # caller without 100rel: the switch PRACKs the vendor's reliable 183 itself (the vendor
    # scenario requires the PRACK), the caller gets a plain 183 with the early SDP
    [row] = run_call(tmp_path, "call_uac_plain_183.xml", ["call_uas_100rel.xml"])
    assert row["status"] == 200 and row["gateways_tried"] == ["vendor-1:200"]


def test_100rel_terminated_on_the_caller_leg_resent_until_prack(tmp_path: Path) -> None:
    # caller Require: 100rel, vendor without it: the caller gets a reliable 183, resent at T1
    # (0.5 s) while it waits 1.2 s before its PRACK
    [row] = run_call(tmp_path, "call_uac_require_100rel.xml", ["call_uas_183.xml"],
                     uac_args=["-trace_msg"])
    assert row["status"] == 200
    [log] = tmp_path.glob("call_uac_require_100rel_*_messages.log")
    received_183 = log.read_text(errors="replace").count("SIP/2.0 183 ")
    assert received_183 >= 2
