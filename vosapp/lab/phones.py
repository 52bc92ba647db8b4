"""Small built-in SIP user agents for the lab: a softphone that registers and calls, and a
carrier registrar.

They let a notebook stage a scenario with no external tool, on real asyncio UDP sockets bound
to loopback (port 0 = any free port):

* :class:`LabPhone` -- registers one account with a switch and places and answers calls
  (a :class:`~vosapp.lab.sip_ua.UserAgent`). ``await phone.register()`` sends REGISTER,
  answers one 401/407 digest challenge with its password (right or wrong: it is the
  notebook's choice) and returns the final response, or ``None`` when the switch said
  nothing at all (``SS_REPLY_UNAUTHORIZED=Off``). ``call = await phone.call("1002")`` dials
  through the switch (see :mod:`vosapp.lab.calls` for what a call can do);
  ``await phone.next_call()`` waits for one. Every response it ever received is kept in
  :attr:`LabPhone.responses`.
* :class:`LabRegistrar` -- an upstream carrier's registrar: it challenges every REGISTER with
  digest (401 or 407), grants an expiry, and records each REGISTER it receives
  (:attr:`LabRegistrar.registers`), including the ``Expires: 0`` unregister a switch sends on
  a graceful stop (docs/behaviour.md §3). Its logic lives in :class:`CarrierRegistrar` (sans-IO), so
  the same registrar can sit on a :class:`vosapp.io.virtual.VirtualNetwork` endpoint too.

Retransmission: every REGISTER is an RFC 3261 §17.1.2 non-INVITE client transaction of the
SIP core (Timer E: T1, 2*T1 ... capped at T2), until a final response arrives or ``timeout``
seconds pass (Timer F is 64*T1 = 32 s in the RFC; the lab's default ``timeout`` is shorter so
a silent switch does not stall a notebook, and the transaction is ended then). The registrar
answers retransmissions of a request it already answered with the same response (§17.2.2)
without recording them twice.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Self

from vosapp.clock import Clock
from vosapp.io.clock import LoopClock
from vosapp.lab.calls import Call
from vosapp.lab.sip_ua import T1, UaError, UserAgent, _SipSocket, check_address, is_loopback
from vosapp.net import Address
from vosapp.sip import (
    NameAddr,
    Request,
    Response,
    SipParseError,
    make_response,
    new_call_id,
    new_tag,
    parse,
)
from vosapp.sip.digest import DigestClient, DigestError, DigestServer, choose_challenge

__all__ = [
    "CarrierRegistrar",
    "LabPhone",
    "LabRegistrar",
    "PhoneError",
    "RegisterRecord",
]


#: A lab user agent was used wrongly (not open, already closed, bad address).
PhoneError = UaError


# ------------------------------------------------------------------------------- the phone


class LabPhone(UserAgent):
    """A softphone that registers ``user`` with the switch at ``switch_address`` and calls.

    Parameters
    ----------
    user, password : str
        The account. A wrong password is allowed on purpose (it is how a lab shows the
        authentication policy at work).
    switch_address : (host, port)
        Where REGISTER and INVITE go (the switch's ``sip_address``).
    host : str
        Local address to bind (default ``127.0.0.1``); the port is chosen by the OS.
    domain : str, optional
        The registrar domain in the Request-URI and To/From (default: the switch's host).
    timeout : float
        Seconds to wait for a final response before :meth:`register` returns ``None``.
    t1 : float
        Retransmission base (RFC 3261 T1) of the phone's transactions.
    codecs : names
        What calls offer and accept, in preference order (default all five).
    clock : Clock, optional
        Time source (default: the event loop's real time).

    Use ``async with LabPhone(...) as phone`` or ``await phone.open()`` / ``phone.close()``;
    :meth:`register` and :meth:`call` open the socket on first use.
    """

    def __init__(self, user: str, password: str, switch_address: Address, *,
                 host: str = "127.0.0.1", domain: str | None = None, timeout: float = 4.0,
                 t1: float = T1, user_agent: str = "vosapp-lab-phone",
                 **options: Any) -> None:
        self.switch_address: Address = check_address(switch_address, "switch_address")
        super().__init__(user, host=host, domain=domain or self.switch_address[0], t1=t1,
                         user_agent=user_agent, **options)
        self.password = password
        self.timeout = timeout
        self.digest = DigestClient(user, password)
        self.call_id = new_call_id()
        self.from_tag = new_tag()
        self.cseq = 0

    # -- registration ------------------------------------------------------------------
    async def register(self, expires: int = 3600, *, answer_challenges: int = 1,
                       timeout: float | None = None) -> Response | None:
        """Register (``expires`` > 0) or unregister (0); returns the final response.

        A 401/407 challenge is answered with the phone's password up to
        ``answer_challenges`` times (0: never -- the challenge itself is returned). A
        challenge that comes back after credentials were sent is returned as is: the
        password was wrong. ``None`` means no final response within ``timeout``.
        """
        await self.open()
        authorization: tuple[str, str] | None = None
        answered = 0
        while True:
            request = self._build_register(expires, authorization)
            response = await self.request(request, self.switch_address,
                                          self.timeout if timeout is None else timeout)
            if response is None or response.status not in (401, 407):
                return response
            if answered >= answer_challenges:
                return response
            header = "WWW-Authenticate" if response.status == 401 else "Proxy-Authenticate"
            try:
                challenge = choose_challenge(response.headers.get_all(header))
            except DigestError:
                return response  # a challenge we cannot answer: give it to the caller
            credentials = self.digest.authorize(challenge, "REGISTER", self._request_uri())
            name = "Authorization" if response.status == 401 else "Proxy-Authorization"
            authorization = (name, str(credentials))
            answered += 1

    async def unregister(self, *, timeout: float | None = None) -> Response | None:
        """REGISTER with ``Expires: 0`` for this phone's contact (same Call-ID)."""
        return await self.register(0, timeout=timeout)

    @property
    def final_responses(self) -> list[Response]:
        return [r for r in self.responses if r.status >= 200]

    def status_counts(self) -> dict[int, int]:
        """How many responses of each status the phone received."""
        counts: dict[int, int] = {}
        for response in self.responses:
            counts[response.status] = counts.get(response.status, 0) + 1
        return counts

    # -- calls -------------------------------------------------------------------------
    async def call(self, number: str, *, codecs: Iterable[str] | None = None,
                   headers: Iterable[tuple[str, str]] = ()) -> Call:
        """Dial ``number`` through the switch (answering its digest challenge with the
        phone's password); returns the call at once -- ``await call.wait_answered()``."""
        return await self.dial(number, self.switch_address, domain=self.domain,
                               password=self.password, codecs=codecs, headers=headers)

    # -- internals ---------------------------------------------------------------------
    def _request_uri(self) -> str:
        host, port = self.switch_address
        return f"sip:{self.domain}" if self.domain != host else f"sip:{host}:{port}"

    def _build_register(self, expires: int, authorization: tuple[str, str] | None) -> Request:
        self.cseq += 1
        aor = self.aor()
        headers = self.headers(("Expires", str(int(expires))))
        if authorization is not None:
            headers.append(authorization)
        return Request.build(
            "REGISTER", self._request_uri(), via=self.via(),
            from_=NameAddr(aor.uri, params={"tag": self.from_tag}), to=aor,
            call_id=self.call_id, cseq=self.cseq, contact=self.contact(), headers=headers)

    def __repr__(self) -> str:
        where = "closed" if self._socket is None else "{}:{}".format(*self.address)
        return f"<LabPhone {self.user} at {where}, {len(self.responses)} responses>"


# --------------------------------------------------------------------------- the registrar


@dataclass(frozen=True)
class RegisterRecord:
    """One REGISTER a :class:`CarrierRegistrar` received (retransmissions excluded)."""

    time: float
    source: Address
    user: str
    call_id: str
    cseq: int
    expires: int | None  # what the request asked for (Contact param, else Expires header)
    authorized: bool  # carried credentials that verified with the right password
    status: int  # what the registrar answered
    contact: str
    privacy: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_unregister(self) -> bool:
        return self.expires == 0


class CarrierRegistrar:
    """A carrier registrar's logic, sans-IO: ``handle(data, source) -> bytes | None``.

    Parameters
    ----------
    accounts : mapping user -> password
    realm : str
    challenge_code : 401 or 407
        401 challenges with WWW-Authenticate, 407 with Proxy-Authenticate.
    max_expires : int
        Longest expiry granted; a request asking for more gets this (a carrier's choice,
        which ``SS_SIP_USER_AGENT_EXPIRE = Auto`` makes the switch follow).
    default_expires : int
        Granted when the request names no expiry.
    clock : Clock, optional
        Time source for nonces and records (a ``ManualClock`` in virtual time; by default
        the monotonic clock).
    """

    def __init__(self, accounts: Mapping[str, str], *, realm: str = "carrier.lab",
                 challenge_code: int = 401, max_expires: int = 3600,
                 default_expires: int = 3600, clock: Clock | None = None) -> None:
        if challenge_code not in (401, 407):
            raise ValueError(f"challenge_code must be 401 or 407, not {challenge_code}")
        self.accounts = dict(accounts)
        self.realm = realm
        self.challenge_code = challenge_code
        self.max_expires = max_expires
        self.default_expires = default_expires
        self.clock: Clock = clock if clock is not None else LoopClock()
        self.digest = DigestServer(realm, os.urandom(32), self.clock)
        #: Every REGISTER received (not counting retransmissions), oldest first.
        self.registers: list[RegisterRecord] = []
        #: user -> (contact, expires_at on ``clock``) of live bindings.
        self.bindings: dict[str, tuple[str, float]] = {}
        self._answered: dict[tuple[str, str, str], bytes] = {}  # (branch, call-id, cseq)

    # What the registrar asks for in the challenge/credentials headers.
    @property
    def challenge_header(self) -> str:
        return "WWW-Authenticate" if self.challenge_code == 401 else "Proxy-Authenticate"

    @property
    def credentials_header(self) -> str:
        return "Authorization" if self.challenge_code == 401 else "Proxy-Authorization"

    @property
    def unregisters(self) -> list[RegisterRecord]:
        """REGISTERs asking for ``Expires: 0``."""
        return [r for r in self.registers if r.is_unregister]

    def live_bindings(self) -> dict[str, str]:
        now = self.clock.now()
        return {user: contact for user, (contact, until) in self.bindings.items() if until > now}

    def handle(self, data: bytes, source: Address) -> bytes | None:
        """Answer one datagram; None when nothing is to be sent (garbage, ACK, a response)."""
        try:
            message = parse(data)
        except SipParseError:
            return None
        if isinstance(message, Response) or message.method == "ACK":
            return None
        try:
            key = (message.top_via.branch or "", message.call_id, str(message.cseq))
        except (SipParseError, ValueError):
            return None
        if key in self._answered:
            return self._answered[key]  # a retransmission: same answer, not recorded again
        response = self._respond(message, source)
        if response is None:
            return None
        wire = bytes(response)
        self._answered[key] = wire
        if len(self._answered) > 4096:
            self._answered.pop(next(iter(self._answered)))
        return wire

    def _respond(self, request: Request, source: Address) -> Response | None:
        if request.method == "OPTIONS":
            return make_response(request, 200, to_tag=new_tag())
        if request.method != "REGISTER":
            return make_response(request, 405, to_tag=new_tag())
        user = getattr(request.to.uri, "user", None) or ""
        contacts = request.contacts
        contact = str(contacts[0].uri) if contacts else ""
        requested = contacts[0].expires if contacts and contacts[0].expires is not None \
            else request.expires
        credentials = request.headers.get(self.credentials_header)
        authorized = False
        if credentials:
            result = self.digest.verify(credentials, "REGISTER",
                                        lambda name: self.accounts.get(name))
            authorized = result.ok and result.username == user
            if result.stale:
                response = self._challenge(request, stale=True)
                self._record(request, source, user, requested, False, response, contact)
                return response
        if not authorized:
            response = self._challenge(request)
            self._record(request, source, user, requested, False, response, contact)
            return response
        granted = min(self.default_expires if requested is None else requested,
                      self.max_expires)
        response = make_response(request, 200, to_tag=new_tag())
        if granted > 0:
            self.bindings[user] = (contact, self.clock.now() + granted)
            response.headers.add("Contact", f"<{contact}>;expires={granted}")
        else:
            self.bindings.pop(user, None)
        response.headers.add("Expires", str(granted))
        self._record(request, source, user, requested, True, response, contact)
        return response

    def _challenge(self, request: Request, *, stale: bool = False) -> Response:
        response = make_response(request, self.challenge_code, to_tag=new_tag())
        response.headers.add(self.challenge_header, str(self.digest.challenge(stale=stale)))
        return response

    def _record(self, request: Request, source: Address, user: str, expires: int | None,
                authorized: bool, response: Response, contact: str) -> None:
        self.registers.append(RegisterRecord(
            time=self.clock.now(), source=source, user=user, call_id=request.call_id,
            cseq=request.cseq.number, expires=expires, authorized=authorized,
            status=response.status, contact=contact, privacy=request.headers.get("Privacy"),
            headers={name: value for name, value in request.headers.items()}))


class LabRegistrar(CarrierRegistrar):
    """A :class:`CarrierRegistrar` on a real loopback UDP socket (port 0 = any free port).

    ``await registrar.start()`` then ``registrar.address``; ``registrar.close()``.
    """

    def __init__(self, accounts: Mapping[str, str], *, host: str = "127.0.0.1", port: int = 0,
                 **options: Any) -> None:
        super().__init__(accounts, **options)
        if not is_loopback(host):
            raise PhoneError(f"the lab registrar binds loopback only, not {host!r}")
        self.host = host
        self.port = port
        self._endpoint: _SipSocket | None = None

    async def start(self) -> LabRegistrar:
        if self._endpoint is None:
            loop = asyncio.get_running_loop()
            _, protocol = await loop.create_datagram_endpoint(
                lambda: _SipSocket(self._on_datagram), local_addr=(self.host, self.port))
            self._endpoint = protocol
        return self

    @property
    def address(self) -> Address:
        if self._endpoint is None or self._endpoint.transport is None:
            raise PhoneError("the lab registrar is not started")
        sockname = self._endpoint.transport.get_extra_info("sockname")
        return (sockname[0], int(sockname[1]))

    def close(self) -> None:
        if self._endpoint is not None and self._endpoint.transport is not None:
            self._endpoint.transport.close()
        self._endpoint = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def _on_datagram(self, data: bytes, source: Address) -> None:
        reply = self.handle(data, source)
        if reply is not None and self._endpoint is not None \
                and self._endpoint.transport is not None:
            self._endpoint.transport.sendto(reply, source)

    def __repr__(self) -> str:
        where = "stopped" if self._endpoint is None else "{}:{}".format(*self.address)
        return f"<LabRegistrar {self.realm} at {where}, {len(self.registers)} REGISTERs>"
