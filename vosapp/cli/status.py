"""``vosapp status``: the upstream (carrier) registrations of a switch, from another process.

A running ``vosapp serve`` writes one row per upstream registration into its store (table
``outbound_status``, see :mod:`vosapp.switch.outbound`) whenever anything changes; this command
reads those rows from the data directory and says how old they are. A row that still says
"registered" after its expiry means the switch stopped without unregistering (kill -9, or
SS_SIP_USER_AGENT_SEND_UNREGISTER=Off) or is not running: the carrier dropped (or will drop)
the binding at that time.
"""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING

from vosapp.cli import common
from vosapp.cli.common import printed_json_or_nothing, utc

if TYPE_CHECKING:
    from vosapp.switch.outbound import UpstreamStatus


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "status", help="upstream registrations (state, expiry, next refresh, last answer)",
        description="Reads the upstream registration status a running (or stopped) vosapp "
                    "serve wrote into the store of the data directory, with its age.")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=run_status)


def _in(seconds: float) -> str:
    seconds = round(seconds)
    return f"in {seconds} s" if seconds >= 0 else f"{-seconds} s ago"


def describe(row: UpstreamStatus, now: float) -> list[str]:
    """Human lines for one :class:`~vosapp.switch.outbound.UpstreamStatus`."""
    state = row.state
    if state in ("registered", "refreshing") and row.expires_at is not None \
            and row.expires_at <= now:
        state += " (lapsed: no refresh since; is the switch running?)"
    lines = [f"{row.gateway}: {state}  {row.aor} via {row.proxy} ({row.transport.lower()})"]
    details = []
    if row.granted_expires is not None and row.expires_at is not None:
        details.append(f"granted {row.granted_expires} s, expires {_in(row.expires_at - now)} "
                       f"({utc(row.expires_at)})")
    if row.next_action and row.next_action_at is not None:
        details.append(f"{row.next_action} {_in(row.next_action_at - now)}")
    if row.last_response:
        details.append(f"last answer {row.last_response}")
    if details:
        lines.append("  " + "; ".join(details))
    if row.last_error:
        lines.append(f"  last error: {row.last_error}")
    lines.append(f"  contact {row.contact}")
    lines.append(f"  Call-ID {row.call_id}, CSeq {row.cseq}; status as of "
                 f"{utc(row.updated_at)} ({_in(row.updated_at - now)})")
    return lines


def run_status(args: argparse.Namespace) -> int:
    from vosapp.switch.outbound import read_status  # only `vosapp status` pays for it

    config = common.load_selected_config(args)
    store = common.open_store(args, config, create=False)
    if store is None:
        rows = []
    else:
        with store:
            rows = read_status(store)
    where = common.data_dir(args, config)
    nothing = "no upstream registrations recorded" + (
        f" in {where}" if where is not None else " (no data directory selected)")
    if printed_json_or_nothing([row.as_dict() for row in rows], as_json=args.json,
                               nothing=nothing):
        return 0
    now = time.time()
    for row in rows:
        print("\n".join(describe(row, now)))
    return 0
