"""Per-direction RTP transcoding: decode, resample, reframe, encode, renumber.

One :class:`Transcoder` handles one direction of one call (e.g. caller's PCMA 20 ms towards
the carrier's G.729 2 × 10 ms). It owns the outgoing leg's RTP numbering
(:class:`~vosapp.media.rtp.OutgoingStream`: its own SSRC, sequence and timestamp, RFC 3550
§5.1/§8), so the two legs of a call are independent RTP sessions as in any B2BUA media proxy.

Reframing: decoded audio goes into a FIFO; every time it holds one outgoing packet's worth of
audio (``dst_ptime``), that much is encoded and sent. 20 ms in / 2 × 10 ms G.729 frames out is
then one packet in, one packet out; 30 ms G.723.1 against 20 ms G.711 gives 2 packets out per
3 in, etc.

Resampling (G.722 is 16 kHz audio, everything else 8 kHz) uses
:func:`scipy.signal.resample_poly` in streaming form, see :class:`StreamingResampler`. scipy.signal
is imported by the first resampler made, or by :func:`load_resampler` (0.6 s here: three
quarters of ``vosapp serve``'s start-up, and 30 s under valgrind), not with this module: a
switch that cannot convert codecs never resamples. One that can loads it while it starts
(``vosapp.io.runtime.Switch.start``), so that no call's packets wait for the import.

Loss: a gap in the incoming sequence numbers (up to ``max_conceal_ms``) is filled by the source
codec's concealment (:meth:`Codec.conceal`: G.729's own frame-erasure, repetition for the
others), so the outgoing stream stays continuous. A longer gap, or a timestamp that jumps
between consecutive packets (the sender stopped sending in silence: DTX), is not filled: the
audio still buffered is dropped, the outgoing timestamp jumps by the same amount and the next
packet gets the marker bit (RFC 3551 §4.1), like the start of a new talkspurt. Late and
duplicate packets are dropped (a transcoder cannot un-send audio).
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable
from fractions import Fraction
from math import gcd
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from vosapp.media import codecs as codec_registry
from vosapp.media.codecs.base import Codec, CodecError
from vosapp.media.codecs.g711 import G711
from vosapp.media.codecs.g729 import G729
from vosapp.media.rtp import HEADER_START, RTP_HEADER_SIZE, OutgoingStream, RtpError, RtpPacket

if TYPE_CHECKING:
    from vosapp.media.codecs._g729lane import _Lane as NativeLane

__all__ = ["LaneState", "StreamingResampler", "Transcoder", "TranscoderStats", "load_resampler",
           "resolve_codec"]

_SEQ_MOD = 1 << 16


def resolve_codec(codec: str | Codec) -> Codec:
    """A codec object from a name (fresh object) or the object itself."""
    if isinstance(codec, Codec):
        return codec
    return codec_registry.get(codec)


class LaneState(NamedTuple):
    """What :meth:`Transcoder.process`'s lane reads and changes per packet, for an I/O layer
    that runs that lane itself (:meth:`Transcoder.lane_state`, :meth:`Transcoder.resume_lane`).

    A datagram is the lane's when its first byte is 0x80, its size is the lane's, its sequence
    number is ``expected_seq`` and its timestamp does not step further than ``step_limit``
    past ``last_src_ts`` (modulo 2^32, a step of 2^31 or more being backwards); the outgoing
    datagram is ``OutgoingStream.packet``'s (``out_pt`` with the marker when ``marker_next``,
    ``out_seq``, ``out_ts``, ``ssrc``; then ``out_seq`` + 1, ``out_ts`` + ``out_ticks``,
    ``marker_next`` False). ``keeps_heard``: the source is G.711 and its last datagram must
    be handed back for its concealment (:meth:`G711.heard`).
    """

    expected_seq: int
    last_src_ts: int
    step_limit: int
    marker_next: bool
    out_pt: int
    out_seq: int
    out_ts: int
    ssrc: int
    out_ticks: int
    keeps_heard: bool


def _lookup_lane(
    src: Codec, dst: Codec, frames: int, outgoing: OutgoingStream, ticks: int
) -> tuple[Callable[[bytes, bool], bytes], NativeLane | None] | None:
    """RTP to RTP with no audio array in between, when one side is G.711 and the other G.729
    (which takes or gives its audio through a G.711 table): ``lane(datagram, marker)`` turns
    a datagram with a plain 12-byte header and ``frames`` source frames into the outgoing
    datagram, numbered by ``outgoing`` as :meth:`OutgoingStream.packet` numbers it (and
    byte-identical to its result). The codec converts the whole packet in one call
    (:meth:`G729.rtp_encoder` / :meth:`G729.rtp_decoder`: in C when built). Returned with the
    C lane object of the same conversion (:meth:`G729.native_rtp_lane`, None through ctypes).
    None for other codec pairs."""
    heard: Callable[[bytes, int], None] | None = None
    declined: Callable[[bytes, bool], bytes] | None = None
    if isinstance(src, G711) and isinstance(dst, G729):
        payload_bytes = frames * dst.frame_bytes
        convert = dst.rtp_encoder(src.decode_table, frames)
        native = dst.native_rtp_lane(src.decode_table, frames, encoder=True)
        heard, table = src.heard, src.decode_table
        encode_codes, packet = dst.encode_codes, outgoing.packet

        def declined(data: bytes, marker: bool) -> bytes:
            # a partial frame waits in the encoder (never, from the transcoder alone)
            return packet(encode_codes(table, data[RTP_HEADER_SIZE:]), ticks, marker=marker)
    elif isinstance(src, G729) and isinstance(dst, G711):
        payload_bytes = frames * src.frame_samples
        convert = src.rtp_decoder(dst.encode_table, frames)
        native = src.native_rtp_lane(dst.encode_table, frames, encoder=False)
    else:
        return None

    def lane(data: bytes, marker: bool) -> bytes:
        if heard is not None:
            heard(data, RTP_HEADER_SIZE)  # the G.711 side still conceals a loss from it
        # OutgoingStream.packet's numbering and counters
        sequence, timestamp = outgoing.sequence, outgoing.timestamp
        datagram = convert(data, (0x80 if marker else 0) | outgoing.payload_type,
                           sequence, timestamp, outgoing.ssrc)
        if datagram is None:
            assert declined is not None
            return declined(data, marker)
        outgoing.sequence = (sequence + 1) & 0xFFFF
        outgoing.timestamp = (timestamp + ticks) & 0xFFFFFFFF
        outgoing.packets += 1
        outgoing.octets += payload_bytes
        return datagram

    return lane, native


_resample_poly: Callable[..., np.ndarray] | None = None


def load_resampler() -> Callable[..., np.ndarray]:
    """:func:`scipy.signal.resample_poly`, imported on the first call (see the module's
    docstring)."""
    global _resample_poly
    if _resample_poly is None:
        from scipy.signal import resample_poly  # scipy: untyped

        _resample_poly = resample_poly
    return _resample_poly


class StreamingResampler:
    """Block-by-block :func:`scipy.signal.resample_poly` that equals the whole-signal result.

    How: ``resample_poly`` is a zero-phase FIR filter whose output sample ``m`` depends only on
    inputs within ``K = 10 * max(up, down) / up`` samples of input time ``m * down / up``. Each
    call resamples the new block together with the retained tail of earlier input and emits
    only the output samples whose whole filter support (±K inputs) is already known; the
    rest waits for the next block. The emitted stream is therefore identical (to float
    rounding) to resampling the concatenated signal at once - no clicks or phase jumps at
    packet boundaries - at the price of a fixed latency of about ``K`` input samples
    (10 samples = 0.6 ms for 8 -> 16 kHz, 20 samples = 1.25 ms for 16 -> 8 kHz).

    Parameters
    ----------
    up, down : int
        Rational factor ``up / down`` (e.g. 2, 1 for 8 -> 16 kHz).
    """

    def __init__(self, up: int, down: int) -> None:
        if up <= 0 or down <= 0:
            raise ValueError(f"up and down must be positive, got {up}, {down}")
        common = gcd(up, down)
        self.up, self.down = up // common, down // common
        max_rate = max(self.up, self.down)
        self.context = -(-10 * max_rate // self.up) + 1  # ceil(half_len / up) + 1 guard
        self._buf = np.zeros(0, dtype=np.float64)
        self._buf_start = 0  # global input index of _buf[0]; kept a multiple of `down`
        self._total_in = 0
        self._next_out = 0  # global index of the next output sample to emit
        self._resample_poly = load_resampler()

    @property
    def latency(self) -> int:
        """Input samples held back waiting for right-hand filter context."""
        return self.context

    def _emit(self, end_out: int) -> np.ndarray:
        if end_out <= self._next_out:
            return np.zeros(0, dtype=np.float64)
        resampled: np.ndarray = self._resample_poly(self._buf, self.up, self.down)
        offset = self._buf_start * self.up // self.down
        out = resampled[self._next_out - offset : end_out - offset]
        self._next_out = end_out
        # keep the input the next outputs still need: from t(next_out) - K, aligned to `down`
        need_from = (self._next_out * self.down) // self.up - self.context
        need_from = max(0, need_from - need_from % self.down)
        if need_from > self._buf_start:
            self._buf = self._buf[need_from - self._buf_start :]
            self._buf_start = need_from
        return out

    def process(self, block: np.ndarray) -> np.ndarray:
        """Feed input samples, get the output samples that are now final.

        Parameters
        ----------
        block : ndarray, shape (n,)
            Input samples (any real dtype).

        Returns
        -------
        ndarray of float64, shape (m,)
            Output samples, continuing the previous call's output.
        """
        block = np.asarray(block, dtype=np.float64).reshape(-1)
        self._buf = np.concatenate([self._buf, block])
        self._total_in += block.size
        ready_in = self._total_in - self.context
        if ready_in < 0:
            return np.zeros(0, dtype=np.float64)
        return self._emit((ready_in * self.up) // self.down + 1)

    def flush(self) -> np.ndarray:
        """Emit the held-back tail (as if the signal were followed by silence)."""
        total = self._total_in
        self._buf = np.concatenate([self._buf, np.zeros(self.context + self.down)])
        end = -(-total * self.up // self.down)  # ceil: resample_poly's output length
        return self._emit(end)


def _to_int16(audio: np.ndarray) -> np.ndarray:
    clipped: np.ndarray = np.clip(np.rint(audio), -32768, 32767).astype(np.int16)
    return clipped


class TranscoderStats:
    """Counters of one transcoding direction."""

    __slots__ = ("concealed_frames", "dropped_late", "packets_in", "packets_out", "resyncs")

    def __init__(self) -> None:
        self.packets_in = 0
        self.packets_out = 0
        self.concealed_frames = 0
        self.dropped_late = 0
        self.resyncs = 0

    def as_dict(self) -> dict[str, int]:
        """Counters as a plain dict."""
        return {name: getattr(self, name) for name in self.__slots__}


class Transcoder:
    """One direction of a transcoded call: RTP of ``src`` in, RTP of ``dst`` out.

    Parameters
    ----------
    src, dst : str or Codec
        Codec names (fresh codec objects are made) or codec objects owned by this transcoder.
    src_ptime, dst_ptime : int
        Packetization in ms of the incoming and outgoing legs (10, 20, 30, 60...); each must be
        a whole number of its codec's frames.
    payload_type : int, optional
        Outgoing payload type (default: the destination codec's).
    ssrc, sequence, timestamp : int, optional
        Initial outgoing values (random by default, RFC 3550 §5.1).
    rng : random.Random, optional
        Random source for the initial values.
    max_conceal_ms : int
        Longest incoming gap filled with concealment.

    Attributes
    ----------
    outgoing : OutgoingStream
        The outgoing leg's numbering (shared with telephone-event packets on that leg).
    stats : TranscoderStats
    """

    # slots, and the per-packet callables bound once: at hundreds of calls per core the
    # per-packet path is bound by the memory it touches as much as by its instructions
    __slots__ = (
        "_decode",
        "_encode",
        "_expected_seq",
        "_fifo",
        "_fifo_len",
        "_half_in_ticks",
        "_in_frames",
        "_in_ticks",
        "_inject",
        "_lane",
        "_lane_size",
        "_last_src_ticks",
        "_last_src_ts",
        "_marker_next",
        "_native_lane",
        "_out_samples",
        "_out_ticks",
        "_packet",
        "_resampler",
        "_src_clock",
        "_src_rate",
        "_ts_offset",
        "audio_tap",
        "dst",
        "dst_ptime",
        "max_conceal_ms",
        "outgoing",
        "src",
        "src_ptime",
        "stats",
    )

    def __init__(
        self,
        src: str | Codec,
        dst: str | Codec,
        *,
        src_ptime: int = 20,
        dst_ptime: int = 20,
        payload_type: int | None = None,
        ssrc: int | None = None,
        sequence: int | None = None,
        timestamp: int | None = None,
        rng: random.Random | None = None,
        max_conceal_ms: int = 60,
    ) -> None:
        self.src = resolve_codec(src)
        self.dst = resolve_codec(dst)
        for role, codec, ptime in (("src", self.src, src_ptime), ("dst", self.dst, dst_ptime)):
            if ptime <= 0 or ptime % codec.frame_ms:
                raise CodecError(
                    f"{role}_ptime {ptime} ms is not a whole number of {codec.name} frames "
                    f"({codec.frame_ms} ms)"
                )
        self.src_ptime = src_ptime
        self.dst_ptime = dst_ptime
        self.outgoing = OutgoingStream(
            self.dst.payload_type if payload_type is None else payload_type,
            self.dst.clock_rate,
            ssrc=ssrc,
            sequence=sequence,
            timestamp=timestamp,
            rng=rng,
        )
        self.stats = TranscoderStats()
        self.max_conceal_ms = max_conceal_ms
        # samples (at the destination audio rate) per outgoing packet, and its timestamp step
        self._out_samples = self.dst.sample_rate * dst_ptime // 1000
        self._out_ticks = self.dst.clock_rate * dst_ptime // 1000
        self._in_frames = src_ptime // self.src.frame_ms
        self._in_ticks = self.src.clock_rate * src_ptime // 1000
        self._resampler: StreamingResampler | None = None
        if self.src.sample_rate != self.dst.sample_rate:
            ratio = Fraction(self.dst.sample_rate, self.src.sample_rate)
            self._resampler = StreamingResampler(ratio.numerator, ratio.denominator)
        # FIFO of decoded audio at the destination rate (preallocated, compacted on demand)
        self._fifo = np.zeros(max(8 * self._out_samples, 4 * self.src.sample_rate // 10), np.int16)
        self._fifo_len = 0
        self._expected_seq: int | None = None
        self._last_src_ts = 0
        self._last_src_ticks = self._in_ticks  # duration of the previous packet, in ticks
        self._ts_offset: int | None = None
        self._marker_next = True  # first packet of the outgoing stream (RFC 3551 §4.1)
        self._inject = np.zeros(0, dtype=np.int16)
        self._decode = self.src.decode
        self._encode = self.dst.encode
        # payload to payload with no audio array in between (G.711 <-> G.729), for packets of
        # exactly the negotiated ptime when nothing listens to or replaces the audio
        found = (_lookup_lane(self.src, self.dst, self._in_frames, self.outgoing,
                              self._out_ticks)
                 if src_ptime == dst_ptime else None)
        self._lane: Callable[[bytes, bool], bytes] | None = None
        self._native_lane: NativeLane | None = None
        if found is not None:
            self._lane, self._native_lane = found
        # the size of a datagram for it: a plain 12-byte header and the negotiated ptime
        self._lane_size = RTP_HEADER_SIZE + self._in_frames * self.src.frame_bytes
        self._half_in_ticks = self._in_ticks // 2
        self._packet = self.outgoing.packet
        # RTP clock and audio rate of the source (they differ for G.722, RFC 3551 §4.5.2)
        self._src_clock, self._src_rate = self.src.clock_rate, self.src.sample_rate
        self.audio_tap: Callable[[np.ndarray], None] | None = None
        """Called with every decoded source block (int16 at ``src.sample_rate``), before any
        injected audio replaces it: where an inband DTMF detector listens."""

    # -- audio replacement ----------------------------------------------------------------

    def inject(self, samples: np.ndarray) -> None:
        """Replace the next decoded source audio with ``samples`` (e.g. generated DTMF tones).

        The replacement is sample for sample as source audio arrives, so it keeps the stream's
        timing: a 100 ms tone replaces the next 100 ms of audio.

        Parameters
        ----------
        samples : ndarray of int16, shape (n,)
            Audio at the *source* codec's sample rate.
        """
        samples = np.asarray(samples)
        if samples.dtype != np.int16 or samples.ndim != 1:
            raise CodecError(f"inject expects 1-D int16 samples, got {samples.dtype} {samples.shape}")
        self._inject = np.concatenate([self._inject, samples])

    @property
    def injecting(self) -> bool:
        """Whether injected audio is still waiting to replace source audio."""
        return self._inject.size > 0

    def _replace(self, audio: np.ndarray) -> np.ndarray:
        if self.audio_tap is not None:
            self.audio_tap(audio)
        if not self._inject.size:
            return audio
        n = min(audio.size, self._inject.size)
        audio = audio.copy()
        audio[:n] = self._inject[:n]
        self._inject = self._inject[n:]
        return audio

    # -- timestamps -----------------------------------------------------------------------

    def map_timestamp(self, src_timestamp: int) -> int:
        """Outgoing-leg timestamp of an incoming-leg timestamp (for RFC 4733 events).

        Before the first media packet, maps the given timestamp to the next outgoing one.
        """
        if self._ts_offset is None:
            self._ts_offset = (self.outgoing.timestamp - src_timestamp) & 0xFFFFFFFF
        return (src_timestamp + self._ts_offset) & 0xFFFFFFFF

    # -- the lane run elsewhere (the relay's hub) --------------------------------------------

    @property
    def native_lane(self) -> NativeLane | None:
        """The C lane object of this direction's packet lane (``_g729lane``), or None: an I/O
        layer may run the lane with it while :meth:`lane_state` allows."""
        return self._native_lane

    def lane_state(self) -> LaneState | None:
        """The state the next packet needs when it takes :meth:`process`'s lane and nothing
        else has to happen first (no audio buffered, tapped or replaced, no partial frame in
        the encoder, the previous packet the lane's size), or None."""
        if (self._native_lane is None or self._expected_seq is None or self._fifo_len
                or self.audio_tap is not None or self._inject.size
                or self._last_src_ticks != self._in_ticks
                or isinstance(self.dst, G729) and self.dst.encoder_waiting):
            return None
        outgoing = self.outgoing
        return LaneState(self._expected_seq, self._last_src_ts,
                         self._in_ticks + self._half_in_ticks, self._marker_next,
                         outgoing.payload_type, outgoing.sequence, outgoing.timestamp,
                         outgoing.ssrc, self._out_ticks, isinstance(self.src, G711))

    def resume_lane(self, converted: int, expected_seq: int, last_src_ts: int,
                    marker_next: bool, out_seq: int, out_ts: int,
                    heard: bytes | None) -> None:
        """Take back :meth:`lane_state` after ``converted`` packets went through the lane
        elsewhere, exactly as :meth:`process` would have counted them; ``heard``: the last of
        them when the source is G.711 (its concealment remembers it)."""
        if not converted:
            return
        self._expected_seq, self._last_src_ts = expected_seq, last_src_ts
        self._marker_next = marker_next
        outgoing = self.outgoing
        outgoing.sequence, outgoing.timestamp = out_seq, out_ts
        outgoing.packets += converted
        outgoing.octets += converted * (self.dst_ptime // self.dst.frame_ms * self.dst.frame_bytes)
        self.stats.packets_in += converted
        self.stats.packets_out += converted
        if heard is not None and isinstance(self.src, G711):
            self.src.heard(heard, RTP_HEADER_SIZE)

    # -- packet path ----------------------------------------------------------------------

    def process(self, datagram: bytes) -> list[bytes]:
        """Transcode one incoming RTP datagram of the source codec.

        Parameters
        ----------
        datagram : bytes
            A whole RTP packet (its payload type is not checked here; the relay routes by it).

        Returns
        -------
        list of bytes
            Zero or more outgoing RTP datagrams, in order.

        Raises
        ------
        RtpError
            Not an RTP packet.
        CodecError
            Payload not decodable by the source codec.
        """
        try:
            first, _second, sequence, timestamp = HEADER_START.unpack_from(datagram)
        except struct.error:
            raise RtpError(f"RTP packet too short: {len(datagram)} bytes") from None
        stats = self.stats
        stats.packets_in += 1
        out: list[bytes] = []
        if sequence == self._expected_seq:
            step = (timestamp - self._last_src_ts) & 0xFFFFFFFF
            if self._last_src_ticks + self._half_in_ticks < step < 0x80000000:
                # consecutive packets but the timestamp jumped: the sender stopped sending
                # during silence (DTX, RFC 3551 §4.1) or after hold; follow the jump
                self._resync(timestamp)
        elif not self._out_of_sequence(sequence, timestamp, out):
            return out
        self._expected_seq = (sequence + 1) & 0xFFFF
        self._last_src_ts = timestamp
        if (self._lane is not None and first == 0x80 and len(datagram) == self._lane_size
                and type(datagram) is bytes and not self._fifo_len
                and self.audio_tap is None and not self._inject.size):
            # the common case: one in and one out, datagram to datagram
            self._last_src_ticks = self._in_ticks
            out.append(self._lane(datagram, self._marker_next))
            self._marker_next = False
            stats.packets_out += 1
            return out
        # the common case: no padding, extension or CSRC
        payload = datagram[12:] if first == 0x80 else RtpPacket.parse(datagram).payload
        audio = self._decode(payload)
        self._last_src_ticks = audio.size * self._src_clock // self._src_rate
        if self.audio_tap is not None or self._inject.size:
            audio = self._replace(audio)
        if audio.size != self._out_samples or self._fifo_len or self._resampler is not None:
            self._push(audio, out)
            return out
        # one packet in, one packet out (20 ms PCMA <-> 2 x 10 ms G.729): no FIFO
        out.append(self._packet(self._encode(audio), self._out_ticks, marker=self._marker_next))
        self._marker_next = False
        stats.packets_out += 1
        return out

    def _out_of_sequence(self, sequence: int, timestamp: int, out: list[bytes]) -> bool:
        """Handle a packet that is not the next expected one; False when it is dropped.

        The first packet maps the timestamps; a short gap is concealed into ``out``; a long
        one is followed (:meth:`_resync`); a late or duplicate packet is dropped.
        """
        expected = self._expected_seq
        if expected is None:
            self.map_timestamp(timestamp)
            return True
        gap = (sequence - expected) % _SEQ_MOD
        if gap >= _SEQ_MOD // 2:  # late or duplicate
            self.stats.dropped_late += 1
            return False
        if gap * self.src_ptime <= self.max_conceal_ms:
            frames = gap * self._in_frames
            self.stats.concealed_frames += frames
            self._push(self._replace(self._conceal(frames)), out)
        else:
            self._resync(timestamp)
        return True

    def process_payload(self, payload: bytes) -> list[bytes]:
        """Transcode one payload that arrived without RTP framing (no loss detection)."""
        out: list[bytes] = []
        self._push(self._replace(self.src.decode(payload)), out)
        return out

    def _conceal(self, frames: int) -> np.ndarray:
        try:
            return self.src.conceal(frames)
        except NotImplementedError:
            return np.zeros(frames * self.src.frame_samples, dtype=np.int16)

    def _resync(self, timestamp: int) -> None:
        """Follow a discontinuity: drop buffered audio, jump the outgoing timestamp."""
        self.stats.resyncs += 1
        self._fifo_len = 0
        self.outgoing.timestamp = self.map_timestamp(timestamp)
        self._marker_next = True

    def _push(self, audio: np.ndarray, out: list[bytes]) -> None:
        if self._resampler is not None:
            audio = _to_int16(self._resampler.process(audio))
        n = audio.size
        step = self._out_samples
        encode = self._encode
        packet = self._packet
        fifo = self._fifo
        if self._fifo_len + n > fifo.size:
            grown = np.zeros(2 * (self._fifo_len + n), dtype=np.int16)
            grown[: self._fifo_len] = fifo[: self._fifo_len]
            self._fifo = fifo = grown
        fifo[self._fifo_len : self._fifo_len + n] = audio
        self._fifo_len += n
        start = 0
        while self._fifo_len - start >= step:
            out.append(
                packet(
                    encode(fifo[start : start + step]), self._out_ticks, marker=self._marker_next
                )
            )
            self._marker_next = False
            self.stats.packets_out += 1
            start += step
        if start:
            remaining = self._fifo_len - start
            fifo[:remaining] = fifo[start : self._fifo_len]
            self._fifo_len = remaining
