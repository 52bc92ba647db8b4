"""The B2BUA's media backend on real sockets: :class:`~vosapp.io.rtp_relay.RtpRelay` legs
allocated when the vendor INVITE is built, started when the vendor's answer fixes the codecs.

The call layer (:mod:`vosapp.switch.call`) must put the relay's ports in the vendor offer
before it knows which codec the vendor picks, while an :class:`RtpRelay` fixes its mode
(relay or transcode) when it is built. So :meth:`RelayBackend.allocate` binds the two sockets
from ``[switch] rtp_ports`` on ``media_ip`` at once, and :meth:`RelaySession.start` builds the
relay on those sockets later (same steps as :meth:`RtpRelay.open`). Datagrams that arrive
before ``start`` wait in the socket buffer.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from vosapp.io.rtp_relay import LegConfig, PortAllocator, RtpRelay, bind_rtp_socket
from vosapp.media.relay import Side
from vosapp.net import Address

__all__ = ["RelayBackend", "RelaySession"]


def _side(side: str) -> Side:
    """The B2BUA names legs with plain strings; the relay wants its ``Side``."""
    if side == "a":
        return "a"
    if side == "b":
        return "b"
    raise ValueError(f"no relay leg {side!r} (expected 'a' or 'b')")


class RelayBackend:
    """Allocates relay sockets from a port range (ephemeral ports when no range is given)."""

    def __init__(self, host: str, low: int | None = None, high: int | None = None) -> None:
        self.host = host
        self.ports = PortAllocator(low, high) if low is not None and high is not None else None
        self.sessions: set[RelaySession] = set()

    def allocate(self) -> RelaySession:
        first = bind_rtp_socket(self.host, self.ports)
        try:
            second = bind_rtp_socket(self.host, self.ports)
        except Exception:
            self._release(first)
            raise
        session = RelaySession(self, first, second)
        self.sessions.add(session)
        return session

    def _release(self, sock: socket.socket) -> None:
        port = sock.getsockname()[1]
        sock.close()
        if self.ports is not None:
            self.ports.release(port)


class RelaySession:
    """Two bound sockets, then a running :class:`RtpRelay` (``relay``) after :meth:`start`."""

    def __init__(self, backend: RelayBackend, sock_a: socket.socket,
                 sock_b: socket.socket) -> None:
        self.backend = backend
        self._socks: dict[Side, socket.socket] = {"a": sock_a, "b": sock_b}
        self.local_a: Address = sock_a.getsockname()[:2]
        self.local_b: Address = sock_b.getsockname()[:2]
        self.relay: RtpRelay | None = None
        self.closed = False
        self._dtmf: dict[str, Any] = {}

    def start(self, a: Any, b: Any, *, dtmf: dict[str, Any],
              on_info_send: Callable[[str, Any], None] | None) -> str:
        """Build and start the relay from two :class:`~vosapp.switch.call.LegSpec`."""
        if self.relay is not None:
            return self.relay.mode

        def config(spec: Any) -> LegConfig:
            return LegConfig(codec=spec.codec, ptime=spec.ptime, payload_type=spec.payload_type,
                             dtmf_payload_type=spec.dtmf_payload_type, remote=spec.remote)

        self._dtmf = dict(dtmf or {})
        converters = {_side(side): converter for side, converter in (dtmf or {}).items()}
        relay = RtpRelay(config(a), config(b), dtmf=converters or None,
                         on_info_send=on_info_send)
        relay.start_on(self._socks, ports=self.backend.ports)
        self.relay = relay
        return relay.mode

    def info_received(self, side: str, content_type: str, body: bytes) -> None:
        if self.relay is None:
            raise RuntimeError("media relay not started")
        self.relay.info_received(_side(side), content_type, body)

    def relatch(self, side: str, remote: Address | None) -> None:
        if self.relay is not None:
            self.relay.relatch(_side(side), remote)

    def set_direction(self, side: str, direction: str) -> None:
        if self.relay is not None:
            self.relay.set_direction(_side(side), direction)

    def dtmf_methods(self) -> list[str]:
        """What the relay did with DTMF, per direction: ``"a->b RFC2833 to SIP INFO"``
        (incoming method locked by the converter, docs/behaviour.md §6, then how it left)."""
        if self.relay is None:
            return []
        sent = {"ForwardEvent": "RFC2833", "SendEvent": "RFC2833", "SendInfo": "SIP INFO",
                "GenerateTones": "Inband"}
        seen: list[str] = []
        for side, action in self.relay.dtmf_log:
            out = sent.get(type(action).__name__)
            if out is None:
                continue
            converter = self._dtmf.get(side)
            locked = getattr(getattr(converter, "lock", None), "method", None)
            incoming = locked.value if locked is not None else "RFC2833"
            other = "b" if side == "a" else "a"
            text = f"{side}->{other} {incoming} to {out}"
            if text not in seen:
                seen.append(text)
        return seen

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.backend.sessions.discard(self)
        if self.relay is not None:
            self.relay.close()
        else:
            for sock in self._socks.values():
                self.backend._release(sock)


def backend_for(core: Any) -> RelayBackend:
    """The relay backend for a switch core: ``[switch] media_ip`` and ``rtp_ports`` from its
    config, else the core's own UDP address with ephemeral ports. The asyncio runtime hands
    this to :func:`vosapp.switch.app.build_switch_app` (the switch layer never imports io)."""
    config = core.config
    if config is not None:
        sw = config.switch
        return RelayBackend(sw.media_ip, sw.rtp_port_min, sw.rtp_port_max)
    return RelayBackend(core.local_address("UDP")[0])
