"""Group commit for the datagrams of one wake-up of the SIP UDP socket.

The switch writes to its store before it sends the message a write records: a CDR row before
the INVITE leaves for the vendor, the dialogs before the 2xx is relayed, a binding before the
REGISTER's 200 (vosapp.switch.call.journal, vosapp.switch.registrar). Each such write was its
own transaction: a BEGIN IMMEDIATE, a COMMIT, their file locks and WAL frames, several per
call. When :class:`~vosapp.io.udp.UdpTransport` handles the datagrams already queued on its
socket in one go (``DRAIN_BATCH``), their writes share one transaction instead
(:meth:`vosapp.store.Store.begin_batch`: each write still atomic on its own), and the
UDP datagrams they answer with wait in :attr:`GroupCommit.held` until it is committed. So
"committed before sent" still holds for every message; the batch only adds, to a message that
follows a write, the time the rest of its batch takes (at most ``DRAIN_BATCH`` datagrams).

A message that cannot wait (TCP, or UDP to a host name still to be resolved, whose failure
the sender must hear at once) first commits the batch and sends what it held, then goes: the
order of sends is kept. Nothing is held while the batch has written nothing.

Compiled with vosapp/io/udp_wire.py (vosapp/compiled.py): :meth:`GroupCommit.hold` runs for
every datagram the switch sends.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final

from vosapp.store import StoreError

if TYPE_CHECKING:
    from vosapp.io.udp_wire import UdpWire
    from vosapp.net import AddressObject
    from vosapp.store import Store
    from vosapp.trace import Trace

__all__ = ["GroupCommit"]

log: Final = logging.getLogger(__name__)


class GroupCommit:
    """One wake-up's store transaction and the datagrams that wait for it."""

    __slots__ = ("held", "store", "trace", "udp")

    def __init__(self, store: Store, udp: UdpWire, trace: Trace) -> None:
        self.store = store
        self.udp = udp
        self.trace = trace
        #: UDP datagrams (and destinations) sent during the batch after a write, in order.
        self.held: list[tuple[bytes, AddressObject]] = []

    def begin(self) -> None:
        self.store.begin_batch()

    def end(self) -> None:
        """Commit and send what waited; the batch closes even when the commit fails."""
        try:
            self.release()
        finally:
            self.store.end_batch()

    def hold(self, data: bytes, destination: AddressObject) -> bool:
        """Keep ``data`` for after the commit when the batch has uncommitted writes and the
        datagram can go later without an answer now (an IP address, the socket open); when
        it cannot, commit first (:meth:`release`) and return False: the caller sends."""
        if not self.store.batch_pending:
            return False
        if self.udp.sends_at_once(destination):
            self.held.append((data, destination))
            return True
        self.release()
        return False

    def release(self) -> None:
        """Commit the batch's writes so far, then send the datagrams that waited for them.
        A failed commit is logged and traced; the datagrams still go, as a failed write
        never held a call or a registration back (the write's own error was logged)."""
        try:
            self.store.commit_batch()
        except StoreError as exc:
            log.error("%s", exc)
            self.trace.event(f"store: {exc}")
        held, self.held = self.held, []
        for data, destination in held:
            self.udp.send_datagram(data, destination)
