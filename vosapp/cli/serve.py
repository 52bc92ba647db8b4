"""``vosapp serve``: run the switch in the foreground.

``serve`` runs the switch in the foreground, logs to stderr, prints one line
``vosapp listening on HOST:PORT (UDP, TCP)`` on stdout when ready (tests wait for it) and
stops cleanly on SIGINT/SIGTERM, running the stop hooks (docs/behaviour.md §3) before the sockets close.

This module is the command line; the running itself is :func:`vosapp.io.serve.serve`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import TYPE_CHECKING

from vosapp.cli.common import add_global_options, config_path, data_dir, load_selected_config
from vosapp.errors import VosappError

if TYPE_CHECKING:
    from vosapp.io.runtime import Switch


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = subparsers.add_parser("serve", help="run the switch in the foreground",
                                  description=__doc__.split("\n\n")[1])
    add_global_options(serve, suppress=True)
    serve.add_argument("--listen", metavar="HOST:PORT",
                       help="override [switch] sip_listen (port 0 = any free port)")
    serve.add_argument("--udp-only", action="store_true", help="do not listen on TCP")
    serve.add_argument("--trace-store-mb", type=int, default=256, metavar="MB",
                       help="the stored trace keeps its newest MB megabytes (default 256)")
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
    serve.add_argument("--realtime-priority", type=int, metavar="N",
                       help="run under the real-time scheduler (SCHED_RR) at priority N "
                            "(1-99; needs root or CAP_SYS_NICE), so that other work on the "
                            "switch's CPU does not delay relayed media; default: normal")
    serve.add_argument("--log-level", default="INFO",
                       choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    serve.set_defaults(func=run_serve)


def parse_listen(text: str) -> tuple[str, int]:
    """``--listen HOST:PORT`` (ASCII digits, port 0-65535) -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not (port.isascii() and port.isdigit()) or not 0 <= int(port) <= 65535:
        raise VosappError(f"--listen {text!r}: expected HOST:PORT with a port 0-65535")
    return host.strip("[]") or "127.0.0.1", int(port)


def run_serve(args: argparse.Namespace) -> int:
    # Not at module level: every `vosapp` command imports this module.
    import asyncio

    from vosapp.io.serve import ServeOptions, serve

    logging.basicConfig(level=getattr(logging, args.log_level), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not 0 <= args.control_port <= 65535:
        raise VosappError(f"--control-port {args.control_port}: expected 0-65535")
    if args.realtime_priority is not None and not 1 <= args.realtime_priority <= 99:
        raise VosappError(f"--realtime-priority {args.realtime_priority}: expected 1-99")
    from vosapp import compiled

    # which build answers: the figures of docs/benchmarks.md depend on it
    logging.getLogger("vosapp.serve").info("SIP and switch layers: %s", compiled.describe())
    config = load_selected_config(args)
    host, port = parse_listen(args.listen) if args.listen else (None, None)
    options = ServeOptions(
        config=config, host=host, port=port, data_dir=data_dir(args, config),
        transports=("UDP",) if args.udp_only else ("UDP", "TCP"),
        persist_trace=not args.no_trace_store, stop_timeout=args.stop_timeout,
        trace_max_bytes=args.trace_store_mb * 1024 * 1024,
        control_port=args.control_port if args.control else None,
        realtime_priority=args.realtime_priority)
    where = f"{config_path(args)}" if config is not None else "defaults"

    def ready(switch: Switch) -> None:
        host, port = switch.sip_address
        print(f"vosapp listening on {host}:{port} ({', '.join(switch.transports)}) [{where}]",
              flush=True)

    try:
        asyncio.run(serve(options, ready))
    except KeyboardInterrupt:  # a second Ctrl-C during stop
        return 130
    return 0
