"""420 Bad Extension seen by a real SIP tool (RFC 3261 §8.2.2.3): SIPp sends INVITE, OPTIONS
and REGISTER requiring an option tag vosapp does not support to `vosapp serve`; each gets 420
with that tag in `Unsupported` (the scenarios check the header; an INVITE's 420 is ACKed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import SCENARIOS, needs_sipp, run_sipp, serve, sipp_logs, write_config

pytestmark = [pytest.mark.sipp, needs_sipp]


@pytest.mark.parametrize("method", ["INVITE", "OPTIONS", "REGISTER"])
def test_unknown_required_option_tag_gets_420_with_unsupported(tmp_path: Path,
                                                                method: str) -> None:
    scenario = SCENARIOS / "require_unknown_invite_uac.xml"
    if method != "INVITE":  # the template names no method (SIPp allows no keyword there)
        text = (SCENARIOS / "require_unknown_uac.xml").read_text().replace("@METHOD@", method)
        scenario = tmp_path / f"require_unknown_{method.lower()}_uac.xml"
        scenario.write_text(text)
    with serve(write_config(tmp_path)) as switch:
        result = run_sipp(scenario, cwd=tmp_path, remote=f"{switch.host}:{switch.port}",
                          timeout=20, extra=["-s", "1001"])
    assert result.returncode == 0, f"{result.stderr[-2000:]}\n{sipp_logs(tmp_path)}"
