"""Errors raised by :mod:`vosapp.media.dtmf`.

Every error is a :class:`vosapp.errors.VosappError` (a person can fix the input) and a
:class:`ValueError` (so generic callers that catch ``ValueError`` keep working).
"""

from __future__ import annotations

from vosapp.errors import VosappError


class DtmfError(VosappError, ValueError):
    """Base of every DTMF error."""


class TuningError(DtmfError):
    """A detector tuning value is out of range; ``.field`` names the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"DetectorTuning.{field}: {message}")
        self.field = field


class AudioInputError(DtmfError):
    """Samples of the wrong dtype, shape, range or rate."""


class DigitError(DtmfError):
    """A character that is not a DTMF key (0-9, *, #, A-D)."""


class TelephoneEventError(DtmfError):
    """A malformed RFC 4733 telephone-event payload or an event out of range."""


class InfoBodyError(DtmfError):
    """A malformed SIP INFO DTMF body (application/dtmf-relay or application/dtmf)."""
