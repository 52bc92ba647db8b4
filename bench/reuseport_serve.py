"""`vosapp serve` with SO_REUSEPORT on its UDP socket: a bench-only launcher (issue #14 §3).

Several of these on one port make the kernel spread datagrams over the processes by a hash
of the source address and port, so each worker sees every datagram of the peers hashed to it
(a REGISTER and its retransmissions, the REGISTER with credentials after the 401 from the same
socket). It measures what a second process on the second core would give the registrar; it
is not a product feature: workers share the SQLite store (WAL, busy timeout), but not the
auth policy's per-source counters, the trace, or dialogs (a BYE from the other side of a call
may hash to a worker that never saw the INVITE). See docs/benchmarks.md, "Registrar".

    python bench/reuseport_serve.py serve --listen 127.0.0.1:PORT ...   (vosapp serve's options)
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

if __name__ == "__main__":
    from vosapp.cli import main
    from vosapp.io import udp

    udp.REUSE_PORT = True

    raise SystemExit(main(sys.argv[1:]))
