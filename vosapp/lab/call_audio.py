"""The media half of a lab call: its RTP socket and stream, what it plays and records.

:class:`CallAudio` is a base of :class:`~vosapp.lab.calls.Call`: offer/answer there decides
the codec and the peer's address, :meth:`CallAudio._start_media` starts (or, on a codec
change, restarts) the :class:`~vosapp.lab.rtp_endpoint.MediaStream` on the UA's clock; the
notebook-facing audio API (play, impair, recording, packet log, RTP statistics, digits
received) is here.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import numpy as np

from vosapp.lab.impairment import Impairment
from vosapp.lab.rtp_endpoint import MediaStream, RtpReceiver, RtpSender, RtpSocket, load_samples
from vosapp.media.dtmf import detect_digits
from vosapp.sip import sdp as sdplib

if TYPE_CHECKING:
    from vosapp.lab.sip_ua import Address, UserAgent

__all__ = ["DTMF_METHODS", "ECHO_CUSHION", "CallAudio", "CallError", "sdp_codec"]

DTMF_METHODS = ("rfc2833", "info", "inband")
#: Packets of silence an echo keeps queued ahead of what it sends back (a jitter cushion).
ECHO_CUSHION = 3
_SDP_CODECS = {"PCMA": sdplib.PCMA, "PCMU": sdplib.PCMU, "G729": sdplib.G729,
               "G723": sdplib.G723, "G722": sdplib.G722}
_CODEC_NAMES = {"pcma": "PCMA", "pcmu": "PCMU", "g729": "G729", "g723": "G723",
                "g722": "G722"}


class CallError(RuntimeError):
    """A call could not do what was asked (refused, not answered in time, wrong state)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def sdp_codec(name: str) -> sdplib.Codec:
    try:
        return _SDP_CODECS[name.upper()]
    except KeyError:
        raise CallError(f"unknown codec {name!r}; lab endpoints speak "
                        f"{', '.join(_SDP_CODECS)}") from None


def _codec_name(codec: sdplib.Codec) -> str:
    return _CODEC_NAMES[codec.family]


class CallAudio:
    """RTP for one call (see the module docstring); the signalling is the subclass's."""

    ua: UserAgent
    state: str
    codecs: tuple[str, ...]
    destination: Address | None
    info_digits: list[str]

    def __init__(self) -> None:
        self.codec: str | None = None
        self.remote_media: Address | None = None
        self.echo = False
        self.impairment: Impairment | None = None
        self.media: MediaStream | None = None
        self._socket: RtpSocket | None = None
        self._local_sdp: sdplib.SessionDescription | None = None
        self._sdp_version = 1

    def _event(self, what: str, detail: str = "") -> None:  # pragma: no cover - Call's
        raise NotImplementedError

    async def _open_media(self) -> None:
        if self._socket is None:
            self._socket = await RtpSocket.open(self.ua.host, self._on_rtp)

    def _on_rtp(self, data: bytes, source: Address) -> None:
        if self.media is not None:
            self.media.datagram(data)

    def _start_media(self, agreed: sdplib.Answer) -> None:
        """Start RTP with what offer/answer agreed (restarted when the codec changes)."""
        name = _codec_name(agreed.codec)
        self.remote_media = (agreed.remote_address or self.destination_host(), agreed.remote_port)
        if self.media is not None and self.codec == name:
            return
        self.codec = name
        previous = self.media
        event_pt = agreed.telephone_event_pt
        sender = RtpSender(name, agreed.codec.payload_type, telephone_event_pt=event_pt,
                           impairment=self.impairment)
        receiver = RtpReceiver({agreed.codec.payload_type or 0: name}, event_pt,
                               on_audio=self._echo if self.echo else None)
        if previous is not None:
            previous.stop()
            receiver.packets = previous.receiver.packets  # one log across a codec change
        assert self._socket is not None
        socket = self._socket
        self.media = MediaStream(self.ua.clock, sender, receiver,
                                 lambda data: self._send_rtp(socket, data))
        self.media.start()
        self._event("media", f"{name} to {self.remote_media[0]}:{self.remote_media[1]}")

    def destination_host(self) -> str:
        return self.destination[0] if self.destination else "127.0.0.1"

    def _send_rtp(self, socket: RtpSocket, data: bytes) -> None:
        if self.remote_media is not None and self.remote_media[1]:
            socket.sendto(data, self.remote_media)

    def _echo(self, audio: np.ndarray, rate: int) -> None:
        """Send back what arrived, behind a 60 ms cushion: packets arrive with jitter, the
        sender ticks on its own clock, and an empty queue would put holes in the speech."""
        if self.media is None or rate != self.media.sender.sample_rate:
            return
        sender = self.media.sender
        if not sender.queued_samples:
            sender.enqueue_audio(np.zeros(ECHO_CUSHION * sender.samples_per_packet, np.int16))
        sender.enqueue_audio(audio)

    def close_media(self) -> None:
        if self.media is not None:
            self.media.stop()
        if self._socket is not None:
            self._socket.close()

    def _offer(self) -> sdplib.SessionDescription:
        assert self._socket is not None
        host, port = self._socket.address
        offer = sdplib.build_offer(host, port, [sdp_codec(c) for c in self.codecs],
                                   telephone_event_pt=self.ua.telephone_event_pt,
                                   session_version=self._sdp_version)
        self._local_sdp = offer
        return offer

    # ------------------------------------------------------------------ audio API
    def _stream(self) -> MediaStream:
        if self.media is None:
            raise CallError(f"no media yet (call is {self.state})")
        return self.media

    async def _idle(self) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def resolve() -> None:
            if not future.done():
                future.set_result(None)

        self._stream().when_idle(resolve)
        await future

    async def play(self, audio: Any, *, wait: bool = True, loop: bool = False) -> None:
        """Send audio: an int16/float array at the codec's rate, or a file path (any rate).
        ``wait``: return once it has all been sent (paced in real time); ``loop``: start
        again at the end, until :meth:`stop_playing` or hangup."""
        stream = self._stream()
        stream.sender.enqueue_audio(load_samples(audio, stream.sender.sample_rate), loop=loop)
        if wait and not loop:
            await self._idle()

    def stop_playing(self) -> None:
        """Drop what is queued to play (a loop too); silence follows."""
        self._stream().sender.clear()

    def impair(self, impairment: Impairment | None = None, **settings: Any) -> Impairment:
        """Impair what this end sends from now on (``loss=0.05, seed=1`` ...; none: clear)."""
        self.impairment = impairment or (Impairment(**settings) if settings else None)
        if self.media is not None:
            self.media.sender.set_impairment(self.impairment)
        return self.impairment or Impairment()

    @property
    def sample_rate(self) -> int:
        """Rate of :meth:`recording` (the codec's audio rate)."""
        return self._stream().sender.sample_rate

    def recording(self) -> np.ndarray:
        """The audio received so far, decoded (int16 at :attr:`sample_rate`)."""
        return self._stream().receiver.audio()

    def sent_audio(self) -> np.ndarray:
        """The audio sent so far (silence included), as it went into the encoder."""
        return self._stream().sender.sent_samples()

    def packet_log(self) -> list[dict[str, Any]]:
        """Received RTP packets: sequence, timestamp, arrival, jitter_ms, lost ..."""
        return self._stream().receiver.log()

    def rtp_stats(self) -> dict[str, float | int]:
        """RFC 3550 receive statistics: received, expected, lost, jitter_ms ..."""
        stats = self._stream().receiver.stats
        return stats.as_dict() if stats is not None else {"received": 0}

    def received_digits(self, method: str = "rfc2833") -> str:
        """Digits received as RFC 2833 events, SIP INFO, or detected inband in the audio."""
        if method == "info":
            return "".join(self.info_digits)
        if method == "rfc2833":
            return "".join(self._stream().receiver.digits)
        if method == "inband":
            return detect_digits(self.recording(), self.sample_rate)
        raise CallError(f"DTMF method must be one of {DTMF_METHODS}, not {method!r}")
