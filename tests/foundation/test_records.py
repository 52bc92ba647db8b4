"""``@record`` (vosapp/records.py): frozen to mypy, a plain slots dataclass at run time.

The per-message values (the SIP transaction's effects, the authentication decision, the
registrar's values) are records: they must still compare and hash by value, and an
assignment to one of their fields must still be an error where it is checked, in mypy.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap

import pytest

from vosapp.records import record
from vosapp.sip.digest import VerifyOutcome, VerifyResult
from vosapp.sip.transaction import SentResponse, StartTimer, Terminated, TimerName, Transmit
from vosapp.switch.auth import Action, AuthRequest, AuthResult, Decision, Reason
from vosapp.switch.registrar.model import Binding, ContactRequest, RegisterOutcome


@record
class _Point:
    x: int
    y: int = 0
    tags: tuple[str, ...] = dataclasses.field(default=())


def test_a_record_is_a_slots_dataclass_equal_and_hashed_by_value() -> None:
    a, b = _Point(1, 2), _Point(1, 2)
    assert a == b and hash(a) == hash(b) and a != _Point(1, 3)
    assert {a: "first"}[b] == "first"
    assert not hasattr(a, "__dict__") and _Point.__slots__ == ("x", "y", "tags")
    assert dataclasses.replace(a, y=5) == _Point(1, 5)
    assert repr(a) == "_Point(x=1, y=2, tags=())"
    assert [f.name for f in dataclasses.fields(_Point)] == ["x", "y", "tags"]
    with pytest.raises(AttributeError):
        a.z = 3  # type: ignore[attr-defined]  # slots: no field may be added


def test_mypy_reports_an_assignment_to_a_record_field() -> None:
    program = textwrap.dedent("""
        from vosapp.records import record
        from vosapp.switch.registrar.model import Binding

        @record
        class Point:
            x: int

        def move(point: Point, binding: Binding) -> None:
            point.x = 2
            binding.cseq = 3
    """)
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", "--config-file", "/dev/null",
         "--follow-imports", "silent", "-c", program],
        capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert 'Property "x" defined in "Point" is read-only' in result.stdout, result.stdout
    assert 'Property "cseq" defined in "Binding" is read-only' in result.stdout, result.stdout


@pytest.mark.parametrize("value", [
    SentResponse(200, "<sip:a@b>;tag=1", b"SIP/2.0 200 OK\r\n\r\n"),
    Transmit(SentResponse(200, "", b""), ("127.0.0.1", 5060), "UDP"),
    StartTimer(TimerName.J, 32.0),
    Terminated(),
    VerifyResult(VerifyOutcome.OK, "alice"),
    Decision(Action.ACCEPT, Reason.AUTHENTICATED),
    AuthRequest("REGISTER", "c1", "alice", "127.0.0.1", 5060),
    AuthResult(Decision(Action.ACCEPT, Reason.AUTHENTICATED),
               AuthRequest("REGISTER", "c1", "alice", "127.0.0.1"), "alice"),
    ContactRequest("sip:alice@127.0.0.1:5062", 3600, 0.5),
    Binding("sip:alice@lab", "sip:alice@127.0.0.1:5062", 1e9, "c1", 2),
    RegisterOutcome(200, "OK", (Binding("sip:alice@lab", "sip:a@h", 1e9, "c1", 2),)),
], ids=lambda value: type(value).__name__)
def test_the_per_message_values_are_records(value: object) -> None:
    """Equal to a copy, hashed like it, without a per-instance dict (slots), and built by
    plain slot stores: no ``__setattr__`` of their own that ``__init__`` must go around."""
    copy = dataclasses.replace(value)  # type: ignore[type-var]
    assert copy == value and copy is not value and hash(copy) == hash(value)
    assert not hasattr(value, "__dict__")
    assert type(value).__setattr__ is object.__setattr__
