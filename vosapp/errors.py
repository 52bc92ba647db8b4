"""The base of every error meant for a person.

The CLI prints a :class:`VosappError` on one line and exits 2; notebooks show its message
as is. Code raises a specific subclass (``ParameterError``, ``ConfigError``, ``StoreError``)
whose message says what was wrong, with which value, and what is allowed.
"""

from __future__ import annotations


class VosappError(Exception):
    """An error caused by input a person can fix (a value, a file, a setting)."""
