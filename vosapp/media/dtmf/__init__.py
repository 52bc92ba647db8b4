"""DTMF: inband tones (Q.23/Q.24), RFC 4733 telephone-events, SIP INFO bodies, conversion.

Numpy/bytes only (never imports ``sip`` or ``switch``), per ARCHITECTURE.md.
"""

from .convert import (
    DtmfConverter,
    DtmfMethod,
    DtmfSideSettings,
    MethodLock,
    ReceiveSetting,
    SendSetting,
    advertise_telephone_event,
    select_send_method,
)
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
from .info import InfoDigit, format_info_body, parse_info_body
from .rfc4733 import (
    TelephoneEvent,
    TelephoneEventReceiver,
    TelephoneEventSender,
    digit_for_event,
    event_for_digit,
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
    "DtmfConverter",
    "DtmfDetector",
    "DtmfDetectorBank",
    "DtmfError",
    "DtmfMethod",
    "DtmfSideSettings",
    "InfoBodyError",
    "InfoDigit",
    "MethodLock",
    "ReceiveSetting",
    "SendSetting",
    "TelephoneEvent",
    "TelephoneEventError",
    "TelephoneEventReceiver",
    "TelephoneEventSender",
    "TuningError",
    "advertise_telephone_event",
    "analyse_windows",
    "detect_digits",
    "detect_events",
    "digit_for_event",
    "digit_frequencies",
    "event_for_digit",
    "format_info_body",
    "generate_digits",
    "parse_info_body",
    "select_send_method",
    "tone_levels_dbm0",
]
