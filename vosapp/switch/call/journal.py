"""The call journal: what the call feature writes to the store so that a crash loses no CDR
and leaves no far leg up (what Kamailio's dialog module gives with a database).

The handler calls the journal at each state change of a call; each call is one short
transaction (:class:`~vosapp.switch.cdr.CdrWriter`), committed before the SIP message it
records is sent on:

* :meth:`CallJournal.attempted` -- the CDR row, still open, before the first INVITE leaves
  for a vendor (a call refused before that is written once, at its end);
* :meth:`CallJournal.answered` -- the answer and both legs' dialogs (Call-ID, tags, URIs,
  route set, remote target, a CSeq ceiling, transport and destination) before the vendor is
  ACKed and the 2xx relayed to the caller;
* :meth:`CallJournal.sync_leg` -- before a request is built on a leg (and after the peer's
  target refresh): when the next CSeq would pass the stored ceiling the ceiling is raised by
  :data:`CSEQ_BLOCK` (one write per 100 in-dialog requests, not one per request), and a
  remote target that changed is saved;
* :meth:`CallJournal.ended` -- the row closed and the dialogs forgotten.

Every :data:`HEARTBEAT_INTERVAL` seconds of the core clock the switch writes when it was last
alive. When it starts (a start hook: the transports are bound by then), and holds the data
directory's lock (no other switch runs on it), it closes the rows a crash left open (end reason "switch restarted", end time the last heartbeat) and sends a
BYE on each leg of those calls, built from the stored dialog with a CSeq above the ceiling
(RFC 3261 §12.2.1.1), in the normal non-INVITE client transaction; the outcome goes to the
trace. A store that fails a write is logged and traced; the call goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vosapp.sip.dialog import Dialog, DialogState
from vosapp.sip.headers import parse_name_addr, parse_vias
from vosapp.sip.transaction import DeliverResponse, TimedOut, TransportFailed
from vosapp.sip.uri import parse_any_uri
from vosapp.switch.cdr import RESTARTED, ClosedCall, DialogRecord

if TYPE_CHECKING:
    from vosapp.net import Address
    from vosapp.switch.call.legs import Call
    from vosapp.switch.cdr import CdrWriter
    from vosapp.switch.core import SwitchCore

log = logging.getLogger(__name__)

#: Seconds between two "alive at" writes: a crash's open calls end at most this late.
HEARTBEAT_INTERVAL = 5.0
#: CSeq numbers reserved per write: the stored ceiling is raised in steps of this size.
CSEQ_BLOCK = 100


@dataclass
class _Saved:
    """What the store has for one leg: its remote target (the object saved, compared by
    identity: a target refresh replaces it) and the CSeq ceiling."""

    target: object
    ceiling: int


def dialog_record(side: str, dialog: Dialog, destination: Address, transport: str,
                  ceiling: int) -> DialogRecord:
    return DialogRecord(side, dialog.call_id, dialog.local_tag, dialog.remote_tag,
                        str(dialog.local_uri), str(dialog.remote_uri),
                        str(dialog.remote_target),
                        tuple(str(route) for route in dialog.route_set), ceiling, transport,
                        destination[0], destination[1])


def restore_dialog(record: DialogRecord) -> Dialog:
    """The confirmed dialog ``record`` was saved from; its next request's CSeq is above every
    CSeq sent on the leg before."""
    return Dialog(call_id=record.call_id, local_tag=record.local_tag,
                  remote_tag=record.remote_tag, local_uri=parse_name_addr(record.local_uri),
                  remote_uri=parse_name_addr(record.remote_uri),
                  remote_target=parse_any_uri(record.remote_target),
                  route_set=[parse_name_addr(route) for route in record.route_set],
                  local_seq=record.cseq, state=DialogState.CONFIRMED)


class CallJournal:
    """The call feature's writes to the store (see the module docstring)."""

    def __init__(self, core: SwitchCore, cdr: CdrWriter,
                 heartbeat_interval: float = HEARTBEAT_INTERVAL) -> None:
        self.core = core
        self.cdr = cdr
        self.heartbeat_interval = heartbeat_interval
        self._saved: dict[tuple[str, str], _Saved] = {}  # (caller's Call-ID, side)

    # ---------------------------------------------------------------- call steps
    def attempted(self, call: Call) -> None:
        self._safely("attempt", self.cdr.attempted, call.record)

    def answered(self, call: Call) -> None:
        attempt = call.answered
        where: dict[str, tuple[Address, str]] = {"a": (call.a_source, call.a_transport)}
        if attempt is not None:
            where["b"] = (attempt.destination, attempt.transport)
        records = []
        for side, (destination, transport) in where.items():
            dialog = call.legs[side].dialog
            if dialog is None:
                continue
            ceiling = (dialog.local_seq or 0) + CSEQ_BLOCK
            self._saved[(call.call_id, side)] = _Saved(dialog.remote_target, ceiling)
            records.append(dialog_record(side, dialog, destination, transport, ceiling))
        self._safely("answer", self.cdr.answered, call.record, records)

    def sync_leg(self, call: Call, side: str) -> None:
        saved = self._saved.get((call.call_id, side))
        dialog = call.legs[side].dialog
        if saved is None or dialog is None:
            return
        next_cseq = (dialog.local_seq or 0) + 1
        if dialog.remote_target is saved.target and next_cseq <= saved.ceiling:
            return
        saved.target = dialog.remote_target
        saved.ceiling = max(saved.ceiling, next_cseq - 1 + CSEQ_BLOCK)
        self._safely("dialog update", self.cdr.dialog_changed, call.record, side,
                     str(dialog.remote_target), saved.ceiling)

    def ended(self, call: Call) -> None:
        for side in ("a", "b"):
            self._saved.pop((call.call_id, side), None)
        self._safely("end", self.cdr.write, call.record)

    def _safely(self, what: str, write: Callable[..., None], *args: Any) -> None:
        try:
            write(*args)
        except Exception as exc:  # a broken store must not drop the call
            log.exception("CDR %s write failed", what)
            self.core.trace.event(f"CDR {what} write failed: {exc}")

    # ---------------------------------------------------------------- liveness
    def start(self) -> None:
        """Start hook: close what a crash left open, then keep the heartbeat -- unless another
        switch runs on the same data directory (its open calls are live)."""
        if not self.cdr.take_over():
            if self.cdr.store is not None:
                self.core.trace.event("another switch uses this data directory: its open "
                                      "calls are left alone, no heartbeat from this one")
            return
        try:
            closed = self.cdr.close_open(RESTARTED)
        except Exception as exc:  # the switch still starts
            log.exception("closing the calls left open failed")
            self.core.trace.event(f"restart: closing the calls left open failed: {exc}")
            closed = []
        for call in closed:
            self._hang_up(call)
        self._heartbeat()

    def _heartbeat(self) -> None:
        if not self.core.running:  # stopped: its calls were hung up, nothing is left open
            return
        self._safely("heartbeat", self.cdr.heartbeat, self.core.clock.wall())
        self.core.clock.call_later(self.heartbeat_interval, self._heartbeat)

    def _hang_up(self, call: ClosedCall) -> None:
        self.core.trace.event(f"restart: call {call.callee} was up when the switch stopped; "
                              f"CDR closed at its last heartbeat, BYE to {len(call.dialogs)} "
                              "leg(s)", call_id=call.call_id)
        log.info("call %s (%s) was left up: CDR closed (%s), BYE on %d leg(s)", call.call_id,
                 call.callee, RESTARTED, len(call.dialogs))
        for record in call.dialogs:
            leg = "caller" if record.side == "a" else "vendor"
            destination = (record.host, record.port)
            try:
                dialog = restore_dialog(record)
                bye = dialog.create_request(
                    "BYE", via=parse_vias(self.core.new_via(record.transport))[0])
                self.core.send_request(bye, destination, record.transport,
                                       self._bye_outcome(call, leg))
            except Exception as exc:  # noqa: BLE001 - a bad stored row, a dead address
                log.warning("restart: BYE on the %s leg of %s failed: %s", leg, call.call_id,
                            exc)
                self.core.trace.event(f"restart: BYE on the {leg} leg failed: {exc}",
                                      call_id=call.call_id)

    def _bye_outcome(self, call: ClosedCall, leg: str) -> Callable[[Any], None]:
        def outcome(event: Any) -> None:
            if isinstance(event, DeliverResponse) and event.response.status >= 200:
                text = f"{event.response.status} {event.response.reason}"
            elif isinstance(event, (TimedOut, TransportFailed)):
                text = "no answer" if isinstance(event, TimedOut) else "transport failure"
            else:
                return
            self.core.trace.event(f"restart: BYE on the {leg} leg: {text}",
                                  call_id=call.call_id)
            log.info("restart: BYE on the %s leg of %s: %s", leg, call.call_id, text)

        return outcome


__all__ = ["CSEQ_BLOCK", "HEARTBEAT_INTERVAL", "CallJournal", "dialog_record",
           "restore_dialog"]
