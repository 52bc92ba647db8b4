"""A real brute-force tool against `vosapp serve`: sipvicious svcrack must end up suspended.

SPEC §2.5: with defaults an attacker gets 6 guesses, then the terminal (user, source address)
is suspended for 180 s and every further request is refused without a password check. The run
is bounded (svcrack never stops on its own while it gets answers, so it is killed after a
fixed time); what matters is how many passwords the switch actually checked.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.support import PASSWORD, USER, run_vosapp, serve, write_config

SVCRACK = Path(sys.executable).with_name("sipvicious_svcrack")
pytestmark = [pytest.mark.skipif(not SVCRACK.exists() and not shutil.which("sipvicious_svcrack"),
                                 reason="sipvicious not installed"),
              pytest.mark.timeout(120)]


def svcrack(port: int, dictionary: Path, seconds: float) -> str:
    """Run svcrack for at most ``seconds``; return what it printed."""
    executable = str(SVCRACK) if SVCRACK.exists() else "sipvicious_svcrack"
    args = [executable, "-u", USER, "-d", str(dictionary), "-p", str(port), "127.0.0.1"]
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=seconds,
                              cwd=dictionary.parent, check=False)
        return done.stdout + done.stderr
    except subprocess.TimeoutExpired as expired:  # the child is killed by subprocess.run
        return _text(expired.stdout) + _text(expired.stderr)


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data if isinstance(data, str) else data.decode(errors="replace")


def reasons(data_dir: Path) -> Counter[str]:
    listing = run_vosapp("auth", "events", "--json", "--limit", "1000000",
                         "--data-dir", str(data_dir), check=True)
    return Counter(event["reason"] for event in json.loads(listing.stdout))


def test_svcrack_finds_the_password_when_it_is_its_first_guess(tmp_path: Path) -> None:
    # Sanity: the tool and our digest agree, so the next test's failure to crack is the
    # policy's doing, not an incompatibility.
    dictionary = tmp_path / "right.txt"
    dictionary.write_text(f"{PASSWORD}\n")
    with serve(write_config(tmp_path)) as served:
        output = svcrack(served.port, dictionary, seconds=30)
    assert PASSWORD in output


def test_svcrack_is_suspended_after_six_guesses_under_defaults(tmp_path: Path) -> None:
    dictionary = tmp_path / "guesses.txt"
    # The right password is the 20th guess: unreachable if the suspension holds.
    dictionary.write_text("".join(f"wrong{i}\n" for i in range(19)) + f"{PASSWORD}\n")
    with serve(write_config(tmp_path)) as served:
        output = svcrack(served.port, dictionary, seconds=6)
        counts = reasons(served.data_dir)
        suspended = run_vosapp("auth", "suspended", "--json", "--data-dir",
                               str(served.data_dir), check=True)
    assert PASSWORD not in output
    assert counts["wrong_password"] == 6  # passwords actually checked
    assert counts["suspended"] > 1  # the suspension itself, then every refused request
    (active,) = json.loads(suspended.stdout)
    assert (active["user"], active["address"], active["scope"]) == (USER, "127.0.0.1",
                                                                    "terminal")
    assert 150 < active["remaining_s"] <= 180
