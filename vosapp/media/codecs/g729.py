"""G.729 Annex A (and optional Annex B VAD/DTX/CNG) through Debian's ``libbcg729-0``.

A small ctypes binding to bcg729 (Belledonne Communications), signatures from
``bcg729/encoder.h`` and ``bcg729/decoder.h`` 1.1.1::

    bcg729EncoderChannelContextStruct *initBcg729EncoderChannel(uint8_t enableVAD);
    void closeBcg729EncoderChannel(bcg729EncoderChannelContextStruct *);
    void bcg729Encoder(ctx *, const int16_t inputFrame[80], uint8_t bitStream[],
                       uint8_t *bitStreamLength);            /* 10, 2 (SID) or 0 bytes */
    bcg729DecoderChannelContextStruct *initBcg729DecoderChannel(void);
    void closeBcg729DecoderChannel(bcg729DecoderChannelContextStruct *);
    void bcg729Decoder(ctx *, const uint8_t bitStream[], uint8_t bitStreamLength,
                       uint8_t frameErasureFlag, uint8_t SIDFrameFlag,
                       uint8_t rfc3389PayloadFlag, int16_t signal[80]);

Frames are 10 ms (80 samples -> 10 bytes). An RTP payload is N speech frames optionally
followed by one 2-byte SID frame (RFC 3551 §4.5.6), which :meth:`G729.decode` honours.

Speed matters (a media proxy transcodes hundreds of calls on one core): the function pointers
are bound once with ``argtypes``; the per-frame loop passes bytes objects (ctypes hands over a
pointer to their data) or raw addresses of preallocated buffers and builds no ctypes objects.
:meth:`G729.encode_codes` and :meth:`G729.decode_codes` take or give the audio through a G.711
table, so a G.711 <-> G.729 packet needs no audio array in between. :meth:`G729.rtp_encoder` and
:meth:`G729.rtp_decoder` do a whole RTP packet of that per call (the transcoder's lane): in C
when the optional extension ``_g729lane`` is built (ctypes hands it bcg729's function and
context addresses, so it needs no bcg729 headers), else through ctypes, with the same bytes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from vosapp.media.codecs.base import Codec, CodecError, CodecUnavailableError
from vosapp.media.rtp import HEADER as RTP_FIXED_HEADER
from vosapp.media.rtp import RTP_HEADER_SIZE

if TYPE_CHECKING:
    from vosapp.media.codecs._g729lane import _Lane as NativeLane

try:  # the C packet lane (setup.py builds it when a compiler and Python's headers are there)
    from vosapp.media.codecs import _g729lane as _native
except ImportError:  # not built: the same lane through ctypes
    _native = None  # type: ignore[assignment]

__all__ = ["G729", "NATIVE_LANE", "RtpLane", "load_bcg729"]

NATIVE_LANE: bool = _native is not None
"""Whether the C packet lane (``vosapp.media.codecs._g729lane``) is built and imported."""

RtpLane = Callable[[bytes, int, int, int, int], bytes]
"""``lane(datagram, second_byte, sequence, timestamp, ssrc)``: an RTP datagram in, the
converted datagram with a 12-byte header of the given fields out (G.729 lanes below)."""

FRAME_SAMPLES = 80
SPEECH_FRAME_BYTES = 10
SID_FRAME_BYTES = 2
_BLOCK_SAMPLES = 2048  # decoded audio handed out per allocation: 12 packets of 20 ms, 4 KiB
_INT16, _UINT8 = np.dtype(np.int16), np.dtype(np.uint8)

_LIB: ctypes.CDLL | None = None


def load_bcg729() -> ctypes.CDLL:
    """Load libbcg729 once and declare the function signatures.

    Raises
    ------
    CodecUnavailableError
        When the shared library is missing, naming the Debian package to install.
    """
    global _LIB
    if _LIB is not None:
        return _LIB
    candidates = ["libbcg729.so.0", ctypes.util.find_library("bcg729")]
    lib = None
    for candidate in candidates:
        if not candidate:
            continue
        try:
            lib = ctypes.CDLL(candidate)
            break
        except OSError:
            continue
    if lib is None:
        raise CodecUnavailableError(
            "G.729 needs the bcg729 shared library (libbcg729.so.0), which is not installed: "
            "install the Debian/Ubuntu package libbcg729-0 (apt-get install libbcg729-0)"
        )
    void_p, u8, i16_p, u8_p = ctypes.c_void_p, ctypes.c_uint8, ctypes.c_void_p, ctypes.c_void_p
    lib.initBcg729EncoderChannel.argtypes = [u8]
    lib.initBcg729EncoderChannel.restype = void_p
    lib.closeBcg729EncoderChannel.argtypes = [void_p]
    lib.closeBcg729EncoderChannel.restype = None
    lib.bcg729Encoder.argtypes = [void_p, i16_p, u8_p, u8_p]
    lib.bcg729Encoder.restype = None
    lib.initBcg729DecoderChannel.argtypes = []
    lib.initBcg729DecoderChannel.restype = void_p
    lib.closeBcg729DecoderChannel.argtypes = [void_p]
    lib.closeBcg729DecoderChannel.restype = None
    lib.bcg729Decoder.argtypes = [void_p, u8_p, u8, u8, u8, u8, i16_p]
    lib.bcg729Decoder.restype = None
    _LIB = lib
    return lib


def _address(array: np.ndarray) -> int:
    """Address of a C-contiguous array's first byte (cheaper than ``array.ctypes.data``)."""
    try:
        # numpy's stubs declare ndarray a Buffer (__buffer__) only for Python >= 3.12.
        return ctypes.addressof(ctypes.c_char.from_buffer(array))  # type: ignore[arg-type]
    except (TypeError, ValueError):  # read-only or empty buffer
        return array.ctypes.data


class G729(Codec):
    """G.729A (8 kbit/s, 10 ms frames), RTP payload type 18.

    Parameters
    ----------
    annexb : bool
        Annex B (VAD/DTX/CNG) on the :meth:`encode_frames` path and in :attr:`fmtp`.
        :meth:`encode` always runs an encoder with VAD off, because 2- and 0-byte Annex B
        frames cannot be told apart once concatenated.
    native_lane : bool
        Run :meth:`rtp_encoder` / :meth:`rtp_decoder` in C when the extension is built
        (False: through ctypes, e.g. to compare the two). The attribute says which it is.
    """

    name = "G729"
    encoding_name = "G729"
    sample_rate = 8000
    clock_rate = 8000
    frame_ms = 10
    frame_bytes = SPEECH_FRAME_BYTES
    payload_type = 18
    has_plc = True

    def __init__(self, *, annexb: bool = False, native_lane: bool = True) -> None:
        lib = load_bcg729()
        self.annexb = annexb
        self.native_lane = native_lane and NATIVE_LANE
        self._lib = lib
        self._encode_fn = lib.bcg729Encoder
        self._decode_fn = lib.bcg729Decoder
        # the functions' addresses, for the C lane (it calls them without ctypes)
        self._encode_address = ctypes.cast(lib.bcg729Encoder, ctypes.c_void_p).value
        self._decode_address = ctypes.cast(lib.bcg729Decoder, ctypes.c_void_p).value
        self._encoder = lib.initBcg729EncoderChannel(0)
        self._vad_encoder = lib.initBcg729EncoderChannel(1) if annexb else None
        self._decoder = lib.initBcg729DecoderChannel()
        if not self._encoder or not self._decoder:
            raise CodecUnavailableError("bcg729 could not allocate an encoder/decoder context")
        # preallocated scratch: one frame of output bits and its length byte
        self._bits = (ctypes.c_uint8 * SPEECH_FRAME_BYTES)()
        self._bits_addr = ctypes.addressof(self._bits)
        self._bits_len = ctypes.c_uint8(0)
        self._bits_len_addr = ctypes.addressof(self._bits_len)
        self._block = np.empty(0, dtype=np.int16)  # decoded audio is handed out from here
        self._block_addr = 0
        self._block_used = 0
        self._pcm = np.empty(0, dtype=np.int16)  # audio between a G.711 payload and bcg729
        self._pcm_addr = 0
        self._out_frames = 6  # grows on demand
        self._out = ctypes.create_string_buffer(self._out_frames * SPEECH_FRAME_BYTES)
        self._out_addr = ctypes.addressof(self._out)

    def _grow_output(self, frames: int) -> None:
        self._out = ctypes.create_string_buffer(frames * SPEECH_FRAME_BYTES)
        self._out_addr = ctypes.addressof(self._out)
        self._out_frames = frames

    @property
    def fmtp(self) -> str:
        """``annexb=yes|no`` (RFC 3555 §4.1.9 / RFC 4856)."""
        return f"annexb={'yes' if self.annexb else 'no'}"

    def encode(self, samples: np.ndarray, *, final: bool = True) -> bytes:
        if not (
            type(samples) is np.ndarray
            and samples.dtype is _INT16
            and samples.ndim == 1
            and not samples.size % FRAME_SAMPLES
            and not self._pending.size
        ):
            samples = self._whole_frames(samples, final)
        frames = samples.size // FRAME_SAMPLES
        if frames > self._out_frames:
            self._grow_output(frames)
        encode_fn, ctx, length_addr, out_addr = (
            self._encode_fn, self._encoder, self._bits_len_addr, self._out_addr)
        # the samples as one bytes object (a plain copy, cheaper than asking numpy for its
        # buffer's address); ctypes passes a bytes argument as a pointer to its data
        pcm = samples.tobytes()
        if frames:
            encode_fn(ctx, pcm, out_addr, length_addr)
        for i in range(1, frames):
            encode_fn(ctx, pcm[160 * i :], out_addr + 10 * i, length_addr)
        return self._out.raw[: frames * SPEECH_FRAME_BYTES]

    def _scratch(self, samples: int) -> None:
        """Make :attr:`_pcm` a preallocated int16 buffer of exactly ``samples`` samples."""
        self._pcm = np.empty(samples, dtype=np.int16)
        self._pcm_addr = _address(self._pcm)

    def encode_codes(self, table: np.ndarray, codes: bytes) -> bytes:
        """Encode the audio ``table[codes]`` without handing it out as an array.

        What a G.711 payload (``codes``) decodes to through its decode table (int16[256]),
        straight into the encoder's input buffer: the transcoder's G.711 -> G.729 path. Equal
        to ``encode(table[codes])``.
        """
        size = len(codes)
        if size % FRAME_SAMPLES or self._pending.size:
            return self.encode(table.take(np.frombuffer(codes, dtype=_UINT8)))
        frames = size // FRAME_SAMPLES
        if self._pcm.size != size:
            self._scratch(size)
        # mode "clip" (a no-op for uint8 codes into 256 entries) lets numpy write into `out`
        # directly; the default "raise" buffers the result and copies it
        table.take(np.frombuffer(codes, dtype=_UINT8), out=self._pcm, mode="clip")
        in_addr = self._pcm_addr
        if frames > self._out_frames:
            self._grow_output(frames)
        encode_fn, ctx, length_addr, out_addr = (
            self._encode_fn, self._encoder, self._bits_len_addr, self._out_addr)
        for i in range(frames):
            encode_fn(ctx, in_addr + 160 * i, out_addr + 10 * i, length_addr)
        return self._out.raw[: frames * SPEECH_FRAME_BYTES]

    def decode_codes(self, payload: bytes, table: np.ndarray) -> bytes:
        """Decode and map every sample through ``table``: ``table[decode(payload)]`` as bytes.

        With a G.711 encode table (uint8[65536] indexed by the sample) that is the G.711
        payload of the decoded audio: the transcoder's G.729 -> G.711 path, with the audio
        decoded into a preallocated buffer rather than a fresh array.
        """
        size = len(payload)
        if type(payload) is not bytes or size % SPEECH_FRAME_BYTES or not size:
            return table.take(self.decode(payload)).tobytes()
        frames = size // SPEECH_FRAME_BYTES
        if self._pcm.size != frames * FRAME_SAMPLES:
            self._scratch(frames * FRAME_SAMPLES)
        out_addr = self._pcm_addr
        decode_fn, ctx = self._decode_fn, self._decoder
        for i in range(frames):
            decode_fn(ctx, payload[10 * i :] if i else payload, 10, 0, 0, 0, out_addr + 160 * i)
        return table.take(self._pcm).tobytes()

    def rtp_encoder(
        self, table: np.ndarray, frames: int
    ) -> Callable[[bytes, int, int, int, int], bytes | None]:
        """The transcoder's G.711 -> G.729 path, a whole RTP packet per call:
        ``encode(datagram, second_byte, sequence, timestamp, ssrc)`` takes a datagram of a
        plain 12-byte RTP header and exactly ``frames`` × 80 G.711 codes, and returns the
        datagram of :meth:`encode_codes` of those codes (through ``table``, the G.711 decode
        table, int16[256]) after the 12-byte header made of the other arguments (version 2,
        RFC 3550 §5.1). It returns None, having done nothing, when a partial frame from
        ``encode(..., final=False)`` waits (then :meth:`encode_codes` must be used).

        It runs in C (``_g729lane``) when that extension is built, else through ctypes: the
        same bytes either way.
        """
        native = self.native_rtp_lane(table, frames, encoder=True)
        if native is None:
            return self._ctypes_encoder(table, frames)
        packet = native.packet

        def encode(data: bytes, second: int, sequence: int, timestamp: int,
                   ssrc: int) -> bytes | None:
            if self._pending.size:
                return None
            return packet(data, second, sequence, timestamp, ssrc)

        return encode

    def _ctypes_encoder(
        self, table: np.ndarray, frames: int
    ) -> Callable[[bytes, int, int, int, int], bytes | None]:
        """:meth:`rtp_encoder` through ctypes."""
        count = frames * FRAME_SAMPLES
        # the datagram is copied into a buffer with a standing array view of its codes (a
        # copy of 172 bytes is cheaper than numpy making a view of a new bytes object)
        staging = bytearray(RTP_HEADER_SIZE + count)
        codes = np.frombuffer(staging, dtype=_UINT8)[RTP_HEADER_SIZE:]
        pcm = np.empty(count, dtype=np.int16)  # this function's own: the audio of one packet
        pcm_addr = _address(pcm)
        datagram = np.zeros(RTP_HEADER_SIZE + frames * SPEECH_FRAME_BYTES, dtype=np.uint8)
        out_addr = _address(datagram) + RTP_HEADER_SIZE
        steps = tuple((pcm_addr + 2 * FRAME_SAMPLES * i, out_addr + SPEECH_FRAME_BYTES * i)
                      for i in range(frames))
        take, pack_header = table.take, RTP_FIXED_HEADER.pack_into
        encode_fn, ctx, length_addr = self._encode_fn, self._encoder, self._bits_len_addr

        def encode(data: bytes, second: int, sequence: int, timestamp: int,
                   ssrc: int) -> bytes | None:
            if self._pending.size:
                return None
            staging[:] = data  # the same size: a copy, never a resize
            # mode "clip" (a no-op for uint8 codes into 256 entries) lets numpy write into
            # `pcm` directly; the default "raise" buffers the result and copies it
            take(codes, None, pcm, "clip")
            for frame_in, frame_out in steps:
                encode_fn(ctx, frame_in, frame_out, length_addr)
            # (numpy's stubs declare ndarray a Buffer only for Python >= 3.12)
            pack_header(datagram, 0, 0x80, second, sequence, timestamp,  # type: ignore[arg-type]
                        ssrc)
            return datagram.tobytes()

        return encode

    def rtp_decoder(self, table: np.ndarray, frames: int) -> RtpLane:
        """The transcoder's G.729 -> G.711 path, a whole RTP packet per call:
        ``decode(datagram, second_byte, sequence, timestamp, ssrc)`` takes a datagram of a
        plain 12-byte RTP header and exactly ``frames`` speech frames (10 bytes each), and
        returns the datagram of :meth:`decode_codes` of that payload (through ``table``, the
        G.711 encode table, uint8[65536]) after the 12-byte header made of the other
        arguments (version 2, RFC 3550 §5.1).

        It runs in C (``_g729lane``) when that extension is built, else through ctypes: the
        same bytes either way.
        """
        native = self.native_rtp_lane(table, frames, encoder=False)
        if native is not None:
            packet: RtpLane = native.packet
            return packet
        pcm = np.empty(frames * FRAME_SAMPLES, dtype=np.int16)
        pcm_addr = _address(pcm)
        # the int16 samples as uint16 index the 65,536-entry table as a negative int16 index
        # would (from its end), and mode "clip" (then a no-op) writes into `out` unbuffered
        indices = pcm.view(np.uint16)
        datagram = np.zeros(RTP_HEADER_SIZE + frames * FRAME_SAMPLES, dtype=np.uint8)
        out = datagram[RTP_HEADER_SIZE:]
        steps = tuple((RTP_HEADER_SIZE + SPEECH_FRAME_BYTES * i, pcm_addr + 2 * FRAME_SAMPLES * i)
                      for i in range(frames))
        take, pack_header = table.take, RTP_FIXED_HEADER.pack_into
        decode_fn, ctx = self._decode_fn, self._decoder

        def decode(data: bytes, second: int, sequence: int, timestamp: int, ssrc: int) -> bytes:
            # ctypes passes a bytes argument as a pointer to its data: each frame's slice
            for in_offset, frame_out in steps:
                decode_fn(ctx, data[in_offset:], 10, 0, 0, 0, frame_out)
            take(indices, None, out, "clip")
            # (numpy's stubs declare ndarray a Buffer only for Python >= 3.12)
            pack_header(datagram, 0, 0x80, second, sequence, timestamp,  # type: ignore[arg-type]
                        ssrc)
            return datagram.tobytes()

        return decode

    def native_rtp_lane(self, table: np.ndarray, frames: int, *,
                        encoder: bool) -> NativeLane | None:
        """The C lane object behind :meth:`rtp_encoder` (``encoder``) or :meth:`rtp_decoder`
        (``_g729lane.EncoderLane`` / ``DecoderLane`` on this codec's bcg729 context; a C
        extension may convert with it through ``_g729lane.h``, as the relay's hub does), or
        None when the lane runs through ctypes. Same arguments as those methods."""
        if not self.native_lane:
            return None
        assert _native is not None
        if encoder:
            return _native.EncoderLane(self._encode_address, self._encoder, table, frames, self)
        return _native.DecoderLane(self._decode_address, self._decoder, table, frames, self)

    @property
    def encoder_waiting(self) -> bool:
        """Whether a partial frame from ``encode(..., final=False)`` waits in the encoder
        (then the packet lanes decline)."""
        return bool(self._pending.size)

    def encode_frames(self, samples: np.ndarray) -> list[bytes]:
        """Encode frame by frame; with Annex B a frame is 10 (speech), 2 (SID) or 0 bytes.

        Parameters
        ----------
        samples : ndarray of int16, shape (n,)
            A partial last frame is padded with silence.

        Returns
        -------
        list of bytes, one per 80 samples (rounded up)
        """
        samples = self._check_samples(samples)
        if samples.size % FRAME_SAMPLES:
            pad = np.zeros(FRAME_SAMPLES - samples.size % FRAME_SAMPLES, dtype=np.int16)
            samples = np.concatenate([samples, pad])
        ctx = self._vad_encoder if self.annexb else self._encoder
        in_addr = samples.ctypes.data
        frames: list[bytes] = []
        for i in range(samples.size // FRAME_SAMPLES):
            self._encode_fn(ctx, in_addr + 160 * i, self._bits_addr, self._bits_len_addr)
            frames.append(bytes(self._bits[: self._bits_len.value]))
        return frames

    def decode(self, payload: bytes) -> np.ndarray:
        if type(payload) is not bytes:
            self._check_bytes(payload)
            payload = bytes(payload)
        size = len(payload)
        speech, rest = divmod(size, SPEECH_FRAME_BYTES)
        if rest not in (0, SID_FRAME_BYTES):
            raise CodecError(
                f"G729.decode needs whole frames of 10 bytes (10 ms), optionally followed by "
                f"one 2-byte SID frame (RFC 3551 §4.5.6); got {size} bytes"
            )
        # the output is the next slice of a preallocated block: a fresh array for the
        # caller, without an allocation and an address look-up per packet
        samples = (speech + (1 if rest else 0)) * FRAME_SAMPLES
        used = self._block_used
        if used + samples > self._block.size:
            self._block = np.empty(max(_BLOCK_SAMPLES, samples), dtype=np.int16)
            self._block_addr = _address(self._block)
            used = 0
        self._block_used = used + samples
        out = self._block[used : used + samples]
        out_addr = self._block_addr + 2 * used
        decode_fn, ctx = self._decode_fn, self._decoder
        # ctypes passes a bytes argument as a pointer to its data: the first frame is the
        # payload itself, later ones are slices (no copy into a staging buffer)
        for i in range(speech):
            decode_fn(ctx, payload[10 * i :] if i else payload, 10, 0, 0, 0, out_addr + 160 * i)
        if rest:
            decode_fn(ctx, payload[10 * speech :], SID_FRAME_BYTES, 0, 1, 0,
                      out_addr + 160 * speech)
        return out

    def decode_frames(self, frames: list[bytes]) -> np.ndarray:
        """Decode Annex B frames one by one (10-byte speech, 2-byte SID, 0-byte untransmitted).

        Returns
        -------
        ndarray of int16, shape (len(frames) * 80,)
        """
        out = np.empty(len(frames) * FRAME_SAMPLES, dtype=np.int16)
        out_addr = out.ctypes.data
        for i, frame in enumerate(frames):
            size = len(frame)
            if size not in (0, SID_FRAME_BYTES, SPEECH_FRAME_BYTES):
                raise CodecError(f"G.729 frame {i} is {size} bytes; expected 10, 2 or 0")
            buf = ctypes.create_string_buffer(bytes(frame), max(size, 1))
            sid = 0 if size == SPEECH_FRAME_BYTES else 1
            self._decode_fn(
                self._decoder, ctypes.addressof(buf), size, 0, sid, 0, out_addr + 160 * i
            )
        return out

    def conceal(self, frames: int = 1) -> np.ndarray:
        """G.729 frame-erasure concealment (bcg729 ``frameErasureFlag``), 80 samples per frame."""
        if frames < 0:
            raise CodecError(f"frames must be >= 0, got {frames}")
        out = np.empty(frames * FRAME_SAMPLES, dtype=np.int16)
        out_addr = out.ctypes.data
        for i in range(frames):
            self._decode_fn(self._decoder, self._bits_addr, 0, 1, 0, 0, out_addr + 160 * i)
        return out

    def close(self) -> None:
        """Free the native contexts (also done on garbage collection)."""
        lib = getattr(self, "_lib", None)
        if lib is None:
            return
        if self._encoder:
            lib.closeBcg729EncoderChannel(self._encoder)
            self._encoder = None
        if self._vad_encoder:
            lib.closeBcg729EncoderChannel(self._vad_encoder)
            self._vad_encoder = None
        if self._decoder:
            lib.closeBcg729DecoderChannel(self._decoder)
            self._decoder = None

    def __del__(self) -> None:
        self.close()
