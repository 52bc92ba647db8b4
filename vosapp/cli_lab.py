"""``vosapp lab``: start JupyterLab from this venv on the repository's notebooks/.

The notebooks find the switch configuration through ``$VOSAPP_CONFIG`` (the selected
config, by default the repository's data/lab.toml), and run on the ``vosapp`` kernelspec
that ``make lab`` installs into the venv.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from vosapp import cli_common
from vosapp.config import load_config
from vosapp.errors import VosappError

REPO_ROOT = Path(__file__).resolve().parents[1]


def register(subparsers: argparse._SubParsersAction) -> None:
    lab = subparsers.add_parser(
        "lab", help="open JupyterLab on notebooks/ with the vosapp kernel",
        description="Run `jupyter lab` from this venv on notebooks/, with VOSAPP_CONFIG set "
                    "to the selected config (default: the repository's data/lab.toml).")
    lab.add_argument("--no-browser", action="store_true", help="do not open a browser")
    lab.add_argument("--port", type=int, metavar="PORT", help="port of the Jupyter server")
    lab.add_argument("--dry-run", action="store_true",
                     help="print the command and environment instead of running it")
    lab.set_defaults(func=run_lab)


def lab_command(args: argparse.Namespace) -> tuple[list[str], dict[str, str]]:
    """The jupyter argv and environment ``vosapp lab`` runs."""
    jupyter = Path(sys.executable).parent / "jupyter"
    if not jupyter.exists():
        raise VosappError(f"{jupyter} not found: JupyterLab is not installed in this venv "
                          "(run `make lab`, or pip install -e '.[lab]')")
    notebooks = REPO_ROOT / "notebooks"
    if not notebooks.is_dir():
        raise VosappError(f"{notebooks} does not exist; run vosapp lab from a repository clone")
    config = cli_common.config_path(args)
    if config is None:
        config = REPO_ROOT / "data" / "lab.toml"
    load_config(config)  # a broken config is reported now, not inside a notebook
    argv = [str(jupyter), "lab", f"--notebook-dir={notebooks}"]
    if args.no_browser:
        argv.append("--no-browser")
    if args.port is not None:
        if not 0 <= args.port <= 65535:
            raise VosappError(f"--port {args.port} is not a TCP port (0-65535)")
        argv.append(f"--port={args.port}")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        argv.append("--allow-root")  # CI and containers run as root; Jupyter refuses otherwise
    env = dict(os.environ)
    env[cli_common.ENV_CONFIG] = str(Path(config).resolve())
    if args.data_dir is not None:
        env[cli_common.ENV_DATA_DIR] = str(Path(args.data_dir).resolve())
    return argv, env


def run_lab(args: argparse.Namespace) -> int:
    argv, env = lab_command(args)
    if args.dry_run:
        print(f"{cli_common.ENV_CONFIG}={shlex.quote(env[cli_common.ENV_CONFIG])} "
              + " ".join(shlex.quote(a) for a in argv))
        return 0
    sys.stdout.flush()
    os.execve(argv[0], argv, env)  # replaces this process: Ctrl-C goes straight to Jupyter
    return 0  # pragma: no cover
