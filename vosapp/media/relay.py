"""The media relay of one call, sans-IO: datagrams and time in, datagrams and a deadline out.

:class:`RelayCore` holds everything a media proxy decides between the two legs of a call and
nothing that touches a socket or a clock. The I/O layer (:mod:`vosapp.io.rtp_relay`) feeds it
``receive(side, datagram, source, now)`` and sends what it returns: a list of
:data:`Send` tuples ``(side, destination, datagram)``, to go out of leg ``side``'s socket
(:meth:`RelayCore.receive_batch` does the same for the datagrams one wake-up drained).
Paced telephone events are timers: after any input the I/O layer asks
:meth:`RelayCore.next_deadline` and calls :meth:`RelayCore.expire` once that time has come, so
a :class:`~vosapp.clock.ManualClock` replays a call exactly (tests/media/test_relay_core.py).

Modes, chosen from the legs' settings:

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
re-INVITE that moves the media calls :meth:`RelayCore.relatch`.

Direction (RFC 3264 §5.1, :attr:`LegConfig.direction`, as the leg's endpoint negotiated it):
RTP from an endpoint that must not send (``recvonly``, ``inactive``) and RTP towards an
endpoint that must not receive (``sendonly``, ``inactive``) goes nowhere and is counted on the
receiving leg (``dropped_direction``). A re-INVITE that puts a call on hold calls
:meth:`RelayCore.set_direction`.

Telephone events (RFC 4733) and DTMF conversion (docs/behaviour.md §6): for a direction with a
:class:`~vosapp.media.dtmf.DtmfConverter` (``dtmf={"a": converter}``, keyed by the side the
digits come from), every telephone-event packet and, when the source side may send inband
tones, the decoded source audio go through the converter, and the relay carries out its
actions: forward an event with the target's payload type, send a whole event as RFC 4733
packets paced by :class:`~vosapp.media.dtmf.TelephoneEventSender`, replace the outgoing audio
with generated tones, or hand a SIP INFO to the signalling layer (``on_info_send``); SIP INFO
digits come in through :meth:`RelayCore.info_received`. Such a direction numbers the target
leg's packets itself (own SSRC/sequence, mapped timestamps), since events are inserted into
the stream. A direction without a converter passes telephone-event packets to
:attr:`RelayCore.telephone_event_handler`; the default, :func:`rewrite_telephone_event`,
terminates the incoming payload type and sends the event with the target leg's (media proxy
On), or drops it when the target leg has no RFC 2833.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import struct
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, NamedTuple

import numpy as np

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
from vosapp.media.rtp import HEADER_START, OutgoingStream, RtpError, RtpPacket, RtpStreamStats
from vosapp.media.transcoder import LaneState, Transcoder
from vosapp.net import Address, is_ip_literal

__all__ = [
    "DIRECTIONS",
    "Burst",
    "EventRoute",
    "Leg",
    "LegConfig",
    "LegStats",
    "RelayCore",
    "Send",
    "ShortRoute",
    "TelephoneEventHandler",
    "rewrite_telephone_event",
]

log = logging.getLogger(__name__)

Side = Literal["a", "b"]
Send = tuple[Side, Address, bytes | bytearray]
"""``(side, destination, datagram)``: send ``datagram`` from leg ``side``'s socket."""
Burst = tuple[Side, Address, list[bytes | bytearray]]
"""``(side, destination, datagrams)``: send ``datagrams``, in order, from leg ``side``'s
socket (what :meth:`RelayCore.receive_batch` returns)."""


class ShortRoute(NamedTuple):
    """What :meth:`RelayCore.receive_batch`'s short path needs for one incoming leg, so an
    I/O layer may forward such datagrams itself (:meth:`RelayCore.short_route`).

    A datagram fits when its first byte is 0x80 (RTP version 2 without padding, extension or
    CSRC), its payload type is ``media_pt`` and it comes from ``source``. It then goes out of
    leg ``out_side``'s socket to ``peer``, with its payload type set to ``rewrite_pt`` unless
    that is ``None`` (marker bit kept), and counts as :meth:`RelayCore.account_forwarded` says.

    A transcoded leg's route has ``lane``, the C lane object of its transcoder
    (:attr:`Transcoder.native_lane`): a fitting datagram is converted rather than forwarded,
    while the I/O layer holds the transcoder's state (:meth:`RelayCore.lane_state` ..
    :meth:`RelayCore.resume_lane`), and only when it is that state's next packet.
    """

    source: Address
    media_pt: int
    rewrite_pt: int | None
    out_side: Side
    peer: Address
    lane: Any = None


#: SDP media directions (RFC 3264 §5.1), from the point of view of the leg's endpoint.
DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")

_SEQ_TS = struct.Struct("!HI")  # sequence and timestamp at offset 2 of the RTP header


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
    remote : (host, port) or None
        Where to send before latching (the SDP connection address and port).
    dtmf_events : frozenset of int or None
        Events this leg accepts (its gateway's key range, e.g. ``parse_event_range("0-15")``);
        ``None`` accepts all.
    direction : str
        The endpoint's SDP direction (one of :data:`DIRECTIONS`; ``sendonly`` = the endpoint
        sends and does not receive).
    """

    codec: str
    ptime: int = 20
    payload_type: int | None = None
    dtmf_payload_type: int | None = 101
    remote: Address | None = None
    dtmf_events: frozenset[int] | None = None
    direction: str = "sendrecv"

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, not {self.direction!r}")

    def media_payload_type(self) -> int:
        """The negotiated media payload type."""
        if self.payload_type is not None:
            return self.payload_type
        return codec_registry.get(self.codec).payload_type


@dataclass(slots=True)
class LegStats:
    """Counters of one leg (``rx`` = received on this leg's socket, ``tx`` = sent from it;
    the I/O layer counts ``tx_*`` as its sends succeed or fail)."""

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
    dropped_direction: int = 0
    stream: RtpStreamStats = field(default_factory=RtpStreamStats)

    def as_dict(self) -> dict[str, Any]:
        """Counters and the incoming stream's loss/jitter as a plain dict."""
        out: dict[str, Any] = {
            name: getattr(self, name) for name in self.__slots__ if name != "stream"
        }
        out.update({f"rx_{k}": v for k, v in self.stream.as_dict().items()})
        return out


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

    docs/behaviour.md §6 (media proxy On): the incoming payload type and key range are terminated and each
    side gets its own gateway's values. The payload is validated and retargeted through the
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
    """One side of the relay: settings, latched peer and counters.

    Attributes
    ----------
    side : "a" or "b"
    config : LegConfig
    latched : (host, port) or None
        The source address the leg latched on (RFC 4961), ``None`` until the first valid packet.
    peer : (host, port) or None
        Where this leg sends: the latched source, else the SDP address.
    local_address : (host, port)
        The address the I/O layer bound for this leg (what goes into the SDP).
    """

    __slots__ = ("config", "dtmf_pt", "latched", "local_address", "media_pt", "peer",
                 "receives", "sends", "side", "stats")

    def __init__(self, side: Side, config: LegConfig) -> None:
        self.side: Side = side
        self.stats = LegStats(stream=RtpStreamStats(codec_registry.get(config.codec).clock_rate))
        self.media_pt = config.media_payload_type()
        self.dtmf_pt = config.dtmf_payload_type
        self.latched: Address | None = None
        self.local_address: Address = ("", 0)
        self.configure(config)

    def configure(self, config: LegConfig) -> None:
        """Take new settings (re-INVITE): peer and direction follow them."""
        self.config = config
        self.peer: Address | None = self.latched or _sdp_peer(config)
        self.sends = config.direction in ("sendrecv", "sendonly")  # the endpoint may send
        self.receives = config.direction in ("sendrecv", "recvonly")  # ... and receive

    def latch(self, source: Address | None) -> None:
        self.latched = source
        self.peer = source or _sdp_peer(self.config)


def _sdp_peer(config: LegConfig) -> Address | None:
    # An SDP connection address may be a host name (RFC 4566 §5.7); sending to it would resolve
    # it with a blocking call on the event loop for every packet. Such a leg waits to latch.
    remote = config.remote
    return remote if remote is not None and is_ip_literal(remote[0]) else None


class _Flow:
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
        #: relay mode: the target's media payload type when it differs from the source's
        self.rewrite_pt = None if target.media_pt == source.media_pt else target.media_pt
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

    def restamp(self, packet: RtpPacket) -> bytes:
        """``packet`` on the target leg's stream (see :class:`EventRoute`)."""
        if self.outgoing is None:
            return bytes(packet)
        return self.outgoing.packet_at(
            packet.payload, self.map_timestamp(packet.timestamp), marker=packet.marker,
            payload_type=packet.payload_type,
        )

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


class RelayCore:
    """The media relay of one call between leg ``"a"`` and leg ``"b"``, without I/O.

    Parameters
    ----------
    a, b : LegConfig
        Settings of the two legs.
    telephone_event_handler : callable, optional
        Replaces :func:`rewrite_telephone_event`.
    dtmf : mapping of side to DtmfConverter, optional
        docs/behaviour.md §6 conversion per direction, keyed by the side the digits come *from*
        (``{"a": DtmfConverter(inbound=A's settings, outbound=B's settings, ...)}``).
        Converters take over telephone-event handling for their direction.
    on_info_send : callable(side, SendInfo), optional
        Receives digits that must leave as SIP INFO towards ``side``.

    Attributes
    ----------
    a, b : Leg
    mode : "relay" or "transcode"
    telephone_event_handler : TelephoneEventHandler
        Called for every incoming telephone-event packet of a direction without a DTMF
        converter (see module docstring).
    dtmf_log : deque of (side, action)
        The last DTMF actions (forwarded, generated, converted, ignored digits), by incoming
        side: for traces and CDRs ("DTMF method used").
    on_info_send : callable(side, SendInfo) or None
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
        dtmf = dict(dtmf or {})
        for side in dtmf:
            if side not in ("a", "b"):
                raise ValueError(f"dtmf converters are keyed by incoming side 'a'/'b', got {side!r}")
        self._flows: dict[Side, _Flow] = {
            "a": _Flow(self.a, self.b, self._transcoders.get("a"), dtmf.get("a")),
            "b": _Flow(self.b, self.a, self._transcoders.get("b"), dtmf.get("b")),
        }
        self.on_info_send = on_info_send
        self.dtmf_log: deque[tuple[Side, Action]] = deque(maxlen=256)
        # paced RFC 4733 packets: (due time, tie-breaker, flow, packet)
        self._timers: list[tuple[float, int, _Flow, EventPacket]] = []
        self._timer_seq = itertools.count()

    # -- control --------------------------------------------------------------------------

    def leg(self, side: Side) -> Leg:
        """Leg ``"a"`` or ``"b"``."""
        if side not in ("a", "b"):
            raise ValueError(f"side must be 'a' or 'b', got {side!r}")
        return self.a if side == "a" else self.b

    def relatch(self, side: Side, remote: Address | None = None) -> None:
        """Forget the latched peer of a leg (re-INVITE); optionally set a new SDP address."""
        leg = self.leg(side)
        if remote is not None:
            leg.configure(replace(leg.config, remote=remote))
        leg.latch(None)

    def set_direction(self, side: Side, direction: str) -> None:
        """A new SDP direction for a leg's endpoint (hold/resume re-INVITE, RFC 3264 §8.4).

        Raises
        ------
        ValueError
            ``direction`` is not one of :data:`DIRECTIONS`.
        """
        leg = self.leg(side)
        leg.configure(replace(leg.config, direction=direction))

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

    # -- packet path ----------------------------------------------------------------------

    def short_route(self, side: Side) -> ShortRoute | None:
        """The short path of datagrams arriving on leg ``side`` while the state stays as it
        is, or ``None`` when :meth:`receive_batch` would take none (see its conditions).

        Anything that changes latching, direction or peer may change it: an I/O layer that
        forwards on its own asks again after every call into the core.
        """
        flow = self._flows[side]
        src, target = flow.source, flow.target
        latched, peer = src.latched, target.peer
        if latched is None or peer is None or not src.sends or not target.receives:
            return None
        if flow.plain:
            return ShortRoute(latched, src.media_pt, flow.rewrite_pt, target.side, peer)
        # a transcoded direction: Transcoder.process's lane case, while nothing else (audio
        # buffered, tapped for inband DTMF or replaced by tones) has to happen to the packet
        transcoder = flow.transcoder
        if (transcoder is None or transcoder.native_lane is None or flow.pending
                or transcoder.lane_state() is None):
            return None
        return ShortRoute(latched, src.media_pt, None, target.side, peer, transcoder.native_lane)

    def lane_state(self, side: Side) -> LaneState | None:
        """The transcoder state of leg ``side``'s :meth:`short_route` with a lane (see
        :meth:`Transcoder.lane_state`): the I/O layer converting its datagrams holds it and
        hands it back (:meth:`resume_lane`) before the core sees anything of that leg."""
        transcoder = self._flows[side].transcoder
        return transcoder.lane_state() if transcoder is not None else None

    def resume_lane(self, side: Side, converted: int, expected_seq: int, last_src_ts: int,
                    marker_next: bool, out_seq: int, out_ts: int,
                    heard: bytes | None) -> None:
        """Take back :meth:`lane_state` after ``converted`` datagrams of leg ``side`` were
        converted and sent elsewhere (see :meth:`Transcoder.resume_lane`; the legs' counters
        are the I/O layer's, as for :meth:`account_forwarded`)."""
        transcoder = self._flows[side].transcoder
        assert transcoder is not None
        transcoder.resume_lane(converted, expected_seq, last_src_ts, marker_next, out_seq,
                               out_ts, heard)

    def account_forwarded(self, side: Side, headers: list[tuple[int, int, int, int]],
                          size: int, now: float) -> None:
        """Count datagrams an I/O layer forwarded on the :meth:`short_route` of leg ``side``
        as :meth:`receive` counts each: ``headers`` (:data:`HEADER_START` of each, in arrival
        order), ``size`` bytes in all, arrived at ``now``."""
        stats = self._flows[side].source.stats
        stats.rx_packets += len(headers)
        stats.rx_bytes += size
        stats.stream.update_many(headers, now)

    def receive_batch(
        self, side: Side, batch: list[tuple[bytes, Address]], now: float
    ) -> list[Burst]:
        """Datagrams that arrived together on leg ``side``: ``(datagram, source)`` pairs in
        arrival order, all at time ``now`` (what the I/O layer drained in one wake-up).

        The same as :meth:`receive` for each in turn (same counters, same datagrams out, in
        the same order), grouped into bursts. Relay mode spends its time on one kind of
        datagram: media of the leg's payload type from the latched source, to be forwarded
        to the other leg's peer. While the state allows it (latched, no transcoder or DTMF
        converter on the direction, both directions open, a peer to send to), such datagrams
        take a short path: a check of the header and the source, and their statistics
        accounted once for the run (:meth:`RtpStreamStats.update_many`); any other datagram
        goes through :meth:`receive`, after the statistics of those before it.
        """
        flow = self._flows[side]
        src, target = flow.source, flow.target
        media_pt = src.media_pt
        unpack = HEADER_START.unpack_from
        bursts: list[Burst] = []
        datagrams = iter(batch)  # shared by the turns below: each takes up where one stopped
        while True:
            # a turn: the short path while the datagrams fit it, then one for receive()
            latched, peer = src.latched, target.peer
            if (latched is not None and peer is not None and flow.plain and src.sends
                    and target.receives):
                host, port = latched
                run: list[bytes | bytearray] = []
                headers: list[tuple[int, int, int, int]] = []
                keep, note = run.append, headers.append
                other: tuple[bytes, Address] | None = None
                for data, source in datagrams:
                    try:
                        header = unpack(data)
                    except struct.error:  # shorter than the fixed header: receive() drops it
                        other = (data, source)
                        break
                    # a plain RTP version 2 header (no padding, extension or CSRC), the leg's
                    # media payload type, the latched source (IPv6 sources are 4-tuples)
                    if (header[0] != 0x80 or header[1] & 0x7F != media_pt
                            or source != latched and (source[0] != host or source[1] != port)):
                        other = (data, source)
                        break
                    note(header)
                    keep(data)
                if run:  # counted before the datagram that ended it, in arrival order
                    self._account(flow, headers, run, now)
                    bursts.append((target.side, peer, run))
                if other is None:
                    return bursts
                data, source = other
            else:
                following = next(datagrams, None)
                if following is None:
                    return bursts
                data, source = following
            bursts += [(out_side, to, [datagram])
                       for out_side, to, datagram in self.receive(side, data, source, now)]

    @staticmethod
    def _account(flow: _Flow, headers: list[tuple[int, int, int, int]],
                 run: list[bytes | bytearray], now: float) -> None:
        """Count a run of short-path datagrams as :meth:`receive` counts each, and rewrite
        their payload type when the legs' differ (:meth:`receive`'s relay-mode branch)."""
        stats = flow.source.stats
        stats.rx_packets += len(headers)
        stats.rx_bytes += sum(map(len, run))
        stats.stream.update_many(headers, now)
        rewrite_pt = flow.rewrite_pt
        if rewrite_pt is not None:
            for i, data in enumerate(run):
                out = bytearray(data)
                out[1] = (out[1] & 0x80) | rewrite_pt
                run[i] = out

    def receive(self, side: Side, data: bytes, source: Address, now: float) -> list[Send]:
        """A datagram arrived on leg ``side`` from ``source`` at time ``now`` (seconds).

        Returns what to send; malformed, foreign and unwanted packets are counted and
        return ``[]`` (they never raise).
        """
        # The common case (relay mode, media, latched) is kept short: it runs per packet.
        flow = self._flows[side]
        src = flow.source
        stats = src.stats
        size = len(data)
        stats.rx_packets += 1
        stats.rx_bytes += size
        if size < 12 or data[0] & 0xC0 != 0x80:  # RTP version 2
            stats.dropped_invalid += 1
            return []
        second = data[1]
        payload_type = second & 0x7F
        latched = src.latched
        if latched is None:
            if payload_type != src.media_pt and payload_type != src.dtmf_pt:
                stats.dropped_unknown_pt += 1
                return []
            src.latch(source if len(source) == 2 else (source[0], source[1]))
        elif source != latched and (source[0] != latched[0] or source[1] != latched[1]):
            stats.dropped_foreign += 1  # (IPv6 sources are 4-tuples, latched is host, port)
            return []
        sequence, timestamp = _SEQ_TS.unpack_from(data, 2)
        stats.stream.update(sequence, timestamp, now)
        target = flow.target
        if not (src.sends and target.receives):
            stats.dropped_direction += 1
            return []
        peer = target.peer
        if peer is None:
            stats.dropped_no_peer += 1
            return []
        if payload_type == src.media_pt:
            if flow.plain:
                if flow.rewrite_pt is None:  # same payload type on both legs: as received
                    return [(target.side, peer, data)]
                out = bytearray(data)
                out[1] = (second & 0x80) | flow.rewrite_pt
                return [(target.side, peer, out)]
            try:
                datagrams = flow.media(data)
            except (RtpError, ValueError) as exc:
                stats.dropped_invalid += 1
                log.debug("leg %s: undecodable media packet dropped: %s", side, exc)
                return []
            if flow.pending:
                actions, flow.pending = flow.pending, []
                datagrams += self._carry_out(flow, actions, now)
        elif payload_type == src.dtmf_pt:
            stats.events_rx += 1
            datagrams = self._event(flow, data, now)
            if not datagrams:
                stats.events_dropped += 1
            target.stats.events_tx += len(datagrams)
        elif flow.plain and self.mode == "relay":
            datagrams = [data]  # e.g. comfort noise (PT 13): pass through unchanged
        else:
            stats.dropped_unknown_pt += 1
            return []
        return [(target.side, peer, datagram) for datagram in datagrams]

    def _event(self, flow: _Flow, data: bytes, now: float) -> list[bytes]:
        """A telephone-event packet: through the converter, else the handler."""
        try:
            packet = RtpPacket.parse(data)
        except RtpError:
            flow.source.stats.dropped_invalid += 1
            return []
        if flow.converter is None:
            return self.telephone_event_handler(
                packet, EventRoute(flow.source.config, flow.target.config, flow.restamp))
        try:
            actions = flow.converter.on_rfc2833(
                packet.payload_type, packet.timestamp, packet.payload, marker=packet.marker,
            )
        except DtmfError as exc:
            log.debug("leg %s: telephone-event dropped: %s", flow.source.side, exc)
            actions = []
        return self._carry_out(flow, actions, now)

    # -- DTMF conversion (docs/behaviour.md §6) ----------------------------------------------------------

    def info_received(self, side: Side, content_type: str, body: bytes | str,
                      now: float) -> list[Send]:
        """A SIP INFO digit arrived from ``side`` (called by the signalling layer).

        Raises
        ------
        DtmfError
            For a malformed body (the signalling layer answers 400) or when no converter is
            set for that direction.
        """
        flow = self._flows[self.leg(side).side]
        if flow.converter is None:
            raise DtmfError(f"no DTMF converter for digits from side {side!r}")
        datagrams = self._carry_out(flow, flow.converter.on_info(content_type, body), now)
        target = flow.target
        if target.peer is None:
            target.stats.dropped_no_peer += len(datagrams)
            return []
        target.stats.events_tx += len(datagrams)
        return [(target.side, target.peer, datagram) for datagram in datagrams]

    def _carry_out(self, flow: _Flow, actions: list[Action], now: float) -> list[bytes]:
        """Perform converter actions; return the datagrams to send now on the target leg."""
        out: list[bytes] = []
        for action in actions:
            self.dtmf_log.append((flow.source.side, action))
            if isinstance(action, ForwardEvent):
                assert flow.outgoing is not None
                out.append(flow.outgoing.packet_at(
                    action.payload, flow.map_timestamp(action.timestamp),
                    marker=action.marker, payload_type=action.payload_type,
                ))
            elif isinstance(action, SendEvent):
                out += self._schedule_event(flow, action, now)
            elif isinstance(action, GenerateTones):
                flow.generate(action.samples)
            elif isinstance(action, SendInfo):
                if self.on_info_send is not None:
                    self.on_info_send(flow.target.side, action)
                else:
                    flow.source.stats.info_dropped += 1
            elif isinstance(action, IgnoredDigit):
                flow.source.stats.dtmf_ignored += 1
        return out

    def _schedule_event(self, flow: _Flow, action: SendEvent, now: float) -> list[bytes]:
        """A whole RFC 4733 event on the target leg, paced as its sender says: the packets
        due now are returned, the others wait for :meth:`expire`."""
        target = flow.target
        sender = TelephoneEventSender(
            action.payload_type,
            clock_rate=target.stats.stream.clock_rate,
            ptime_ms=target.config.ptime,
        )
        packets = sender.packets(
            action.digit, action.duration_ms, timestamp=flow.next_timestamp(), sequence=0
        )
        due: list[bytes] = []
        for packet in packets:
            if packet.send_at <= 0:
                due.append(self._event_datagram(flow, packet))
            else:
                heapq.heappush(self._timers,
                               (now + packet.send_at, next(self._timer_seq), flow, packet))
        return due

    @staticmethod
    def _event_datagram(flow: _Flow, packet: EventPacket) -> bytes:
        assert flow.outgoing is not None
        return flow.outgoing.packet_at(
            packet.payload, packet.timestamp, marker=packet.marker,
            payload_type=packet.payload_type,
        )

    # -- timers ---------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When :meth:`expire` has something to send, or ``None`` when nothing waits."""
        return self._timers[0][0] if self._timers else None

    def expire(self, now: float) -> list[Send]:
        """Paced event packets due at ``now``, in order."""
        out: list[Send] = []
        timers = self._timers
        while timers and timers[0][0] <= now:
            _, _, flow, packet = heapq.heappop(timers)
            target = flow.target
            if target.peer is None:
                target.stats.dropped_no_peer += 1
                continue
            target.stats.events_tx += 1
            out.append((target.side, target.peer, self._event_datagram(flow, packet)))
        return out
