"""asyncio RTP media relay (media proxy) between the two legs of a call.

Each leg is one UDP socket of the switch, facing one endpoint. Packets arriving on leg A go out
of leg B towards B's endpoint and vice versa. Two modes, chosen from the legs' settings:

``relay``
    Both legs use the same codec and ptime: the packet is forwarded as is, except its payload
    type, rewritten to the target leg's negotiated one (dynamic PTs may differ per leg).
    Sequence, timestamp and SSRC are kept (the usual behaviour of a media proxy).
``transcode``
    Different codecs or ptimes: each direction has a
    :class:`~vosapp.media.transcoder.Transcoder` that owns the outgoing leg's SSRC, sequence
    and timestamp.

Symmetric RTP and latching (RFC 4961; the NAT traversal a softswitch does for endpoints
behind NAT): a leg sends to the address from its SDP (:attr:`LegConfig.remote`) until the
first valid packet arrives on it; that packet *latches* the leg: from then on the leg sends to
the packet's source address, and packets from any other source are dropped and counted
(``dropped_foreign``) so a third party cannot hijack the stream. A packet is valid for latching
when it is RTP version 2 and carries the leg's media or telephone-event payload type. A
re-INVITE that moves the media calls :meth:`RtpRelay.relatch`.

Telephone events (RFC 4733) and DTMF conversion (docs/behaviour.md §6): for a direction with a
:class:`~vosapp.media.dtmf.DtmfConverter` (``RtpRelay.open(..., dtmf={"a": converter})``, keyed
by the side the digits come from), every telephone-event packet and, when the source side may
send inband tones, the decoded source audio go through the converter, and the relay carries out
its actions: forward an event with the target's payload type, send a whole event as RFC 4733
packets paced by :class:`~vosapp.media.dtmf.TelephoneEventSender`, replace the outgoing audio
with generated tones, or hand a SIP INFO to the signalling layer (``on_info_send``); SIP INFO
digits come in through :meth:`RtpRelay.info_received`. Such a direction numbers the target
leg's packets itself (own SSRC/sequence, mapped timestamps), since events are inserted into the
stream. A direction without a converter passes telephone-event packets to
:attr:`RtpRelay.telephone_event_handler`; the default, :func:`rewrite_telephone_event`,
terminates the incoming payload type and sends the event with the target leg's (media proxy
On), or drops it when the target leg has no RFC 2833.

Ports: :class:`PortAllocator` hands out even ports from a configured range (RFC 3550 §11: RTP
on an even port, RTCP on the next odd one).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Self

import numpy as np

from vosapp.io.udp import is_ip_literal
from vosapp.media import codecs as codec_registry
from vosapp.media.codecs.base import Codec
from vosapp.media.dtmf.convert import (
    Action,
    DtmfConverter,
    DtmfMethod,
    ForwardEvent,
    GenerateTones,
    IgnoredDigit,
    SendEvent,
    SendInfo,
    accepts,
)
from vosapp.media.dtmf.errors import DtmfError, TelephoneEventError
from vosapp.media.dtmf.rfc4733 import (
    EventPacket,
    TelephoneEvent,
    TelephoneEventSender,
    retarget,
)
from vosapp.media.rtp import OutgoingStream, RtpError, RtpPacket, RtpStreamStats
from vosapp.media.transcoder import Transcoder
from vosapp.net import Address

__all__ = [
    "EventRoute",
    "Leg",
    "LegConfig",
    "LegStats",
    "PortAllocator",
    "PortRangeExhausted",
    "RtpRelay",
    "TelephoneEventHandler",
    "bind_rtp_socket",
    "rewrite_telephone_event",
]

log = logging.getLogger(__name__)

Side = Literal["a", "b"]


@dataclass(frozen=True, slots=True)
class LegConfig:
    """Media settings of one leg, as negotiated in its SDP.

    Attributes
    ----------
    codec : str
        Codec name for :func:`vosapp.media.codecs.get` (``"PCMA"``, ``"G729"``...).
    ptime : int
        Packetization in ms.
    payload_type : int or None
        Negotiated payload type (default: the codec's static one).
    dtmf_payload_type : int or None
        telephone-event payload type on this leg, or ``None`` when the leg has no RFC 2833.
    dtmf_events : frozenset of int or None
        Events this leg accepts (its gateway's key range, e.g. ``parse_event_range("0-15")``);
        ``None`` accepts all.
    remote : (host, port) or None
        Where to send before latching (the SDP connection address and port).
    """

    codec: str
    ptime: int = 20
    payload_type: int | None = None
    dtmf_payload_type: int | None = 101
    remote: Address | None = None
    dtmf_events: frozenset[int] | None = None

    def media_payload_type(self) -> int:
        """The negotiated media payload type."""
        if self.payload_type is not None:
            return self.payload_type
        return codec_registry.get(self.codec).payload_type


@dataclass(slots=True)
class LegStats:
    """Counters of one leg (``rx`` = received on this leg's socket, ``tx`` = sent from it)."""

    rx_packets: int = 0
    rx_bytes: int = 0
    tx_packets: int = 0
    tx_bytes: int = 0
    tx_dropped: int = 0
    tx_errors: int = 0
    events_rx: int = 0
    events_tx: int = 0
    events_dropped: int = 0
    dtmf_ignored: int = 0
    info_dropped: int = 0
    dropped_invalid: int = 0
    dropped_foreign: int = 0
    dropped_no_peer: int = 0
    dropped_unknown_pt: int = 0
    stream: RtpStreamStats = field(default_factory=RtpStreamStats)

    def as_dict(self) -> dict[str, Any]:
        """Counters and the incoming stream's loss/jitter as a plain dict."""
        out: dict[str, Any] = {
            name: getattr(self, name) for name in self.__slots__ if name != "stream"
        }
        out.update({f"rx_{k}": v for k, v in self.stream.as_dict().items()})
        return out


class PortRangeExhausted(RuntimeError):
    """No free even port left in the configured RTP range."""


class PortAllocator:
    """Even UDP ports from ``[low, high]`` (RFC 3550 §11), skipping ones in use by others.

    Parameters
    ----------
    low, high : int
        Inclusive range (e.g. ``Config.switch.rtp_port_min/max``).
    """

    def __init__(self, low: int, high: int) -> None:
        if not 1024 <= low <= high <= 65535:
            raise ValueError(f"RTP port range {low}..{high} must lie within 1024..65535")
        first = low + (low % 2)
        self._ports = list(range(first, high + 1, 2))
        if not self._ports:
            raise ValueError(f"RTP port range {low}..{high} contains no even port")
        self._next = 0
        self._in_use: set[int] = set()

    def bind(self, host: str) -> socket.socket:
        """Bind a UDP socket on the next free even port of the range.

        Raises
        ------
        PortRangeExhausted
            Every port of the range is taken.
        """
        for _ in range(len(self._ports)):
            port = self._ports[self._next]
            self._next = (self._next + 1) % len(self._ports)
            if port in self._in_use:
                continue
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                sock.bind((host, port))
            except OSError:
                sock.close()
                continue
            self._in_use.add(port)
            return sock
        raise PortRangeExhausted(
            f"no free even RTP port in {self._ports[0]}..{self._ports[-1]} on {host}"
        )

    def release(self, port: int) -> None:
        """Return a port to the pool."""
        self._in_use.discard(port)

    @property
    def in_use(self) -> frozenset[int]:
        """Ports currently handed out."""
        return frozenset(self._in_use)


def bind_rtp_socket(host: str, ports: PortAllocator | None) -> socket.socket:
    """A UDP socket bound on ``host``: the allocator's next free port, else an ephemeral one."""
    if ports is not None:
        return ports.bind(host)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    return sock


@dataclass(slots=True)
class EventRoute:
    """What a telephone-event handler needs to re-send an event on the other leg.

    Attributes
    ----------
    source, target : LegConfig
        Settings of the leg the event came from and the leg it goes to.
    restamp : callable(RtpPacket) -> bytes
        Serializes a packet onto the target leg's RTP stream: in relay mode the packet keeps
        its numbering; in transcode mode it gets the target leg's SSRC, next sequence number
        and the timestamp mapped to the target leg's clock.
    """

    source: LegConfig
    target: LegConfig
    restamp: Callable[[RtpPacket], bytes]


TelephoneEventHandler = Callable[[RtpPacket, EventRoute], list[bytes]]
"""``handler(packet, route) -> datagrams`` for every incoming telephone-event packet."""


def rewrite_telephone_event(packet: RtpPacket, route: EventRoute) -> list[bytes]:
    """Default handler: RFC 2833 in -> RFC 2833 out with the target leg's payload type.

    docs/behaviour.md §6 (media proxy On): the incoming payload type and key range are terminated
    and each side gets its own gateway's values. The payload is validated and retargeted through the
    DTMF engine's RFC 4733 API (:func:`vosapp.media.dtmf.rfc4733.retarget`). Events outside
    the target leg's key range (:attr:`LegConfig.dtmf_events`), malformed payloads, and events
    towards a leg without telephone-event are dropped (conversion to inband/INFO belongs to the
    DTMF engine, installed as another handler).
    """
    target_pt = route.target.dtmf_payload_type
    if target_pt is None:
        return []
    try:
        event = TelephoneEvent.parse(packet.payload)
        retargeted = retarget(
            EventPacket(packet.payload_type, packet.sequence, packet.timestamp, packet.marker,
                        event),
            target_pt,
        )
    except TelephoneEventError as exc:
        log.debug("telephone-event dropped: %s", exc)
        return []
    allowed = route.target.dtmf_events
    if allowed is not None and event.event not in allowed:
        return []
    packet.payload_type = retargeted.payload_type
    packet.payload = retargeted.payload
    return [route.restamp(packet)]


class Leg:
    """One side of the relay: its socket, settings, latched peer and counters."""

    def __init__(self, side: Side, config: LegConfig) -> None:
        self.side = side
        self.config = config
        self.stats = LegStats(stream=RtpStreamStats(codec_registry.get(config.codec).clock_rate))
        self.media_pt = config.media_payload_type()
        self.dtmf_pt = config.dtmf_payload_type
        self.latched: Address | None = None
        self.sock: socket.socket | None = None
        self.local_address: Address = ("", 0)
        self.sdp_peer = _sdp_peer(config)
        self.receives = True  # the endpoint's SDP direction lets it receive (RFC 3264 §8.4)

    @property
    def peer(self) -> Address | None:
        """Where this leg sends: the latched source, else the SDP address; None while the
        endpoint is sendonly/inactive (held)."""
        if not self.receives:
            return None
        return self.latched or self.sdp_peer


def _sdp_peer(config: LegConfig) -> Address | None:
    # An SDP connection address may be a host name (RFC 4566 §5.7); sendto() would resolve
    # it with a blocking call on the event loop for every packet. Such a leg waits to latch.
    remote = config.remote
    return remote if remote is not None and is_ip_literal(remote[0]) else None


class _Direction:
    """Media from one leg to the other when it is more than a payload-type rewrite.

    Owns the outgoing numbering of the target leg when packets are transcoded or DTMF is
    converted (events are inserted into the stream, so its sequence numbers must be ours),
    and the DTMF converter's per-direction state: inband detection on the decoded source
    audio, tones waiting to replace outgoing audio.
    """

    def __init__(
        self,
        source: Leg,
        target: Leg,
        transcoder: Transcoder | None,
        converter: DtmfConverter | None,
    ) -> None:
        self.source = source
        self.target = target
        self.transcoder = transcoder
        self.converter = converter
        self.plain = transcoder is None and converter is None
        self.outgoing: OutgoingStream | None
        if transcoder is not None:
            self.outgoing = transcoder.outgoing
        elif converter is not None:
            self.outgoing = OutgoingStream(target.media_pt, source.stats.stream.clock_rate)
        else:
            self.outgoing = None
        self.detect_inband = converter is not None and accepts(
            converter.inbound.receive, DtmfMethod.INBAND
        )
        self.pending: list[Action] = []  # actions found by the audio tap, carried out after
        self.tones = np.zeros(0, dtype=np.int16)  # relay mode: audio replacing the source's
        self._ts_offset: int | None = None
        self._next_ts: int | None = None
        self._decoder: Codec | None = None
        self._encoder: Codec | None = None
        if transcoder is not None and self.detect_inband:
            transcoder.audio_tap = self._tap

    def _tap(self, audio: np.ndarray) -> None:
        assert self.converter is not None
        self.pending.extend(self.converter.on_audio(audio))

    def map_timestamp(self, timestamp: int) -> int:
        """Target-leg timestamp of a source-leg timestamp."""
        if self.transcoder is not None:
            return self.transcoder.map_timestamp(timestamp)
        assert self.outgoing is not None
        if self._ts_offset is None:
            self._ts_offset = (self.outgoing.timestamp - timestamp) & 0xFFFFFFFF
        return (timestamp + self._ts_offset) & 0xFFFFFFFF

    def next_timestamp(self) -> int:
        """Target-leg timestamp of the next audio packet (where a new event starts)."""
        if self.transcoder is not None:
            return self.transcoder.outgoing.timestamp
        assert self.outgoing is not None
        return self.outgoing.timestamp if self._next_ts is None else self._next_ts

    def generate(self, samples: np.ndarray) -> None:
        """Replace upcoming source audio with ``samples`` (source rate, int16)."""
        if self.transcoder is not None:
            self.transcoder.inject(samples)
        else:
            self.tones = np.concatenate([self.tones, samples.astype(np.int16)])

    def media(self, data: bytes) -> list[bytes]:
        """One media packet in, zero or more packets out (transcoded or renumbered)."""
        if self.transcoder is not None:
            return self.transcoder.process(data)
        # relay mode with DTMF conversion: same codec, our numbering on the target leg
        assert self.outgoing is not None and self.converter is not None
        packet = RtpPacket.parse(data)
        payload = packet.payload
        audio: np.ndarray | None = None
        if self.detect_inband or self.tones.size:
            if self._decoder is None:
                self._decoder = codec_registry.get(self.source.config.codec)
            audio = self._decoder.decode(payload)
            if self.detect_inband:
                self.pending.extend(self.converter.on_audio(audio))
        if self.tones.size and audio is not None:
            n = min(audio.size, self.tones.size)
            audio = audio.copy()
            audio[:n] = self.tones[:n]
            self.tones = self.tones[n:]
            if self._encoder is None:
                self._encoder = codec_registry.get(self.target.config.codec)
            payload = self._encoder.encode(audio)
        timestamp = self.map_timestamp(packet.timestamp)
        ticks = self.source.stats.stream.clock_rate * self.source.config.ptime // 1000
        self._next_ts = (timestamp + ticks) & 0xFFFFFFFF
        return [
            self.outgoing.packet_at(
                payload, timestamp, marker=packet.marker, payload_type=self.target.media_pt
            )
        ]


class RtpRelay:
    """A running media relay for one call. Create with :meth:`open`.

    Attributes
    ----------
    a, b : Leg
        The two legs (``a.local_address`` is what goes into the SDP towards endpoint A).
    mode : "relay" or "transcode"
    telephone_event_handler : TelephoneEventHandler
        Called for every incoming telephone-event packet of a direction without a DTMF
        converter (see module docstring).
    dtmf_log : deque of (side, action)
        The last DTMF actions (forwarded, generated, converted, ignored digits), by incoming
        side: for traces and CDRs ("DTMF method used").
    on_info_send : callable(side, SendInfo) or None
        Called when a digit must go to ``side`` as SIP INFO (the signalling layer sends it).
    """

    def __init__(
        self,
        a: LegConfig,
        b: LegConfig,
        *,
        telephone_event_handler: TelephoneEventHandler | None = None,
        dtmf: Mapping[Side, DtmfConverter] | None = None,
        on_info_send: Callable[[Side, SendInfo], None] | None = None,
    ) -> None:
        self.a = Leg("a", a)
        self.b = Leg("b", b)
        same = a.codec.upper() == b.codec.upper() and a.ptime == b.ptime
        self.mode: Literal["relay", "transcode"] = "relay" if same else "transcode"
        self.telephone_event_handler = telephone_event_handler or rewrite_telephone_event
        self._transcoders: dict[Side, Transcoder] = {}
        if self.mode == "transcode":
            # direction keyed by the *incoming* side
            self._transcoders["a"] = Transcoder(
                a.codec, b.codec, src_ptime=a.ptime, dst_ptime=b.ptime,
                payload_type=self.b.media_pt,
            )
            self._transcoders["b"] = Transcoder(
                b.codec, a.codec, src_ptime=b.ptime, dst_ptime=a.ptime,
                payload_type=self.a.media_pt,
            )
        self._ports: PortAllocator | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._routes = {
            "a": EventRoute(a, b, self._restamp_function("a")),
            "b": EventRoute(b, a, self._restamp_function("b")),
        }
        dtmf = dict(dtmf or {})
        for side in dtmf:
            if side not in ("a", "b"):
                raise ValueError(f"dtmf converters are keyed by incoming side 'a'/'b', got {side!r}")
        self._directions: dict[Side, _Direction] = {
            "a": _Direction(self.a, self.b, self._transcoders.get("a"), dtmf.get("a")),
            "b": _Direction(self.b, self.a, self._transcoders.get("b"), dtmf.get("b")),
        }
        self.on_info_send = on_info_send
        self.dtmf_log: deque[tuple[Side, Action]] = deque(maxlen=256)

    @classmethod
    async def open(
        cls,
        a: LegConfig,
        b: LegConfig,
        *,
        host: str = "127.0.0.1",
        ports: PortAllocator | None = None,
        telephone_event_handler: TelephoneEventHandler | None = None,
        dtmf: Mapping[Side, DtmfConverter] | None = None,
        on_info_send: Callable[[Side, SendInfo], None] | None = None,
    ) -> RtpRelay:
        """Bind both legs' sockets and start relaying.

        Parameters
        ----------
        a, b : LegConfig
            Settings of the two legs.
        host : str
            Local address to bind (the media IP).
        ports : PortAllocator, optional
            Port range to allocate from; ephemeral ports when omitted.
        telephone_event_handler : callable, optional
            Replaces :func:`rewrite_telephone_event`.
        dtmf : mapping of side to DtmfConverter, optional
            docs/behaviour.md §6 conversion per direction, keyed by the side the digits come *from*
            (``{"a": DtmfConverter(inbound=A's settings, outbound=B's settings, ...)}``).
            Converters take over telephone-event handling for their direction.
        on_info_send : callable(side, SendInfo), optional
            Receives digits that must leave as SIP INFO towards ``side``.
        """
        relay = cls(
            a, b, telephone_event_handler=telephone_event_handler, dtmf=dtmf,
            on_info_send=on_info_send,
        )
        sockets: dict[Side, socket.socket] = {}
        try:
            for side in ("a", "b"):
                sockets[side] = bind_rtp_socket(host, ports)
        except BaseException:
            for sock in sockets.values():
                if ports is not None:
                    ports.release(sock.getsockname()[1])  # back to the pool, not leaked
                sock.close()
            raise
        relay.start_on(sockets, ports=ports)
        return relay

    def start_on(self, sockets: Mapping[Side, socket.socket], *,
                 ports: PortAllocator | None = None) -> None:
        """Start relaying on sockets that are already bound, one per leg.

        A B2BUA promises its relay ports in the SDP offer before the answer fixes the codecs,
        so it binds first and builds the relay later. Needs a running event loop.

        Parameters
        ----------
        sockets : mapping of side to socket
            Bound UDP sockets for leg ``"a"`` and ``"b"``; the relay owns them from now on.
        ports : PortAllocator, optional
            The allocator they came from; their ports go back to it on :meth:`close`.
        """
        loop = asyncio.get_running_loop()
        self._ports = ports
        self._loop = loop
        for leg in (self.a, self.b):
            sock = sockets[leg.side]
            # room for bursts: a relay must not lose packets to a small receive buffer
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            sock.setblocking(False)
            leg.sock = sock
            name = sock.getsockname()
            leg.local_address = (name[0], name[1])
            # Not a DatagramProtocol: asyncio reads one datagram per readiness event there.
            # Draining the socket in one callback costs a fraction per packet at high rates.
            loop.add_reader(sock.fileno(), self._drain, leg.side)

    # -- control --------------------------------------------------------------------------

    def leg(self, side: Side) -> Leg:
        """Leg ``"a"`` or ``"b"``."""
        if side not in ("a", "b"):
            raise ValueError(f"side must be 'a' or 'b', got {side!r}")
        return self.a if side == "a" else self.b

    def relatch(self, side: Side, remote: Address | None = None) -> None:
        """Forget the latched peer of a leg (re-INVITE); optionally set a new SDP address."""
        leg = self.leg(side)
        leg.latched = None
        if remote is not None:
            leg.config = replace(leg.config, remote=remote)
            leg.sdp_peer = _sdp_peer(leg.config)

    def set_direction(self, side: Side, direction: str) -> None:
        """A new SDP direction for a leg's endpoint (hold/resume re-INVITE, RFC 3264 §8.4):
        nothing is sent to an endpoint that is sendonly or inactive."""
        self.leg(side).receives = direction in ("sendrecv", "recvonly")

    def stats(self) -> dict[str, Any]:
        """Per-leg counters, the mode, and the transcoders' counters when transcoding."""
        out: dict[str, Any] = {
            "mode": self.mode,
            "a": self.a.stats.as_dict(),
            "b": self.b.stats.as_dict(),
        }
        for side, transcoder in self._transcoders.items():
            out[f"transcoder_{side}"] = transcoder.stats.as_dict()
        return out

    def close(self) -> None:
        """Close both sockets and return their ports."""
        for leg in (self.a, self.b):
            if leg.sock is not None:
                if self._loop is not None and not self._loop.is_closed():
                    self._loop.remove_reader(leg.sock.fileno())
                leg.sock.close()
                leg.sock = None
                if self._ports is not None:
                    self._ports.release(leg.local_address[1])

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    # -- packet path ----------------------------------------------------------------------

    def _restamp_function(self, incoming: Side) -> Callable[[RtpPacket], bytes]:
        def restamp(packet: RtpPacket) -> bytes:
            direction = self._directions[incoming]
            if direction.outgoing is None:
                return bytes(packet)
            return direction.outgoing.packet_at(
                packet.payload,
                direction.map_timestamp(packet.timestamp),
                marker=packet.marker,
                payload_type=packet.payload_type,
            )

        return restamp

    _DRAIN_BATCH = 256  # datagrams per wake-up before yielding to the event loop

    def _drain(self, side: Side) -> None:
        leg = self.a if side == "a" else self.b
        sock = leg.sock
        if sock is None:
            return
        recvfrom = sock.recvfrom
        on_datagram = self._on_datagram
        for _ in range(self._DRAIN_BATCH):
            try:
                data, addr = recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. ICMP port unreachable reported on the socket
                log.debug("RTP leg %s receive error: %s", side, exc)
                continue
            on_datagram(side, data, addr)

    @staticmethod
    def _send(leg: Leg, data: bytes | bytearray, peer: Address) -> None:
        stats = leg.stats
        try:
            leg.sock.sendto(data, peer)  # type: ignore[union-attr]
        except (BlockingIOError, InterruptedError):
            stats.tx_dropped += 1  # send buffer full: drop rather than queue stale audio
            return
        except OSError as exc:
            stats.tx_errors += 1
            log.debug("RTP leg %s send error to %s: %s", leg.side, peer, exc)
            return
        stats.tx_packets += 1
        stats.tx_bytes += len(data)

    def _on_datagram(self, side: Side, data: bytes, addr: Address) -> None:
        source, target = (self.a, self.b) if side == "a" else (self.b, self.a)
        stats = source.stats
        stats.rx_packets += 1
        stats.rx_bytes += len(data)
        if len(data) < 12 or data[0] >> 6 != 2:
            stats.dropped_invalid += 1
            return
        payload_type = data[1] & 0x7F
        if source.latched is None:
            if payload_type != source.media_pt and payload_type != source.dtmf_pt:
                stats.dropped_unknown_pt += 1
                return
            source.latched = (addr[0], addr[1])
        elif addr[0] != source.latched[0] or addr[1] != source.latched[1]:
            stats.dropped_foreign += 1
            return
        loop = self._loop
        stats.stream.update(
            (data[2] << 8) | data[3],
            int.from_bytes(data[4:8], "big"),
            loop.time() if loop is not None else 0.0,
        )
        peer = target.peer
        if peer is None or target.sock is None:
            stats.dropped_no_peer += 1
            return
        tstats = target.stats
        direction = self._directions[side]
        if payload_type == source.media_pt:
            if direction.plain:
                out = bytearray(data)
                out[1] = (data[1] & 0x80) | target.media_pt
                self._send(target, out, peer)
                return
            try:
                datagrams = direction.media(data)
            except (RtpError, ValueError) as exc:
                stats.dropped_invalid += 1
                log.debug("leg %s: undecodable media packet dropped: %s", side, exc)
                return
            if direction.pending:
                actions, direction.pending = direction.pending, []
                datagrams += self._carry_out(side, actions)
        elif payload_type == source.dtmf_pt:
            stats.events_rx += 1
            try:
                packet = RtpPacket.parse(data)
            except RtpError:
                stats.dropped_invalid += 1
                return
            if direction.converter is None:
                datagrams = self.telephone_event_handler(packet, self._routes[side])
            else:
                try:
                    actions = direction.converter.on_rfc2833(
                        packet.payload_type, packet.timestamp, packet.payload,
                        marker=packet.marker,
                    )
                except DtmfError as exc:
                    log.debug("leg %s: telephone-event dropped: %s", side, exc)
                    actions = []
                datagrams = self._carry_out(side, actions)
            if not datagrams:
                stats.events_dropped += 1
            tstats.events_tx += len(datagrams)
        elif direction.plain and self.mode == "relay":
            datagrams = [data]  # e.g. comfort noise (PT 13): pass through unchanged
        else:
            stats.dropped_unknown_pt += 1
            return
        for datagram in datagrams:
            self._send(target, datagram, peer)

    # -- DTMF conversion (docs/behaviour.md §6)
    # ----------------------------------------------------------

    def info_received(self, side: Side, content_type: str, body: bytes | str) -> None:
        """A SIP INFO digit arrived from ``side`` (called by the signalling layer).

        Raises
        ------
        DtmfError
            For a malformed body (the signalling layer answers 400) or when no converter is
            set for that direction.
        """
        direction = self._directions[self.leg(side).side]
        if direction.converter is None:
            raise DtmfError(f"no DTMF converter for digits from side {side!r}")
        datagrams = self._carry_out(side, direction.converter.on_info(content_type, body))
        target = direction.target
        peer = target.peer
        for datagram in datagrams:
            if peer is None or target.sock is None:
                target.stats.dropped_no_peer += 1
                continue
            target.stats.events_tx += 1
            self._send(target, datagram, peer)

    def _carry_out(self, side: Side, actions: list[Action]) -> list[bytes]:
        """Perform converter actions; return the datagrams to send now on the target leg."""
        direction = self._directions[side]
        out: list[bytes] = []
        for action in actions:
            self.dtmf_log.append((side, action))
            if isinstance(action, ForwardEvent):
                assert direction.outgoing is not None
                out.append(direction.outgoing.packet_at(
                    action.payload, direction.map_timestamp(action.timestamp),
                    marker=action.marker, payload_type=action.payload_type,
                ))
            elif isinstance(action, SendEvent):
                self._schedule_event(direction, action)
            elif isinstance(action, GenerateTones):
                direction.generate(action.samples)
            elif isinstance(action, SendInfo):
                if self.on_info_send is not None:
                    self.on_info_send(direction.target.side, action)
                else:
                    direction.source.stats.info_dropped += 1
            elif isinstance(action, IgnoredDigit):
                direction.source.stats.dtmf_ignored += 1
        return out

    def _schedule_event(self, direction: _Direction, action: SendEvent) -> None:
        """Send a whole RFC 4733 event on the target leg, paced as its sender says."""
        target = direction.target
        sender = TelephoneEventSender(
            action.payload_type,
            clock_rate=target.stats.stream.clock_rate,
            ptime_ms=target.config.ptime,
        )
        packets = sender.packets(
            action.digit, action.duration_ms, timestamp=direction.next_timestamp(), sequence=0
        )
        loop = self._loop
        for packet in packets:
            if loop is None:
                self._emit_event(direction, packet)
            else:
                loop.call_later(packet.send_at, self._emit_event, direction, packet)

    def _emit_event(self, direction: _Direction, packet: EventPacket) -> None:
        target = direction.target
        peer = target.peer
        if peer is None or target.sock is None or direction.outgoing is None:
            return
        datagram = direction.outgoing.packet_at(
            packet.payload, packet.timestamp, marker=packet.marker,
            payload_type=packet.payload_type,
        )
        target.stats.events_tx += 1
        self._send(target, datagram, peer)
