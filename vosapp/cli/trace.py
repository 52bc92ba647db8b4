"""``vosapp trace export --pcap FILE``: the SIP trace a switch persisted, as a pcap file
(filters like VOS3000's debug trace: one address, one Call-ID, one method)."""

from __future__ import annotations

import argparse
from pathlib import Path

from vosapp.cli.common import add_global_options, data_dir, load_selected_config, open_store
from vosapp.errors import VosappError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    trace = subparsers.add_parser("trace", help="the persisted SIP trace")
    add_global_options(trace, suppress=True)
    actions = trace.add_subparsers(dest="trace_command", metavar="ACTION")
    actions.required = True
    export = actions.add_parser("export", help="write the persisted trace as pcap")
    add_global_options(export, suppress=True)
    export.add_argument("--pcap", metavar="FILE", type=Path, required=True)
    export.add_argument("--address", metavar="HOST[:PORT]",
                        help="only messages from/to this address (like VOS3000's debug trace)")
    export.add_argument("--call-id", metavar="ID", help="only this Call-ID")
    export.add_argument("--method", metavar="METHOD", help="only this method (and its responses)")
    export.add_argument("--limit", type=int, metavar="N", help="only the newest N records")
    export.set_defaults(func=run_trace_export)


def _address(text: str) -> str | tuple[str, int]:
    """``HOST:PORT`` -> (host, port); anything else (a bare host) stays text."""
    host, sep, port = text.rpartition(":")
    return (host, int(port)) if sep and host and port.isascii() and port.isdigit() else text


def run_trace_export(args: argparse.Namespace) -> int:
    from vosapp.trace import filter_records, load_records, write_pcap

    config = load_selected_config(args)
    store = open_store(args, config, create=False)
    if store is None:
        raise VosappError(f"no vosapp store in {data_dir(args, config) or 'any data directory'}"
                          " (give --data-dir DIR or --config FILE of a switch that has run)")
    with store:
        records = load_records(store, limit=args.limit, call_id=args.call_id)
    address = _address(args.address) if args.address else None
    # the Call-ID was selected by load_records, in SQLite
    selected = list(filter_records(records, address=address, method=args.method))
    count = write_pcap(args.pcap, selected)
    print(f"{count} SIP messages written to {args.pcap}")
    return 0
