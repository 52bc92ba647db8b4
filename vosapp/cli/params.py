"""``vosapp params list|get|set|reset|history|doc``: the SS_* parameters from the shell.

Values set here are stored in the SQLite store of the data directory and apply to *new*
sessions of a running switch (docs/behaviour.md §1); ``reset`` returns a parameter to the config
file's value (or the registry default). ``doc`` writes docs/parameters.md (``make docs``).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from vosapp.cli import common
from vosapp.cli.common import print_table, utc
from vosapp.params import REGISTRY, GatewaySettings, Param, Params, UpstreamRegistration

BY = "cli"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    commands = common.command_group(
        subparsers, "params", help="list, read, change and document the SS_* parameters",
        description="The SS_* parameters (docs/behaviour.md §1). Changes apply to new sessions.")

    listing = commands.add_parser("list", help="every parameter with its value",
                                  description="Every parameter with its effective value.")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.add_argument("--changed", action="store_true",
                         help="only parameters that differ from the registry default")
    listing.set_defaults(func=run_list)

    get = commands.add_parser("get", help="print one parameter's value",
                              description="Print the effective value of one parameter.")
    get.add_argument("name", metavar="NAME", help="e.g. SS_SIP_AUTHENTICATION_RETRY")
    get.set_defaults(func=run_get)

    setter = commands.add_parser(
        "set", help="change one parameter (stored; applies to new sessions)",
        description="Validate and store a value. Accepted forms: On/Off/true/false/1/0, "
                    "401 or '401 Unauthorized', Auto, 180 / 180s / 3min / 500ms.")
    setter.add_argument("name", metavar="NAME")
    setter.add_argument("value", metavar="VALUE", nargs="+",
                        help="the new value (several words are joined with spaces)")
    setter.set_defaults(func=run_set)

    reset = commands.add_parser(
        "reset", help="forget stored values (back to config/default)",
        description="Forget the stored value so the config file's value (or the default) "
                    "applies again.")
    which = reset.add_mutually_exclusive_group(required=True)
    which.add_argument("name", metavar="NAME", nargs="?")
    which.add_argument("--all", action="store_true", help="reset every stored parameter")
    reset.set_defaults(func=run_reset)

    history = commands.add_parser("history", help="the change history",
                                  description="Every stored change: when, old, new, by whom.")
    history.add_argument("name", metavar="NAME", nargs="?", help="only this parameter")
    history.add_argument("--json", action="store_true", help="machine-readable output")
    history.set_defaults(func=run_history)

    doc = commands.add_parser("doc", help="the registry as Markdown (docs/parameters.md)",
                              description="Print the registry as Markdown on stdout.")
    doc.set_defaults(func=run_doc)


# -- helpers -------------------------------------------------------------------------------

def _effective(args: argparse.Namespace) -> tuple[Params, Params, set[str]]:
    """(config-level params, effective params, names set in the store)."""
    config = common.load_selected_config(args)
    base = common.base_params(config)
    store = common.open_store(args, config, create=False)
    if store is None:
        return base, base, set()
    with store:
        return base, store.load_params(base), set(store.stored_params())


def _origin(name: str, base: Params, stored: set[str]) -> str:
    if name in stored:
        return "store"
    return "config" if base[name] != REGISTRY[name].default else "default"


def _row(param: Param, value: Any, origin: str) -> dict[str, Any]:
    return {
        "name": param.name, "value": value, "default": param.default,
        "changed": value != param.default, "origin": origin, "kind": param.kind.value,
        "unit": param.unit, "minimum": param.minimum, "maximum": param.maximum,
        "options": list(param.options), "zero_disables": param.zero_disables,
        "allowed": param.allowed(), "description": param.description,
        "navigation": param.navigation, "navigation_quoted": param.navigation_quoted,
        "source": param.source, "value_source": param.value_source,
    }


# -- commands ------------------------------------------------------------------------------

def run_list(args: argparse.Namespace) -> int:
    base, params, stored = _effective(args)
    selected = [p for p in REGISTRY if not args.changed or params[p.name] != p.default]
    if args.json:
        rows = [_row(p, params[p.name], _origin(p.name, base, stored)) for p in selected]
        print(json.dumps(rows, indent=2))
        return 0
    table = [["NAME", "VALUE", "DEFAULT", "ALLOWED", "FROM"]]
    for p in selected:
        table.append([p.name, p.format(params[p.name]), p.format(p.default), p.allowed(),
                      _origin(p.name, base, stored)])
    if len(table) == 1:
        print("(no parameter differs from its default)")
    else:
        print_table(table)
    return 0


def run_get(args: argparse.Namespace) -> int:
    param = REGISTRY[args.name]
    _, params, _ = _effective(args)
    print(param.format(params[param.name]))
    return 0


def run_set(args: argparse.Namespace) -> int:
    param = REGISTRY[args.name]
    value = " ".join(args.value)
    param.coerce(value)  # a bad value fails before any file is created
    config = common.load_selected_config(args)
    base = common.base_params(config)
    store = common.open_store(args, config, create=True)
    assert store is not None
    with store:
        old = store.load_params(base)[param.name]
        new = store.set_param(param.name, value, BY, base=base)
    print(f"{param.name} = {param.format(new)} (was {param.format(old)}; "
          "applies to new sessions)")
    return 0


def run_reset(args: argparse.Namespace) -> int:
    if args.name is not None:
        REGISTRY[args.name]  # unknown name -> ParameterError before touching the store
    config = common.load_selected_config(args)
    base = common.base_params(config)
    store = common.open_store(args, config, create=False)
    names: list[str] = []
    if store is not None:
        with store:
            names = store.reset_param(None if args.all else args.name, BY, base=base)
    if not names:
        print("nothing to reset (no stored value)")
    for name in names:
        print(f"{name} = {REGISTRY[name].format(base[name])} (reset)")
    return 0


def run_history(args: argparse.Namespace) -> int:
    if args.name is not None:
        REGISTRY[args.name]
    config = common.load_selected_config(args)
    store = common.open_store(args, config, create=False)
    changes = []
    if store is not None:
        with store:
            changes = store.param_history(args.name)
    if args.json:
        print(json.dumps([vars(c) for c in changes], indent=2))
        return 0
    if not changes:
        print("(no changes recorded)")
        return 0
    table = [["WHEN (UTC)", "NAME", "ACTION", "OLD", "NEW", "BY"]]
    for c in changes:
        fmt = REGISTRY[c.name].format if c.name in REGISTRY else str
        table.append([utc(c.at), c.name, c.action, fmt(c.old), fmt(c.new), c.by])
    print_table(table)
    return 0


def run_doc(args: argparse.Namespace) -> int:
    print(render_markdown(), end="")
    return 0


# -- documentation -------------------------------------------------------------------------

def _cell(text: object) -> str:
    return str(text).replace("|", "\\|")


def render_markdown() -> str:
    """docs/parameters.md, generated from the registry (a test keeps the file in sync)."""
    out = [
        "# vosapp parameters",
        "",
        "<!-- Generated by `vosapp params doc` (make docs). Do not edit by hand. -->",
        "",
        ("The SS_* parameters of docs/behaviour.md §1. Values are validated when set, stored in"
        " the SQLite store of the data directory, and apply to *new* sessions; sessions already"
        " running keep the values they started with."),
        "",
        ("Where a value comes from: registry default < config file `[parameters]` < "
        "`vosapp params set` / notebooks (stored). `vosapp params reset NAME` forgets the "
        "stored value."),
        "",
        ("**Source**: `seed` = quoted from the VOS3000 V2.1.9.07 manual (section 4.3.5.2, "
        "tables 4-3/4-4) as reproduced in the seed articles; `secondary` = name (sometimes "
        "the default) known only from other reseller pages; `vosapp` = our own. The "
        "*Values* line of each parameter says whether its default and range are the "
        "manual's or vosapp's choice."),
        "",
        ("Accepted input forms: `On`/`Off`/`true`/`false`/`1`/`0`; `401` or "
        "`401 Unauthorized`; `Auto`; integers with or without a unit (`180`, `180s`, `3min`, "
        "`500ms`, converted to the parameter's unit)."),
        "",
        "| Parameter | Default | Range / options | Unit | Source | Meaning |",
        "|---|---|---|---|---|---|",
    ]
    for p in REGISTRY:
        out.append(f"| `{p.name}` | {_cell(p.format(p.default))} | {_cell(p.allowed())} | "
                   f"{p.unit or '-'} | {p.source} | {_cell(p.description)} |")
    out += ["", "## Details", ""]
    for p in REGISTRY:
        nav = p.navigation + ("" if p.navigation_quoted else
                              " (path assumed: not quoted for this parameter in the articles)")
        out += [
            f"### {p.name}",
            "",
            f"{p.description}.",
            "",
            f"- Type: {p.kind.value}" + (f", unit {p.unit}" if p.unit else ""),
            f"- Default: `{p.format(p.default)}`; allowed: {p.allowed()}",
            f"- Values: {p.value_source}",
            f"- VOS3000 navigation: {nav}",
            "",
        ]
    out += [
        "## Per-gateway settings",
        "",
        ("Keys of a `[[mapping_gateway]]` or `[[routing_gateway]]` table in the config file "
        "(VOS3000: Business management > Mapping gateway / Routing gateway > Additional "
        "settings). Model: `vosapp.params.GatewaySettings`."),
        "",
    ] + _settings_table(GatewaySettings.describe()) + [
        "",
        "## Upstream registration",
        "",
        ("The optional `[routing_gateway.register]` table: the routing gateway registers to "
        "its carrier (docs/behaviour.md §3; manual pages 106-107). Model: "
        "`vosapp.params.UpstreamRegistration`. `sip_proxy` and `auth_user` are required."),
        "",
    ] + _settings_table(UpstreamRegistration.describe())
    return "\n".join(out) + "\n"


def _settings_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["| Key | Default | Allowed | Source | Meaning |", "|---|---|---|---|---|"]
    for row in rows:
        default = row["default"]
        shown = "(none)" if default in ("", None) else default
        lines.append(f"| `{row['name']}` | {_cell(shown)} | {_cell(row['allowed'])} | "
                     f"{_cell(row['source'])} | {_cell(row['description'])} |")
    return lines
