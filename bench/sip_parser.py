"""Benchmark: SIP parses per second on one core (issue #3 target: >= 50,000/s).

Measures :func:`vosapp.sip.parse` on a typical ~500-byte REGISTER and an INVITE with SDP, and in
the same run a baseline on the same bytes: the standard library's
``email.parser.BytesHeaderParser`` (an RFC 5322 header parser doing less work than a SIP parser:
no start line, no typed validation). Prints a table; ``--markdown`` prints the rows for
docs/benchmarks.md.

    .venv/bin/python bench/sip_parser.py [--seconds 1.0] [--markdown]
"""

from __future__ import annotations

import argparse
import email.parser
import email.policy
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vosapp.sip import parse

REGISTER = (
    b"REGISTER sip:registrar.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: \"Alice 1001\" <sip:1001@registrar.example.com>;tag=a73kszlfl\r\n"
    b"To: \"Alice 1001\" <sip:1001@registrar.example.com>\r\n"
    b"Call-ID: 1j9FpLxk3uxtm8tn@192.0.2.10\r\n"
    b"CSeq: 1826 REGISTER\r\n"
    b"Contact: <sip:1001@192.0.2.10:5060;transport=udp>;expires=3600\r\n"
    b"Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, REFER, NOTIFY\r\n"
    b"Supported: replaces, timer, path\r\n"
    b"User-Agent: LabPhone/4.2.1 (vosapp bench)\r\n"
    b"Expires: 3600\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)

SDP = (
    b"v=0\r\n"
    b"o=1001 3456 3456 IN IP4 192.0.2.10\r\n"
    b"s=call\r\n"
    b"c=IN IP4 192.0.2.10\r\n"
    b"t=0 0\r\n"
    b"m=audio 40000 RTP/AVP 0 8 18 101\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:18 G729/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-16\r\n"
    b"a=ptime:20\r\n"
    b"a=sendrecv\r\n"
)

INVITE = (
    b"INVITE sip:13800138000@192.0.2.1:5060 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKnashds8;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: \"Alice\" <sip:1001@192.0.2.1>;tag=1928301774\r\n"
    b"To: <sip:13800138000@192.0.2.1>\r\n"
    b"Call-ID: a84b4c76e66710@192.0.2.10\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:1001@192.0.2.10:5060>\r\n"
    b"Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE\r\n"
    b"Supported: timer, replaces\r\n"
    b"Session-Expires: 600\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: " + str(len(SDP)).encode() + b"\r\n"
    b"\r\n" + SDP
)


def rate(function: Callable[[bytes], object], data: bytes, seconds: float) -> float:
    """Calls per second of ``function(data)``: the best of many 2,000-call rounds within
    ``seconds`` (the best round is the least disturbed by other load on a shared machine,
    the usual ``timeit`` practice)."""
    best = float("inf")
    rounds = 0
    deadline = time.perf_counter() + seconds
    while rounds < 5 or time.perf_counter() < deadline:
        start = time.perf_counter()
        for _ in range(2000):
            function(data)
        best = min(best, time.perf_counter() - start)
        rounds += 1
    return 2000 / best


_BASELINE = email.parser.BytesHeaderParser(policy=email.policy.compat32)


def baseline(data: bytes) -> object:
    """The stdlib RFC 5322 header parser on the header block (after the start line)."""
    return _BASELINE.parsebytes(data.split(b"\r\n", 1)[1])


def parse_and_read(data: bytes) -> object:
    """Parse, then read the typed values a registrar or transaction layer reads (the lazy
    accessors do their work here)."""
    message = parse(data)
    return (message.top_via.branch, message.from_.tag, message.to.uri, message.cseq,
            message.call_id, message.contacts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=1.5, help="time per measurement")
    parser.add_argument("--markdown", action="store_true", help="print markdown table rows")
    args = parser.parse_args()
    rows = []
    cases = (("REGISTER", REGISTER, parse), ("INVITE+SDP", INVITE, parse),
             ("REGISTER + typed reads", REGISTER, parse_and_read))
    for name, data, function in cases:
        function(data)  # validate before timing
        ours = rate(function, data, args.seconds)
        base = rate(baseline, data, args.seconds)
        rows.append((name, len(data), ours, base, ours / base))
    print(f"python {platform.python_version()} on {platform.machine()}, one core")
    print(f"{'message':<24}{'bytes':>7}{'vosapp parse/s':>16}{'email baseline/s':>18}{'ratio':>8}")
    for name, size, ours, base, ratio in rows:
        print(f"{name:<24}{size:>7}{ours:>16,.0f}{base:>18,.0f}{ratio:>8.2f}")
    if args.markdown:
        print()
        print("| message | bytes | vosapp.sip.parse / s | email BytesHeaderParser / s | ratio |")
        print("|---|---:|---:|---:|---:|")
        for name, size, ours, base, ratio in rows:
            print(f"| {name} | {size} | {ours:,.0f} | {base:,.0f} | {ratio:.2f} |")
    target = 50_000
    worst = min(row[2] for row in rows[:2])
    print(f"target >= {target:,}/s: {'met' if worst >= target else 'NOT met'} (worst {worst:,.0f}/s)")


if __name__ == "__main__":
    main()
