"""What a flood of unauthenticated requests costs the switch (issue #14, seventeenth round).

N REGISTERs (or INVITEs, ``--method INVITE``) without credentials, each with its own Call-ID
and branch from its own source address (a scanner's or a spoofed flood: the per-source
limiter never trips), fed into the real ``SwitchCore`` with the registrar (and for INVITE the
B2BUA, the caller's mapping gateway asking for digest) on a real SQLite store, on the virtual
network (sans-IO, no sockets; virtual time moves 10 ms every 1,000 requests, so none of the
32 s timers fires). Printed: the resident set before and after, the server transactions held
at the end, and the CPU per request. Every request must be challenged.

Since the seventeenth round such a challenge is sent statelessly (RFC 3261 §26.3.2.4) and
holds no transaction; before, each held one for 64*T1 (Timer J; an INVITE's Timers G and H,
its challenge resent meanwhile), up to ``max_server_transactions`` [20,000], past which the
oldest answered one was forgotten for every new request.

Usage: ``.venv/bin/python bench/unauthenticated_flood.py [--requests N] [--method INVITE]
[--code PATH]``; before and after a change in one run: ``bash bench/code_ab.sh
unauthenticated_flood REV [ROUNDS]`` (REGISTER).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def code_root(argv: list[str]) -> Path:
    """The checkout whose vosapp is measured: ``--code PATH``, else this one."""
    if "--code" in argv[:-1]:
        return Path(argv[argv.index("--code") + 1]).resolve()
    return ROOT


sys.path.insert(0, str(code_root(sys.argv)))

from vosapp.config import parse_config
from vosapp.io.virtual import VirtualNetwork
from vosapp.store import Store

CONFIG = """
[[account]]
user = "alice"
password = "pw"
[[mapping_gateway]]
name = "phones"
accounts = ["alice"]
[[routing_gateway]]
name = "vendor"
address = "10.255.0.9:5060"
prefixes = ["00"]
"""


def resident_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def request(method: str, i: int) -> tuple[bytes, tuple[str, int]]:
    source = (f"172.{16 + (i >> 16 & 15)}.{i >> 8 & 255}.{i & 255}", 5060)
    target = "alice" if method == "REGISTER" else "0044123"
    return (f"{method} sip:{target}@10.0.0.1 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {source[0]}:5060;branch=z9hG4bK-flood-{i};rport\r\n"
            "Max-Forwards: 70\r\nFrom: <sip:alice@10.0.0.1>;tag=1\r\n"
            f"To: <sip:{target}@10.0.0.1>\r\nCall-ID: flood-{i}\r\nCSeq: 1 {method}\r\n"
            "Contact: <sip:alice@10.9.0.1>\r\nContent-Length: 0\r\n\r\n").encode(), source


def flood(requests: int, method: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as data:
        store = Store.open(Path(data))
        net = VirtualNetwork()
        features = ["registrar"] if method == "REGISTER" else ["registrar", "b2bua"]
        switch = net.add_switch(("10.0.0.1", 5060), config=parse_config(CONFIG),
                                store=store, features=features)
        switch.start()
        core = switch.core
        challenges = 0

        def count(data: bytes, destination: object, transport: str) -> None:
            nonlocal challenges
            challenges += data.startswith(b"SIP/2.0 401 ")

        core.attach_sender(count)
        datagrams = [request(method, i) for i in range(requests)]
        before = resident_mb()
        started = time.process_time()
        for i, (datagram, source) in enumerate(datagrams):
            core.receive(datagram, source, "UDP")
            if i % 1000 == 999:
                net.run(0.01)
        cpu = time.process_time() - started
        held, evicted = len(core.transactions.servers), core.transactions.evicted
        store.close()
        # (the code before sent an INVITE's challenge again on Timer G: more than one each)
        if challenges < requests:
            raise SystemExit(f"{challenges} challenges for {requests} {method}s")
        return {"before_mb": before, "after_mb": resident_mb(), "transactions": held,
                "evicted": evicted, "us_per_request": cpu / requests * 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=80_000)
    parser.add_argument("--method", choices=("REGISTER", "INVITE"), default="REGISTER")
    parser.add_argument("--code", metavar="PATH",
                        help="measure the vosapp of another checkout (default: this one)")
    args = parser.parse_args()
    result = flood(args.requests, args.method)
    print(f"{args.requests:,} unauthenticated {args.method}s from distinct addresses "
          f"({code_root(sys.argv)}): RSS {result['before_mb']:.0f} -> "
          f"{result['after_mb']:.0f} MB, {result['transactions']:,.0f} server transactions "
          f"held ({result['evicted']:,.0f} forgotten at the cap), "
          f"{result['us_per_request']:.1f} us CPU per request (python "
          f"{sys.version.split()[0]})")


if __name__ == "__main__":
    main()
