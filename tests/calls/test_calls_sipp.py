"""Loopback calls (docs/behaviour.md §4): SIPp uac (digest for account 1001) → `vosapp serve` → SIPp
uas.

Each SIPp exits 0 only when its scenario ran exactly (tests/sipp/call_*.xml), so "both exited
0" means the switch relayed every message the scenario expects. The CDR is read back with
`vosapp cdr list --json`.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from tests.support import (
    cdr_rows,
    finish_sipp,
    free_port,
    needs_sipp,
    serve,
    write_config,
)
from tests.support.fixtures import SippRunner

pytestmark = [pytest.mark.sipp, needs_sipp]


def calls_config(directory: Path, vendor_ports: list[int], *, mapping: str = "",
                 routing: str = "") -> Path:
    """Account 1001 in mapping gateway "customer" (``mapping``: its settings as TOML lines),
    a routing gateway per vendor port (``routing``: their settings)."""
    routing = "".join(f"""
[[routing_gateway]]
name = "vendor-{i + 1}"
address = "127.0.0.1:{port}"
prefixes = ["00"]
priority = {i + 1}
{routing}
""" for i, port in enumerate(vendor_ports))
    return write_config(directory, {"SS_SIP_TIMEOUT_INVITE": 5}, {"1001": "secret-1001"},
                        name="calls.toml", extra=f"""
[[mapping_gateway]]
name = "customer"
accounts = ["1001"]
{mapping}
{routing}""")


@pytest.fixture
def call(tmp_path: Path, sipp: SippRunner,
         free_ports: Callable[..., list[int]]) -> Callable[..., list[dict]]:
    """``call(uac, uas, spare=[], mapping="", routing="", uac_args=[])``: one SIPp vendor per
    ``uas`` scenario, the switch routing to them (and to the ``spare`` ports) with the gateway
    settings given, the ``uac`` call through it (with ``uac_args`` added to its sipp
    command); returns the CDRs."""
    def run_call(uac: str, uas: list[str], spare: list[int] = (), *, mapping: str = "",
                 routing: str = "", uac_args: Sequence[str] = ()) -> list[dict]:
        ports = free_ports(len(uas))
        config = calls_config(tmp_path, [*ports, *spare], mapping=mapping, routing=routing)
        vendors = [sipp.start(scenario, local_port=port)
                   for scenario, port in zip(uas, ports, strict=True)]
        with serve(config) as switch:
            caller = sipp.start(uac, remote=f"127.0.0.1:{switch.port}", local_port=free_port(),
                                extra=["-s", "0044123", "-au", "1001",
                                       "-ap", "secret-1001", *uac_args])
            finish_sipp(caller, uac, tmp_path)
            for process, name in zip(vendors, uas, strict=True):
                finish_sipp(process, name, tmp_path)
            time.sleep(0.3)
        return cdr_rows(config, tmp_path)
    return run_call


def test_basic_call_with_bye(call: Callable[..., list[dict]]) -> None:
    [row] = call("call_uac.xml", ["call_uas.xml"])
    assert row["status"] == 200 and row["end_reason"] == "caller hung up"
    assert row["account"] == "1001" and row["mapping_gateway"] == "customer"
    assert row["gateways_tried"] == ["vendor-1:200"]
    assert row["caller_codec"] == "PCMA" and row["media_mode"] == "direct"
    assert row["answer_time"] >= row["setup_time"]


def test_busy_does_not_fail_over(call: Callable[..., list[dict]]) -> None:
    # a second vendor is configured; 486 is final for routing, so it must receive nothing
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as second:
        second.bind(("127.0.0.1", 0))
        second.setblocking(False)
        [row] = call("call_uac_busy.xml", ["call_uas_busy.xml"],
                     spare=[second.getsockname()[1]])
        with pytest.raises(BlockingIOError):
            second.recv(65535)
    assert row["status"] == 486 and row["gateways_tried"] == ["vendor-1:486"]


def test_503_fails_over_to_the_second_vendor(call: Callable[..., list[dict]]) -> None:
    [row] = call("call_uac.xml", ["call_uas_503.xml", "call_uas.xml"])
    assert row["status"] == 200
    assert row["gateways_tried"] == ["vendor-1:503", "vendor-2:200"]


def test_cancel(call: Callable[..., list[dict]]) -> None:
    [row] = call("call_uac_cancel.xml", ["call_uas_cancel.xml"])
    assert row["status"] == 487 and row["end_reason"] == "cancelled by caller"


# ---------------------------------------------------------------------------- PRACK / 100rel
# RFC 3262 and UPDATE in early dialogs (RFC 3311); the checks are in the scenarios
# (call_*100rel*.xml, call_uac_plain_183.xml, call_uas_183.xml).


def test_100rel_relayed_end_to_end_with_early_update(call: Callable[..., list[dict]]) -> None:
    # caller Supported: 100rel, vendor reliable 183 (RSeq 1): the caller gets a reliable 183
    # with the switch's RSeq and the early SDP; its PRACK reaches the vendor as RAck 1 1 INVITE;
    # the caller's early UPDATE (with SDP) reaches the vendor and the answer comes back
    [row] = call("call_uac_100rel.xml", ["call_uas_100rel_update.xml"])
    assert row["status"] == 200 and row["end_reason"] == "caller hung up"


def test_100rel_terminated_on_the_vendor_leg(call: Callable[..., list[dict]]) -> None:
    # caller without 100rel: the switch PRACKs the vendor's reliable 183 itself (the vendor
    # scenario requires the PRACK), the caller gets a plain 183 with the early SDP
    [row] = call("call_uac_plain_183.xml", ["call_uas_100rel.xml"])
    assert row["status"] == 200 and row["gateways_tried"] == ["vendor-1:200"]


def test_100rel_terminated_on_the_caller_leg_resent_until_prack(
        call: Callable[..., list[dict]], tmp_path: Path) -> None:
    # caller Require: 100rel, vendor without it: the caller gets a reliable 183, resent at T1
    # (0.5 s) while it waits 1.2 s before its PRACK
    [row] = call("call_uac_require_100rel.xml", ["call_uas_183.xml"], uac_args=["-trace_msg"])
    assert row["status"] == 200
    [log] = tmp_path.glob("call_uac_require_100rel_*_messages.log")
    assert log.read_text(errors="replace").count("SIP/2.0 183 ") >= 2


def test_hold_and_resume_through_the_relay(call: Callable[..., list[dict]]) -> None:
    # call_uas_hold.xml checks a=sendonly/sendrecv on the relay's port with its leg's o= id
    # and version +1, +2; call_uac_hold.xml the same of the switch's answers on its leg
    [row] = call("call_uac_hold.xml", ["call_uas_hold.xml"], routing='media_proxy = "On"')
    assert row["status"] == 200 and row["end_reason"] == "caller hung up"
    assert row["media_mode"] == "relay"


def test_vendor_answer_outside_the_offer_is_refused(call: Callable[..., list[dict]]) -> None:
    # the caller gets 488 with Warning 399 naming both codecs; the vendor ACK and BYE
    [row] = call("call_uac_pcmu_488.xml", ["call_uas_g729_answer.xml"])
    assert row["status"] == 488
    assert "answered G729 to an offer of PCMU" in row["end_reason"]
    assert row["gateways_tried"] == ["vendor-1:200"]


def test_vendor_refusing_pcmu_gets_g729_and_the_relay_transcodes(
        call: Callable[..., list[dict]]) -> None:
    conversion = "allow_codec_conversion = true"
    [row] = call("call_uac_pcmu.xml", ["call_uas_g729_only.xml"], mapping=conversion,
                 routing=conversion + '\nspecified_codec = "G729"')
    assert row["status"] == 200 and row["end_reason"] == "caller hung up"
    assert (row["caller_codec"], row["callee_codec"]) == ("PCMU", "G729")
    assert row["media_mode"] == "transcode"
    assert row["gateways_tried"] == ["vendor-1:488", "vendor-1:200"]
