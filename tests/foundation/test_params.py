"""The SS_* registry against SPEC §1, Param.coerce's accepted forms and every rejection."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from vosapp.errors import VosappError
from vosapp.params import (
    REGISTRY,
    GatewaySettings,
    Kind,
    Param,
    ParameterError,
    Params,
    UpstreamRegistration,
)

# SPEC §1 lives in the shared folder next to the clone (../shared in CI).
SPEC = Path(__file__).resolve().parents[2] / ".." / "shared" / "docs" / "SPEC.md"

# In-repo copy of SPEC §1 (name: default, minimum, maximum, source), so the registry stays
# guarded when ../shared is absent. Keep in the SPEC's order.
EXPECTED = {
    "SS_SIP_AUTHENTICATION_CODE": (401, None, None, "seed"),
    "SS_SIP_AUTHENTICATION_RETRY": (6, 0, 999, "seed"),
    "SS_SIP_AUTHENTICATION_TIMEOUT": (10, 1, 3600, "seed"),
    "SS_AUTHENTICATION_MAX_RETRY": (6, 0, 999, "seed"),
    "SS_AUTHENTICATION_FAILED_SUSPEND": (180, 60, 3600, "seed"),
    "SS_REPLY_UNAUTHORIZED": (True, None, None, "seed"),
    "SS_ENDPOINT_REGISTER_REPLACE": (True, None, None, "seed"),
    "SS_ENDPOINT_REGISTER_RETRY": (6, 0, 999, "seed"),
    "SS_ENDPOINT_REGISTER_SUSPEND": (180, 0, 3600, "seed"),
    "SS_SIP_USER_AGENT_SEND_UNREGISTER": (True, None, None, "seed"),
    "SS_SIP_USER_AGENT_EXPIRE": ("Auto", 20, 7200, "seed"),
    "SS_SIP_USER_AGENT_RETRY_DELAY": (60, 30, 600, "seed"),
    "SS_SIP_USER_AGENT_PRIVACY": ("Ignore", None, None, "seed"),
    "SS_SIP_USER_AGENT_STOP_SWITCH_AFTER_INVITE_TIMEOUT": (False, None, None, "seed"),
    "SS_SIP_RESEND_INTERVAL": (500, 100, 4000, "secondary"),
    "SS_SIP_TIMEOUT_INVITE": (10, 1, 300, "secondary"),
    "SS_SIP_TIMEOUT_TRYING": (20, 1, 300, "secondary"),
    "SS_SIP_TIMEOUT_SESSION_PROGRESS": (20, 1, 300, "secondary"),
    "SS_SIP_TIMEOUT_SESSION_PROGRESS_SDP": (120, 1, 600, "secondary"),
    "SS_SIP_TIMEOUT_RINGING": (120, 1, 600, "secondary"),
    "SS_SIP_SESSION_TTL": (600, 90, 7200, "secondary"),
    "SS_SIP_SESSION_UPDATE_SEGMENT": (2, 2, 10, "secondary"),
    "SS_SIP_SESSION_TIMEOUT_EARLY_HANGUP": (True, None, None, "secondary"),
    "SS_SIP_NO_TIMER_REINVITE_INTERVAL": (0, 60, 7200, "secondary"),
    "SS_SIP_NAT_KEEP_ALIVE_PERIOD": (30, 10, 3600, "secondary"),
    "SS_SIP_NAT_KEEP_ALIVE_MESSAGE": ("HELLO", None, None, "secondary"),
    "SS_SIP_PUBLISH_EXPIRE": (3600, 60, 7200, "secondary"),
}


def spec_rows() -> list[list[str]]:
    if not SPEC.is_file():
        pytest.skip(f"SPEC not found at {SPEC.resolve()} (shared/ is not next to this clone); "
                    "the in-repo EXPECTED list still guards the registry")
    text = SPEC.read_text(encoding="utf-8")
    section = text.split("## 1.", 1)[1].split("\n## ", 1)[0]
    return [[cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in section.splitlines() if line.startswith("| SS_")]


def test_registry_matches_in_repo_expected_list() -> None:
    assert list(REGISTRY.names()) == list(EXPECTED)
    for name, (default, minimum, maximum, source) in EXPECTED.items():
        param = REGISTRY[name]
        assert (param.default, param.source) == (default, source), name
        if minimum is not None:
            assert (param.minimum, param.maximum) == (minimum, maximum), name


def test_registry_matches_spec_table() -> None:
    rows = spec_rows()
    assert [row[0] for row in rows] == list(REGISTRY.names())
    for name, default, allowed, _meaning, source in rows:
        param = REGISTRY[name]
        assert param.source == source, name
        assert param.coerce(default) == param.default, f"{name}: SPEC default {default!r}"
        numbers = re.findall(r"(\d+)\s*–\s*(\d+)", allowed)
        if numbers:
            assert (param.minimum, param.maximum) == tuple(map(int, numbers[-1])), name
            assert param.zero_disables == allowed.startswith("0 (off)"), name
        elif param.kind in (Kind.CHOICE, Kind.STATUS_CODE):
            assert [o.split()[0] for o in param.options] == allowed.split(" / "), name
        elif param.kind is Kind.ON_OFF:
            assert allowed == "On / Off", name


def test_every_param_documents_provenance() -> None:
    for param in REGISTRY:
        assert param.description and param.navigation.startswith("Operation management >")
        assert param.value_source
        if param.source == "secondary":
            assert "vosapp's choice" in param.value_source, param.name
    quoted = {p.name for p in REGISTRY if p.navigation_quoted}
    assert "SS_SIP_USER_AGENT_SEND_UNREGISTER" in quoted
    assert "SS_SIP_RESEND_INTERVAL" not in quoted  # the articles never give its path


def test_registry_protocol() -> None:
    assert len(REGISTRY) == len(EXPECTED)
    assert "SS_REPLY_UNAUTHORIZED" in REGISTRY and "SS_NOPE" not in REGISTRY
    assert [p.name for p in REGISTRY] == list(REGISTRY.names())
    with pytest.raises(ParameterError, match="did you mean SS_SIP_AUTHENTICATION_RETRY"):
        REGISTRY["SS_SIP_AUTHENTICATION_RETRI"]


@pytest.mark.parametrize(("name", "typed", "expected"), [
    ("SS_REPLY_UNAUTHORIZED", "On", True),
    ("SS_REPLY_UNAUTHORIZED", "off", False),
    ("SS_REPLY_UNAUTHORIZED", "true", True),
    ("SS_REPLY_UNAUTHORIZED", "FALSE", False),
    ("SS_REPLY_UNAUTHORIZED", "1", True),
    ("SS_REPLY_UNAUTHORIZED", 0, False),
    ("SS_REPLY_UNAUTHORIZED", True, True),
    ("SS_SIP_AUTHENTICATION_CODE", "401", 401),
    ("SS_SIP_AUTHENTICATION_CODE", 407, 407),
    ("SS_SIP_AUTHENTICATION_CODE", "401 Unauthorized", 401),
    ("SS_SIP_AUTHENTICATION_CODE", "407 Proxy Authentication Required", 407),
    ("SS_SIP_USER_AGENT_EXPIRE", "Auto", "Auto"),
    ("SS_SIP_USER_AGENT_EXPIRE", "auto negotiation", "Auto"),
    ("SS_SIP_USER_AGENT_EXPIRE", "3600", 3600),
    ("SS_SIP_USER_AGENT_EXPIRE", "2 min", 120),
    ("SS_AUTHENTICATION_FAILED_SUSPEND", 180, 180),
    ("SS_AUTHENTICATION_FAILED_SUSPEND", "180", 180),
    ("SS_AUTHENTICATION_FAILED_SUSPEND", "180s", 180),
    ("SS_AUTHENTICATION_FAILED_SUSPEND", " 180 s ", 180),
    ("SS_AUTHENTICATION_FAILED_SUSPEND", "3min", 180),
    ("SS_AUTHENTICATION_FAILED_SUSPEND", "60000ms", 60),
    ("SS_AUTHENTICATION_FAILED_SUSPEND", 600.0, 600),
    ("SS_SIP_RESEND_INTERVAL", "500ms", 500),
    ("SS_SIP_RESEND_INTERVAL", "2s", 2000),
    ("SS_SIP_RESEND_INTERVAL", 250, 250),
    ("SS_SIP_NAT_KEEP_ALIVE_PERIOD", "0", 0),
    ("SS_SIP_NO_TIMER_REINVITE_INTERVAL", 0, 0),
    ("SS_SIP_NO_TIMER_REINVITE_INTERVAL", "1h", 3600),
    ("SS_SIP_USER_AGENT_PRIVACY", "id", "Id"),
    ("SS_SIP_USER_AGENT_PRIVACY", "NONE", "None"),
    ("SS_SIP_NAT_KEEP_ALIVE_MESSAGE", "options", "OPTIONS"),
    ("SS_SIP_NAT_KEEP_ALIVE_MESSAGE", "ping me", "ping me"),
    ("SS_SIP_AUTHENTICATION_RETRY", "0", 0),
    ("SS_SIP_AUTHENTICATION_RETRY", 999, 999),
])
def test_coerce_accepts_typed_forms(name: str, typed: object, expected: object) -> None:
    assert REGISTRY[name].coerce(typed) == expected
    assert type(REGISTRY[name].coerce(typed)) is type(expected)


@pytest.mark.parametrize(("name", "bad", "fragment"), [
    ("SS_REPLY_UNAUTHORIZED", "maybe", "On or Off"),
    ("SS_REPLY_UNAUTHORIZED", 2, "On or Off"),
    ("SS_SIP_AUTHENTICATION_CODE", "403", "401 Unauthorized / 407"),
    ("SS_SIP_AUTHENTICATION_CODE", "Unauthorized", "401 Unauthorized / 407"),
    ("SS_SIP_AUTHENTICATION_CODE", True, "401 Unauthorized / 407"),
    ("SS_AUTHENTICATION_FAILED_SUSPEND", 10, "out of range; allowed: 60-3600 s"),
    ("SS_AUTHENTICATION_FAILED_SUSPEND", "3601", "60-3600 s"),
    ("SS_AUTHENTICATION_FAILED_SUSPEND", "1500ms", "not a whole number of s"),
    ("SS_AUTHENTICATION_FAILED_SUSPEND", "ten", "not a number"),
    ("SS_AUTHENTICATION_FAILED_SUSPEND", "180 parsecs", "unit this parameter does not take"),
    ("SS_AUTHENTICATION_FAILED_SUSPEND", 180.5, "not a number"),
    ("SS_AUTHENTICATION_FAILED_SUSPEND", None, "not a number"),
    ("SS_AUTHENTICATION_FAILED_SUSPEND", True, "not a number"),
    ("SS_SIP_AUTHENTICATION_RETRY", "5s", "unit this parameter does not take (count)"),
    ("SS_SIP_AUTHENTICATION_RETRY", -1, "0-999"),
    ("SS_SIP_AUTHENTICATION_RETRY", 1000, "0-999"),
    ("SS_SIP_RESEND_INTERVAL", "50ms", "100-4000 ms"),
    ("SS_SIP_USER_AGENT_EXPIRE", "10", "Auto or 20-7200 s"),
    ("SS_SIP_USER_AGENT_EXPIRE", "sometimes", "Auto or 20-7200 s"),
    ("SS_SIP_NAT_KEEP_ALIVE_PERIOD", 5, "0 (off) or 10-3600 s"),
    ("SS_SIP_USER_AGENT_PRIVACY", "Full", "Ignore / Id / None"),
    ("SS_SIP_USER_AGENT_PRIVACY", 1, "Ignore / Id / None"),
    ("SS_SIP_NAT_KEEP_ALIVE_MESSAGE", "", "printable ASCII"),
    ("SS_SIP_NAT_KEEP_ALIVE_MESSAGE", "two\r\nlines", "printable ASCII"),
    ("SS_SIP_NAT_KEEP_ALIVE_MESSAGE", "x" * 201, "printable ASCII"),
    ("SS_SIP_NAT_KEEP_ALIVE_MESSAGE", 42, "not text"),
    # Only ASCII digits are numbers: int() and \d also take Arabic-Indic and fullwidth digits.
    ("SS_SIP_AUTHENTICATION_RETRY", "\u0663", "not a number (digits 0-9 only)"),
    ("SS_AUTHENTICATION_FAILED_SUSPEND", "\uff11\uff18\uff10", "digits 0-9 only"),
    ("SS_AUTHENTICATION_FAILED_SUSPEND", "1\u0668\u0660s", "digits 0-9 only"),
    ("SS_SIP_AUTHENTICATION_CODE", "\u0664\u0660\u0667", "401 Unauthorized / 407"),
])
def test_coerce_rejects_with_name_value_and_allowed(name: str, bad: object,
                                                     fragment: str) -> None:
    with pytest.raises(ParameterError) as info:
        REGISTRY[name].coerce(bad)
    message = str(info.value)
    assert message.startswith(f"{name}: ") and fragment in message
    assert repr(bad)[:40] in message
    assert isinstance(info.value, VosappError) and info.value.name == name


def test_params_is_an_immutable_validated_value() -> None:
    defaults = Params.defaults()
    assert defaults == Params() and defaults.changed() == ()
    assert defaults["SS_SIP_AUTHENTICATION_RETRY"] == 6
    changed = defaults.replace(SS_SIP_AUTHENTICATION_RETRY="5", SS_REPLY_UNAUTHORIZED="Off")
    assert changed["SS_SIP_AUTHENTICATION_RETRY"] == 5
    assert changed["SS_REPLY_UNAUTHORIZED"] is False
    assert defaults["SS_SIP_AUTHENTICATION_RETRY"] == 6  # the original is untouched
    assert changed.changed() == ("SS_SIP_AUTHENTICATION_RETRY", "SS_REPLY_UNAUTHORIZED")
    as_dict = changed.as_dict()
    as_dict["SS_SIP_AUTHENTICATION_RETRY"] = 99
    assert changed["SS_SIP_AUTHENTICATION_RETRY"] == 5
    assert set(as_dict) == set(REGISTRY.names())
    assert hash(changed) == hash(defaults.replace(SS_SIP_AUTHENTICATION_RETRY=5,
                                                  SS_REPLY_UNAUTHORIZED=False))
    with pytest.raises(AttributeError):
        changed._values = {}  # type: ignore[misc]
    with pytest.raises(TypeError):
        changed._values["SS_SIP_AUTHENTICATION_RETRY"] = 1  # type: ignore[index]
    with pytest.raises(ParameterError, match="60-3600"):
        defaults.replace(SS_AUTHENTICATION_FAILED_SUSPEND=10)
    with pytest.raises(ParameterError, match="not a known parameter"):
        defaults.replace(SS_TYPO=1)
    with pytest.raises(ParameterError, match="not a known parameter"):
        defaults["SS_TYPO"]
    with pytest.raises(ParameterError, match="60-3600"):
        Params({"SS_AUTHENTICATION_FAILED_SUSPEND": 1})
    assert repr(defaults) == "Params.defaults()"


def test_gateway_settings_defaults_and_typed_forms() -> None:
    default = GatewaySettings()
    assert (default.codec_mode, default.media_proxy, default.dtmf_receive,
            default.dtmf_send, default.rfc2833_payload) == (
        "Auto negotiation", "Auto", "All", "Auto", 101)
    typed = GatewaySettings(codec_mode="softswitch specified", specified_codec="g711a",
                            allow_codec_conversion="on", g729_mode="g729&g729a",
                            media_proxy="ON", dtmf_receive="sip info", dtmf_send="rfc2833",
                            rfc2833_payload="96", use_peer_rfc2833="true",
                            privacy="id", p_asserted_identity="from caller",
                            display_from="off")
    assert typed == GatewaySettings(
        codec_mode="Softswitch specified", specified_codec="PCMA", allow_codec_conversion=True,
        g729_mode="G729&G729a", media_proxy="On", dtmf_receive="SIP INFO",
        dtmf_send="RFC2833", rfc2833_payload=96, use_peer_rfc2833=True, privacy="Id",
        p_asserted_identity="From caller", display_from=False)
    for codec in ("PCMA", "PCMU", "G729", "G723", "G722"):
        assert GatewaySettings(specified_codec=codec.lower()).specified_codec == codec
    assert GatewaySettings(specified_codec="G.711u").specified_codec == "PCMU"
    with pytest.raises(AttributeError):
        default.media_proxy = "On"  # type: ignore[misc]


@pytest.mark.parametrize(("field", "bad", "fragment"), [
    ("codec_mode", "fixed", "Auto negotiation / Softswitch specified"),
    ("specified_codec", "OPUS", "PCMA / PCMU / G729 / G723 / G722"),
    ("allow_codec_conversion", "perhaps", "On or Off"),
    ("g729_mode", "G729b", "Auto / G729 / G729a / G729&G729a"),
    ("media_proxy", "sometimes", "Auto / On / Off"),
    ("dtmf_receive", "Auto", "All / RFC2833 / SIP INFO / Inband"),
    ("dtmf_send", "All", "Auto / RFC2833 / SIP INFO / Inband"),
    ("rfc2833_payload", 95, "96-127"),
    ("rfc2833_payload", 128, "96-127"),
    ("rfc2833_payload", "x", "not a number"),
    ("rfc2833_payload", "\u0661\u0660\u0661", "not a number (digits 0-9 only)"),
    ("use_peer_rfc2833", 7, "On or Off"),
    ("privacy", "hide", "Passthrough / Remove / Id / None"),
    ("p_asserted_identity", "yes", "Passthrough / Remove / From caller"),
    ("display_from", "name", "On or Off"),
])
def test_gateway_settings_reject(field: str, bad: object, fragment: str) -> None:
    with pytest.raises(ParameterError) as info:
        GatewaySettings(**{field: bad})
    assert str(info.value).startswith(f"gateway.{field}: ") and fragment in str(info.value)


def test_upstream_registration() -> None:
    reg = UpstreamRegistration(sip_proxy="127.0.0.1:5070", auth_user="trunk", password="pw",
                               signaling_port="5062", register_period="auto negotiation")
    assert reg.proxy_address == ("127.0.0.1", 5070)
    assert (reg.signaling_port, reg.register_period) == (5062, "Auto negotiation")
    assert "pw" not in repr(reg)  # secrets stay out of logs and tracebacks
    assert UpstreamRegistration(sip_proxy="carrier.example", auth_user="u").proxy_address == (
        "carrier.example", 5060)
    assert UpstreamRegistration(sip_proxy="[::1]:5070", auth_user="u").proxy_address == (
        "::1", 5070)
    assert UpstreamRegistration(sip_proxy="h", auth_user="u").register_period == "Default"


@pytest.mark.parametrize(("kwargs", "fragment"), [
    ({"auth_user": "u"}, "register.sip_proxy: '' is missing"),
    ({"sip_proxy": "h:99999", "auth_user": "u"}, "port out of range"),
    ({"sip_proxy": "h:p", "auth_user": "u"}, "not host:port"),
    ({"sip_proxy": "h:\u0665\u0660\u0667\u0660", "auth_user": "u"}, "not host:port"),
    ({"sip_proxy": "h"}, "register.auth_user: '' is missing"),
    ({"sip_proxy": "h", "auth_user": "a b"}, "not a SIP user name"),
    ({"sip_proxy": "h", "auth_user": "u", "signaling_port": 0}, "1-65535"),
    ({"sip_proxy": "h", "auth_user": "u", "register_period": "1h"}, "Default / Auto"),
    ({"sip_proxy": "h", "auth_user": "u", "password": 1234}, "not text"),
])
def test_upstream_registration_rejects(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(ParameterError, match=re.escape(fragment)):
        UpstreamRegistration(**kwargs)  # type: ignore[arg-type]


INTEGER_PARAMS = [p for p in REGISTRY if p.kind in (Kind.INTEGER, Kind.AUTO_OR_INTEGER)]


@pytest.mark.parametrize("param", INTEGER_PARAMS, ids=lambda p: p.name)
def test_integer_forms_round_trip(param: Param) -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=60, deadline=None)
    @given(st.integers(min_value=-10_000, max_value=20_000))
    def check(number: int) -> None:
        inside = param.minimum <= number <= param.maximum or (
            param.zero_disables and number == 0)
        forms: list[object] = [number, str(number), f" {number} "]
        if param.unit in ("s", "ms"):
            forms.append(f"{number}{param.unit}")
        for form in forms:
            if inside:
                assert param.coerce(form) == number
            else:
                with pytest.raises(ParameterError, match=param.name):
                    param.coerce(form)

    check()


@pytest.mark.parametrize("param", list(REGISTRY), ids=lambda p: p.name)
def test_formatted_values_coerce_back(param: Param) -> None:
    assert param.coerce(param.format(param.default)) == param.default
