"""A virtual-time runtime: the same :class:`SwitchCore` on a simulated network.

Everything runs on one :class:`~vosapp.clock.ManualClock`: packets are delivered by timers
(``latency`` seconds later, or lost with probability ``loss`` from a seeded RNG), so a test or
a notebook replays 32 s of retransmissions or a 180 s suspension in milliseconds, exactly the
same way every time::

    net = VirtualNetwork()
    switch = net.add_switch(("10.0.0.1", 5060))
    phone = net.add_endpoint(("10.0.0.2", 5060))
    phone.send(b"OPTIONS sip:10.0.0.1 SIP/2.0\\r\\n...", switch.address)
    net.run(1.0)
    phone.received[0].data  # b"SIP/2.0 200 OK..."
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vosapp.clock import ManualClock
from vosapp.net import Address, as_address
from vosapp.switch.app import Feature, SwitchApp, build_switch_app
from vosapp.switch.core import SwitchCore
from vosapp.trace import Trace

if TYPE_CHECKING:
    from vosapp.config import Config
    from vosapp.params import Params
    from vosapp.sip import Request, Response
    from vosapp.store import Store


@dataclass(frozen=True)
class Packet:
    """What a virtual endpoint received."""

    time: float
    data: bytes
    source: Address
    transport: str

    def parse(self) -> Request | Response:
        from vosapp.sip import parse

        return parse(self.data)


class VirtualEndpoint:
    """A node that sends raw bytes and collects what it receives (a scripted phone/carrier)."""

    def __init__(self, network: VirtualNetwork, address: Address) -> None:
        self.network = network
        self.address = (address[0], int(address[1]))
        self.received: list[Packet] = []
        #: Called with each packet on arrival (to script replies); after it is recorded.
        self.on_receive: Callable[[Packet], None] | None = None

    def send(self, data: bytes | Request | Response, destination: Address,
             transport: str = "UDP") -> None:
        self.network.deliver(bytes(data), self.address, as_address(destination),
                             transport.upper())

    def _arrive(self, data: bytes, source: Address, transport: str) -> None:
        packet = Packet(self.network.clock.now(), data, source, transport)
        self.received.append(packet)
        if self.on_receive is not None:
            self.on_receive(packet)

    def messages(self) -> list[Request | Response]:
        return [packet.parse() for packet in self.received]

    def clear(self) -> None:
        self.received.clear()


class VirtualSwitch:
    """A SwitchCore attached to the virtual network at ``address`` (for UDP and TCP alike)."""

    def __init__(self, network: VirtualNetwork, address: Address, app: SwitchApp) -> None:
        self.network = network
        self.address = (address[0], int(address[1]))
        self.app = app
        self.core = core = app.core
        self.trace = core.trace
        core.local_addresses.update({"UDP": self.address, "TCP": self.address})
        core.attach_sender(self._send)

    def _send(self, data: bytes, destination: Address, transport: str) -> None:
        self.network.deliver(data, self.address, destination, transport)

    def _arrive(self, data: bytes, source: Address, transport: str) -> None:
        self.core.receive(data, source, transport, self.address)

    def start(self) -> None:
        self.core.start()

    def stop(self, timeout: float = 5.0, step: float = 0.01) -> bool:
        """Graceful stop in virtual time: run the stop hooks, advance until their work is
        done or ``timeout`` passes. Returns whether it finished in time."""
        self.core.begin_stop()
        deadline = self.network.clock.now() + timeout
        while not self.core.stop_done() and self.network.clock.now() < deadline:
            self.network.clock.advance(step)
        return self.core.stop_done()


class VirtualNetwork:
    """Addresses → nodes; ``deliver`` schedules arrival on the manual clock."""

    def __init__(self, *, clock: ManualClock | None = None, latency: float = 0.001,
                 loss: float = 0.0, seed: int = 0) -> None:
        if latency < 0 or not 0.0 <= loss <= 1.0:
            raise ValueError(f"need latency >= 0 and 0 <= loss <= 1 (got {latency}, {loss})")
        self.clock = clock if clock is not None else ManualClock()
        self.latency = latency
        self.loss = loss
        self.rng = random.Random(seed)
        self.nodes: dict[Address, VirtualEndpoint | VirtualSwitch] = {}
        self.dropped: list[tuple[float, Address, Address, bytes]] = []
        #: (source, destination) pairs whose packets are lost, e.g. to simulate a dead link.
        self.blocked: set[tuple[Address, Address]] = set()

    def add_endpoint(self, address: Address) -> VirtualEndpoint:
        endpoint = VirtualEndpoint(self, address)
        self._attach(endpoint.address, endpoint)
        return endpoint

    def add_switch(self, address: Address = ("10.0.0.1", 5060), *, params: Params | None = None,
                   config: Config | None = None, store: Store | None = None,
                   trace: Trace | None = None,
                   features: Sequence[Feature] = ()) -> VirtualSwitch:
        """A switch on the network with ``features`` (see
        :func:`~vosapp.switch.app.build_switch_app`; none by default, no media relay)."""
        core = SwitchCore(clock=self.clock, params=params, config=config, store=store,
                          trace=trace if trace is not None else Trace(clock=self.clock))
        switch = VirtualSwitch(self, address, build_switch_app(core, features))
        self._attach(switch.address, switch)
        return switch

    def _attach(self, address: Address, node: VirtualEndpoint | VirtualSwitch) -> None:
        if address in self.nodes:
            raise ValueError(f"address {address[0]}:{address[1]} is already on the network")
        self.nodes[address] = node

    def deliver(self, data: bytes, source: Address, destination: Address,
                transport: str) -> None:
        destination = (destination[0], int(destination[1]))
        if (source, destination) in self.blocked or (
                self.loss and self.rng.random() < self.loss):
            self.dropped.append((self.clock.now(), source, destination, data))
            return
        node = self.nodes.get(destination)
        if node is None:
            # Like UDP into the void: nothing arrives. (TCP would refuse; see transport_failed.)
            self.dropped.append((self.clock.now(), source, destination, data))
            return
        self.clock.call_later(self.latency, lambda: node._arrive(data, source, transport))

    def run(self, seconds: float) -> int:
        """Advance virtual time by ``seconds``; returns how many timers/deliveries fired."""
        return self.clock.advance(seconds)

    def run_until_idle(self, limit: float = 3600.0) -> int:
        return self.clock.run_until_idle(limit)
