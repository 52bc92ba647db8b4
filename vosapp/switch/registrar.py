"""Registrar (RFC 3261 §10.3) with bindings in SQLite, and the SQLite auth journal.

Sans-IO: :class:`Registrar` takes the facts of an authenticated REGISTER (address of record,
contacts, Expires, Call-ID/CSeq, source address, Path) and returns a :class:`RegisterOutcome`
(status, reason, the bindings to list in the 200, Min-Expires for a 423). The REGISTER handler
(:class:`RegistrarService`, below) turns SIP messages into these calls.

Persistence: every change of an address of record is one SQLite transaction (``BEGIN
IMMEDIATE`` ... ``COMMIT`` through :meth:`vosapp.store.Store.transaction`), so a process killed
mid-write loses only the registration it had not yet answered; WAL keeps what was committed.
Expiry times are stored as wall-clock (Unix) times so bindings survive a restart; expired rows
are ignored on read and deleted by :meth:`Registrar.purge_expired`.

Choices where RFC 3261 leaves room (documented in docs/contracts.md):

- SS_ENDPOINT_REGISTER_REPLACE=On: a registration with a new Call-ID (another device, or the
  same one after a reboot) replaces every binding of the account; several contacts in one
  registration are all kept. Off: such a registration is refused with 403 while a live binding
  of another Call-ID exists (unless it only re-registers contacts already bound).
- Expires: the contact's ``expires`` parameter, else the Expires header, else
  ``default_expires``. 0 < expires < ``min_expires`` → 423 with Min-Expires; above
  ``max_expires`` (including absurd values like 10**30) → clamped. Not a non-negative
  integer → 400.
- More than ``max_contacts`` bindings for one account → 403 "Too Many Contacts".
- A request with the Call-ID of an existing binding and a CSeq not higher → 500 (RFC 3261
  §10.3 step 7: "the request fails"; Retry is pointless so no Retry-After).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import math
import os
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from email.utils import formatdate
from typing import TYPE_CHECKING, Any

from vosapp.clock import Clock
from vosapp.params import Params
from vosapp.sip import SipParseError
from vosapp.store import Store
from vosapp.switch.auth import (
    AccountLookup,
    AuthEvent,
    AuthJournal,
    AuthPolicy,
    InboundAuthenticator,
    Suspension,
    SuspensionScope,
)

if TYPE_CHECKING:
    from vosapp.sip import Request
    from vosapp.sip.transaction import ServerTransaction
    from vosapp.switch.core import SwitchCore

__all__ = [
    "AUTH_MIGRATIONS",
    "REGISTRAR_MIGRATIONS",
    "Binding",
    "ContactRequest",
    "NatKeepAlive",
    "RegisterOutcome",
    "Registrar",
    "RegistrarService",
    "SqliteAuthJournal",
    "behind_nat",
    "build_registrar_service",
    "parse_expires",
]

log = logging.getLogger(__name__)

REGISTRAR_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE registrar_bindings (
        aor TEXT NOT NULL,
        contact TEXT NOT NULL,
        expires_at REAL NOT NULL,
        q REAL,
        call_id TEXT NOT NULL,
        cseq INTEGER NOT NULL,
        transport TEXT NOT NULL DEFAULT 'udp',
        received_host TEXT NOT NULL DEFAULT '',
        received_port INTEGER NOT NULL DEFAULT 0,
        path TEXT NOT NULL DEFAULT '[]',
        user_agent TEXT NOT NULL DEFAULT '',
        registered_at REAL NOT NULL,
        PRIMARY KEY (aor, contact)
    );
    CREATE INDEX registrar_bindings_expiry ON registrar_bindings (expires_at);
    """,
)

AUTH_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE auth_events (
        id INTEGER PRIMARY KEY,
        wall REAL NOT NULL,
        source_host TEXT NOT NULL,
        source_port INTEGER NOT NULL,
        user TEXT NOT NULL,
        method TEXT NOT NULL,
        reason TEXT NOT NULL,
        call_id TEXT NOT NULL DEFAULT '',
        detail TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX auth_events_wall ON auth_events (wall);
    CREATE TABLE auth_suspensions (
        id INTEGER PRIMARY KEY,
        user TEXT NOT NULL,
        source_host TEXT NOT NULL,
        scope TEXT NOT NULL,
        since_wall REAL NOT NULL,
        until_wall REAL NOT NULL,
        failures INTEGER NOT NULL,
        lifted_at REAL,
        lifted_by TEXT
    );
    CREATE INDEX auth_suspensions_until ON auth_suspensions (until_wall);
    """,
    # The digest nonce key survives restarts: a phone's nonce from the previous run is then
    # "stale" (re-challenged silently), not "forged" (counted against it).
    """
    CREATE TABLE auth_secret (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        secret BLOB NOT NULL
    );
    """,
)

#: Larger than any sane expiry; Expires values beyond it are clamped before arithmetic.
_EXPIRES_CEILING = 2**32 - 1


def parse_expires(value: str | int | None) -> int | None:
    """An Expires header / ``expires`` parameter as seconds (RFC 3261 §20.19: delta-seconds).

    Absurdly large values are clamped to 2**32-1 (the caller clamps again to its maximum).
    Raises ValueError for anything that is not a non-negative decimal integer.
    """
    if value is None:
        return None
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"Expires {value} is negative")
        return min(value, _EXPIRES_CEILING)
    text = value.strip()
    if not text.isdigit() or not text.isascii():
        raise ValueError(f"Expires {value!r} is not a number of seconds")
    # Avoid int() of a 10,000-digit string: anything longer than 10 digits is over the ceiling.
    return _EXPIRES_CEILING if len(text.lstrip("0")) > 10 else min(int(text), _EXPIRES_CEILING)


@dataclass(frozen=True, slots=True)
class ContactRequest:
    """One Contact of a REGISTER: its URI (as text) and its own parameters."""

    uri: str
    expires: int | None = None  # the contact's ``expires`` parameter, parsed
    q: float | None = None


@dataclass(frozen=True, slots=True)
class Binding:
    aor: str
    contact: str
    expires_at: float  # Unix time
    call_id: str
    cseq: int
    q: float | None = None
    transport: str = "udp"
    received_host: str = ""
    received_port: int = 0
    path: tuple[str, ...] = ()
    user_agent: str = ""
    registered_at: float = 0.0

    def remaining(self, wall: float) -> int:
        """Seconds left, rounded up (what goes in the 200's ``expires`` parameter)."""
        return max(0, math.ceil(self.expires_at - wall))


@dataclass(frozen=True, slots=True)
class RegisterOutcome:
    status: int
    reason: str
    bindings: tuple[Binding, ...] = ()  # for the 200: every live binding of the AOR
    min_expires: int | None = None  # for a 423
    path: tuple[str, ...] = ()  # echoed in the 200 (RFC 3327 §5.3)
    now: float = 0.0  # the wall time the outcome was computed at

    @property
    def ok(self) -> bool:
        return self.status == 200


@dataclass(slots=True)
class Registrar:
    """RFC 3261 §10.3 bindings for authenticated accounts, stored in ``store``."""

    store: Store
    clock: Clock
    min_expires: int = 60
    max_expires: int = 3600
    default_expires: int = 3600
    max_contacts: int = 10

    def __post_init__(self) -> None:
        if not 0 < self.min_expires <= self.default_expires <= self.max_expires:
            raise ValueError("expiry limits must satisfy 0 < min_expires <= default_expires "
                             f"<= max_expires (got {self.min_expires}, {self.default_expires}, "
                             f"{self.max_expires})")
        if self.max_contacts < 1:
            raise ValueError(f"max_contacts must be at least 1 (got {self.max_contacts})")
        self.store.ensure_schema("registrar", REGISTRAR_MIGRATIONS)

    # -- reading --------------------------------------------------------------------------

    def bindings(self, aor: str) -> list[Binding]:
        """The live bindings of ``aor``, highest q first (absent q counts as 1.0)."""
        # Look up by the primary key prefix only and filter expiry here: with both in the
        # WHERE clause SQLite may pick the expiry index and scan every live binding.
        now = self.clock.wall()
        return list(_by_preference(_bindings(self.store.query(_LIVE_SQL, (aor,)), now)))

    def all_bindings(self) -> list[Binding]:
        now = self.clock.wall()
        rows = self.store.query(f"{_COLUMNS_SQL} WHERE expires_at > ? ORDER BY aor, contact",
                                (now,))
        return _bindings(rows, now)

    def has_binding_from(self, host: str) -> bool:
        """Whether a live binding was registered from ``host`` (its REGISTER's source)."""
        rows = self.store.query("SELECT 1 FROM registrar_bindings WHERE received_host = ? "
                                "AND expires_at > ? LIMIT 1", (host, self.clock.wall()))
        return bool(rows)

    def purge_expired(self) -> int:
        """Delete expired bindings; returns how many."""
        with self.store.transaction() as db:
            cursor = db.execute("DELETE FROM registrar_bindings WHERE expires_at <= ?",
                                (self.clock.wall(),))
            return cursor.rowcount

    # -- the update (RFC 3261 §10.3 steps 6-8) -----------------------------------------------

    def register(self, aor: str, contacts: Sequence[ContactRequest] | None, *,
                 expires_header: int | None, call_id: str, cseq: int, replace: bool,
                 star: bool = False, source: tuple[str, int] = ("", 0),
                 transport: str = "udp", path: Sequence[str] = (),
                 user_agent: str = "") -> RegisterOutcome:
        """Apply one REGISTER for ``aor`` (already authenticated and authorised).

        ``contacts`` None or empty with ``star`` False is a fetch (§10.2.3). ``star`` is
        ``Contact: *`` (§10.2.2): only valid alone and with Expires 0.
        ``replace`` is SS_ENDPOINT_REGISTER_REPLACE (of the request's auth session).
        """
        now = self.clock.wall()
        path = tuple(path)
        if star:
            if contacts:
                return RegisterOutcome(400, "Contact * Must Be Alone", now=now)
            if expires_header != 0:
                return RegisterOutcome(400, "Contact * Requires Expires 0", now=now)
            with self.store.transaction() as db:
                existing = _live(db, aor, now)
                if any(b.call_id == call_id and b.cseq >= cseq for b in existing):
                    return RegisterOutcome(500, "Out Of Order CSeq", now=now)
                db.execute("DELETE FROM registrar_bindings WHERE aor = ?", (aor,))
            return RegisterOutcome(200, "OK", (), path=path, now=now)
        contacts = list(contacts or ())
        if not contacts:
            return RegisterOutcome(200, "OK", tuple(self.bindings(aor)), path=path, now=now)
        if len(contacts) > self.max_contacts:
            return RegisterOutcome(403, "Too Many Contacts", now=now)

        # Expiry of each contact: its own parameter, else the header, else our default.
        wanted: dict[str, tuple[ContactRequest, int]] = {}
        for contact in contacts:
            expires = contact.expires if contact.expires is not None else expires_header
            expires = self.default_expires if expires is None else expires
            if 0 < expires < self.min_expires:
                return RegisterOutcome(423, "Interval Too Brief", min_expires=self.min_expires,
                                       now=now)
            if contact.q is not None and not 0.0 <= contact.q <= 1.0:
                return RegisterOutcome(400, "Bad q Value", now=now)
            wanted[contact.uri] = (contact, min(expires, self.max_expires))

        with self.store.transaction() as db:
            existing = {b.contact: b for b in _live(db, aor, now)}
            for uri in wanted:
                old = existing.get(uri)
                if old is not None and old.call_id == call_id and old.cseq >= cseq:
                    return RegisterOutcome(500, "Out Of Order CSeq", now=now)
            others = [b for b in existing.values()
                      if b.call_id != call_id and b.contact not in wanted]
            adding = any(expires > 0 for _, expires in wanted.values())
            if others and adding and not replace:
                # SS_ENDPOINT_REGISTER_REPLACE=Off: the living registration wins.
                return RegisterOutcome(403, "Already Registered", now=now)
            # Decide everything before writing anything: a refusal leaves the AOR untouched.
            removed = {b.contact for b in others} if adding else set()
            removed |= {uri for uri, (_, expires) in wanted.items() if expires == 0}
            kept = (set(existing) - removed) | {uri for uri, (_, expires) in wanted.items()
                                                if expires > 0}
            if len(kept) > self.max_contacts:
                return RegisterOutcome(403, "Too Many Contacts", now=now)
            for uri in removed:
                db.execute("DELETE FROM registrar_bindings WHERE aor = ? AND contact = ?",
                           (aor, uri))
            final = {uri: b for uri, b in existing.items() if uri not in removed}
            for uri, (contact, expires) in wanted.items():
                if expires == 0:
                    continue
                binding = Binding(aor=aor, contact=uri, expires_at=now + expires,
                                  call_id=call_id, cseq=cseq, q=contact.q, transport=transport,
                                  received_host=source[0], received_port=source[1], path=path,
                                  user_agent=user_agent, registered_at=now)
                _upsert(db, binding)
                final[uri] = binding
        return RegisterOutcome(200, "OK", _by_preference(final.values()), path=path, now=now)


def _by_preference(bindings: Iterable[Binding]) -> tuple[Binding, ...]:
    """Highest q first (absent q counts as 1.0, RFC 3261 §20.10), then most recent."""
    return tuple(sorted(bindings, key=lambda b: (-(1.0 if b.q is None else b.q),
                                                 -b.registered_at, b.contact)))


# Columns in Binding's field order: rows become Bindings without a dict per row.
_COLUMNS_SQL = ("SELECT aor, contact, expires_at, call_id, cseq, q, transport, received_host,"
                " received_port, path, user_agent, registered_at FROM registrar_bindings")
_LIVE_SQL = f"{_COLUMNS_SQL} WHERE aor = ?"


def _bindings(rows: Iterable[Sequence[Any]], now: float) -> list[Binding]:
    """Rows of :data:`_COLUMNS_SQL` as Bindings, those expired at ``now`` left out."""
    return [Binding(a, c, expires_at, i, n, q, t, rh, rp,
                    () if path == "[]" else tuple(json.loads(path)), ua, reg)
            for a, c, expires_at, i, n, q, t, rh, rp, path, ua, reg in rows
            if expires_at > now]


def _live(db: sqlite3.Connection, aor: str, now: float) -> list[Binding]:
    return _bindings(db.execute(_LIVE_SQL, (aor,)), now)


# An upsert that updates a refreshed binding in place (same rowid): SQLite then rewrites the
# row and the expiry index only, not the primary-key index as INSERT OR REPLACE (delete +
# insert) does; fewer pages per commit. The row ends up the same either way.
_UPSERT_SQL = (
    "INSERT INTO registrar_bindings (aor, contact, expires_at, q, call_id, cseq,"
    " transport, received_host, received_port, path, user_agent, registered_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (aor, contact) DO UPDATE SET expires_at = excluded.expires_at,"
    " q = excluded.q, call_id = excluded.call_id, cseq = excluded.cseq,"
    " transport = excluded.transport, received_host = excluded.received_host,"
    " received_port = excluded.received_port, path = excluded.path,"
    " user_agent = excluded.user_agent, registered_at = excluded.registered_at")


def _upsert(db: sqlite3.Connection, binding: Binding) -> None:
    db.execute(
        _UPSERT_SQL,
        (binding.aor, binding.contact, binding.expires_at, binding.q, binding.call_id,
         binding.cseq, binding.transport, binding.received_host, binding.received_port,
         json.dumps(list(binding.path)) if binding.path else "[]", binding.user_agent,
         binding.registered_at))


class SqliteAuthJournal:
    """:class:`vosapp.switch.auth.AuthJournal` in the store: tables ``auth_events`` and
    ``auth_suspensions``, readable by ``vosapp auth ...`` from another process."""

    def __init__(self, store: Store) -> None:
        self.store = store
        store.ensure_schema("auth", AUTH_MIGRATIONS)

    def digest_secret(self) -> bytes:
        """The switch's digest key, created on first use and kept in the store."""
        with self.store.transaction() as db:
            row = db.execute("SELECT secret FROM auth_secret WHERE id = 1").fetchone()
            if row is not None:
                return bytes(row[0])
            secret = os.urandom(32)
            db.execute("INSERT INTO auth_secret (id, secret) VALUES (1, ?)", (secret,))
            return secret

    # AuthJournal
    def record(self, event: AuthEvent) -> None:
        with self.store.transaction() as db:
            db.execute("INSERT INTO auth_events (wall, source_host, source_port, user, method,"
                       " reason, call_id, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (event.wall, event.source_host, event.source_port, event.user,
                        event.method, event.reason, event.call_id, event.detail))

    def suspended(self, suspension: Suspension) -> None:
        with self.store.transaction() as db:
            db.execute("INSERT INTO auth_suspensions (user, source_host, scope, since_wall,"
                       " until_wall, failures) VALUES (?, ?, ?, ?, ?, ?)",
                       (suspension.user, suspension.source_host, suspension.scope.value,
                        suspension.since_wall, suspension.until_wall, suspension.failures))

    def lifted(self, suspension: Suspension) -> bool:
        rows = self.store.query(
            "SELECT 1 FROM auth_suspensions WHERE user = ? AND source_host = ? AND scope = ?"
            " AND since_wall = ? AND lifted_at IS NOT NULL LIMIT 1",
            (suspension.user, suspension.source_host, suspension.scope.value,
             suspension.since_wall))
        return bool(rows)

    # reading and operator actions (CLI, lab)
    def events(self, *, limit: int = 50, user: str | None = None,
               source_host: str | None = None) -> list[AuthEvent]:
        where, args = _filters(user=user, source_host=source_host)
        rows = self.store.query(f"SELECT * FROM auth_events {where} ORDER BY id DESC LIMIT ?",
                                (*args, limit))
        return [AuthEvent(wall=r["wall"], source_host=r["source_host"],
                          source_port=r["source_port"], user=r["user"], method=r["method"],
                          reason=r["reason"], call_id=r["call_id"], detail=r["detail"])
                for r in reversed(rows)]

    def active_suspensions(self, wall: float) -> list[Suspension]:
        rows = self.store.query("SELECT * FROM auth_suspensions WHERE until_wall > ? AND "
                                "lifted_at IS NULL ORDER BY until_wall", (wall,))
        return [Suspension(user=r["user"], source_host=r["source_host"],
                           scope=SuspensionScope(r["scope"]), since_wall=r["since_wall"],
                           until_wall=r["until_wall"], until=0.0, failures=r["failures"])
                for r in rows]

    def prune(self, keep_events: int) -> int:
        """Keep the newest ``keep_events`` audit rows (a flood must not fill the disk)."""
        with self.store.transaction() as db:
            cursor = db.execute("DELETE FROM auth_events WHERE id <= "
                                "(SELECT MAX(id) FROM auth_events) - ?", (keep_events,))
            return cursor.rowcount

    def lift(self, target: str, wall: float, by: str) -> int:
        """Mark active suspensions of user or address ``target`` as lifted; returns how many."""
        with self.store.transaction() as db:
            cursor = db.execute(
                "UPDATE auth_suspensions SET lifted_at = ?, lifted_by = ? WHERE lifted_at IS "
                "NULL AND until_wall > ? AND (user = ? OR source_host = ?)",
                (wall, by, wall, target, target))
            count = cursor.rowcount
            if count:
                db.execute("INSERT INTO auth_events (wall, source_host, source_port, user,"
                           " method, reason, call_id, detail) VALUES (?, ?, 0, ?, '-',"
                           " 'unsuspended', '', ?)",
                           (wall, target if _looks_like_address(target) else "",
                            "" if _looks_like_address(target) else target,
                            f"{count} suspension(s) lifted by {by}"))
            return count


def _looks_like_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _filters(**values: str | None) -> tuple[str, tuple[str, ...]]:
    clauses = [f"{name} = ?" for name, value in values.items() if value is not None]
    args = tuple(value for value in values.values() if value is not None)
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", args


# -- the REGISTER handler --------------------------------------------------------------------

class RegistrarService:
    """REGISTER served by the switch core: SPEC §2 authentication, then RFC 3261 §10.3.

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
        # New values reach new auth sessions (SPEC §1), however they were changed:
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
        to_user = getattr(request.to.uri, "user", None) or ""
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
PURGE_INTERVAL = 60.0
#: Audit rows kept in the store (the oldest beyond this are pruned with expired bindings).
AUDIT_ROWS_KEPT = 200_000
REALM = "vosapp"


def install(core: SwitchCore) -> None:
    """Feature installer for :mod:`vosapp.io.runtime` (``vosapp.switch.registrar:install``).

    Accounts come from ``core.config``; bindings, audit trail and suspensions go to
    ``core.store``. Without a store (no data directory) a private temporary store is used and
    bindings do not survive a restart (said once in the trace).
    """
    store = core.store
    if store is None:
        import shutil
        import tempfile
        import weakref

        directory = tempfile.mkdtemp(prefix="vosapp-registrar-")
        store = Store.open(directory)
        # Removed with the core (or at interpreter exit), not at stop: a REGISTER may still
        # arrive between the stop hooks and the transports closing.
        weakref.finalize(core, _remove_store, store, directory, shutil.rmtree)
        core.trace.event(f"registrar: no data directory, bindings kept in {store.path} "
                         "(lost on restart)")
    config = core.config
    # A dict, not Config.account's linear scan: it runs twice per REGISTER.
    by_user = {account.user: account for account in config.accounts} if config else {}
    accounts: AccountLookup = by_user.get
    service = build_registrar_service(core, accounts=accounts, store=store, realm=REALM)
    policy = service.authenticator.policy
    policy.listeners.append(
        lambda event: core.trace.event(
            f"auth {event.reason}: {event.method} user={event.user!r} "
            f"from {event.source_host}:{event.source_port} {event.detail}".rstrip(),
            call_id=event.call_id or None, src=(event.source_host, event.source_port)))
    core.registrar_service = service  # type: ignore[attr-defined]  # for the lab / tests

    journal = policy.journal

    def purge() -> None:
        try:
            service.registrar.purge_expired()
            if isinstance(journal, SqliteAuthJournal):
                journal.prune(AUDIT_ROWS_KEPT)
        finally:
            if core.running:
                core.clock.call_later(PURGE_INTERVAL, purge)

    core.add_start_hook(lambda: core.clock.call_later(PURGE_INTERVAL, purge) and None)

    # SS_REPLY_UNAUTHORIZED=Off: a registered phone's address still gets answers (SPEC §2.1).
    core.known_sources.append(service.registrar.has_binding_from)

    keepalive = NatKeepAlive(core, service.registrar)
    keepalive.install()
    core.nat_keepalive = keepalive  # type: ignore[attr-defined]  # for the lab / tests


def _remove_store(store: Store, directory: str, rmtree: Callable[..., None]) -> None:
    store.close()
    rmtree(directory, ignore_errors=True)


# -- NAT keep-alive (SS_SIP_NAT_KEEP_ALIVE_PERIOD / SS_SIP_NAT_KEEP_ALIVE_MESSAGE) -------------

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
    return not _same_host(host, binding.received_host)


def _same_host(a: str, b: str) -> bool:
    a, b = a.strip("[]"), b.strip("[]")
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return a.lower() == b.lower()


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
