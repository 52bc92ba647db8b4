"""DTMF: inband tones (Q.23/Q.24), RFC 4733 telephone-events, SIP INFO bodies, conversion.

Numpy/bytes only (never imports ``sip`` or ``switch``), per ARCHITECTURE.md.
"""

from .errors import (
    AudioInputError,
    DigitError,
    DtmfError,
    InfoBodyError,
    TelephoneEventError,
    TuningError,
)
from .inband import (
    COLUMN_FREQUENCIES,
    DIGITS,
    FULL_SCALE_DBM0,
    ROW_FREQUENCIES,
    SUPPORTED_RATES,
    DetectorTuning,
    DigitEvent,
    DtmfDetector,
    DtmfDetectorBank,
    analyse_windows,
    detect_digits,
    detect_events,
    digit_frequencies,
    generate_digits,
    tone_levels_dbm0,
)

__all__ = [
    "COLUMN_FREQUENCIES",
    "DIGITS",
    "FULL_SCALE_DBM0",
    "ROW_FREQUENCIES",
    "SUPPORTED_RATES",
    "AudioInputError",
    "DetectorTuning",
    "DigitError",
    "DigitEvent",
    "DtmfDetector",
    "DtmfDetectorBank",
    "DtmfError",
    "InfoBodyError",
    "TelephoneEventError",
    "TuningError",
    "analyse_windows",
    "detect_digits",
    "detect_events",
    "digit_frequencies",
    "generate_digits",
    "tone_levels_dbm0",
]
