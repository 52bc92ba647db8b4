"""``@record``: the class decorator of the values the switch makes for every message.

A record is a frozen dataclass to mypy and a plain ``slots`` dataclass at run time. A frozen
dataclass's ``__init__`` sets each field through ``object.__setattr__`` (its own
``__setattr__`` refuses), about 1.2 thousand instructions a field against ~0.1 for a slot
store. The SIP transaction's effects, the authentication decision and the registrar's values
are made several times per message: frozen, they were 8.6 % of an authenticated registration
(docs/benchmarks.md, "Per-message values without the frozen check").

What stays: ``==`` and ``hash`` by value (``unsafe_hash``: the hash frozen gave them), ``repr``,
``dataclasses.replace``, and immutability where it is enforced for this code: mypy (strict on
``vosapp``, run by ``make test`` before the suite) reports any assignment to a record's field
as an error ("read-only"), through ``dataclass_transform(frozen_default=True)``. Code that is
not type-checked (a notebook) could assign one; a value that must refuse at run time (a
configuration, a parameter set) stays ``@dataclass(frozen=True)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar, dataclass_transform

__all__ = ["record"]

_T = TypeVar("_T")


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
def record(cls: type[_T]) -> type[_T]:
    """``cls`` as a slots dataclass, compared and hashed by value; frozen to type checkers."""
    return dataclass(slots=True, unsafe_hash=True)(cls)
