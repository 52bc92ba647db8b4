"""The switch's features, wired in one place.

:func:`build_switch_app` installs the named features on a :class:`SwitchCore` in dependency
order and returns them in a :class:`SwitchApp`: the registrar (REGISTER, digest
authentication of callers, NAT keep-alive), outbound registration with upstream carriers,
and the call feature (the B2BUA, which authenticates callers with the registrar's
authenticator, reaches registered phones through the registrar's binding query and gets media
relays from the runtime's ``media_factory``). Runtimes
(:mod:`vosapp.io.runtime`, :mod:`vosapp.io.virtual`), the control server and the lab reach a
feature through ``app.registrar``, ``app.outbound``, ``app.b2bua``: nothing is stored on the
core.

A feature the configuration needs is never skipped: asking for the B2BUA without the
registrar while a mapping gateway lists accounts, or leaving out outbound registration while
a routing gateway has a ``register`` table, raises :class:`MissingFeature`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vosapp.switch.call import B2bua, MediaBackendFactory
    from vosapp.switch.core import SwitchCore
    from vosapp.switch.outbound import OutboundRegistrations
    from vosapp.switch.registrar import NatKeepAlive, RegistrarService

#: Every feature, in installation order (the B2BUA uses the registrar's authenticator).
FEATURES: tuple[str, ...] = ("registrar", "outbound", "b2bua")
#: A function run on the core after the named features (tests and the lab add raw handlers,
#: or a registrar with their own journal, this way).
CoreHook = Callable[["SwitchCore"], None]
Feature = str | CoreHook


class MissingFeature(ValueError):
    """The configuration needs a feature that was not asked for (or a name is unknown)."""


@dataclass
class SwitchApp:
    """One core and the features installed on it (None: not installed)."""

    core: SwitchCore
    registrar: RegistrarService | None = None
    nat_keepalive: NatKeepAlive | None = None
    outbound: OutboundRegistrations | None = None
    b2bua: B2bua | None = None


def _check_needs(core: SwitchCore, names: set[str]) -> None:
    config = core.config
    if config is None:
        return
    if "b2bua" in names and "registrar" not in names:
        users = [g.name for g in config.mapping_gateways if g.accounts]
        if users:
            raise MissingFeature(
                f"mapping gateway(s) {', '.join(users)} list accounts, whose calls are "
                "authenticated by the registrar feature: add 'registrar' to the features")
    if "outbound" not in names:
        registering = [g.name for g in config.routing_gateways if g.register is not None]
        if registering:
            raise MissingFeature(
                f"routing gateway(s) {', '.join(registering)} register upstream: add "
                "'outbound' to the features")


def build_switch_app(core: SwitchCore, features: Iterable[Feature] = FEATURES, *,
                     media_factory: MediaBackendFactory | None = None) -> SwitchApp:
    """Install ``features`` (names from :data:`FEATURES`, then any :data:`CoreHook`) on
    ``core``. ``media_factory`` gives the B2BUA its media relays (the asyncio runtime's;
    without one a call that needs the relay is refused with 488)."""
    features = list(features)
    names = {f for f in features if isinstance(f, str)}
    unknown = names - set(FEATURES)
    if unknown:
        raise MissingFeature(f"unknown feature(s) {sorted(unknown)}; known: {list(FEATURES)}")
    _check_needs(core, names)
    app = SwitchApp(core)
    if "registrar" in names:
        from vosapp.switch import registrar

        app.registrar, app.nat_keepalive = registrar.install(core)
    if "outbound" in names:
        from vosapp.switch import outbound

        app.outbound = outbound.install(core)
    if "b2bua" in names:
        from vosapp.switch.call import B2bua

        service = app.registrar
        app.b2bua = B2bua(core, authenticator=service.authenticator if service else None,
                          bindings=service.registrar.bindings if service else None,
                          media_factory=media_factory)
        app.b2bua.install()
    for hook in features:
        if not isinstance(hook, str):
            hook(core)
    return app


__all__ = ["FEATURES", "CoreHook", "Feature", "MissingFeature", "SwitchApp",
           "build_switch_app"]
