"""docs/behaviour.md §6 DTMF conversion rules as pure decisions and a per-direction converter."""

from __future__ import annotations

import numpy as np
import pytest

from vosapp.media.dtmf import detect_digits, generate_digits
from vosapp.media.dtmf.convert import (
    DtmfConverter,
    DtmfMethod,
    DtmfSideSettings,
    ForwardEvent,
    GenerateTones,
    IgnoredDigit,
    MethodLock,
    ReceiveSetting,
    SendEvent,
    SendInfo,
    SendSetting,
    accepts,
    advertise_telephone_event,
    select_send_method,
    telephone_event_sdp,
)
from vosapp.media.dtmf.errors import DtmfError, InfoBodyError
from vosapp.media.dtmf.rfc4733 import TelephoneEventSender

M = DtmfMethod


# ---------------------------------------------------------------------------------------------
# Pure decisions


@pytest.mark.parametrize(
    "setting, accepted",
    [
        (ReceiveSetting.ALL, {M.RFC2833, M.SIP_INFO, M.INBAND}),
        (ReceiveSetting.RFC2833, {M.RFC2833}),
        (ReceiveSetting.SIP_INFO, {M.SIP_INFO}),
        (ReceiveSetting.INBAND, {M.INBAND}),
    ],
)
def test_receive_setting(setting: ReceiveSetting, accepted: set[DtmfMethod]) -> None:
    assert {m for m in DtmfMethod if accepts(setting, m)} == accepted


def test_use_peer_rfc2833_ability() -> None:
    # checked: advertise only if the peer offered it; unchecked: always.
    assert advertise_telephone_event(True, peer_offered=True)
    assert not advertise_telephone_event(True, peer_offered=False)
    assert advertise_telephone_event(False, peer_offered=True)
    assert advertise_telephone_event(False, peer_offered=False)


@pytest.mark.parametrize(
    "send, received, far, expected",
    [
        (SendSetting.AUTO, M.RFC2833, True, M.RFC2833),
        (SendSetting.AUTO, M.RFC2833, False, M.INBAND),
        (SendSetting.AUTO, M.SIP_INFO, False, M.SIP_INFO),
        (SendSetting.AUTO, M.INBAND, True, M.INBAND),
        (SendSetting.RFC2833, M.INBAND, True, M.RFC2833),
        (SendSetting.RFC2833, M.SIP_INFO, False, M.INBAND),
        (SendSetting.SIP_INFO, M.RFC2833, True, M.SIP_INFO),
        (SendSetting.INBAND, M.SIP_INFO, True, M.INBAND),
    ],
)
def test_send_method_selection(
    send: SendSetting, received: DtmfMethod, far: bool, expected: DtmfMethod
) -> None:
    assert select_send_method(send, received, far_rfc2833=far) is expected


def test_method_lock_keeps_the_first_method() -> None:
    lock = MethodLock()
    assert lock.admit(M.SIP_INFO)
    assert not lock.admit(M.RFC2833)
    assert lock.admit(M.SIP_INFO)
    assert not lock.admit(M.INBAND)
    assert lock.method is M.SIP_INFO


def test_settings_parse_and_validate() -> None:
    side = DtmfSideSettings(receive="sip info", send="rfc2833", payload_type=96)  # type: ignore[arg-type]
    assert side.receive is ReceiveSetting.SIP_INFO and side.send is SendSetting.RFC2833
    assert ReceiveSetting.parse("SIP_INFO") is ReceiveSetting.SIP_INFO
    assert SendSetting.parse("Auto") is SendSetting.AUTO
    with pytest.raises(DtmfError, match="DTMF send 'Always' is not one of Auto / RFC2833"):
        SendSetting.parse("Always")
    with pytest.raises(DtmfError, match="96-127"):
        DtmfSideSettings(payload_type=8)
    with pytest.raises(DtmfError, match="key range"):
        DtmfSideSettings(event_range=frozenset())
    assert telephone_event_sdp(DtmfSideSettings()) == ("101 telephone-event/8000", "101 0-16")
    assert telephone_event_sdp(
        DtmfSideSettings(payload_type=96, event_range=frozenset(range(16)))
    ) == (
        "96 telephone-event/8000",
        "96 0-15",
    )


# ---------------------------------------------------------------------------------------------
# Converter


def rfc2833(conv: DtmfConverter, digit: str, ms: int, ts: int, pt: int = 101) -> list:
    actions = []
    for p in TelephoneEventSender(pt).packets(digit, ms, timestamp=ts, sequence=ts % 65536):
        actions += conv.on_rfc2833(p.payload_type, p.timestamp, p.payload, marker=p.marker)
    return actions


def test_rfc2833_passes_with_each_sides_payload_type() -> None:
    conv = DtmfConverter(
        DtmfSideSettings(payload_type=101),
        DtmfSideSettings(payload_type=96),
        far_rfc2833=True,
    )
    actions = rfc2833(conv, "5", 100, ts=1000)
    sent = TelephoneEventSender(101).packets("5", 100, timestamp=1000, sequence=0)
    assert actions == [ForwardEvent(96, p.timestamp, p.marker, p.payload) for p in sent]
    assert conv.on_rfc2833(0, 1000, b"\x00" * 160) == []  # audio is not an event


def test_key_range_is_terminated_per_side() -> None:
    conv = DtmfConverter(
        DtmfSideSettings(),  # 0-16 in
        DtmfSideSettings(event_range=frozenset(range(16))),  # no flash out
        far_rfc2833=True,
    )
    actions = rfc2833(conv, "!", 100, ts=0)
    assert actions == [IgnoredDigit("!", M.RFC2833, "outside the far side's key range")]
    narrow_in = DtmfConverter(
        DtmfSideSettings(event_range=frozenset(range(12))), DtmfSideSettings(), far_rfc2833=True
    )
    assert rfc2833(narrow_in, "A", 100, ts=0) == []  # dropped on receipt


def test_rfc2833_to_inband_generates_tones_and_discards_the_event() -> None:
    conv = DtmfConverter(DtmfSideSettings(), DtmfSideSettings(send="Inband"), far_rfc2833=True)  # type: ignore[arg-type]
    actions = rfc2833(conv, "8", 120, ts=0) + rfc2833(conv, "#", 80, ts=4000)
    assert [type(a) for a in actions] == [GenerateTones, GenerateTones]
    assert [a.digit for a in actions] == ["8", "#"]
    assert len(actions[0].samples) == 960  # 120 ms at 8 kHz
    assert detect_digits(np.concatenate([actions[0].samples, np.zeros(400, np.int16)])) == "8"


def test_rfc2833_to_sip_info() -> None:
    conv = DtmfConverter(DtmfSideSettings(), DtmfSideSettings(send="SIP INFO"), far_rfc2833=True)  # type: ignore[arg-type]
    (action,) = rfc2833(conv, "5", 100, ts=0)
    assert action == SendInfo("application/dtmf-relay", b"Signal=5\r\nDuration=100\r\n", "5", 100)


def test_info_to_rfc2833_and_inband() -> None:
    to_rtp = DtmfConverter(
        DtmfSideSettings(),
        DtmfSideSettings(send="RFC2833", payload_type=97),
        far_rfc2833=True,  # type: ignore[arg-type]
    )
    assert to_rtp.on_info("application/dtmf-relay", b"Signal=3\r\nDuration=200\r\n") == [
        SendEvent("3", 200, 97)
    ]
    to_rtp_without_te = DtmfConverter(
        DtmfSideSettings(),
        DtmfSideSettings(send="RFC2833"),
        far_rfc2833=False,  # type: ignore[arg-type]
    )
    (tones,) = to_rtp_without_te.on_info("application/dtmf", b"9")
    assert isinstance(tones, GenerateTones) and len(tones.samples) == 160 * 8
    with pytest.raises(InfoBodyError):
        to_rtp.on_info("application/dtmf-relay", b"Duration=1\r\n")


def test_inband_to_rfc2833_by_detection() -> None:
    conv = DtmfConverter(DtmfSideSettings(), DtmfSideSettings(send="RFC2833"), far_rfc2833=True)  # type: ignore[arg-type]
    audio = np.concatenate([generate_digits("1#9", on_ms=80, off_ms=60), np.zeros(800, np.int16)])
    actions = []
    for i in range(0, len(audio), 160):  # 20 ms packets
        actions += conv.on_audio(audio[i : i + 160])
    assert [(type(a), a.digit) for a in actions] == [(SendEvent, d) for d in "1#9"]
    assert all(70 <= a.duration_ms <= 90 and a.payload_type == 101 for a in actions)


def test_inband_to_inband_needs_nothing() -> None:
    conv = DtmfConverter(DtmfSideSettings(), DtmfSideSettings(send="Inband"), far_rfc2833=True)  # type: ignore[arg-type]
    assert conv.on_audio(generate_digits("42")) == []
    assert conv.lock.method is M.INBAND


def test_first_detected_method_lock_in_a_call() -> None:
    conv = DtmfConverter(DtmfSideSettings(), DtmfSideSettings(send="SIP INFO"), far_rfc2833=True)  # type: ignore[arg-type]
    assert [type(a) for a in conv.on_info("application/dtmf", "1")] == [SendInfo]
    assert rfc2833(conv, "1", 100, ts=0) == [
        IgnoredDigit("1", M.RFC2833, "call locked to SIP INFO")
    ]
    assert [type(a) for a in conv.on_info("application/dtmf", "2")] == [SendInfo]

    other = DtmfConverter(DtmfSideSettings(), DtmfSideSettings(send="SIP INFO"), far_rfc2833=True)  # type: ignore[arg-type]
    assert [type(a) for a in rfc2833(other, "7", 100, ts=0)] == [SendInfo]
    assert other.on_info("application/dtmf", "7") == [
        IgnoredDigit("7", M.SIP_INFO, "call locked to RFC2833")
    ]


def test_receive_setting_filters_methods() -> None:
    conv = DtmfConverter(DtmfSideSettings(receive="RFC2833"), DtmfSideSettings(), far_rfc2833=True)  # type: ignore[arg-type]
    assert conv.on_info("application/dtmf", "5") == [
        IgnoredDigit("5", M.SIP_INFO, "DTMF receive is RFC2833")
    ]
    assert [type(a) for a in rfc2833(conv, "5", 60, ts=0)] == [ForwardEvent] * 5
