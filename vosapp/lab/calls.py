"""One call of a lab user agent: the INVITE dialog (RFC 3261 §13-15) and its RTP media.

Written for notebook cells::

    call = await phone.call("1002")
    await call.wait_answered()
    await call.play("data/speech/arctic_a0007.wav")
    await call.send_dtmf("123", method="rfc2833")     # or "info", "inband"
    await call.hold(); await call.resume()
    await call.hangup()
    call.recording(), call.packet_log(), call.rtp_stats()

An incoming call (``await phone.next_call()``) is answered with :meth:`Call.answer` or
refused with :meth:`Call.reject`. Every step is in :attr:`Call.events` with its time.

Signalling goes through the UA's transactions: this module builds requests and reacts to
responses; it never retransmits a request itself. The two retransmissions RFC 3261 gives the
UA core rather than the transaction are here: the UAS's 2xx until the ACK (§13.3.1.4, T1
doubling to T2) and a reliable provisional until its PRACK (RFC 3262 §3), both on the clock.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vosapp.lab.call_audio import DTMF_METHODS, CallAudio, CallError, sdp_codec
from vosapp.media.dtmf import format_info_body, parse_info_body
from vosapp.sip import NameAddr, Request, Response, SipUri, make_response, new_call_id, new_tag
from vosapp.sip import sdp as sdplib
from vosapp.sip.dialog import Dialog, DialogError, DialogState
from vosapp.sip.digest import DigestClient, DigestError, choose_challenge
from vosapp.sip.transaction import DeliverRequest, DeliverResponse, TimedOut, TransportFailed

if TYPE_CHECKING:
    from vosapp.lab.sip_ua import Address, UserAgent
    from vosapp.sip.transaction import ServerTransaction, TUEvent

__all__ = ["Call", "CallError", "CallEvent"]


@dataclass(frozen=True)
class CallEvent:
    """One step of a call: ``time`` (the UA's clock), ``what`` and a detail."""

    time: float
    what: str
    detail: str = ""


def _has_option(message: Request | Response, header: str, option: str) -> bool:
    return any(option in (v.strip().lower() for v in value.split(","))
               for value in message.headers.get_all(header))


def _uri_address(uri: Any, default_port: int = 5060) -> Address:
    return (uri.host, uri.port or default_port)


class Call(CallAudio):
    """A call placed (:meth:`outgoing`) or received (:meth:`incoming`) by a user agent.

    ``state``: ``calling`` -> ``ringing`` -> ``answered`` -> ``ended``; or ``failed``
    (refused, cancelled, timed out). ``held`` / ``remote_held``: who put whom on hold.
    """

    def __init__(self, ua: UserAgent, direction: str, call_id: str, codecs: tuple[str, ...]
                 ) -> None:
        super().__init__()
        self.ua = ua
        self.direction = direction
        self.call_id = call_id
        self.codecs = codecs
        self.state = "calling"
        self.status: int | None = None  # the INVITE's final status
        self.events: list[CallEvent] = []
        self.dialog: Dialog | None = None
        self.invite: Request | None = None
        self.held = False  # we put the peer on hold
        self.remote_held = False  # the peer put us on hold
        #: Digits received by SIP INFO (all methods: :meth:`received_digits`).
        self.info_digits: list[str] = []
        loop = asyncio.get_running_loop()
        self._answered: asyncio.Future[None] = loop.create_future()
        self._ended: asyncio.Future[None] = loop.create_future()
        self._pracked: asyncio.Future[None] = loop.create_future()
        self._agreed: sdplib.Answer | None = None
        self._answered.add_done_callback(lambda f: f.cancelled() or f.exception())
        # outgoing
        self.destination: Address | None = None
        self._uri: SipUri | None = None
        self._to: NameAddr | None = None
        self._from: NameAddr | None = None
        self._cseq = 0
        self._digest: DigestClient | None = None
        self._extra: list[tuple[str, str]] = []
        self._ack: Request | None = None
        self._cancelled = False
        # incoming
        self.server: ServerTransaction | None = None
        self.local_tag = new_tag()
        self._final: Response | None = None
        self._retransmit: Any = None

    # ------------------------------------------------------------------ bookkeeping
    def _event(self, what: str, detail: str = "") -> None:
        self.events.append(CallEvent(self.ua.clock.now(), what, detail))

    def note(self, what: str, detail: str = "") -> None:
        """Add a line to :attr:`events` (what an endpoint's own logic decided)."""
        self._event(what, detail)

    def _end(self, state: str, detail: str = "") -> None:
        if self.state in ("ended", "failed"):
            return
        self.state = state
        self._event(state, detail)
        self.close_media()
        self._stop_retransmit()
        if self.dialog is not None:
            self.dialog.state = DialogState.TERMINATED
        if not self._answered.done():
            self._answered.set_exception(CallError(f"call {state}: {detail}", self.status))
        if not self._ended.done():
            self._ended.set_result(None)

    @property
    def ended(self) -> bool:
        return self.state in ("ended", "failed")

    async def wait_answered(self, timeout: float | None = 30.0) -> Call:
        """Wait for the 200 OK; raises :class:`CallError` (with ``status``) when refused."""
        await asyncio.wait_for(asyncio.shield(self._answered), timeout)
        return self

    async def wait_ended(self, timeout: float | None = 30.0) -> Call:
        await asyncio.wait_for(asyncio.shield(self._ended), timeout)
        return self

    # ------------------------------------------------------------------ outgoing
    @classmethod
    def outgoing(cls, ua: UserAgent, number: str, destination: Address, *, domain: str,
                 password: str | None, codecs: tuple[str, ...],
                 headers: list[tuple[str, str]]) -> Call:
        call = cls(ua, "outgoing", new_call_id(), codecs)
        call.destination = destination
        call._uri = SipUri(host=domain, user=number,
                           port=destination[1] if domain == destination[0] else None)
        call._to = NameAddr(SipUri(host=domain, user=number))
        call._from = ua.aor(domain=domain)
        call._from.params["tag"] = call.local_tag
        call._digest = DigestClient(ua.user, password) if password is not None else None
        call._extra = headers
        return call

    async def start(self) -> None:
        await self._open_media()
        self._offer()
        self._send_invite(None)
        self._event("INVITE", str(self._uri))

    def _send_invite(self, authorization: tuple[str, str] | None) -> None:
        assert self._uri is not None and self._from is not None and self._to is not None
        assert self._local_sdp is not None and self.destination is not None
        self._cseq += 1
        extra = [*self._extra, ("Allow", "INVITE, ACK, CANCEL, BYE, INFO, OPTIONS, PRACK"),
                 ("Supported", "100rel")]
        if authorization is not None:
            extra.append(authorization)
        self.invite = Request.build(
            "INVITE", self._uri, via=self.ua.via(), from_=self._from, to=self._to,
            call_id=self.call_id, cseq=self._cseq, contact=self.ua.contact(),
            headers=self.ua.headers(*extra), body=bytes(self._local_sdp),
            content_type="application/sdp")
        self.ua.send_request(self.invite, self.destination, self._on_invite_event)

    def _on_invite_event(self, event: TUEvent) -> None:
        if isinstance(event, DeliverResponse):
            response = event.response
            if response.status < 200:
                self._provisional(response)
            elif response.status < 300:
                self.on_invite_2xx(response)
            elif response.status in (401, 407) and self._authorize(response):
                return
            else:
                self.status = response.status
                self._end("failed", f"{response.status} {response.reason}")
        elif isinstance(event, TimedOut) and self.state in ("calling", "ringing"):
            self.status = 408
            self._end("failed", "no final response (Timer B)")
        elif isinstance(event, TransportFailed) and not self.ended and self.dialog is None:
            self.status = 503
            self._end("failed", event.reason)

    def _provisional(self, response: Response) -> None:
        self._event(str(response.status), response.reason or "")
        if response.status > 100 and self.state == "calling":
            self.state = "ringing"
        if response.body and response.content_type == "application/sdp":
            self._early_media(response)
        if _has_option(response, "Require", "100rel") and response.headers.get("RSeq"):
            self._prack(response)

    def _prack(self, response: Response) -> None:
        """RFC 3262 §4: acknowledge a reliable provisional with PRACK in its early dialog."""
        assert self.invite is not None
        if self.dialog is None:
            try:
                self.dialog = Dialog.from_uac(self.invite, response)
            except DialogError as exc:
                self._event("no PRACK", str(exc))
                return
        rack = f"{response.headers.get('RSeq')} {self.invite.cseq.number} INVITE"
        request = self.dialog.create_request("PRACK", via=self.ua.via(),
                                             headers=self.ua.headers(("RAck", rack)))
        self._event("PRACK", rack)
        self.ua.spawn(self.ua.request(request, self._target()))

    def _early_media(self, response: Response) -> None:
        assert self._local_sdp is not None
        try:
            self._start_media(sdplib.read_answer(response.body, self._local_sdp))
        except sdplib.SdpError as exc:
            self._event("bad SDP", str(exc))

    def _authorize(self, response: Response) -> bool:
        """Answer a 401/407 once (§22.2); False when we cannot (no password, twice)."""
        assert self.invite is not None
        if self._digest is None:
            return False
        header = "WWW-Authenticate" if response.status == 401 else "Proxy-Authenticate"
        if self.invite.headers.get("Authorization" if response.status == 401
                                   else "Proxy-Authorization"):
            return False  # the credentials were refused
        try:
            challenge = choose_challenge(response.headers.get_all(header))
        except DigestError:
            return False
        credentials = self._digest.authorize(challenge, "INVITE", str(self._uri))
        name = "Authorization" if response.status == 401 else "Proxy-Authorization"
        self._event(str(response.status), "answering the challenge")
        self._send_invite((name, str(credentials)))
        return True

    def on_invite_2xx(self, response: Response) -> None:
        """A 2xx to our INVITE (first or retransmitted): dialog, ACK, media (§13.2.2.4)."""
        assert self.invite is not None and self.destination is not None
        if response.cseq.number != self.invite.cseq.number:
            return
        if self._ack is None:
            if self.dialog is None or self.dialog.remote_tag != response.to.tag:
                try:
                    self.dialog = Dialog.from_uac(self.invite, response)
                except DialogError as exc:  # no To tag or no Contact: nothing to ACK to
                    self.status = response.status
                    self._end("failed", f"unusable 2xx: {exc}")
                    return
            self.dialog.update_from_response(response)
            self._ack = self.dialog.ack_for_2xx(self.invite, via=self.ua.via())
            self.ua.send_stateless(self._ack, self._target())
            self.status = response.status
            if self._cancelled:
                self._event("200", "after CANCEL: ACK and BYE")
                self.ua.spawn(self.hangup())
                return
            self._accepted(response)
        else:
            self.ua.send_stateless(self._ack, self._target())

    def _accepted(self, response: Response) -> None:
        assert self._local_sdp is not None
        self.state = "answered"
        self._event("200", "answered")
        try:
            self._start_media(sdplib.read_answer(response.body, self._local_sdp))
        except sdplib.SdpError as exc:
            self._event("bad SDP", str(exc))
        if not self._answered.done():
            self._answered.set_result(None)

    def _target(self) -> Address:
        """Where in-dialog requests go: the first route, else the remote target (§12.2.1.1)."""
        assert self.dialog is not None
        if self.dialog.route_set:
            return _uri_address(self.dialog.route_set[0].uri)
        return _uri_address(self.dialog.remote_target)

    async def cancel(self) -> None:
        """CANCEL a call that is not answered yet (§9.1); the INVITE then ends with 487."""
        if self.direction != "outgoing" or self.state not in ("calling", "ringing"):
            raise CallError(f"only an unanswered outgoing call can be cancelled "
                            f"(this one is {self.state})")
        assert self.invite is not None and self.destination is not None
        self._cancelled = True
        cancel = Request.build(
            "CANCEL", self.invite.uri, via=self.invite.top_via, from_=self.invite.from_,
            to=self.invite.to, call_id=self.call_id, cseq=self.invite.cseq.number,
            headers=self.ua.headers())
        cancel.headers.set("CSeq", f"{self.invite.cseq.number} CANCEL")
        self._event("CANCEL")
        await self.ua.request(cancel, self.destination)
        await self.wait_ended()

    # ------------------------------------------------------------------ incoming
    @classmethod
    def incoming(cls, ua: UserAgent, request: Request, server: ServerTransaction) -> Call:
        call = cls(ua, "incoming", request.call_id, ua.codecs)
        call.invite = request
        call.server = server
        call.destination = server.source
        server.add_listener(call._on_server_event)
        call.state = "ringing"
        call._event("INVITE", str(request.uri))
        return call

    @property
    def caller(self) -> str:
        """The caller's user part (incoming) or the number dialled (outgoing)."""
        assert self.invite is not None
        uri = (self.invite.from_ if self.direction == "incoming" else self.invite.to).uri
        return getattr(uri, "user", None) or str(uri)

    def _respond(self, status: int, *, body: bytes = b"", headers: Iterable[tuple[str, str]] = ()
                 ) -> Response:
        assert self.invite is not None and self.server is not None
        response = make_response(self.invite, status, to_tag=self.local_tag)
        if 100 < status < 300:
            response.headers.add("Contact", str(self.ua.contact()))
        for name, value in headers:
            response.headers.add(name, value)
        if body:
            response.headers.add("Content-Type", "application/sdp")
            response.body = body
        self.server.respond(response)
        return response

    def ring(self) -> None:
        """Send 180 Ringing."""
        if self.server is not None and not self.server.answered:
            self._respond(100)
        self._respond(180)
        self._event("180", "ringing")

    def peer_supports_100rel(self) -> bool:
        """Whether the INVITE allows reliable provisional responses (RFC 3262 §3)."""
        assert self.invite is not None
        return any(_has_option(self.invite, name, "100rel") for name in ("Supported", "Require"))

    async def progress(self, *, reliable: bool = False) -> None:
        """183 Session Progress with the answer SDP (early media). ``reliable``: RFC 3262
        (``Require: 100rel``, ``RSeq``), resent T1 doubling until the PRACK arrives."""
        if self.direction != "incoming" or self.state != "ringing":
            raise CallError(f"only a ringing incoming call sends 183 ({self.state})")
        agreed = await self._agree()
        headers = [("Require", "100rel"), ("RSeq", "1")] if reliable else []
        response = self._respond(183, body=bytes(agreed.sdp), headers=headers)
        assert self.invite is not None  # _respond answered it
        self.dialog = Dialog.from_uas(self.invite, response)  # early (§12.1.1)
        self._event("183", "reliable" if reliable else "early media")
        if reliable:
            self._resend(response, self.ua.t1)
        self._start_media(agreed)

    async def wait_prack(self, timeout: float | None = None) -> None:
        """Wait for the PRACK of a reliable 183 (default 64*T1, RFC 3262 §3)."""
        wait = 64 * self.ua.t1 if timeout is None else timeout
        await asyncio.wait_for(asyncio.shield(self._pracked), wait)

    async def _agree(self) -> sdplib.Answer:
        """The answer to the INVITE's offer, computed once (183 and 200 carry the same)."""
        assert self.invite is not None
        if self._agreed is None:
            await self._open_media()
            try:
                self._agreed = self._answer_sdp(self.invite.body)
            except sdplib.SdpError as exc:
                # RFC 3261 §20.43: 305 Incompatible media format, with what did not match
                why = str(exc).replace('"', "'")
                await self.reject(488, warning=f'305 {self.ua.host} "no common codec: {why}"')
                raise CallError(f"no common codec: {exc}", 488) from exc
            self._local_sdp = self._agreed.sdp
        return self._agreed

    def _answer_sdp(self, offer: bytes) -> sdplib.Answer:
        assert self._socket is not None
        host, port = self._socket.address
        self._sdp_version += 1
        return sdplib.answer(offer, [sdp_codec(c) for c in self.codecs], address=host,
                             port=port, telephone_event=self.ua.telephone_event_pt is not None,
                             session_version=self._sdp_version)

    async def answer(self, *, echo: bool = False) -> Call:
        """Answer with 200 OK and start media (``echo``: send back what arrives). A
        missing common codec answers 488 and raises :class:`CallError`."""
        if self.direction != "incoming" or self.state != "ringing":
            raise CallError(f"only a ringing incoming call can be answered ({self.state})")
        self.echo = echo
        agreed = await self._agree()
        self._stop_retransmit()
        self._final = self._respond(200, body=bytes(agreed.sdp))
        if self.dialog is None:
            assert self.invite is not None  # _respond answered it
            self.dialog = Dialog.from_uas(self.invite, self._final)
        self.dialog.state = DialogState.CONFIRMED
        self.status = 200
        self.state = "answered"
        self._event("200", "answered")
        self._resend(self._final, self.ua.t1)
        if self.media is not None and self.echo:
            self.media.receiver.on_audio = self._echo
        self._start_media(agreed)
        self._answered.set_result(None)
        return self

    def _resend(self, response: Response, interval: float, elapsed: float = 0.0) -> None:
        """The UAS core resends its 2xx until the ACK (§13.3.1.4) and a reliable 1xx until
        the PRACK (RFC 3262 §3): T1 doubling to T2, for at most 64*T1."""
        def again() -> None:
            if self.ended or self.server is None:
                return
            if self.server.terminated or elapsed + interval >= 64 * self.ua.t1:
                self._event("no ACK" if response.status >= 200 else "no PRACK", "giving up")
                if response.status >= 200:
                    self.ua.spawn(self.hangup())
                return
            self.server.respond(response)
            self._resend(response, min(2 * interval, 4.0), elapsed + interval)
        self._retransmit = self.ua.clock.call_later(interval, again)

    def _stop_retransmit(self) -> None:
        if self._retransmit is not None:
            self._retransmit.cancel()
            self._retransmit = None

    def on_ack(self, ack: Request) -> None:
        if self._retransmit is not None:
            self._stop_retransmit()
            self._event("ACK")

    def _on_server_event(self, event: TUEvent) -> None:
        if isinstance(event, DeliverRequest) and event.request.method == "ACK":
            self.on_ack(event.request)

    async def reject(self, status: int = 486, *, warning: str | None = None) -> None:
        """Refuse a ringing incoming call (486 Busy Here by default), with a ``Warning``
        header value when given (RFC 3261 §20.43)."""
        if self.direction != "incoming" or self.state != "ringing":
            raise CallError(f"only a ringing incoming call can be rejected ({self.state})")
        if not 300 <= status <= 699:
            raise CallError(f"a rejection is a 3xx-6xx status, not {status}")
        self._respond(status, headers=[("Warning", warning)] if warning else ())
        self.status = status
        self._end("failed", f"rejected {status}")

    # ------------------------------------------------------------------ in the dialog
    def on_request(self, request: Request, server: ServerTransaction) -> None:
        method = request.method
        if method == "CANCEL":
            server.respond(make_response(request, 200, to_tag=self.local_tag))
            if self.state == "ringing" and self.direction == "incoming":
                self._respond(487)
                self.status = 487
                self._end("failed", "cancelled by the caller")
            return
        if self.dialog is None or not self.dialog.matches(request):
            server.respond(make_response(request, 481, to_tag=new_tag()))
            return
        if not self.dialog.receive_request(request):
            server.respond(make_response(request, 500, to_tag=self.local_tag))
            return
        if method == "BYE":
            server.respond(make_response(request, 200))
            self._end("ended", "BYE from the peer")
        elif method == "PRACK":
            server.respond(make_response(request, 200))
            self._stop_retransmit()
            self._event("PRACK")
            if not self._pracked.done():
                self._pracked.set_result(None)
        elif method == "INFO":
            self._on_info(request, server)
        elif method == "INVITE":
            self._on_reinvite(request, server)
        else:
            server.respond(make_response(request, 200))

    def _on_info(self, request: Request, server: ServerTransaction) -> None:
        try:
            digit = parse_info_body(request.content_type or "", request.body)
        except ValueError:
            server.respond(make_response(request, 415))
            return
        server.respond(make_response(request, 200))
        self.info_digits.append(digit.digit)
        self._event("INFO", digit.digit)

    def _on_reinvite(self, request: Request, server: ServerTransaction) -> None:
        try:
            agreed = self._answer_sdp(request.body)
        except sdplib.SdpError:
            server.respond(make_response(request, 488))
            return
        self.remote_held = agreed.direction in ("recvonly", "inactive")
        response = make_response(request, 200)
        response.headers.add("Contact", str(self.ua.contact()))
        response.headers.add("Content-Type", "application/sdp")
        response.body = bytes(agreed.sdp)
        server.respond(response)
        self._event("re-INVITE", "held" if self.remote_held else "resumed")
        self._start_media(agreed)
        if self.media is not None:
            self.media.muted = self.remote_held

    async def _in_dialog(self, method: str, *, body: bytes = b"",
                         content_type: str | None = None) -> Response | None:
        if self.dialog is None or self.dialog.state is DialogState.TERMINATED:
            raise CallError(f"no established dialog for {method} (call is {self.state})")
        request = self.dialog.create_request(
            method, via=self.ua.via(), contact=self.ua.contact() if method == "INVITE" else None,
            body=body, content_type=content_type, headers=self.ua.headers())
        response = await self.ua.request(request, self._target())
        if response is not None:
            self.dialog.update_from_response(response)
        return response

    async def hangup(self) -> None:
        """End the call whatever its state: BYE, CANCEL or a 486 (ringing incoming)."""
        if self.ended:
            return
        if self.dialog is None:
            if self.direction == "incoming":
                await self.reject(486)
            else:
                await self.cancel()
            return
        self._stop_retransmit()
        self.close_media()
        response = await self._in_dialog("BYE")
        self._end("ended", f"BYE -> {response.status if response else 'no answer'}")

    async def _reinvite(self, direction: str) -> None:
        assert self._local_sdp is not None
        offer = copy.deepcopy(self._local_sdp)
        self._sdp_version += 1
        offer.origin.session_version = self._sdp_version  # a changed offer (RFC 3264 §8)
        offer.media[0].set_direction(direction)
        response = await self._in_dialog("INVITE", body=bytes(offer),
                                          content_type="application/sdp")
        if response is None or response.status >= 300:
            raise CallError(f"re-INVITE ({direction}) refused: "
                            f"{response.status if response else 'no answer'}",
                            response.status if response else None)
        assert self.dialog is not None and self.invite is not None
        ack = self.dialog.create_request("ACK", via=self.ua.via(), cseq=response.cseq.number)
        self.ua.send_stateless(ack, self._target())
        self._local_sdp = offer
        self.held = direction != "sendrecv"
        self._event("re-INVITE", direction)
        self._start_media(sdplib.read_answer(response.body, offer))

    async def hold(self) -> None:
        """Put the peer on hold: a re-INVITE with ``a=sendonly`` (RFC 3264 §8.4)."""
        await self._reinvite("sendonly")

    async def resume(self) -> None:
        """Take the peer off hold: a re-INVITE with ``a=sendrecv``."""
        await self._reinvite("sendrecv")

    # ------------------------------------------------------------------ DTMF
    async def send_dtmf(self, digits: str, *, method: str = "rfc2833",
                        duration_ms: int = 100) -> None:
        """Send ``digits`` as RFC 2833 events, SIP INFO (application/dtmf-relay) or inband
        tones; returns once they are sent."""
        if method not in DTMF_METHODS:
            raise CallError(f"DTMF method must be one of {DTMF_METHODS}, not {method!r}")
        if method == "info":
            for digit in digits:
                body = format_info_body("application/dtmf-relay", digit, duration_ms)
                response = await self._in_dialog("INFO", body=body,
                                                 content_type="application/dtmf-relay")
                self._event("INFO", f"{digit} -> {response.status if response else 'none'}")
            return
        sender = self._stream().sender
        for digit in digits:
            if method == "rfc2833":
                sender.enqueue_event(digit, duration_ms)
            else:
                sender.enqueue_tones(digit, duration_ms)
        self._event("DTMF", f"{method} {digits}")
        await self._idle()

    def __repr__(self) -> str:
        return (f"<Call {self.direction} {self.call_id[:8]} {self.state}"
                f"{' ' + self.codec if self.codec else ''}>")

