"""Inbound authentication policy (docs/behaviour.md §2): who gets challenged, re-challenged, refused
or ignored.

Sans-IO and digest-agnostic. The caller (the REGISTER handler, the B2BUA's INVITE hook) parses
the credentials, checks the digest with :mod:`vosapp.sip.digest`, maps the outcome to a
:class:`Verdict` and asks :meth:`AuthPolicy.decide` what to do. The policy answers with a
:class:`Decision` (challenge with 401/407, refuse with 403, drop silently, accept); it never
builds SIP bytes.

Theory of operation
-------------------
*Auth session* (SS_SIP_AUTHENTICATION_RETRY, SS_SIP_AUTHENTICATION_TIMEOUT). One session per
(Call-ID, user, source address): it starts with the first request and ends on success or on
rejection. Every bad credential in it counts one retry and is re-challenged, up to RETRY
re-challenges; the next bad credential gets 403 ("retries exhausted"). A request that arrives
when the session is older than TIMEOUT gets 403 whatever retries remain ("session timeout").
Whichever limit comes first ends the session. A session keeps the :class:`Params` it started
with ("changes take effect for new authentication sessions; existing sessions continue with old
settings", Table 4-3 article).

*Terminal* (SS_AUTHENTICATION_MAX_RETRY, SS_AUTHENTICATION_FAILED_SUSPEND). Failed passwords
also count per terminal = (user, source IP), across sessions and Call-IDs. When the count
reaches MAX_RETRY the terminal is suspended for FAILED_SUSPEND seconds: every request from it is
refused with 403 (or dropped, SS_REPLY_UNAUTHORIZED=Off) *before* any password is checked. We
read "exceeding the maximum retry times" as "the MAX_RETRY-th failure exhausts the allowance":
that is the only reading under which the article's arithmetic holds (6 guesses per 180 s +
session time, ~113 per hour; with 7 per cycle it would be 140). MAX_RETRY = 0 disables the
terminal counter. A success resets the terminal's counters; so does a suspension (after it the
terminal gets a fresh allowance).

*Registration* (SS_ENDPOINT_REGISTER_RETRY, SS_ENDPOINT_REGISTER_SUSPEND). The same counting,
for failed credentials carried by REGISTER only; when it trips, only REGISTER from that
terminal is refused (INVITE is governed by the terminal counter above). RETRY = 0 or
SUSPEND = 0 disables it.

*Unknown user* and *source outside the account's networks*: handled exactly like a wrong
password (the caller challenges them with a real-looking nonce and the answer is always a
failure), so a scanner cannot tell existing users from missing ones (no user enumeration).
The audit trail keeps the true reason for the operator.

*Silence* (SS_REPLY_UNAUTHORIZED=Off): every outcome other than ACCEPT becomes DROP - no
challenge, no 403, no 400, nothing - and is written to the audit trail. Valid credentials for a
nonce the switch issued and still honours are still accepted (docs/behaviour.md §2.1).

Counting only what tests a password: a forged or replayed nonce, a wrong realm, an unknown
algorithm or a malformed header do not tell the client anything about the password, so they
consume a session retry (no endless loops) but do not move the terminal counter. A stale nonce
with an otherwise right answer (RFC 7616 §3.3 stale=true) consumes nothing: the session
timeout bounds it.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Protocol

from vosapp.clock import Clock
from vosapp.enums import IdentityEnum
from vosapp.params import Params
from vosapp.sip import SipParseError
from vosapp.sip.digest import DigestError, VerifyOutcome, parse_credentials

if TYPE_CHECKING:
    from vosapp.sip import Request, Response
    from vosapp.sip.digest import DigestServer
    from vosapp.sip.transaction import ServerTransaction

__all__ = [
    "AccountLookup",
    "Action",
    "AuthEvent",
    "AuthJournal",
    "AuthPolicy",
    "AuthRequest",
    "AuthResult",
    "AuthSession",
    "Decision",
    "InboundAuthenticator",
    "MemoryJournal",
    "Reason",
    "Suspension",
    "SuspensionScope",
    "Verdict",
]


class Verdict(IdentityEnum):
    """What the caller learnt from the request's credentials (digest outcome, account lookup)."""

    NO_CREDENTIALS = "no_credentials"
    OK = "ok"
    WRONG_PASSWORD = "wrong_password"
    UNKNOWN_USER = "unknown_user"
    NETWORK_DENIED = "network_denied"  # account exists, source outside its networks
    STALE_NONCE = "stale_nonce"  # right answer, nonce we issued but no longer honour
    FORGED_NONCE = "forged_nonce"
    REPLAYED_NC = "replayed_nc"
    WRONG_REALM = "wrong_realm"
    UNKNOWN_ALGORITHM = "unknown_algorithm"
    MALFORMED = "malformed"
    URI_MISMATCH = "uri_mismatch"  # digest uri differs from the Request-URI

    @classmethod
    def from_digest(cls, result: object) -> Verdict:
        """Map a ``vosapp.sip.digest`` result enum (same member names) to a verdict."""
        name = getattr(result, "name", str(result)).upper()
        try:
            return cls[name]
        except KeyError:
            raise ValueError(f"digest result {result!r} has no authentication verdict") from None


#: Verdict.from_digest of every digest outcome, looked up once (one per authenticated request).
_VERDICT_FOR_OUTCOME: Final[dict[VerifyOutcome, Verdict]] = {
    outcome: Verdict.from_digest(outcome) for outcome in VerifyOutcome}

#: Seconds between audit rows about requests refused from one suspended terminal.
REFUSAL_AUDIT_INTERVAL: Final = 10.0

#: Verdicts that test a password: they count towards the terminal and registration ceilings.
PASSWORD_FAILURES: Final = frozenset({Verdict.WRONG_PASSWORD, Verdict.UNKNOWN_USER,
                               Verdict.NETWORK_DENIED})


class Action(IdentityEnum):
    ACCEPT = "accept"
    CHALLENGE = "challenge"  # 401 WWW-Authenticate / 407 Proxy-Authenticate
    REJECT = "reject"  # a final 4xx (403; 400 for a malformed header)
    DROP = "drop"  # SS_REPLY_UNAUTHORIZED=Off: send nothing at all


class Reason(IdentityEnum):
    """Why a decision was taken; also the ``reason`` column of the audit trail."""

    AUTHENTICATED = "authenticated"
    CHALLENGE = "challenge"  # no credentials yet
    STALE_NONCE = "stale_nonce"
    WRONG_PASSWORD = "wrong_password"
    UNKNOWN_USER = "unknown_user"
    NETWORK_DENIED = "network_denied"
    FORGED_NONCE = "forged_nonce"
    REPLAYED_NC = "replayed_nc"
    WRONG_REALM = "wrong_realm"
    UNKNOWN_ALGORITHM = "unknown_algorithm"
    MALFORMED = "malformed"
    URI_MISMATCH = "uri_mismatch"
    RETRIES_EXHAUSTED = "retries_exhausted"
    SESSION_TIMEOUT = "session_timeout"
    SUSPENDED = "suspended"  # terminal suspended just now (audit) or already (decision)
    REGISTER_SUSPENDED = "register_suspended"
    UNSUSPENDED = "unsuspended"


@dataclass(slots=True, unsafe_hash=True)
class Decision:
    action: Final[Action]
    reason: Final[Reason]
    status: Final[int | None]  # 401/407 (CHALLENGE), 403/400 (REJECT), None (ACCEPT/DROP)
    stale: Final[bool]  # CHALLENGE only: RFC 7616 stale=true

    def __init__(self, action: Action, reason: Reason, status: int | None = None,
                 stale: bool = False) -> None:
        self.action, self.reason, self.status, self.stale = (
            action, reason, status, stale)

    @property
    def challenge_header(self) -> str | None:
        """The header carrying the challenge: WWW-Authenticate (401) or Proxy-Authenticate (407)."""
        if self.action is not Action.CHALLENGE:
            return None
        return "Proxy-Authenticate" if self.status == 407 else "WWW-Authenticate"

    @property
    def credentials_header(self) -> str:
        """Where the client answers a challenge of this decision (RFC 3261 §22.2/§22.3)."""
        return "Proxy-Authorization" if self.status == 407 else "Authorization"

    @property
    def responds(self) -> bool:
        return self.action in (Action.CHALLENGE, Action.REJECT)


@dataclass(slots=True, unsafe_hash=True)
class AuthRequest:
    """The facts of one request that matter to the policy."""

    method: Final[str]
    call_id: Final[str]
    user: Final[str]  # credentials username, else the To (REGISTER) / From (INVITE) user part
    source_host: Final[str]
    source_port: Final[int]

    def __init__(self, method: str, call_id: str, user: str, source_host: str,
                 source_port: int = 0) -> None:
        self.method, self.call_id, self.user = method, call_id, user
        self.source_host, self.source_port = source_host, source_port

    @property
    def terminal(self) -> tuple[str, str]:
        return (self.user, self.source_host)


@dataclass(slots=True, unsafe_hash=True)
class AuthEvent:
    """One row of the audit trail."""

    wall: Final[float]  # Unix time
    source_host: Final[str]
    source_port: Final[int]
    user: Final[str]
    method: Final[str]
    reason: Final[str]
    call_id: Final[str]
    detail: Final[str]

    def __init__(self, wall: float, source_host: str, source_port: int, user: str, method: str,
                 reason: str, call_id: str = "", detail: str = "") -> None:
        self.wall, self.source_host, self.source_port = wall, source_host, source_port
        self.user, self.method, self.reason = user, method, reason
        self.call_id, self.detail = call_id, detail


class SuspensionScope(IdentityEnum):
    TERMINAL = "terminal"  # SS_AUTHENTICATION_FAILED_SUSPEND: every request
    REGISTER = "register"  # SS_ENDPOINT_REGISTER_SUSPEND: REGISTER only


@dataclass(slots=True)
class Suspension:
    user: str
    source_host: str
    scope: SuspensionScope
    since_wall: float
    until_wall: float
    until: float  # clock.now() based, what the policy compares against
    failures: int
    refused: int = 0  # requests refused since the last audit entry about them
    last_audit: float | None = None

    def matches(self, target: str) -> bool:
        """``vosapp auth unsuspend USER|ADDR``: a user name or a source address."""
        return target in (self.user, self.source_host)


class AuthJournal(Protocol):
    """Where the policy writes its audit trail and suspensions (SQLite, memory, a trace...)."""

    def record(self, event: AuthEvent) -> None: ...

    def suspended(self, suspension: Suspension) -> None: ...

    def lifted(self, suspension: Suspension) -> bool:
        """Whether someone else (``vosapp auth unsuspend`` in another process) lifted it."""
        ...


class MemoryJournal:
    """An in-memory :class:`AuthJournal` for tests and notebooks."""

    def __init__(self) -> None:
        self.events: list[AuthEvent] = []
        self.suspensions: list[Suspension] = []
        self.lifted_targets: set[str] = set()

    def record(self, event: AuthEvent) -> None:
        self.events.append(event)

    def suspended(self, suspension: Suspension) -> None:
        self.suspensions.append(suspension)

    def lifted(self, suspension: Suspension) -> bool:
        return any(suspension.matches(target) for target in self.lifted_targets)

    def reasons(self) -> list[str]:
        return [event.reason for event in self.events]


class SessionValues:
    """The SS_* values an auth session reads, taken from one parameter set once: a Params
    lookup is an interpreted call (vosapp/params.py is not compiled), and a phone's
    registration read four of them, one session per challenge (docs/benchmarks.md,
    thirty-seventh round). :class:`AuthPolicy` keeps one per parameter set it is given."""

    __slots__ = ("challenge_code", "params", "reply_unauthorized", "retry_limit", "timeout")

    def __init__(self, params: Params) -> None:
        self.params = params
        self.retry_limit = int(params["SS_SIP_AUTHENTICATION_RETRY"])
        self.timeout = int(params["SS_SIP_AUTHENTICATION_TIMEOUT"])
        self.reply_unauthorized = bool(params["SS_REPLY_UNAUTHORIZED"])
        self.challenge_code = int(params["SS_SIP_AUTHENTICATION_CODE"])


@dataclass(slots=True)
class AuthSession:
    """One challenge/response exchange: (Call-ID, user, source) with its own params snapshot."""

    key: tuple[str, str, str]
    values: SessionValues
    started: float
    #: started + SS_SIP_AUTHENTICATION_TIMEOUT of the snapshot: the policy asks for it at
    #: every request of the session and at every purge of the sessions.
    deadline: float = field(init=False)
    failures: int = 0  # bad credentials so far (each one re-challenged while <= retry)
    challenges: int = 0

    def __init__(self, key: tuple[str, str, str], values: SessionValues, started: float,
                 failures: int = 0, challenges: int = 0) -> None:
        self.key, self.values, self.started = key, values, started
        self.deadline = started + values.timeout
        self.failures, self.challenges = failures, challenges

    @property
    def params(self) -> Params:
        """The parameter set the session started with (open sessions keep theirs)."""
        return self.values.params


@dataclass(slots=True)
class _TerminalState:
    password_failures: int = 0
    register_failures: int = 0
    suspensions: dict[SuspensionScope, Suspension] = field(default_factory=dict)


#: The decision for right credentials (a frozen value: one for every accepted request).
_ACCEPTED: Final = Decision(Action.ACCEPT, Reason.AUTHENTICATED)

_REASON_FOR_VERDICT: Final[dict[Verdict, Reason]] = {
    Verdict.WRONG_PASSWORD: Reason.WRONG_PASSWORD,
    Verdict.UNKNOWN_USER: Reason.UNKNOWN_USER,
    Verdict.NETWORK_DENIED: Reason.NETWORK_DENIED,
    Verdict.FORGED_NONCE: Reason.FORGED_NONCE,
    Verdict.REPLAYED_NC: Reason.REPLAYED_NC,
    Verdict.WRONG_REALM: Reason.WRONG_REALM,
    Verdict.UNKNOWN_ALGORITHM: Reason.UNKNOWN_ALGORITHM,
    Verdict.MALFORMED: Reason.MALFORMED,
    Verdict.URI_MISMATCH: Reason.URI_MISMATCH,
}


class AuthPolicy:
    """The docs/behaviour.md §2 decision engine. One per switch; not thread-safe (sans-IO, one
    loop).

    ``params`` is the current parameter set; :meth:`set_params` swaps it for sessions that start
    afterwards. Memory is bounded: at most ``max_sessions`` open sessions and ``max_terminals``
    tracked terminals (least recently used are forgotten first, never one under an active
    suspension).
    """

    def __init__(self, params: Params, clock: Clock, journal: AuthJournal | None = None, *,
                 max_sessions: int = 100_000, max_terminals: int = 100_000) -> None:
        if max_sessions < 1 or max_terminals < 1:
            raise ValueError("max_sessions and max_terminals must be at least 1")
        #: The current parameter set (``_values.params``) with the values sessions read.
        self._values = SessionValues(params)
        self._clock = clock
        self._journal: AuthJournal = journal if journal is not None else MemoryJournal()
        self._sessions: OrderedDict[tuple[str, str, str], AuthSession] = OrderedDict()
        self._terminals: OrderedDict[tuple[str, str], _TerminalState] = OrderedDict()
        self._max_sessions = max_sessions
        self._max_terminals = max_terminals
        self.listeners: list[Callable[[AuthEvent], None]] = []  # e.g. Trace.event

    # -- parameters -------------------------------------------------------------------------

    @property
    def params(self) -> Params:
        return self._values.params

    def set_params(self, params: Params) -> None:
        """New values apply to sessions started from now on; open sessions keep theirs."""
        self._values = SessionValues(params)

    @property
    def journal(self) -> AuthJournal:
        return self._journal

    # -- the decision -----------------------------------------------------------------------

    def screen(self, request: AuthRequest) -> Decision | None:
        """Refuse a suspended terminal before its password is looked at (docs/behaviour.md §2.4).

        Returns the refusal (403, or DROP when SS_REPLY_UNAUTHORIZED=Off), or None when the
        request may go on to digest verification.
        """
        suspension = self._active_suspension(request)
        if suspension is None:
            return None
        reason = (Reason.SUSPENDED if suspension.scope is SuspensionScope.TERMINAL
                  else Reason.REGISTER_SUSPENDED)
        # A suspended brute-forcer keeps sending; one audit row per request would let it
        # fill the disk. The first refusal is logged, then one summary row per interval.
        suspension.refused += 1
        now = self._clock.now()
        if suspension.last_audit is None or \
                now - suspension.last_audit >= REFUSAL_AUDIT_INTERVAL:
            self._audit(request, reason, f"{suspension.refused} request(s) refused, "
                                         f"suspended until {suspension.until_wall:.0f}")
            suspension.refused = 0
            suspension.last_audit = now
        return _refusal(self._values.reply_unauthorized, reason)

    def decide(self, request: AuthRequest, verdict: Verdict) -> Decision:
        """What to do with ``request`` whose credentials the caller judged ``verdict``."""
        refused = self.screen(request)
        if refused is not None:
            return refused
        return self.decide_screened(request, verdict)

    def decide_screened(self, request: AuthRequest, verdict: Verdict) -> Decision:
        """:meth:`decide` for a request :meth:`screen` has just let through, with nothing in
        between that can suspend a terminal (:class:`InboundAuthenticator` screens before it
        verifies the digest; a second screen would only repeat the lookups)."""
        now = self._clock.now()
        session = self._session_for(request, now)
        values = session.values
        if now > session.deadline:
            # SS_SIP_AUTHENTICATION_TIMEOUT: whatever retries remain (docs/behaviour.md §2.3).
            self._end(session)
            self._audit(request, Reason.SESSION_TIMEOUT,
                        f"session older than {values.timeout} s")
            return _refusal(values.reply_unauthorized, Reason.SESSION_TIMEOUT)

        if verdict is Verdict.OK:
            self._end(session)
            state = self._terminals.get(request.terminal)
            if state is not None:
                state.password_failures = 0
                state.register_failures = 0
            return _ACCEPTED

        if verdict is Verdict.NO_CREDENTIALS or verdict is Verdict.STALE_NONCE:
            reason = Reason.CHALLENGE if verdict is Verdict.NO_CREDENTIALS else Reason.STALE_NONCE
            if not values.reply_unauthorized:
                self._audit(request, reason, "dropped (SS_REPLY_UNAUTHORIZED=Off)")
                return Decision(Action.DROP, reason)
            session.challenges += 1
            return Decision(Action.CHALLENGE, reason, values.challenge_code,
                            stale=verdict is Verdict.STALE_NONCE)

        reason = _REASON_FOR_VERDICT[verdict]
        session.failures += 1
        self._audit(request, reason, f"failure {session.failures} in session")
        if verdict in PASSWORD_FAILURES:
            tripped = self._count_password_failure(request)
            if tripped is not None:
                self._end(session)
                return _refusal(values.reply_unauthorized, tripped)
        if session.failures > values.retry_limit:
            self._end(session)
            self._audit(request, Reason.RETRIES_EXHAUSTED,
                        f"{session.failures} failures > SS_SIP_AUTHENTICATION_RETRY="
                        f"{values.retry_limit}")
            return _refusal(values.reply_unauthorized, Reason.RETRIES_EXHAUSTED)
        if not values.reply_unauthorized:
            return Decision(Action.DROP, reason)
        if verdict is Verdict.MALFORMED:
            # A header we cannot read gets a specific answer, not another challenge loop.
            return Decision(Action.REJECT, reason, 400)
        session.challenges += 1
        return Decision(Action.CHALLENGE, reason, values.challenge_code)

    # -- suspensions --------------------------------------------------------------------------

    def suspensions(self) -> list[Suspension]:
        """Active suspensions known to this process."""
        now = self._clock.now()
        return [s for state in self._terminals.values() for s in state.suspensions.values()
                if s.until > now]

    def is_suspended(self, user: str, source_host: str, method: str = "INVITE") -> bool:
        request = AuthRequest(method=method, call_id="", user=user, source_host=source_host)
        return self._active_suspension(request) is not None

    def unsuspend(self, target: str) -> int:
        """Lift every suspension whose user or source address is ``target``; returns how many."""
        lifted = 0
        for (user, host), state in self._terminals.items():
            if target not in (user, host):
                continue
            for scope in list(state.suspensions):
                suspension = state.suspensions.pop(scope)
                lifted += 1
                self._audit(AuthRequest("-", "", suspension.user, suspension.source_host),
                            Reason.UNSUSPENDED, f"{scope.value} suspension lifted")
            state.password_failures = 0
            state.register_failures = 0
        return lifted

    def restore(self, suspensions: Iterable[Suspension]) -> None:
        """Re-install suspensions persisted by a previous run (wall time -> this clock)."""
        now, wall = self._clock.now(), self._clock.wall()
        for suspension in suspensions:
            remaining = suspension.until_wall - wall
            if remaining <= 0:
                continue
            suspension.until = now + remaining
            state = self._terminal((suspension.user, suspension.source_host))
            state.suspensions[suspension.scope] = suspension

    def open_sessions(self) -> int:
        return len(self._sessions)

    def failures(self, user: str, source_host: str) -> int:
        state = self._terminals.get((user, source_host))
        return 0 if state is None else state.password_failures

    # -- internals ----------------------------------------------------------------------------

    def _active_suspension(self, request: AuthRequest) -> Suspension | None:
        state = self._terminals.get(request.terminal)
        if state is None or not state.suspensions:
            return None
        now = self._clock.now()
        scopes = [SuspensionScope.TERMINAL]
        if request.method == "REGISTER":
            scopes.append(SuspensionScope.REGISTER)
        for scope in scopes:
            suspension = state.suspensions.get(scope)
            if suspension is None:
                continue
            if suspension.until <= now or self._journal.lifted(suspension):
                del state.suspensions[scope]
                continue
            return suspension
        return None

    def _count_password_failure(self, request: AuthRequest) -> Reason | None:
        """Move the terminal (and registration) counters; suspend when a ceiling is reached."""
        params = self._values.params  # terminal-level: current values, not the session's
        state = self._terminal(request.terminal)
        state.password_failures += 1
        max_retry = int(params["SS_AUTHENTICATION_MAX_RETRY"])
        if max_retry > 0 and state.password_failures >= max_retry:
            self._suspend(request, state, SuspensionScope.TERMINAL,
                          int(params["SS_AUTHENTICATION_FAILED_SUSPEND"]),
                          state.password_failures)
            return Reason.SUSPENDED
        if request.method != "REGISTER":
            return None
        state.register_failures += 1
        register_retry = int(params["SS_ENDPOINT_REGISTER_RETRY"])
        register_suspend = int(params["SS_ENDPOINT_REGISTER_SUSPEND"])
        if register_retry > 0 and register_suspend > 0 \
                and state.register_failures >= register_retry:
            self._suspend(request, state, SuspensionScope.REGISTER, register_suspend,
                          state.register_failures)
            return Reason.REGISTER_SUSPENDED
        return None

    def _suspend(self, request: AuthRequest, state: _TerminalState, scope: SuspensionScope,
                 seconds: int, failures: int) -> None:
        now, wall = self._clock.now(), self._clock.wall()
        suspension = Suspension(user=request.user, source_host=request.source_host, scope=scope,
                                since_wall=wall, until_wall=wall + seconds, until=now + seconds,
                                failures=failures)
        state.suspensions[scope] = suspension
        # A fresh allowance once the suspension is over.
        state.password_failures = 0
        state.register_failures = 0
        self._journal.suspended(suspension)
        reason = Reason.SUSPENDED if scope is SuspensionScope.TERMINAL \
            else Reason.REGISTER_SUSPENDED
        self._audit(request, reason, f"{scope.value} suspended for {seconds} s after "
                                     f"{failures} failed passwords")

    def _terminal(self, key: tuple[str, str]) -> _TerminalState:
        state = self._terminals.get(key)
        if state is None:
            state = self._terminals[key] = _TerminalState()
            self._evict_terminals()
        else:
            self._terminals.move_to_end(key)
        return state

    def _evict_terminals(self) -> None:
        # Forget the least recently used terminals, but never one that is suspended:
        # otherwise a flood of other user names could push a suspension out of memory.
        now = self._clock.now()
        checked = 0
        while len(self._terminals) > self._max_terminals and checked < 1000:
            key, oldest = next(iter(self._terminals.items()))
            checked += 1
            if any(s.until > now for s in oldest.suspensions.values()):
                self._terminals.move_to_end(key)
                continue
            del self._terminals[key]

    def _session_for(self, request: AuthRequest, now: float) -> AuthSession:
        key = (request.call_id, request.user, request.source_host)
        session = self._sessions.get(key)
        if session is None:
            self._purge_sessions(now)
            session = AuthSession(key=key, values=self._values, started=now)
            self._sessions[key] = session
            while len(self._sessions) > self._max_sessions:
                self._sessions.popitem(last=False)
        return session

    def _purge_sessions(self, now: float) -> None:
        # Sessions are created in time order, so the oldest are at the front. A session past
        # its deadline is kept a little longer (one transaction lifetime, 32 s = 64*T1) so a
        # late answer in it still gets its "session timeout" 403.
        while self._sessions:
            oldest = next(iter(self._sessions.values()))
            if oldest.deadline + 32.0 >= now:
                break
            self._sessions.popitem(last=False)

    def _end(self, session: AuthSession) -> None:
        self._sessions.pop(session.key, None)

    def _audit(self, request: AuthRequest, reason: Reason, detail: str = "") -> None:
        event = AuthEvent(wall=self._clock.wall(), source_host=request.source_host,
                          source_port=request.source_port, user=request.user,
                          method=request.method, reason=reason.value, call_id=request.call_id,
                          detail=detail)
        self._journal.record(event)
        for listener in self.listeners:
            listener(event)


def source_allowed(source_host: str, networks: Iterable[str]) -> bool:
    """Whether ``source_host`` lies in one of ``networks`` (CIDR strings); empty = anywhere."""
    nets = list(networks)
    if not nets:
        return True
    try:
        address = ipaddress.ip_address(source_host)
    except ValueError:
        return False
    for net in nets:
        try:
            if address in ipaddress.ip_network(net, strict=False):
                return True
        except ValueError:
            continue
    return False


# -- the SIP side: credentials in, responses out ---------------------------------------------

#: At most this many Authorization/Proxy-Authorization values are looked at (a flood of
#: headers must not become a flood of digest computations).
MAX_CREDENTIAL_HEADERS: Final = 4
#: User names longer than this are cut in the policy's tables (bounded memory per terminal).
MAX_USER_LENGTH: Final = 128


class AccountLookup(Protocol):
    """``lookup(user)`` → an account with ``password`` and ``allows(address)``, or None."""

    def __call__(self, user: str) -> _AccountLike | None: ...


class _AccountLike(Protocol):
    @property
    def password(self) -> str: ...  # read-only: config.Account is frozen

    @property
    def networks(self) -> Sequence[object]: ...  # empty: every address is allowed

    def allows(self, address: str) -> bool: ...


@dataclass(slots=True, unsafe_hash=True)
class AuthResult:
    decision: Final[Decision]
    request: Final[AuthRequest]
    username: Final[str | None]  # the authenticated user (ACCEPT only)
    detail: Final[str]

    def __init__(self, decision: Decision, request: AuthRequest, username: str | None = None,
                 detail: str = "") -> None:
        self.decision, self.request = decision, request
        self.username, self.detail = username, detail

    @property
    def accepted(self) -> bool:
        return self.decision.action is Action.ACCEPT


class InboundAuthenticator:
    """docs/behaviour.md §2 for one SIP request: read the credentials, screen, verify, decide,
    answer.

    Used by the REGISTER handler (:class:`vosapp.switch.registrar.RegistrarService`) and meant
    for the B2BUA's INVITE: ``result = auth.authenticate(request, txn.source)``; when
    ``result.accepted`` go on as ``result.username``, else ``auth.finish(result, request, txn,
    core.make_response)`` sends the challenge / 403 / 400 or drops the request. Requests from
    trusted gateway addresses should not be passed here at all (docs/behaviour.md §2.1).
    """

    def __init__(self, policy: AuthPolicy, digest: DigestServer, accounts: AccountLookup, *,
                 algorithm: str = "MD5", check_request_uri: bool = False) -> None:
        self.policy = policy
        self.digest = digest
        self.accounts = accounts
        self.algorithm = algorithm
        self.check_request_uri = check_request_uri

    def authenticate(self, request: Request, source: tuple[str, int]) -> AuthResult:
        method = request.method
        # RFC 3261 §22.4 / RFC 4475 regaut01: credentials of a scheme we do not know are
        # ignored (the request is then challenged like one without credentials), not a 400.
        values = request.authorization + request.proxy_authorization
        if values:  # (the first REGISTER of every registration has none)
            values = [value for value in values
                      if (value.split(None, 1) or [""])[0].lower() == "digest"
                      ][:MAX_CREDENTIAL_HEADERS]
        credentials = None
        parse_problem = ""
        for value in values:
            try:
                parsed = parse_credentials(value)
            except DigestError as exc:
                parse_problem = exc.reason
                continue
            if credentials is None or parsed.realm == self.digest.realm:
                credentials = parsed
        if credentials is not None:
            user = credentials.username
        else:
            try:
                user = _claimed_user(request, method)
            except SipParseError:
                user = ""
        auth_request = AuthRequest(method=method, call_id=_call_id(request),
                                   user=user[:MAX_USER_LENGTH], source_host=source[0],
                                   source_port=int(source[1]))
        refused = self.policy.screen(auth_request)
        if refused is not None:
            return AuthResult(refused, auth_request, detail="suspended")
        if credentials is None:
            verdict = Verdict.MALFORMED if values else Verdict.NO_CREDENTIALS
            return AuthResult(self.policy.decide_screened(auth_request, verdict), auth_request,
                              detail=parse_problem)
        denied_by_network = False

        def password_of(name: str) -> str | None:
            nonlocal denied_by_network
            account = self.accounts(name)
            if account is None:
                return None
            # (networks asked first: Account.allows is an interpreted call, and most
            # accounts have none)
            if account.networks and not account.allows(source[0]):
                denied_by_network = True  # same answer as an unknown user: no enumeration
                return None
            return account.password

        request_uri = str(request.uri) if self.check_request_uri else None
        result = self.digest.verify(credentials, method, password_of,
                                    body=request.body,
                                    request_uri=request_uri)
        verdict = _VERDICT_FOR_OUTCOME[result.outcome]
        if verdict is Verdict.UNKNOWN_USER and denied_by_network:
            verdict = Verdict.NETWORK_DENIED
        decision = self.policy.decide_screened(auth_request, verdict)
        username = credentials.username if decision.action is Action.ACCEPT else None
        return AuthResult(decision, auth_request, username, result.detail)

    def finish(self, result: AuthResult, request: Request, txn: ServerTransaction,
               make_response: Callable[[Request, int, str | None], Response]) -> None:
        """Send what a non-accepting decision asks for (challenge, 403/400) or drop."""
        decision = result.decision
        if decision.action is Action.ACCEPT:
            raise ValueError("finish() is for refused requests; an accepted one goes on")
        if decision.action is Action.DROP:
            txn.drop()
            return
        reason = _REASON_PHRASES.get(decision.reason)
        response = make_response(request, int(decision.status or 403), reason)
        if decision.action is Action.CHALLENGE:
            challenge = self.digest.challenge_value(stale=decision.stale,
                                                    algorithm=self.algorithm)
            response.headers.set(str(decision.challenge_header), challenge)
            if decision.reason is Reason.CHALLENGE:
                # A request without credentials (the first REGISTER or INVITE of a phone, and
                # every one of a scanner's): challenged statelessly, RFC 3261 §26.3.2.4, so
                # a flood holds no transaction; a retransmission gets a challenge of its own,
                # which counts nothing (docs/behaviour.md §2.3). A request with credentials
                # keeps its transaction: handled twice, it would be a replayed nonce count.
                txn.respond_statelessly(response)
                return
        txn.respond(response)


def _refusal(reply_unauthorized: bool, reason: Reason) -> Decision:
    """A refusal: 403, or nothing at all under SS_REPLY_UNAUTHORIZED=Off."""
    if not reply_unauthorized:
        return Decision(Action.DROP, reason)
    return Decision(Action.REJECT, reason, 403)


_REASON_PHRASES: Final[dict[Reason, str]] = {
    Reason.RETRIES_EXHAUSTED: "Forbidden (authentication retries exhausted)",
    Reason.SESSION_TIMEOUT: "Forbidden (authentication timeout)",
    Reason.SUSPENDED: "Forbidden (terminal suspended)",
    Reason.REGISTER_SUSPENDED: "Forbidden (registration suspended)",
    Reason.MALFORMED: "Bad Request (malformed credentials)",
}


def _call_id(request: Request) -> str:
    try:
        return request.call_id[:256]
    except Exception:  # noqa: BLE001 - the core refuses requests without Call-ID first
        return ""


def _claimed_user(request: Request, method: str) -> str:
    """Who the request claims to be before credentials: To for REGISTER (§10.2), else From."""
    uri = request.to_uri if method == "REGISTER" else request.from_uri
    return str(getattr(uri, "user", None) or "")
