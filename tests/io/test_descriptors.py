"""The descriptor table grown at start (vosapp.io.descriptors): to the size asked, within the
soft RLIMIT_NOFILE, never closing an open descriptor; and a served switch has grown it for
its RTP ports and TCP connections before any call. The table's size is the kernel's own
figure (FDSize in /proc/PID/status)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.serving import checkout_env, serve, write_config
from vosapp.config import SwitchConfig
from vosapp.io.descriptors import reserve_descriptors, table_size
from vosapp.io.runtime import BASE_DESCRIPTORS


def _in_fresh_python(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], env=checkout_env(), check=True,
                          capture_output=True, text=True, timeout=60).stdout.strip()


def test_the_table_grows_to_what_is_asked_at_once() -> None:
    before, reserved, after = _in_fresh_python(
        "from vosapp.io.descriptors import reserve_descriptors, table_size\n"
        "b = table_size(); r = reserve_descriptors(3000); print(b, r, table_size())").split()
    assert int(before) < 3000 <= int(after)
    assert int(reserved) == 3000


def test_a_low_soft_limit_is_raised_up_to_the_hard_one() -> None:
    reserved, soft, after = _in_fresh_python(
        "import resource\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (512, 4000))\n"
        "from vosapp.io.descriptors import reserve_descriptors, table_size\n"
        "r = reserve_descriptors(3000)\n"
        "print(r, resource.getrlimit(resource.RLIMIT_NOFILE)[0], table_size())").split()
    assert int(reserved) == 3000 and int(soft) == 3000
    assert int(after) >= 3000


def test_the_hard_limit_caps_the_reservation_without_an_error() -> None:
    reserved, soft, after = _in_fresh_python(
        "import resource\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (400, 512))\n"
        "from vosapp.io.descriptors import reserve_descriptors, table_size\n"
        "r = reserve_descriptors(5000)\n"
        "print(r, resource.getrlimit(resource.RLIMIT_NOFILE)[0], table_size())").split()
    assert int(reserved) == 512 and int(soft) == 512
    assert 512 <= int(after) < 1024


def test_an_open_descriptor_in_the_way_stays_open(tmp_path: Path) -> None:
    import fcntl

    with open(tmp_path / "kept", "w") as kept:
        # An open descriptor just where the reservation would go.
        target = max(table_size(), 700) - 1
        fd = fcntl.fcntl(kept.fileno(), fcntl.F_DUPFD, target)
        try:
            assert reserve_descriptors(fd + 1) == fd + 1
            os.write(fd, b"still open")
        finally:
            os.close(fd)
    assert (tmp_path / "kept").read_text() == "still open"


def test_nothing_to_reserve_below_the_standard_three() -> None:
    assert reserve_descriptors(3) == 0


def test_a_served_switch_has_grown_its_table_before_any_call(tmp_path: Path) -> None:
    with serve(write_config(tmp_path)) as switch:
        size = table_size(switch.process.pid)
    # the default rtp_ports and the runtime's default 1,024 TCP connections
    ports = SwitchConfig.rtp_port_max - SwitchConfig.rtp_port_min + 1
    assert size >= ports + 1024 + BASE_DESCRIPTORS
