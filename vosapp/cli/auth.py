"""``vosapp auth events|suspended|unsuspend``: the authentication audit trail from the shell.

Reads the SQLite store of the data directory (the same file a running ``vosapp serve`` writes),
so it works from another process. ``unsuspend`` marks suspensions as lifted in the store; the
running switch honours that on the terminal's next request (the policy asks the store before
refusing a suspended terminal). The journal (:class:`~vosapp.switch.registrar.SqliteAuthJournal`)
returns rows; this module prints them.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict
from typing import TYPE_CHECKING

from vosapp.cli import common
from vosapp.cli.common import printed_json_or_nothing, utc
from vosapp.errors import VosappError

if TYPE_CHECKING:
    from vosapp.switch.registrar import SqliteAuthJournal

BY = "cli"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    commands = common.command_group(
        subparsers, "auth", help="authentication audit trail and suspensions (docs/behaviour.md §2)",
        description="Failed authentications, suspensions, and lifting them.")

    events = commands.add_parser("events", help="recent failures, drops and suspensions",
                                 description="The audit trail, oldest first.")
    events.add_argument("--limit", type=int, default=50, help="how many rows (default 50)")
    events.add_argument("--user", help="only this user")
    events.add_argument("--address", help="only this source address")
    events.add_argument("--json", action="store_true", help="machine-readable output")
    events.set_defaults(func=run_events)

    suspended = commands.add_parser("suspended", help="terminals suspended right now",
                                    description="Active suspensions (terminal or register).")
    suspended.add_argument("--json", action="store_true", help="machine-readable output")
    suspended.set_defaults(func=run_suspended)

    lift = commands.add_parser("unsuspend", help="lift suspensions of a user or an address",
                               description="Lift every active suspension whose user or "
                                           "source address is TARGET.")
    lift.add_argument("target", metavar="USER|ADDR")
    lift.set_defaults(func=run_unsuspend)


def _journal(args: argparse.Namespace) -> SqliteAuthJournal | None:
    from vosapp.switch.registrar import SqliteAuthJournal  # only `vosapp auth` pays for it

    config = common.load_selected_config(args)
    store = common.open_store(args, config, create=False)
    return None if store is None else SqliteAuthJournal(store)


def run_events(args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise VosappError(f"--limit must be at least 1 (got {args.limit})")
    journal = _journal(args)
    events = [] if journal is None else journal.events(limit=args.limit, user=args.user,
                                                       source_host=args.address)
    if printed_json_or_nothing([asdict(event) for event in events], as_json=args.json,
                               nothing="no authentication events"):
        return 0
    for event in events:
        print(f"{utc(event.wall)}  {event.source_host}:{event.source_port}  "
              f"{event.user or '-'}  {event.method}  {event.reason}"
              + (f"  ({event.detail})" if event.detail else ""))
    return 0


def run_suspended(args: argparse.Namespace) -> int:
    journal = _journal(args)
    now = time.time()
    active = [] if journal is None else journal.active_suspensions(now)
    rows = [{"user": s.user, "address": s.source_host, "scope": s.scope.value,
             "since": s.since_wall, "until": s.until_wall,
             "remaining_s": round(s.until_wall - now), "failures": s.failures} for s in active]
    if printed_json_or_nothing(rows, as_json=args.json, nothing="no suspended terminals"):
        return 0
    for s in active:
        print(f"{s.user or '-'}@{s.source_host}  {s.scope.value}  until {utc(s.until_wall)} "
              f"({round(s.until_wall - now)} s left, {s.failures} failures)")
    return 0


def run_unsuspend(args: argparse.Namespace) -> int:
    journal = _journal(args)
    lifted = 0 if journal is None else journal.lift(args.target, time.time(), by=BY)
    if lifted == 0:
        print(f"no active suspension for {args.target}")
        return 1
    print(f"lifted {lifted} suspension(s) for {args.target}")
    return 0
