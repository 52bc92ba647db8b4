"""CLI commands ``vosapp serve`` and ``vosapp trace export`` (a cli.py command module).

``serve`` runs the switch in the foreground, logs to stderr, prints one line
``vosapp listening on HOST:PORT (UDP, TCP)`` on stdout when ready (tests wait for it) and
stops cleanly on SIGINT/SIGTERM, running the stop hooks (docs/behaviour.md §3) before the sockets
close.
"""

from __future__ import annotations

import argparse
import gc
import logging
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from vosapp.cli_common import (
    add_global_options,
    config_path,
    data_dir,
    load_selected_config,
    open_store,
)
from vosapp.errors import VosappError

if TYPE_CHECKING:
    import asyncio

    from vosapp.io.control import ControlServer
    from vosapp.io.runtime import Switch

log = logging.getLogger("vosapp.serve")


def register(subparsers: argparse._SubParsersAction) -> None:
    serve = subparsers.add_parser("serve", help="run the switch in the foreground",
                                  description=__doc__.split("\n\n")[1])
    add_global_options(serve, suppress=True)
    serve.add_argument("--listen", metavar="HOST:PORT",
                       help="override [switch] sip_listen (port 0 = any free port)")
    serve.add_argument("--udp-only", action="store_true", help="do not listen on TCP")
    serve.add_argument("--no-trace-store", action="store_true",
                       help="keep the trace in memory only (not in the SQLite store)")
    serve.add_argument("--stop-timeout", type=float, default=5.0, metavar="S",
                       help="longest wait for graceful stop work, seconds (default 5)")
    serve.add_argument("--control", action=argparse.BooleanOptionalAction, default=True,
                       help="control channel for notebooks (vosapp.lab.attach): HTTP/JSON on "
                            "127.0.0.1, token in <data_dir>/control.json (mode 0600); "
                            "default on")
    serve.add_argument("--control-port", type=int, default=0, metavar="PORT",
                       help="TCP port of the control channel on 127.0.0.1 (default 0 = any)")
    serve.add_argument("--log-level", default="INFO",
                       choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    serve.set_defaults(func=run_serve)

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


def _parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise VosappError(f"--listen {text!r}: expected HOST:PORT with a port 0-65535")
    return host.strip("[]") or "127.0.0.1", int(port)


def run_serve(args: argparse.Namespace) -> int:
    import asyncio  # not at module level: every `vosapp` command imports this module

    logging.basicConfig(level=getattr(logging, args.log_level), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return asyncio.run(_serve(args))
    except KeyboardInterrupt:  # a second Ctrl-C during stop
        return 130


def tune_gc() -> None:
    """A long-running switch keeps many transactions alive for 32 s (Timers J/H/L); with the
    default thresholds CPython's cyclic GC rescans them hundreds of times a second. Move the
    start-up objects out of its sight and collect young objects less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


async def _serve(args: argparse.Namespace) -> int:
    import asyncio

    from vosapp.io.runtime import Switch

    config = load_selected_config(args)
    host = port = None
    if getattr(args, "listen", None):
        host, port = _parse_listen(args.listen)
    try:
        switch = Switch(config=config, host=host, port=port, data_dir=data_dir(args, config),
                        transports=("UDP",) if args.udp_only else ("UDP", "TCP"),
                        persist_trace=not args.no_trace_store, stop_timeout=args.stop_timeout)
        await switch.start()
        tune_gc()
    except OSError as exc:
        raise VosappError(f"cannot listen on {host or '?'}:{port}: {exc}") from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        control = await _start_control(args, switch, stop) if args.control else None
    except VosappError:
        await switch.stop()
        raise
    host, port = switch.sip_address
    where = f"{config_path(args)}" if config is not None else "defaults"
    print(f"vosapp listening on {host}:{port} ({', '.join(switch.transports)}) [{where}]",
          flush=True)
    await stop.wait()
    log.info("stopping (running stop hooks, at most %.1f s)", switch.stop_timeout)
    if control is not None:
        await control.close()
        if switch.data_dir is not None:
            control.remove_file(switch.data_dir)
        control.control.close()
    await switch.stop()
    log.info("stopped")
    return 0


async def _start_control(args: argparse.Namespace, switch: Switch,
                         stop: asyncio.Event) -> ControlServer | None:
    """The control channel (vosapp.io.control); written to <data_dir>/control.json."""
    from vosapp.io.control import ControlServer, SwitchControl

    data = switch.data_dir
    if data is None:
        log.warning("no data directory: control channel off (nowhere to put control.json)")
        return None
    if not 0 <= args.control_port <= 65535:
        raise VosappError(f"--control-port {args.control_port}: expected 0-65535")
    control = SwitchControl(switch, by="control", on_stop=stop.set)
    server = ControlServer(control, port=args.control_port)
    try:
        await server.start()
    except OSError as exc:
        raise VosappError(f"cannot open the control channel on 127.0.0.1:"
                          f"{args.control_port}: {exc}") from None
    path = server.write_file(data)
    log.info("control channel on %s:%d (token in %s)", *server.address, path)
    return server


def run_trace_export(args: argparse.Namespace) -> int:
    from vosapp.trace import filter_records, load_records, write_pcap

    config = load_selected_config(args)
    store = open_store(args, config, create=False)
    if store is None:
        raise VosappError(f"no vosapp store in {data_dir(args, config) or 'any data directory'}"
                          " (give --data-dir DIR or --config FILE of a switch that has run)")
    with store:
        records = load_records(store, limit=args.limit)
    address: str | tuple[str, int] | None = None
    if args.address:
        host, sep, port = args.address.rpartition(":")
        address = (host, int(port)) if sep and port.isdigit() and host else args.address
    selected = list(filter_records(records, address=address, call_id=args.call_id,
                                   method=args.method))
    count = write_pcap(args.pcap, selected)
    print(f"{count} SIP messages written to {args.pcap}")
    return 0
