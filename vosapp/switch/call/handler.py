"""The call handler: :class:`B2bua` turns SIP events of both legs into moves of the call and
attempt state machines (:mod:`vosapp.switch.call.state`). This module holds the new call
(INVITE, caller checks, routing), the fork and its failover, and the endings. The vendor's
responses and the answer live in :mod:`vosapp.switch.call.vendor_leg`, attempts the switch
gave up in :mod:`vosapp.switch.call.abandoned`, in-dialog requests in
:mod:`vosapp.switch.call.in_dialog`, session timers in :mod:`vosapp.switch.call.session_timer`,
PRACK/100rel in :mod:`vosapp.switch.call.reliable`, media decisions in
:mod:`vosapp.switch.call.negotiation`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from vosapp.sip import NameAddr, Request, Response, SipUri, make_response, new_tag
from vosapp.sip.headers import Via
from vosapp.sip.sdp import SdpError, SessionDescription
from vosapp.switch.call.abandoned import AbandonedAttempts
from vosapp.switch.call.in_dialog import InDialog
from vosapp.switch.call.journal import CallJournal
from vosapp.switch.call.legs import Attempt, Call, EndedCall, Fork
from vosapp.switch.call.media import MediaBackend, MediaBackendFactory
from vosapp.switch.call.negotiation import MediaPlan, MediaRefused, plan_media, vendor_offer
from vosapp.switch.call.reliable import ReliableProvisionals
from vosapp.switch.call.session_timer import SDP, SessionTimers
from vosapp.switch.call.state import CallState
from vosapp.switch.call.targets import BindingLookup, Target, resolve
from vosapp.switch.call.vendor_leg import VendorLeg
from vosapp.switch.cdr import CdrRecord, CdrWriter
from vosapp.switch.core import SERVER_NAME
from vosapp.switch.routing import Caller, best_prefix, gateway_by_account, gateway_by_address

if TYPE_CHECKING:
    from vosapp.sip.transaction import ServerTransaction
    from vosapp.switch.auth import InboundAuthenticator
    from vosapp.switch.core import SwitchCore

log = logging.getLogger(__name__)

#: Statuses after which the next routing gateway is tried (see the package docstring).
FAILOVER_STATUSES = frozenset({408, 480})


def is_failover(status: int) -> bool:
    """Whether a final status from a routing gateway moves the call to the next gateway."""
    return status in FAILOVER_STATUSES or 500 <= status <= 599


class B2bua(VendorLeg, AbandonedAttempts, SessionTimers, InDialog, ReliableProvisionals):
    """The call feature of one :class:`~vosapp.switch.core.SwitchCore`.

    ``authenticator`` (the registrar's) challenges callers that are not a trusted mapping
    gateway address; without it they get 403. ``bindings`` (the registrar's) gives a
    phone's live bindings; without it no account is reachable (480). ``media_factory`` builds
    the relay backend on first use (the runtime's; a bare sans-IO core has none)."""

    def __init__(self, core: SwitchCore, *, authenticator: InboundAuthenticator | None = None,
                 bindings: BindingLookup | None = None, cdr: CdrWriter | None = None,
                 media: MediaBackend | None = None,
                 media_factory: MediaBackendFactory | None = None) -> None:
        self.core = core
        self.authenticator = authenticator
        self.bindings = bindings
        self.cdr = cdr if cdr is not None else CdrWriter(core.store)
        #: CDR rows and dialogs written as the call goes; crash recovery at start
        self.journal = CallJournal(core, self.cdr)
        self._media = media
        self.media_factory = media_factory
        self.calls: dict[str, Call] = {}  # by the caller's Call-ID
        self._byes_pending: set[str] = set()  # Call-IDs of BYEs without a final answer
        #: (Call-ID, our tag) -> (call, side) for in-dialog requests
        self.dialogs: dict[tuple[str, str], tuple[Call, str]] = {}
        self.vendor_early: dict[tuple[str, str], Call] = {}  # RFC 3262/3311 early dialogs
        #: (Call-ID, From tag) of our INVITEs -> their call (its EndedCall once it ended) and
        #: attempt, for responses that come after the client transaction is gone
        #: (on_stray_response)
        self.invites: dict[tuple[str, str], tuple[Call | EndedCall, Attempt]] = {}
        self._contacts: dict[tuple[str, int], str] = {}  # local address -> Contact value

    # ---------------------------------------------------------------- wiring
    def install(self) -> None:
        core = self.core
        core.add_request_handler("INVITE", self.on_invite)
        core.add_request_handler("BYE", self.on_bye)
        core.add_request_handler("PRACK", self.on_prack)
        for method in ("INFO", "UPDATE"):
            core.add_request_handler(method, self.on_in_dialog)
        core.add_ack_handler(self.on_ack)
        core.add_stray_response_handler(self.on_stray_response)
        core.add_stop_hook(self.on_stop)
        core.add_start_hook(self.journal.start)

    @property
    def media(self) -> MediaBackend:
        if self._media is None:
            if self.media_factory is None:
                raise MediaRefused("this runtime has no media relay (needs the asyncio runtime)")
            self._media = self.media_factory(self.core)
        return self._media

    @media.setter
    def media(self, backend: MediaBackend | None) -> None:
        self._media = backend

    def event(self, call: Call | EndedCall, text: str) -> None:
        self.core.trace.event(f"call {call.callee}: {text}", call_id=call.call_id)
        log.info("call %s (%s): %s", call.call_id, call.callee, text)

    # ---------------------------------------------------------------- helpers
    def _via(self, transport: str) -> Via:
        return self.core.new_top_via(transport)

    def _contact(self, transport: str) -> str:
        """The switch's Contact value for ``transport`` (``<sip:host:port>``), formatted once
        per local address: every INVITE, 18x and 2xx of a call carries it."""
        address = self.core.local_address(transport)
        text = self._contacts.get(address)
        if text is None:
            text = self._contacts[address] = str(NameAddr(uri=SipUri(host=address[0],
                                                                     port=address[1])))
        return text

    def _a_response(self, call: Call, status: int, reason: str | None = None, *,
                    body: bytes = b"", warning: str | None = None,
                    warning_code: int = 305) -> Response:
        response = make_response(call.a_invite, status, reason, to_tag=call.a_tag)
        response.headers.add("Server", SERVER_NAME)
        if 101 <= status <= 299:
            response.headers.add("Contact", self._contact(call.a_transport))
        if warning:
            host = self.core.local_address(call.a_transport)[0]
            response.headers.add("Warning", f'{warning_code} {host} "{warning}"')
        if body:
            response.headers.add("Content-Type", SDP)
            response.body = body
        return response

    def _timer(self, attempt: Attempt, delay: float, callback: Callable[[], None]) -> None:
        if attempt.timer is not None:
            attempt.timer.cancel()
        attempt.timer = self.core.clock.call_later(delay, callback)

    def _stop_timer(self, attempt: Attempt) -> None:
        if attempt.timer is not None:
            attempt.timer.cancel()
            attempt.timer = None

    # ---------------------------------------------------------------- new calls
    def on_invite(self, request: Request, txn: ServerTransaction) -> None:
        if request.to_tag:
            self.on_in_dialog(request, txn)
            return
        core = self.core
        config = core.config
        mapping = gateway_by_address(config, txn.source[0])
        if mapping is not None:
            caller = Caller(mapping, None, True)
        else:
            authenticator = self.authenticator
            if authenticator is None:
                txn.respond(core.make_response(request, 403, "Forbidden (no mapping gateway)"))
                return
            result = authenticator.authenticate(request, txn.source)
            if not result.accepted:
                authenticator.finish(result, request, txn, core.make_response)
                return
            user = result.username or ""
            mapping = gateway_by_account(config, user)
            if mapping is None:
                txn.respond(core.make_response(
                    request, 403, "Forbidden (account not in any mapping gateway)"))
                return
            caller = Caller(mapping, user, False)
        txn.respond(core.make_response(request, 100))
        callee = str(getattr(request.uri, "user", None) or getattr(request.to.uri, "user", "")
                     or "")
        caller_user = str(getattr(request.from_.uri, "user", None) or "")
        offer = None
        if request.body:
            try:
                offer = SessionDescription.parse(request.body)
            except SdpError as exc:
                response = make_response(request, 400, "Bad Request (unreadable SDP)",
                                         to_tag=new_tag())
                response.headers.add("Warning", f'399 vosapp "{exc.reason}"')
                txn.respond(response)
                return
        record = CdrRecord(call_id=request.call_id, caller=caller_user, callee=callee,
                           source=f"{txn.source[0]}:{txn.source[1]}",
                           setup_time=core.clock.wall(), mapping_gateway=mapping.name,
                           account=caller.account)
        call = Call(a_invite=request, a_txn=txn, a_tag=new_tag(), a_source=txn.source,
                    a_transport=txn.transport, caller=caller, callee=callee, record=record,
                    offer=offer, params=core.params)
        self.calls[call.call_id] = call
        txn.add_cancel_listener(lambda cancel: self.on_caller_cancel(call))
        call.a_listener = lambda event: self._a_txn_event(call, event)
        txn.add_listener(call.a_listener)
        self.event(call, f"INVITE from {caller_user} via {mapping.name}"
                   f"{' (trusted address)' if caller.trusted else f' (account {caller.account})'}")
        if best_prefix(callee, mapping.prefixes) is None:
            self.fail(call, 403, "Forbidden (number not allowed for this mapping gateway)",
                      "prefix not allowed")
            return
        destination = call.destination = resolve(config, callee, self.bindings)
        if destination.account is not None:
            call.record.callee_account = destination.account
            if not destination.steps:
                self.fail(call, 480, "Temporarily Unavailable (not registered)",
                          f"{destination.account} not registered")
                return
        elif not destination.steps:
            self.fail(call, 404, "Not Found (no route)", "no route")
            return
        self.journal.attempted(call)  # committed before the INVITE leaves
        self.next_step(call)

    def next_step(self, call: Call) -> None:
        """Fork the next step of the call's destination (failover to the next gateway); when
        none is left, end the call (488 when media refused every target, 480 for a phone,
        503 for gateways)."""
        steps = call.destination.steps if call.destination is not None else ()
        while call.state is CallState.ROUTING and call.index < len(steps):
            fork = call.fork = Fork(sending=True)
            for target in steps[call.index]:
                self._start_attempt(call, target)
            call.index += 1
            fork.sending = False
            if fork.live:
                return
            if fork.best is not None:  # sent, and failed at once (transport)
                self._fork_failed(call)
                return
        if call.state is not CallState.ROUTING:
            return
        account = call.destination.account if call.destination is not None else None
        last = f": {call.last_failure}" if call.last_failure else ""
        # refused by the switch itself: no target was contacted, so none is in gateways_tried
        if call.media_refused and not call.record.gateways_tried:
            self.fail(call, 488, "Not Acceptable Here", f"488 {call.media_refused}",
                      warning=call.media_refused)
        elif account is not None:
            self.fail(call, 480, "Temporarily Unavailable", f"{account} not reachable{last}")
        else:
            self.fail(call, 503, "Service Unavailable (all gateways failed)",
                      f"all gateways failed{last}")

    def _start_attempt(self, call: Call, target: Target) -> None:
        """One branch of the fork: its media plan (docs/behaviour.md §5, per the target's settings) and
        its INVITE; a refusal or a send error is recorded and the branch left out."""
        try:
            plan = plan_media(call.offer, call.a_source[0], call.caller.gateway.settings,
                              target.settings)
        except MediaRefused as exc:
            call.media_refused = str(exc)  # never contacted: not in the CDR's gateways_tried
            self.event(call, f"{target.name} skipped: {exc}")
            return
        try:
            self.send_attempt(call, target, plan)
        except Exception as exc:
            log.exception("INVITE to %s failed", target.name)
            call.record.gateways_tried.append(f"{target.name}:error")
            call.last_failure = str(exc)

    def _vendor_headers(self, call: Call, target: Target, host: str
                        ) -> list[tuple[str, str]]:
        """Route (a phone's Path), Privacy and P-Asserted-Identity per the target's settings,
        and the session timer offer (RFC 4028 §7.1: SS_SIP_SESSION_TTL; the vendor picks the
        refresher)."""
        settings = target.settings
        a = call.a_invite
        headers: list[tuple[str, str]] = [("Route", route) for route in target.route]
        privacy = a.headers.get("Privacy")
        if settings.privacy == "Passthrough" and privacy:
            headers.append(("Privacy", privacy))
        elif settings.privacy in ("Id", "None"):
            headers.append(("Privacy", settings.privacy.lower()))
        pai = a.headers.get("P-Asserted-Identity")
        if settings.p_asserted_identity == "Passthrough" and pai:
            headers.append(("P-Asserted-Identity", pai))
        elif settings.p_asserted_identity == "From caller":
            headers.append(("P-Asserted-Identity",
                            str(NameAddr(uri=SipUri(user=call.record.caller or None,
                                                    host=host)))))
        return headers + [("Supported", "timer, 100rel"),
                          ("Session-Expires", str(call.params["SS_SIP_SESSION_TTL"])),
                          ("Min-SE", "90")]

    def send_attempt(self, call: Call, target: Target, plan: MediaPlan) -> None:
        core = self.core
        a = call.a_invite
        transport = target.transport
        host, _port = core.local_address(transport)
        display = a.from_.display if target.settings.display_from else None
        from_ = NameAddr(uri=SipUri(user=call.record.caller or None, host=host),
                         display=display, params={"tag": new_tag()})
        to = NameAddr(uri=SipUri(user=call.callee or None, host=target.uri.host))
        media = self.media.allocate() if plan.relay else None
        offer = vendor_offer(call.offer, a.body, plan, target.settings,
                             media.local_b if media is not None else None)
        max_forwards = max(0, (a.max_forwards if a.max_forwards is not None else 70) - 1)
        invite = Request.build("INVITE", target.uri, via=self._via(transport), from_=from_,
                               to=to, cseq=1, contact=self._contact(transport),
                               max_forwards=max_forwards,
                               headers=self._vendor_headers(call, target, host),
                               body=offer.body, content_type=SDP if offer.body else None)
        attempt = Attempt(target=target, invite=invite, plan=plan, offer=offer.sdp,
                          media=media)
        call.fork.attempts.append(attempt)
        if target.account is None:
            call.record.routing_gateway = target.name
        destination = f"{attempt.destination[0]}:{attempt.destination[1]}/{transport}"
        self.event(call, f"INVITE to {target.name} at {destination}"
                   + (f" (media relay: {plan.reason})" if plan.relay else ""))
        key = (invite.call_id, from_.tag or "")
        self.invites[key] = (call, attempt)
        call.invite_keys.append(key)
        attempt.txn = core.send_request(invite, attempt.destination, transport,
                                        lambda event: self.on_vendor_event(call, attempt, event))
        timeout = call.params["SS_SIP_TIMEOUT_INVITE"]
        self._timer(attempt, timeout, lambda: self.on_invite_timeout(call, attempt))

    # ---------------------------------------------------------------- failover
    def _branch_failed(self, call: Call, attempt: Attempt, status: int, what: str,
                       response: Response | None, *, invite_timeout: bool = False) -> None:
        """One attempt of the fork failed (already FAILED): remember the best failure
        (§16.7); a 6xx abandons the other branches; the last one ends the fork."""
        self._stop_timer(attempt)
        self._close_media(attempt)
        name = attempt.target.name
        call.record.gateways_tried.append(f"{name}:{what}")
        call.last_failure = f"{name} {what}" + (f" {response.reason}" if response else "")
        fork = call.fork
        fork.consider(status, response, name)
        fork.timed_out = invite_timeout
        if status >= 600:
            self._abandon_live(call)
        if fork.live or fork.sending:
            self.event(call, f"{name}: {what}; waiting for the other branches")
            return
        self._fork_failed(call)

    def _fork_failed(self, call: Call) -> None:
        """Every branch failed. A phone's best response goes to the caller (480 when none
        answered at all); a gateway's failover status (or none) moves to the next gateway;
        any other status is final for routing and relayed."""
        assert call.fork.best is not None
        status, response, name = call.fork.best
        phone = call.destination is not None and call.destination.account is not None
        if response is not None and (phone or not is_failover(status)):
            self._relay_failure(call, response, name)
            return
        if call.fork.timed_out and call.params[
                "SS_SIP_USER_AGENT_STOP_SWITCH_AFTER_INVITE_TIMEOUT"]:
            self.event(call, f"INVITE timeout on {name}; no failover "
                       "(SS_SIP_USER_AGENT_STOP_SWITCH_AFTER_INVITE_TIMEOUT=On)")
            self.fail(call, 408, "Request Timeout", f"INVITE timeout on {name}")
            return
        self.event(call, f"{name}: {call.last_failure}; next gateway")
        self.next_step(call)

    def _relay_failure(self, call: Call, response: Response, name: str) -> None:
        status = response.status
        warning = response.headers.get("Warning")
        response_out = self._a_response(call, status, response.reason)
        if warning:
            response_out.headers.add("Warning", warning)
        if 300 <= status < 400:  # §21.3: a redirect is useless without its Contacts
            for contact in response.headers.get_all("Contact"):
                response_out.headers.add("Contact", contact)
        for header in ("Retry-After", "Reason"):
            value = response.headers.get(header)
            if value:
                response_out.headers.add(header, value)
        self.finish(call, response_out, f"{status} {response.reason} from {name}")

    def on_caller_cancel(self, call: Call) -> None:
        if call.state is not CallState.ROUTING:
            return
        self.fail(call, 487, "Request Terminated", "cancelled by caller")  # _end: CANCELs

    # ---------------------------------------------------------------- endings
    def fail(self, call: Call, status: int, reason: str, end_reason: str, *,
             warning: str | None = None, warning_code: int = 305) -> None:
        """End an unanswered call with a final status to the caller."""
        if call.state is not CallState.ROUTING:
            return
        call.goto(CallState.ENDED)
        call.record.status = status
        call.record.end_reason = end_reason
        self.event(call, f"failed: {status} {reason} ({end_reason})")
        self._end(call)  # the CDR is committed before the caller hears the outcome
        if not call.a_txn.final_sent:
            try:
                call.a_txn.respond(self._a_response(call, status, reason, warning=warning,
                                                    warning_code=warning_code))
            except Exception as exc:  # noqa: BLE001
                log.warning("final response to the caller failed: %s", exc)

    def finish(self, call: Call, response: Response, end_reason: str) -> None:
        if call.state is not CallState.ROUTING:
            return
        call.goto(CallState.ENDED)
        call.record.status = response.status
        call.record.end_reason = end_reason
        self.event(call, f"failed: {end_reason}")
        self._end(call)
        call.a_txn.respond(response)

    def _close_media(self, attempt: Attempt) -> None:
        if attempt.media is not None:
            try:
                attempt.media.close()
            except Exception:
                log.exception("closing a media relay failed")

    def _end(self, call: Call) -> None:
        self._early_end(call)
        for leg in call.legs.values():
            if leg.session_timer is not None:
                leg.session_timer.cancel()
        if call.a_retransmit is not None:
            call.a_retransmit.cancel()
            call.a_retransmit = None
        self._abandon_live(call)
        attempt = call.answered
        if attempt is not None:
            self._stop_timer(attempt)
            if attempt.media is not None and attempt.media_started:
                methods = attempt.media.dtmf_methods()
                if methods:
                    call.record.dtmf_method = ", ".join(methods)
            self._close_media(attempt)
        call.record.end_time = self.core.clock.wall()
        # its two dialog keys, from its legs: no scan of every call's dialogs at each call end
        self.dialogs.pop((call.call_id, call.a_tag), None)
        b_dialog = call.legs["b"].dialog
        if b_dialog is not None:
            self.dialogs.pop((b_dialog.call_id, b_dialog.local_tag), None)
        self.calls.pop(call.call_id, None)
        # Late answers to its INVITEs are still ACKed and BYEd for 64*T1 (as long as a
        # vendor retransmits a 2xx, §13.3.1.4; RFC 6026 Timer M), then forgotten; what that
        # needs is kept apart, and the call itself is let go of now.
        keys, call.invite_keys = call.invite_keys, []
        self._let_go(call, keys)
        if keys:
            self.core.clock.call_later(64 * self.core.transactions.timers.t1,
                                       lambda: self._forget_invites(keys))
        self.journal.ended(call)

    def on_stop(self) -> Callable[[], bool]:
        """Graceful stop: hang up answered calls (the runtime waits, bounded, for the BYEs'
        answers), fail the others with 503."""
        for call in list(self.calls.values()):
            if call.state is CallState.CONFIRMED:
                self.hangup(call, None, "switch stopped")
            elif call.state is CallState.ROUTING:
                self.fail(call, 503, "Service Unavailable", "switch stopped")  # _end: CANCELs
        return lambda: not self._byes_pending


__all__ = ["FAILOVER_STATUSES", "B2bua", "is_failover"]
