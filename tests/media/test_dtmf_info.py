"""SIP INFO DTMF bodies: application/dtmf-relay and application/dtmf."""

from __future__ import annotations

import pytest

from vosapp.media.dtmf.errors import InfoBodyError
from vosapp.media.dtmf.info import (
    InfoDigit,
    format_dtmf,
    format_dtmf_relay,
    format_info_body,
    parse_dtmf,
    parse_dtmf_relay,
    parse_info_body,
)


def test_dtmf_relay_round_trip() -> None:
    assert format_dtmf_relay("5", 160) == "Signal=5\r\nDuration=160\r\n"
    assert parse_dtmf_relay(b"Signal=5\r\nDuration=160\r\n") == InfoDigit("5", 160)
    for key in "0123456789*#ABCD!":
        assert parse_dtmf_relay(format_dtmf_relay(key, 250)) == InfoDigit(key, 250)


@pytest.mark.parametrize(
    "body, expected",
    [
        ("signal= 9\nduration = 100\n", InfoDigit("9", 100)),  # LF, spaces, lower case
        ("Signal=#\r\n", InfoDigit("#", None)),  # Duration optional
        ("Signal=10\r\nDuration=200\r\n", InfoDigit("*", 200)),  # event code form
        ("Signal=16\r\nDuration=300\r\n", InfoDigit("!", 300)),  # flash
        ("Signal=d\r\nDuration=80\r\nX-Vendor=1\r\n\r\n", InfoDigit("D", 80)),  # unknown keys
    ],
)
def test_dtmf_relay_tolerant_parsing(body: str, expected: InfoDigit) -> None:
    assert parse_dtmf_relay(body) == expected


@pytest.mark.parametrize(
    "body, message",
    [
        ("Duration=160\r\n", "no Signal"),
        ("Signal=5\r\nSignal=6\r\n", "more than one Signal"),
        ("Signal=E\r\n", "'E' is not a DTMF key"),
        ("Signal=55\r\n", "'55' is not a DTMF key"),
        ("Signal=5\r\nDuration=abc\r\n", "Duration 'abc' is not a number"),
        ("Signal=5\r\nDuration=0\r\n", "outside 1-60000"),
        ("Signal 5\r\n", "has no '='"),
        (b"Signal=\xff\r\n", "not UTF-8"),
    ],
)
def test_dtmf_relay_errors(body: str | bytes, message: str) -> None:
    with pytest.raises(InfoBodyError, match=message):
        parse_dtmf_relay(body)


def test_application_dtmf() -> None:
    assert format_dtmf("5") == "5"
    assert parse_dtmf(b"5") == InfoDigit("5", None)
    assert parse_dtmf("#\r\n") == InfoDigit("#", None)
    with pytest.raises(InfoBodyError, match="empty"):
        parse_dtmf(b"  ")
    with pytest.raises(InfoBodyError, match="not a DTMF key"):
        parse_dtmf("55x")
    with pytest.raises(InfoBodyError, match="not a DTMF key"):
        format_dtmf("x")


def test_dispatch_by_content_type() -> None:
    assert parse_info_body(
        "Application/DTMF-Relay; charset=utf-8", "Signal=1\r\nDuration=90\r\n"
    ) == InfoDigit("1", 90)
    assert parse_info_body("application/dtmf", "*") == InfoDigit("*", None)
    assert format_info_body("application/dtmf-relay", "2", 120) == b"Signal=2\r\nDuration=120\r\n"
    assert format_info_body("application/dtmf", "2") == b"2"
    with pytest.raises(InfoBodyError, match="text/plain"):
        parse_info_body("text/plain", "5")
    with pytest.raises(InfoBodyError, match="Duration 0"):
        format_dtmf_relay("5", 0)


from hypothesis import given
from hypothesis import strategies as st


@given(key=st.sampled_from("0123456789*#ABCD!abcd"), duration=st.integers(1, 60_000))
def test_dtmf_relay_round_trip_property(key: str, duration: int) -> None:
    body = format_info_body("application/dtmf-relay", key, duration)
    assert parse_info_body("application/dtmf-relay", body) == InfoDigit(key.upper(), duration)
    assert parse_info_body(
        "application/dtmf", format_info_body("application/dtmf", key)
    ) == InfoDigit(key.upper(), None)
