"""``vosapp bindings [--json]``: the phones registered to a switch (RFC 3261 §10.3 bindings).

Reads the registrar's bindings from the store of the data directory (the one a running
``vosapp serve`` writes), so it works from another process: user, contact, the address and
transport the REGISTER came from, seconds until expiry, q and User-Agent. Expired bindings
are not listed (the switch purges them periodically).
"""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING, Any

from vosapp.cli import common
from vosapp.cli.common import print_table, printed_json_or_nothing, utc

if TYPE_CHECKING:
    from vosapp.switch.registrar import Binding


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "bindings", help="registered phones (contact, source, expiry, user agent)",
        description="The live registrations (bindings) in the store of the data directory.")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=run_bindings)


def live_bindings(args: argparse.Namespace, now: float) -> list[Binding]:
    """The bindings alive at ``now``, by user then contact ([] when there is no store)."""
    from vosapp.clock import ManualClock
    from vosapp.switch.registrar import Registrar

    config = common.load_selected_config(args)
    store = common.open_store(args, config, create=False)
    if store is None:
        return []
    with store:
        if store.schema_version("registrar") == 0:  # no phone ever registered here
            return []
        return Registrar(store, ManualClock(wall_origin=now)).all_bindings()


def as_row(binding: Binding, now: float) -> dict[str, Any]:
    return {"user": binding.aor, "contact": binding.contact,
            "source_host": binding.received_host, "source_port": binding.received_port,
            "transport": binding.transport, "expires_in": binding.remaining(now),
            "expires_at": binding.expires_at, "q": binding.q, "user_agent": binding.user_agent,
            "registered_at": binding.registered_at, "call_id": binding.call_id,
            "cseq": binding.cseq}


def run_bindings(args: argparse.Namespace) -> int:
    now = time.time()
    rows = [as_row(binding, now) for binding in live_bindings(args, now)]
    if printed_json_or_nothing(rows, as_json=args.json, nothing="no registered phones"):
        return 0
    table = [["USER", "CONTACT", "RECEIVED FROM", "TRANSPORT", "EXPIRES IN", "Q",
              "USER-AGENT", "REGISTERED"]]
    for row in rows:
        table.append([row["user"], row["contact"], f"{row['source_host']}:{row['source_port']}",
                      row["transport"].upper(), f"{row['expires_in']} s",
                      "-" if row["q"] is None else f"{row['q']:g}", row["user_agent"] or "-",
                      utc(row["registered_at"])])
    print_table(table)
    return 0
