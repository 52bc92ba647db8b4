"""The SIP text scans in C (vosapp/sip/_scan.c) read every datagram a sender writes, and its
writer every message the switch sends, so a read past a string's end, a write past a buffer's
or a freed object there is a crash an attacker chooses. valgrind's memcheck runs them over
generated texts and fields (lone CRs and LFs, quotes, commas, NULs, non-Latin-1 and
surrogate-escaped text, both return paths) and must report no error in the extension."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(shutil.which("valgrind") is None,
                                reason="valgrind is not installed (scripts/sysdeps.sh installs it)")

# Loads the extension alone (no vosapp import: memcheck runs everything some 30 x slower).
FUZZ = textwrap.dedent('''
    import importlib.machinery, importlib.util, random, sys
    loader = importlib.machinery.ExtensionFileLoader("_scan", sys.argv[1])
    scan = importlib.util.module_from_spec(importlib.util.spec_from_loader("_scan", loader))
    loader.exec_module(scan)
    pieces = ["INVITE sip:a@b SIP/2.0", "\\r\\n", "\\r\\n", "\\r", "\\n", ":", ": ", " ", "\\t",
              "Via", "From", "X", "v", "\\u00e9", "\\u2603", "\\udc80", "a=b", '"', ",", "=",
              "Digest ", "\\\\", "\\x00", "n" * 70]
    cache = {"Via": "via", "From": "from", "X": "x", "v": "via"}
    names = ["content-length", "Content-Length", "Via", "", "l", "0"]
    other = {"Via": "v", "X": "x"}  # now and then: the name slots emptied and refilled
    rnd = random.Random(7)
    found = 0
    for _ in range(int(sys.argv[2])):
        text = "".join(rnd.choice(pieces) for _ in range(rnd.randrange(0, 24)))
        found += scan.head_fields(text, other if rnd.random() < 0.1 else cache) is not None
        found += scan.auth_params(text.strip(" \\t")) is not None
        fields = [[rnd.choice(names), rnd.choice(names), rnd.choice(pieces), rnd.choice(pieces)]
                  for _ in range(rnd.randrange(0, 6))]
        body = text.encode("utf-8", "surrogatepass")
        found += scan.message_bytes(rnd.choice(pieces), fields, body) is not None
        found += scan.auth_params("Digest " + text.strip(" \\t")) is not None
        found += scan.branch_span(text) is not None
        found += scan.branch_span("SIP/2.0/UDP h;branch=" + text) is not None
    print("scanned, found", found)
''')


def test_memcheck_finds_no_error_in_the_scans(tmp_path: Path) -> None:
    spec = importlib.util.find_spec("vosapp.sip._scan")
    assert spec is not None and spec.origin, "vosapp.sip._scan is not built: run `make setup`"
    script = tmp_path / "fuzz.py"
    script.write_text(FUZZ)
    result = subprocess.run(
        ["valgrind", "--tool=memcheck", "--errors-for-leak-kinds=none", "--num-callers=40",
         sys.executable, str(script), spec.origin, "4000"],
        capture_output=True, text=True, timeout=280, check=False,
        env={**os.environ, "PYTHONMALLOC": "malloc"},  # memcheck sees each object's bounds
    )
    assert result.returncode == 0, result.stderr[-3000:]
    found = re.search(r"scanned, found (\d+)", result.stdout)
    assert found and int(found.group(1)) > 100, result.stdout  # both paths were taken
    # One block per error, from its headline ("==pid== Invalid read of size 1") to the next;
    # errors elsewhere (CPython's own start-up) are not the extension's.
    blocks = re.split(r"\n(?===\d+== \S)", result.stderr)
    ours = [block for block in blocks
            if re.search(r"\b(head_fields|field_of|auth_params|key_of|message_bytes|slot_of)\b|_scan", block)
            and ("Invalid" in block or "uninitialised" in block)]
    assert "ERROR SUMMARY" in result.stderr and not ours, "\n".join(ours)[:4000]
