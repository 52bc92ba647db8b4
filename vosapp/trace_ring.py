"""The trace's ring and its queue to the store: what :class:`vosapp.trace.Trace` holds, written
by compiled code.

The switch records every message it receives and sends (four per registration), and the
recording is done here, compiled with the switch's request path (vosapp/compiled.py): run
as Python, it was ~29 thousand instructions of a registration's ~514 thousand in process
(docs/benchmarks.md, thirty-third round). What needs the records themselves (building one,
the subscribers, reading, the SQLite copy) stays in vosapp/trace.py, which calls in here.

The ring holds a message as a :class:`WireMessage` (times, direction, transport, addresses,
bytes, note) until something reads it, and a record (an event, or a message once built) as
it is.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, TypeAlias

from vosapp.net import Address, as_address

if TYPE_CHECKING:
    from vosapp.clock import Clock


#: How long :meth:`TraceRing.message` times records with one offset between a clock's wall
#: and monotonic times (seconds).
WALL_OFFSET_KEPT: Final = 1.0

#: A message on the wire as :class:`WireMessage` gives it (the arguments of
#: ``vosapp.trace._fill_slots``): mono, wall, direction, transport, src, dst, raw, note.
WireFields: TypeAlias = tuple[float, float, str, str, Address, Address, bytes, str]


class WireMessage:
    """A message on the wire as the ring and the store's queue hold it until something asks
    for its record (most are never looked at: a registration records four).

    One object, its times kept as C doubles and its addresses as (host, port) pairs inside
    it: the tuple it replaces (with its two floats and two address tuples, and their ports)
    was eight objects per message that lived as long as the ring keeps the message (its
    capacity, 10,000 messages by default) and that the young GC scanned once each
    (docs/benchmarks.md, thirty-ninth round). An address of another shape (an IPv6
    socket's 4-tuple, a list) is held as a tuple instead (:meth:`TraceRing.message`)."""

    def __init__(self, mono: float, wall: float, direction: str, transport: str, src: Address,
                 dst: Address, raw: bytes, note: str) -> None:
        self.mono = mono
        self.wall = wall
        self.direction = direction
        self.transport = transport
        self.src = src
        self.dst = dst
        self.raw = raw
        self.note = note

    def fields(self) -> WireFields:
        """mono, wall, direction, transport, src, dst, raw, note."""
        return (self.mono, self.wall, self.direction, self.transport, self.src, self.dst,
                self.raw, self.note)


class TraceRing:
    """The bounded ring of held messages and records, its count, and the store's queue."""

    def __init__(self, capacity: int, clock: Clock | None = None) -> None:
        #: What times a message (Trace.clock); None: the monotonic and wall clocks.
        self.clock = clock
        #: A message (a WireMessage, or its tuple) or a record (typed loosely: vosapp.trace's
        #: types are not imported by compiled code, which would import the module that
        #: imports this one).
        self.ring: deque[Any] = deque(maxlen=capacity)
        #: Guards ring and added together: readers on other threads number what they read.
        self.lock = threading.Lock()
        # The ring's append and the lock's acquire and release, bound once: compiled, a
        # method of a Python object called by name is looked up on each call, three a message.
        self._append: Callable[[Any], None] = self.ring.append
        self._acquire: Callable[[], object] = self.lock.acquire
        self._release: Callable[[], None] = self.lock.release
        #: Entries ever held: the newest one's number (Trace.numbered_since).
        self.added = 0
        #: What the store has not been given yet (only while ``flush`` is set).
        self.pending: list[Any] = []
        #: Entries per write to the store (Trace.batch_size).
        self.batch_size = 64
        #: Trace.flush, while a store keeps a copy: called when ``pending`` holds a batch.
        self.flush: Callable[[], object] | None = None
        #: The clock whose wall() - now() is _wall_offset, read at _offset_from, kept until
        #: _offset_until (message).
        self._offset_clock: object = None
        self._wall_offset = 0.0
        self._offset_from = 0.0
        self._offset_until = 0.0
        #: Trace's, while anything subscribes: given every entry instead of :meth:`keep`, it
        #: builds the entry's record, keeps that, and hands it to the subscribers.
        self.publish: Callable[[Any], None] | None = None

    def message(self, direction: str, transport: str, src: Any, dst: Any,
                raw: bytes | bytearray | memoryview, note: str = "") -> None:
        """Record a message on the wire (:attr:`vosapp.trace.Trace.message`). ``src`` and
        ``dst`` are addresses as any caller has them (typed ``Any``: compiled, an
        ``Address`` parameter would refuse a list, or a 4-tuple IPv6 socket address)."""
        clock = self.clock
        # one statement each: compiled, a pair assigned at once is built as a tuple first
        if clock is None:
            mono = time.monotonic()
            wall = time.time()
        else:
            mono = clock.now()
            # The wall time as the monotonic time plus the clock's offset between them, read
            # again once a WALL_OFFSET_KEPT: a clock's wall() was a call per message, four a
            # registration (docs/benchmarks.md, forty-first round). A step of the wall clock
            # shows within that second; the order of records is the monotonic time's.
            if (clock is not self._offset_clock or mono >= self._offset_until
                    or mono < self._offset_from):
                self._offset_clock = clock
                self._wall_offset = clock.wall() - mono
                self._offset_from = mono
                self._offset_until = mono + WALL_OFFSET_KEPT
            wall = mono + self._wall_offset
        # the switch's transports are upper case already: no new str, and no call, per message
        if transport != "UDP" and not transport.isupper():
            transport = transport.upper()
        # the bytes the socket gave: no call (bytes() of bytes costs a call of the type, ~800
        # instructions)
        data = raw if type(raw) is bytes else bytes(raw)
        held: Any = None
        if type(src) is tuple and type(dst) is tuple and len(src) == 2 and len(dst) == 2:
            try:
                held = WireMessage(mono, wall, direction, transport, src, dst, data, note)
            except TypeError:  # compiled, a pair that is not (str, int) is not an Address
                pass
        if held is None:  # held as a tuple, an address as a tuple (a list after JSON made one)
            held = (mono, wall, direction, transport,
                    src if type(src) is tuple else as_address(src),
                    dst if type(dst) is tuple else as_address(dst), data, note)
        self.hold(held)

    def hold(self, held: Any) -> None:
        """Hold a message or a record: kept, or published while anything subscribes."""
        publish = self.publish
        if publish is not None:
            publish(held)
        else:
            self.keep(held)

    def keep(self, held: Any) -> None:
        """Put ``held`` in the ring, and in the store's queue while a store keeps a copy."""
        self._acquire()  # not ``with``: compiled, that looks up __enter__ and __exit__ each time
        try:
            self._append(held)
            self.added += 1
        finally:
            self._release()
        flush = self.flush
        if flush is not None:
            pending = self.pending
            pending.append(held)
            if len(pending) >= self.batch_size:
                flush()
