"""Test support shared by every test folder: import as ``from tests.support import ...``.

* :func:`free_port` - a port nothing listens on (UDP or TCP, 127.0.0.1);
* :func:`write_config` - a switch configuration written for one test;
* :func:`serve` - ``vosapp serve`` as a subprocess on a free port, ready when it said
  ``vosapp listening on``; :func:`run_vosapp` - any other ``vosapp`` command;
  :func:`cdr_rows` - its CDRs;
* :func:`run_sipp`, :func:`start_sipp`, :func:`finish_sipp`, :func:`register_with_sipp` - the
  real ``sipp`` binary with the scenarios of tests/sipp/.

The pytest fixtures built on them (``served_switch``, ``sipp``, ``free_ports``,
``switch_config``, and ``net``, a virtual network) live in :mod:`tests.support.fixtures`, registered by tests/conftest.py.
"""

from tests.support.ports import free_port
from tests.support.serving import (
    PASSWORD,
    ROOT,
    USER,
    Served,
    cdr_rows,
    run_vosapp,
    serve,
    write_config,
)
from tests.support.sipp import (
    SCENARIOS,
    SippRun,
    finish_sipp,
    needs_sipp,
    register_with_sipp,
    run_sipp,
    sipp_logs,
    start_sipp,
)

__all__ = [
    "PASSWORD",
    "ROOT",
    "SCENARIOS",
    "USER",
    "Served",
    "SippRun",
    "cdr_rows",
    "finish_sipp",
    "free_port",
    "needs_sipp",
    "register_with_sipp",
    "run_sipp",
    "run_vosapp",
    "serve",
    "sipp_logs",
    "start_sipp",
    "write_config",
]
