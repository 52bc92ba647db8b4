"""The base of the enums that state tables and lookups key on.

``enum.Enum`` hashes a member by its name in a Python function, a frame for every dict or
set lookup keyed on it: a call's transition checks and the auth policy's tables do a dozen
per call. A member is a singleton equal only to itself (``Enum`` defines no ``__eq__``), so
the identity hash is as valid and runs in C. Not for enums mixed with ``str`` or ``int``: a
member of those equals its value and must hash as the value does.
"""

from __future__ import annotations

import enum

__all__ = ["IdentityEnum"]


class IdentityEnum(enum.Enum):
    """An enum whose members hash by identity (see the module's docstring)."""

    __hash__ = object.__hash__
