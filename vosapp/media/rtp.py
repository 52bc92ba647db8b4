"""RTP (RFC 3550) packets, per-stream receive statistics and outgoing-leg numbering.

Pure bytes/arithmetics: no sockets, no clock. Arrival times are passed in by the caller
(seconds, any monotonic origin), so the statistics can be driven by a real or a virtual clock.

Wire format (RFC 3550 §5.1)::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    |V=2|P|X|  CC   |M|     PT      |       sequence number         |
    |                           timestamp                           |
    |           synchronization source (SSRC) identifier            |
    |            contributing source (CSRC) identifiers (CC × 32)   |
    | [extension: profile(16) length-in-words(16) data ...]         |
    | payload ...                          [padding ... | count(8)] |
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass, field

from vosapp.errors import VosappError

__all__ = [
    "HEADER",
    "HEADER_START",
    "RTP_HEADER_SIZE",
    "OutgoingStream",
    "RtpError",
    "RtpPacket",
    "RtpStreamStats",
    "rewrite_payload_type",
]

RTP_HEADER_SIZE = 12
HEADER = struct.Struct("!BBHII")
"""The 12-byte fixed RTP header (RFC 3550 §5.1): first byte, second byte, sequence number,
timestamp, SSRC."""
HEADER_START = struct.Struct("!BBHI4x")
"""The start of an RTP header: first byte (V, P, X, CC), second byte (M, PT), sequence number,
timestamp; what a relay or a transcoder looks at per packet (:meth:`RtpStreamStats.update_many`).
``unpack_from`` raises ``struct.error`` on a datagram shorter than the 12-byte fixed header."""
_EXT_HEADER = struct.Struct("!HH")


class RtpError(VosappError, ValueError):
    """A datagram that is not a valid RTP packet, or an invalid packet field."""


@dataclass(slots=True)
class RtpPacket:
    """One RTP packet (RFC 3550 §5.1).

    ``bytes(packet)`` serializes it; :meth:`parse` is its inverse, byte for byte (the padding
    bytes are kept as received, so ``bytes(RtpPacket.parse(data)) == data`` for any valid
    ``data``).

    Attributes
    ----------
    payload_type : int
        7-bit payload type (0..127).
    sequence : int
        16-bit sequence number.
    timestamp : int
        32-bit RTP timestamp in units of the payload's clock rate.
    ssrc : int
        32-bit synchronization source.
    payload : bytes
        The payload, without padding.
    marker : bool
        The M bit (RFC 3551 §4.1: first packet of a talkspurt; RFC 4733: start of an event).
    csrc : tuple of int
        Up to 15 contributing sources.
    extension_profile : int or None
        The 16-bit "defined by profile" field of the header extension (§5.3.1), or ``None``
        when the packet has no extension (X bit clear).
    extension : bytes
        Header-extension data; its length must be a multiple of 4.
    padding : bytes
        Trailing padding (P bit set when non-empty); its last byte is the padding length.
    """

    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False
    csrc: tuple[int, ...] = ()
    extension_profile: int | None = None
    extension: bytes = b""
    padding: bytes = field(default=b"")

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview) -> RtpPacket:
        """Parse one RTP datagram.

        Parameters
        ----------
        data : bytes-like
            The UDP payload.

        Returns
        -------
        RtpPacket

        Raises
        ------
        RtpError
            When the datagram is shorter than its header says, the version is not 2, or the
            padding count is impossible.
        """
        data = bytes(data)
        size = len(data)
        if size < RTP_HEADER_SIZE:
            raise RtpError(f"RTP packet too short: {size} bytes, the fixed header needs 12")
        first, second, sequence, timestamp, ssrc = HEADER.unpack_from(data)
        version = first >> 6
        if version != 2:
            raise RtpError(f"RTP version {version} is not supported (RFC 3550 requires 2)")
        csrc_count = first & 0x0F
        offset = RTP_HEADER_SIZE + 4 * csrc_count
        if size < offset:
            raise RtpError(
                f"RTP packet too short for its {csrc_count} CSRC entries: {size} bytes"
            )
        csrc = struct.unpack_from(f"!{csrc_count}I", data, RTP_HEADER_SIZE) if csrc_count else ()
        extension_profile: int | None = None
        extension = b""
        if first & 0x10:
            if size < offset + 4:
                raise RtpError("RTP packet too short for its header extension (X bit set)")
            extension_profile, words = _EXT_HEADER.unpack_from(data, offset)
            offset += 4
            if size < offset + 4 * words:
                raise RtpError(
                    f"RTP header extension claims {words} words but the packet ends first"
                )
            extension = data[offset : offset + 4 * words]
            offset += 4 * words
        end = size
        padding = b""
        if first & 0x20:
            count = data[-1]
            if count == 0 or offset + count > size:
                raise RtpError(f"RTP padding count {count} is impossible for a {size}-byte packet")
            end = size - count
            padding = data[end:]
        return cls(
            payload_type=second & 0x7F,
            sequence=sequence,
            timestamp=timestamp,
            ssrc=ssrc,
            payload=data[offset:end],
            marker=bool(second & 0x80),
            csrc=tuple(csrc),
            extension_profile=extension_profile,
            extension=extension,
            padding=padding,
        )

    def __bytes__(self) -> bytes:
        self._validate()
        first = 0x80 | len(self.csrc)
        if self.padding:
            first |= 0x20
        if self.extension_profile is not None:
            first |= 0x10
        parts = [
            HEADER.pack(
                first,
                (0x80 if self.marker else 0) | self.payload_type,
                self.sequence,
                self.timestamp,
                self.ssrc,
            )
        ]
        if self.csrc:
            parts.append(struct.pack(f"!{len(self.csrc)}I", *self.csrc))
        if self.extension_profile is not None:
            parts.append(_EXT_HEADER.pack(self.extension_profile, len(self.extension) // 4))
            parts.append(bytes(self.extension))
        parts.append(bytes(self.payload))
        parts.append(bytes(self.padding))
        return b"".join(parts)

    def _validate(self) -> None:
        if not 0 <= self.payload_type <= 127:
            raise RtpError(f"payload_type {self.payload_type} is outside 0..127")
        if not 0 <= self.sequence <= 0xFFFF:
            raise RtpError(f"sequence {self.sequence} is outside 0..65535")
        if not 0 <= self.timestamp <= 0xFFFFFFFF:
            raise RtpError(f"timestamp {self.timestamp} is outside 0..2**32-1")
        if not 0 <= self.ssrc <= 0xFFFFFFFF:
            raise RtpError(f"ssrc {self.ssrc} is outside 0..2**32-1")
        if len(self.csrc) > 15:
            raise RtpError(f"{len(self.csrc)} CSRC entries; RFC 3550 allows at most 15")
        if len(self.extension) % 4:
            raise RtpError(
                f"header extension is {len(self.extension)} bytes; it must be whole 32-bit words"
            )
        if self.extension_profile is None and self.extension:
            raise RtpError("extension data given without extension_profile")
        if self.padding and self.padding[-1] != len(self.padding):
            raise RtpError(
                f"padding is {len(self.padding)} bytes but its last byte says {self.padding[-1]}"
            )


def rewrite_payload_type(datagram: bytes | bytearray, payload_type: int) -> bytes:
    """Return ``datagram`` with its payload type replaced, keeping the marker bit.

    The fast path a relay uses: only byte 1 changes, nothing is parsed beyond the version.

    Parameters
    ----------
    datagram : bytes-like
        A whole RTP packet.
    payload_type : int
        The new payload type, 0..127.

    Raises
    ------
    RtpError
        When the datagram is not RTP version 2 or ``payload_type`` is out of range.
    """
    if not 0 <= payload_type <= 127:
        raise RtpError(f"payload_type {payload_type} is outside 0..127")
    if len(datagram) < RTP_HEADER_SIZE or datagram[0] >> 6 != 2:
        raise RtpError("not an RTP version 2 packet")
    out = bytearray(datagram)
    out[1] = (out[1] & 0x80) | payload_type
    return bytes(out)


# RFC 3550 A.1: a jump of at most MAX_DROPOUT is a gap (loss); a step back of at most
# MAX_MISORDER is a late packet; anything else is a restart of the sender's numbering,
# accepted once two consecutive packets confirm it.
MAX_DROPOUT = 3000
MAX_MISORDER = 100
_SEQ_MOD = 1 << 16


class RtpStreamStats:
    """Receive statistics of one RTP stream (one SSRC), per RFC 3550 §6.4.1 and appendix A.

    Feed every received packet with :meth:`update`. Counters:

    - ``received``: packets fed (duplicates included, as RFC 3550 counts them);
    - ``expected``: extended highest sequence − first sequence + 1 (A.3), across 16-bit
      wrap-arounds (``cycles`` counts them);
    - ``lost``: ``expected − (received − duplicates)``, never negative. Reordered packets
      that arrive late fill their gap, so they are not lost;
    - ``reordered``: packets older than the highest sequence already seen (not duplicates);
    - ``duplicates``: packets whose sequence number was already received (late packets are
      told apart from duplicates for gaps within the last ``MAX_DROPOUT`` numbers);
    - ``jitter``: interarrival jitter J (A.8) in timestamp units; ``jitter_ms`` in ms.

    Parameters
    ----------
    clock_rate : int
        RTP clock of the payload (8000 for all narrowband codecs and for G.722).
    """

    # slots: update() runs for every packet a relay receives (attribute access is faster)
    __slots__ = ("_bad_seq", "_last_arrival", "_last_timestamp", "_missing", "_next_seq",
                 "_prior_expected", "base_seq", "clock_rate", "cycles", "duplicates", "jitter",
                 "received", "reordered", "restarts")

    def __init__(self, clock_rate: int = 8000) -> None:
        if clock_rate <= 0:
            raise ValueError(f"clock_rate must be positive, got {clock_rate}")
        self.clock_rate = clock_rate
        self.received = 0
        self.duplicates = 0
        self.reordered = 0
        self.cycles = 0
        self.base_seq: int | None = None
        # the sequence number an in-order packet carries next (-1: none yet, matches nothing);
        # one comparison per packet tells the common case, max_seq is derived from it
        self._next_seq = -1
        self.jitter = 0.0
        self.restarts = 0
        self._bad_seq = -1
        self._prior_expected = 0
        self._missing: set[int] = set()
        self._last_timestamp = 0
        self._last_arrival: float | None = None  # None until the first packet

    @property
    def max_seq(self) -> int:
        """Highest sequence number received (16 bits; 0 before the first packet)."""
        return (self._next_seq - 1) & 0xFFFF if self._next_seq >= 0 else 0

    @property
    def extended_max(self) -> int:
        """Extended highest sequence number received (cycles + max_seq)."""
        return self.cycles + self.max_seq

    @property
    def expected(self) -> int:
        """Packets expected so far (RFC 3550 A.3)."""
        if self.base_seq is None:
            return 0
        return self._prior_expected + self.extended_max - self.base_seq + 1

    @property
    def lost(self) -> int:
        """Cumulative packets lost (never negative)."""
        return max(0, self.expected - (self.received - self.duplicates))

    @property
    def jitter_ms(self) -> float:
        """Interarrival jitter in milliseconds."""
        return 1000.0 * self.jitter / self.clock_rate

    def _restart(self, seq: int) -> None:
        self.base_seq = seq
        self._next_seq = (seq + 1) & 0xFFFF
        self.cycles = 0
        self._bad_seq = -1
        self._missing = set()

    def update(self, sequence: int, timestamp: int, arrival: float) -> None:
        """Account one received packet.

        Parameters
        ----------
        sequence : int
            16-bit RTP sequence number.
        timestamp : int
            32-bit RTP timestamp.
        arrival : float
            Arrival time in seconds (any fixed origin; only differences matter).
        """
        self.received += 1
        if sequence == self._next_seq:
            # the common case, kept short: the next packet in order
            self._next_seq = (sequence + 1) & 0xFFFF
            if not sequence:
                self.cycles += _SEQ_MOD  # 16-bit wrap (A.1)
        elif self.base_seq is None:
            self._restart(sequence)
        else:
            self._update_unusual(sequence)
        # RFC 3550 A.8: D(i-1, i) = (R_i - R_{i-1}) - (S_i - S_{i-1}), in timestamp units,
        # J += (|D| - J) / 16. The timestamp difference is taken modulo 2^32 (signed).
        last_arrival = self._last_arrival
        if last_arrival is not None:
            ts_delta = (timestamp - self._last_timestamp) & 0xFFFFFFFF
            if ts_delta >= 0x80000000:
                ts_delta -= 0x100000000
            d = (arrival - last_arrival) * self.clock_rate - ts_delta
            jitter = self.jitter
            self.jitter = jitter + ((d if d >= 0 else -d) - jitter) * 0.0625  # / 16
        self._last_timestamp = timestamp
        self._last_arrival = arrival

    def update_many(self, headers: list[tuple[int, int, int, int]], arrival: float) -> None:
        """Account packets that arrived together, in order: :meth:`update` for each, exactly
        (the jitter too, bit for bit).

        What a relay drains from its socket in one wake-up arrives at one time (the caller
        reads its clock once), so after the first packet the interarrival term of each D is
        0 and D is minus the timestamp step (A.8). The packets in order run on local
        variables; anything else goes through :meth:`update`.

        Parameters
        ----------
        headers : list of (first byte, second byte, sequence, timestamp)
            :data:`HEADER_START` of each packet (the first two fields are not looked at).
        arrival : float
            Their arrival time in seconds.
        """
        if not headers:
            return
        _first, _second, sequence, timestamp = headers[0]
        self.update(sequence, timestamp, arrival)  # against the previous wake-up's arrival
        if len(headers) == 1:
            return
        next_seq, cycles, last_timestamp, jitter = (
            self._next_seq, self.cycles, self._last_timestamp, self.jitter)
        unusual = 0
        for _first, _second, sequence, timestamp in headers[1:]:
            if sequence != next_seq:  # not the next one in order
                self._next_seq, self.cycles = next_seq, cycles
                self._last_timestamp, self.jitter = last_timestamp, jitter
                self.update(sequence, timestamp, arrival)
                unusual += 1
                next_seq, cycles, last_timestamp, jitter = (
                    self._next_seq, self.cycles, self._last_timestamp, self.jitter)
                continue
            # update()'s common case with R_i = R_(i-1): |D| = |S_i - S_(i-1)| (mod 2^32)
            next_seq = (sequence + 1) & 0xFFFF
            if not sequence:
                cycles += _SEQ_MOD  # 16-bit wrap (A.1)
            step = (timestamp - last_timestamp) & 0xFFFFFFFF
            if step >= 0x80000000:
                step = 0x100000000 - step
            jitter = jitter + (step - jitter) * 0.0625
            last_timestamp = timestamp
        self._next_seq, self.cycles = next_seq, cycles
        self._last_timestamp, self.jitter = last_timestamp, jitter
        self.received += len(headers) - 1 - unusual  # update() counted the others

    def in_order_state(self) -> tuple[int, int, int, float, float] | None:
        """What accounting a packet in order reads and changes: ``(next sequence number,
        cycles, last timestamp, last arrival, jitter)`` (A.1, A.8), for an I/O layer that
        accounts such packets itself until :meth:`resume_in_order`; ``None`` before the
        first packet."""
        if self._next_seq < 0 or self._last_arrival is None:
            return None
        return (self._next_seq, self.cycles, self._last_timestamp, self._last_arrival,
                self.jitter)

    def resume_in_order(self, received: int, state: tuple[int, int, int, float, float]) -> None:
        """Take back :meth:`in_order_state` after ``received`` packets, each the next one in
        order, were accounted elsewhere as :meth:`update` accounts them; ``state`` is the
        state after them."""
        self.received += received
        (self._next_seq, self.cycles, self._last_timestamp, self._last_arrival,
         self.jitter) = state

    def _update_unusual(self, sequence: int) -> None:
        """Gaps, late packets, duplicates and restarts (RFC 3550 A.1).

        Instead of remembering every sequence number seen, the numbers skipped by a gap are
        remembered as missing: a late packet filling one is a reordered packet, any other
        packet at or below the highest number is a duplicate.
        """
        max_seq = self.max_seq
        udelta = (sequence - max_seq) % _SEQ_MOD
        if 0 < udelta < MAX_DROPOUT:
            first_missing = self.extended_max + 1
            if sequence < max_seq:
                self.cycles += _SEQ_MOD
            self._next_seq = (sequence + 1) & 0xFFFF
            self._missing.update(range(first_missing, self.extended_max))
            if len(self._missing) > 4 * MAX_DROPOUT:
                floor = self.extended_max - MAX_DROPOUT
                self._missing = {s for s in self._missing if s >= floor}
        elif udelta == 0:
            self.duplicates += 1
        elif udelta <= _SEQ_MOD - MAX_MISORDER:
            # A large jump: the sender restarted its numbering. Accept it when the next packet
            # follows on (A.1); meanwhile the packet only counts as received.
            if sequence == self._bad_seq:
                # confirmed: close the old segment's expected count, open a new one that
                # includes the packet that started the jump
                self.restarts += 1
                assert self.base_seq is not None
                self._prior_expected += self.extended_max - self.base_seq + 1
                self._restart(sequence)
                self.base_seq = sequence - 1
            else:
                self._bad_seq = (sequence + 1) % _SEQ_MOD
        else:
            # late packet: extended number in the current or the previous cycle
            extended = self.cycles + sequence
            if sequence > max_seq:
                extended -= _SEQ_MOD
            if extended in self._missing:
                self._missing.discard(extended)
                self.reordered += 1
            else:
                self.duplicates += 1

    def as_dict(self) -> dict[str, float | int]:
        """The counters as a plain dict (for traces, CDRs and notebooks)."""
        return {
            "received": self.received,
            "expected": self.expected,
            "lost": self.lost,
            "reordered": self.reordered,
            "duplicates": self.duplicates,
            "cycles": self.cycles // _SEQ_MOD,
            "jitter": self.jitter,
            "jitter_ms": self.jitter_ms,
        }


class OutgoingStream:
    """Sequence number, timestamp and SSRC of one outgoing RTP leg (RFC 3550 §5.1).

    Initial sequence number, timestamp and SSRC are random (§5.1, §8.1) unless given.

    Parameters
    ----------
    payload_type : int
        Payload type put in every packet.
    clock_rate : int
        RTP clock of the payload (8000 for G.722 too, RFC 3551 §4.5.2).
    ssrc, sequence, timestamp : int, optional
        Initial values; random when omitted.
    rng : random.Random, optional
        Source of the random initial values (seed it for reproducible tests).
    """

    __slots__ = ("clock_rate", "octets", "packets", "payload_type", "sequence", "ssrc",
                 "timestamp")

    def __init__(
        self,
        payload_type: int,
        clock_rate: int = 8000,
        *,
        ssrc: int | None = None,
        sequence: int | None = None,
        timestamp: int | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if not 0 <= payload_type <= 127:
            raise RtpError(f"payload_type {payload_type} is outside 0..127")
        rng = rng or random.SystemRandom()
        self.payload_type = payload_type
        self.clock_rate = clock_rate
        self.ssrc = rng.getrandbits(32) if ssrc is None else ssrc
        self.sequence = rng.getrandbits(16) if sequence is None else sequence & 0xFFFF
        self.timestamp = rng.getrandbits(32) if timestamp is None else timestamp & 0xFFFFFFFF
        self.packets = 0
        self.octets = 0

    def packet(
        self,
        payload: bytes,
        samples: int,
        *,
        marker: bool = False,
        payload_type: int | None = None,
    ) -> bytes:
        """Serialize the next packet and advance the numbering.

        Parameters
        ----------
        payload : bytes
            The payload.
        samples : int
            Timestamp increment this packet covers, in clock-rate units (e.g. 160 for 20 ms
            at 8000 Hz; for G.722 also 160 per 20 ms, RFC 3551 §4.5.2).
        marker : bool
            The M bit.
        payload_type : int, optional
            Override for this packet (e.g. telephone-event on the same SSRC).

        Returns
        -------
        bytes
            The whole datagram.
        """
        pt = self.payload_type if payload_type is None else payload_type
        # one precompiled pack of the whole header, then the payload: two allocations
        data = HEADER.pack(
            0x80, (0x80 if marker else 0) | pt, self.sequence, self.timestamp, self.ssrc
        ) + payload
        self.sequence = (self.sequence + 1) & 0xFFFF
        self.timestamp = (self.timestamp + samples) & 0xFFFFFFFF
        self.packets += 1
        self.octets += len(payload)
        return data

    def packet_at(
        self, payload: bytes, timestamp: int, *, marker: bool = False, payload_type: int | None = None
    ) -> bytes:
        """Serialize the next packet with an explicit timestamp (does not advance it).

        Used for RFC 4733 events, whose packets all carry the event's start timestamp.
        """
        pt = self.payload_type if payload_type is None else payload_type
        data = HEADER.pack(
            0x80, (0x80 if marker else 0) | pt, self.sequence, timestamp & 0xFFFFFFFF, self.ssrc
        ) + payload
        self.sequence = (self.sequence + 1) & 0xFFFF
        self.packets += 1
        self.octets += len(payload)
        return data
