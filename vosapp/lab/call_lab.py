"""A switch with one gateway pair per demonstration, for notebook 07 (live calls).

Each :class:`Demo` is a caller account (its own mapping gateway), a dialled prefix (its own
routing gateway) and a :class:`~vosapp.lab.vendor.LabVendor` with its own codec list, so one
in-kernel switch shows every codec and DTMF rule of docs/behaviour.md §5 and §6 side by side::

    lab = await CallLab.start([Demo("transcode", mapping={...}, routing={...},
                                    vendor_codecs=("G729",))], directory)
    call, far = await lab.call("transcode")      # the phone's call and the vendor's
    call, far = await lab.send("transcode", speech, loss=0.1)   # play, hang up
    ...
    await lab.stop()

:func:`config_text` is the TOML it writes (free SIP port; RTP ports from a range whose busy
ports the relay skips); :func:`sdp_lines` picks the SDP lines worth showing.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vosapp.lab.attach import LabSwitch
from vosapp.lab.calls import Call, CallError
from vosapp.lab.phones import LabPhone
from vosapp.lab.vendor import LabVendor
from vosapp.sip import Response

__all__ = ["CallLab", "Demo", "config_text", "loopback_gateways", "refusal", "sdp_lines"]


@dataclass(frozen=True)
class Demo:
    """One demonstration: gateway settings on each side (GatewaySettings fields, as in the
    config file) and what the phone and the vendor speak."""

    name: str
    mapping: Mapping[str, Any] = field(default_factory=dict)
    routing: Mapping[str, Any] = field(default_factory=dict)
    phone_codecs: tuple[str, ...] = ("PCMA",)
    vendor_codecs: tuple[str, ...] = ("PCMA",)
    phone_telephone_event: int | None = 101  # None: the phone offers no telephone-event
    vendor_mode: str = "echo"


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    raise TypeError(f"a gateway setting is text, a number or a boolean, not {value!r}")


def _settings(settings: Mapping[str, Any]) -> str:
    return "".join(f"{key} = {_toml(value)}\n" for key, value in settings.items())


def account(index: int) -> str:
    """The caller account of the ``index``-th demo (7001, 7002 ...)."""
    return f"{7001 + index}"


def prefix(index: int) -> str:
    """The dialled prefix routed to the ``index``-th demo's vendor (801, 802 ...)."""
    return f"{801 + index}"


def password(user: str) -> str:
    return f"lab-{user}-secret"


def config_text(demos: Sequence[Demo], vendor_ports: Sequence[int], *, rtp_base: int,
                rtp_ports: int = 200) -> str:
    """The switch configuration: per demo an account, a mapping gateway for it (allowed to
    dial its prefix only) and a routing gateway on that prefix pointing at its vendor."""
    if len(demos) != len(vendor_ports):
        raise ValueError(f"{len(demos)} demos but {len(vendor_ports)} vendor ports")
    parts = [f"""[switch]
sip_listen = "127.0.0.1:5060"   # the switch is started on a free port instead
media_ip = "127.0.0.1"
rtp_ports = "{rtp_base}-{rtp_base + rtp_ports - 1}"
"""]
    for index, (demo, port) in enumerate(zip(demos, vendor_ports, strict=True)):
        user = account(index)
        parts.append(f"""
# {demo.name}
[[account]]
user = "{user}"
password = "{password(user)}"

[[mapping_gateway]]
name = "{demo.name}-customer"
accounts = ["{user}"]
prefixes = ["{prefix(index)}"]
{_settings(demo.mapping)}
[[routing_gateway]]
name = "{demo.name}-vendor"
address = "127.0.0.1:{port}"
prefixes = ["{prefix(index)}"]
{_settings(demo.routing)}""")
    return "".join(parts)


def loopback_gateways(vendor_port: int, prefix: str = "") -> str:
    """The gateway tables of a switch between callers and one vendor on loopback: whoever
    calls from 127.0.0.1 is the trusted mapping gateway "customer"; numbers starting with
    ``prefix`` go to the routing gateway "vendor" at 127.0.0.1:``vendor_port``."""
    return f"""
[[mapping_gateway]]
name = "customer"
addresses = ["127.0.0.1"]

[[routing_gateway]]
name = "vendor"
address = "127.0.0.1:{vendor_port}"
prefixes = ["{prefix}"]
"""


def sdp_lines(body: bytes, prefixes: Iterable[str] = ("m=", "a=rtpmap", "a=fmtp")) -> list[str]:
    """The lines of an SDP body that start with one of ``prefixes`` (codecs, by default)."""
    wanted = tuple(prefixes)
    return [line for line in body.decode("utf-8", "replace").splitlines()
            if line.startswith(wanted)]


def refusal(responses: Iterable[Response], status: int) -> tuple[int, str] | None:
    """(status, Warning text) of the last response with ``status`` the phone received."""
    found = [r for r in responses if r.status == status]
    if not found:
        return None
    return status, found[-1].headers.get("Warning") or ""


class CallLab:
    """An in-kernel switch, its vendors and one registered phone per :class:`Demo`."""

    def __init__(self, demos: Sequence[Demo], vendors: list[LabVendor], switch: LabSwitch,
                 phones: list[LabPhone], directory: Path) -> None:
        self.demos = list(demos)
        self.vendors = vendors
        self.switch = switch
        self.phones = phones
        self.directory = directory
        self._index = {demo.name: i for i, demo in enumerate(self.demos)}
        self._dialled = 0

    @classmethod
    async def start(cls, demos: Sequence[Demo], directory: str | Path) -> CallLab:
        """Vendors on free ports, the config in ``directory/calls.toml``, the switch (SIP on
        a free port, its store in ``directory/data``) and the phones, registered."""
        names = [demo.name for demo in demos]
        if len(set(names)) != len(names):
            raise ValueError(f"demo names must be unique: {names}")
        directory = Path(directory)
        vendors = [LabVendor(codecs=demo.vendor_codecs, mode=demo.vendor_mode)
                   for demo in demos]
        for vendor in vendors:
            await vendor.open()
        path = directory / "calls.toml"
        rtp_base = random.Random().randrange(30000, 39000, 200)  # busy ports are skipped
        path.write_text(config_text(demos, [v.address[1] for v in vendors],
                                    rtp_base=rtp_base))
        switch = await LabSwitch.start(path, data_dir=directory / "data", port=0)
        phones = []
        for index, demo in enumerate(demos):
            user = account(index)
            phone = LabPhone(user, password(user), switch.address, codecs=demo.phone_codecs,
                             telephone_event_pt=demo.phone_telephone_event)
            response = await phone.register(expires=300)
            if response is None or response.status != 200:
                raise CallError(f"{user} did not register: "
                                f"{response.status if response else 'no answer'}")
            phones.append(phone)
        return cls(demos, vendors, switch, phones, directory)

    def phone(self, demo: str) -> LabPhone:
        return self.phones[self._position(demo)]

    def vendor(self, demo: str) -> LabVendor:
        return self.vendors[self._position(demo)]

    def number(self, demo: str) -> str:
        """A new number the demo's phone dials to reach the demo's vendor (each call its own,
        so the vendor's side of concurrent calls is found by the number it was called on)."""
        self._dialled += 1
        return f"{prefix(self._position(demo))}555{self._dialled:04d}"

    def _position(self, demo: str) -> int:
        try:
            return self._index[demo]
        except KeyError:
            raise CallError(f"no demo {demo!r}; demos: {', '.join(self._index)}") from None

    async def dial(self, demo: str) -> Call:
        """Dial the demo's vendor; returns the phone's call at once (not answered yet)."""
        return await self.phone(demo).call(self.number(demo))

    async def call(self, demo: str, timeout: float = 20.0) -> tuple[Call, Call]:
        """Dial and wait for the answer: (the phone's call, the vendor's call)."""
        call = await self.dial(demo)
        await call.wait_answered(timeout)
        number = getattr(call.invite.to.uri, "user", None) if call.invite is not None else None
        vendor = self.vendor(demo)
        for _ in range(int(timeout * 100)):  # answered: the vendor has it, maybe not yet here
            for far in vendor.calls:
                if far.invite is not None and getattr(far.invite.uri, "user", None) == number:
                    return call, far
            await asyncio.sleep(0.01)
        raise CallError(f"{number} was answered, but not by the {demo} vendor")

    async def send(self, demo: str, audio: Any, *, loss: float = 0.0, seed: int = 1,
                   settle: float = 0.4) -> tuple[Call, Call]:
        """One call that plays ``audio`` (array or file) from the phone, losing ``loss`` of
        its packets on the way out (the phone's own impairment, seeded), waits ``settle``
        seconds for the last packets and hangs up: (the phone's call, the vendor's)."""
        call, far = await self.call(demo)
        if loss:
            call.impair(loss=loss, seed=seed)
        await call.play(audio)
        await asyncio.sleep(settle)
        await call.hangup()
        return call, far

    async def stop(self) -> None:
        """Hang up what is still up, stop the switch, close phones and vendors."""
        for ua in (*self.phones, *self.vendors):
            for call in list(ua.calls):
                if call.state == "answered":
                    await call.hangup()
        await self.switch.stop()
        for ua in (*self.phones, *self.vendors):
            ua.close()
