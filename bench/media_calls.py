"""Transcoded and relayed calls end to end through a real ``vosapp serve`` (issue #14, part 2).

Usage::

    PYTHONPATH=$PWD .venv/bin/python bench/media_calls.py                # both searches
    PYTHONPATH=$PWD .venv/bin/python bench/media_calls.py --mode transcode --steps 25,50
    PYTHONPATH=$PWD .venv/bin/python bench/media_calls.py --hold 3 --steps 10 --no-refine
    PYTHONPATH=$PWD .venv/bin/python bench/media_calls.py --media-bench  # + bench/media.py
    PYTHONPATH=$PWD .venv/bin/python bench/media_calls.py --lock /tmp/vosapp-bench.lock --media-bench

What runs. ``vosapp serve --udp-only --no-trace-store`` with a trusted mapping gateway for the
caller (127.0.0.1, Softswitch specified PCMA, codec conversion allowed, media proxy On) and a
routing gateway (prefix 00) to the callee (Softswitch specified G.729 with ``g729_mode = G729``
i.e. ``annexb=no`` in ``transcode`` mode; PCMA in ``relay`` mode; media proxy On). One switch
process per mode, kept running across that mode's steps. Per step two load-generator
processes (forked, one asyncio loop each):

* the caller: places N calls (INVITE offering PCMA only, ACK, BYE at the end) at
  ``--setup-rate`` calls/s, then sends PCMA and receives what the relay sends back;
* the callee: answers every INVITE 200 with only the codec the switch offered (G.729
  ``annexb=no`` / PCMA), sends that codec and receives.

The generators spend no CPU on codecs: a few seconds of speech-like audio are encoded once
(PCMA and bcg729 G.729) before the fork and each packet is a fresh 12-byte RTP header (own SSRC,
sequence, timestamp per stream) in front of a prepared payload. Every stream sends one packet
per 20 ms (50 packets/s per direction, streams spread over 20 one-millisecond slots); a few
UDP sockets per side carry all its calls (the receiver tells streams apart by the relay port
they come from).

Each step: calls set up, media on every call; once all are up a hold window of ``--hold``
seconds (default 30) in which every second the RFC 3550 interarrival jitter of every stream is
sampled (at the receivers, in ms with the 8 kHz clock; and the same estimator over the
senders' own send times against the RTP timestamps, i.e. the generator's pacing jitter); then
media stops, 0.5 s to drain, the calls hang up. A step passes when every call was set up and
hung up, no packet was lost (per stream: sent = received and no sequence gap at the receiver,
and no datagram dropped by a socket of the switch or of a generator, from /proc/net/udp), and
the relay-added jitter (p99 over all receiver samples minus p99 over the sender samples) is at
most 5 ms while the generators kept their own pacing (sender samples' p99 at most 5 ms).
Arrival times are the kernel's (SO_TIMESTAMPNS), so the generators' own scheduling does not
enter the receive jitter. The switch's CPU seconds over the hold (``/proc/PID/stat``) give
calls per CPU; the ``--lock FILE`` flag takes the bench lock for each step only.

The switch is pinned to the last CPU, the generators to the others (``--no-pin``): the
switch's core is then shared with other people's work only, never with its own load; its
run-queue wait (/proc/PID/schedstat) is reported per step. ``--realtime-priority N`` runs the
switch (and the generators) under SCHED_RR; with ``--generators-everywhere`` the generators
may also use the switch's CPU, one priority below it, so they get only what the switch leaves
(for relayed steps whose generators need more than the other CPUs, above ~400 on 2 CPUs).

The search steps through ``--steps`` (per mode) until one fails, then bisects once or twice
between the last pass and the first failure (``--no-refine`` to skip). A step that fails while
the switch waited for a CPU more than 10 % of the hold (its run-queue wait plus its CPU's steal
time: other people's work on its core, or the hypervisor's) is run once more, and the second
attempt decides.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import math
import multiprocessing as mp
import os
import random
import re
import shlex
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from vosapp.media import codecs
from vosapp.sip import (
    CSeq,
    NameAddr,
    Request,
    Response,
    SipParseError,
    SipUri,
    Via,
    make_response,
    new_branch,
    new_call_id,
    new_tag,
    parse,
)
from vosapp.sip.sdp import G729, PCMA, SessionDescription, answer, build_offer

PTIME_S = 0.020
SLOTS = 20  # one-millisecond pacing slots per 20 ms packet interval
SAMPLES_PER_PACKET = 160  # 20 ms at the 8 kHz RTP clock
CALLS_PER_SOCKET = 64
RELAY_JITTER_LIMIT_MS = 5.0
HISTOGRAM_MS = 1000
CONTENDED_SHARE = 0.10  # run-queue wait + steal per hold second past which a failed step reruns
PREFIX = "00"  # the routing gateway's prefix; the call's index follows it in the number
_HEADER = struct.Struct("!BBHII")
_TIMESPEC = struct.Struct("@qq")  # struct timespec of SCM_TIMESTAMPNS (64-bit Linux)
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux asm-generic value
_CODECS = {"PCMA": (PCMA, 8), "G729": (G729, 18)}


def speechlike_payloads(codec_name: str, packets: int = 250, seed: int = 7) -> list[bytes]:
    """``packets`` 20 ms payloads of a voiced, noisy, level-varying signal in ``codec_name``
    (a few seconds, looped by the senders). Encoded once, before the generators fork."""
    rng = np.random.default_rng(seed)
    n = packets * SAMPLES_PER_PACKET
    t = np.arange(n) / 8000
    pitch = 2 * np.pi * np.cumsum(120 + 30 * np.sin(2 * np.pi * 0.7 * t)) / 8000
    voiced = sum(np.sin(k * pitch) / k for k in range(1, 8))
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * 1.3 * t) ** 2
    audio = (6000 * envelope * voiced + 300 * rng.standard_normal(n)).astype(np.int16)
    codec = codecs.get(codec_name)
    return [bytes(codec.encode(audio[i * 160:(i + 1) * 160])) for i in range(packets)]


# -- the load generators (one process per side) ----------------------------------------------


class OutStream:
    """One RTP stream this side sends, with the RFC 3550 jitter of its own send times."""

    __slots__ = ("dest", "jitter", "payload_index", "pt", "sent", "seq", "sock", "ssrc",
                 "transit", "ts")

    def __init__(self, sock: socket.socket, dest: tuple[str, int], pt: int) -> None:
        self.sock, self.dest, self.pt = sock, dest, pt
        self.ssrc = random.getrandbits(32)
        self.seq = random.getrandbits(16)
        self.ts = random.getrandbits(32)
        self.payload_index = 0
        self.sent = 0
        self.jitter = 0.0  # RFC 3550 §6.4.1 J, in timestamp units
        self.transit: float | None = None


class InStream:
    """One RTP stream this side receives (keyed by its source: the relay leg's port)."""

    __slots__ = ("count", "first_ext", "jitter", "max_ext", "min_transit", "pts", "reordered",
                 "transit")

    def __init__(self, seq: int) -> None:
        self.count = 0
        self.first_ext = seq
        self.max_ext = seq - 1
        self.jitter = 0.0
        self.transit: float | None = None
        self.min_transit = float("inf")  # the fastest packet's: delay variation above it
        self.pts: set[int] = set()
        self.reordered = 0


@dataclass
class CallState:
    index: int
    call_id: str
    invite: Request | None = None
    final: Response | None = None
    answered_at: float | None = None
    bye_done: bool = False
    failed: str | None = None
    responded: bool = False
    sent_at: float = 0.0
    stream: OutStream | None = None
    relay: tuple[str, int] | None = None  # where the relay sends this call's RTP from
    offer_codecs: list[str] = field(default_factory=list)
    ok: Response | None = None  # callee: the 200 it sent (resent on a retransmitted INVITE)


class Sip(asyncio.DatagramProtocol):
    def __init__(self, side: Side) -> None:
        self.side = side
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            message = parse(data)
        except SipParseError:
            return
        self.side.sip_received(message, addr)


class Side:
    """A caller or callee load generator: SIP signalling and the RTP of all its calls."""

    def __init__(self, role: str, settings: dict[str, Any]) -> None:
        self.role = role
        self.settings = settings
        self.codec_name: str = settings["codec"]
        self.pt: int = _CODECS[self.codec_name][1]
        self.payloads: list[bytes] = settings["payloads"]
        self.switch: tuple[str, int] = settings["switch"]
        self.calls: dict[str, CallState] = {}
        self.by_index: dict[int, CallState] = {}
        self.slots: list[list[OutStream]] = [[] for _ in range(SLOTS)]
        self.in_streams: dict[tuple[str, int], InStream] = {}
        self.unknown_sources = 0
        self.sampling = False
        self.jitter_samples: list[float] = []  # receivers, ms
        self.send_jitter_samples: list[float] = []  # senders' own pacing, ms
        self.window_cpu = 0.0
        self.window_wall = 0.0
        self.sending = True
        self.established = 0
        self.failed = 0
        self.sip: Sip | None = None
        self.rtp_socks: list[socket.socket] = []
        self.events: asyncio.Queue[Any] = asyncio.Queue()
        self.late_slots = 0  # pacing slots handled more than 2 ms after their time
        # during the hold, packets per 1 ms bin: receive delay above the stream's fastest
        # packet, and how late the sender sent them
        self.delay_histogram = [0] * (HISTOGRAM_MS + 1)
        self.late_histogram = [0] * (HISTOGRAM_MS + 1)
        self.epoch = int(time.time())  # arrival times relative to it keep float precision

    # -- sockets ---------------------------------------------------------------------------

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        port = self.settings.get("sip_port", 0)
        _, self.sip = await loop.create_datagram_endpoint(
            lambda: Sip(self), local_addr=("127.0.0.1", port), reuse_port=True)
        for _ in range(max(1, math.ceil(self.settings["calls"] / CALLS_PER_SOCKET))):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 22)
            sock.bind(("127.0.0.1", 0))
            # the kernel stamps each datagram's arrival: the receive-side jitter is then the
            # path's, not this process's scheduling (it reads its sockets once per 2 ms)
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            sock.setblocking(False)
            self.rtp_socks.append(sock)

    def sip_send(self, message: Request | Response) -> None:
        assert self.sip is not None and self.sip.transport is not None
        self.sip.transport.sendto(bytes(message), self.switch)

    def rtp_sock(self, index: int) -> socket.socket:
        return self.rtp_socks[index % len(self.rtp_socks)]

    # -- RTP -------------------------------------------------------------------------------

    def drain(self) -> None:
        """Read everything queued on the RTP sockets; per packet: sequence and RFC 3550 jitter
        with the kernel's arrival time (SO_TIMESTAMPNS)."""
        streams, unpack, stamp = self.in_streams, _HEADER.unpack_from, _TIMESPEC.unpack
        delays = self.delay_histogram if self.sampling else None
        for sock in self.rtp_socks:
            recvmsg = sock.recvmsg
            while True:
                try:
                    data, ancillary, _flags, source = recvmsg(2048, 64)
                except (BlockingIOError, InterruptedError):
                    break
                seconds, nanoseconds = stamp(ancillary[0][2])
                arrival = (seconds - self.epoch) + nanoseconds * 1e-9
                _, marker_pt, seq, ts, _ssrc = unpack(data)
                stream = streams.get(source)
                if stream is None:
                    stream = streams[source] = InStream(seq)
                stream.count += 1
                stream.pts.add(marker_pt & 0x7F)
                delta = (seq - stream.max_ext) & 0xFFFF
                if delta < 0x8000:
                    stream.max_ext += delta
                else:
                    stream.reordered += 1
                # RFC 3550 §6.4.1 / A.8: J += (|D(i-1,i)| - J) / 16, in timestamp units
                transit = arrival * 8000.0 - ts
                if stream.transit is not None:
                    d = transit - stream.transit
                    if d < -2**31:  # the 32-bit timestamp wrapped
                        d += 2**32
                    elif d > 2**31:
                        d -= 2**32
                    stream.jitter += (abs(d) - stream.jitter) / 16.0
                stream.transit = transit
                stream.min_transit = min(stream.min_transit, transit)
                if delays is not None:  # 1 ms bins (8 timestamp units)
                    delays[min(HISTOGRAM_MS, int((transit - stream.min_transit) / 8.0))] += 1

    def start_stream(self, call: CallState, dest: tuple[str, int]) -> None:
        if call.stream is not None:
            return
        call.stream = OutStream(self.rtp_sock(call.index), dest, self.pt)
        call.stream.payload_index = random.randrange(len(self.payloads))
        self.slots[call.index % SLOTS].append(call.stream)

    async def pace(self) -> None:
        """Every millisecond one slot's streams send their next packet (each stream every
        20 ms); a late loop catches up slot by slot, which the send jitter then shows."""
        payloads, count = self.payloads, len(self.payloads)
        pack, clock = _HEADER.pack, time.monotonic
        start = clock()
        tick = 0
        while self.sending:
            due = start + tick * 0.001
            now = clock()
            if now < due:
                await asyncio.sleep(due - now)
                continue
            if now - due > 0.002:
                self.late_slots += 1
            if self.sampling:
                self.late_histogram[min(HISTOGRAM_MS, int((now - due) * 1000))] += len(
                    self.slots[tick % SLOTS])
            for stream in self.slots[tick % SLOTS]:
                index = stream.payload_index
                stream.payload_index = index + 1 if index + 1 < count else 0
                packet = pack(0x80, stream.pt, stream.seq, stream.ts, stream.ssrc) \
                    + payloads[index]
                try:
                    stream.sock.sendto(packet, stream.dest)
                except (BlockingIOError, InterruptedError):
                    pass  # not counted as sent: the receiver's count then shows no loss
                else:
                    stream.sent += 1
                    sent_at = clock()
                    transit = sent_at * 8000.0 - stream.ts
                    if stream.transit is not None:
                        stream.jitter += (abs(transit - stream.transit) - stream.jitter) / 16.0
                    stream.transit = transit
                stream.seq = (stream.seq + 1) & 0xFFFF
                stream.ts = (stream.ts + SAMPLES_PER_PACKET) & 0xFFFFFFFF
            tick += 1
            if tick % 2 == 0:
                self.drain()
            if tick % SLOTS == 0:
                await asyncio.sleep(0)  # let SIP in at least every 20 ms

    async def sample(self) -> None:
        """Once a second, every stream's current jitter (what an RTCP report would carry)."""
        while self.sampling:
            await asyncio.sleep(1.0)
            if not self.sampling:
                break
            self.jitter_samples += [s.jitter / 8.0 for s in self.in_streams.values()
                                    if s.transit is not None]
            self.send_jitter_samples += [c.stream.jitter / 8.0 for c in self.calls.values()
                                         if c.stream is not None and c.stream.transit is not None]

    # -- SIP -------------------------------------------------------------------------------

    def sip_received(self, message: Request | Response, source: tuple[str, int]) -> None:
        if self.role == "caller":
            self.caller_sip(message)
        else:
            self.callee_sip(message, source)

    def local_sip(self) -> tuple[str, int]:
        assert self.sip is not None and self.sip.transport is not None
        host, port = self.sip.transport.get_extra_info("sockname")[:2]
        return host, port

    # caller (UAC) --------------------------------------------------------------------------

    def invite(self, index: int) -> None:
        host, port = self.switch
        here, sip_port = self.local_sip()
        rtp_port = self.rtp_sock(index).getsockname()[1]
        offer = build_offer("127.0.0.1", rtp_port, [PCMA], telephone_event_pt=None)
        number = f"{PREFIX}{index:06d}"
        call = CallState(index, new_call_id("127.0.0.1"))
        call.invite = Request.build(
            "INVITE", SipUri(user=number, host=host, port=port),
            via=Via("UDP", here, sip_port, {"branch": new_branch(), "rport": None}),
            from_=NameAddr(SipUri(user="1001", host=here), None, {"tag": new_tag()}),
            to=NameAddr(SipUri(user=number, host=host)), call_id=call.call_id, cseq=1,
            contact=NameAddr(SipUri(user="1001", host=here, port=sip_port)),
            body=bytes(offer), content_type="application/sdp")
        call.sent_at = time.monotonic()
        self.calls[call.call_id] = call
        self.by_index[index] = call
        self.sip_send(call.invite)

    def ack(self, call: CallState, response: Response) -> None:
        assert call.invite is not None
        here, sip_port = self.local_sip()
        branch = new_branch() if response.status < 300 else call.invite.top_via.branch
        ack = Request.build("ACK", call.invite.uri,
                            via=Via("UDP", here, sip_port, {"branch": branch}),
                            from_=call.invite.from_, to=response.to, call_id=call.call_id,
                            cseq=CSeq(1, "ACK"))
        self.sip_send(ack)

    def bye(self, call: CallState) -> None:
        assert call.invite is not None and call.final is not None
        host, port = self.switch
        here, sip_port = self.local_sip()
        bye = Request.build("BYE", SipUri(host=host, port=port),
                            via=Via("UDP", here, sip_port, {"branch": new_branch(),
                                                            "rport": None}),
                            from_=call.invite.from_, to=call.final.to, call_id=call.call_id,
                            cseq=CSeq(2, "BYE"))
        self.sip_send(bye)

    def caller_sip(self, message: Request | Response) -> None:
        call = self.calls.get(message.call_id)
        if isinstance(message, Request):  # a BYE or anything else from the switch: 200
            if message.method != "ACK":
                self.sip_send(make_response(message, 200))
            return
        if call is None:
            return
        call.responded = True
        method = message.cseq.method
        if method == "INVITE":
            if message.status < 200:
                return
            self.ack(call, message)  # every final (a retransmitted 200 is ACKed again)
            if call.final is not None:
                return
            call.final = message
            if message.status >= 300:
                call.failed = f"{message.status} {message.reason}"
                self.failed += 1
                return
            sdp = SessionDescription.parse(message.body)
            media = sdp.first_audio()
            assert sdp.connection is not None and media is not None
            call.relay = (sdp.connection.address, media.port)
            call.offer_codecs = [f"{c.encoding}/{c.payload_type}" for c in media.codecs()]
            call.answered_at = time.monotonic()
            self.start_stream(call, call.relay)
            self.established += 1
        elif method == "BYE" and message.status >= 200:
            call.bye_done = True

    async def place_calls(self, rate: float, timeout: float) -> None:
        total = self.settings["calls"]
        start = time.monotonic()
        for index in range(total):
            due = start + index / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            self.invite(index)
        # retransmit an INVITE nobody answered (RFC 3261 Timer A, simplified), then give up
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pending = [c for c in self.calls.values() if c.final is None]
            if not pending:
                return
            now = time.monotonic()
            for call in pending:
                if not call.responded and now - call.sent_at > 1.0:
                    assert call.invite is not None
                    call.sent_at = now
                    self.sip_send(call.invite)
            await asyncio.sleep(0.05)
        for call in self.calls.values():
            if call.final is None:
                call.failed = "no final response"
                self.failed += 1

    async def hang_up(self, rate: float, timeout: float) -> int:
        calls = [c for c in self.calls.values() if c.final is not None and c.failed is None]
        start = time.monotonic()
        for k, call in enumerate(calls):
            delay = start + k / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            self.bye(call)
            call.sent_at = time.monotonic()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pending = [c for c in calls if not c.bye_done]
            if not pending:
                break
            now = time.monotonic()
            for call in pending:
                if now - call.sent_at > 1.0:
                    call.sent_at = now
                    self.bye(call)
            await asyncio.sleep(0.05)
        return sum(c.bye_done for c in calls)

    # callee (UAS) --------------------------------------------------------------------------

    def callee_sip(self, message: Request | Response, source: tuple[str, int]) -> None:
        if not isinstance(message, Request):
            return
        assert self.sip is not None and self.sip.transport is not None
        reply = self.sip.transport.sendto
        call = self.calls.get(message.call_id)
        if message.method == "INVITE":
            if call is not None and call.ok is not None:
                reply(bytes(call.ok), source)  # a retransmitted INVITE gets the same 200
                return
            user = message.uri.user if isinstance(message.uri, SipUri) else None
            index = int(user[-6:]) if user and user[-6:].isdigit() else len(self.calls)
            call = CallState(index, message.call_id)
            offer = SessionDescription.parse(message.body)
            media = offer.first_audio()
            assert media is not None
            call.offer_codecs = [f"{c.encoding}/{c.payload_type}"
                                 + (f" {c.fmtp}" if c.fmtp else "") for c in media.codecs()]
            assert offer.connection is not None
            call.relay = (offer.connection.address, media.port)
            rtp_port = self.rtp_sock(index).getsockname()[1]
            result = answer(offer, [_CODECS[self.codec_name][0]], address="127.0.0.1",
                            port=rtp_port, telephone_event=False, g729_annexb=False)
            ok = make_response(message, 200, to_tag=new_tag())
            here, sip_port = self.local_sip()
            ok.headers.add("Contact", f"<sip:callee@{here}:{sip_port}>")
            ok.headers.add("Content-Type", "application/sdp")
            ok.body = bytes(result.sdp)
            call.ok = ok
            self.calls[call.call_id] = call
            self.by_index[index] = call
            reply(bytes(ok), source)
        elif message.method == "ACK":
            if call is not None and call.relay is not None and call.stream is None:
                self.established += 1
                self.start_stream(call, call.relay)
        elif message.method == "BYE":
            reply(bytes(make_response(message, 200)), source)
            if call is not None:
                call.bye_done = True
        else:
            reply(bytes(make_response(message, 200)), source)

    # -- the step, driven by the controller's commands ----------------------------------------

    def report(self) -> dict[str, Any]:
        per_call = {}
        for call in self.calls.values():
            stream = self.in_streams.get(call.relay) if call.relay is not None else None
            per_call[call.index] = {
                "sent": call.stream.sent if call.stream is not None else 0,
                "received": stream.count if stream is not None else 0,
                "seq_lost": (stream.max_ext - stream.first_ext + 1 - stream.count)
                if stream is not None else 0,
                "reordered": stream.reordered if stream is not None else 0,
                "pts": sorted(stream.pts) if stream is not None else [],
                "failed": call.failed,
                "bye_done": call.bye_done,
                "offer": call.offer_codecs,
            }
        known = {c.relay for c in self.calls.values()}
        strangers = sum(s.count for src, s in self.in_streams.items() if src not in known)
        return {
            "calls": per_call,
            "established": self.established,
            "failed": self.failed,
            "stranger_packets": strangers,
            "jitter_ms": self.jitter_samples,
            "send_jitter_ms": self.send_jitter_samples,
            "cpu_s": self.window_cpu,
            "wall_s": self.window_wall,
            "late_slots": self.late_slots,
            "delay_histogram": self.delay_histogram,
            "late_histogram": self.late_histogram,
            "drops": udp_drops(),
            # how this generator ran: its CPUs, scheduling policy and real-time priority
            "scheduling": (sorted(os.sched_getaffinity(0)), os.sched_getscheduler(0),
                           os.sched_getparam(0).sched_priority),
        }

    async def serve(self, conn: Connection) -> None:
        await self.open()
        loop = asyncio.get_running_loop()
        commands: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
        loop.add_reader(conn.fileno(), lambda: commands.put_nowait(conn.recv()))
        pacer = asyncio.create_task(self.pace())
        sampler: asyncio.Task[None] | None = None
        conn.send(("ready", self.local_sip()))
        cpu0 = wall0 = 0.0
        while True:
            command, *args = await commands.get()
            if command == "call":
                rate, timeout = args
                await self.place_calls(rate, timeout)
                conn.send(("established", self.established, self.failed))
            elif command == "count":
                conn.send(("count", self.established))
            elif command == "window-start":
                self.sampling = True
                sampler = asyncio.create_task(self.sample())
                cpu0, wall0 = time.process_time(), time.monotonic()
                conn.send(("ok",))
            elif command == "window-end":
                self.sampling = False
                self.window_cpu = time.process_time() - cpu0
                self.window_wall = time.monotonic() - wall0
                if sampler is not None:
                    sampler.cancel()
                conn.send(("ok",))
            elif command == "stop-media":
                self.sending = False
                await pacer
                conn.send(("ok",))
            elif command == "hang-up":
                rate, timeout = args
                done = await self.hang_up(rate, timeout)
                conn.send(("hung-up", done))
            elif command == "report":
                self.drain()
                conn.send(("report", self.report()))
            elif command == "quit":
                break


def _generator(role: str, settings: dict[str, Any], conn: Connection) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the controller ends the step
    if settings.get("cpus"):
        os.sched_setaffinity(0, settings["cpus"])
    if settings.get("realtime_priority"):  # other people's work must not set our pacing
        os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(settings["realtime_priority"]))
    asyncio.run(Side(role, settings).serve(conn))


# -- the controller --------------------------------------------------------------------------


def udp_drops(pid: int | str = "self") -> int:
    """Datagrams the kernel dropped (receive buffer full) on the UDP sockets process ``pid``
    has open: the ``drops`` column of /proc/net/udp for the socket inodes in /proc/PID/fd.
    Read while the sockets are open (a relay's close with its call)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    drops = 0
    with open("/proc/net/udp") as table:
        next(table)
        for line in table:
            fields = line.split()
            if fields[9] in inodes:
                drops += int(fields[-1])
    return drops


def run_delay_seconds(pid: int) -> float:
    """Seconds process ``pid``'s main thread has waited on a run queue for a CPU so far
    (/proc/PID/schedstat): what a busy machine, not the process's own work, cost it."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9


def histogram_p99(counts: list[int]) -> float:
    """The 99th percentile (ms, upper bin edge) of a 1 ms histogram."""
    total = sum(counts)
    if not total:
        return float("nan")
    running = 0
    for ms, count in enumerate(counts):
        running += count
        if running >= 0.99 * total:
            return float(ms + 1)
    return float(len(counts))


def steal_seconds(cpus: set[int] | None) -> float:
    """CPU seconds the hypervisor took from ``cpus`` (all CPUs when None) so far: the steal
    column of /proc/stat (a virtual machine's vCPU not running at all)."""
    total = 0
    with open("/proc/stat") as stat:
        for line in stat:
            name, *fields = line.split()
            if not name.startswith("cpu"):
                break
            if (cpus is None and name == "cpu") or (cpus is not None and name[3:].isdigit()
                                                     and int(name[3:]) in cpus):
                total += int(fields[7])
    return total / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Switch:
    process: subprocess.Popen[str]
    port: int
    callee_port: int
    work: Path
    rtp_ports: tuple[int, int]
    command: str
    #: the switch's CPU and the generators' (None: not pinned)
    cpus: tuple[set[int], set[int]] | None = None
    #: SCHED_RR priority of the switch (None: the normal scheduler); the generators':
    #: :attr:`generator_priority`
    realtime_priority: int | None = None

    @property
    def generator_priority(self) -> int | None:
        """The generators' SCHED_RR priority: the switch's, or one below it when they share
        its CPU (so that the switch always preempts them there; None: the normal scheduler)."""
        if self.realtime_priority is None:
            return None
        if self.cpus is None or not self.cpus[0] & self.cpus[1]:
            return self.realtime_priority
        return self.realtime_priority - 1 or None


def pin_cpus(pid: int, generators_everywhere: bool = False) -> tuple[set[int], set[int]] | None:
    """Pin process ``pid`` (the switch) to the last CPU this process may use; the generators
    get the others, so the switch's core is shared with other people's work only, never with
    the load it is measured under. ``generators_everywhere``: the generators may also use the
    switch's CPU (what it leaves; only sensible with the switch at a higher real-time
    priority, which then preempts them). None with fewer than 2 CPUs."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None
    os.sched_setaffinity(pid, {cpus[-1]})
    return {cpus[-1]}, set(cpus if generators_everywhere else cpus[:-1])


def write_config(work: Path, mode: str, callee_port: int, rtp_ports: tuple[int, int],
                 extra: str = "") -> Path:
    """The switch's config for ``mode``, with ``extra`` (TOML tables) appended."""
    callee_codec = "G729" if mode == "transcode" else "PCMA"
    path = work / f"{mode}.toml"
    path.write_text(f"""[switch]
sip_listen = "127.0.0.1:5060"
data_dir = "{work / ('data-' + mode)}"
rtp_ports = "{rtp_ports[0]}-{rtp_ports[1]}"

[[mapping_gateway]]
name = "customer"
addresses = ["127.0.0.1/32"]
media_proxy = "On"
codec_mode = "Softswitch specified"
specified_codec = "PCMA"
allow_codec_conversion = true

[[routing_gateway]]
name = "vendor"
address = "127.0.0.1:{callee_port}"
prefixes = ["{PREFIX}"]
media_proxy = "On"
codec_mode = "Softswitch specified"
specified_codec = "{callee_codec}"
allow_codec_conversion = true
g729_mode = "G729"
""" + extra)
    return path


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start_switch(mode: str, work: Path, rtp_ports: tuple[int, int], *, pin: bool = False,
                 realtime_priority: int | None = None, launcher: list[str] | None = None,
                 env: dict[str, str] | None = None,
                 generators_everywhere: bool = False, extra_config: str = "",
                 trace_store_mb: int | None = None) -> Switch:
    """``vosapp serve`` for ``mode`` on a free port, once it printed its listening line
    (under SCHED_RR at ``realtime_priority``, if given). ``launcher``: the command before
    ``serve`` (default ``python -m vosapp.cli``; bench/gc_pauses.py passes its recording
    launcher); ``env``: the switch's environment (default: this one, this checkout first on
    PYTHONPATH); ``generators_everywhere``: see :func:`pin_cpus`; ``extra_config``: TOML
    tables added to the config (bench/media_with_calls.py's route to its SIPp callee);
    ``trace_store_mb``: store the SIP trace within that many MB, as ``vosapp serve`` does by
    default (256), instead of ``--no-trace-store``."""
    callee_port = free_udp_port()
    config = write_config(work, mode, callee_port, rtp_ports, extra_config)
    args = [*(launcher or [sys.executable, "-m", "vosapp.cli"]), "serve", "--listen",
            "127.0.0.1:0", "--udp-only",
            *(["--trace-store-mb", str(trace_store_mb)] if trace_store_mb
              else ["--no-trace-store"]),
            "--log-level", "WARNING", "--config", str(config)]
    if realtime_priority is not None:
        args += ["--realtime-priority", str(realtime_priority)]
    if env is None:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
    env = dict(env, PYTHONUNBUFFERED="1")
    log = open(work / f"serve-{mode}.log", "w")  # noqa: SIM115 - lives as long as the switch
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log, text=True, env=env,
                               cwd=work)
    assert process.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if "listening on" in line:
            port = int(line.split("listening on", 1)[1].split()[0].rsplit(":", 1)[1])
            switch = Switch(process, port, callee_port, work, rtp_ports, shlex.join(args[1:]),
                            realtime_priority=realtime_priority)
            if pin:
                switch.cpus = pin_cpus(process.pid, generators_everywhere)
            return switch
        if process.poll() is not None:
            break
    process.kill()
    raise RuntimeError(f"vosapp serve did not start: {(work / f'serve-{mode}.log').read_text()}")


def stop_switch(switch: Switch) -> None:
    if switch.process.poll() is None:
        switch.process.send_signal(signal.SIGTERM)
        try:
            switch.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            switch.process.kill()
            switch.process.wait()


def _expect(conn: Connection, what: str, timeout: float) -> tuple[Any, ...]:
    if not conn.poll(timeout):
        raise RuntimeError(f"load generator: no {what!r} within {timeout:.0f} s")
    message: tuple[Any, ...] = conn.recv()
    if message[0] != what:
        raise RuntimeError(f"load generator: expected {what!r}, got {message[0]!r}")
    return message


def p99(values: list[float]) -> float:
    return float(np.percentile(values, 99)) if values else float("nan")


def run_step(switch: Switch, mode: str, calls: int, hold: float, *, setup_rate: float = 100.0,
             payloads: dict[str, list[bytes]],
             during_hold: Callable[[], Callable[[], Any]] | None = None) -> dict[str, Any]:
    """One step: ``calls`` concurrent calls with media both ways, held ``hold`` seconds.
    ``during_hold``: called as the hold starts, returns what to call as it ends; that one's
    result is the step's ``"during_hold"`` (bench/media_with_calls.py's SIPp calls)."""
    callee_codec = "G729" if mode == "transcode" else "PCMA"
    target = ("127.0.0.1", switch.port)
    context = mp.get_context("fork")  # the prepared payloads are inherited, not pickled
    sides = {}
    for role, codec, extra in (("callee", callee_codec, {"sip_port": switch.callee_port}),
                               ("caller", "PCMA", {})):
        ours, theirs = context.Pipe()
        settings = {"codec": codec, "payloads": payloads[codec], "switch": target,
                    "calls": calls, "cpus": switch.cpus[1] if switch.cpus else None,
                    "realtime_priority": switch.generator_priority, **extra}
        process = context.Process(target=_generator, args=(role, settings, theirs),
                                  daemon=True)
        process.start()
        _expect(ours, "ready", 30)
        sides[role] = (process, ours)
    caller, callee = sides["caller"][1], sides["callee"][1]
    pid = switch.process.pid
    step_cpu0, step_wall0 = cpu_seconds(pid), time.monotonic()
    try:
        caller.send(("call", setup_rate, 10.0))
        _, established, failed = _expect(caller, "established", calls / setup_rate + 60)
        setup_s = time.monotonic() - step_wall0
        time.sleep(1.0)  # the last calls' first packets, the callee's ACKs
        for conn in (caller, callee):
            conn.send(("window-start",))
        for conn in (caller, callee):
            _expect(conn, "ok", 10)
        switch_cpus = switch.cpus[0] if switch.cpus else None
        cpu0, wall0, wait0 = cpu_seconds(pid), time.monotonic(), run_delay_seconds(pid)
        steal0 = steal_seconds(switch_cpus)
        finish = during_hold() if during_hold else None
        time.sleep(hold)
        cpu1, wall1, wait1 = cpu_seconds(pid), time.monotonic(), run_delay_seconds(pid)
        during = finish() if finish else None
        steal1 = steal_seconds(switch_cpus)
        for conn in (caller, callee):
            conn.send(("window-end",))
        for conn in (caller, callee):
            _expect(conn, "ok", 10)
        for conn in (caller, callee):
            conn.send(("stop-media",))
        for conn in (caller, callee):
            _expect(conn, "ok", 10)
        time.sleep(0.5)  # what is in flight arrives
        relay_drops = udp_drops(pid)
        reports = {}
        for role, conn in (("caller", caller), ("callee", callee)):
            conn.send(("report",))
            reports[role] = _expect(conn, "report", 30)[1]
        generator_drops = reports["caller"]["drops"] + reports["callee"]["drops"]
        caller.send(("hang-up", setup_rate * 2, 10.0))
        hung_up = _expect(caller, "hung-up", calls / setup_rate + 60)[1]
        step_cpu = cpu_seconds(pid) - step_cpu0
        for conn in (caller, callee):
            conn.send(("quit",))
    finally:
        for process, _conn in sides.values():
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
                process.join()

    up, down = reports["caller"], reports["callee"]
    forward_sent = sum(c["sent"] for c in up["calls"].values())  # caller -> callee
    backward_sent = sum(c["sent"] for c in down["calls"].values())
    forward_received = sum(c["received"] for c in down["calls"].values())
    backward_received = sum(c["received"] for c in up["calls"].values())
    # per call: sent by one side vs received by the other (the call's index joins the legs)
    lost_per_call = 0
    for index, sent in up["calls"].items():
        got = down["calls"].get(index)
        lost_per_call += max(0, sent["sent"] - (got["received"] if got else 0))
    for index, sent in down["calls"].items():
        got = up["calls"].get(index)
        lost_per_call += max(0, sent["sent"] - (got["received"] if got else 0))
    seq_lost = sum(max(0, c["seq_lost"]) for r in (up, down) for c in r["calls"].values())
    receive = up["jitter_ms"] + down["jitter_ms"]
    send = up["send_jitter_ms"] + down["send_jitter_ms"]
    caller_pts = sorted({pt for c in up["calls"].values() for pt in c["pts"]})
    callee_pts = sorted({pt for c in down["calls"].values() for pt in c["pts"]})
    offers = sorted({" ".join(c["offer"]) for c in down["calls"].values()})
    lost = lost_per_call + seq_lost + relay_drops
    relay_added = p99(receive) - p99(send)
    window_s = wall1 - wall0
    switch_cpu = cpu1 - cpu0
    why = []
    if established != calls or failed or down["established"] != calls or hung_up != calls:
        why.append("calls failed")
    if lost:
        why.append("loss")
    if generator_drops:
        why.append("generator drops")
    if not relay_added <= RELAY_JITTER_LIMIT_MS:
        why.append("jitter")
    generator_share = (up["cpu_s"] / max(up["wall_s"], 1e-9)
                       + down["cpu_s"] / max(down["wall_s"], 1e-9))
    generator_cpus: float = len(switch.cpus[1]) if switch.cpus else os.cpu_count() or 1
    if switch.cpus and switch.cpus[0] & switch.cpus[1]:  # --generators-everywhere: the
        generator_cpus -= switch_cpu / window_s  # switch's share of its CPU is not theirs
    # generators that cannot keep their own pacing cannot judge the switch's: such a step
    # does not count as clean either (the subtraction of the two p99s would flatter it)
    if p99(send) > RELAY_JITTER_LIMIT_MS or (why and generator_share > 0.85 * generator_cpus):
        why.append("generators busy")
    clean = not why
    return {
        "mode": mode, "calls": calls, "established": established, "failed": failed,
        "callee_established": down["established"], "hung_up": hung_up,
        "setup_s": setup_s, "window_s": window_s,
        "forward": (forward_sent, forward_received), "backward": (backward_sent,
                                                                  backward_received),
        "lost_per_call": lost_per_call, "seq_lost": seq_lost, "relay_drops": relay_drops,
        "generator_drops": generator_drops, "lost": lost,
        "reordered": sum(c["reordered"] for r in (up, down) for c in r["calls"].values()),
        "stranger_packets": up["stranger_packets"] + down["stranger_packets"],
        "rx_jitter_p99": p99(receive), "rx_jitter_p50": float(np.median(receive))
        if receive else float("nan"), "tx_jitter_p99": p99(send),
        "relay_jitter_p99": relay_added,
        "switch_cpu_s": switch_cpu, "switch_wait_share": (wait1 - wait0) / window_s,
        "steal_share": (steal1 - steal0) / window_s / (len(switch_cpus) if switch_cpus else
                                                        os.cpu_count() or 1),
        "delay_p99": histogram_p99([a + b for a, b in zip(up["delay_histogram"],
                                                          down["delay_histogram"], strict=True)]),
        "late_p99": histogram_p99([a + b for a, b in zip(up["late_histogram"],
                                                         down["late_histogram"], strict=True)]), "switch_cpu_share": switch_cpu / window_s,
        "calls_per_cpu": established / (switch_cpu / window_s) if switch_cpu > 0
        else float("inf"),
        "step_cpu_s": step_cpu,
        "generator_cpu_share": (up["cpu_s"] / max(up["wall_s"], 1e-9),
                                down["cpu_s"] / max(down["wall_s"], 1e-9)),
        "late_slots": (up["late_slots"], down["late_slots"]),
        "generator_scheduling": (up["scheduling"], down["scheduling"]),
        "failures": dict(Counter(c["failed"] for c in up["calls"].values() if c["failed"])),
        "caller_pts": caller_pts, "callee_pts": callee_pts, "callee_offers": offers,
        "load": os.getloadavg()[0], "clean": clean, "why": why, "during_hold": during,
    }


def step_line(r: dict[str, Any]) -> str:
    again = " (again)" if r.get("attempt", 1) > 1 else ""
    return (f"| {r['mode']} | {r['calls']}{again} | {r['established']}/{r['hung_up']} | "
            f"{r['forward'][0]}/{r['forward'][1]} | {r['backward'][0]}/{r['backward'][1]} | "
            f"{r['lost']} ({r['lost_per_call']}/{r['seq_lost']}/{r['relay_drops']}) | "
            f"{r['generator_drops']} | {r['rx_jitter_p99']:.2f} | {r['tx_jitter_p99']:.2f} | "
            f"{r['relay_jitter_p99']:.2f} | {r['delay_p99']:.0f} / {r['late_p99']:.0f} | "
            f"{r['switch_cpu_s']:.1f} / {r['window_s']:.0f} s = {r['switch_cpu_share']:.2f} | "
            f"{r['switch_wait_share']:.2f} / {r['steal_share']:.2f} | {r['calls_per_cpu']:.0f} | "
            f"{r['generator_cpu_share'][0]:.2f}/{r['generator_cpu_share'][1]:.2f} | "
            f"{r['load']:.2f} | {'yes' if r['clean'] else '**no**: ' + ', '.join(r['why'])} |")


STEP_HEADER = (
    "| mode | calls | set up/hung up | caller→callee sent/received | callee→caller "
    "sent/received | lost (per call/seq/switch socket) | generator drops | rx jitter p99 ms | "
    "sender pacing jitter p99 ms | relay-added p99 ms | delay above fastest / sender late, "
    "p99 ms | switch CPU s / hold = share | switch run-queue wait / its CPU's steal, share | "
    "calls per CPU | "
    "generator CPU share (caller/callee) | load | clean |\n"
    "|---|---:|---|---|---|---|---:|---:|---:|---:|---|---|---:|---:|---|---:|---|")


@contextmanager
def locked(path: str | None) -> Iterator[None]:
    """An exclusive flock on ``path`` (the bench lock) for the duration; nothing when None."""
    if path is None:
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def search(switch: Switch, mode: str, steps: list[int], hold: float, refine: int,
           setup_rate: float, payloads: dict[str, list[bytes]], lock: str | None = None,
           log: Any = sys.stderr) -> tuple[int, list[dict[str, Any]]]:
    """Step up through ``steps`` until one is not clean, then bisect ``refine`` times."""
    results: list[dict[str, Any]] = []

    def step(calls: int) -> bool:
        for attempt in range(2):
            with locked(lock):
                result = run_step(switch, mode, calls, hold, setup_rate=setup_rate,
                                  payloads=payloads)
            result["attempt"] = attempt + 1
            results.append(result)
            print(step_line(result), file=log, flush=True)
            if result["failures"]:
                print(f"  failed calls: {result['failures']}", file=log, flush=True)
            # a step that failed while the switch waited for its CPU (other people's work on
            # its core, or the hypervisor's steal) runs once more; the second attempt decides
            contended = result["switch_wait_share"] + result["steal_share"]
            if result["clean"] or contended <= CONTENDED_SHARE:
                break
        return bool(result["clean"])

    best, first_bad = 0, None
    for calls in steps:
        if step(calls):
            best = calls
        else:
            first_bad = calls
            break
    for _ in range(refine):
        if first_bad is None or first_bad - best <= max(5, best // 20):
            break
        middle = (best + first_bad) // 2
        if step(middle):
            best = middle
        else:
            first_bad = middle
    return best, results


def media_figures(markdown: str) -> tuple[float | None, float | None, float | None]:
    """From bench/media.py part 1's markdown: its "calls with p99 tick <= 20 ms" (lockstep
    audio), its median cost per call-tick (µs) and its calls within 20 ms at p99 with
    staggered audio (each call at its own point of the audio, as the generators here send
    it); None for a figure it does not show."""
    def number(pattern: str) -> float | None:
        match = re.search(pattern, markdown)
        return float(match.group(1)) if match else None

    return (number(r"\| calls with p99 tick[^|]*\|\s*\**(\d+)"),
            number(r"cost per call-tick \(median\)\s*\|\s*([\d.]+)"),
            number(r"\| staggered audio[^|]*\|\s*\**(\d+)"))


def media_bench(part: str) -> tuple[str, float | None, float | None, float | None]:
    """Run bench/media.py ``--part`` (same interpreter, same checkout): its markdown and
    :func:`media_figures` of it."""
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "media.py"), "--part", part],
                          capture_output=True, text=True, cwd=ROOT, check=True)
    return (done.stdout, *media_figures(done.stdout))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=["transcode", "relay", "both"], default="both")
    parser.add_argument("--hold", type=float, default=30.0,
                        help="seconds each step holds all its calls with media (default 30)")
    parser.add_argument("--steps", help="comma-separated call counts for every mode "
                        "(default: --transcode-steps, --relay-steps)")
    parser.add_argument("--transcode-steps", default="25,50,75,100,150,200,250,300")
    parser.add_argument("--relay-steps", default="50,100,150,200,250,300,400,500,600")
    parser.add_argument("--refine", type=int, default=2,
                        help="bisection steps after the first unclean step (default 2)")
    parser.add_argument("--no-refine", dest="refine", action="store_const", const=0)
    parser.add_argument("--setup-rate", type=float, default=50.0,
                        help="calls per second while setting up a step (default 50)")
    parser.add_argument("--rtp-ports", default="41000-44999",
                        help="the switch's [switch] rtp_ports (default 41000-44999)")
    parser.add_argument("--no-pin", dest="pin", action="store_false",
                        help="do not pin the switch to the last CPU and the load generators "
                        "to the others (pinned by default)")
    parser.add_argument("--generators-everywhere", action="store_true",
                        help="let the load generators use the switch's CPU too (what the "
                        "switch leaves of it); with --realtime-priority N they run at N-1, so "
                        "the switch preempts them there. For steps whose generators need more "
                        "than the other CPUs (relayed calls above ~400 on 2 CPUs)")
    parser.add_argument("--lock", metavar="FILE",
                        help="hold an flock on FILE during each step and the media.py run "
                        "(released in between, so other benches can take turns), e.g. "
                        "/tmp/vosapp-bench.lock")
    parser.add_argument("--realtime-priority", type=int, metavar="N",
                        help="run the switch with `vosapp serve --realtime-priority N` and the "
                        "load generators under SCHED_RR at N too (needs root): other work on "
                        "their CPUs no longer delays them")
    parser.add_argument("--media-bench", action="store_true",
                        help="also run bench/media.py --part 1 (in-process transcoding "
                        "capacity) in this run and report the ratio")
    args = parser.parse_args()
    low, high = (int(p) for p in args.rtp_ports.split("-"))
    modes = ["transcode", "relay"] if args.mode == "both" else [args.mode]
    steps = {m: [int(s) for s in (args.steps or getattr(args, f"{m}_steps")).split(",")]
             for m in modes}
    command = "PYTHONPATH=$PWD " + shlex.join(
        [os.path.relpath(sys.executable, ROOT) if sys.executable.startswith(str(ROOT))
         else sys.executable, "bench/media_calls.py", *sys.argv[1:]])
    started = time.monotonic()
    payloads = {name: speechlike_payloads(name) for name in ("PCMA", "G729")}
    best: dict[str, int] = {}
    results: list[dict[str, Any]] = []
    commands = {}
    cpus: tuple[set[int], set[int]] | None = None
    config_text = ""
    print(f"uptime at start: {os.getloadavg()}", file=sys.stderr)
    print(STEP_HEADER, file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(prefix="media-calls-") as tmp:
        for mode in modes:
            switch = start_switch(mode, Path(tmp), (low, high), pin=args.pin,
                                  realtime_priority=args.realtime_priority,
                                  generators_everywhere=args.generators_everywhere)
            commands[mode] = switch.command
            if mode == "transcode" or not config_text:
                config_text = (Path(tmp) / f"{mode}.toml").read_text().replace(tmp, "WORK")
            cpus = switch.cpus
            try:
                best[mode], found = search(switch, mode, steps[mode], args.hold, args.refine,
                                           args.setup_rate, payloads, args.lock)
                results += found
            finally:
                stop_switch(switch)
    media_text, media_calls, media_tick_us, media_staggered = "", None, None, None
    if args.media_bench:
        with locked(args.lock):
            media_text, media_calls, media_tick_us, media_staggered = media_bench("1")

    pinning = ("switch pinned to CPU " + ",".join(map(str, cpus[0])) + ", load generators to "
               "CPU " + ",".join(map(str, cpus[1]))) if cpus else "nothing pinned"
    if args.realtime_priority is not None \
            and switch.generator_priority != args.realtime_priority:
        pinning += (f", switch under SCHED_RR at {args.realtime_priority}, load generators "
                    + (f"at {switch.generator_priority}" if switch.generator_priority
                       else "under the normal scheduler"))
    elif args.realtime_priority is not None:
        pinning += f", switch and load generators under SCHED_RR at {args.realtime_priority}"
    lines = [
        "### Calls through `vosapp serve` with RTP both ways (bench/media_calls.py)",
        "",
        (f"Command: `{command}` ({time.monotonic() - started:.0f} s; {os.cpu_count()} CPUs; "
         f"load average at the end {' '.join(f'{v:.2f}' for v in os.getloadavg())})."),
        "",
        (f"Each step: N calls PCMA (caller) ↔ vosapp ↔ G.729 annexb=no (callee) for "
         f"`transcode`, PCMA ↔ PCMA for `relay`; media proxy On; 50 packets/s per direction "
         f"per call (20 ms); held {args.hold:.0f} s after set-up; the switch process is kept "
         f"running across one mode's steps (one process per mode); "
         f"{pinning}; calls set up at {args.setup_rate:.0f}/s. Clean = every call set "
         f"up and hung up, 0 lost (per call sent = received, no sequence gap, no datagram "
         f"dropped by a switch or generator socket), relay-added jitter (receiver RFC "
         f"3550 jitter p99 − sender pacing jitter p99, samples every second of every "
         f"stream) ≤ {RELAY_JITTER_LIMIT_MS:.0f} ms, and the generators kept their own "
         f"pacing (sender jitter p99 ≤ {RELAY_JITTER_LIMIT_MS:.0f} ms). Calls per CPU = N "
         f"/ (switch CPU seconds per hold second). A step that failed while the switch "
         f"waited for its CPU (run queue + steal) more than {CONTENDED_SHARE:.0%} of the "
         f"hold is run again, marked (again); the second attempt decides."),
        "",
        STEP_HEADER,
        *(step_line(r) for r in results),
        "",
    ]
    for mode in modes:
        firsts = [r for r in results if r["mode"] == mode]
        if firsts:
            check = firsts[0]
            lines.append(
                f"- `{mode}` codec check (step {check['calls']}): payload types received by "
                f"the caller {check['caller_pts']}, by the callee {check['callee_pts']}; the "
                f"callee was offered {check['callee_offers']}.")
    lines += ["", ("Switch configuration (`transcode`; `relay` has `specified_codec = \"PCMA\"` on "
              "the routing gateway), run as `vosapp serve --listen 127.0.0.1:0 --udp-only "
              "--no-trace-store --log-level WARNING --config FILE`:"), "", "```toml",
              config_text.strip(), "```", ""]
    targets = {"transcode": 200, "relay": 500}
    lines += [("| mode | largest clean N | calls per CPU at it | switch CPU per call-tick "
              "(2 packets in, 2 out) | target |"), "|---|---:|---:|---:|---|"]
    tick_us: dict[str, float] = {}
    for mode in modes:
        at = [r for r in results if r["mode"] == mode and r["calls"] == best[mode]
              and r["clean"]]
        per_cpu = f"{at[-1]['calls_per_cpu']:.0f}" if at else "-"
        if at:
            tick_us[mode] = PTIME_S / at[-1]["calls_per_cpu"] * 1e6
        per_tick = f"{tick_us[mode]:.0f} µs" if mode in tick_us else "-"
        lines.append(f"| {mode} | **{best[mode]}** | {per_cpu} | {per_tick} | "
                     f"≥ {targets[mode]} on one core: "
                     f"{'met' if best[mode] >= targets[mode] else 'not met'} |")
    if args.media_bench:
        lines += ["", ("In-process transcoding capacity in the same run (`bench/media.py "
                  "--part 1`, its own heading and command line dropped):"), "",
                  media_text.replace("## Media\n", "").split("\n", 2)[-1].strip(), ""]
        if media_calls and "transcode" in best:
            lines.append(f"Ratio end-to-end transcoded calls / in-process calls with p99 tick "
                         f"≤ 20 ms: {best['transcode']} / {media_calls:.0f} = "
                         f"**{best['transcode'] / media_calls:.2f}** (target ≥ 0.7).")
        if media_staggered and "transcode" in best:
            lines.append(f"The same against the in-process calls with staggered audio (each "
                         f"call at its own point of the audio, as the generators send it): "
                         f"{best['transcode']} / {media_staggered:.0f} = "
                         f"**{best['transcode'] / media_staggered:.2f}**.")
        if media_tick_us and "transcode" in tick_us:
            lines.append(f"Per CPU: the in-process transcoders' median cost per call-tick / "
                         f"the switch's CPU per transcoded call-tick end to end = "
                         f"{media_tick_us:.0f} / {tick_us['transcode']:.0f} µs = "
                         f"**{media_tick_us / tick_us['transcode']:.2f}** (the end-to-end "
                         f"capacity of a whole core, without the jitter criterion, relative to "
                         f"the in-process one).")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
