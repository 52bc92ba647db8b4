"""The asyncio runtime: the sans-IO :class:`SwitchCore` on real UDP/TCP sockets.

``Switch`` works inside any running event loop (a Jupyter kernel, ``vosapp serve``)::

    switch = Switch.from_config("data/lab.toml")
    await switch.start()          # binds [switch] sip_listen (port 0 = any free port)
    print(switch.sip_address)     # ('127.0.0.1', 50123)
    await switch.stop()           # stop hooks (bounded wait), then transports close

The features (registrar, outbound registration, calls) are wired by
:func:`vosapp.switch.app.build_switch_app` into ``switch.app``: all of them unless
``features=[...]`` names some (a function there is run on the core as well).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from vosapp.config import SwitchConfig
from vosapp.io.call_media import backend_for
from vosapp.io.clock import LoopClock
from vosapp.io.descriptors import reserve_descriptors
from vosapp.io.group_commit import GroupCommit
from vosapp.io.tcp import TcpTransport
from vosapp.io.udp import UdpTransport
from vosapp.io.udp_wire import MAX_DATAGRAM
from vosapp.io.wal_checkpoint import WalCheckpointer
from vosapp.media.transcoder import load_resampler
from vosapp.net import Address
from vosapp.switch.app import FEATURES, Feature, build_switch_app
from vosapp.switch.core import SwitchCore
from vosapp.trace import DEFAULT_MAX_PERSISTED_BYTES, Trace

if TYPE_CHECKING:
    from vosapp.config import Config
    from vosapp.params import Params
    from vosapp.store import Store

log = logging.getLogger(__name__)

#: Descriptors beside the relay sockets and TCP connections: the SIP sockets, the store and
#: its log, the control channel, the trace, the event loop's own.
BASE_DESCRIPTORS = 64

class Switch:
    """A SwitchCore plus UDP and TCP listeners, a store, a trace and the real clock."""

    def __init__(self, *, config: Config | None = None, params: Params | None = None,
                 host: str | None = None, port: int | None = None,
                 data_dir: str | Path | None = None, transports: Sequence[str] = ("UDP", "TCP"),
                 trace_capacity: int = 10_000, persist_trace: bool = True,
                 trace_max_bytes: int = DEFAULT_MAX_PERSISTED_BYTES,
                 stop_timeout: float = 5.0, max_message_size: int = MAX_DATAGRAM,
                 max_tcp_connections: int = 1024, tcp_idle_timeout: float = 300.0,
                 tcp_max_per_source: int = 32, tcp_message_timeout: float = 20.0,
                 features: Sequence[Feature] | None = None,
                 param_poll_interval: float = 1.0) -> None:
        self.config = config
        self.host = host or (config.switch.sip_host if config is not None else "127.0.0.1")
        self.port = port if port is not None else (
            config.switch.sip_port if config is not None else 5060)
        if data_dir is None and config is not None:
            data_dir = config.switch.data_dir
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.transports = tuple(t.upper() for t in transports)
        unknown = set(self.transports) - {"UDP", "TCP"}
        if unknown:
            raise ValueError(f"unsupported transports {sorted(unknown)}; use UDP and/or TCP")
        self.stop_timeout = stop_timeout
        self.max_message_size = max_message_size
        self.max_tcp_connections = max_tcp_connections
        self.tcp_idle_timeout = tcp_idle_timeout
        self.tcp_max_per_source = tcp_max_per_source
        self.tcp_message_timeout = tcp_message_timeout
        self.clock = LoopClock()
        self.store: Store | None = None
        if self.data_dir is not None:
            from vosapp.store import Store

            self.store = Store.open(self.data_dir)
        if params is None:
            params = config.parameters if config is not None else None
        #: What the store's values are layered on: defaults < config [parameters] (or the
        #: ``params`` given) < stored values -- the same stacking as the CLI.
        self._base_params = params
        self.param_poll_interval = param_poll_interval
        self._param_marker = 0
        if self.store is not None:
            self._param_marker = self.store.param_change_marker()  # before loading: no gap
            params = self.store.load_params(params)
        self.trace = Trace(trace_capacity, clock=self.clock,
                           store=self.store if persist_trace else None,
                           max_persisted_bytes=trace_max_bytes)
        self.core = SwitchCore(clock=self.clock, params=params, config=config, trace=self.trace,
                               store=self.store, sender=self._send)
        # The B2BUA's media proxy: sockets are io's business, so the runtime provides them.
        self.app = build_switch_app(self.core, FEATURES if features is None else features,
                                    media_factory=backend_for)
        self.udp: UdpTransport | None = None
        self.tcp: TcpTransport | None = None
        self._flush_task: asyncio.Task[None] | None = None
        self._params_task: asyncio.Task[None] | None = None
        self._delay_task: asyncio.Task[None] | None = None
        #: WAL checkpoints on a thread, not in the loop's group commits (while started)
        self.checkpointer: WalCheckpointer | None = None
        self.started = False

    @classmethod
    def from_config(cls, path: str | Path, *, data_dir: str | Path | None = None,
                    **options: Any) -> Switch:
        from vosapp.config import load_config

        config = load_config(path)
        return cls(config=config, data_dir=data_dir, **options)

    @property
    def sip_address(self) -> Address:
        """The bound (host, port); the real port when the config asked for port 0."""
        if self.udp is not None:
            return self.udp.local
        if self.tcp is not None:
            return self.tcp.local
        raise RuntimeError("the switch is not started")

    @property
    def params(self) -> Params:
        return self.core.params

    # -- lifecycle -------------------------------------------------------------------
    async def start(self) -> None:
        if self.started:
            raise RuntimeError("the switch is already started")
        loop = asyncio.get_running_loop()
        self.clock.bind(loop)
        # The descriptor table grown now, not by the socket of some call (vosapp.io.descriptors)
        reserve_descriptors(self.descriptors_needed())
        if self.config is not None and self.config.converts_codecs:
            # now, not in the first G.722 call's packet path (vosapp.media.transcoder)
            load_resampler()
        await self._bind()
        if self.store is not None:
            self.checkpointer = WalCheckpointer(self.store)
            self.checkpointer.start()
        self.started = True
        self._flush_task = loop.create_task(self._flush_trace())
        if self.udp is not None:
            self._delay_task = loop.create_task(self._measure_receive_delay(self.udp))
        if self.store is not None and self.param_poll_interval and self.param_poll_interval > 0:
            self._params_task = loop.create_task(self._watch_params(self.param_poll_interval))
        self.core.start()
        log.info("listening on %s:%d (%s)", *self.sip_address, ", ".join(self.transports))

    def descriptors_needed(self) -> int:
        """What the switch may hold open: a socket per port of ``[switch] rtp_ports`` (the
        media proxy's legs; without a config, as many ephemeral ones as the default range
        has), the TCP connections it accepts, and :data:`BASE_DESCRIPTORS` for the rest."""
        switch = self.config.switch if self.config is not None else SwitchConfig
        rtp = switch.rtp_port_max - switch.rtp_port_min + 1
        return rtp + self.max_tcp_connections + BASE_DESCRIPTORS

    async def _bind(self) -> None:
        # UDP and TCP share one port number; with port 0 the OS picks it for UDP and TCP
        # follows (retrying in the rare case another socket holds that TCP port).
        for _attempt in range(20):
            port = self.port
            if "UDP" in self.transports:
                self.udp = await UdpTransport.bind(self.core, self.host, port,
                                                   self.max_message_size)
                port = self.udp.local[1]
                self.core.local_addresses["UDP"] = self.udp.local
                if self.store is not None:
                    self.udp.batch = GroupCommit(self.store, self.udp.wire, self.trace)
            if "TCP" in self.transports:
                self.tcp = TcpTransport(self.core, max_message_size=self.max_message_size,
                                        max_connections=self.max_tcp_connections,
                                        idle_timeout=self.tcp_idle_timeout,
                                        max_per_source=self.tcp_max_per_source,
                                        message_timeout=self.tcp_message_timeout)
                try:
                    await self.tcp.listen(self.host, port)
                except OSError:
                    if self.port != 0 or self.udp is None:
                        raise
                    self.udp.close()
                    self.udp = None
                    continue
                self.core.local_addresses["TCP"] = self.tcp.local
            if self.udp is not None:
                # A UDP datagram to an address goes out through the wire's compiled send;
                # everything else through _send (vosapp/io/udp_wire.py).
                self.udp.wire.other = self._send
                self.core.attach_sender(self.udp.wire.send)
            return
        raise OSError(f"could not bind UDP and TCP on one free port on {self.host}")

    async def stop(self) -> None:
        """Run the stop hooks, wait (at most ``stop_timeout``) for their work, then close."""
        if not self.started:
            return
        self.core.begin_stop()
        deadline = self.clock.now() + self.stop_timeout
        while not self.core.stop_done() and self.clock.now() < deadline:
            await asyncio.sleep(0.01)
        if not self.core.stop_done():
            self.trace.event(f"stop: graceful work unfinished after {self.stop_timeout} s")
        self.clock.cancel_all()
        if self._flush_task is not None:
            self._flush_task.cancel()
        if self._params_task is not None:
            self._params_task.cancel()
        if self._delay_task is not None:
            self._delay_task.cancel()
        if self.udp is not None:
            self.udp.close()
        if self.tcp is not None:
            await self.tcp.close()
        self.trace.flush()
        if self.checkpointer is not None:
            self.checkpointer.stop()  # first: the store's close then checkpoints as always
            self.checkpointer = None
        if self.store is not None:
            self.store.close()
        self.started = False

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _flush_trace(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self.trace.flush()

    async def _measure_receive_delay(self, udp: UdpTransport, period: float = 0.1) -> None:
        """The overload gate's delay signal (vosapp.switch.limits): every ``period`` a probe
        datagram carrying its send time goes to our own UDP socket. It queues behind every
        datagram waiting in the kernel and behind a busy or CPU-starved loop; when it is read,
        ``now - sent`` is the receive delay. A probe the kernel dropped (buffer full) counts
        with its age until a later one arrives, and a tick that runs late counts its lateness
        (a loop blocked between two probes). Reported smoothed (EWMA, ~0.5 s), so one stall
        of a second does not shed calls but a backlog that lasts does."""
        loop = asyncio.get_running_loop()
        host, port = udp.local[:2]
        target_host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)
        family = socket.AF_INET6 if ":" in target_host else socket.AF_INET
        probe = socket.socket(family, socket.SOCK_DGRAM)
        probe.bind((target_host, 0))
        probe.setblocking(False)
        unanswered: deque[float] = deque(maxlen=600)  # a minute of lost probes
        measured = smoothed = 0.0

        def arrived(data: bytes) -> None:
            nonlocal measured
            try:
                sent = float(data)
            except ValueError:
                return
            while unanswered and unanswered[0] <= sent:
                unanswered.popleft()
            measured = loop.time() - sent

        udp.probe_source = probe.getsockname()[:2]
        udp.on_probe = arrived
        due = loop.time()
        try:
            while True:
                now = loop.time()
                waiting = now - unanswered[0] if unanswered else 0.0
                smoothed += 0.2 * (max(measured, waiting, now - due) - smoothed)
                self.core.overload.report_receive_delay(smoothed)
                try:
                    probe.sendto(repr(now).encode(), (target_host, port))
                    unanswered.append(now)
                except OSError:
                    pass  # the probe socket's own buffer is full: the next tick retries
                due = now + period
                await asyncio.sleep(period)
        finally:
            udp.on_probe = None
            probe.close()

    async def _watch_params(self, interval: float) -> None:
        # `vosapp params set` in a shell, a notebook's store, another process: they all
        # bump the store's change marker; one cheap query a second notices.
        while True:
            await asyncio.sleep(interval)
            try:
                self.reload_params()
            except Exception:
                log.exception("parameter reload failed")

    def reload_params(self) -> dict[str, tuple[object, object]]:
        """Apply parameter changes made through the store by any process (new sessions only).

        Cheap when nothing changed (one query of :meth:`Store.param_change_marker`); the
        runtime calls it every ``param_poll_interval`` seconds. Returns ``{name: (old,
        new)}``. A stored value this vosapp cannot use is reported (trace and log) and the
        running values are kept.
        """
        from vosapp.store import StoreError

        store = self.store
        if store is None:
            return {}
        marker = store.param_change_marker()
        if marker == self._param_marker:
            return {}
        self._param_marker = marker
        try:
            params = store.load_params(self._base_params)
        except StoreError as exc:
            log.error("parameters not reloaded: %s", exc)
            self.trace.event(f"parameters not reloaded: {exc}")
            return {}
        return self.core.update_params(params, by="store")

    def _send(self, data: bytes, destination: Address, transport: str) -> None:
        """The switch core's sender for what the UDP wire does not send itself (TCP, a host
        name to resolve, a closed socket), and all of it before the sockets are bound."""
        batch = self.udp.batch if self.udp is not None else None
        if batch is not None:  # vosapp.io.group_commit: no message before its write commits
            if transport == "UDP":
                if batch.hold(data, destination):
                    return
            else:
                batch.release()
        if transport == "UDP" and self.udp is not None:
            self.udp.send(data, destination)
        elif transport == "TCP" and self.tcp is not None:
            self.tcp.send(data, destination)
        else:
            raise OSError(f"no {transport} transport is open")
