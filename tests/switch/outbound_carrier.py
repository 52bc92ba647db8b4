"""A scripted carrier registrar on the virtual network, for the outbound registration tests.

By default it behaves like a real registrar with digest authentication (vosapp's own
:class:`DigestServer` verifies the credentials): a REGISTER without credentials is challenged
(401 or 407), a correct one gets 200 with our Contact and ``expires``, a wrong one 403.
``script`` entries override that for the next new requests (one entry per new REGISTER; a
retransmission gets the same answer as its original, or nothing when the original got none).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from vosapp.config import Config, parse_config
from vosapp.io.virtual import Packet, VirtualNetwork
from vosapp.sip import Request, Response, make_response, new_tag
from vosapp.sip.digest import DigestServer

SWITCH = ("10.0.0.1", 5060)
CARRIER = ("10.0.0.9", 5060)
USER = "gw-user"
PASSWORD = "s3cret-pass"

#: A script entry: the request → a response to send, or None for silence, or bytes (garbage).
Reply = Callable[[Request], "Response | bytes | None"]


def config(*, gateways: str | None = None, parameters: str = "", register_extra: str = "",
           proxy: tuple[str, int] = CARRIER, transport: str = "udp") -> Config:
    """A config with one routing gateway ``carrier`` registering to ``proxy``."""
    if gateways is None:
        gateways = f"""
[[routing_gateway]]
name = "carrier"
address = "{proxy[0]}:{proxy[1]}"
transport = "{transport}"
[routing_gateway.register]
sip_proxy = "{proxy[0]}:{proxy[1]}"
auth_user = "{USER}"
password = "{PASSWORD}"
{register_extra}
"""
    text = f"""
[switch]
sip_listen = "{SWITCH[0]}:{SWITCH[1]}"
[parameters]
{parameters}
{gateways}
"""
    return parse_config(text)


@dataclass
class Seen:
    time: float
    request: Request

    @property
    def expires(self) -> str | None:
        return self.request.headers.get("Expires")


@dataclass
class Carrier:
    net: VirtualNetwork
    address: tuple[str, int] = CARRIER
    code: int = 401  # challenge with 401 (WWW-Authenticate) or 407 (Proxy-Authenticate)
    password: str = PASSWORD
    default_expires: int = 300  # granted when the REGISTER asks for nothing
    max_expires: int = 3600
    challenge_unregister: bool = False  # challenge Expires: 0 even with credentials
    script: list[Reply] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.endpoint = self.net.add_endpoint(self.address)
        self.endpoint.on_receive = self._on_receive
        self.digest = DigestServer("carrier.test", b"k" * 32, self.net.clock)
        self._answers: dict[str, Response | bytes | None] = {}
        self._challenged_unregister: set[str] = set()

    # ---------------------------------------------------------------- helpers for tests
    def registers(self) -> list[Seen]:
        return [s for s in self.seen if s.request.method == "REGISTER"]

    def times(self) -> list[float]:
        return [round(s.time, 3) for s in self.registers()]

    # ---------------------------------------------------------------- behaviour
    def _on_receive(self, packet: Packet) -> None:
        message = packet.parse()
        if not isinstance(message, Request):
            return
        branch = message.top_via.branch or ""
        if branch in self._answers:  # a retransmission: same answer again (or silence)
            self._send(self._answers[branch], packet)
            return
        self.seen.append(Seen(self.net.clock.now(), message))
        reply = self.script.pop(0)(message) if self.script else self.registrar(message)
        self._answers[branch] = reply
        self._send(reply, packet)

    def _send(self, reply: Response | bytes | None, packet: Packet) -> None:
        if reply is not None:
            self.endpoint.send(reply, packet.source, packet.transport)

    def respond(self, request: Request, status: int, reason: str | None = None,
                **headers: str) -> Response:
        response = make_response(request, status, reason, to_tag=new_tag())
        for name, value in headers.items():
            response.headers.add(name.replace("_", "-"), value)
        return response

    def challenge(self, request: Request, *, stale: bool = False) -> Response:
        header = "WWW-Authenticate" if self.code == 401 else "Proxy-Authenticate"
        response = self.respond(request, self.code)
        response.headers.add(header, str(self.digest.challenge(stale=stale)))
        return response

    def registrar(self, request: Request) -> Response:
        """A minimal RFC 3261 §10.3 registrar with digest authentication."""
        header = "Authorization" if self.code == 401 else "Proxy-Authorization"
        credentials = request.headers.get(header)
        if credentials is None:
            return self.challenge(request)
        result = self.digest.verify(credentials, "REGISTER", self.password,
                                    request_uri=str(request.uri))
        if result.stale:
            return self.challenge(request, stale=True)
        if not result.ok:
            return self.respond(request, 403)
        contact = request.contacts[0]
        asked = contact.params.get("expires") or request.headers.get("Expires")
        if asked is not None and int(asked) == 0:
            if self.challenge_unregister and request.call_id not in self._challenged_unregister:
                self._challenged_unregister.add(request.call_id)
                return self.challenge(request)
            return self.respond(request, 200)
        granted = self.default_expires if asked is None else min(int(asked), self.max_expires)
        bound = f"<{contact.uri}>;expires={granted}"
        instance = contact.params.get("+sip.instance")
        if instance:
            bound = f"<{contact.uri}>;+sip.instance={instance};expires={granted}"
        return self.respond(request, 200, Contact=bound)
