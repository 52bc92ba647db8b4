"""Call routing (docs/behaviour.md §4): who is calling (mapping gateway) and where the call goes
(routing gateways).

Mapping gateway identification: a request whose source address lies in a mapping gateway's
``addresses`` is *trusted* (no digest authentication, docs/behaviour.md §2.1); otherwise the caller
must authenticate as an account, and the mapping gateway is the first one (config order) listing
that account. A mapping gateway's ``prefixes`` restrict the numbers its callers may dial
(``""`` = any).

Routing: every routing gateway with a prefix the dialled number starts with is a candidate.
Candidates are ordered by the longest matching prefix first, then by ``priority`` (smaller
first), then by config order; the B2BUA tries them in that order (failover, see
:mod:`vosapp.switch.call`). Gateways with a shorter prefix come after all longer ones, so a
call can fail over from a specific route to a default route (``""``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from vosapp.config import Config, MappingGateway, RoutingGateway

__all__ = ["Caller", "best_prefix", "gateway_by_account", "gateway_by_address", "route"]


@dataclass(frozen=True)
class Caller:
    """Who is calling: the mapping gateway, the account (None when trusted by address)."""

    gateway: MappingGateway
    account: str | None
    trusted: bool


def best_prefix(number: str, prefixes: Sequence[str]) -> int | None:
    """Length of the longest prefix of ``prefixes`` that ``number`` starts with, else None."""
    lengths = [len(prefix) for prefix in prefixes if number.startswith(prefix)]
    return max(lengths) if lengths else None


def gateway_by_address(config: Config | None, host: str) -> MappingGateway | None:
    """The first mapping gateway whose ``addresses`` contain ``host`` (a trusted source)."""
    if config is None:
        return None
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    for gateway in config.mapping_gateways:
        if any(ip.version == net.version and ip in net for net in gateway.addresses):
            return gateway
    return None


def gateway_by_account(config: Config | None, user: str) -> MappingGateway | None:
    """The first mapping gateway listing account ``user``."""
    if config is None:
        return None
    return next((g for g in config.mapping_gateways if user in g.accounts), None)


def route(config: Config | None, number: str) -> list[RoutingGateway]:
    """Routing gateways for ``number``: longest prefix, then priority, then config order."""
    if config is None:
        return []
    ranked: list[tuple[int, int, int, RoutingGateway]] = []
    for index, gateway in enumerate(config.routing_gateways):
        length = best_prefix(number, gateway.prefixes)
        if length is not None:
            ranked.append((-length, gateway.priority, index, gateway))
    ranked.sort(key=lambda item: item[:3])
    return [item[3] for item in ranked]
