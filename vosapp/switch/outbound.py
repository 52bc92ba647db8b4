"""Outbound registration: vosapp as a UA registering routing gateways with carriers
(docs/behaviour.md §3).

Theory of operation
-------------------
Every routing gateway with a ``register`` table gets one :class:`OutboundRegistration`, a
sans-IO state machine on the core's clock. It sends REGISTER through
:meth:`SwitchCore.send_request` to the gateway's ``sip_proxy`` and reacts to what comes back::

    idle ──start──▶ registering ──2xx──▶ registered ──(refresh timer)──▶ refreshing ──2xx──┐
                      │   ▲                   ▲                              │              │
                      │   └─retry timer─ failed ◀──403/5xx/timeout/garbage───┘              │
                      └────────────────────▶ failed            registered ◀────────────────┘
    graceful stop: registered/refreshing/failed ──▶ unregistering ──final/timeout──▶ unregistered
                   SS_SIP_USER_AGENT_SEND_UNREGISTER=Off (or nothing bound) ──▶ stopped

Choices (the manual is silent; RFC 3261 §10.2 and a careful carrier-grade UA decide):

- **Identity.** One Call-ID and From tag per registration for the life of the process; the
  CSeq grows by one per REGISTER (§10.2.4: refreshes and the unregister reuse the Call-ID).
  AOR ``sip:<auth_user>@<proxy host>``; Request-URI ``sip:<proxy host>[:port]`` (§10.2).
- **Contact** ``<sip:<auth_user>@<host_name | local address>:<signaling_port | local port>>``
  plus ``+sip.instance="<urn:uuid:…>"`` (RFC 5626 §4.1), a UUID created once per data
  directory and kept in the store. Two vosapp instances registering the same account therefore
  send different Contacts (host/port differ, and the instance UUID always differs), and the
  carrier keeps two bindings instead of one overwriting the other (VOS3000 article, problem 4).
  ``signaling_port`` is what the Contact *advertises* (like ``host_name``, e.g. behind a port
  forward); this runtime sends and listens on the switch's one SIP port, and says so in the
  trace when the two differ.
- **Expiry.** ``register_period = "Auto negotiation"`` or SS_SIP_USER_AGENT_EXPIRE = Auto: the
  REGISTER carries no Expires at all, which RFC 3261 §10.2.1.1 defines as "server, choose";
  otherwise ``Expires: <SS_SIP_USER_AGENT_EXPIRE>``. Either way the binding lasts what the 200
  grants (our Contact's ``expires`` parameter, else the Expires header, else what we asked /
  :data:`FALLBACK_EXPIRES`), §10.2.4.
- **Refresh** at ``granted - min(granted / 2, 64*T1 + 8 s)`` (default T1: 40 s before expiry;
  half-way for short grants), so a refresh whose retransmissions all get lost still times out
  (Timer F = 64*T1) before the binding lapses; never sooner than :data:`MIN_REFRESH_DELAY`.
- **Authentication.** 401 → ``Authorization``, 407 → ``Proxy-Authorization`` (RFC 3261
  §22.2/§22.3) with :class:`~vosapp.sip.digest.DigestClient`. Refreshes and the unregister send
  the cached credentials up front (next nc on the last nonce, §22.3) and answer any new
  challenge. Per REGISTER at most one ordinary challenge is answered, plus stale=true ones (at
  most :data:`MAX_CHALLENGES` in all); a second non-stale challenge means "credentials
  rejected" and counts as a failure.
- **Failures** (never a tight loop): 403 and any other final ≥ 300 → ``failed``, retry after
  SS_SIP_USER_AGENT_RETRY_DELAY; 500/503 with Retry-After → after ``max(retry delay,
  Retry-After)`` (capped at :data:`MAX_RETRY_AFTER`); 423 → re-register at once with the
  Min-Expires asked for (once per REGISTER, only upwards, at most :data:`MAX_MIN_EXPIRES`),
  and keep requesting at least that; no answer (Timer F) or a transport error → retry delay.
  Unparsable answers never reach us (the core drops them), so they end as "no answer".
- **Graceful stop** with SS_SIP_USER_AGENT_SEND_UNREGISTER=On: every registration that may
  have a binding (a 2xx was received in this run) sends REGISTER ``Expires: 0`` (and
  ``expires=0`` on the Contact) with the same Call-ID, From tag and Contact, to the same proxy,
  with credentials, answering a challenge — all upstreams in parallel. A REGISTER still in
  flight is let finish first (§10.2: one outstanding REGISTER at a time). The stop hook's
  ``done()`` is true when each got a final answer or ``unregister_wait`` (4 s, below the
  runtime's 5 s stop timeout) has passed; every outcome is logged and put in the trace. Off:
  nothing is sent, and the trace says how long the carrier will keep the stale binding.

Status (:class:`UpstreamStatus`) is available as :func:`status` ``(core)`` and is written to
the store (table ``outbound_status``) on every change, so ``vosapp status`` can read it from
another process.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from vosapp.net import Address
from vosapp.sip import NameAddr, Request, SipUri, new_call_id, new_tag, parse_vias
from vosapp.sip.digest import DigestClient, DigestError, choose_challenge
from vosapp.sip.transaction import DeliverResponse, TimedOut, TransportFailed
from vosapp.switch.core import SERVER_NAME

if TYPE_CHECKING:
    from vosapp.clock import TimerHandle
    from vosapp.params import UpstreamRegistration
    from vosapp.sip import Response
    from vosapp.sip.transaction import TUEvent
    from vosapp.store import Store
    from vosapp.switch.core import SwitchCore

__all__ = [
    "FALLBACK_EXPIRES",
    "MAX_CHALLENGES",
    "MAX_MIN_EXPIRES",
    "MAX_RETRY_AFTER",
    "MIN_REFRESH_DELAY",
    "OUTBOUND_MIGRATIONS",
    "OutboundRegistration",
    "OutboundRegistrations",
    "RegistrationState",
    "UpstreamStatus",
    "install",
    "read_status",
    "refresh_delay",
]

log = logging.getLogger(__name__)


#: Assumed binding lifetime when a 200 states none (non-compliant registrar) in Auto mode.
FALLBACK_EXPIRES = 3600
#: No refresh is scheduled sooner than this after a 200, whatever tiny expiry was granted.
MIN_REFRESH_DELAY = 5.0
#: Extra seconds on top of Timer F (64*T1) kept between a refresh and the binding's expiry.
REFRESH_SLACK = 8.0
#: Challenges answered for one REGISTER (one ordinary, the rest only with stale=true).
MAX_CHALLENGES = 3
#: A Retry-After longer than this is capped (an upstream cannot park us for days).
MAX_RETRY_AFTER = 3600
#: A Min-Expires above this is not obeyed (the registration fails and is retried later).
MAX_MIN_EXPIRES = 86_400
#: Default bounded wait for the unregister answers, below the runtime's 5 s stop timeout.
UNREGISTER_WAIT = 4.0

OUTBOUND_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE outbound_status (
        gateway TEXT PRIMARY KEY,
        proxy TEXT NOT NULL,
        transport TEXT NOT NULL,
        aor TEXT NOT NULL,
        contact TEXT NOT NULL,
        state TEXT NOT NULL,
        granted_expires INTEGER,
        expires_at REAL,              -- Unix time the binding lapses
        next_action TEXT,             -- 'refresh' | 'retry' | NULL
        next_action_at REAL,          -- Unix time
        last_response TEXT,
        last_error TEXT,
        call_id TEXT NOT NULL,
        cseq INTEGER NOT NULL,
        updated_at REAL NOT NULL      -- Unix time of this row
    );
    CREATE TABLE outbound_instance (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        instance_id TEXT NOT NULL     -- RFC 5626 +sip.instance UUID of this data directory
    );
    """,
)


class RegistrationState(str, Enum):
    IDLE = "idle"                    # not started
    REGISTERING = "registering"      # REGISTER in flight, no binding yet
    REGISTERED = "registered"        # bound until expires_at
    REFRESHING = "refreshing"        # refresh in flight, binding still live
    FAILED = "failed"                # waiting SS_SIP_USER_AGENT_RETRY_DELAY (or Retry-After)
    UNREGISTERING = "unregistering"  # Expires: 0 in flight (graceful stop)
    UNREGISTERED = "unregistered"    # the carrier confirmed the removal
    STOPPED = "stopped"              # stopped without (successful) unregister


@dataclass(frozen=True)
class UpstreamStatus:
    """One upstream registration as people read it; times are Unix (wall) seconds."""

    gateway: str
    proxy: str
    transport: str
    aor: str
    contact: str
    state: str
    granted_expires: int | None
    expires_at: float | None
    next_action: str | None
    next_action_at: float | None
    last_response: str | None
    last_error: str | None
    call_id: str
    cseq: int
    updated_at: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def refresh_delay(granted: int, t1: float = 0.5) -> float:
    """Seconds after a 200 granting ``granted`` s at which the refresh is sent.

    ``granted - min(granted / 2, 64*T1 + REFRESH_SLACK)``, at least :data:`MIN_REFRESH_DELAY`:
    3600 s → 3560 s; 60 s → 30 s (default T1 = 0.5 s).
    """
    margin = min(granted / 2.0, 64.0 * t1 + REFRESH_SLACK)
    return max(MIN_REFRESH_DELAY, granted - margin)


def _reason(response: Response) -> str:
    return f"{response.status} {response.reason}".strip()


def _leading_int(value: str | None) -> int | None:
    """The delta-seconds at the start of Retry-After / Min-Expires (``120 (busy);duration=5``)."""
    if not value:
        return None
    digits = ""
    for ch in value.strip():
        if not ch.isdigit():
            break
        digits += ch
    if not digits or len(digits) > 10:
        return None if not digits else 2**32 - 1
    return int(digits)


class OutboundRegistration:
    """The registration of one routing gateway with its carrier (see the module docstring)."""

    def __init__(self, core: SwitchCore, gateway: str, settings: UpstreamRegistration, *,
                 transport: str = "UDP", instance_id: str | None = None,
                 on_change: Callable[[OutboundRegistration], None] | None = None) -> None:
        self.core = core
        self.gateway = gateway
        self.settings = settings
        self.transport = transport.upper()
        self.proxy: Address = settings.proxy_address
        self.instance_id = instance_id or str(uuid.uuid4())
        self.on_change = on_change
        self.call_id = new_call_id()
        self.from_tag = new_tag()
        self.cseq = 0
        self.digest = DigestClient(settings.auth_user, settings.password)
        self.state = RegistrationState.IDLE
        self.granted_expires: int | None = None
        self.expires_at: float | None = None  # clock (monotonic) time
        self.next_action: str | None = None
        self.next_action_at: float | None = None  # clock time
        self.last_response: str | None = None
        self.last_error: str | None = None
        self.unregister_outcome: str | None = None
        #: True once a 2xx bound us in this run: only then is there something to unregister.
        self.binding_may_exist = False
        self._timer: TimerHandle | None = None
        self._token = 0  # identifies the REGISTER whose events we still listen to
        self._in_flight = False
        self._challenges = 0
        self._answered_423 = False
        self._requested: int | None = None  # Expires of the REGISTER in flight (None = Auto)
        self._min_expires: int | None = None  # learned from a 423
        self._auth_header: str | None = None  # "Authorization" or "Proxy-Authorization"
        self._stopping = False
        self._unregister_pending = False
        self.stop_finished = False

    # -------------------------------------------------------------- derived values
    @property
    def proxy_text(self) -> str:
        return f"{self.proxy[0]}:{self.proxy[1]}"

    @property
    def request_uri(self) -> SipUri:
        host, port = self.proxy
        params: dict[str, str | None] = {"transport": "tcp"} if self.transport == "TCP" else {}
        return SipUri(host=host, port=None if port == 5060 else port, params=params)

    @property
    def aor(self) -> SipUri:
        return SipUri(host=self.proxy[0], user=self.settings.auth_user)

    def contact_uri(self) -> SipUri:
        local_host, local_port = self.core.local_address(self.transport)
        host = self.settings.host_name or local_host
        port = self.settings.signaling_port or local_port
        params: dict[str, str | None] = {"transport": "tcp"} if self.transport == "TCP" else {}
        return SipUri(host=host, user=self.settings.auth_user, port=port, params=params)

    def contact(self, *, expires: int | None = None) -> NameAddr:
        params: dict[str, str | None] = {"+sip.instance": f'"<urn:uuid:{self.instance_id}>"'}
        if expires is not None:
            params["expires"] = str(expires)
        return NameAddr(self.contact_uri(), params=params)

    def requested_expires(self) -> int | None:
        """What the next REGISTER asks for: None = Auto (no Expires, the server chooses)."""
        configured = self.core.params["SS_SIP_USER_AGENT_EXPIRE"]
        auto = configured == "Auto" or self.settings.register_period == "Auto negotiation"
        wanted = None if auto else int(configured)
        if self._min_expires is not None:
            wanted = max(wanted or 0, self._min_expires)
        return wanted

    @property
    def retry_delay(self) -> int:
        return int(self.core.params["SS_SIP_USER_AGENT_RETRY_DELAY"])

    # -------------------------------------------------------------- status
    def _wall(self, mono: float | None) -> float | None:
        if mono is None:
            return None
        return self.core.clock.wall() + (mono - self.core.clock.now())

    def status(self) -> UpstreamStatus:
        return UpstreamStatus(
            gateway=self.gateway, proxy=self.proxy_text, transport=self.transport,
            aor=str(self.aor), contact=str(self.contact()), state=self.state.value,
            granted_expires=self.granted_expires, expires_at=self._wall(self.expires_at),
            next_action=self.next_action, next_action_at=self._wall(self.next_action_at),
            last_response=self.last_response, last_error=self.last_error,
            call_id=self.call_id, cseq=self.cseq, updated_at=self.core.clock.wall())

    def _changed(self) -> None:
        if self.on_change is not None:
            try:
                self.on_change(self)
            except Exception:  # a status sink must never break the registration
                log.exception("outbound status listener failed")

    def _event(self, text: str, level: int = logging.INFO) -> None:
        message = f"outbound {self.gateway}: {text}"
        log.log(level, "%s", message)
        self.core.trace.event(message, call_id=self.call_id, dst=self.proxy,
                              transport=self.transport)

    # -------------------------------------------------------------- timers
    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.next_action = self.next_action_at = None

    def _schedule(self, action: str, delay: float, callback: Callable[[], None]) -> None:
        self._cancel_timer()
        self.next_action = action
        self.next_action_at = self.core.clock.now() + delay

        def fire() -> None:
            self._timer = None
            self.next_action = self.next_action_at = None
            callback()

        self._timer = self.core.clock.call_later(delay, fire)

    # -------------------------------------------------------------- sending
    def start(self) -> None:
        """Send the first REGISTER (the core is running, its local address is known)."""
        if self.state is not RegistrationState.IDLE:
            return
        local_host, local_port = self.core.local_address(self.transport)
        if not self.settings.host_name and local_host in ("0.0.0.0", "::"):
            self._event(f"Contact would say {local_host}: set register.host_name to the "
                        "address the carrier can reach", logging.WARNING)
        if self.settings.signaling_port and self.settings.signaling_port != local_port:
            self._event(f"Contact advertises port {self.settings.signaling_port} but this "
                        f"switch sends and listens on {local_port}; make sure "
                        f"{self.settings.signaling_port} reaches it (port forward)",
                        logging.WARNING)
        self._register()

    def _register(self) -> None:
        """A new REGISTER attempt (first registration, refresh or retry)."""
        if self._stopping:
            return
        self._challenges = 0
        self._answered_423 = False
        registered = self.state in (RegistrationState.REGISTERED, RegistrationState.REFRESHING)
        self.state = RegistrationState.REFRESHING if registered else RegistrationState.REGISTERING
        self._send(self.requested_expires(), preemptive=True)

    def _build(self, expires: int | None, *, unregister: bool) -> Request:
        self.cseq += 1
        uri = self.request_uri
        headers: list[tuple[str, str]] = []
        if expires is not None:
            headers.append(("Expires", str(expires)))
        privacy = self.core.params["SS_SIP_USER_AGENT_PRIVACY"]
        if privacy != "Ignore":  # RFC 3323 §4.2 priv-values "id" / "none"
            headers.append(("Privacy", str(privacy).lower()))
        headers.append(("User-Agent", SERVER_NAME))
        return Request.build(
            "REGISTER", uri, via=parse_vias(self.core.new_via(self.transport))[0],
            from_=NameAddr(self.aor, params={"tag": self.from_tag}), to=NameAddr(self.aor),
            call_id=self.call_id, cseq=self.cseq,
            contact=self.contact(expires=0 if unregister else None), headers=headers)

    def _send(self, expires: int | None, *, preemptive: bool = False,
              credentials: tuple[str, str] | None = None) -> None:
        unregister = expires == 0
        request = self._build(expires, unregister=unregister)
        if credentials is None and preemptive and self._auth_header is not None:
            cached = self.digest.reauthorize("REGISTER", str(request.uri))
            if cached is not None:
                credentials = (self._auth_header, str(cached))
        if credentials is not None:
            request.headers.add(*credentials)
        self._requested = expires
        self._token += 1
        token = self._token
        self._in_flight = True
        self._changed()
        try:
            self.core.send_request(request, self.proxy, self.transport,
                                   listener=lambda event: self._on_event(token, event))
        except Exception as exc:  # noqa: BLE001 - e.g. TransactionError; reported, retried
            if token == self._token and self._in_flight:
                self._in_flight = False
                self._failed(f"cannot send REGISTER: {exc}")

    # -------------------------------------------------------------- receiving
    def _on_event(self, token: int, event: TUEvent) -> None:
        if token != self._token or not self._in_flight:
            return  # an abandoned REGISTER (after a stop, or superseded)
        if isinstance(event, DeliverResponse):
            response = event.response
            if response.status < 200:
                return
            self._in_flight = False
            self.last_response = _reason(response)
            self._final(response)
        elif isinstance(event, TimedOut):
            self._in_flight = False
            timer = getattr(event.timer, "value", event.timer)
            self._failed(f"no answer from {self.proxy_text} (Timer {timer}, "
                         f"{self.core.transactions.timers.timeout:g} s)")
        elif isinstance(event, TransportFailed):
            self._in_flight = False
            self._failed(f"transport error towards {self.proxy_text}: {event.reason}")

    def _final(self, response: Response) -> None:
        status = response.status
        if self.state is RegistrationState.UNREGISTERING:
            self._unregister_final(response)
            return
        if self._stopping and self._unregister_pending:
            # The REGISTER in flight at stop time has finished: now withdraw (docs/behaviour.md §3).
            if 200 <= status < 300:
                self.binding_may_exist = True
            self._begin_unregister()
            return
        if 200 <= status < 300:
            self._registered(response)
        elif status in (401, 407):
            self._challenged(response, then=lambda creds: self._send(self._requested,
                                                                      credentials=creds))
        elif status == 423:
            self._too_brief(response)
        elif status in (500, 503):
            retry_after = _leading_int(response.headers.get("Retry-After"))
            delay = None if retry_after is None else min(retry_after, MAX_RETRY_AFTER)
            self._failed(f"rejected: {_reason(response)}"
                         + (f" (Retry-After {retry_after} s)" if retry_after is not None else ""),
                         delay)
        else:  # 403 and every other 3xx-6xx: give up this attempt, retry after the delay
            self._failed(f"rejected: {_reason(response)}")

    def _granted(self, response: Response) -> int | None:
        """§10.2.4: our Contact's ``expires`` in the 200, else its Expires header."""
        ours = self.contact_uri()
        instance = f'"<urn:uuid:{self.instance_id}>"'
        try:
            contacts = response.contacts
        except Exception:  # noqa: BLE001 - a broken Contact list: fall back to Expires
            contacts = []
        for contact in contacts:
            uri = contact.uri
            same = contact.params.get("+sip.instance") == instance or (
                isinstance(uri, SipUri) and uri.user == ours.user
                and uri.host.lower() == ours.host.lower() and (uri.port or 5060) == ours.port)
            value = _leading_int(contact.params.get("expires"))
            if same and value is not None:
                return value
        try:
            return response.expires
        except Exception:  # noqa: BLE001 - an unreadable Expires header counts as absent
            return None

    def _registered(self, response: Response) -> None:
        granted = self._granted(response)
        if granted is None:
            granted = self._requested or FALLBACK_EXPIRES
            self._event(f"the 200 states no expiry; assuming {granted} s", logging.WARNING)
        if granted <= 0:
            self._failed(f"{_reason(response)} but 0 s granted (binding not kept)")
            return
        self.binding_may_exist = True
        self.granted_expires = granted
        now = self.core.clock.now()
        self.expires_at = now + granted
        self.last_error = None
        self.state = RegistrationState.REGISTERED
        delay = refresh_delay(granted, self.core.transactions.timers.t1)
        self._schedule("refresh", delay, self._register)
        self._event(f"registered at {self.proxy_text} for {granted} s ({_reason(response)}); "
                    f"refresh in {delay:g} s")
        self._changed()

    def _challenged(self, response: Response,
                    then: Callable[[tuple[str, str]], None]) -> None:
        status = response.status
        values = (response.headers.get_all("WWW-Authenticate") if status == 401
                  else response.headers.get_all("Proxy-Authenticate"))
        try:
            challenge = choose_challenge(values)
        except DigestError as exc:
            self._failed(f"{_reason(response)} without a usable challenge ({exc.reason})")
            return
        if self._challenges >= MAX_CHALLENGES or (self._challenges and not challenge.stale):
            self._failed(f"credentials of {self.settings.auth_user!r} rejected "
                         f"({_reason(response)})")
            return
        self._challenges += 1
        header = "Authorization" if status == 401 else "Proxy-Authorization"
        try:
            credentials = self.digest.authorize(challenge, "REGISTER", str(self.request_uri))
        except DigestError as exc:
            self._failed(f"cannot answer the challenge: {exc.reason}")
            return
        self._auth_header = header
        then((header, str(credentials)))

    def _too_brief(self, response: Response) -> None:
        """423 Interval Too Brief: obey Min-Expires (§10.2.8), once per REGISTER."""
        minimum = _leading_int(response.headers.get("Min-Expires"))
        asked = self._requested or 0
        if (minimum is None or minimum <= asked or minimum > MAX_MIN_EXPIRES
                or self._answered_423):
            self._failed(f"rejected: {_reason(response)} (Min-Expires "
                         f"{response.headers.get('Min-Expires')!r} not usable)")
            return
        self._answered_423 = True
        self._challenges = 0  # a new request: the registrar may challenge it afresh
        self._min_expires = minimum
        self._event(f"{_reason(response)}: registering again with Min-Expires {minimum} s")
        self._send(minimum, preemptive=True)

    def _failed(self, error: str, retry_after: float | None = None) -> None:
        if self._stopping:
            if self._unregister_pending:  # the in-flight REGISTER ended: withdraw now
                self._begin_unregister()
            elif self.state is RegistrationState.UNREGISTERING:
                self._finish_stop(RegistrationState.STOPPED, f"unregister failed: {error}",
                                  error=True)
            return
        self.last_error = error
        self.state = RegistrationState.FAILED
        self.granted_expires = None
        self.expires_at = None
        delay = float(self.retry_delay)
        if retry_after is not None:
            delay = max(delay, float(retry_after))
        self._schedule("retry", delay, self._register)
        self._event(f"{error}; retry in {delay:g} s", logging.WARNING)
        self._changed()

    # -------------------------------------------------------------- graceful stop
    def begin_stop(self, send_unregister: bool) -> None:
        """Start the stop work; :attr:`stop_finished` turns true when it is over."""
        if self._stopping:
            return
        self._stopping = True
        self._cancel_timer()
        if not send_unregister:
            self._token += 1  # stop listening to whatever is in flight
            self._in_flight = False
            remaining = None
            if self.expires_at is not None:
                remaining = max(0, math.ceil(self.expires_at - self.core.clock.now()))
            self._finish_stop(
                RegistrationState.STOPPED,
                "unregister not sent (SS_SIP_USER_AGENT_SEND_UNREGISTER=Off)"
                + (f"; the carrier keeps the binding for up to {remaining} s"
                   if remaining else ""))
            return
        if self._in_flight:
            self._unregister_pending = True  # sent when the REGISTER in flight finishes
            self._changed()
            return
        self._begin_unregister()

    def _begin_unregister(self) -> None:
        self._unregister_pending = False
        if not self.binding_may_exist:
            self._finish_stop(RegistrationState.STOPPED,
                              "not registered in this run; no unregister needed")
            return
        self.state = RegistrationState.UNREGISTERING
        self._challenges = 0
        self._event(f"unregistering from {self.proxy_text} (Expires: 0)")
        self._send(0, preemptive=True)

    def _unregister_final(self, response: Response) -> None:
        status = response.status
        if 200 <= status < 300:
            self.binding_may_exist = False
            self._finish_stop(RegistrationState.UNREGISTERED, f"unregistered ({_reason(response)})")
        elif status in (401, 407):
            self._challenged(response, then=lambda creds: self._send(0, credentials=creds))
        else:
            self._finish_stop(RegistrationState.STOPPED,
                              f"unregister rejected ({_reason(response)})", error=True)

    def give_up_stop(self, waited: float) -> None:
        """The bounded wait is over: record the unregister as unanswered."""
        if self.stop_finished:
            return
        self._token += 1
        self._in_flight = False
        self._finish_stop(RegistrationState.STOPPED,
                          f"unregister unanswered after {waited:g} s", error=True)

    def _finish_stop(self, state: RegistrationState, outcome: str, *,
                     error: bool = False) -> None:
        self.state = state
        self.unregister_outcome = outcome
        if state is RegistrationState.UNREGISTERED or not self.binding_may_exist:
            self.granted_expires = None
            self.expires_at = None
        if error:
            self.last_error = outcome
        self.stop_finished = True
        self._event(outcome, logging.WARNING if error else logging.INFO)
        self._changed()


class OutboundRegistrations:
    """The feature: every upstream registration of the configured routing gateways."""

    def __init__(self, core: SwitchCore, *, unregister_wait: float = UNREGISTER_WAIT) -> None:
        self.core = core
        self.unregister_wait = unregister_wait
        self.registrations: dict[str, OutboundRegistration] = {}
        self.store: Store | None = core.store
        self.instance_id = self._instance_id()
        self._stop_deadline: TimerHandle | None = None
        self._build()

    def _build(self) -> None:
        """One fresh registration (new Call-ID, CSeq 1) per configured gateway."""
        config = self.core.config
        self.registrations = {
            gateway.name: OutboundRegistration(
                self.core, gateway.name, gateway.register, transport=gateway.transport,
                instance_id=self.instance_id, on_change=self._persist)
            for gateway in (config.routing_gateways if config is not None else ())
            if gateway.register is not None}

    def _instance_id(self) -> str:
        """The RFC 5626 instance UUID: kept in the store so it survives restarts."""
        if self.store is None:
            return str(uuid.uuid4())
        try:
            self.store.ensure_schema("outbound", OUTBOUND_MIGRATIONS)
            with self.store.transaction() as db:
                row = db.execute("SELECT instance_id FROM outbound_instance WHERE id = 1"
                                 ).fetchone()
                if row is not None:
                    return str(row[0])
                value = str(uuid.uuid4())
                db.execute("INSERT INTO outbound_instance (id, instance_id) VALUES (1, ?)",
                           (value,))
                return value
        except Exception:
            log.exception("outbound: cannot use the store; status will not be persisted")
            self.store = None
            return str(uuid.uuid4())

    def _persist(self, registration: OutboundRegistration) -> None:
        if self.store is None:
            return
        row = registration.status()
        try:
            with self.store.transaction() as db:
                db.execute(
                    "INSERT OR REPLACE INTO outbound_status (gateway, proxy, transport, aor, "
                    "contact, state, granted_expires, expires_at, next_action, next_action_at, "
                    "last_response, last_error, call_id, cseq, updated_at) VALUES "
                    "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (row.gateway, row.proxy, row.transport, row.aor, row.contact, row.state,
                     row.granted_expires, row.expires_at, row.next_action, row.next_action_at,
                     row.last_response, row.last_error, row.call_id, row.cseq, row.updated_at))
        except Exception:
            log.exception("outbound: could not persist the status of %s", registration.gateway)

    def start(self) -> None:
        if any(r.state is not RegistrationState.IDLE for r in self.registrations.values()):
            self._build()  # started again after a stop (a restart in a notebook): a new cycle
        if self._stop_deadline is not None:
            self._stop_deadline.cancel()
            self._stop_deadline = None
        if self.store is not None:
            try:
                with self.store.transaction() as db:  # rows of gateways no longer configured
                    marks = ", ".join("?" for _ in self.registrations)
                    db.execute(f"DELETE FROM outbound_status WHERE gateway NOT IN ({marks})",
                               tuple(self.registrations))
            except Exception:
                log.exception("outbound: could not tidy the status table")
        for registration in self.registrations.values():
            registration.start()

    def stop(self) -> Callable[[], bool] | None:
        """Stop hook: unregister in parallel (docs/behaviour.md §3); returns the ``done()``
        predicate."""
        if not self.registrations:
            return None
        send = bool(self.core.params["SS_SIP_USER_AGENT_SEND_UNREGISTER"])
        for registration in self.registrations.values():
            registration.begin_stop(send)
        if not self.done():
            wait = self.unregister_wait

            def give_up() -> None:
                for registration in self.registrations.values():
                    registration.give_up_stop(wait)

            self._stop_deadline = self.core.clock.call_later(wait, give_up)
        return self.done

    def done(self) -> bool:
        return all(r.stop_finished for r in self.registrations.values())

    def status(self) -> list[UpstreamStatus]:
        return [r.status() for r in self.registrations.values()]


def install(core: SwitchCore, *, unregister_wait: float = UNREGISTER_WAIT
            ) -> OutboundRegistrations:
    """The outbound registration feature on ``core``
    (:func:`vosapp.switch.app.build_switch_app`): registrations start with the core and
    unregister in its stop hook."""
    feature = OutboundRegistrations(core, unregister_wait=unregister_wait)
    core.add_start_hook(feature.start)
    core.add_stop_hook(feature.stop)
    return feature


def read_status(store: Store) -> list[UpstreamStatus]:
    """The status rows a (possibly other) vosapp process wrote into ``store``."""
    exists = store.query("SELECT name FROM sqlite_master WHERE type = 'table' AND "
                         "name = 'outbound_status'")
    if not exists:
        return []  # no switch with this feature has used the store yet
    rows = store.query("SELECT * FROM outbound_status ORDER BY gateway")
    # sqlite3.Row iterates values, not names
    return [UpstreamStatus(**dict(zip(row.keys(), tuple(row), strict=True))) for row in rows]
