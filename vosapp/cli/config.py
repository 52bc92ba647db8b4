"""``vosapp config check FILE``: validate a configuration file and summarise it."""

from __future__ import annotations

import argparse
from pathlib import Path

from vosapp.cli.common import command_group
from vosapp.config import Config, load_config


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    commands = command_group(subparsers, "config", help="check configuration files",
                             description="Configuration file tools.")
    check = commands.add_parser(
        "check", help="validate a TOML config file",
        description="Validate FILE; on an error print file, table, key and why, exit 2.")
    check.add_argument("file", metavar="FILE", type=Path)
    check.set_defaults(func=run_check)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def defaults_notes(config: Config) -> list[str]:
    """What the file leaves to defaults that a user may not expect (a valid but empty file
    still makes a switch: on the default address, with no accounts)."""
    switch = config.switch
    notes = []
    if config.sets_nothing:
        notes.append("note: the file sets nothing; every setting is a default "
                     "(no accounts, no gateways, registry parameter values)")
    if "sip_listen" in switch.defaulted:
        notes.append(f"note: no [switch] sip_listen: SIP listens on the default "
                     f"{switch.sip_host}:{switch.sip_port} (UDP+TCP)")
    return notes


def run_check(args: argparse.Namespace) -> int:
    config = load_config(args.file)
    switch = config.switch
    print(f"{args.file}: ok")
    for note in defaults_notes(config):
        print(f"  {note}")
    print(f"  listen {switch.sip_host}:{switch.sip_port} (UDP+TCP), media {switch.media_ip}, "
          f"RTP {switch.rtp_port_min}-{switch.rtp_port_max}")
    print(f"  data_dir {switch.data_dir}")
    print(f"  {_plural(len(config.accounts), 'account')}, "
          f"{_plural(len(config.mapping_gateways), 'mapping gateway')}, "
          f"{_plural(len(config.routing_gateways), 'routing gateway')}, "
          f"{_plural(len(config.parameters.changed()), 'parameter override')}")
    return 0
