"""What every ``vosapp`` command shares: the one-line-error parser, the global options
``--config`` / ``--data-dir``, how they resolve to a :class:`Config`, a data directory,
a :class:`Store` and the effective :class:`Params`, and how times and tables are printed.

Resolution order (the same everywhere, documented in ``vosapp --help``):

* config file: ``--config FILE``, else ``$VOSAPP_CONFIG``, else ``./data/lab.toml`` when it
  exists, else none (registry defaults only);
* data directory: ``--data-dir DIR``, else ``$VOSAPP_DATA_DIR``, else the config's
  ``[switch] data_dir``;
* parameter values: registry defaults < config ``[parameters]`` < values set in the store
  (``vosapp params set``, notebooks).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any, NoReturn

from vosapp.config import Config, load_config
from vosapp.errors import VosappError
from vosapp.params import Params
from vosapp.store import DB_FILENAME, Store

GLOBAL_OPTIONS_HELP = (
    "Config file: --config FILE, else $VOSAPP_CONFIG, else ./data/lab.toml if present. "
    "Data directory (SQLite store): --data-dir DIR, else $VOSAPP_DATA_DIR, else the "
    "config's [switch] data_dir. "
    "Both options may also follow the command (vosapp params list --config FILE)."
)
ENV_CONFIG = "VOSAPP_CONFIG"
ENV_DATA_DIR = "VOSAPP_DATA_DIR"
DEFAULT_CONFIG = Path("data") / "lab.toml"


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def add_global_options(parser: argparse.ArgumentParser, *, suppress: bool = False) -> None:
    """``--config`` and ``--data-dir``; ``suppress`` for sub-commands (keeps the top value)."""
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument("--config", metavar="FILE", type=Path, default=default,
                        help="configuration file (TOML); see below for the default")
    parser.add_argument("--data-dir", metavar="DIR", type=Path, default=default,
                        help="directory of the SQLite store (overrides the config's data_dir)")


def command_group(subparsers: argparse._SubParsersAction[argparse.ArgumentParser], name: str,
                  *, help: str, description: str, metavar: str = "SUBCOMMAND"
                  ) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    """``vosapp NAME SUBCOMMAND``: the parser of ``name`` and its required sub-commands
    (``args.NAME_command`` names the one given)."""
    group = subparsers.add_parser(name, help=help, description=description)
    commands = group.add_subparsers(dest=f"{name}_command", metavar=metavar)
    commands.required = True
    return commands


def _option_or_env(args: argparse.Namespace, option: str, env: str) -> Path | None:
    """The path given as ``--option``, else in ``$env``, else None."""
    explicit = getattr(args, option, None)
    if explicit is not None:
        return Path(explicit)
    value = os.environ.get(env)
    return Path(value) if value else None


def config_path(args: argparse.Namespace) -> Path | None:
    """The config file these arguments select, or None when there is none."""
    chosen = _option_or_env(args, "config", ENV_CONFIG)
    if chosen is not None:
        return chosen
    return DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None


def load_selected_config(args: argparse.Namespace) -> Config | None:
    """Load the selected config (ConfigError when it is broken), or None when none."""
    path = config_path(args)
    return load_config(path) if path is not None else None


def data_dir(args: argparse.Namespace, config: Config | None) -> Path | None:
    chosen = _option_or_env(args, "data_dir", ENV_DATA_DIR)
    if chosen is not None:
        return chosen
    return config.switch.data_dir if config is not None else None


def open_store(args: argparse.Namespace, config: Config | None, *, create: bool) -> Store | None:
    """The store of the selected data directory.

    ``create=False`` (read-only commands) returns None when there is no store yet, so that
    listing parameters never creates files; ``create=True`` makes it, or raises when no
    data directory is selected at all.
    """
    directory = data_dir(args, config)
    if directory is None:
        if create:
            raise VosappError("no data directory: pass --data-dir DIR or --config FILE "
                              f"(or set ${ENV_CONFIG})")
        return None
    if not create and not (directory / DB_FILENAME).exists():
        return None
    return Store.open(directory)


def base_params(config: Config | None) -> Params:
    """Registry defaults with the config file's ``[parameters]`` applied."""
    return config.parameters if config is not None else Params.defaults()


def utc(wall: float | None) -> str:
    """A Unix time as ``2026-01-31 12:00:00Z`` (``-`` for none)."""
    if wall is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(wall)) + "Z"


def printed_json_or_nothing(rows: list[Any], *, as_json: bool, nothing: str) -> bool:
    """``--json``: print ``rows`` as JSON; no rows: print ``nothing``. True when that was
    all there is to print (the caller's text output is then skipped)."""
    if as_json:
        print(json.dumps(rows, indent=1))
        return True
    if not rows:
        print(nothing)
        return True
    return False


def print_table(rows: list[list[str]]) -> None:
    """Left-aligned columns, two spaces apart; the first row is the header."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
              .rstrip())
