"""Switch CPU per call on the virtual network (issue #14): no sockets, no SIPp, no other
process, so the figure moves far less than bench/calls.sh's and small cuts can be compared.

The caller and vendor of tests/switch/b2bua_harness.py place CALLS basic calls (INVITE,
100/180/200, ACK, BYE/200; media proxy Off; CDRs in a throw-away SQLite store) through
`SwitchCore.receive`; only the time inside the switch's receive is counted (process time).
Prints microseconds of switch CPU per call for each of ROUNDS rounds.

    PYTHONPATH=. python bench/b2bua_cpu.py        (env: CALLS=2000 ROUNDS=3)

Compare two checkouts with the same script: `PYTHONPATH=<checkout> python bench/b2bua_cpu.py`
(the harness is imported from the checkout on PYTHONPATH).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

from tests.switch.b2bua_harness import (  # type: ignore[import-not-found, unused-ignore]
    VENDOR_A,
    Caller,
    Vendor,
    make_config,
    start_switch,
)
from vosapp.io.serve import tune_gc
from vosapp.io.virtual import VirtualNetwork
from vosapp.sip import headers
from vosapp.store import Store

ROUTING = f"""
[[routing_gateway]]
name = "vendor-a"
address = "{VENDOR_A[0]}:{VENDOR_A[1]}"
prefixes = ["00"]
media_proxy = "Off"
"""


def one_round(calls: int) -> float:
    """Switch CPU seconds per call over ``calls`` calls."""
    with tempfile.TemporaryDirectory() as data:
        store = Store.open(data)
        net = VirtualNetwork()
        switch = start_switch(net, make_config(mapping='media_proxy = "Off"', routing=ROUTING),
                              store)
        spent = [0.0]
        receive = switch.core.receive
        # The phones run in this process too: the switch gets parse memos of its own (as in
        # its own process), or it would find what the phones parsed.
        memos = [memo for memo in vars(headers).values() if type(memo).__name__ == "HeaderMemo"]
        switch_side: list[dict[str, object]] = [{} for _ in memos]

        def timed(data: bytes, source: object, transport: str) -> None:
            phone_side = [memo._results for memo in memos]
            for memo, results in zip(memos, switch_side, strict=True):
                memo._results = results
            start = time.process_time()
            receive(data, source, transport, switch.address)  # type: ignore[arg-type]
            spent[0] += time.process_time() - start
            for memo, results in zip(memos, phone_side, strict=True):
                memo._results = results

        # on the virtual switch's arrival, not on SwitchCore.receive: a compiled core's
        # methods cannot be replaced
        switch._arrive = timed  # type: ignore[method-assign]
        vendor = Vendor(net, VENDOR_A)
        for _ in range(calls):
            caller = Caller(net)
            caller.call("0044123")
            net.run(0.2)
            caller.bye()
            net.run(0.05)
            net.nodes.pop(caller.endpoint.address)
            vendor.invites.clear()
            vendor.requests.clear()
            vendor.responses.clear()
            vendor.answered = False
            vendor.timers.clear()
        net.run(40.0)  # let the transactions end
        assert not switch.app.b2bua.calls, "calls left up"
        store.close()
        return spent[0] / calls


def main() -> None:
    calls = int(os.environ.get("CALLS", "2000"))
    rounds = int(os.environ.get("ROUNDS", "3"))
    tune_gc()  # as `vosapp serve` does
    one_round(200)  # warm-up
    for index in range(rounds):
        print(f"round {index + 1}: {one_round(calls) * 1e6:.0f} us switch CPU per call "
              f"({calls} calls)", flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
