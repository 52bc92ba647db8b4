"""The one TOML configuration file: ``[switch]``, ``[parameters]``, ``[[account]]``,
``[[mapping_gateway]]``, ``[[routing_gateway]]`` (with an optional ``register`` table).

Every key is checked: unknown keys are errors (a typo must not be silently ignored), and
every error names the file, the table, the key and why (:class:`ConfigError`). Relative
``data_dir`` paths resolve against the folder of the config file, so a config works from
any current directory. See ``data/lab.toml`` for a commented example.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vosapp.errors import VosappError
from vosapp.params import (
    GatewaySettings,
    ParameterError,
    Params,
    UpstreamRegistration,
    parse_host_port,
)

__all__ = [
    "Account",
    "Config",
    "ConfigError",
    "Limits",
    "MappingGateway",
    "RoutingGateway",
    "SwitchConfig",
    "load_config",
    "parse_config",
]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class ConfigError(VosappError):
    """A configuration file is unreadable or has a wrong, missing or unknown key."""

    def __init__(self, path: Path | str, table: str | None, key: str | None, why: str) -> None:
        self.path = Path(path)
        self.table = table
        self.key = key
        self.why = why
        where = str(path)
        if table:
            where += f": [{table}]"
        if key:
            where += f" {key}"
        super().__init__(f"{where}: {why}")


@dataclass(frozen=True)
class SwitchConfig:
    """``[switch]``: where the switch listens (UDP and TCP on the same host:port)."""

    sip_host: str = "127.0.0.1"
    sip_port: int = 5060
    media_ip: str = "127.0.0.1"
    rtp_port_min: int = 20000
    rtp_port_max: int = 20999
    data_dir: Path = Path("var")
    # The [switch] keys the file did not set (their values above are the defaults).
    defaulted: tuple[str, ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class Limits:
    """``[limits]``: flood, memory and overload limits (see vosapp.switch.limits)."""

    #: Sampling window of the per-source limiter, seconds (pike's sampling_time_unit).
    source_window: float = 2.0
    #: Messages one source may send per window (pike's reqs_density_per_unit); 0 = no limit.
    #: 2,000 per 2 s is far above what a phone or a NAT of phones sends, far below a flood.
    source_threshold: int = 2000
    #: How long a source that tripped stays blocked after its flood stops, seconds.
    source_block: float = 60.0
    #: Server transactions kept (completed ones absorb retransmissions for 64*T1); past
    #: this the oldest completed transactions are forgotten first.
    max_server_transactions: int = 20_000
    #: Open authentication sessions (pending challenges) kept, oldest forgotten first.
    max_auth_sessions: int = 20_000
    #: New INVITEs are answered 503 while more calls than this are in setup; 0 = no limit.
    max_calls_in_setup: int = 500
    #: New INVITEs are answered 503 while datagrams wait this long to be read, seconds (until
    #: the wait is back under half of it); 0 = not used. Below T1 (0.5 s, where every peer
    #: starts retransmitting) and below what the kernel's default ~200 KB receive buffer
    #: holds at capacity (~0.5 s): past that, datagrams are lost, answers too.
    overload_receive_delay: float = 0.3
    #: The Retry-After of those 503s, seconds (RFC 3261 §20.33).
    retry_after: int = 5

    def __post_init__(self) -> None:
        checks = {
            "source_window": 0.1 <= self.source_window <= 3600,
            "source_threshold": 0 <= self.source_threshold <= 10_000_000,
            "source_block": 1 <= self.source_block <= 86_400,
            "max_server_transactions": 100 <= self.max_server_transactions <= 10_000_000,
            "max_auth_sessions": 100 <= self.max_auth_sessions <= 10_000_000,
            "max_calls_in_setup": 0 <= self.max_calls_in_setup <= 1_000_000,
            "overload_receive_delay": 0 <= self.overload_receive_delay <= 60,
            "retry_after": 1 <= self.retry_after <= 3600,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"{name} = {getattr(self, name)!r} is out of range "
                                 f"({LIMIT_RANGES[name]})")


#: The accepted range of each ``[limits]`` key, for error messages and docs.
LIMIT_RANGES = {
    "source_window": "0.1-3600 s", "source_threshold": "0-10000000 (0 = off)",
    "source_block": "1-86400 s", "max_server_transactions": "100-10000000",
    "max_auth_sessions": "100-10000000", "max_calls_in_setup": "0-1000000 (0 = off)",
    "overload_receive_delay": "0-60 s (0 = off)", "retry_after": "1-3600 s",
}


@dataclass(frozen=True)
class Account:
    """A terminal user (``[[account]]``); ``networks`` empty means any source address."""

    user: str
    password: str = field(repr=False)
    networks: tuple[IPNetwork, ...] = ()

    def allows(self, address: str) -> bool:
        """Whether a request from ``address`` may use this account."""
        if not self.networks:
            return True
        ip = ipaddress.ip_address(address)
        return any(ip in network for network in self.networks)


@dataclass(frozen=True)
class MappingGateway:
    """The customer side: calls from these accounts or trusted source networks."""

    name: str
    accounts: tuple[str, ...] = ()
    addresses: tuple[IPNetwork, ...] = ()
    prefixes: tuple[str, ...] = ("",)
    priority: int = 0
    settings: GatewaySettings = field(default_factory=GatewaySettings)


@dataclass(frozen=True)
class RoutingGateway:
    """The vendor side: calls to ``host:port`` whose callee starts with one of ``prefixes``.

    Smaller ``priority`` is tried first; ``register`` is set when the gateway registers
    upstream (docs/behaviour.md §3).
    """

    name: str
    host: str
    port: int
    transport: str = "udp"
    prefixes: tuple[str, ...] = ("",)
    priority: int = 0
    settings: GatewaySettings = field(default_factory=GatewaySettings)
    register: UpstreamRegistration | None = None


@dataclass(frozen=True)
class Config:
    """A loaded, validated configuration file."""

    path: Path | None
    switch: SwitchConfig
    parameters: Params
    accounts: tuple[Account, ...] = ()
    mapping_gateways: tuple[MappingGateway, ...] = ()
    routing_gateways: tuple[RoutingGateway, ...] = ()
    limits: Limits = field(default_factory=Limits)

    def account(self, user: str) -> Account | None:
        return next((a for a in self.accounts if a.user == user), None)

    @property
    def converts_codecs(self) -> bool:
        """Whether a call may be transcoded: some gateway has Allow codec conversion on
        (docs/behaviour.md §5; a conversion needs it on both of a call's gateways)."""
        return (any(gateway.settings.allow_codec_conversion for gateway in self.mapping_gateways)
                or any(gateway.settings.allow_codec_conversion
                       for gateway in self.routing_gateways))

    @property
    def sets_nothing(self) -> bool:
        """Whether every value is a default (an empty file): valid, but worth saying."""
        return (set(self.switch.defaulted) == _SWITCH_KEYS and not self.accounts
                and not self.mapping_gateways and not self.routing_gateways
                and not self.parameters.changed())


# ----------------------------------------------------------------------------------------

_TOP_KEYS = {"switch", "parameters", "account", "mapping_gateway", "routing_gateway", "limits"}
_SWITCH_KEYS = {"sip_listen", "media_ip", "rtp_ports", "data_dir"}
_ACCOUNT_KEYS = {"user", "password", "networks"}
_MAPPING_KEYS = {"name", "accounts", "addresses", "prefixes", "priority"}
_ROUTING_KEYS = {"name", "address", "transport", "prefixes", "priority", "register"}
_SETTING_KEYS = set(GatewaySettings.setting_names())
_REGISTER_KEYS = set(UpstreamRegistration.setting_names())
# RFC 3261 "user" unreserved characters, minus escapes: enough for lab accounts.
_SIP_USER = re.compile(r"^[A-Za-z0-9\-_.!~*'()&=+$,;?/]+$")
_PREFIX = re.compile(r"^[0-9*#+]*$")


class _Reader:
    """Validation helpers that know which file and table they are reading."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def error(self, table: str | None, key: str | None, why: str) -> ConfigError:
        return ConfigError(self.path, table, key, why)

    def table(self, doc: Mapping[str, Any], name: str, where: str) -> dict[str, Any]:
        value = doc.get(name, {})
        if not isinstance(value, dict):
            raise self.error(where, None, f"'{name}' must be a table ([{name}])")
        return value

    def array_of_tables(self, doc: Mapping[str, Any], name: str) -> list[dict[str, Any]]:
        value = doc.get(name, [])
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise self.error(None, name, f"must be an array of tables ([[{name}]])")
        return value

    def known(self, data: Mapping[str, Any], allowed: set[str], table: str | None,
              settings: bool = False) -> None:
        for key in data:
            if key in allowed or (settings and key in _SETTING_KEYS):
                continue
            candidates = allowed | (_SETTING_KEYS if settings else set())
            close = difflib.get_close_matches(key, candidates, n=1, cutoff=0.7)
            if close:
                hint = f"did you mean {close[0]!r}?"
            else:
                hint = "allowed: " + ", ".join(sorted(allowed))
                if settings:
                    hint += ", and the gateway settings in docs/parameters.md"
            raise self.error(table, key, f"unknown key ({hint})")

    def string(self, data: Mapping[str, Any], key: str, table: str, *, required: bool = True,
               default: str = "") -> str:
        if key not in data:
            if required:
                raise self.error(table, key, "missing (required)")
            return default
        value = data[key]
        if not isinstance(value, str):
            raise self.error(table, key, f"must be a string, got {type(value).__name__}")
        return value

    def integer(self, data: Mapping[str, Any], key: str, table: str, default: int,
                lo: int, hi: int) -> int:
        value = data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(table, key, f"must be an integer, got {value!r}")
        if not lo <= value <= hi:
            raise self.error(table, key, f"{value} is out of range {lo}-{hi}")
        return value

    def strings(self, data: Mapping[str, Any], key: str, table: str,
                default: tuple[str, ...] = ()) -> tuple[str, ...]:
        if key not in data:
            return default
        value = data[key]
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error(table, key, "must be a string or a list of strings")
        return tuple(value)

    def networks(self, data: Mapping[str, Any], key: str, table: str) -> tuple[IPNetwork, ...]:
        result = []
        for text in self.strings(data, key, table):
            try:
                result.append(ipaddress.ip_network(text.strip(), strict=False))
            except ValueError:
                raise self.error(table, key, f"{text!r} is not an IP address or network "
                                 "(e.g. 127.0.0.1 or 192.0.2.0/24)") from None
        return tuple(result)


def load_config(path: str | Path) -> Config:
    """Read and validate the TOML file at ``path``; raise :class:`ConfigError` on any problem."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(path, None, None, f"cannot read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(path, None, None, f"not UTF-8 text ({exc.reason})") from None
    return parse_config(text, path=path)


def parse_config(text: str, *, path: str | Path = "<string>") -> Config:
    """Validate TOML ``text``; relative paths resolve against ``path``'s folder."""
    path = Path(path)
    reader = _Reader(path)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, None, None, f"not valid TOML: {exc}") from None
    reader.known(doc, _TOP_KEYS, None)

    switch = _read_switch(reader, reader.table(doc, "switch", "switch"), path)
    parameters = _read_parameters(reader, reader.table(doc, "parameters", "parameters"))
    accounts = tuple(_read_account(reader, item, f"account #{i}")
                     for i, item in enumerate(reader.array_of_tables(doc, "account"), 1))
    _unique(reader, [a.user for a in accounts], "account", "user")
    mapping = tuple(_read_mapping(reader, item, f"mapping_gateway #{i}")
                    for i, item in enumerate(reader.array_of_tables(doc, "mapping_gateway"), 1))
    routing = tuple(_read_routing(reader, item, f"routing_gateway #{i}")
                    for i, item in enumerate(reader.array_of_tables(doc, "routing_gateway"), 1))
    _unique(reader, [g.name for g in mapping] + [g.name for g in routing],
            "mapping_gateway/routing_gateway", "name")
    users = {a.user for a in accounts}
    for i, gateway in enumerate(mapping, 1):
        for user in gateway.accounts:
            if user not in users:
                raise reader.error(f"mapping_gateway #{i}", "accounts",
                                   f"account {user!r} is not defined in any [[account]]")
    limits = _read_limits(reader, reader.table(doc, "limits", "limits"))
    return Config(path=path.resolve() if str(path) != "<string>" else None, switch=switch,
                  parameters=parameters, accounts=accounts, mapping_gateways=mapping,
                  routing_gateways=routing, limits=limits)


def _unique(reader: _Reader, values: list[str], table: str, key: str) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise reader.error(table, key, f"{value!r} is defined twice")
        seen.add(value)


def _read_switch(reader: _Reader, data: dict[str, Any], path: Path) -> SwitchConfig:
    reader.known(data, _SWITCH_KEYS, "switch")
    defaults = SwitchConfig()
    host, port = defaults.sip_host, defaults.sip_port
    if "sip_listen" in data:
        text = reader.string(data, "sip_listen", "switch")
        try:
            host, port = parse_host_port(text, label="sip_listen", default_port=5060)
        except ParameterError as exc:
            raise reader.error("switch", "sip_listen", f"{text!r} is not host:port "
                               f"({exc.why})") from None
        _ip(reader, host, "switch", "sip_listen", "an IP address to bind (e.g. 127.0.0.1)")
    media_ip = reader.string(data, "media_ip", "switch", required=False, default=host)
    media = _ip(reader, media_ip, "switch", "media_ip", "an IP address (e.g. 127.0.0.1)")
    if media.is_unspecified:
        raise reader.error("switch", "media_ip", f"{media_ip!r} cannot go into SDP; "
                           "give the address peers send RTP to")
    rtp_min, rtp_max = _rtp_ports(reader, data.get("rtp_ports", "20000-20999"))
    data_dir = Path(reader.string(data, "data_dir", "switch", required=False,
                                  default=str(defaults.data_dir))).expanduser()
    if not data_dir.is_absolute():
        data_dir = (path.resolve().parent / data_dir).resolve()
    return SwitchConfig(sip_host=host, sip_port=port, media_ip=media_ip, rtp_port_min=rtp_min,
                        rtp_port_max=rtp_max, data_dir=data_dir,
                        defaulted=tuple(sorted(_SWITCH_KEYS - data.keys())))


def _ip(reader: _Reader, text: str, table: str, key: str, what: str
        ) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise reader.error(table, key, f"{text!r} is not {what}") from None


def _rtp_ports(reader: _Reader, value: object) -> tuple[int, int]:
    why = 'must be "MIN-MAX" or [MIN, MAX] with 1024 <= MIN < MAX <= 65535'
    bounds: list[object]
    if isinstance(value, str) and re.fullmatch(r"\s*\d+\s*-\s*\d+\s*", value):
        bounds = [int(v) for v in value.split("-")]
    elif isinstance(value, list) and len(value) == 2:
        bounds = value
    else:
        raise reader.error("switch", "rtp_ports", f"{value!r} {why}")
    ports = [b for b in bounds if isinstance(b, int) and not isinstance(b, bool)]
    if len(ports) != 2 or not 1024 <= ports[0] < ports[1] <= 65535:
        raise reader.error("switch", "rtp_ports", f"{value!r} {why}")
    return ports[0], ports[1]


def _read_limits(reader: _Reader, data: dict[str, Any]) -> Limits:
    reader.known(data, set(LIMIT_RANGES), "limits")
    defaults = Limits()
    values: dict[str, Any] = {}
    for key, value in data.items():
        integral = isinstance(getattr(defaults, key), int)
        if isinstance(value, bool) or not isinstance(value, int if integral else (int, float)):
            kind = "an integer" if integral else "a number"
            raise reader.error("limits", key, f"must be {kind} ({LIMIT_RANGES[key]}), "
                               f"got {value!r}")
        values[key] = value
    try:
        return Limits(**values)
    except ValueError as exc:
        key = str(exc).split(" ", 1)[0]
        raise reader.error("limits", key, str(exc).split(" ", 2)[-1]) from None


def _read_parameters(reader: _Reader, data: dict[str, Any]) -> Params:
    params = Params.defaults()
    for name, value in data.items():
        try:
            params = params.replace(**{name: value})
        except ParameterError as exc:
            raise reader.error("parameters", name, str(exc).split(": ", 1)[-1]) from None
    return params


def _read_account(reader: _Reader, data: dict[str, Any], table: str) -> Account:
    reader.known(data, _ACCOUNT_KEYS, table)
    user = reader.string(data, "user", table)
    if not _SIP_USER.match(user):
        raise reader.error(table, "user", f"{user!r} is not a SIP user name "
                           "(letters, digits and - _ . ! ~ * ' ( ) & = + $ , ; ? /)")
    password = reader.string(data, "password", table)
    if not password:
        raise reader.error(table, "password", "must not be empty")
    return Account(user=user, password=password, networks=reader.networks(data, "networks",
                                                                           table))


def _prefixes(reader: _Reader, data: dict[str, Any], table: str) -> tuple[str, ...]:
    prefixes = reader.strings(data, "prefixes", table, default=("",))
    for prefix in prefixes:
        if not _PREFIX.match(prefix):
            raise reader.error(table, "prefixes", f"{prefix!r} is not a dialled-number prefix "
                               '(digits, * # +; "" matches every number)')
    return prefixes


def _settings(reader: _Reader, data: dict[str, Any], table: str) -> GatewaySettings:
    values = {k: v for k, v in data.items() if k in _SETTING_KEYS}
    try:
        return GatewaySettings(**values)
    except ParameterError as exc:
        key = exc.name.split(".", 1)[-1]
        raise reader.error(table, key, str(exc).split(": ", 1)[-1]) from None


def _name(reader: _Reader, data: dict[str, Any], table: str) -> str:
    name = reader.string(data, "name", table)
    if not name.strip():
        raise reader.error(table, "name", "must not be empty")
    return name


def _read_mapping(reader: _Reader, data: dict[str, Any], table: str) -> MappingGateway:
    if isinstance(data.get("name"), str) and data["name"].strip():
        table = f"mapping_gateway {data['name']!r}"
    reader.known(data, _MAPPING_KEYS, table, settings=True)
    name = _name(reader, data, table)
    accounts = reader.strings(data, "accounts", table)
    addresses = reader.networks(data, "addresses", table)
    if not accounts and not addresses:
        raise reader.error(table, "accounts", "a mapping gateway needs accounts or addresses "
                           "(who may call through it)")
    return MappingGateway(name=name, accounts=accounts, addresses=addresses,
                          prefixes=_prefixes(reader, data, table),
                          priority=reader.integer(data, "priority", table, 0, 0, 9999),
                          settings=_settings(reader, data, table))


def _read_routing(reader: _Reader, data: dict[str, Any], table: str) -> RoutingGateway:
    if isinstance(data.get("name"), str) and data["name"].strip():
        table = f"routing_gateway {data['name']!r}"
    reader.known(data, _ROUTING_KEYS, table, settings=True)
    name = _name(reader, data, table)
    address = reader.string(data, "address", table)
    try:
        host, port = parse_host_port(address, label="address", default_port=5060)
    except ParameterError as exc:
        raise reader.error(table, "address", f"{address!r} is not host:port ({exc.why})") from None
    transport = reader.string(data, "transport", table, required=False, default="udp").lower()
    if transport not in ("udp", "tcp"):
        raise reader.error(table, "transport", f"{transport!r} is not udp or tcp")
    register = None
    if "register" in data:
        reg = data["register"]
        rtable = f"{table}.register"
        if not isinstance(reg, dict):
            raise reader.error(table, "register", "must be a table ([routing_gateway.register])")
        reader.known(reg, _REGISTER_KEYS, rtable)
        try:
            register = UpstreamRegistration(**reg)
        except ParameterError as exc:
            key = exc.name.split(".", 1)[-1]
            raise reader.error(rtable, key, str(exc).split(": ", 1)[-1]) from None
    return RoutingGateway(name=name, host=host, port=port, transport=transport,
                          prefixes=_prefixes(reader, data, table),
                          priority=reader.integer(data, "priority", table, 0, 0, 9999),
                          settings=_settings(reader, data, table), register=register)
