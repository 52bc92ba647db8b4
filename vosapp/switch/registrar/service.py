"""REGISTER in the switch core (authentication, then the registrar) and the feature installer
that ``vosapp serve`` runs (``vosapp.switch.registrar:install``)."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from email.utils import formatdate
from typing import TYPE_CHECKING, Final

from vosapp.params import Params
from vosapp.sip import SipParseError
from vosapp.store import Store
from vosapp.switch.auth import AccountLookup, AuthJournal, AuthPolicy, InboundAuthenticator
from vosapp.switch.registrar.auth_journal import SqliteAuthJournal
from vosapp.switch.registrar.logic import Registrar
from vosapp.switch.registrar.model import ContactRequest, RegisterOutcome, parse_expires
from vosapp.switch.registrar.nat_keepalive import NatKeepAlive

if TYPE_CHECKING:
    from vosapp.config import Account
    from vosapp.sip import Request
    from vosapp.sip.transaction import ServerTransaction
    from vosapp.switch.auth import AuthEvent
    from vosapp.switch.core import SwitchCore


class RegistrarService:
    """REGISTER served by the switch core: docs/behaviour.md §2 authentication, then RFC 3261 §10.3.

    ``install(core)`` registers the handler. ``params()`` gives the current parameters (read
    per request, so ``vosapp params set`` reaches new registrations).
    """

    def __init__(self, registrar: Registrar, authenticator: InboundAuthenticator,
                 params: Callable[[], Params]) -> None:
        self.registrar = registrar
        self.authenticator = authenticator
        self.params = params

    def install(self, core: SwitchCore) -> None:
        self._core = core
        core.add_request_handler("REGISTER", self.handle)
        policy = self.authenticator.policy
        if core.params is not policy.params:
            policy.set_params(core.params)
        # New values reach new auth sessions (docs/behaviour.md §1), however they were changed:
        # control channel, lab, or `vosapp params set` reloaded by the runtime.
        core.add_params_listener(lambda params, _changes: policy.set_params(params))

    def handle(self, request: Request, txn: ServerTransaction) -> None:
        core = self._core
        result = self.authenticator.authenticate(request, txn.source)
        if not result.accepted:
            self.authenticator.finish(result, request, txn, core.make_response)
            return
        try:
            outcome = self._register(request, result.username or "", txn)
        except (SipParseError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or str(exc)
            txn.respond(core.make_response(request, 400, f"Bad Request ({reason})"[:120]))
            return
        response = core.make_response(request, outcome.status,
                                      None if outcome.status == 200 else outcome.reason)
        if outcome.status == 423 and outcome.min_expires is not None:
            response.headers.set("Min-Expires", str(outcome.min_expires))
        if outcome.ok:
            for binding in outcome.bindings:
                contact = f"<{binding.contact}>;expires={binding.remaining(outcome.now)}"
                if binding.q is not None:
                    contact += f";q={binding.q:g}"
                response.headers.add("Contact", contact)
            for path in outcome.path:
                response.headers.add("Path", path)  # RFC 3327 §5.3: echo Path in the 200
            response.headers.set("Date", _http_date(outcome.now))
        txn.respond(response)

    def _register(self, request: Request, username: str,
                  txn: ServerTransaction) -> RegisterOutcome:
        to_user = getattr(request.to_uri, "user", None) or ""
        if to_user != username:
            # RFC 3261 §10.3 step 6: the authenticated user may only bind its own AOR.
            return RegisterOutcome(403, "Forbidden (To does not match credentials)")
        contacts: list[ContactRequest] = []
        for name_addr in request.contacts:
            raw_expires = name_addr.params.get("expires")
            raw_q = name_addr.params.get("q")
            contacts.append(ContactRequest(
                uri=str(name_addr.uri)[:1024],
                expires=parse_expires(raw_expires) if raw_expires is not None else None,
                q=_parse_q(raw_q)))
            if len(contacts) > self.registrar.max_contacts:
                return RegisterOutcome(403, "Too Many Contacts")
        expires_header = parse_expires(request.headers.get("Expires"))
        cseq = request.cseq
        return self.registrar.register(
            to_user, contacts, expires_header=expires_header, call_id=request.call_id,
            cseq=int(cseq.number), replace=bool(self.params()["SS_ENDPOINT_REGISTER_REPLACE"]),
            star=request.contact_star, source=(txn.source[0], int(txn.source[1])),
            transport=str(getattr(txn, "transport", "udp") or "udp").lower(),
            path=request.headers.get_all("Path")[:8],
            user_agent=(request.headers.get("User-Agent") or "")[:200])


_last_date: tuple[int, str] = (-1, "")


def _http_date(wall: float) -> str:
    """``formatdate(wall, usegmt=True)``, computed once per second (one 200 per REGISTER)."""
    global _last_date
    second = math.floor(wall)
    if _last_date[0] != second:
        _last_date = (second, formatdate(wall, usegmt=True))
    return _last_date[1]


def _parse_q(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        q = float(value)
    except ValueError:
        raise ValueError(f"q={value!r} is not a number") from None
    if not 0.0 <= q <= 1.0 or math.isnan(q):
        raise ValueError(f"q={value!r} is outside 0..1")
    return q


def build_registrar_service(core: SwitchCore, *, accounts: AccountLookup,
                            store: Store, realm: str = "vosapp",
                            secret: bytes | None = None,
                            journal: AuthJournal | None = None,
                            **registrar_options: int) -> RegistrarService:
    """Wire policy + digest + registrar into ``core`` (what ``vosapp serve`` calls).

    The policy starts from ``core.params``; suspensions of a previous run still in force are
    restored from the store. Returns the service (``.authenticator.policy`` for the lab).
    """
    from vosapp.sip.digest import DigestServer

    journal = journal if journal is not None else SqliteAuthJournal(store)
    policy = AuthPolicy(core.params, core.clock, journal,
                        max_sessions=core.limits.max_auth_sessions)
    if isinstance(journal, SqliteAuthJournal):
        policy.restore(journal.active_suspensions(core.clock.wall()))
        if secret is None:
            secret = journal.digest_secret()
    digest = DigestServer(realm, secret if secret is not None else os.urandom(32), core.clock)
    authenticator = InboundAuthenticator(policy, digest, accounts)
    registrar = Registrar(store, core.clock, **registrar_options)
    service = RegistrarService(registrar, authenticator, lambda: policy.params)
    service.install(core)  # also keeps the policy's parameters current (params listener)
    return service


#: How often expired bindings are deleted from the store.
PURGE_INTERVAL: Final = 60.0
#: Audit rows kept in the store (the oldest beyond this are pruned with expired bindings).
AUDIT_ROWS_KEPT: Final = 200_000
REALM: Final = "vosapp"


def install(core: SwitchCore) -> tuple[RegistrarService, NatKeepAlive]:
    """The registrar feature on ``core`` (:func:`vosapp.switch.app.build_switch_app`).

    Accounts come from ``core.config``; bindings, audit trail and suspensions go to
    ``core.store``. Without a store (no data directory) a private temporary store is used and
    bindings do not survive a restart (said once in the trace).
    """
    store = core.store
    if store is None:
        # Removed with the store, so with the core that holds it (or at interpreter exit), not
        # at stop: a REGISTER may still arrive between the stop hooks and the transports closing.
        store = Store.open_temporary("vosapp-registrar-")
        core.trace.event(f"registrar: no data directory, bindings kept in {store.path} "
                         "(lost on restart)")
    config = core.config
    # A dict, not Config.account's linear scan: it runs twice per REGISTER.
    by_user = {account.user: account for account in config.accounts} if config else {}

    def accounts(user: str) -> Account | None:
        return by_user.get(user)

    def trace_auth(event: AuthEvent) -> None:
        core.trace.event(
            f"auth {event.reason}: {event.method} user={event.user!r} "
            f"from {event.source_host}:{event.source_port} {event.detail}".rstrip(),
            call_id=event.call_id or None, src=(event.source_host, event.source_port))

    service = build_registrar_service(core, accounts=accounts, store=store, realm=REALM)
    policy = service.authenticator.policy
    policy.listeners.append(trace_auth)

    journal = policy.journal

    def purge() -> None:
        try:
            service.registrar.purge_expired()
            if isinstance(journal, SqliteAuthJournal):
                journal.prune(AUDIT_ROWS_KEPT)
        finally:
            if core.running:
                core.clock.call_later(PURGE_INTERVAL, purge)

    def schedule_purge() -> None:
        core.clock.call_later(PURGE_INTERVAL, purge)

    core.add_start_hook(schedule_purge)

    # SS_REPLY_UNAUTHORIZED=Off: a registered phone's address still gets answers
    # (docs/behaviour.md §2.1).
    core.known_sources.append(service.registrar.has_binding_from)

    keepalive = NatKeepAlive(core, service.registrar)
    keepalive.install()
    return service, keepalive

