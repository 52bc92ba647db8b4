"""Registrar (RFC 3261 §10.3) with bindings in SQLite, the SQLite auth journal, the REGISTER
handler and NAT keep-alive for registered terminals.

Modules, one concern each:

- :mod:`.model` -- the values: :class:`Binding`, :class:`ContactRequest`,
  :class:`RegisterOutcome`, :func:`parse_expires`.
- :mod:`.logic` -- :class:`Registrar`, the sans-IO §10.3 rules (expiry, replace, CSeq order).
- :mod:`.bindings_store` -- the ``registrar_bindings`` table and its SQL.
- :mod:`.auth_journal` -- :class:`SqliteAuthJournal`, the audit trail, suspensions and digest
  key of :mod:`vosapp.switch.auth` in the store.
- :mod:`.service` -- :class:`RegistrarService` (REGISTER in the switch core),
  :func:`build_registrar_service` and the feature installer :func:`install`.
- :mod:`.nat_keepalive` -- :class:`NatKeepAlive` and the :func:`behind_nat` rule.

The names below are the package's API: ``from vosapp.switch.registrar import Registrar``.
"""

from vosapp.switch.registrar.auth_journal import AUTH_MIGRATIONS, SqliteAuthJournal
from vosapp.switch.registrar.bindings_store import REGISTRAR_MIGRATIONS
from vosapp.switch.registrar.logic import Registrar
from vosapp.switch.registrar.model import (
    Binding,
    ContactRequest,
    RegisterOutcome,
    parse_expires,
)
from vosapp.switch.registrar.nat_keepalive import NatKeepAlive, behind_nat
from vosapp.switch.registrar.service import RegistrarService, build_registrar_service, install

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
    "install",
    "parse_expires",
]
