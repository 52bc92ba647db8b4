"""NAT keep-alive for registered terminals (SS_SIP_NAT_KEEP_ALIVE_PERIOD /
SS_SIP_NAT_KEEP_ALIVE_MESSAGE)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from vosapp.net import same_host
from vosapp.params import Params
from vosapp.switch.registrar.logic import Registrar
from vosapp.switch.registrar.model import Binding

if TYPE_CHECKING:
    from vosapp.switch.core import SwitchCore

log = logging.getLogger(__name__)


def behind_nat(binding: Binding) -> bool:
    """Whether ``binding`` belongs to a terminal behind NAT.

    The rule: the REGISTER's source address or port (``received_host``/``received_port``)
    differs from the host or port of the bound Contact (absent port = 5060, 5061 for sips;
    IP addresses compared as addresses, so ``::1`` equals ``[0:0::1]``; a Contact host that is
    a domain name never equals the source address, so it counts as NAT'd). A binding that
    came through a proxy (``Path``, RFC 3327) is skipped: its source is the edge proxy, which
    keeps its own NAT bindings alive (RFC 5626 §4.4).
    """
    if binding.path or not binding.received_host or not binding.received_port:
        return False
    from vosapp.sip import parse_uri

    try:
        uri = parse_uri(binding.contact)
        host = str(uri.host)
        port = uri.port or (5061 if str(uri.scheme).lower() == "sips" else 5060)
    except Exception:  # noqa: BLE001 - an unreadable stored contact: nothing to compare
        return True
    if int(port) != int(binding.received_port):
        return True
    return not same_host(host, binding.received_host)


class NatKeepAlive:
    """Keeps NAT mappings of registered terminals open (SS_SIP_NAT_KEEP_ALIVE_*).

    Every SS_SIP_NAT_KEEP_ALIVE_PERIOD seconds (core clock; 0 = off) each live binding that
    :func:`behind_nat` gets one keep-alive, sent to its received address and port over the
    transport it registered with:

    - SS_SIP_NAT_KEEP_ALIVE_MESSAGE = a text: over UDP the configured text bytes exactly as
      configured (no CRLF added) through :meth:`SwitchCore.send_raw`. Over TCP a bare text
      would corrupt the terminal's SIP stream framing, so a stream gets the RFC 5626 §4.4.1
      ``CRLFCRLF`` ping instead (every SIP stream parser skips it, RFC 3261 §7.5).
    - ``OPTIONS``: a real OPTIONS request (new Call-ID, Request-URI = the bound Contact) in a
      client transaction. Any final response proves the path works; a timeout or transport
      failure is only traced (``nat keep-alive: ...``) and the binding is kept (it expires on
      its own). While one OPTIONS to a binding is still unanswered, no second one is sent.

    A period change applies from the next tick (the tick already scheduled keeps its time);
    switching from 0 to a period schedules the first tick one period later, switching to 0
    cancels the pending tick. A failed send is traced by the core and does not stop the tick.
    """

    def __init__(self, core: SwitchCore, registrar: Registrar) -> None:
        self.core = core
        self.registrar = registrar
        self._timer: Any = None
        self._in_flight: set[tuple[str, str]] = set()
        #: Keep-alives sent (text payloads and OPTIONS requests), for the lab and tests.
        self.sent = 0

    def install(self) -> None:
        self.core.add_start_hook(self.start)
        self.core.add_stop_hook(self.stop)
        self.core.add_params_listener(self._params_changed)

    def start(self) -> None:
        self._schedule()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _period(self) -> int:
        return int(self.core.params["SS_SIP_NAT_KEEP_ALIVE_PERIOD"] or 0)

    def _schedule(self) -> None:
        self.stop()
        period = self._period()
        if period > 0 and self.core.running:
            self._timer = self.core.clock.call_later(period, self._tick)

    def _params_changed(self, params: Params, changes: dict[str, Any]) -> None:
        change = changes.get("SS_SIP_NAT_KEEP_ALIVE_PERIOD")
        if change is None:
            return
        old, new = change
        if not new:
            self.stop()
        elif not old or self._timer is None:
            self._schedule()
        # else: the pending tick fires as planned and schedules the next with the new period

    def _tick(self) -> None:
        self._timer = None
        try:
            if self.core.running and self._period() > 0:
                self.send_all()
        except Exception:
            log.exception("NAT keep-alive tick failed")
        finally:
            self._schedule()

    def send_all(self) -> int:
        """Send one keep-alive to every NAT'd live binding now; returns how many were sent."""
        message = str(self.core.params["SS_SIP_NAT_KEEP_ALIVE_MESSAGE"])
        count = 0
        for binding in self.registrar.all_bindings():
            if not behind_nat(binding):
                continue
            destination = (binding.received_host, int(binding.received_port))
            transport = (binding.transport or "udp").upper()
            try:
                if message == "OPTIONS":
                    if not self._send_options(binding, destination, transport):
                        continue
                else:
                    payload = message.encode("ascii") if transport == "UDP" else b"\r\n\r\n"
                    self.core.send_raw(payload, destination, transport,
                                       note=f"NAT keep-alive {binding.aor}")
            except Exception as exc:  # noqa: BLE001 - the core traced a send failure
                log.debug("NAT keep-alive to %s failed: %s", destination, exc)
                continue
            count += 1
        self.sent += count
        return count

    def _send_options(self, binding: Binding, destination: tuple[str, int],
                      transport: str) -> bool:
        from vosapp.sip import NameAddr, Request, new_tag, parse_uri, parse_vias
        from vosapp.sip.transaction import DeliverResponse, TimedOut, TransportFailed

        key = (binding.aor, binding.contact)
        if key in self._in_flight:
            return False
        host, port = self.core.local_address(transport)
        host = f"[{host}]" if ":" in host else host
        uri = parse_uri(binding.contact)
        request = Request.build(
            "OPTIONS", uri, via=parse_vias(self.core.new_via(transport))[0],
            from_=NameAddr(parse_uri(f"sip:keepalive@{host}:{port}"),
                           params={"tag": new_tag()}),
            to=NameAddr(uri), headers=[("User-Agent", "vosapp/0.1")])
        where = f"{binding.aor} at {destination[0]}:{destination[1]}/{transport}"
        trace = self.core.trace
        call_id = request.call_id

        def on_event(event: object) -> None:
            if isinstance(event, DeliverResponse):
                if event.response.status >= 200:
                    self._in_flight.discard(key)
                    if event.response.status >= 300:
                        trace.event(f"nat keep-alive: OPTIONS to {where} answered "
                                    f"{event.response.status} (reachable; binding kept)",
                                    call_id=call_id, dst=destination)
            elif isinstance(event, (TimedOut, TransportFailed)):
                self._in_flight.discard(key)
                why = (f"timed out (Timer {getattr(event.timer, 'value', event.timer)})"
                       if isinstance(event, TimedOut) else f"failed: {event.reason}")
                trace.event(f"nat keep-alive: OPTIONS to {where} {why}; binding kept",
                            call_id=call_id, dst=destination)

        self._in_flight.add(key)
        try:
            self.core.send_request(request, destination, transport, listener=on_event)
        except Exception:
            self._in_flight.discard(key)
            raise
        return True
