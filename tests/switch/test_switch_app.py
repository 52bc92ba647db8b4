"""Feature wiring (vosapp.switch.app): one function installs the features and hands them
back; a feature the configuration needs is never left out silently."""

from __future__ import annotations

import pytest

from tests.switch.b2bua_harness import Caller, make_config
from tests.switch.outbound_carrier import config as registering_config
from vosapp.clock import ManualClock
from vosapp.io.virtual import VirtualNetwork
from vosapp.switch.app import FEATURES, MissingFeature, build_switch_app
from vosapp.switch.core import SwitchCore


def test_all_features_are_installed_and_returned_with_the_authenticator_shared() -> None:
    core = SwitchCore(clock=ManualClock(), config=make_config())
    app = build_switch_app(core)
    assert app.core is core and FEATURES == ("registrar", "outbound", "b2bua")
    assert app.registrar is not None and app.nat_keepalive is not None
    assert app.outbound is not None and app.b2bua is not None
    # INVITE and REGISTER failures count together per terminal (one policy)
    assert app.b2bua.authenticator is app.registrar.authenticator
    assert not hasattr(core, "b2bua") and not hasattr(core, "registrar_service")


def test_the_b2bua_without_the_registrar_is_refused_when_callers_authenticate() -> None:
    core = SwitchCore(clock=ManualClock(), config=make_config(mapping='accounts = ["1001"]'))
    with pytest.raises(MissingFeature, match="mapping gateway.*customer.*'registrar'"):
        build_switch_app(core, ["b2bua"])


def test_a_registering_gateway_needs_outbound_registration() -> None:
    core = SwitchCore(clock=ManualClock(), config=registering_config())
    with pytest.raises(MissingFeature, match="carrier register upstream.*'outbound'"):
        build_switch_app(core, ["registrar"])


def test_an_unknown_feature_name_is_an_error() -> None:
    core = SwitchCore(clock=ManualClock())
    with pytest.raises(MissingFeature, match="unknown feature.*'registar'"):
        build_switch_app(core, ["registar"])


def test_without_the_registrar_an_untrusted_caller_gets_403() -> None:
    net = VirtualNetwork(latency=0.001)
    switch = net.add_switch(("10.0.0.1", 5060), config=make_config(), features=["b2bua"])
    switch.start()
    caller = Caller(net, ("10.0.0.77", 5060))  # not the mapping gateway's address
    caller.call()
    net.run(1.0)
    assert caller.statuses() == [403]
