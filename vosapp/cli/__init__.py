"""``vosapp`` command line: ``vosapp [--config FILE] [--data-dir DIR] COMMAND ...``.

The command line is this package and nothing else: one module per command group, listed in
:data:`COMMAND_MODULES`. Each module exposes ``register(subparsers)``, adds its sub-command(s)
with ``subparsers.add_parser(...)`` and sets ``func(args) -> int`` on each leaf parser
(``parser.set_defaults(func=run)``). The domain packages below (params, store, switch, io...)
return data and raise; only these modules format, print and choose the exit status, and
nothing below ``vosapp.cli`` imports it (tests/test_layering.py).

To add a command, write ``vosapp/cli/<name>.py`` with ``register`` and add ONE line to
:data:`COMMAND_MODULES` below. Helpers for the global options (which config file, which data
directory, the store, the effective parameters) and for tables are in
:mod:`vosapp.cli.common`. ``python -m vosapp.cli`` runs :func:`main` (see ``__main__.py``).

Errors: a :class:`~vosapp.errors.VosappError` (bad value, bad config, damaged store) or a
usage error prints one line on stderr and exits 2. ``--help`` works on every command.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from vosapp.cli.common import GLOBAL_OPTIONS_HELP, OneLineErrorParser, add_global_options
from vosapp.errors import VosappError

# One line per command module, in the order they appear in `vosapp --help`.
COMMAND_MODULES: list[str] = [
    "vosapp.cli.params",    # vosapp params list|get|set|reset|history|doc
    "vosapp.cli.config",    # vosapp config check FILE
    "vosapp.cli.lab",       # vosapp lab
    "vosapp.cli.auth",      # vosapp auth events|suspended|unsuspend
    "vosapp.cli.status",    # vosapp status (upstream registrations)
    "vosapp.cli.bindings",  # vosapp bindings (registered phones)
    "vosapp.cli.serve",     # vosapp serve
    "vosapp.cli.trace",     # vosapp trace export --pcap FILE
    "vosapp.cli.cdr",       # vosapp cdr list
]


def build_parser() -> OneLineErrorParser:
    """The full parser: global options plus every command module's sub-commands."""
    parser = OneLineErrorParser(
        prog="vosapp",
        description="vosapp: a VOS3000-like softswitch lab appliance.",
        epilog=GLOBAL_OPTIONS_HELP,
    )
    add_global_options(parser)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``vosapp`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # --config/--data-dir may come before or after the command: pick them out first.
    global_parser = OneLineErrorParser(prog="vosapp", add_help=False, allow_abbrev=False)
    add_global_options(global_parser)
    global_args, rest = global_parser.parse_known_args(argv)
    parser = build_parser()
    args = parser.parse_args(rest)
    args.config, args.data_dir = global_args.config, global_args.data_dir
    try:
        return int(args.func(args) or 0)
    except VosappError as exc:
        print(f"vosapp: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `vosapp params doc | head`
        sys.stderr.close()
        return 0
