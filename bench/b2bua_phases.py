"""Where a call's switch CPU goes (issue #14): bench/b2bua_cpu.py's virtual calls with coarse
pieces of the switch wrapped in timers (parse, CDR journal, SDP, building, dialogs, trace ...).

Prints, per call, the inclusive wall time of each piece and how often it ran. The pieces
nest (``receive`` holds everything), so the figures do not add up; a wrapper costs ~0.3 us a
call, so only pieces that run a few times per call are wrapped. Pieces used by the phones too
(``Request.build``, ``SDP parse``, ``make_response``) count the phones' calls as well; the
rest are the switch's alone. Compiled code (vosapp/compiled.py: the SIP layer and the switch's
request path) calls its own functions natively, past the wrappers: for every piece, run the
sources (``VOSAPP_PURE_PYTHON=1``).

    PYTHONPATH=. python bench/b2bua_phases.py        (env: CALLS=1000, VOSAPP_PURE_PYTHON=1)
"""

from __future__ import annotations

import collections
import functools
import os
import time
from collections.abc import Callable
from typing import Any

import bench.b2bua_cpu as cpu
from vosapp import trace_ring
from vosapp.io.serve import tune_gc
from vosapp.sip import dialog, sdp
from vosapp.switch import core
from vosapp.switch.call import (
    handler,
    in_dialog,
    journal,
    reliable,
    vendor_leg,
)

spent: collections.Counter[str] = collections.Counter()
counts: collections.Counter[str] = collections.Counter()


def timed(label: str, function: Callable[..., Any]) -> Callable[..., Any]:
    clock = time.perf_counter

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = clock()
        try:
            return function(*args, **kwargs)
        finally:
            spent[label] += clock() - start
            counts[label] += 1

    return wrapper


def wrap_methods(owner: type, names: list[str]) -> None:
    for name in names:
        setattr(owner, name, timed(f"{owner.__name__}.{name}", getattr(owner, name)))


def wrap_classmethod(owner: type, name: str, label: str) -> None:
    function = getattr(owner, name).__func__
    setattr(owner, name, classmethod(timed(label, function)))


def wrap_staticmethod(owner: type, name: str, label: str) -> None:
    setattr(owner, name, staticmethod(timed(label, getattr(owner, name))))


def wrap_function(module: Any, name: str) -> None:
    setattr(module, name, timed(name, getattr(module, name)))


def instrument() -> None:
    wrap_methods(core.SwitchCore, ["receive", "_transmit_message", "make_response"])
    wrap_function(core, "parse")  # the switch's own parse (the phones import theirs)
    # Trace.message is the ring's method, bound per instance (vosapp/trace_ring.py)
    wrap_methods(trace_ring.TraceRing, ["message"])
    wrap_methods(core.Trace, ["event"])
    wrap_methods(journal.CallJournal, ["attempted", "answered", "ended"])
    wrap_methods(core.TransactionLayer, ["send_request", "receive_response", "create_server"])
    wrap_methods(handler.B2bua, ["on_invite", "send_attempt", "_a_response", "_end", "event"])
    wrap_methods(vendor_leg.VendorLeg, ["on_vendor_answer", "_on_provisional",
                                        "_answer_body"])
    wrap_methods(reliable.ReliableProvisionals, ["_vendor_provisional",
                                                 "_provisional_to_caller"])
    wrap_methods(in_dialog.InDialog, ["on_bye", "hangup", "on_ack"])
    wrap_methods(dialog.Dialog, ["create_request"])
    wrap_staticmethod(dialog.Dialog, "from_uac", "Dialog.from_uac")
    wrap_staticmethod(dialog.Dialog, "from_uas", "Dialog.from_uas")
    wrap_staticmethod(dialog.Request, "build", "Request.build (phones too)")
    wrap_classmethod(sdp.SessionDescription, "parse", "SDP parse (phones too)")
    wrap_function(vendor_leg, "checked_answer")
    for name in ("plan_media", "vendor_offer"):
        wrap_function(handler, name)
    wrap_function(handler, "gateway_by_address")
    wrap_function(handler, "resolve")


def main() -> None:
    calls = int(os.environ.get("CALLS", "1000"))
    instrument()
    tune_gc()  # as `vosapp serve` does
    cpu.one_round(200)  # warm-up
    spent.clear()
    counts.clear()
    per_call = cpu.one_round(calls)
    print(f"switch CPU {per_call * 1e6:.0f} us per call (with the wrappers), {calls} calls")
    print("   us/call  runs/call  piece (inclusive wall time)")
    for label, seconds in spent.most_common():
        print(f"{seconds / calls * 1e6:10.1f} {counts[label] / calls:10.1f}  {label}")


if __name__ == "__main__":
    main()
