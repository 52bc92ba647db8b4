"""The call feature (docs/behaviour.md §4–§6): a back-to-back user agent between a mapping gateway (the
caller, leg "a") and routing gateways or registered phones (the callee, leg "b").

Package layout
--------------
* :mod:`~vosapp.switch.call.state` — the call (``ROUTING -> CONFIRMED -> ENDED``), attempt
  (``CALLING -> PROCEEDING -> ANSWERED | FAILED | CANCELLING``, the last two
  ``-> HUNG_UP``) and reliable provisional (``QUEUED -> UNACKED -> PRACKED | OVERTAKEN |
  TIMED_OUT``) states as enums, one transition table each; a move not in its table raises
  :class:`IllegalTransition`.
* :mod:`~vosapp.switch.call.targets` — where a dialled number goes (pure): a registered
  phone's live bindings (one fork) or the routing gateways (failover), as
  :class:`Destination` steps of :class:`Target`.
* :mod:`~vosapp.switch.call.legs` — :class:`Call`, its :class:`Fork` (the attempts of the
  step being tried, in parallel) and :class:`Attempt` (the data per call; ``goto`` checks each
  move against the table), and :class:`EndedCall` (what late responses need once it ended).
* :mod:`~vosapp.switch.call.negotiation` — docs/behaviour.md §5 media decisions as pure functions:
  :func:`plan_media`, :func:`vendor_offer`, :func:`answer_media` (returns a
  :class:`MediaAnswer`, writes no CDR, starts nothing), G.729 mode helpers.
* :mod:`~vosapp.switch.call.media` — the relay interface a runtime implements
  (:class:`MediaBackend`, :class:`MediaSession`, :class:`LegSpec`).
* :mod:`~vosapp.switch.call.session_timer` — RFC 4028 per leg.
* :mod:`~vosapp.switch.call.in_dialog` — ACK, BYE, re-INVITE/INFO/UPDATE inside a call
  (UPDATE also in an early dialog, RFC 3311).
* :mod:`~vosapp.switch.call.journal` — :class:`CallJournal`: the CDR row and the answered
  dialogs written as the call goes, the heartbeat, and at start the calls a crash left open
  closed and BYEd on both legs.
* :mod:`~vosapp.switch.call.reliable` — PRACK/100rel (RFC 3262): reliable provisionals
  relayed end to end or terminated on the leg that lacks 100rel, with per-leg RSeq spaces.
* :mod:`~vosapp.switch.call.handler` — :class:`B2bua`: new calls, routing, the fork and its
  failover, endings and the CDR; the class composes the parts below. It is wired to the core
  (with the registrar's authenticator and the runtime's media backend) by
  :func:`vosapp.switch.app.build_switch_app`.
* :mod:`~vosapp.switch.call.vendor_leg` — the vendor's responses to an attempt's INVITE:
  provisionals and the call-progress timers, the 422 retry, the codec conversion re-offer, and
  the answer (media, dialogs, the caller's 2xx until its ACK).
* :mod:`~vosapp.switch.call.abandoned` — attempts the switch gave up: CANCEL, and ACK + BYE
  for a 2xx that still comes, also after the INVITE transaction is gone (stray responses).

Theory of operation
-------------------
An INVITE without a To tag from a mapping gateway starts a :class:`Call`. The caller is a
*trusted* mapping gateway when the source address is in its ``addresses`` (no digest,
docs/behaviour.md §2.1); otherwise the registrar feature's :class:`~vosapp.switch.auth.InboundAuthenticator`
challenges it (401/407, 403, or silence with SS_REPLY_UNAUTHORIZED=Off) and the account must
belong to a mapping gateway. 100 Trying goes out at once.

The dialled number is matched against the accounts first (:mod:`.targets`): a registered
phone is called at every live binding at once (a fork, INVITEs sent highest q first, RFC
3261 §16.6), reached at the address its REGISTER came from (NAT), with its Contact as the
Request-URI and its own account's mapping gateway settings on its leg; an account with no
live binding gets 480. The first 2xx wins and the other branches get CANCEL; a branch that
answers anyway gets ACK and BYE (attempt ``HUNG_UP``). When every branch fails the best
response is relayed (§16.7: a 6xx at once, cancelling the others; else the lowest class);
no response at all gives 480.

Any other number is routed (:mod:`vosapp.switch.routing`): the routing gateways in order
(longest prefix, priority, config order), each a fork of one. Each *attempt* is a new INVITE (new Call-ID, From tag, Via branch;
From/To user parts kept) sent in its own client transaction; the legs exchange call-control
events (trying, progress, answer, failure) rather than raw SIP, as in Sippy's B2BUA.

Failover rule (vosapp's choice; the sources only say "on error"): 408, 480 and every 5xx
from a gateway, a transaction timeout/transport failure, and SS_SIP_TIMEOUT_INVITE expiring
without any response, move the call to the next gateway. Every other final status (3xx, 4xx
such as 404/486/487/488, 6xx) is final for routing and is relayed to the caller. With
SS_SIP_USER_AGENT_STOP_SWITCH_AFTER_INVITE_TIMEOUT=On an INVITE timeout ends the call (408)
instead. When every gateway failed the caller gets 503; no route at all gives 404.

Call-progress timeouts (per attempt, parameters read when the call starts, docs/behaviour.md §1): after
100 Trying with no further progress SS_SIP_TIMEOUT_TRYING; after 180 SS_SIP_TIMEOUT_RINGING;
after 183 without SDP SS_SIP_TIMEOUT_SESSION_PROGRESS, with SDP ..._SESSION_PROGRESS_SDP.
Expiry cancels the vendor leg and ends the call with 408 (no failover: the vendor did answer).

Dialog handling: provisional and final responses are relayed with one To tag of ours on the
caller's side. A 2xx from the vendor is ACKed by the switch (at once when the caller's INVITE
carried the offer; with a late offer when the caller's ACK brings the answer), and the 2xx to
the caller is retransmitted until its ACK (§13.3.1.4); when it never comes (64*T1) both legs
get BYE, and a late offer's vendor first gets the ACK it still waits for, its answer rejecting
every stream (:func:`~vosapp.switch.call.negotiation.rejecting_answer`, §13.2.2.4). CANCEL from
the caller: 487 to the caller and CANCEL to the vendor (deferred until the vendor sent a
provisional, §9.1).

No vendor leg is left half-open: a 2xx for any INVITE the switch gave up (INVITE or
progress timeout, failover, a CANCEL the 2xx crossed, another branch won, the call ended) is
ACKed and BYEd once per dialog (attempt ``FAILED``/``CANCELLING -> HUNG_UP``), and every
retransmission of it gets the same ACK again (§13.2.2.4). The INVITE client transaction may be
gone by then (SS_SIP_TIMEOUT_INVITE stops it at once; Timer B; RFC 6026 Timer M), so responses
no transaction took are matched to their attempt by Call-ID and From tag until 64*T1 after the
call ended (``B2bua.on_stray_response``): a late provisional gets its CANCEL, a final non-2xx
its ACK. For those 64*T1 an ended call is only an :class:`~.legs.EndedCall` (its attempts, the
answered dialog's To tag and ACK): the call itself is freed at its end. BYE from either side:
200, and BYE on the other leg. re-INVITE, INFO and UPDATE are relayed on the other leg's
dialog and the answer relayed back (SDP untouched when the media flows end to end; through the
media proxy as the relay's SDP with the direction carried over and each leg's own ``o=``, see
:mod:`~vosapp.switch.call.in_dialog`: hold and resume, glare 491, 2xx until ACK).

Answer check and codec conversion (docs/behaviour.md §5): a vendor answer with no codec from the offer ends
the call (ACK + BYE to the vendor, 488 with ``Warning: 399`` to the caller, the reason in the
CDR). A 488/606 from the vendor to the first offer, when both gateways allow codec conversion
and the media proxy is not Off, is followed by a second INVITE to the same gateway offering
its own specified codec through the relay, which transcodes (before any failover).

CDR and crashes: the handler calls its :class:`CallJournal` at attempt (before the first
INVITE leaves), answer (before the vendor's ACK and the caller's 2xx) and end (before the
final response or the BYEs), one store transaction each; see
:mod:`~vosapp.switch.call.journal`. The BYE for an expired session carries
``Reason: SIP;cause=408;text="Session expired"`` (RFC 3326).

Media (docs/behaviour.md §5): see :mod:`~vosapp.switch.call.negotiation`. Relays come from a
:class:`MediaBackend` (the asyncio one in :mod:`vosapp.io.call_media`, which the runtime
passes to :func:`~vosapp.switch.app.build_switch_app`: this package never imports
``vosapp.io``) and are closed when the call ends. Session timers: see
:mod:`~vosapp.switch.call.session_timer`. A 422 (Session Interval Too Small) with a larger
Min-SE is retried once on the same gateway (same Call-ID, new CSeq) with Session-Expires and
Min-SE raised to it (RFC 4028 §6); not a failover.

Reliable provisionals: see :mod:`~vosapp.switch.call.reliable`.

Not done: downstream forking (only the first early dialog of a vendor or phone is followed);
a codec change inside a relayed call (the relay keeps each leg's codec; such a re-offer gets
488).
"""

from vosapp.switch.call.handler import FAILOVER_STATUSES, B2bua, is_failover
from vosapp.switch.call.journal import CallJournal
from vosapp.switch.call.legs import Attempt, Call, EndedCall, Fork, Leg
from vosapp.switch.call.media import LegSpec, MediaBackend, MediaBackendFactory, MediaSession
from vosapp.switch.call.negotiation import (
    MEDIA_CODEC,
    SPECIFIED,
    MediaAnswer,
    MediaPlan,
    MediaRefused,
    VendorOffer,
    answer_media,
    g729_codecs,
    g729_rewrite_offer,
    plan_media,
    restrict_offer,
    vendor_offer,
)
from vosapp.switch.call.session_timer import LegTimer, session_expires
from vosapp.switch.call.state import AttemptState, CallState, IllegalTransition
from vosapp.switch.call.targets import Destination, Target, resolve

__all__ = ["FAILOVER_STATUSES", "MEDIA_CODEC", "SPECIFIED", "Attempt", "AttemptState", "B2bua",
           "Call", "CallJournal", "CallState", "Destination", "EndedCall", "Fork",
           "IllegalTransition", "Leg", "LegSpec", "LegTimer", "MediaAnswer", "MediaBackend",
           "MediaBackendFactory", "MediaPlan", "MediaRefused", "MediaSession", "Target",
           "VendorOffer", "answer_media", "g729_codecs", "g729_rewrite_offer", "is_failover",
           "plan_media", "resolve", "restrict_offer", "session_expires", "vendor_offer"]
