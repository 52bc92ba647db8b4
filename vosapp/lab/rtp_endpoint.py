"""The media side of a lab phone: RTP out (paced, impaired on request) and RTP in (recorded).

Three pieces, the first two sans-IO:

* :class:`RtpSender` -- one packet per :meth:`~RtpSender.tick`: the next ``ptime`` of queued
  audio (silence when nothing is queued, as a phone keeps sending), or the next packet of a
  queued RFC 4733 event. Timestamps advance by ``ptime`` at the codec's RTP clock on every
  tick (RFC 3551 §4.1; 160 per 20 ms for G.722 too, §4.5.2); event packets carry their
  event's start timestamp (RFC 4733 §2.5.1). The first packet has the marker bit.
* :class:`RtpReceiver` -- takes a datagram and its arrival time: a packet log (sequence,
  timestamp, arrival, RFC 3550 A.8 interarrival jitter, cumulative loss), the decoded audio
  placed by timestamp (a gap is concealed by the codec's PLC, a late packet fills its slot),
  and RFC 4733 digits.
* :class:`MediaStream` -- ticks a sender on a :class:`~vosapp.clock.Clock` at ``t0 + n *
  ptime`` (absolute times: no drift) and hands datagrams to a ``transmit`` callable; the
  asyncio UDP socket is the caller's (:class:`RtpSocket` here). With a
  :class:`~vosapp.clock.ManualClock` the whole stream runs in virtual time.
"""

from __future__ import annotations

import asyncio
import functools
import random
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import numpy as np

from vosapp.clock import Clock, TimerHandle
from vosapp.lab.impairment import Impairer, Impairment
from vosapp.media import codecs
from vosapp.media.dtmf import TelephoneEventReceiver, TelephoneEventSender, generate_digits
from vosapp.media.rtp import OutgoingStream, RtpError, RtpPacket, RtpStreamStats
from vosapp.net import Address

__all__ = ["MediaStream", "PacketRecord", "RtpReceiver", "RtpSender", "RtpSocket",
           "default_ptime", "load_samples"]



def default_ptime(codec: codecs.Codec) -> int:
    """20 ms, or the codec's frame when 20 ms is not whole frames (G.723.1: 30 ms)."""
    return 20 if 20 % codec.frame_ms == 0 else codec.frame_ms


def load_samples(source: Any, rate: int) -> np.ndarray:
    """int16 mono audio at ``rate`` from an array (int16, or float in [-1, 1)) or a file path
    (anything soundfile reads; resampled to ``rate``)."""
    from vosapp.lab import quality

    if isinstance(source, (str, bytes)) or hasattr(source, "__fspath__"):
        return quality.load_audio(source, rate)[0]
    return quality.to_int16(source, name="audio")


# ------------------------------------------------------------------------------- sending


class RtpSender:
    """Packetizes one outgoing RTP stream, one packet per tick (sans-IO).

    Parameters
    ----------
    codec : str
        Codec name (:func:`vosapp.media.codecs.get`).
    payload_type : int, optional
        Payload type on the wire (default: the codec's static one).
    ptime_ms : int, optional
        Packet interval (default :func:`default_ptime`).
    telephone_event_pt : int or None
        RFC 4733 payload type negotiated with the peer (None: RFC 2833 digits cannot be sent).
    impairment : Impairment, optional
        Applied to every packet this sender emits.
    rng : random.Random, optional
        Source of the random SSRC, initial sequence and timestamp (RFC 3550 §5.1).
    """

    def __init__(self, codec: str, payload_type: int | None = None, *,
                 ptime_ms: int | None = None, telephone_event_pt: int | None = 101,
                 impairment: Impairment | None = None, rng: random.Random | None = None) -> None:
        self.codec = codecs.get(codec)
        self.ptime_ms = ptime_ms or default_ptime(self.codec)
        if self.ptime_ms % self.codec.frame_ms:
            raise ValueError(f"ptime {self.ptime_ms} ms is not whole {self.codec.name} frames "
                             f"of {self.codec.frame_ms} ms")
        pt = self.codec.payload_type if payload_type is None else payload_type
        self.stream = OutgoingStream(pt, self.codec.clock_rate, rng=rng)
        self.timestamp = self.stream.timestamp
        self.samples_per_packet = self.codec.sample_rate * self.ptime_ms // 1000
        self.ticks_per_packet = self.codec.clock_rate * self.ptime_ms // 1000
        self.telephone_event_pt = telephone_event_pt
        self.impairer = Impairer(impairment)
        self._audio: deque[np.ndarray] = deque()
        self._queued = 0
        self._events: deque[tuple[str, float]] = deque()
        self._event_packets: deque[bytes] = deque()
        self._silence = np.zeros(self.samples_per_packet, dtype=np.int16)
        self._first = True
        self._loop: np.ndarray | None = None
        #: Every ptime of audio that went into a packet (silence included), in order.
        self.sent_audio: list[np.ndarray] = []
        #: (digit, RTP timestamp) of each RFC 4733 event sent.
        self.sent_events: list[tuple[str, int]] = []

    @property
    def sample_rate(self) -> int:
        return self.codec.sample_rate

    @property
    def queued_samples(self) -> int:
        """Audio still waiting to be sent (samples)."""
        return self._queued

    @property
    def busy(self) -> bool:
        """Audio or events still queued."""
        return bool(self._queued or self._events or self._event_packets)

    def set_impairment(self, impairment: Impairment | None) -> None:
        self.impairer = Impairer(impairment)

    def enqueue_audio(self, samples: np.ndarray, *, loop: bool = False) -> None:
        """Queue int16 audio at :attr:`sample_rate`; it goes out ``ptime`` by ``ptime``.
        ``loop``: queue it again each time it has been sent (until :meth:`clear`)."""
        samples = np.asarray(samples, dtype=np.int16).reshape(-1)
        if samples.size:
            self._audio.append(samples)
            self._queued += samples.size
            if loop:
                self._loop = samples

    def enqueue_event(self, digit: str, duration_ms: float = 100.0) -> None:
        """Queue an RFC 4733 digit; it starts after the events queued before it."""
        if self.telephone_event_pt is None:
            raise ValueError("the peer did not negotiate telephone-event: no RFC 2833 digits")
        TelephoneEventSender(self.telephone_event_pt).packets(digit, 1, timestamp=0, sequence=0)
        self._events.append((digit, duration_ms))

    def enqueue_tones(self, digits: str, duration_ms: float = 100.0,
                      gap_ms: float = 100.0) -> None:
        """Queue inband DTMF tones (the digits as audio, ITU-T Q.23 frequencies)."""
        self.enqueue_audio(generate_digits(digits, self.sample_rate, on_ms=duration_ms,
                                           off_ms=gap_ms))

    def clear(self) -> None:
        """Drop queued audio and a loop (not events)."""
        self._audio.clear()
        self._queued = 0
        self._loop = None

    def _next_audio(self) -> np.ndarray:
        n = self.samples_per_packet
        if self._loop is not None and self._queued < n:
            self.enqueue_audio(self._loop)
        if not self._queued:
            return self._silence
        parts: list[np.ndarray] = []
        need = n
        while need and self._audio:
            head = self._audio[0]
            take = head[:need]
            parts.append(take)
            need -= take.size
            if take.size == head.size:
                self._audio.popleft()
            else:
                self._audio[0] = head[take.size:]
        self._queued -= n - need
        if need:
            parts.append(np.zeros(need, dtype=np.int16))
        return np.concatenate(parts) if len(parts) > 1 else parts[0]

    def _start_event(self) -> None:
        digit, duration_ms = self._events.popleft()
        assert self.telephone_event_pt is not None
        sender = TelephoneEventSender(self.telephone_event_pt, clock_rate=self.codec.clock_rate,
                                      ptime_ms=self.ptime_ms)
        self.sent_events.append((digit, self.timestamp))
        for packet in sender.packets(digit, duration_ms, timestamp=self.timestamp, sequence=0):
            self._event_packets.append(self.stream.packet_at(
                packet.payload, packet.timestamp, marker=packet.marker,
                payload_type=packet.payload_type))

    def tick(self) -> list[tuple[float, bytes]]:
        """The packet for the next ptime as ``[(delay_s, datagram)]`` (``[]``: impairment
        dropped it). Call it every ``ptime_ms``."""
        if not self._event_packets and self._events:
            self._start_event()
        if self._event_packets:
            data = self._event_packets.popleft()
        else:
            audio = self._next_audio()
            self.sent_audio.append(audio)
            data = self.stream.packet_at(self.codec.encode(audio), self.timestamp,
                                         marker=self._first)
            self._first = False
        self.timestamp = (self.timestamp + self.ticks_per_packet) & 0xFFFFFFFF
        delay = self.impairer.plan()
        return [] if delay is None else [(delay, data)]

    def skip(self) -> None:
        """A ptime without a packet (on hold, RFC 3264 §8.4): time advances, the sequence
        does not (RFC 3550 §5.1: one number per packet sent)."""
        self.timestamp = (self.timestamp + self.ticks_per_packet) & 0xFFFFFFFF

    def sent_samples(self) -> np.ndarray:
        """All audio sent so far, concatenated (silence and queued audio alike)."""
        if not self.sent_audio:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate(self.sent_audio)


# ------------------------------------------------------------------------------ receiving


@dataclass(frozen=True, slots=True)
class PacketRecord:
    """One received RTP packet, as the packet log shows it."""

    sequence: int
    timestamp: int
    arrival: float  # seconds, the receiving clock
    payload_type: int
    marker: bool
    size: int  # payload bytes
    jitter_ms: float  # RFC 3550 A.8 interarrival jitter after this packet
    lost: int  # cumulative packets lost after this packet (RFC 3550 A.3)


class RtpReceiver:
    """Records one incoming RTP stream (sans-IO): ``receive(datagram, arrival)``.

    Parameters
    ----------
    payload_types : mapping payload type -> codec name
        The audio formats negotiated (static ones are known without it).
    telephone_event_pt : int or None
        The RFC 4733 payload type negotiated.
    on_audio : callable, optional
        Called with each decoded packet's audio and the codec's rate (an echo feeds it back).
    """

    STATIC: ClassVar[dict[int, str]] = {0: "PCMU", 4: "G723", 8: "PCMA", 9: "G722", 18: "G729"}

    def __init__(self, payload_types: Mapping[int, str] | None = None,
                 telephone_event_pt: int | None = 101, *,
                 on_audio: Callable[[np.ndarray, int], None] | None = None) -> None:
        self.payload_types = {**self.STATIC, **dict(payload_types or {})}
        self.events = (TelephoneEventReceiver(telephone_event_pt)
                       if telephone_event_pt is not None else None)
        self.on_audio = on_audio
        self.packets: list[PacketRecord] = []
        self.stats: RtpStreamStats | None = None
        #: RFC 4733 digits received, in order (one per event, at its end).
        self.digits: list[str] = []
        self.garbage = 0  # datagrams that were not RTP or not decodable
        self.sample_rate: int | None = None
        self._decoders: dict[int, codecs.Codec] = {}
        self._pieces: list[tuple[int, np.ndarray]] = []  # (sample index, audio)
        self._ssrc: int | None = None
        self._base_ts = 0
        self._base_index = 0
        self._end = 0  # one past the last sample written in arrival order

    def receive(self, data: bytes, arrival: float) -> PacketRecord | None:
        """Account one datagram; returns its log record (None when it was not RTP)."""
        try:
            packet = RtpPacket.parse(data)
        except RtpError:
            self.garbage += 1
            return None
        if self.events is not None and packet.payload_type == self.events.payload_type:
            try:
                for event in self.events.receive(packet.payload_type, packet.timestamp,
                                                 packet.payload, marker=packet.marker):
                    if event.kind == "end":
                        self.digits.append(event.digit)
            except ValueError:
                self.garbage += 1
        else:
            self._audio(packet)
        if self.stats is None:
            self.stats = RtpStreamStats(8000)
        self.stats.update(packet.sequence, packet.timestamp, arrival)
        record = PacketRecord(packet.sequence, packet.timestamp, arrival, packet.payload_type,
                              packet.marker, len(packet.payload), self.stats.jitter_ms,
                              self.stats.lost)
        self.packets.append(record)
        return record

    def _decoder(self, payload_type: int) -> codecs.Codec | None:
        decoder = self._decoders.get(payload_type)
        if decoder is None and payload_type in self.payload_types:
            decoder = self._decoders[payload_type] = codecs.get(self.payload_types[payload_type])
        return decoder

    def _audio(self, packet: RtpPacket) -> None:
        decoder = self._decoder(packet.payload_type)
        if decoder is None:
            self.garbage += 1
            return
        per_tick = decoder.sample_rate // decoder.clock_rate
        if self.sample_rate is None:
            self.sample_rate = decoder.sample_rate
        if packet.ssrc != self._ssrc:  # a new source continues where the last one ended
            self._ssrc = packet.ssrc
            self._base_ts = packet.timestamp
            self._base_index = self._end
        offset = (packet.timestamp - self._base_ts) & 0xFFFFFFFF
        if offset >= 0x80000000:
            offset -= 0x100000000
        index = self._base_index + offset * per_tick
        if index < 0:
            return  # older than the stream's first packet
        if index > self._end and index - self._end >= decoder.frame_samples:
            lost = (index - self._end) // decoder.frame_samples
            self._pieces.append((self._end, decoder.conceal(lost)))
        try:
            audio = decoder.decode(packet.payload)
        except codecs.CodecError:
            self.garbage += 1
            return
        self._pieces.append((index, audio))
        self._end = max(self._end, index + audio.size)
        if self.on_audio is not None:
            self.on_audio(audio, decoder.sample_rate)

    def audio(self) -> np.ndarray:
        """The received audio (int16 at :attr:`sample_rate`), placed by RTP timestamp."""
        out = np.zeros(self._end, dtype=np.int16)
        for index, piece in self._pieces:
            out[index:index + piece.size] = piece[: max(0, self._end - index)]
        return out

    def log(self) -> list[dict[str, Any]]:
        """The packet log as rows (for a DataFrame)."""
        return [{"sequence": r.sequence, "timestamp": r.timestamp, "arrival": r.arrival,
                 "payload_type": r.payload_type, "marker": r.marker, "size": r.size,
                 "jitter_ms": r.jitter_ms, "lost": r.lost} for r in self.packets]


# -------------------------------------------------------------------------- on a clock


class MediaStream:
    """Ticks an :class:`RtpSender` every ptime on ``clock`` and feeds an :class:`RtpReceiver`.

    ``transmit(datagram)`` sends one datagram; :meth:`datagram` is what the socket calls.
    """

    def __init__(self, clock: Clock, sender: RtpSender, receiver: RtpReceiver,
                 transmit: Callable[[bytes], None]) -> None:
        self.clock = clock
        self.sender = sender
        self.receiver = receiver
        self.transmit = transmit
        self.sending = False
        #: Send nothing (the peer put us on hold: recvonly/inactive) while time runs on.
        self.muted = False
        self.ticks = 0
        self._t0 = 0.0
        self._timer: TimerHandle | None = None
        self._idle_waiters: list[Callable[[], None]] = []

    def start(self) -> None:
        if self.sending:
            return
        self.sending = True
        self._t0 = self.clock.now()
        self.ticks = 0
        self._tick()

    def stop(self) -> None:
        self.sending = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._wake()

    def datagram(self, data: bytes) -> None:
        self.receiver.receive(data, self.clock.now())

    def when_idle(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once the sender's queues are empty (or the stream stops)."""
        if not self.sender.busy or not self.sending:
            callback()
        else:
            self._idle_waiters.append(callback)

    def _wake(self) -> None:
        waiters, self._idle_waiters = self._idle_waiters, []
        for waiter in waiters:
            waiter()

    def _tick(self) -> None:
        if not self.sending:
            return
        if self.muted:
            self.sender.skip()
        for delay, data in [] if self.muted else self.sender.tick():
            if delay <= 0:
                self._send(data)
            else:
                self.clock.call_later(delay, functools.partial(self._send, data))
        if not self.sender.busy:
            self._wake()
        self.ticks += 1
        self._timer = self.clock.call_at(
            self._t0 + self.ticks * self.sender.ptime_ms / 1000.0, self._tick)

    def _send(self, data: bytes) -> None:
        try:
            self.transmit(data)
        except OSError:
            pass  # a closed socket at hangup: the stream is ending anyway


class RtpSocket(asyncio.DatagramProtocol):
    """The asyncio edge of a media stream: one UDP socket, datagrams to ``on_datagram``."""

    def __init__(self, on_datagram: Callable[[bytes, Address], None]) -> None:
        self.on_datagram = on_datagram
        self.transport: asyncio.DatagramTransport | None = None

    @classmethod
    async def open(cls, host: str, on_datagram: Callable[[bytes, Address], None]
                   ) -> RtpSocket:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_datagram_endpoint(lambda: cls(on_datagram),
                                                          local_addr=(host, 0))
        return protocol

    @property
    def address(self) -> Address:
        assert self.transport is not None
        host, port = self.transport.get_extra_info("sockname")[:2]
        return (host, int(port))

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)  # a datagram endpoint's

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.on_datagram(data, (addr[0], int(addr[1])))

    def error_received(self, exc: Exception) -> None:  # ICMP port unreachable: keep going
        pass

    def sendto(self, data: bytes, address: Address) -> None:
        if self.transport is not None:
            self.transport.sendto(data, address)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None
