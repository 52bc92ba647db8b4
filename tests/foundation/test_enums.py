"""IdentityEnum (vosapp/enums.py): the enums of the SIP and switch layers hash by identity,
which is valid only for an enum whose members equal nothing but themselves."""

from __future__ import annotations

import ast
import enum
import pickle
from pathlib import Path

import pytest

from vosapp.enums import IdentityEnum
from vosapp.sip.digest import VerifyOutcome
from vosapp.switch.auth import Reason, Verdict
from vosapp.switch.call.state import ATTEMPT_TRANSITIONS, AttemptState, CallState

PACKAGE = Path(__file__).resolve().parents[2] / "vosapp"


def _enum_classes() -> list[tuple[str, ast.ClassDef]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                bases = [ast.unparse(base) for base in node.bases]
                if any(b in ("Enum", "enum.Enum", "IdentityEnum") for b in bases):
                    found.append((str(path.relative_to(PACKAGE.parent)), node))
    return found


def test_an_identity_enum_is_never_mixed_with_a_value_type() -> None:
    # A str or int mixin makes a member equal its value: it must then hash as the value does.
    mixed = [f"{path}: {node.name}" for path, node in _enum_classes()
             if "IdentityEnum" in [ast.unparse(b) for b in node.bases] and len(node.bases) > 1]
    assert not mixed


def test_plain_enums_of_the_sip_and_switch_layers_hash_by_identity() -> None:
    plain = [f"{path}: {node.name}" for path, node in _enum_classes()
             if path.startswith(("vosapp/sip/", "vosapp/switch/"))
             and [ast.unparse(b) for b in node.bases] in (["Enum"], ["enum.Enum"])]
    assert not plain, "subclass vosapp.enums.IdentityEnum instead:\n" + "\n".join(plain)


@pytest.mark.parametrize("kind", [CallState, AttemptState, Verdict, Reason, VerifyOutcome])
def test_members_hash_by_identity_and_keep_their_enum_behaviour(kind: type[enum.Enum]) -> None:
    assert issubclass(kind, IdentityEnum)
    members = list(kind)
    assert all(hash(member) == object.__hash__(member) for member in members)
    table = {member: member.value for member in members}
    assert all(table[kind(member.value)] == member.value for member in members)
    assert all(pickle.loads(pickle.dumps(member)) is member for member in members)
    assert len(set(members)) == len(members)
    assert all(member != member.value for member in members)  # equal only to itself


def test_a_transition_table_answers_by_member() -> None:
    assert AttemptState.ANSWERED in ATTEMPT_TRANSITIONS[AttemptState.CALLING]
    assert AttemptState.CALLING not in ATTEMPT_TRANSITIONS[AttemptState.ANSWERED]
