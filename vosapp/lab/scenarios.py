"""Scripted lab scenarios in virtual time (notebooks 02 and 03) and config helpers.

* :func:`brute_force_hour` -- a password guesser against the switch's registrar on a
  :class:`~vosapp.io.virtual.VirtualNetwork`: one simulated hour in well under a second of
  real time, measured from the switch's own audit trail (docs/behaviour.md §2.5's ~113
  guesses/hour).
* :func:`virtual_outbound` -- the switch registering a routing gateway with a
  :class:`~vosapp.lab.phones.CarrierRegistrar` over simulated hours (refreshes, the
  graceful-stop unregister, the stale window when it is Off; docs/behaviour.md §3).
* :func:`upstream_config` -- a config file (TOML text written to a directory) with the lab
  accounts and one routing gateway that registers to a given carrier address.
"""

from __future__ import annotations

import itertools
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vosapp.io.virtual import Packet, VirtualNetwork, VirtualSwitch
from vosapp.lab.phones import CarrierRegistrar
from vosapp.net import Address
from vosapp.params import Params
from vosapp.sip import Response
from vosapp.sip.digest import DigestError, answer, choose_challenge

if TYPE_CHECKING:
    from vosapp.switch.auth import MemoryJournal

__all__ = [
    "BruteForceResult",
    "OutboundRun",
    "brute_force_hour",
    "expected_guesses_per_hour",
    "upstream_config",
    "virtual_outbound",
]

SWITCH_ADDRESS: Address = ("10.0.0.1", 5060)
ATTACKER_ADDRESS: Address = ("203.0.113.66", 5060)
CARRIER_ADDRESS: Address = ("198.51.100.9", 5060)
TRUNK_USER = "vosapp-trunk"
TRUNK_PASSWORD = "lab-trunk-secret"


# ------------------------------------------------------------------------- brute force

class _Guesser:
    """Registers as ``user`` answering every challenge with the next wrong password; after a
    403, or after ``silence`` seconds without any answer, starts a new attempt."""

    def __init__(self, net: VirtualNetwork, switch: Address, user: str,
                 pause: float, silence: float, think: float) -> None:
        self.net = net
        self.think = think
        self.switch = switch
        self.user = user
        self.pause = pause
        self.silence = silence
        self.endpoint = net.add_endpoint(ATTACKER_ADDRESS)
        self.endpoint.on_receive = self._on_packet
        self.attempts = itertools.count(1)
        self.passwords = (f"guess-{n}" for n in itertools.count(1))
        self.call_id = ""
        self.cseq = 0
        self.timer: Any = None
        self.sent = 0
        self.statuses: Counter[int] = Counter()
        self.guess_times: list[float] = []

    def _register(self, authorization: str | None = None) -> None:
        self.cseq += 1
        host, port = ATTACKER_ADDRESS
        lines = [f"REGISTER sip:{self.switch[0]} SIP/2.0",
                 f"Via: SIP/2.0/UDP {host}:{port};branch=z9hG4bKbf{self.sent}",
                 "Max-Forwards: 70", f"From: <sip:{self.user}@{self.switch[0]}>;tag=bf",
                 f"To: <sip:{self.user}@{self.switch[0]}>", f"Call-ID: {self.call_id}",
                 f"CSeq: {self.cseq} REGISTER", f"Contact: <sip:{self.user}@{host}:{port}>",
                 "Expires: 600"]
        if authorization:
            lines.append(authorization)
            self.guess_times.append(self.net.clock.now())
        self.sent += 1
        self.endpoint.send(("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode(),
                           self.switch)
        self._arm(self.silence)

    def start(self) -> None:
        self.call_id = f"bf-{next(self.attempts)}@attacker"
        self.cseq = 0
        self._register()

    def _arm(self, delay: float) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer = self.net.clock.call_later(delay, self.start)

    def _on_packet(self, packet: Packet) -> None:
        response = packet.parse()
        if not isinstance(response, Response):
            return
        self.statuses[response.status] += 1
        if response.status in (401, 407):
            header = "WWW-Authenticate" if response.status == 401 else "Proxy-Authenticate"
            try:
                challenge = choose_challenge(response.headers.get_all(header))
            except DigestError:
                self._arm(self.pause)
                return
            credentials = answer(challenge, "REGISTER", f"sip:{self.switch[0]}", self.user,
                                 next(self.passwords))
            name = "Authorization" if response.status == 401 else "Proxy-Authorization"
            if self.timer is not None:
                self.timer.cancel()
            if self.think > 0:
                self.timer = self.net.clock.call_later(
                    self.think, lambda: self._register(f"{name}: {credentials}"))
            else:
                self._register(f"{name}: {credentials}")
        else:
            self._arm(self.pause)


@dataclass
class BruteForceResult:
    """What one simulated hour of guessing produced."""

    params: Params
    seconds: float
    guesses: int  # wrong passwords the switch actually checked (its audit trail)
    sent: int  # REGISTERs the attacker sent
    responses: int  # responses the attacker got
    statuses: dict[int, int]
    suspensions: int
    guess_times: list[float] = field(default_factory=list)
    audit: list[str] = field(default_factory=list)  # reasons, in order

    @property
    def guesses_per_hour(self) -> float:
        return self.guesses * 3600.0 / self.seconds


def expected_guesses_per_hour(params: Params, *, guess_time: float = 0.0) -> float:
    """docs/behaviour.md §2.5's arithmetic: MAX_RETRY guesses per (suspension + time to make them).

    ``guess_time`` is how long the attacker needs for the MAX_RETRY guesses themselves
    (seconds); with defaults: 3600 / (180 + ~10) * 6 ≈ 113.
    """
    ceiling = int(params["SS_AUTHENTICATION_MAX_RETRY"])
    suspend = int(params["SS_AUTHENTICATION_FAILED_SUSPEND"])
    if ceiling == 0:
        return float("inf")
    return 3600.0 / (suspend + guess_time) * ceiling


def brute_force_hour(*, seconds: float = 3600.0, user: str = "1001",
                     password: str = "lab-1001-secret", latency: float = 0.01,
                     pause: float = 1.0, silence: float = 1.0, think: float = 0.0,
                     **changes: object) -> BruteForceResult:
    """Run a guesser against a virtual switch for ``seconds`` of virtual time.

    ``changes`` are SS_* parameter values (``SS_AUTHENTICATION_MAX_RETRY=3`` ...). The
    guesser is fast but not a flood: it answers each challenge after ``think`` seconds (0:
    at once), and waits ``pause`` after a 403 (or ``silence`` without any answer) before a
    new attempt.
    """
    from vosapp.config import Account
    from vosapp.store import Store
    from vosapp.switch.auth import MemoryJournal
    from vosapp.switch.registrar import build_registrar_service

    params = Params.defaults().replace(**changes)
    net = VirtualNetwork(latency=latency)
    journal: MemoryJournal = MemoryJournal()
    accounts = {user: Account(user=user, password=password)}
    import tempfile

    with tempfile.TemporaryDirectory(prefix="vosapp-bruteforce-") as directory:
        store = Store.open(directory)

        def account(user: str) -> Account | None:  # an AccountLookup: called as lookup(user)
            return accounts.get(user)

        def registrar(core: Any) -> None:
            build_registrar_service(core, accounts=account, store=store, journal=journal)

        switch = net.add_switch(SWITCH_ADDRESS, params=params, features=[registrar])
        switch.start()
        guesser = _Guesser(net, SWITCH_ADDRESS, user, pause, silence, think)
        guesser.start()
        net.run(seconds)
        store.close()
    reasons = journal.reasons()
    return BruteForceResult(
        params=params, seconds=seconds, guesses=reasons.count("wrong_password"),
        sent=guesser.sent, responses=sum(guesser.statuses.values()),
        statuses=dict(sorted(guesser.statuses.items())),
        suspensions=len(journal.suspensions), guess_times=guesser.guess_times,
        audit=reasons)


# ----------------------------------------------------------------------------- outbound

def upstream_config(directory: str | Path, carrier: Address, *,
                    sip_listen: str = "127.0.0.1:5060", user: str = TRUNK_USER,
                    password: str = TRUNK_PASSWORD, parameters: dict[str, str] | None = None,
                    register_extra: str = "") -> Path:
    """Write ``upstream.toml`` in ``directory``: the lab accounts and one routing gateway
    ``carrier`` that registers with the registrar at ``carrier``; returns its path.

    ``sip_listen`` is what the file says; notebooks start the switch with ``port=0`` anyway
    (a config cannot name port 0)."""
    overrides = "\n".join(f'{name} = "{value}"' for name, value in (parameters or {}).items())
    text = f"""# written by vosapp.lab.scenarios.upstream_config
[switch]
sip_listen = "{sip_listen}"
data_dir = "data"

[parameters]
{overrides}

[[account]]
user = "1001"
password = "lab-1001-secret"

[[routing_gateway]]
name = "carrier"
address = "{carrier[0]}:{carrier[1]}"
transport = "udp"
prefixes = [""]

[routing_gateway.register]
sip_proxy = "{carrier[0]}:{carrier[1]}"
auth_user = "{user}"
password = "{password}"
{register_extra}
"""
    target = Path(directory) / "upstream.toml"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    return target


@dataclass
class OutboundRun:
    """A virtual switch registering with a virtual carrier (see :func:`virtual_outbound`)."""

    net: VirtualNetwork
    switch: VirtualSwitch
    carrier: CarrierRegistrar

    def run(self, seconds: float) -> None:
        self.net.run(seconds)

    def status(self) -> list[dict[str, Any]]:
        outbound = self.switch.app.outbound
        return [s.as_dict() for s in outbound.status()] if outbound is not None else []

    def stop(self, timeout: float = 6.0) -> bool:
        """Graceful stop in virtual time (stop hooks: the unregister when On)."""
        return self.switch.stop(timeout)

    @property
    def now(self) -> float:
        return self.net.clock.now()


def virtual_outbound(*, max_expires: int = 3600, challenge_code: int = 401,
                     latency: float = 0.005, **changes: object) -> OutboundRun:
    """A switch whose gateway ``carrier`` registers with a :class:`CarrierRegistrar` on the
    virtual network (``max_expires`` = what the carrier grants at most). Started; call
    ``run(seconds)``."""
    from vosapp.config import parse_config
    net = VirtualNetwork(latency=latency)
    carrier = CarrierRegistrar({TRUNK_USER: TRUNK_PASSWORD}, challenge_code=challenge_code,
                               max_expires=max_expires, clock=net.clock)
    endpoint = net.add_endpoint(CARRIER_ADDRESS)

    def on_packet(packet: Packet) -> None:
        reply = carrier.handle(packet.data, packet.source)
        if reply is not None:
            endpoint.send(reply, packet.source, packet.transport)

    endpoint.on_receive = on_packet
    with tempfile.TemporaryDirectory(prefix="vosapp-upstream-") as scratch:
        text = upstream_config(Path(scratch), CARRIER_ADDRESS,
                               sip_listen=f"{SWITCH_ADDRESS[0]}:{SWITCH_ADDRESS[1]}").read_text()
    config = parse_config(text)
    params = config.parameters.replace(**changes)
    switch = net.add_switch(SWITCH_ADDRESS, config=config, params=params,
                            features=["outbound"])
    switch.start()
    return OutboundRun(net, switch, carrier)
