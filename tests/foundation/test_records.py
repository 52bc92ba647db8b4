"""The classes of the compiled modules (vosapp/compiled.py) write their ``__init__``, and the
values made for every message are records: read-only dataclasses compared by value.

mypyc compiles a dataclass as a native class, but the ``__init__`` the dataclasses module
generates runs interpreted: ~1 thousand instructions a construction where a written one costs
a few dozen (docs/benchmarks.md, "Records as native classes"). So every dataclass of a compiled
module writes its own, with the fields' names in the fields' order, unless it is a frozen
configuration value (``@dataclass(frozen=True)``: a written ``__init__`` could not assign) or
made once per switch. A record
(``@dataclass(slots=True, unsafe_hash=True)`` with every field ``Final``) is read-only to mypy,
and to every caller at run time when compiled. A record with an equality of its own (a URI's,
RFC 3261 §19.1.4) is ``@dataclass(slots=True, eq=False)`` and writes ``__eq__`` and
``__hash__``; a private field of it may stay out of ``Final`` when ``__init__`` alone sets it
and ``dataclasses.replace`` leaves it out (``field(init=False)``).
"""

from __future__ import annotations

import ast
import dataclasses
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from vosapp import compiled
from vosapp.sip.digest import Credentials, VerifyOutcome, VerifyResult
from vosapp.sip.headers import CSeq
from vosapp.sip.sdp import Codec
from vosapp.sip.transaction import SentResponse, StartTimer, Terminated, TimerName, Transmit
from vosapp.sip.uri import AbsoluteUri, SipUri, parse_uri
from vosapp.switch.auth import Action, AuthEvent, AuthRequest, AuthResult, Decision, Reason
from vosapp.switch.registrar.model import Binding, ContactRequest, RegisterOutcome

PACKAGE = Path(compiled.__file__).resolve().parent
RECORD_DECORATOR = "dataclass(slots=True, unsafe_hash=True)"
#: A record compared by rules of its own: it writes __eq__ and __hash__.
OWN_EQUALITY_DECORATOR = "dataclass(slots=True, eq=False)"
#: Made once per switch, or per failing terminal, never per message: their generated
#: ``__init__`` (and the registrar's ``__post_init__`` checks) stay.
NOT_PER_MESSAGE = {"switch.core.CoreStats", "switch.registrar.logic.Registrar",
                   "switch.auth.Suspension", "switch.auth._TerminalState"}


def _dataclasses() -> list[tuple[str, ast.ClassDef, str]]:
    """(module, class, decorator source) of every dataclass in a compiled module's source."""
    found = []
    for name in compiled.COMPILED_MODULES:
        tree = ast.parse((PACKAGE / compiled.source_path(name)).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                for decorator in node.decorator_list:
                    text = ast.unparse(decorator)
                    if text.startswith("dataclass"):
                        found.append((name, node, text))
    return found


def _fields(node: ast.ClassDef, *, init_false: bool = True) -> list[str]:
    """The dataclass's fields in order; ``init_false=False``: without those declared
    ``field(init=False)`` (which its ``__init__`` may derive from the others)."""
    return [statement.target.id for statement in node.body
            if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name)
            and "ClassVar" not in ast.unparse(statement.annotation)
            and (init_false or statement.value is None
                 or "init=False" not in ast.unparse(statement.value))]


DATACLASSES = _dataclasses()


def test_the_compiled_modules_have_dataclasses_to_check() -> None:
    names = {node.name for _, node, _ in DATACLASSES}
    assert {"Transmit", "Binding", "Via", "SessionDescription", "Dialog"} <= names


@pytest.mark.parametrize(("module", "node", "decorator"), DATACLASSES,
                         ids=[f"{module}.{node.name}" for module, node, _ in DATACLASSES])
def test_each_dataclass_writes_its_init_with_its_fields_in_order(
        module: str, node: ast.ClassDef, decorator: str) -> None:
    init = next((statement for statement in node.body
                 if isinstance(statement, ast.FunctionDef) and statement.name == "__init__"),
                None)
    if init is None:
        assert "frozen=True" in decorator or f"{module}.{node.name}" in NOT_PER_MESSAGE, (
            f"{module}.{node.name} needs a written __init__ (the generated one runs "
            "interpreted), or is a frozen value made once")
        return
    parameters = [argument.arg for argument in init.args.args[1:] + init.args.kwonlyargs]
    # a field(init=False) is a parameter too (SipUri's _raw, the parser's) or derived by
    # __init__ from the others (AuthSession's deadline)
    derived = set(_fields(node)) - set(_fields(node, init_false=False)) - set(parameters)
    assert parameters == [name for name in _fields(node) if name not in derived], (
        f"{module}.{node.name}.__init__ and its fields differ")
    assigned = {target.attr for statement in ast.walk(init) if isinstance(statement, ast.Assign)
                for element in statement.targets
                for target in (element.elts if isinstance(element, ast.Tuple) else [element])
                if isinstance(target, ast.Attribute)}
    assert assigned == set(_fields(node)), f"{module}.{node.name}.__init__ must set every field"


@pytest.mark.parametrize(("module", "node", "decorator"), DATACLASSES,
                         ids=[f"{module}.{node.name}" for module, node, _ in DATACLASSES])
def test_a_class_of_final_fields_is_a_record(module: str, node: ast.ClassDef,
                                             decorator: str) -> None:
    fields = [statement for statement in node.body if isinstance(statement, ast.AnnAssign)]
    finals = [ast.unparse(statement.annotation).startswith("Final[") for statement in fields]
    if not any(finals):
        return
    if decorator == RECORD_DECORATOR:
        assert all(finals), f"{module}.{node.name}"
        return
    assert decorator == OWN_EQUALITY_DECORATOR, f"{module}.{node.name}"
    methods = {statement.name for statement in node.body
               if isinstance(statement, ast.FunctionDef)}
    assert {"__eq__", "__hash__"} <= methods, f"{module}.{node.name} compares by its own rules"
    for statement, final in zip(fields, finals, strict=True):
        if not final:  # mypyc reads a Final with a class-level value as a constant
            name = ast.unparse(statement.target)
            value = "" if statement.value is None else ast.unparse(statement.value)
            assert name.startswith("_") and "init=False" in value, f"{module}.{node.name}.{name}"


RECORDS = [
    SentResponse(200, "<sip:a@b>;tag=1", b"SIP/2.0 200 OK\r\n\r\n"),
    Transmit(SentResponse(200, "", b""), ("127.0.0.1", 5060), "UDP"),
    StartTimer(TimerName.J, 32.0),
    Terminated(),
    VerifyResult(VerifyOutcome.OK, "alice"),
    Credentials("alice", "lab", "n", "sip:lab", "0" * 32, nc=1, cnonce="c", qop="auth"),
    Decision(Action.ACCEPT, Reason.AUTHENTICATED),
    AuthRequest("REGISTER", "c1", "alice", "127.0.0.1", 5060),
    AuthResult(Decision(Action.ACCEPT, Reason.AUTHENTICATED),
               AuthRequest("REGISTER", "c1", "alice", "127.0.0.1"), "alice"),
    AuthEvent(1e9, "127.0.0.1", 5060, "alice", "REGISTER", "authenticated"),
    ContactRequest("sip:alice@127.0.0.1:5062", 3600, 0.5),
    Binding("sip:alice@lab", "sip:alice@127.0.0.1:5062", 1e9, "c1", 2),
    RegisterOutcome(200, "OK", (Binding("sip:alice@lab", "sip:a@h", 1e9, "c1", 2),)),
    CSeq(1, "INVITE"),
    Codec("PCMA", 8000, payload_type=8),
    parse_uri("sip:alice@example.com:5060;transport=tcp"),
    SipUri(host="192.0.2.1", user="1001", port=5060, params={"transport": "tcp"}),
    AbsoluteUri("tel", "tel:+15551234"),
]


@pytest.mark.parametrize("value", RECORDS, ids=lambda value: type(value).__name__)
def test_a_record_compares_and_hashes_by_value(value: object) -> None:
    copy = dataclasses.replace(value)  # type: ignore[type-var]
    assert copy == value and copy is not value and hash(copy) == hash(value)
    assert {value: 1}[copy] == 1
    assert not hasattr(value, "__dict__")  # slots, or a native class: no field may be added
    assert repr(value).startswith(type(value).__name__ + "(")


@pytest.mark.parametrize("value", RECORDS, ids=lambda value: type(value).__name__)
def test_a_compiled_record_refuses_an_assignment_at_run_time(value: object) -> None:
    if not all(compiled.running_compiled().values()):
        pytest.skip(f"the sources run ({compiled.SOURCES_BECAUSE}): read-only to mypy only")
    fields = dataclasses.fields(value)  # type: ignore[arg-type]
    if not fields:
        return
    with pytest.raises(AttributeError):
        setattr(value, fields[0].name, getattr(value, fields[0].name))


def test_mypy_reports_an_assignment_to_a_record_field() -> None:
    program = textwrap.dedent("""
        from vosapp.sip.transaction import StartTimer
        from vosapp.sip.uri import SipUri
        from vosapp.switch.registrar.model import Binding

        def move(timer: StartTimer, binding: Binding, uri: SipUri) -> None:
            timer.delay = 2.0
            binding.cseq = 3
            uri.port = 5062
    """)
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", "--config-file", "/dev/null",
         "--follow-imports", "silent", "-c", program],
        capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert 'Cannot assign to final attribute "delay"' in result.stdout, result.stdout
    assert 'Cannot assign to final attribute "cseq"' in result.stdout, result.stdout
    assert 'Cannot assign to final attribute "port"' in result.stdout, result.stdout
