"""asyncio adapter of the media relay: two UDP sockets around a sans-IO
:class:`~vosapp.media.relay.RelayCore`.

Everything a media proxy decides (modes, latching, SDP direction, telephone events and DTMF
conversion, statistics) lives in :mod:`vosapp.media.relay`; this module only owns the sockets
and the event loop: it drains each leg's socket when it is readable, hands what it drained to
the core in one call with the arrival time (:meth:`RelayCore.receive_batch`), sends what the
core returns from the leg it names, and arms one timer for the core's next deadline (paced
RFC 4733 packets).

Arrival time: one clock reading per wake-up, shared by the datagrams drained in it. They were
all waiting in the socket buffer at that moment; reading the clock per datagram would only add
the relay's own processing time to the jitter statistics.

The hub (the optional C extension :mod:`vosapp.io._rtphub`, Linux): one epoll fd per event
loop, registered as the loop's one reader for every relay socket. While the core's short path
holds for a leg (:meth:`RelayCore.short_route`: latched IPv4 source, no transcoding or DTMF
conversion, both directions open), the hub forwards that leg's media datagrams in C. Their
statistics: when the relay runs on the hub's clock (the default), the hub holds the leg's
RFC 3550 state and accounts packets in order itself, handing it back before the core sees a
datagram of that leg and on :meth:`RtpRelay.stats`; otherwise it hands Python their headers
once per socket and poll (:meth:`RelayCore.account_forwarded`). Any other datagram, and every
datagram of a leg without a route, goes through the core as without the hub. After every call
into the core the relay sets its legs' routes again. Without the extension, or with
``VOSAPP_RTP_HUB=0``, each socket is its own reader.

Transcoded legs (G.711 <-> G.729 at the same ptime): the route carries the transcoder's C lane
(:attr:`ShortRoute.lane`) and the hub holds the transcoder's per-packet state
(:meth:`RelayCore.lane_state`); it converts and sends the datagrams the transcoder would have
put through its lane, in order, and hands that state back (:meth:`RelayCore.resume_lane`)
before the core sees a datagram of that leg, before a timer or SIP INFO reaches the core, and
on :meth:`RtpRelay.stats`: loss concealment, resynchronisation, DTMF and anything unusual run
in Python on the state as it would have been.

Ports: :class:`PortAllocator` hands out even ports from a configured range (RFC 3550 §11: RTP
on an even port, RTCP on the next odd one).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable, Mapping
from typing import Any, Self

from vosapp.clock import Clock, TimerHandle
from vosapp.io.clock import LoopClock
from vosapp.media.dtmf.convert import DtmfConverter, SendInfo
from vosapp.media.relay import (
    Burst,
    EventRoute,
    Leg,
    LegConfig,
    LegStats,
    RelayCore,
    Send,
    ShortRoute,
    Side,
    TelephoneEventHandler,
    rewrite_telephone_event,
)
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
    "running_relays",
]

log = logging.getLogger(__name__)

try:  # the native forwarding path (setup.py builds it with a compiler and Python's headers)
    from vosapp.io import _rtphub
except ImportError:  # not built: each relay socket is its own reader
    _rtphub = None  # type: ignore[assignment]


def hub_enabled() -> bool:
    """Whether new relays forward through the hub: the extension is built and the
    environment does not say ``VOSAPP_RTP_HUB=0``."""
    return _rtphub is not None and os.environ.get("VOSAPP_RTP_HUB", "1") != "0"


class _LoopHub:
    """The hub of one event loop: its epoll fd is the loop's one reader for the relay
    sockets added to it; closed when the last one goes.

    Paced polls (issue #14 part 2): with many calls up, datagrams arrive every few tens of
    microseconds and a loop wake-up per one or two of them costs more than the hub's work on
    them. While the hub holds at least ``_PACED_FROM`` sockets, a poll that found sockets
    ready is followed by the next one ``_POLL_GAP`` later, on a timer with the reader off in
    between, so that one poll reads, converts and sends what arrived meanwhile; a poll that
    finds nothing ready puts the reader back. A datagram waits at most ``_POLL_GAP`` (and the
    loop's timer slack) for its poll, far below the 5 ms the relay may add to the jitter."""

    _POLL_GAP = 0.001  # s
    _PACED_FROM = 40  # sockets: 20 calls, some 2000 datagrams/s
    # A socket ready in polls this close together has datagrams queued: the hub drains it
    # (RtpRelay._BACKLOG_GAP, widened to the paced polls' spacing)
    _HUB_BACKLOG_GAP = 2.5 * _POLL_GAP

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        assert _rtphub is not None
        self.loop = loop
        self.hub = _rtphub.Hub(max(RtpRelay._BACKLOG_GAP, self._HUB_BACKLOG_GAP),
                               RtpRelay._DRAIN_BATCH)
        # the arrival time of a poll; a relay on this clock lets the hub own its statistics
        self.clock: Clock = LoopClock(loop)
        self._paced: asyncio.TimerHandle | None = None  # the next paced poll
        self._closed = False
        loop.add_reader(self.hub.fileno(), self._ready)

    def add(self, sock: socket.socket, relay: RtpRelay, side: Side) -> None:
        self.hub.add(sock.fileno(), (relay, side))

    def remove(self, sock: socket.socket) -> None:
        self.hub.remove(sock.fileno())
        if not len(self.hub):
            if self._paced is not None:
                self._paced.cancel()
                self._paced = None
            elif not self.loop.is_closed():
                self.loop.remove_reader(self.hub.fileno())
            self.hub.close()
            self._closed = True
            if _hubs.get(self.loop) is self:
                del _hubs[self.loop]

    def _ready(self) -> None:
        self._poll()
        if not self._closed and self.hub.last_ready and len(self.hub) >= self._PACED_FROM:
            self.loop.remove_reader(self.hub.fileno())
            self._paced = self.loop.call_at(self.loop.time() + self._POLL_GAP, self._paced_poll)

    def _paced_poll(self) -> None:
        assert self._paced is not None
        planned = self._paced.when()
        self._paced = None
        self._poll()
        if self._closed:
            return
        if self.hub.last_ready and len(self.hub) >= self._PACED_FROM:
            # the next one a gap after this one was planned (the timer fires late by up to
            # a millisecond's rounding), at once if the loop fell behind
            self._paced = self.loop.call_at(max(planned + self._POLL_GAP, self.loop.time()),
                                            self._paced_poll)
        else:
            self.loop.add_reader(self.hub.fileno(), self._ready)

    def _poll(self) -> None:
        now = self.clock.now()
        for (relay, side), headers, rx_bytes, *sent, other in self.hub.poll(now):
            # One call's failure must not cost the calls after it in this poll their reports
            # (with a reader per socket, asyncio isolated them the same way: it logs and goes on).
            try:
                if headers is None:  # no route: the socket is readable, the core decides
                    relay._drain(side)
                else:
                    relay._forwarded(side, headers, rx_bytes, sent, other, now)
            except Exception:
                log.exception("RTP relay leg %s: handling its datagrams failed", side)


_hubs: dict[asyncio.AbstractEventLoop, _LoopHub] = {}


def _loop_hub(loop: asyncio.AbstractEventLoop) -> _LoopHub:
    for closed in [other for other in _hubs if other.is_closed()]:  # relays never closed
        _hubs.pop(closed).hub.close()
    hub = _hubs.get(loop)
    if hub is None:
        hub = _hubs[loop] = _LoopHub(loop)
    return hub


_running = 0  # relays started (start_on) and not closed yet, in this process


def running_relays() -> int:
    """How many :class:`RtpRelay` of this process forward media now (started, not closed):
    while one does, anything that stops the event loop delays its packets."""
    return _running


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


class RtpRelay:
    """A running media relay for one call: a :class:`RelayCore` on two UDP sockets.
    Create with :meth:`open` (or build, then :meth:`start_on` bound sockets).

    Parameters are those of :class:`~vosapp.media.relay.RelayCore`, plus ``clock``: the
    real-time clock (default: a :class:`~vosapp.io.clock.LoopClock` on the running loop).

    Attributes
    ----------
    core : RelayCore
    a, b : Leg
        The core's two legs (``a.local_address`` is what goes into the SDP towards endpoint A).
    mode : "relay" or "transcode"
    dtmf_log : deque of (side, action)
        The core's last DTMF actions (see :class:`RelayCore`).
    """

    _DRAIN_BATCH = 256  # datagrams per wake-up before yielding to the event loop
    _BACKLOG_GAP = 0.001  # s; media packets of one leg are 10-60 ms apart (RFC 3551 §4.5)

    def __init__(
        self,
        a: LegConfig,
        b: LegConfig,
        *,
        telephone_event_handler: TelephoneEventHandler | None = None,
        dtmf: Mapping[Side, DtmfConverter] | None = None,
        on_info_send: Callable[[Side, SendInfo], None] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.core = RelayCore(a, b, telephone_event_handler=telephone_event_handler, dtmf=dtmf,
                              on_info_send=on_info_send)
        self.a, self.b = self.core.a, self.core.b
        self.mode = self.core.mode
        self.dtmf_log = self.core.dtmf_log
        self._clock = clock
        self._socks: dict[Side, socket.socket] = {}
        self._outputs: dict[Side, tuple[socket.socket, LegStats]] = {}  # per send: one lookup
        self._ports: PortAllocator | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: TimerHandle | None = None
        self._timer_at: float | None = None
        self._woken: dict[Side, float] = {}  # the last wake-up of each leg's socket (_drain)
        self._hub: _LoopHub | None = None
        self._routes: dict[Side, ShortRoute | None] = {"a": None, "b": None}  # set in the hub
        self._owned: set[Side] = set()  # legs whose statistics the hub holds (own_stats)
        self._lanes: set[Side] = set()  # legs whose transcoder state the hub holds (own_lane)
        self._running = False  # counted in running_relays()

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
        """Bind both legs' sockets on ``host`` (from ``ports``, else ephemeral) and start
        relaying; the other parameters are :class:`RelayCore`'s."""
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
        if not self._running:
            global _running
            _running += 1
            self._running = True
        if hub_enabled():
            self._hub = _loop_hub(loop)
            if self._clock is None:
                self._clock = self._hub.clock
        if self._clock is None:
            self._clock = LoopClock(loop)
        for leg in (self.a, self.b):
            sock = sockets[leg.side]
            # room for bursts: a relay must not lose packets to a small receive buffer
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            sock.setblocking(False)
            self._socks[leg.side] = sock
            self._outputs[leg.side] = (sock, leg.stats)
            name = sock.getsockname()
            leg.local_address = (name[0], name[1])
            if self._hub is not None:
                self._hub.add(sock, self, leg.side)
                continue
            # Not a DatagramProtocol: asyncio reads one datagram per readiness event there.
            # Draining the socket in one callback costs a fraction per packet at high rates.
            loop.add_reader(sock.fileno(), self._drain, leg.side)
        self._sync_routes()

    # -- control (the core's) -------------------------------------------------------------

    def leg(self, side: Side) -> Leg:
        """Leg ``"a"`` or ``"b"``."""
        return self.core.leg(side)

    def relatch(self, side: Side, remote: Address | None = None) -> None:
        """Forget the latched peer of a leg (re-INVITE); optionally set a new SDP address."""
        self.core.relatch(side, remote)
        self._sync_routes()

    def set_direction(self, side: Side, direction: str) -> None:
        """A new SDP direction for a leg's endpoint (see :meth:`RelayCore.set_direction`)."""
        self.core.set_direction(side, direction)
        self._sync_routes()

    def stats(self) -> dict[str, Any]:
        """Per-leg counters, the mode, and the transcoders' counters when transcoding.

        With the hub, the legs' :class:`LegStats` are current after this call (the hub may
        hold the counts of the packets it forwarded until then)."""
        if self._owned or self._lanes:
            self._take_back("a")
            self._take_back("b")
            out = self.core.stats()
            self._sync_routes()  # the hub takes them on again
            return out
        return self.core.stats()

    def info_received(self, side: Side, content_type: str, body: bytes | str) -> None:
        """A SIP INFO digit arrived from ``side`` (see :meth:`RelayCore.info_received`)."""
        self._take_back("a")  # tones and events change the transcoders' state and numbering
        self._take_back("b")
        self._transmit(self.core.info_received(side, content_type, body, self._now()))
        self._arm()
        self._sync_routes()

    def close(self) -> None:
        """Close both sockets, return their ports and cancel the pending timer."""
        if self._running:
            global _running
            _running -= 1
            self._running = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = self._timer_at = None
        for side in ("a", "b"):
            self._take_back(side)
        for side, sock in list(self._socks.items()):
            if self._hub is not None:
                self._hub.remove(sock)  # before closing: the fd number may be reused at once
            elif self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(sock.fileno())
            sock.close()
            del self._socks[side], self._outputs[side]
            if self._ports is not None:
                self._ports.release(self.core.leg(side).local_address[1])
        # The B2BUA's SIP INFO callback refers back to the call that owns this relay: a
        # reference cycle the cyclic GC would have to find (a pause of the event loop, and
        # of every relay in it). Dropped here, the call's objects die by reference count.
        self.core.on_info_send = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    # -- I/O ------------------------------------------------------------------------------

    def _now(self) -> float:
        return self._clock.now() if self._clock is not None else 0.0

    def _drain(self, side: Side) -> None:
        sock = self._socks.get(side)
        if sock is None:
            return
        self._take_back(side)  # the core accounts what comes now
        recvfrom = sock.recvfrom
        now = self._now()
        # What a wake-up drained goes to the core in one call and out in one send loop after
        # it: per datagram, a receive and a send, and the core's short path for the common
        # case (RelayCore.receive_batch). It delays a datagram by at most the batch's
        # processing (well under a millisecond for a full batch); with a few datagrams per
        # wake-up, by nothing.
        # One read per wake-up unless the leg is backlogged: epoll is level-triggered, so a
        # datagram left in the socket wakes us again, and at 50 packets/s per leg a second
        # read would almost always fail (EAGAIN: a system call and an exception, ~2.6 us a
        # wake-up). A leg woken again within _BACKLOG_GAP of its last wake-up has datagrams
        # queued: drain up to _DRAIN_BATCH of them.
        woken = self._woken
        reads = self._DRAIN_BATCH if now - woken.get(side, -1.0) < self._BACKLOG_GAP else 1
        woken[side] = now
        batch: list[tuple[bytes, Address]] = []
        received = batch.append
        for _ in range(reads):
            try:
                received(recvfrom(2048))
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:  # e.g. ICMP port unreachable reported on the socket
                log.debug("RTP leg %s receive error: %s", side, exc)
                continue
        if batch:
            self._transmit_bursts(self.core.receive_batch(side, batch, now))
            if self._hub is not None:
                self._sync_routes()
        if self.core.next_deadline() != self._timer_at:
            self._arm()

    def _forwarded(self, side: Side, headers: list[tuple[int, int, int, int]], rx_bytes: int,
                   sent: list[int], other: tuple[bytes, Address] | None,
                   polled: float) -> None:
        """The hub's report of one turn on leg ``side``'s socket: it forwarded the datagrams
        of ``headers`` (``rx_bytes`` in all; ``sent`` = packets, bytes, dropped, errors of
        their sends from the other leg's socket), then stopped at ``other`` (if not None),
        which goes through the core after them, in arrival order. ``polled``: the hub's
        clock at the poll (one reading per wake-up, as in :meth:`_drain`)."""
        now = polled if self._hub is not None and self._clock is self._hub.clock else self._now()
        if headers:
            self.core.account_forwarded(side, headers, rx_bytes, now)
            self._count_hub_sends(side, *sent)
        if other is not None and side in self._socks:
            self._take_back(side)  # the core accounts and transcodes what comes now
            self._transmit_bursts(self.core.receive_batch(side, [other], now))
            self._sync_routes()
            if self.core.next_deadline() != self._timer_at:
                self._arm()

    def _sync_routes(self) -> None:
        """Give the hub the core's short path of each leg as it is now (after any call into
        the core: latching, direction and peers may have changed), and the leg's statistics
        with it when the relay's clock is the hub's."""
        hub = self._hub
        if hub is None:
            return
        for side in ("a", "b"):
            sock = self._socks.get(side)
            if sock is None:
                continue
            fd = sock.fileno()
            route = self.core.short_route(side)
            if route != self._routes[side]:
                self._take_back(side)
                self._routes[side] = route
                if not self._set_route(sock, route):
                    hub.hub.clear_route(fd)
                    self._routes[side] = None
            if (self._routes[side] is not None and side not in self._owned
                    and self._clock is hub.clock):
                stream = self.core.leg(side).stats.stream
                state = stream.in_order_state()
                if state is not None:
                    hub.hub.own_stats(fd, *state, stream.clock_rate)
                    self._owned.add(side)
            route = self._routes[side]
            if route is not None and route.lane is not None and side not in self._lanes:
                lane_state = self.core.lane_state(side)
                if lane_state is not None:
                    hub.hub.own_lane(fd, *lane_state)
                    self._lanes.add(side)

    def _set_route(self, sock: socket.socket, route: ShortRoute | None) -> bool:
        assert self._hub is not None
        out = self._socks.get(route.out_side) if route is not None else None
        if (route is None or out is None or sock.family != socket.AF_INET
                or out.family != socket.AF_INET):  # the hub speaks IPv4 only
            return False
        (source_host, source_port), (peer_host, peer_port) = route.source, route.peer
        rewrite = -1 if route.rewrite_pt is None else route.rewrite_pt
        try:
            self._hub.hub.set_route(sock.fileno(), source_host, source_port, route.media_pt,
                                    rewrite, out.fileno(), peer_host, peer_port, route.lane)
        except ValueError:  # not an IPv4 literal (e.g. a host name from the SDP): the core forwards it
            return False
        return True

    def _take_back(self, side: Side) -> None:
        """Take back what the hub holds of a leg: its transcoder state, then its statistics."""
        if side in self._lanes:
            self._lanes.discard(side)
            assert self._hub is not None
            taken = self._hub.hub.take_lane(self._socks[side].fileno())
            if taken is not None:
                self.core.resume_lane(side, *taken)
        self._take_stats(side)

    def _take_stats(self, side: Side) -> None:
        """Take back a leg's statistics from the hub (own_stats). What it forwarded since
        counts as received on this leg and as sent on the other (its socket sent them)."""
        if side not in self._owned:
            return
        self._owned.discard(side)
        assert self._hub is not None
        taken = self._hub.hub.take_stats(self._socks[side].fileno())
        if taken is None:
            return
        (rx_packets, rx_bytes, received, next_seq, cycles, last_timestamp, last_arrival, jitter,
         tx_packets, tx_bytes, tx_dropped, tx_errors) = taken
        stats = self.core.leg(side).stats
        stats.rx_packets += rx_packets
        stats.rx_bytes += rx_bytes
        stats.stream.resume_in_order(
            received, (next_seq, cycles, last_timestamp, last_arrival, jitter))
        self._count_hub_sends(side, tx_packets, tx_bytes, tx_dropped, tx_errors)

    def _count_hub_sends(self, side: Side, packets: int, size: int, dropped: int,
                         errors: int) -> None:
        """What the hub sent of leg ``side``'s datagrams, from the other leg's socket: counted
        on that leg, as :meth:`_transmit_bursts` counts its own sends."""
        stats = self.core.leg("b" if side == "a" else "a").stats
        stats.tx_packets += packets
        stats.tx_bytes += size
        stats.tx_dropped += dropped
        stats.tx_errors += errors

    def _transmit_bursts(self, bursts: list[Burst]) -> None:
        outputs = self._outputs
        for side, peer, datagrams in bursts:
            output = outputs.get(side)
            if output is None:  # closed
                continue
            sock, stats = output
            sendto = sock.sendto
            failed = failed_bytes = 0  # counted as they happen; the sent ones once per burst
            for datagram in datagrams:
                try:
                    sendto(datagram, peer)
                except (BlockingIOError, InterruptedError):
                    stats.tx_dropped += 1  # send buffer full: drop rather than queue stale audio
                    failed += 1
                    failed_bytes += len(datagram)
                except OSError as exc:
                    stats.tx_errors += 1
                    failed += 1
                    failed_bytes += len(datagram)
                    log.debug("RTP leg %s send error to %s: %s", side, peer, exc)
            stats.tx_packets += len(datagrams) - failed
            stats.tx_bytes += sum(map(len, datagrams)) - failed_bytes

    def _transmit(self, sends: list[Send]) -> None:
        """Single datagrams (events, control answers): each as a burst of one."""
        self._transmit_bursts([(side, peer, [datagram]) for side, peer, datagram in sends])

    def _arm(self) -> None:
        """One timer, at the core's next deadline."""
        deadline = self.core.next_deadline()
        if deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at = None, deadline
        if deadline is not None and self._clock is not None and self._socks:
            self._timer = self._clock.call_at(deadline, self._expire)

    def _expire(self) -> None:
        self._timer = self._timer_at = None
        self._take_back("a")  # paced events take the next numbers of a transcoded leg
        self._take_back("b")
        self._transmit(self.core.expire(self._now()))
        self._arm()
        self._sync_routes()
