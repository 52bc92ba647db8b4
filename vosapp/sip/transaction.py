"""RFC 3261 §17 transactions as explicit, sans-IO state machines.

Theory of operation
-------------------
A transaction is a request plus every response to it, until the retransmission machinery
has settled. Four machines exist (§17.1.1, §17.1.2, §17.2.1, §17.2.2); each is a small class
whose legal transitions are listed in a table (``TRANSITIONS``) and checked on every move.

A machine never touches sockets or clocks. Its inputs are method calls:

* ``start()`` (client: send the request), ``receive(message)`` (a matching response, or a
  retransmitted request / ACK for a server), ``respond(response)`` (server: the TU answers),
  ``timer_fired(name)`` and ``transport_error(reason)``;

and each returns a list of *actions*: :class:`Transmit`, :class:`StartTimer`,
:class:`CancelTimer`, and the TU-facing :class:`DeliverResponse`, :class:`DeliverRequest`,
:class:`TimedOut`, :class:`TransportFailed`, :class:`Terminated`.

:class:`TransactionLayer` is the glue: it owns the transaction tables (matching per §17.1.3
and §17.2.3, with the RFC 2543 fallback), turns ``StartTimer`` into ``clock.call_later``
(so timers are data and a :class:`~vosapp.clock.ManualClock` replays them exactly), hands
``Transmit`` to the transport callback and TU actions to per-transaction listeners. Timer J
(a non-INVITE server transaction lingering in Completed for 64*T1, §17.2.2) is the one
exception: those transactions wait in a queue in the order they completed, all with the same
delay, and one clock timer ends them in turn (:meth:`TransactionLayer._linger`).

Timer values (§17.1.1.2, table 4 of RFC 3261): T1 = SS_SIP_RESEND_INTERVAL (500 ms
default), T2 = 4 s, T4 = 5 s; A/E/G start at T1 and double (E and G capped at T2); B, F, H,
J, L, M = 64*T1; D = 32 s; I = T4; K = T4. On a reliable transport (TCP) the retransmission
timers A/E/G are never started and D, I, J, K are zero (the machine terminates at once).
The INVITE machines follow RFC 6026: a 2xx moves them to *Accepted* (timers M / L) so that
2xx retransmissions and the ACK for a 2xx reach the TU instead of being lost.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Any, ClassVar, Final, Generic, TypeAlias, TypeVar

from vosapp.net import Address

if TYPE_CHECKING:
    from vosapp.clock import Clock, TimerHandle
    from vosapp.params import Params
    from vosapp.sip import Request, Response, Via


#: RFC 3261 §8.1.1.7: branches starting with this cookie are globally unique.
MAGIC_COOKIE: Final = "z9hG4bK"
#: Transports on which SIP does not retransmit (§17.1.1.2, §18).
RELIABLE_TRANSPORTS: Final = frozenset({"TCP", "TLS", "SCTP", "WS", "WSS"})
#: The most keys one eviction pass of the server table looks at (bounded work per request,
#: however far a cap lowered at run time leaves the table above it).
_EVICTION_LOOK_MAX: Final = 4096
#: The least time between two runs of the Timer J queue's clock timer, s: transactions whose
#: Timer J comes within it end together, up to this late (they only absorb retransmissions
#: a little longer), not with a loop wake-up each. 1 s: the real-time clock puts a timer
#: that far off on its wheel (vosapp.io.clock.WHEEL_MIN_DELAY), in a 1/16 s slot shared with
#: the other guard timers of that moment: no wake-up of its own. At 1/16 s, an exact asyncio
#: timer of its own, it woke the loop once per call at 10 calls/s (counted: +0.3 %
#: instructions per call, +1.4 % with digest).
_LINGER_BATCH: Final = 1.0


class TransactionError(Exception):
    """A programming error: an input that the transaction's state does not allow."""


class TimerName(str, enum.Enum):
    """RFC 3261 table 4 timers (plus L and M from RFC 6026)."""

    A = "A"  # INVITE request retransmit (client, unreliable)
    B = "B"  # INVITE transaction timeout (client)
    D = "D"  # wait time for response retransmits (client INVITE, Completed)
    E = "E"  # non-INVITE request retransmit (client, unreliable)
    F = "F"  # non-INVITE transaction timeout (client)
    G = "G"  # INVITE final response retransmit (server, unreliable)
    H = "H"  # wait time for ACK receipt (server INVITE)
    I = "I"  # wait time for ACK retransmits (server INVITE, Confirmed)
    J = "J"  # wait time for non-INVITE request retransmits (server)
    K = "K"  # wait time for response retransmits (client non-INVITE)
    L = "L"  # RFC 6026: wait time for accepted INVITE request retransmits (server)
    M = "M"  # RFC 6026: wait time for retransmitted 2xx (client)
    DROP = "drop"  # vosapp: how long a silently dropped request's retransmits are absorbed
    ABANDON = "abandon"  # vosapp: a non-INVITE the TU never answered is given up after 64*T1


@dataclass(frozen=True)
class TimerSettings:
    """T1, T2, T4 in seconds; every other timer derives from them (RFC 3261 table 4)."""

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    #: Timer D on unreliable transports: "at least 32 seconds" (§17.1.1.2).
    timer_d: float = 32.0

    def __post_init__(self) -> None:
        if not (self.t1 > 0 and self.t2 >= self.t1 and self.t4 > 0 and self.timer_d >= 0):
            raise ValueError(f"invalid SIP timer settings {self!r}: need 0 < T1 <= T2, T4 > 0")

    @classmethod
    def from_params(cls, params: Params) -> TimerSettings:
        """T1 from SS_SIP_RESEND_INTERVAL (milliseconds)."""
        return cls(t1=int(params["SS_SIP_RESEND_INTERVAL"]) / 1000.0)

    @property
    def timeout(self) -> float:
        """64*T1: timers B, F, H, J, L, M."""
        return 64 * self.t1


# --------------------------------------------------------------------------- actions
# Slotted: a call makes some forty of them (each transaction step returns a list). Records
# (docs/architecture.md): Final fields, read-only to mypy and, compiled, at run time; the
# __init__ written out, so that mypyc compiles it.


@dataclass(slots=True, unsafe_hash=True)
class SentResponse:
    """A response as a server transaction sends and keeps it: its wire bytes (``bytes()`` of
    it), and the status and To the transaction still reads (``final_sent``, the RFC 2543 ACK
    match of §17.2.3). A built Response is ~0.9 KB of header lists and strings; a
    transaction keeps its last response for up to 64*T1 of retransmissions, which are then
    not serialized again."""

    status: Final[int]
    #: the To header's text; its tag is parsed only when an RFC 2543 ACK is matched (a
    #: final response's To carries a fresh tag: parsing it for every response costs µs)
    to: Final[str]
    data: Final[bytes]

    def __init__(self, status: int, to: str, data: bytes) -> None:
        self.status, self.to, self.data = status, to, data

    def __bytes__(self) -> bytes:
        return self.data

    @property
    def to_tag(self) -> str | None:
        from vosapp.sip.headers import NAME_ADDR_MEMO

        return NAME_ADDR_MEMO.parsed(self.to).params.get("tag") if self.to else None


@dataclass(slots=True, unsafe_hash=True)
class Transmit:
    """Send ``message`` to ``destination`` over ``transport`` (a server transaction's
    responses go as :class:`SentResponse`)."""

    message: Final[Request | Response | SentResponse]
    destination: Final[Address]
    transport: Final[str]

    def __init__(self, message: Request | Response | SentResponse, destination: Address,
                 transport: str) -> None:
        self.message, self.destination, self.transport = (
            message, destination, transport)


@dataclass(slots=True, unsafe_hash=True)
class StartTimer:
    timer: Final[TimerName]
    delay: Final[float]

    def __init__(self, timer: TimerName, delay: float) -> None:
        self.timer, self.delay = timer, delay


@dataclass(slots=True, unsafe_hash=True)
class CancelTimer:
    timer: Final[TimerName]

    def __init__(self, timer: TimerName) -> None:
        self.timer = timer


@dataclass(slots=True, unsafe_hash=True)
class DeliverResponse:
    """Client transaction → TU: a response (1xx, 2xx, the first of each non-2xx final)."""

    response: Final[Response]

    def __init__(self, response: Response) -> None:
        self.response = response


@dataclass(slots=True, unsafe_hash=True)
class DeliverRequest:
    """Server transaction → TU: a request the TU must see (the ACK for a 2xx, RFC 6026)."""

    request: Final[Request]

    def __init__(self, request: Request) -> None:
        self.request = request


@dataclass(slots=True, unsafe_hash=True)
class TimedOut:
    """Timer B, F (client: no final response) or H (server: no ACK) fired."""

    timer: Final[TimerName]

    def __init__(self, timer: TimerName) -> None:
        self.timer = timer


@dataclass(slots=True, unsafe_hash=True)
class TransportFailed:
    reason: Final[str]

    def __init__(self, reason: str) -> None:
        self.reason = reason


@dataclass(slots=True, unsafe_hash=True)
class Terminated:
    """The transaction is over and leaves the layer's tables."""

    def __init__(self) -> None:
        pass


Action: TypeAlias = (
    Transmit | StartTimer | CancelTimer | DeliverResponse | DeliverRequest | TimedOut
    | TransportFailed | Terminated
)
#: What a TU listener receives.
TUEvent: TypeAlias = DeliverResponse | DeliverRequest | TimedOut | TransportFailed | Terminated


class State(str, enum.Enum):
    CALLING = "Calling"
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    ACCEPTED = "Accepted"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    TERMINATED = "Terminated"


#: No legal move (a state the TRANSITIONS table does not list): one object, not a new empty
#: frozenset for each move checked.
_NO_MOVES: Final[frozenset[State]] = frozenset()


def _status_class(response: Response) -> int:
    return int(response.status) // 100


# --------------------------------------------------------------------------- base


class _Machine:
    """Common bookkeeping: the state, its legal moves, the running timers."""

    TRANSITIONS: ClassVar[dict[State, frozenset[State]]] = {}
    INITIAL: ClassVar[State]

    def __init__(self, timers: TimerSettings, transport: str) -> None:
        self.timers = timers
        self.transport = transport.upper()
        self.reliable = self.transport in RELIABLE_TRANSPORTS
        self.state = self.INITIAL
        #: The timers started and not yet fired nor cancelled: at most three, so a list (a set
        #: is four times its size, kept per transaction for up to 64*T1).
        self.running: list[TimerName] = []

    @property
    def terminated(self) -> bool:
        return self.state is State.TERMINATED

    def _goto(self, new: State) -> None:
        if new is not self.state and new not in self.TRANSITIONS.get(self.state, _NO_MOVES):
            raise TransactionError(
                f"{type(self).__name__}: no transition {self.state.value} -> {new.value}"
            )
        self.state = new

    def _start(self, out: list[Action], timer: TimerName, delay: float) -> None:
        if timer not in self.running:
            self.running.append(timer)
        out.append(StartTimer(timer, delay))

    def _cancel(self, out: list[Action], *timers: TimerName) -> None:
        for timer in timers:
            if timer in self.running:
                self.running.remove(timer)
                out.append(CancelTimer(timer))

    def _terminate(self, out: list[Action]) -> None:
        if self.running:
            self._cancel(out, *sorted(self.running))
        self._goto(State.TERMINATED)
        out.append(Terminated())

    def transport_error(self, reason: str) -> list[Action]:
        """§17.1.1.2/§17.1.2.2/§17.2.4: inform the TU and terminate."""
        if self.terminated:
            return []
        out: list[Action] = [TransportFailed(reason)]
        self._terminate(out)
        return out

    def timer_fired(self, timer: TimerName) -> list[Action]:
        if timer not in self.running or self.terminated:
            return []  # a late firing of a cancelled timer: harmless
        self.running.remove(timer)
        return self._on_timer(timer)

    def _on_timer(self, timer: TimerName) -> list[Action]:  # pragma: no cover - abstract
        raise NotImplementedError


# --------------------------------------------------------------------------- client


class ClientInviteMachine(_Machine):
    """§17.1.1 (figure 5) with the RFC 6026 Accepted state."""

    INITIAL = State.CALLING
    TRANSITIONS: ClassVar[dict[State, frozenset[State]]] = {
        State.CALLING: frozenset({State.PROCEEDING, State.ACCEPTED, State.COMPLETED,
                                  State.TERMINATED}),
        State.PROCEEDING: frozenset({State.ACCEPTED, State.COMPLETED, State.TERMINATED}),
        State.ACCEPTED: frozenset({State.TERMINATED}),
        State.COMPLETED: frozenset({State.TERMINATED}),
    }

    def __init__(self, request: Request, destination: Address, transport: str,
                 timers: TimerSettings) -> None:
        super().__init__(timers, transport)
        self.request = request
        self.destination = destination
        self.interval_a = timers.t1
        self.ack: Request | None = None

    def start(self) -> list[Action]:
        out: list[Action] = [Transmit(self.request, self.destination, self.transport)]
        if not self.reliable:
            self._start(out, TimerName.A, self.interval_a)
        self._start(out, TimerName.B, self.timers.timeout)
        return out

    def receive(self, response: Response) -> list[Action]:
        out: list[Action] = []
        klass = _status_class(response)
        if self.state in (State.CALLING, State.PROCEEDING):
            if klass == 1:
                # §17.1.1.2: a provisional response stops retransmissions; Timer B only
                # guards the Calling state.
                self._cancel(out, TimerName.A, TimerName.B)
                self._goto(State.PROCEEDING)
                out.append(DeliverResponse(response))
            elif klass == 2:
                self._cancel(out, TimerName.A, TimerName.B)
                self._goto(State.ACCEPTED)
                out.append(DeliverResponse(response))
                self._start(out, TimerName.M, self.timers.timeout)
            else:
                self._cancel(out, TimerName.A, TimerName.B)
                self._goto(State.COMPLETED)
                self.ack = build_ack(self.request, response)
                out.append(Transmit(self.ack, self.destination, self.transport))
                out.append(DeliverResponse(response))
                if self.reliable:
                    self._terminate(out)
                else:
                    self._start(out, TimerName.D, self.timers.timer_d)
        elif self.state is State.ACCEPTED:
            if klass == 2:  # RFC 6026 §7.2: retransmitted 2xx go to the TU, which re-ACKs
                out.append(DeliverResponse(response))
        elif self.state is State.COMPLETED and klass >= 3 and self.ack is not None:
            # §17.1.1.2: a retransmitted final response is answered with the ACK again
            out.append(Transmit(self.ack, self.destination, self.transport))
        return out

    def _on_timer(self, timer: TimerName) -> list[Action]:
        out: list[Action] = []
        if timer is TimerName.A and self.state is State.CALLING:
            # §17.1.1.2: retransmit and double; INVITE is not capped at T2.
            out.append(Transmit(self.request, self.destination, self.transport))
            self.interval_a *= 2
            self._start(out, TimerName.A, self.interval_a)
        elif timer is TimerName.B and self.state is State.CALLING:
            out.append(TimedOut(TimerName.B))
            self._terminate(out)
        elif timer in (TimerName.D, TimerName.M):
            self._terminate(out)
        return out


class ClientNonInviteMachine(_Machine):
    """§17.1.2 (figure 6)."""

    INITIAL = State.TRYING
    TRANSITIONS: ClassVar[dict[State, frozenset[State]]] = {
        State.TRYING: frozenset({State.PROCEEDING, State.COMPLETED, State.TERMINATED}),
        State.PROCEEDING: frozenset({State.COMPLETED, State.TERMINATED}),
        State.COMPLETED: frozenset({State.TERMINATED}),
    }

    def __init__(self, request: Request, destination: Address, transport: str,
                 timers: TimerSettings) -> None:
        super().__init__(timers, transport)
        self.request = request
        self.destination = destination
        self.interval_e = timers.t1

    def start(self) -> list[Action]:
        out: list[Action] = [Transmit(self.request, self.destination, self.transport)]
        if not self.reliable:
            self._start(out, TimerName.E, self.interval_e)
        self._start(out, TimerName.F, self.timers.timeout)
        return out

    def receive(self, response: Response) -> list[Action]:
        out: list[Action] = []
        if self.state not in (State.TRYING, State.PROCEEDING):
            return out  # Completed: retransmitted finals are absorbed
        if _status_class(response) == 1:
            self._goto(State.PROCEEDING)
            out.append(DeliverResponse(response))
            return out
        self._cancel(out, TimerName.E, TimerName.F)
        self._goto(State.COMPLETED)
        out.append(DeliverResponse(response))
        if self.reliable:
            self._terminate(out)
        else:
            self._start(out, TimerName.K, self.timers.t4)
        return out

    def _on_timer(self, timer: TimerName) -> list[Action]:
        out: list[Action] = []
        if timer is TimerName.E and self.state in (State.TRYING, State.PROCEEDING):
            out.append(Transmit(self.request, self.destination, self.transport))
            # §17.1.2.2: Trying doubles up to T2; Proceeding retransmits every T2.
            if self.state is State.TRYING:
                self.interval_e = min(2 * self.interval_e, self.timers.t2)
            else:
                self.interval_e = self.timers.t2
            self._start(out, TimerName.E, self.interval_e)
        elif timer is TimerName.F and self.state in (State.TRYING, State.PROCEEDING):
            out.append(TimedOut(TimerName.F))
            self._terminate(out)
        elif timer is TimerName.K:
            self._terminate(out)
        return out


# --------------------------------------------------------------------------- server


class _ServerMachine(_Machine):
    def __init__(self, request: Request, reply_to: Address, transport: str,
                 timers: TimerSettings) -> None:
        super().__init__(timers, transport)
        #: None once the request is no longer needed: a transaction that sent its final
        #: response, or a dropped one. They only absorb or answer retransmissions (and pass
        #: the ACK of a 2xx on) from then on (§17.2.1, §17.2.2, RFC 6026 §7.1,
        #: :meth:`drop`), for up to 64*T1. A parsed request is ~12 GC-tracked
        #: objects and ~2.7 KB that would stay that long per transaction, up to
        #: ``max_server_transactions`` of them (docs/benchmarks.md, "Who is saturated, Python's
        #: floor, and server transactions that let go of their request").
        self.request: Request | None = request
        self.reply_to = reply_to
        self.last_response: SentResponse | None = None
        self.dropped = False

    def drop(self) -> list[Action]:
        """vosapp: answer nothing, ever, but absorb retransmissions of the request for 64*T1.

        For SS_REPLY_UNAUTHORIZED=Off (docs/behaviour.md §2.1): the request is silently discarded;
        its retransmissions are the same attempt and must neither reach the TU nor be answered.
        """
        if self.last_response is not None:
            raise TransactionError("cannot drop a request that has already been answered")
        out: list[Action] = []
        if not self.dropped and not self.terminated:
            self.dropped = True
            self.request = None  # never answered: nothing will be built from it
            self._cancel(out, TimerName.ABANDON)
            self._start(out, TimerName.DROP, self.timers.timeout)
        return out

    def _send(self, out: list[Action], response: Response) -> None:
        # response.__bytes__(), not bytes(response): compiled, a direct call of the writer;
        # bytes() looks the slot up through the type first (~600 instructions a response)
        sent = self.last_response = SentResponse(int(response.status),
                                                 response.headers.first_by_key("to") or "",
                                                 response.__bytes__())
        out.append(Transmit(sent, self.reply_to, self.transport))


class ServerInviteMachine(_ServerMachine):
    """§17.2.1 (figure 7) with the RFC 6026 Accepted state."""

    INITIAL = State.PROCEEDING
    TRANSITIONS: ClassVar[dict[State, frozenset[State]]] = {
        State.PROCEEDING: frozenset({State.ACCEPTED, State.COMPLETED, State.TERMINATED}),
        State.ACCEPTED: frozenset({State.TERMINATED}),
        State.COMPLETED: frozenset({State.CONFIRMED, State.TERMINATED}),
        State.CONFIRMED: frozenset({State.TERMINATED}),
    }

    def __init__(self, request: Request, reply_to: Address, transport: str,
                 timers: TimerSettings) -> None:
        super().__init__(request, reply_to, transport, timers)
        self.interval_g = timers.t1

    def respond(self, response: Response, *, stateless: bool = False) -> list[Action]:
        """Send ``response``. ``stateless``: a 3xx-6xx sent once, then Terminated instead of
        Completed (RFC 3261 §26.3.2.4, :meth:`ServerTransaction.respond_statelessly`)."""
        out: list[Action] = []
        klass = _status_class(response)
        if self.dropped:
            raise TransactionError("this request was dropped; it cannot be answered")
        if stateless and klass <= 2:
            raise TransactionError(f"a stateless answer to an INVITE must be 3xx-6xx, "
                                   f"not {response.status}")
        if self.state is State.PROCEEDING:
            self._send(out, response)
            if klass == 1:
                return out
            # From here on it only absorbs or answers retransmissions and passes the ACK of a
            # 2xx on (§17.2.1, RFC 6026 §7.1): nothing is built from the request any more.
            self.request = None
            if klass == 2:
                self._goto(State.ACCEPTED)
                self._start(out, TimerName.L, self.timers.timeout)
            elif stateless:
                # Its ACK then matches no transaction and goes to the TU, which knows no
                # dialog for it (§17.2.3); a retransmitted INVITE is answered anew.
                self._terminate(out)
            else:
                self._goto(State.COMPLETED)
                if not self.reliable:
                    self._start(out, TimerName.G, self.interval_g)
                self._start(out, TimerName.H, self.timers.timeout)
        elif self.state is State.ACCEPTED and klass == 2:
            # RFC 6026 §7.1: the TU (UAS core, §13.3.1.4) retransmits its 2xx through here.
            self._send(out, response)
        else:
            raise TransactionError(
                f"INVITE server transaction in state {self.state.value} cannot send "
                f"{response.status}"
            )
        return out

    def receive(self, request: Request) -> list[Action]:
        out: list[Action] = []
        if self.dropped:
            return out
        if request.method == "ACK":
            if self.state is State.COMPLETED:
                self._cancel(out, TimerName.G, TimerName.H)
                self._goto(State.CONFIRMED)
                if self.reliable:
                    self._terminate(out)
                else:
                    self._start(out, TimerName.I, self.timers.t4)
            elif self.state is State.ACCEPTED:
                out.append(DeliverRequest(request))  # RFC 6026: ACK for 2xx goes to the TU
            return out
        # A retransmitted INVITE (§17.2.1): resend the most recent provisional or final
        # non-2xx response; in Accepted the TU retransmits 2xx itself.
        if self.state in (State.PROCEEDING, State.COMPLETED) and self.last_response is not None:
            out.append(Transmit(self.last_response, self.reply_to, self.transport))
        return out

    def _on_timer(self, timer: TimerName) -> list[Action]:
        out: list[Action] = []
        if timer is TimerName.G and self.state is State.COMPLETED:
            assert self.last_response is not None
            out.append(Transmit(self.last_response, self.reply_to, self.transport))
            self.interval_g = min(2 * self.interval_g, self.timers.t2)
            self._start(out, TimerName.G, self.interval_g)
        elif timer is TimerName.H and self.state is State.COMPLETED:
            out.append(TimedOut(TimerName.H))
            self._terminate(out)
        elif timer in (TimerName.I, TimerName.L, TimerName.DROP):
            self._terminate(out)
        return out


class ServerNonInviteMachine(_ServerMachine):
    """§17.2.2 (figure 8)."""

    INITIAL = State.TRYING
    TRANSITIONS: ClassVar[dict[State, frozenset[State]]] = {
        State.TRYING: frozenset({State.PROCEEDING, State.COMPLETED, State.TERMINATED}),
        State.PROCEEDING: frozenset({State.COMPLETED, State.TERMINATED}),
        State.COMPLETED: frozenset({State.TERMINATED}),
    }

    def begin(self) -> list[Action]:
        """vosapp safety net: RFC 3261 gives Trying/Proceeding no timer, so a TU that never
        answers would keep the transaction forever. The client gives up after Timer F
        (64*T1); so does this side, telling the TU (TimedOut(ABANDON))."""
        out: list[Action] = []
        self._start(out, TimerName.ABANDON, self.timers.timeout)
        return out

    def respond(self, response: Response, *, stateless: bool = False) -> list[Action]:
        """Send ``response``. ``stateless``: a final response sent once, then Terminated
        instead of Completed (RFC 3261 §26.3.2.4,
        :meth:`ServerTransaction.respond_statelessly`)."""
        out: list[Action] = []
        if self.dropped:
            raise TransactionError("this request was dropped; it cannot be answered")
        if self.state not in (State.TRYING, State.PROCEEDING):
            raise TransactionError(
                f"non-INVITE server transaction in state {self.state.value} cannot send "
                f"{response.status}"
            )
        klass = _status_class(response)
        if stateless and klass == 1:
            raise TransactionError(f"a stateless answer must be final, not {response.status}")
        self._send(out, response)
        if klass == 1:
            self._goto(State.PROCEEDING)
            return out
        self._cancel(out, TimerName.ABANDON)
        self._goto(State.COMPLETED)
        self.request = None  # §17.2.2: Completed only resends last_response
        if self.reliable or stateless:
            self._terminate(out)
        else:
            self._start(out, TimerName.J, self.timers.timeout)
        return out

    def receive(self, request: Request) -> list[Action]:
        # §17.2.2: Trying absorbs retransmissions; Proceeding/Completed resend the last response.
        if self.dropped or self.last_response is None:
            return []
        return [Transmit(self.last_response, self.reply_to, self.transport)]

    def _on_timer(self, timer: TimerName) -> list[Action]:
        out: list[Action] = []
        if timer is TimerName.ABANDON and self.state in (State.TRYING, State.PROCEEDING):
            out.append(TimedOut(TimerName.ABANDON))
            self._terminate(out)
        elif timer in (TimerName.J, TimerName.DROP):
            self._terminate(out)
        return out


# --------------------------------------------------------------------------- ACK (§17.1.1.3)


def build_ack(invite: Request, response: Response) -> Request:
    """The ACK a client INVITE transaction sends for a 3xx–6xx response (§17.1.1.3).

    Same Request-URI, Call-ID, From, CSeq number and single top Via (same branch) as the
    INVITE; the To of the response (with its tag); the INVITE's Route headers.
    """
    from vosapp.sip import Headers, Request

    headers = Headers()
    headers.add("Via", invite.headers.get_all("Via")[0].split(",")[0].strip()
                if invite.headers.get_all("Via") else "")
    for route in invite.headers.get_all("Route"):
        headers.add("Route", route)
    headers.add("Max-Forwards", "70")
    headers.add("From", invite.headers.get("From") or "")
    headers.add("To", response.headers.get("To") or "")
    headers.add("Call-ID", invite.headers.get("Call-ID") or "")
    headers.add("CSeq", f"{invite.cseq.number} ACK")
    headers.add("Content-Length", "0")
    return Request("ACK", invite.uri, headers, b"")


# --------------------------------------------------------------------------- matching


def _branch(message: Request | Response) -> str | None:
    try:
        return message.via_branch
    except Exception:  # noqa: BLE001 - no readable Via: no branch
        return None


def server_key(request: Request, top_via: Via | None = None) -> tuple[Any, ...]:
    """§17.2.3: the server transaction a request belongs to.

    RFC 3261 branch: (branch, sent-by, method) with ACK matching INVITE. RFC 2543 fallback
    (no magic cookie): Request-URI, From tag, Call-ID, CSeq number, top Via sent-by, method;
    the ACK's To tag is checked by the caller against the transaction's response.
    ``top_via`` saves parsing the Via again when the caller already has it.
    """
    via = top_via if top_via is not None else request.top_via
    method = "INVITE" if request.method == "ACK" else request.method
    branch = via.branch
    sent_by = f"{via.host.lower()}:{via.port or ''}"
    if branch and branch.startswith(MAGIC_COOKIE):
        return ("3261", branch, sent_by, method)
    return ("2543", str(request.uri), request.from_tag, request.call_id,
            request.cseq.number, sent_by, branch or "", method)


def client_key(message: Request | Response) -> tuple[str, str]:
    """§17.1.3: (top Via branch, CSeq method); an ACK belongs to its INVITE."""
    method = message.cseq.method
    return (_branch(message) or "", "INVITE" if method == "ACK" else method)


# --------------------------------------------------------------------------- the layer

Machine: TypeAlias = (
    ClientInviteMachine | ClientNonInviteMachine | ServerInviteMachine | ServerNonInviteMachine
)
Listener: TypeAlias = Callable[[TUEvent], None]
TransmitFn: TypeAlias = Callable[["Request | Response | SentResponse", Address, str], None]


MachineT = TypeVar("MachineT", bound=Machine)


class _Handle(Generic[MachineT]):
    """Shared by client and server handles: the machine, its timers and its TU listener."""

    # Generic rather than narrowed in each subclass: a compiled (mypyc) class cannot change
    # an attribute's type in a subclass.
    def __init__(self, layer: TransactionLayer, machine: MachineT, key: tuple[Any, ...]) -> None:
        self._layer = layer
        self.machine = machine
        self.key = key
        self.listeners: list[Listener] = []
        self._timers: dict[TimerName, TimerHandle] = {}

    @property
    def state(self) -> State:
        return self.machine.state

    @property
    def request(self) -> Request:
        """The request; a server transaction lets go of it once it is no longer needed
        (:class:`_ServerMachine`), and reading it then is a :class:`TransactionError`."""
        request = self.machine.request
        if request is None:
            raise TransactionError("this server transaction no longer keeps its request: it "
                                   "sent its final response or was dropped")
        return request

    @property
    def transport(self) -> str:
        return self.machine.transport

    @property
    def terminated(self) -> bool:
        return self.machine.terminated

    def add_listener(self, listener: Listener) -> None:
        self.listeners.append(listener)

    def _run(self, actions: list[Action]) -> None:
        self._layer._execute(self, actions)


class ClientTransaction(_Handle[ClientInviteMachine | ClientNonInviteMachine]):
    """A request sent by this switch; listeners get responses, timeouts, termination."""

    @property
    def destination(self) -> Address:
        return self.machine.destination


class ServerTransaction(_Handle[ServerInviteMachine | ServerNonInviteMachine]):
    """A request received by this switch; the TU answers with :meth:`respond` or :meth:`drop`."""

    def __init__(self, layer: TransactionLayer,
                 machine: ServerInviteMachine | ServerNonInviteMachine, key: tuple[Any, ...],
                 source: Address) -> None:
        super().__init__(layer, machine, key)
        self.source = source
        #: When Timer J ends it (clock time), once it joined the layer's queue of those
        #: lingering in Completed. See :meth:`TransactionLayer._linger`.
        self.linger_until = 0.0
        #: The local (host, port) the request arrived on; set by the switch core.
        self.local: Address | None = None
        #: Called with the CANCEL request when a CANCEL matches this INVITE (§9.2); None
        #: until one is added (:meth:`add_cancel_listener`): most transactions are not
        #: INVITEs, and an empty list per transaction lived as long as it (Timer J, 64*T1).
        self.cancel_listeners: list[Callable[[Request], None]] | None = None

    @property
    def reply_to(self) -> Address:
        return self.machine.reply_to

    @property
    def answered(self) -> bool:
        return self.machine.last_response is not None

    @property
    def final_sent(self) -> bool:
        last = self.machine.last_response
        return last is not None and int(last.status) >= 200

    @property
    def dropped(self) -> bool:
        return self.machine.dropped

    def add_cancel_listener(self, listener: Callable[[Request], None]) -> None:
        """Call ``listener`` with the CANCEL that matches this INVITE (§9.2)."""
        if self.cancel_listeners is None:
            self.cancel_listeners = [listener]
        else:
            self.cancel_listeners.append(listener)

    def respond(self, response: Response) -> None:
        """Send ``response`` through the transaction (retransmitted per §17.2 as needed)."""
        self._run(self.machine.respond(response))

    def respond_statelessly(self, response: Response) -> None:
        """Send final ``response`` once and end the transaction at once: no Completed state,
        so a retransmission of the request is handled as a new request and answered anew.
        RFC 3261 §26.3.2.4 recommends it for challenges to unauthenticated requests: a flood
        of them then holds no transaction for 64*T1 (Timer J, or an INVITE's Timers G and
        H). For an INVITE only a 3xx-6xx: its ACK then reaches the TU, which finds no
        dialog for it; a 2xx always goes through the transaction (RFC 6026)."""
        self._run(self.machine.respond(response, stateless=True))

    def drop(self) -> None:
        """Answer nothing (silent discard); retransmissions are absorbed for 64*T1."""
        self._run(self.machine.drop())


class TransactionLayer:
    """Transaction tables, timer scheduling on a :class:`Clock`, and action dispatch.

    :attr:`timers` are the settings the *next* transaction starts with; :meth:`set_timers`
    changes them on a running switch (SS_SIP_RESEND_INTERVAL). Each transaction keeps the
    settings it was created with until it ends (docs/behaviour.md §1: changes apply to new
    sessions).
    """

    def __init__(self, clock: Clock, timers: TimerSettings, transmit: TransmitFn, *,
                 max_servers: int | None = None) -> None:
        self.clock = clock
        self.timers = timers
        self._transmit = transmit
        self.clients: dict[tuple[Any, ...], ClientTransaction] = {}
        self.servers: dict[tuple[Any, ...], ServerTransaction] = {}
        #: Server transactions kept at most (None: no cap); see :meth:`_evict_servers`.
        self.max_servers = max_servers
        self.evicted = 0
        #: Non-INVITE server transactions in Completed on an unreliable transport, in the
        #: order their Timer J ends them (:meth:`_linger`); one may have left the table
        #: meanwhile (evicted, a transport error): it is skipped when its turn comes.
        self._lingering: deque[ServerTransaction] = deque()
        #: The clock timer that ends the first of them, while one is armed.
        self._linger_timer: TimerHandle | None = None

    def set_timers(self, timers: TimerSettings) -> None:
        """Use ``timers`` for transactions created from now on; open ones keep theirs."""
        if not isinstance(timers, TimerSettings):
            raise TypeError(f"expected TimerSettings, got {timers!r}")
        self.timers = timers

    # client side ---------------------------------------------------------------
    def send_request(self, request: Request, destination: Address, transport: str,
                     listener: Listener | None = None) -> ClientTransaction:
        """Start a client transaction (§17.1). The request's top Via must carry a branch."""
        if request.method == "ACK":
            raise TransactionError("ACK for a 2xx is sent outside transactions (§17.1.1.3)")
        key = client_key(request)
        if not key[0]:
            raise TransactionError("a request sent by a client transaction needs a Via branch")
        if key in self.clients:
            raise TransactionError(f"a client transaction with branch {key[0]!r} already exists")
        # each class named (compiled, a direct call of its constructor; see create_server)
        machine: ClientInviteMachine | ClientNonInviteMachine = (
            ClientInviteMachine(request, destination, transport, self.timers)
            if request.method == "INVITE"
            else ClientNonInviteMachine(request, destination, transport, self.timers))
        handle = ClientTransaction(self, machine, key)
        if listener is not None:
            handle.add_listener(listener)
        self.clients[key] = handle
        handle._run(machine.start())
        return handle

    def receive_response(self, response: Response) -> ClientTransaction | None:
        """Hand a response to its client transaction; None when none matches (stray)."""
        handle = self.clients.get(client_key(response))
        if handle is not None:
            handle._run(handle.machine.receive(response))
        return handle

    # server side ---------------------------------------------------------------
    def match_request(self, request: Request, key: tuple[Any, ...] | None = None
                      ) -> ServerTransaction | None:
        """The server transaction ``request`` belongs to (``key``: its precomputed
        :func:`server_key`), or None."""
        handle = self.servers.get(key if key is not None else server_key(request))
        if handle is None or request.method != "ACK" or handle.key[0] == "3261":
            return handle
        # RFC 2543 ACK: its To tag must be the one we answered with (§17.2.3).
        last = handle.machine.last_response
        if last is None or request.to is None:
            return None
        return handle if last.to_tag == request.to_tag else None

    def create_server(self, request: Request, reply_to: Address, transport: str,
                      source: Address, key: tuple[Any, ...] | None = None, *,
                      begin: bool = True) -> ServerTransaction:
        """A new server transaction for a request that matched none (not for ACK).

        ``begin=False``: the caller calls :meth:`begin_server` once the TU has seen the
        request (the switch core does, after its handler returns), so a request answered
        right away never schedules, then cancels, the non-INVITE abandon timer."""
        if request.method == "ACK":
            raise TransactionError("an ACK never creates a server transaction (§17.2.3)")
        # each class named, not one picked into a variable: compiled, a direct call of its
        # constructor rather than a generic call of a type
        machine: ServerInviteMachine | ServerNonInviteMachine = (
            ServerInviteMachine(request, reply_to, transport, self.timers)
            if request.method == "INVITE"
            else ServerNonInviteMachine(request, reply_to, transport, self.timers))
        key = key if key is not None else server_key(request)
        handle = ServerTransaction(self, machine, key, source)
        self.servers[key] = handle
        if self.max_servers is not None and len(self.servers) > self.max_servers:
            self._evict_servers()
        if begin and isinstance(machine, ServerNonInviteMachine):
            handle._run(machine.begin())
        return handle

    def _evict_servers(self) -> None:
        """Bounded memory under a flood of distinct requests: forget the oldest server
        transactions that have their final response (or were dropped). Those only absorb
        retransmissions for 64*T1 (§17.2.2); forgetting one early costs at most one
        retransmission handled again. One still waiting for its TU goes to the back of the
        line: it ends by its own timers, and the switch's overload gate bounds INVITEs.

        Evicted in batches, down to 1/64 below the cap, from one look at the oldest keys:
        a dict finds its first key past every entry deleted before it, so one look per
        eviction walked up to a few thousand deleted slots each time at capacity (~1 % of
        vosapp serve's time in a registration flood, docs/benchmarks.md, thirty-eighth
        round). At most 64 transactions still waiting for their TU are stepped over per
        call, as before."""
        servers, cap = self.servers, self.max_servers
        assert cap is not None  # only called when a cap is set
        if len(servers) <= cap:
            return
        target = cap - cap // 64
        # Those lingering in Completed first, oldest first: each only waits for its Timer J.
        lingering = self._lingering
        while lingering and len(servers) > target:
            lingered = lingering.popleft()
            if servers.get(lingered.key) is lingered:
                del servers[lingered.key]
                self.evicted += 1
                self._execute(lingered, [Terminated()])
        if len(servers) <= target:
            return
        oldest = list(islice(servers, min(len(servers) - target + 64, _EVICTION_LOOK_MAX)))
        for key in oldest:
            if len(servers) <= target:
                return
            handle = servers.pop(key, None)
            if handle is None:
                continue  # gone meanwhile (a Terminated listener of an earlier one)
            if handle.final_sent or handle.dropped or handle.terminated:
                for timer in handle._timers.values():
                    timer.cancel()
                handle._timers.clear()
                self.evicted += 1
                self._execute(handle, [Terminated()])
            else:
                servers[key] = handle

    def begin_server(self, handle: ServerTransaction) -> None:
        """Start what :meth:`create_server` with ``begin=False`` left out: the abandon timer
        of a non-INVITE transaction still waiting for a final response (none when it was
        answered, dropped or ended meanwhile: the same timers as starting it at creation)."""
        machine = handle.machine
        if (isinstance(machine, ServerNonInviteMachine) and not machine.dropped
                and machine.state in (State.TRYING, State.PROCEEDING)):
            handle._run(machine.begin())

    def receive_retransmission(self, handle: ServerTransaction, request: Request) -> None:
        handle._run(handle.machine.receive(request))

    def find_invite_for_cancel(self, cancel: Request, key: tuple[Any, ...] | None = None
                               ) -> ServerTransaction | None:
        """§9.2: the INVITE server transaction a CANCEL targets (same key, method INVITE)."""
        key = key if key is not None else server_key(cancel)
        return self.servers.get(key[:-1] + ("INVITE",))

    def transport_error(self, handle: ClientTransaction | ServerTransaction, reason: str) -> None:
        handle._run(handle.machine.transport_error(reason))

    # plumbing ------------------------------------------------------------------
    def _execute(self, handle: _Handle[Any], actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Transmit):
                try:
                    self._transmit(action.message, action.destination, action.transport)
                except OSError as exc:  # §17.1.4 / §17.2.4: transport errors end the txn
                    self._execute(handle, handle.machine.transport_error(str(exc)))
                    return
            elif isinstance(action, StartTimer):
                if action.timer is TimerName.J and self._linger(handle, action.delay):
                    continue
                old = handle._timers.pop(action.timer, None)
                if old is not None:
                    old.cancel()
                handle._timers[action.timer] = self.clock.call_later(
                    action.delay, self._timer_callback(handle, action.timer))
            elif isinstance(action, CancelTimer):
                timer = handle._timers.pop(action.timer, None)
                if timer is not None:
                    timer.cancel()
            else:
                terminated = isinstance(action, Terminated)
                if terminated:
                    table = self.clients if isinstance(handle, ClientTransaction) else self.servers
                    if table.get(handle.key) is handle:
                        del table[handle.key]
                for listener in list(handle.listeners):
                    listener(action)
                if terminated:
                    # Nothing reaches a terminated transaction's TU again (its machine answers
                    # every later input with no action): let go of the TU's callbacks. They
                    # close over the TU's call, which holds this handle; the cycle would
                    # otherwise keep the whole call (messages, dialogs, SDP) for the cyclic GC.
                    handle.listeners.clear()
                    if isinstance(handle, ServerTransaction):
                        handle.cancel_listeners = None

    def _linger(self, handle: _Handle[Any], delay: float) -> bool:
        """Timer J without a clock timer of its own: the transaction joins the queue of those
        lingering in Completed. Every Timer J of a layer has the same delay (64*T1) unless
        T1 changed meanwhile, so the queue is in the order they end, and one clock timer, armed
        for its first, ends them in turn (:meth:`_end_lingering`). False when the queue's
        order would break (a shorter T1 since the last one joined): that transaction gets
        its own clock timer. At capacity a registrar completes ~10,000 transactions a second:
        a timer each was an object, a closure and a wheel slot's entry apiece, kept 32 s
        after the cap had evicted its transaction (docs/benchmarks.md, fortieth round)."""
        if not isinstance(handle, ServerTransaction):
            return False
        until = self.clock.now() + delay
        lingering = self._lingering
        if lingering and until < lingering[-1].linger_until:
            return False
        handle.linger_until = until
        lingering.append(handle)
        # for the queue's first, not this one: a TU listener may complete a transaction while
        # _end_lingering runs, before it has armed the timer again
        self._arm_lingering(lingering[0].linger_until)
        return True

    def _arm_lingering(self, when: float) -> None:
        """Arm the queue's clock timer for ``when`` unless one is armed. A method of its own:
        compiled, a check of ``self._linger_timer`` in :meth:`_end_lingering`, after it set
        it to None, would be narrowed to None and fail when a TU listener armed it meanwhile."""
        if self._linger_timer is None:
            self._linger_timer = self.clock.call_at(when, self._end_lingering)

    def _end_lingering(self) -> None:
        """The queue's clock timer: Timer J of every transaction whose time has come (its
        machine ends it, as its own timer would), then armed for the next one, at least
        :data:`_LINGER_BATCH` later."""
        self._linger_timer = None
        lingering, servers = self._lingering, self.servers
        now = self.clock.now()
        while lingering and lingering[0].linger_until <= now:
            handle = lingering.popleft()
            if servers.get(handle.key) is handle:
                handle._run(handle.machine.timer_fired(TimerName.J))
        if lingering:
            self._arm_lingering(max(lingering[0].linger_until, now + _LINGER_BATCH))

    def _timer_callback(self, handle: _Handle[Any], timer: TimerName) -> Callable[[], None]:
        def fire() -> None:
            handle._timers.pop(timer, None)
            handle._run(handle.machine.timer_fired(timer))
        return fire

    def __len__(self) -> int:
        return len(self.clients) + len(self.servers)
