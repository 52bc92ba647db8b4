"""Memory an ended call holds for the 64*T1 after its end (issue #14), on the virtual network.

After a call ends, its INVITE transactions stay 64*T1 (RFC 6026 Timers L and M; 32 s at the
default T1) and so does what late responses need. This places basic calls (the b2bua_cpu
harness: INVITE, 100/180/200, ACK, BYE/200; media proxy Off) one every 0.25 s of virtual
time, so that ~128 ended calls are inside the window at any moment, and reports with
``tracemalloc`` how much more is allocated while they are there than once the window has
passed: the memory per ended call. At R calls/s a live switch holds R * 64*T1 of them.

    PYTHONPATH=. .venv/bin/python bench/ended_call_memory.py       (env: CALLS=400)

Compare two checkouts with the same script: ``PYTHONPATH=<checkout> python
bench/ended_call_memory.py`` (the harness is imported from the checkout on PYTHONPATH).
"""

from __future__ import annotations

import gc
import os
import tempfile
import tracemalloc

from tests.switch.b2bua_harness import (  # type: ignore[import-not-found, unused-ignore]
    VENDOR_A,
    Caller,
    Vendor,
    make_config,
    start_switch,
)
from vosapp.io.virtual import VirtualNetwork
from vosapp.store import Store

ROUTING = f"""
[[routing_gateway]]
name = "vendor-a"
address = "{VENDOR_A[0]}:{VENDOR_A[1]}"
prefixes = ["00"]
media_proxy = "Off"
"""
SPACING = 0.25  # virtual seconds per call: 0.2 to answer, 0.05 after the BYE
WINDOW = 32.0  # 64*T1 at the default T1 (SS_SIP_RESEND_INTERVAL = 500 ms)


def measure(calls: int) -> tuple[float, float, int]:
    """(KB per ended call inside the window, KB still held after it, ended calls in it)."""
    with tempfile.TemporaryDirectory() as data:
        store = Store.open(data)
        net = VirtualNetwork()
        switch = start_switch(net, make_config(mapping='media_proxy = "Off"', routing=ROUTING),
                              store)
        vendor = Vendor(net, VENDOR_A)

        # b2bua_cpu.py's loop, repeated rather than moved into the harness: both scripts run
        # against older checkouts' harnesses (PYTHONPATH=<checkout>), which lack new helpers.
        def place(count: int) -> None:
            for _ in range(count):
                caller = Caller(net)
                caller.call("0044123")
                net.run(0.2)
                caller.bye()
                net.run(SPACING - 0.2)
                net.nodes.pop(caller.endpoint.address)
                vendor.invites.clear()
                vendor.requests.clear()
                vendor.responses.clear()
                vendor.answered = False
                vendor.timers.clear()

        place(300)  # warm: memos, trace ring and CDR batches at their steady size
        net.run(WINDOW + 8)
        gc.collect()
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            place(calls)
            gc.collect()
            held = tracemalloc.get_traced_memory()[0] - base
            net.run(WINDOW + 8)  # every transaction of the last calls ended
            gc.collect()
            after = tracemalloc.get_traced_memory()[0] - base
        finally:
            tracemalloc.stop()
        assert not switch.app.b2bua.calls and not switch.app.b2bua.invites
        store.close()
    in_window = int(WINDOW / SPACING)
    return (held - after) / in_window / 1024, after / 1024, in_window


def main() -> None:
    calls = int(os.environ.get("CALLS", "400"))
    per_call, after, in_window = measure(calls)
    print(f"{per_call:.1f} KB per ended call held within 64*T1 ({in_window} ended calls in "
          f"the window after {calls} calls; {after:.0f} KB more than before them once it "
          "passed: trace ring, memos)", flush=True)


if __name__ == "__main__":
    main()
