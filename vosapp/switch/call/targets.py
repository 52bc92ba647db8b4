"""Where a dialled number goes (pure functions): a registered phone's live bindings, or the
routing gateways.

The dialled number is matched against the accounts first. An account's call goes to every
live binding of it at once (one *fork*, RFC 3261 §16.6: the INVITEs are sent highest q
first, all in parallel); an account without a live binding gets 480. Any other number goes
to the routing gateways (:func:`vosapp.switch.routing.route`), one after the other
(failover): each gateway is a fork of one.

A binding is reached at the address and port its REGISTER came from (``received``, RFC 3261
§18.2.2 / RFC 5626 §5.3: the NAT's public mapping, which the phone keeps open), over the
transport it registered with; its Contact URI is the Request-URI. Over TCP the transport
writes on the connection the REGISTER came on while it is open; when it has closed, the
switch connects to that same address (vosapp's choice: a phone behind NAT then cannot be
reached, and that attempt fails as a transport failure, i.e. 480 when it was the only
contact — the phone's next REGISTER opens a connection again). A Path (RFC 3327) recorded at
registration becomes the INVITE's Route set.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vosapp.params import GatewaySettings
from vosapp.sip import SipParseError, SipUri, parse_uri
from vosapp.switch.routing import gateway_by_account, route

if TYPE_CHECKING:
    from vosapp.config import Config, RoutingGateway
    from vosapp.switch.call.media import Address
    from vosapp.switch.registrar import Binding

#: The registrar's query for the live bindings of an account, highest q first.
BindingLookup = Callable[[str], Sequence["Binding"]]


@dataclass(frozen=True)
class Target:
    """One place an attempt's INVITE goes: a routing gateway or one binding of a phone."""

    name: str  # the gateway's name, or "<account> <contact>" (CDR gateways_tried)
    settings: GatewaySettings  # the gateway's, or the phone's account's mapping gateway's
    uri: SipUri  # the Request-URI
    destination: Address
    transport: str  # "UDP" / "TCP"
    account: str | None = None  # the phone's account (None for a routing gateway)
    contact: str | None = None  # the binding's Contact URI
    route: tuple[str, ...] = ()  # Route headers (the binding's Path, RFC 3327)


@dataclass(frozen=True)
class Destination:
    """What a dialled number resolves to: ``steps`` tried one after the other (failover),
    each a fork of targets called in parallel. ``account`` is set when the number is a
    phone's; ``steps`` is then one fork, or empty when the phone has no live binding."""

    steps: tuple[tuple[Target, ...], ...]
    account: str | None = None


def gateway_target(gateway: RoutingGateway, callee: str) -> Target:
    return Target(name=gateway.name, settings=gateway.settings,
                  uri=SipUri(user=callee or None, host=gateway.host, port=gateway.port),
                  destination=(gateway.host, gateway.port),
                  transport=gateway.transport.upper())


def binding_target(binding: Binding, settings: GatewaySettings) -> Target | None:
    """The target for one live binding (None when its Contact URI is unusable)."""
    try:
        uri = parse_uri(binding.contact)
    except SipParseError:
        return None
    if binding.received_host and binding.received_port:
        destination = (binding.received_host, int(binding.received_port))
    else:
        destination = (uri.host, uri.port or 5060)
    return Target(name=f"{binding.aor} {binding.contact}", settings=settings, uri=uri,
                  destination=destination, transport=(binding.transport or "udp").upper(),
                  account=binding.aor, contact=binding.contact, route=tuple(binding.path))


def resolve(config: Config | None, callee: str, bindings: BindingLookup | None
            ) -> Destination:
    """Accounts first (the phone's live bindings), then the routing gateways."""
    if config is not None and callee and config.account(callee) is not None:
        mapping = gateway_by_account(config, callee)
        settings = mapping.settings if mapping is not None else GatewaySettings()
        found = bindings(callee) if bindings is not None else ()
        fork = tuple(t for t in (binding_target(b, settings) for b in found) if t is not None)
        return Destination(steps=(fork,) if fork else (), account=callee)
    if config is None:
        return Destination(steps=())
    return Destination(steps=tuple((gateway_target(g, callee),)
                                   for g in route(config, callee)))


__all__ = ["BindingLookup", "Destination", "Target", "binding_target", "gateway_target",
           "resolve"]
