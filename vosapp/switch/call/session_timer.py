"""Session timers (RFC 4028), per leg.

The vendor INVITE offers ``Session-Expires: SS_SIP_SESSION_TTL`` with ``Supported: timer``;
the vendor's 2xx decides the refresher (refresher=uac or none → the switch; uas → the vendor).
On the caller leg the caller's own Session-Expires is accepted with it as refresher
(``Require: timer`` in the 200); a timer-capable caller without one gets the switch as
refresher. The refresher side sends a re-INVITE with the SDP last sent on that leg every
interval / SS_SIP_SESSION_UPDATE_SEGMENT; the watching side hangs up when no refresh came
within interval - min(32, interval/3) (§10). An unanswered refresh (or 408/481) hangs up at
once with SS_SIP_SESSION_TIMEOUT_EARLY_HANGUP=On, else when the session expires. Legs without
session timers get a liveness re-INVITE every SS_SIP_NO_TIMER_REINVITE_INTERVAL seconds when
that is set (no answer → hang up). Each leg's timer is independent (a refresh on one leg is
not forwarded as such).

:func:`caller_session_timer` and :func:`vendor_session_timer` are pure; :class:`SessionTimers`
is the part of the call handler that runs the timers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vosapp.sip.dialog import DialogError
from vosapp.sip.transaction import DeliverResponse, TimedOut, TransportFailed
from vosapp.switch.call.state import CallState

if TYPE_CHECKING:
    from collections.abc import Sequence

    from vosapp.clock import TimerHandle
    from vosapp.net import Address
    from vosapp.params import Params
    from vosapp.sip import Request, Response, Via
    from vosapp.sip.dialog import Dialog
    from vosapp.switch.call.legs import Call
    from vosapp.switch.core import SwitchCore

SDP = "application/sdp"
#: RFC 3326 Reason on the BYE the switch sends when a session expires (RFC 4028 §10). SIP
#: cause 408: the refresh the session needed did not come in time, a request timeout in
#: SIP's own terms (RFC 4028 names no cause).
SESSION_EXPIRED_REASON = ("Reason", 'SIP;cause=408;text="Session expired"')
#: RFC 4028 §5: the smallest Session-Expires / Min-SE the switch accepts.
MIN_SE = 90


@dataclass
class LegTimer:
    """RFC 4028 on one leg: who refreshes, how often, and the timers."""

    interval: float  # Session-Expires (or the liveness interval)
    we_refresh: bool
    liveness: bool = False  # SS_SIP_NO_TIMER_REINVITE_INTERVAL: no Session-Expires sent
    refresh_handle: TimerHandle | None = None
    expiry_handle: TimerHandle | None = None
    last_ok: float = 0.0
    refreshes: int = 0

    def cancel(self) -> None:
        for handle in (self.refresh_handle, self.expiry_handle):
            if handle is not None:
                handle.cancel()
        self.refresh_handle = self.expiry_handle = None

    def header(self) -> str:
        """``Session-Expires`` for a 2xx on this leg (we are the UAS there)."""
        return f"{int(self.interval)};refresher={'uas' if self.we_refresh else 'uac'}"


def session_expires(value: str | None) -> tuple[int, str | None] | None:
    """``Session-Expires: 1800;refresher=uac`` → (1800, "uac"); None when absent/bad."""
    if not value:
        return None
    head, *params = value.split(";")
    try:
        delta = int(head.strip())
    except ValueError:
        return None
    refresher = None
    for param in params:
        name, _, val = param.partition("=")
        if name.strip().lower() == "refresher":
            refresher = val.strip().lower() or None
    return delta, refresher


def supports_timer(message: Request | Response) -> bool:
    values = message.headers.get_all("Supported") + message.headers.get_all("Require")
    return any(token.strip().lower() == "timer" for v in values for token in v.split(","))


def _liveness(params: Params) -> LegTimer | None:
    interval = params["SS_SIP_NO_TIMER_REINVITE_INTERVAL"]
    return LegTimer(interval=interval, we_refresh=True, liveness=True) if interval else None


def caller_session_timer(invite: Request, params: Params) -> LegTimer | None:
    """The caller leg's session timer (§9): the caller's Session-Expires when it supports
    timers (it refreshes, refresher=uac); a timer-capable caller without one gets ours
    (SS_SIP_SESSION_TTL, we refresh); otherwise the liveness re-INVITE, when set."""
    requested = session_expires(invite.headers.get("Session-Expires"))
    if supports_timer(invite):
        if requested is not None:
            return LegTimer(interval=max(MIN_SE, requested[0]), we_refresh=requested[1] == "uas")
        return LegTimer(interval=params["SS_SIP_SESSION_TTL"], we_refresh=True)
    return _liveness(params)


def vendor_session_timer(response: Response, params: Params) -> LegTimer | None:
    """The vendor leg's session timer from its 2xx (§7.2): refresher=uac (or none given) →
    we refresh; uas → the vendor does and we watch."""
    granted = session_expires(response.headers.get("Session-Expires"))
    if granted is not None:
        return LegTimer(interval=max(MIN_SE, granted[0]), we_refresh=granted[1] != "uas")
    return _liveness(params)


class SessionTimers:
    """The session-timer part of the call handler (:class:`~vosapp.switch.call.B2bua`)."""

    core: SwitchCore

    if TYPE_CHECKING:  # provided by the handler
        def event(self, call: Call, text: str) -> None: ...
        def hangup(self, call: Call, from_side: str | None, reason: str,
                   bye_headers: Sequence[tuple[str, str]] = ()) -> None: ...
        def _leg(self, call: Call, side: str) -> tuple[Dialog | None, Address, str]: ...
        def _via(self, transport: str) -> Via: ...
        def _contact(self, transport: str) -> str: ...

    def _start_session_timers(self, call: Call, timers: dict[str, LegTimer | None]) -> None:
        for side, timer in timers.items():
            if timer is not None:
                call.legs[side].session_timer = timer
                timer.last_ok = self.core.clock.now()
                self._arm_session_timer(call, side, timer)

    def _arm_session_timer(self, call: Call, side: str, timer: LegTimer) -> None:
        clock = self.core.clock
        timer.cancel()
        if timer.we_refresh:
            period = timer.interval if timer.liveness else (
                timer.interval / call.params["SS_SIP_SESSION_UPDATE_SEGMENT"])
            timer.refresh_handle = clock.call_later(
                period, lambda: self._send_refresh(call, side, timer))
            if not timer.liveness:
                # the session dies at last_ok + interval whatever happens to the refreshes
                remaining = timer.last_ok + timer.interval - clock.now()
                timer.expiry_handle = clock.call_later(
                    max(0.0, remaining), lambda: self._session_expired(call, side))
        else:
            # §10: the refresher's refresh must arrive before interval - min(32, interval/3)
            timer.expiry_handle = clock.call_later(
                timer.interval - min(32, timer.interval / 3),
                lambda: self._session_expired(call, side))

    def _peer_refreshed(self, call: Call, side: str) -> None:
        timer = call.legs[side].session_timer
        if timer is not None and not timer.we_refresh:
            timer.last_ok = self.core.clock.now()
            self._arm_session_timer(call, side, timer)

    def _session_expired(self, call: Call, side: str) -> None:
        if call.state is not CallState.CONFIRMED:
            return
        self.event(call, f"session timer expired on the {'caller' if side == 'a' else 'vendor'}"
                   " leg (RFC 4028 §10): hanging up")
        self.hangup(call, None, "session expired", [SESSION_EXPIRED_REASON])

    def _send_refresh(self, call: Call, side: str, timer: LegTimer) -> None:
        timer.refresh_handle = None
        if call.state is not CallState.CONFIRMED:
            return
        dialog, destination, transport = self._leg(call, side)
        if dialog is None:
            return
        leg = call.legs[side]
        if leg.offer_out or leg.offer_in:  # an offer is open on the leg: it refreshes too
            self._arm_session_timer(call, side, timer)
            return
        body = leg.sdp_sent
        headers: list[tuple[str, str]] = []
        if not timer.liveness:
            headers = [("Session-Expires", f"{int(timer.interval)};refresher=uac"),
                       ("Supported", "timer")]
        try:
            request = dialog.create_request("INVITE", via=self._via(transport),
                                            contact=self._contact(transport), body=body,
                                            content_type=SDP if body else None,
                                            headers=headers)
        except DialogError:
            return
        timer.refreshes += 1
        leg.offer_out = True  # §14.1: the endpoint's re-INVITE meanwhile gets 491

        def on_event(event: Any) -> None:
            if isinstance(event, DeliverResponse) and event.response.status < 200:
                return
            leg.offer_out = False
            if call.state is not CallState.CONFIRMED:
                return
            if isinstance(event, DeliverResponse):
                response = event.response
                if response.status < 300:
                    dialog.update_from_response(response)
                    ack = dialog.ack_for_2xx(request, via=self._via(transport))
                    self.core.send_stateless(ack, destination, transport)
                    timer.last_ok = self.core.clock.now()
                    granted = session_expires(response.headers.get("Session-Expires"))
                    if granted is not None and not timer.liveness:
                        timer.interval = max(MIN_SE, granted[0])
                    self._arm_session_timer(call, side, timer)
                elif response.status in (408, 481):  # §12.2.1.2: the dialog is gone
                    self._refresh_failed(call, side, timer, f"{response.status}")
                else:  # 491 glare, 488 …: the session lives; try again next period
                    self._arm_session_timer(call, side, timer)
            elif isinstance(event, (TimedOut, TransportFailed)):
                self._refresh_failed(call, side, timer, "no answer")

        self.core.send_request(request, destination, transport, on_event)

    def _refresh_failed(self, call: Call, side: str, timer: LegTimer, what: str) -> None:
        leg = "caller" if side == "a" else "vendor"
        if call.params["SS_SIP_SESSION_TIMEOUT_EARLY_HANGUP"] or timer.liveness:
            self.event(call, f"session refresh to the {leg} failed ({what}): hanging up "
                       "(SS_SIP_SESSION_TIMEOUT_EARLY_HANGUP=On)")
            self.hangup(call, None, f"session refresh failed ({what})")
            return
        # Off: keep the call until the session really expires (last_ok + interval)
        self.event(call, f"session refresh to the {leg} failed ({what}); waiting for the "
                   "session to expire (SS_SIP_SESSION_TIMEOUT_EARLY_HANGUP=Off)")
        if timer.refresh_handle is not None:
            timer.refresh_handle.cancel()
            timer.refresh_handle = None


__all__ = ["SESSION_EXPIRED_REASON", "LegTimer", "SessionTimers", "caller_session_timer", "session_expires",
           "supports_timer", "vendor_session_timer"]
