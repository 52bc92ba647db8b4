"""``vosapp lab``: start JupyterLab from this venv on the repository's notebooks/, with a
working switch beside it.

The notebooks find the switch configuration through ``$VOSAPP_CONFIG`` (the selected
config, by default the repository's data/lab.toml), and run on the ``vosapp`` kernelspec
that ``make lab`` installs into the venv. Unless ``--no-switch`` is given, a background
``vosapp serve`` runs on that configuration (its ``sip_listen``, UDP and TCP) for as long as
JupyterLab does, so softphones and SIPp can register to it and notebooks can
``vosapp.lab.attach.attach()`` to it; beside it, the lab vendor (an echo) answers on the
configuration's routing gateway address, so a softphone can dial out. If either cannot start
(say the port is taken), JupyterLab still starts and the reason is printed. JupyterLab opens
notebooks/00-start-here first. Ctrl-C (SIGINT) or SIGTERM stops JupyterLab, then the vendor and
the switch, gracefully.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from vosapp.cli import common
from vosapp.config import load_config
from vosapp.errors import VosappError

if TYPE_CHECKING:
    from vosapp.lab.attach import BackgroundSwitch
    from vosapp.lab.vendor import VendorThread

REPO_ROOT = Path(__file__).resolve().parents[2]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    lab = subparsers.add_parser(
        "lab", help="open JupyterLab on notebooks/ with the vosapp kernel",
        description="Run `jupyter lab` from this venv on notebooks/, with VOSAPP_CONFIG set "
                    "to the selected config (default: the repository's data/lab.toml).")
    lab.add_argument("--no-browser", action="store_true", help="do not open a browser")
    lab.add_argument("--port", type=int, metavar="PORT", help="port of the Jupyter server")
    lab.add_argument("--no-switch", action="store_true",
                     help="do not start the background switch on the configuration")
    lab.add_argument("--switch-listen", metavar="HOST:PORT",
                     help="where the background switch listens (default: the config's "
                          "sip_listen)")
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
    config = common.config_path(args)
    if config is None:
        config = REPO_ROOT / "data" / "lab.toml"
    load_config(config)  # a broken config is reported now, not inside a notebook
    argv = [str(jupyter), "lab", f"--notebook-dir={notebooks}",
            "--LabApp.default_url=/lab/tree/00-start-here.ipynb"]  # opened first
    if args.no_browser:
        argv.append("--no-browser")
    if args.port is not None:
        if not 0 <= args.port <= 65535:
            raise VosappError(f"--port {args.port} is not a TCP port (0-65535)")
        argv.append(f"--port={args.port}")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        argv.append("--allow-root")  # CI and containers run as root; Jupyter refuses otherwise
    env = dict(os.environ)
    env[common.ENV_CONFIG] = str(Path(config).resolve())
    if args.data_dir is not None:
        env[common.ENV_DATA_DIR] = str(Path(args.data_dir).resolve())
    return argv, env


def start_switch(args: argparse.Namespace, env: dict[str, str]) -> BackgroundSwitch | None:
    """The background switch, or None (with the reason on stderr) when it cannot start."""
    from vosapp.lab.attach import BackgroundSwitch  # only `vosapp lab` pays for this import

    config = Path(env[common.ENV_CONFIG])
    try:
        loaded = load_config(config)
        data_dir = common.data_dir(args, loaded)
        if data_dir is None:
            raise VosappError(f"{config} has no [switch] data_dir and none was given")
        listen = args.switch_listen
        if listen is None:
            listen = f"{loaded.switch.sip_host}:{loaded.switch.sip_port}"
        switch = BackgroundSwitch.spawn(data_dir, config, listen=listen, udp_only=False,
                                        new_session=True)
    except VosappError as exc:
        print(f"vosapp lab: no background switch: {exc}".rstrip(), file=sys.stderr)
        return None
    host, port = switch.sip_address
    print(f"vosapp lab: switch listening on {host}:{port} (UDP, TCP) with {config}; "
          f"data in {switch.data_dir}; notebooks: vosapp.lab.attach.attach()", flush=True)
    return switch


def start_vendor(config: Path) -> VendorThread | None:
    """The echo vendor on the config's routing gateway address, so a softphone registered
    to the switch can dial out; None (reason on stderr) when it cannot start."""
    from vosapp.lab.vendor import start_vendor_thread

    try:
        vendor = start_vendor_thread(config)
    except VosappError as exc:
        print(f"vosapp lab: no lab vendor: {exc}".rstrip(), file=sys.stderr)
        return None
    host, port = vendor.vendor.address
    print(f"vosapp lab: echo vendor answering on {host}:{port} (the routing gateway)",
          flush=True)
    return vendor


def run_lab(args: argparse.Namespace) -> int:
    argv, env = lab_command(args)
    if args.dry_run:
        print(f"{common.ENV_CONFIG}={shlex.quote(env[common.ENV_CONFIG])} "
              + " ".join(shlex.quote(a) for a in argv))
        return 0
    switch = None if args.no_switch else start_switch(args, env)
    if switch is not None:
        env[common.ENV_DATA_DIR] = str(switch.data_dir)  # attach() finds it
    vendor = None if args.no_switch else start_vendor(Path(env[common.ENV_CONFIG]))
    sys.stdout.flush()
    # JupyterLab runs in its own session, so Ctrl-C in the terminal reaches only this process:
    # SIGINT or SIGTERM here stops JupyterLab (SIGTERM: it shuts its kernels down without
    # asking), then the switch below, gracefully (the unregister towards carriers runs).
    jupyter = subprocess.Popen(argv, env=env, start_new_session=True)

    def stop(signum: int, _frame: object) -> None:
        print(f"vosapp lab: {signal.Signals(signum).name}: stopping JupyterLab and the switch",
              file=sys.stderr, flush=True)
        jupyter.terminate()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        status = jupyter.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if vendor is not None:
            vendor.stop()
        if switch is not None:
            code = switch.terminate()
            print(f"vosapp lab: background switch stopped (exit {code})", file=sys.stderr)
    return status
