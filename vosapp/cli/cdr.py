"""``vosapp cdr list [--limit N] [--json]``: the call detail records a switch wrote (docs/behaviour.md §4),
newest first, read from the store of the data directory (:func:`vosapp.switch.cdr.read_cdrs`).
"""

from __future__ import annotations

import argparse
from typing import Any

from vosapp.cli import common
from vosapp.cli.common import printed_json_or_nothing, utc


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("cdr", help="call detail records",
                                   description="Call detail records written by vosapp serve.")
    commands = parser.add_subparsers(dest="cdr_command", required=True)
    listing = commands.add_parser("list", help="list CDRs, newest first")
    listing.add_argument("--limit", type=int, default=50, help="at most N rows (default 50)")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(func=run_list)


def run_list(args: argparse.Namespace) -> int:
    from vosapp.switch.cdr import read_cdrs  # only `vosapp cdr` pays for it

    config = common.load_selected_config(args)
    store = common.open_store(args, config, create=False)
    rows: list[dict[str, Any]] = []
    if store is not None:
        with store:
            rows = read_cdrs(store, args.limit)
    if printed_json_or_nothing(rows, as_json=args.json, nothing="no call detail records"):
        return 0
    for row in rows:
        tried = ", ".join(row["gateways_tried"]) or "-"
        phone = f" (phone {row['callee_account']})" if row["callee_account"] else ""
        print(f"{utc(row['setup_time'])} {row['caller']} -> {row['callee']}{phone}: "
              f"{row['status']} {row['end_reason']} ({row['duration']:.1f} s)")
        print(f"  via {row['mapping_gateway'] or '-'} -> {tried}; codecs "
              f"{row['caller_codec'] or '-'}/{row['callee_codec'] or '-'} "
              f"media {row['media_mode'] or '-'}; dtmf {row['dtmf_method'] or '-'}; "
              f"Call-ID {row['call_id']}")
    return 0
