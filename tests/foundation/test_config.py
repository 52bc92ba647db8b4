"""The TOML config loader: data/lab.toml, and one test per kind of error."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

import pytest

from vosapp.config import ConfigError, Limits, load_config, parse_config
from vosapp.errors import VosappError
from vosapp.params import GatewaySettings

REPO_ROOT = Path(__file__).resolve().parents[2]
LAB = REPO_ROOT / "data" / "lab.toml"

MINIMAL = """
[switch]
sip_listen = "127.0.0.1:5070"
data_dir = "state"

[[account]]
user = "1001"
password = "pw"

[[mapping_gateway]]
name = "customers"
accounts = ["1001"]

[[routing_gateway]]
name = "vendor"
address = "127.0.0.1:5080"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "conf" / "test.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_lab_toml_is_the_documented_default() -> None:
    config = load_config(LAB)
    switch = config.switch
    assert (switch.sip_host, switch.sip_port, switch.media_ip) == ("127.0.0.1", 5060, "127.0.0.1")
    assert (switch.rtp_port_min, switch.rtp_port_max) == (20000, 20999)
    assert switch.data_dir == (REPO_ROOT / "var" / "lab").resolve()
    assert [a.user for a in config.accounts] == ["1001", "1002"]
    assert config.account("1002").allows("127.0.0.1")
    assert not config.account("1002").allows("192.0.2.1")
    assert config.account("1001").allows("192.0.2.1")
    (mapping,) = config.mapping_gateways
    assert mapping.accounts == ("1001", "1002")
    (routing,) = config.routing_gateways
    assert (routing.host, routing.port, routing.prefixes) == ("127.0.0.1", 5080, ("", "9"))
    assert routing.register is None
    assert "lab-only" in LAB.read_text().lower()
    assert config.parameters.changed() == ()


def test_lab_toml_register_example_is_valid_when_uncommented(tmp_path: Path) -> None:
    text = re.sub(r"(?m)^# (\[routing_gateway\.register\]|\[limits\]|[a-z_]+ = )", r"\1",
                  LAB.read_text())
    config = load_config(write(tmp_path, text))
    assert config.limits == Limits()  # the commented [limits] shows the defaults
    register = config.routing_gateways[0].register
    assert register is not None and register.proxy_address == ("127.0.0.1", 5070)
    assert register.auth_user == "vosapp-trunk"


def test_minimal_config_and_relative_data_dir(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + '\n[parameters]\nSS_SIP_AUTHENTICATION_CODE = '
                 '"407 Proxy Authentication Required"\nSS_REPLY_UNAUTHORIZED = "Off"\n')
    config = load_config(path)
    # relative to the config file's folder, not to the current directory
    assert config.switch.data_dir == (tmp_path / "conf" / "state").resolve()
    assert config.path == path.resolve()
    assert config.switch.media_ip == "127.0.0.1"  # defaults to the listen address
    assert config.parameters["SS_SIP_AUTHENTICATION_CODE"] == 407
    assert config.parameters["SS_REPLY_UNAUTHORIZED"] is False
    assert config.routing_gateways[0].settings == GatewaySettings()
    assert config.routing_gateways[0].transport == "udp"


def test_everything_optional_is_optional(tmp_path: Path) -> None:
    config = parse_config("", path=tmp_path / "empty.toml")
    assert config.switch.sip_port == 5060 and config.accounts == ()


def test_networks_and_settings_are_parsed(tmp_path: Path) -> None:
    text = MINIMAL.replace('password = "pw"', 'password = "pw"\nnetworks = ["10.0.0.0/8", '
                           '"192.0.2.7"]').replace(
        'name = "vendor"', 'name = "vendor"\nspecified_codec = "g729"\nmedia_proxy = "on"\n'
        'rfc2833_payload = 100\nprefixes = ["9", "00"]\npriority = 2\ntransport = "TCP"')
    config = load_config(write(tmp_path, text))
    assert config.accounts[0].networks == (ipaddress.ip_network("10.0.0.0/8"),
                                           ipaddress.ip_network("192.0.2.7/32"))
    vendor = config.routing_gateways[0]
    assert (vendor.settings.specified_codec, vendor.settings.media_proxy,
            vendor.settings.rfc2833_payload) == ("G729", "On", 100)
    assert (vendor.prefixes, vendor.priority, vendor.transport) == (("9", "00"), 2, "tcp")


@pytest.mark.parametrize(("old", "new", "table", "key", "why"), [
    # unknown keys, at every level
    ("[switch]", "[switch]\nsip_lsiten = '1.2.3.4:5'", "switch", "sip_lsiten", "unknown key"),
    ("[switch]", "[swtich]\n[switch]", None, "swtich", "unknown key"),
    ('password = "pw"', 'password = "pw"\npasword = "x"', "account #1", "pasword",
     "unknown key"),
    ('accounts = ["1001"]', 'accounts = ["1001"]\nmedia_prxy = "On"',
     "mapping_gateway 'customers'", "media_prxy", "unknown key (did you mean 'media_proxy'?)"),
    ('address = "127.0.0.1:5080"', ('address = "127.0.0.1:5080"\n[routing_gateway.register]\n'
     'sip_proxy = "h:5060"\nauth_user = "u"\nrealm = "x"'),
     "routing_gateway 'vendor'.register", "realm", "unknown key"),
    # wrong types and values
    ('sip_listen = "127.0.0.1:5070"', 'sip_listen = 5070', "switch", "sip_listen",
     "must be a string"),
    ('sip_listen = "127.0.0.1:5070"', 'sip_listen = "127.0.0.1:70000"', "switch",
     "sip_listen", "port out of range"),
    ('sip_listen = "127.0.0.1:5070"', 'sip_listen = "localhost:5070"', "switch", "sip_listen",
     "not an IP address to bind"),
    ("[switch]", '[switch]\nmedia_ip = "0.0.0.0"', "switch", "media_ip", "cannot go into SDP"),
    ("[switch]", '[switch]\nmedia_ip = "my-host"', "switch", "media_ip", "not an IP address"),
    ("[switch]", '[switch]\nrtp_ports = "30000-20000"', "switch", "rtp_ports", "MIN-MAX"),
    ("[switch]", '[switch]\nrtp_ports = [80, 90]', "switch", "rtp_ports", "1024 <= MIN"),
    ("[switch]", '[switch]\nrtp_ports = "lots"', "switch", "rtp_ports", "MIN-MAX"),
    ('user = "1001"', 'user = "10 01"', "account #1", "user", "not a SIP user name"),
    ('password = "pw"', 'password = ""', "account #1", "password", "must not be empty"),
    ('password = "pw"', "", "account #1", "password", "missing (required)"),
    ('password = "pw"', 'password = "pw"\nnetworks = ["10.0.0.300/8"]', "account #1",
     "networks", "not an IP address or network"),
    ('password = "pw"', 'password = "pw"\nnetworks = 5', "account #1", "networks",
     "string or a list of strings"),
    ('accounts = ["1001"]', 'accounts = ["1009"]', "mapping_gateway #1", "accounts",
     "'1009' is not defined"),
    ('accounts = ["1001"]', 'prefixes = ["9"]', "mapping_gateway 'customers'", "accounts",
     "needs accounts or addresses"),
    ('accounts = ["1001"]', 'accounts = ["1001"]\nrfc2833_payload = 200',
     "mapping_gateway 'customers'", "rfc2833_payload", "96-127"),
    ('accounts = ["1001"]', 'accounts = ["1001"]\nprefixes = ["9x"]',
     "mapping_gateway 'customers'", "prefixes", "not a dialled-number prefix"),
    ('address = "127.0.0.1:5080"', 'address = "127.0.0.1:0"', "routing_gateway 'vendor'",
     "address", "port out of range"),
    ('address = "127.0.0.1:5080"', "", "routing_gateway 'vendor'", "address", "missing"),
    ('address = "127.0.0.1:5080"', 'address = "127.0.0.1:5080"\ntransport = "sctp"',
     "routing_gateway 'vendor'", "transport", "not udp or tcp"),
    ('address = "127.0.0.1:5080"', 'address = "127.0.0.1:5080"\npriority = -1',
     "routing_gateway 'vendor'", "priority", "out of range"),
    ('address = "127.0.0.1:5080"', 'address = "127.0.0.1:5080"\npriority = "high"',
     "routing_gateway 'vendor'", "priority", "must be an integer"),
    ('address = "127.0.0.1:5080"', 'address = "127.0.0.1:5080"\nregister = 1',
     "routing_gateway 'vendor'", "register", "must be a table"),
    ('address = "127.0.0.1:5080"', ('address = "127.0.0.1:5080"\n[routing_gateway.register]\n'
     'sip_proxy = "h:5060"'), "routing_gateway 'vendor'.register", "auth_user", "missing"),
    ('name = "vendor"', 'name = "customers"', "mapping_gateway/routing_gateway", "name",
     "defined twice"),
    ('name = "vendor"', 'name = ""', "routing_gateway #1", "name", "must not be empty"),
    ('name = "vendor"', 'name = 7', "routing_gateway #1", "name", "must be a string"),
    ("[switch]", '[parameters]\nSS_AUTHENTICATION_FAILED_SUSPEND = 10\n[switch]',
     "parameters", "SS_AUTHENTICATION_FAILED_SUSPEND", "60-3600"),
    ("[switch]", '[parameters]\nSS_NOT_A_PARAM = 1\n[switch]', "parameters", "SS_NOT_A_PARAM",
     "not a known parameter"),
    ("[switch]", 'switch = 1\n[other]', None, "other", "unknown key"),
])
def test_config_errors_name_file_table_key_and_why(tmp_path: Path, old: str, new: str,
                                                   table: str | None, key: str,
                                                   why: str) -> None:
    assert old in MINIMAL
    path = write(tmp_path, MINIMAL.replace(old, new, 1))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    error = info.value
    assert isinstance(error, VosappError)
    assert (error.table, error.key) == (table, key), str(error)
    assert why in error.why, str(error)
    assert str(error).startswith(str(path)) and key in str(error)


def test_top_level_types(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"account: must be an array of tables"):
        parse_config("account = 3", path=tmp_path / "x.toml")
    with pytest.raises(ConfigError, match=r"\[switch\]: 'switch' must be a table"):
        parse_config("switch = 3", path=tmp_path / "x.toml")


def test_duplicate_account(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + '[[account]]\nuser = "1001"\npassword = "x"\n')
    with pytest.raises(ConfigError, match=r"\[account\] user: '1001' is defined twice"):
        load_config(path)


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read: No such file"):
        load_config(tmp_path / "missing.toml")
    bad = write(tmp_path, "[switch\nsip_listen = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(binary)


@pytest.mark.parametrize("path", sorted((REPO_ROOT / "data" / "examples").glob("*.toml")),
                         ids=lambda p: p.name)
def test_every_example_config_is_valid(path: Path) -> None:
    config = load_config(path)
    assert config.routing_gateways and config.accounts
