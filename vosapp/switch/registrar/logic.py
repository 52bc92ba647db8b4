"""Registrar (RFC 3261 §10.3): the bindings of authenticated accounts, kept in SQLite.

Sans-IO: :class:`Registrar` takes the facts of an authenticated REGISTER (address of record,
contacts, Expires, Call-ID/CSeq, source address, Path) and returns a :class:`RegisterOutcome`
(status, reason, the bindings to list in the 200, Min-Expires for a 423). The REGISTER handler
(:class:`~vosapp.switch.registrar.service.RegistrarService`) turns SIP messages into these calls.

Persistence: every change of an address of record is one SQLite transaction (``BEGIN
IMMEDIATE`` ... ``COMMIT``: a :class:`vosapp.store_transaction.StoreTransaction`, what
:meth:`vosapp.store.Store.transaction` returns, made here directly and asked for the memo and
the statement cursor, so each is a compiled call and no cursor is made per statement;
docs/benchmarks.md, thirty-seventh round), so a process killed mid-write loses only the
registration it had not yet answered; WAL keeps what was committed.
The table and its SQL are in :mod:`vosapp.switch.registrar.bindings_store`.

Reads: a REGISTER reads its account's bindings from the store's memo (written through: each
REGISTER leaves there what it wrote, in the same transaction), from the table only the first
time, or when the memo was emptied because it could differ from the file (another process
committed, a write rolled back: :meth:`vosapp.store.Store.memo`). Kamailio's usrloc in
write-through mode reads its bindings from memory the same way. The memo holds the bindings
the table holds, until the periodic purge deletes the expired ones from both.

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

import sqlite3
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Final

from vosapp.clock import Clock
from vosapp.store import Store
from vosapp.store_transaction import StoreTransaction
from vosapp.switch.registrar.bindings_store import (
    COLUMNS_SQL,
    LIVE_SQL,
    REGISTRAR_MIGRATIONS,
    bindings_from_rows,
    live_bindings,
    write,
)
from vosapp.switch.registrar.model import Binding, ContactRequest, RegisterOutcome

#: The store's memo of the bindings (:meth:`vosapp.store.Store.memo`): address of record ->
#: contact -> Binding, as committed (expired ones are left out on reading).
MEMO: Final = "registrar_bindings"


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
        # Look up by the primary-key prefix (one index seek) and filter expiry here.
        now = self.clock.wall()
        return list(_by_preference(bindings_from_rows(self.store.query(LIVE_SQL, (aor,)), now)))

    def all_bindings(self) -> list[Binding]:
        now = self.clock.wall()
        rows = self.store.query(f"{COLUMNS_SQL} WHERE expires_at > ? ORDER BY aor, contact",
                                (now,))
        return bindings_from_rows(rows, now)

    def has_binding_from(self, host: str) -> bool:
        """Whether a live binding was registered from ``host`` (its REGISTER's source)."""
        rows = self.store.query("SELECT 1 FROM registrar_bindings WHERE received_host = ? "
                                "AND expires_at > ? LIMIT 1", (host, self.clock.wall()))
        return bool(rows)

    def purge_expired(self) -> int:
        """Delete expired bindings; returns how many."""
        transaction = StoreTransaction(self.store)
        with transaction as db:
            memo = transaction.memo(MEMO)
            gone = db.execute("DELETE FROM registrar_bindings WHERE expires_at <= ?"
                              " RETURNING aor, contact", (self.clock.wall(),)).fetchall()
            for aor, contact in gone:
                known = memo.get(aor)
                if known is not None:
                    known.pop(contact, None)
                    if not known:
                        del memo[aor]
            return len(gone)

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
            transaction = StoreTransaction(self.store)
            with transaction as db:
                memo = transaction.memo(MEMO)
                living = _live(memo, db, aor, now)
                if any(b.call_id == call_id and b.cseq >= cseq for b in living.values()):
                    return RegisterOutcome(500, "Out Of Order CSeq", now=now)
                db.execute("DELETE FROM registrar_bindings WHERE aor = ?", (aor,))
                memo[aor] = {}
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

        # (the savepoint deferred: the usual REGISTER writes one statement, see below)
        transaction = StoreTransaction(self.store, True)
        with transaction as db:
            memo = transaction.memo(MEMO)
            existing = _live(memo, db, aor, now)
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
            # (Plain loops, not comprehensions: each of those is a function call, and the
            # usual REGISTER refreshes one binding.)
            removed = {b.contact for b in others} if others and adding else set()
            upserts = 0
            for uri, (_, expires) in wanted.items():
                if expires == 0:
                    removed.add(uri)
                else:
                    upserts += 1
            # What stays bound is within existing + wanted: counted only when that could
            # exceed the limit.
            if len(existing) + len(wanted) > self.max_contacts:
                kept = (set(existing) - removed) | {uri for uri, (_, expires) in wanted.items()
                                                    if expires > 0}
                if len(kept) > self.max_contacts:
                    return RegisterOutcome(403, "Too Many Contacts", now=now)
            final = dict(existing)
            # Nothing below raises after the writes (the memo's update is a dict's): with
            # one statement the block is atomic without its savepoint (a refresh's UPDATE
            # that finds no row writes nothing before its UPSERT: bindings_store.write).
            transaction.writing(len(removed) + upserts)
            for uri in removed:
                db.execute("DELETE FROM registrar_bindings WHERE aor = ? AND contact = ?",
                           (aor, uri))
                final.pop(uri, None)
            for uri, (contact, expires) in wanted.items():
                if expires == 0:
                    continue
                binding = Binding(aor=aor, contact=uri, expires_at=now + expires,
                                  call_id=call_id, cseq=cseq, q=contact.q, transport=transport,
                                  received_host=source[0], received_port=source[1], path=path,
                                  user_agent=user_agent, registered_at=now)
                write(transaction.cursor, binding, existing.get(uri))
                final[uri] = binding
            memo[aor] = final
        return RegisterOutcome(200, "OK", _by_preference(final.values()), path=path, now=now)


def _live(memo: dict[str, dict[str, Binding]], db: sqlite3.Connection, aor: str,
          now: float) -> dict[str, Binding]:
    """The live bindings of ``aor`` by contact (not to be changed: it may be the memo's):
    from the memo, read from the table when the memo has none for it (the first REGISTER
    since start, or since the memo was emptied)."""
    known = memo.get(aor)
    if known is None:
        known = memo[aor] = {b.contact: b for b in live_bindings(db, aor, now)}
        return known
    return {contact: b for contact, b in known.items() if b.expires_at > now}


def _by_preference(bindings: Collection[Binding]) -> tuple[Binding, ...]:
    """Highest q first (absent q counts as 1.0, RFC 3261 §20.10), then most recent."""
    if len(bindings) < 2:
        return tuple(bindings)  # the usual AOR: one phone, nothing to order
    return tuple(sorted(bindings, key=_preference))


def _preference(binding: Binding) -> tuple[float, float, str]:
    return (-(1.0 if binding.q is None else binding.q), -binding.registered_at, binding.contact)
