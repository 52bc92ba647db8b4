"""RFC 3261 §12 dialog state, sans-IO: created from a request and a response, builds in-dialog
requests and checks incoming ones.

A dialog is identified by (Call-ID, local tag, remote tag) and carries the local and remote
CSeq, the route set (from Record-Route), the remote target (the peer's Contact), the local
and remote URIs and the secure flag. The B2BUA keeps one per leg.
"""

from __future__ import annotations

import copy
import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from vosapp.sip.headers import CSeq, NameAddr, Via
from vosapp.sip.message import Request, Response
from vosapp.sip.uri import SipUri

if TYPE_CHECKING:
    from vosapp.sip.uri import AbsoluteUri


class DialogError(ValueError):
    """A message cannot create or belong to this dialog (missing tag/Contact, bad order)."""


class DialogState(str, enum.Enum):
    EARLY = "early"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


#: Requests whose Contact replaces the remote target (§12.2, RFC 3311 for UPDATE).
TARGET_REFRESH_METHODS: Final = frozenset({"INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY", "REFER"})


def _contact(message: Request | Response, role: str) -> SipUri | AbsoluteUri:
    contacts = message.contacts
    if not contacts:
        raise DialogError(f"the {role} has no Contact: a dialog needs a remote target (§12.1)")
    return contacts[0].uri


def _untagged(address: NameAddr) -> NameAddr:
    """A dialog's local or remote URI from ``address``, a copy the message accessor made for
    this caller (own params): the tag removed and its own URI, as ``address.copy()`` with
    ``tag = None`` gives, without copying the address again."""
    address.params.pop("tag", None)
    if isinstance(address.uri, SipUri):
        address.uri = address.uri.copy()
    return address


def _tagged(address: NameAddr, tag: str) -> NameAddr:
    """``address`` with ``tag``, for the From/To of a request being built: formatted into
    the request's text at once and then dropped, so it shares the dialog's URI (no copy)."""
    params = dict(address.params)
    params["tag"] = tag
    return NameAddr(address.uri, address.display, params)


@dataclass
class Dialog:
    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: NameAddr
    remote_uri: NameAddr
    remote_target: SipUri | AbsoluteUri
    route_set: list[NameAddr] = field(default_factory=list)
    local_seq: int | None = None
    remote_seq: int | None = None
    secure: bool = False
    state: DialogState = DialogState.EARLY

    def __init__(self, call_id: str, local_tag: str, remote_tag: str, local_uri: NameAddr,
                 remote_uri: NameAddr, remote_target: SipUri | AbsoluteUri,
                 route_set: list[NameAddr] | None = None, local_seq: int | None = None,
                 remote_seq: int | None = None, secure: bool = False,
                 state: DialogState = DialogState.EARLY) -> None:
        self.call_id, self.local_tag, self.remote_tag = call_id, local_tag, remote_tag
        self.local_uri, self.remote_uri, self.remote_target = (
            local_uri, remote_uri, remote_target)
        self.route_set = [] if route_set is None else route_set
        self.local_seq, self.remote_seq = local_seq, remote_seq
        self.secure, self.state = secure, state

    @property
    def id(self) -> tuple[str, str, str]:
        """§12: (Call-ID, local tag, remote tag)."""
        return (self.call_id, self.local_tag, self.remote_tag)

    # ----------------------------------------------------------- creation (§12.1)
    # Static methods naming Dialog, not class methods calling cls(): compiled, a direct call
    # of the constructor instead of a generic call of the type with keyword arguments.
    @staticmethod
    def from_uac(request: Request, response: Response) -> Dialog:
        """§12.1.2: the UAC's dialog from its request and a 101–299 response with a To tag."""
        if not 101 <= response.status <= 299:
            raise DialogError(f"a {response.status} response does not create a dialog")
        to, from_ = response.to, request.from_
        remote_tag = to.tag
        if not remote_tag:
            raise DialogError("the response has no To tag (§12.1.2)")
        local_tag = from_.tag
        if not local_tag:
            raise DialogError("the request has no From tag")
        return Dialog(
            call_id=request.call_id, local_tag=local_tag, remote_tag=remote_tag,
            local_uri=_untagged(from_), remote_uri=_untagged(to),
            remote_target=_contact(response, "response"),
            route_set=list(reversed(response.record_routes)),  # UAC reverses (§12.1.2)
            local_seq=request.cseq.number, remote_seq=None,
            secure=getattr(request.uri, "scheme", "") == "sips",
            state=DialogState.CONFIRMED if response.status >= 200 else DialogState.EARLY,
        )

    @staticmethod
    def from_uas(request: Request, response: Response) -> Dialog:
        """§12.1.1: the UAS's dialog from the request and the response it sends (with its
        To tag)."""
        from_ = request.from_
        local_tag = response.to.tag
        if not local_tag:
            raise DialogError("the response must carry the UAS's To tag (§12.1.1)")
        remote_tag = from_.tag
        if not remote_tag:
            raise DialogError("the request has no From tag")
        return Dialog(
            call_id=request.call_id, local_tag=local_tag, remote_tag=remote_tag,
            local_uri=_untagged(request.to), remote_uri=_untagged(from_),
            remote_target=_contact(request, "request"),
            route_set=list(request.record_routes),  # UAS keeps the order (§12.1.1)
            local_seq=None, remote_seq=request.cseq.number,
            secure=getattr(request.uri, "scheme", "") == "sips",
            state=DialogState.CONFIRMED if response.status >= 200 else DialogState.EARLY,
        )

    # ----------------------------------------------------------- updates
    def update_from_response(self, response: Response) -> None:
        """A response within the dialog (§12.1.2, §12.2.1.2): 2xx confirms an early dialog;
        a 2xx/1xx to a target refresh with a Contact updates the remote target."""
        if self.state is DialogState.TERMINATED:
            return
        method = response.cseq.method
        if 200 <= response.status <= 299 and self.state is DialogState.EARLY:
            self.state = DialogState.CONFIRMED
        if method in TARGET_REFRESH_METHODS and response.status < 300 and response.contacts:
            self.remote_target = response.contacts[0].uri
        if response.status in (481, 408) and method != "INVITE":
            # §12.2.1.2: 481 or 408 to an in-dialog request terminates the dialog.
            self.state = DialogState.TERMINATED

    def receive_request(self, request: Request) -> bool:
        """§12.2.2: accept an in-dialog request; False when its CSeq is out of order (the UAS
        answers 500). ACK and CANCEL do not advance the remote CSeq."""
        number = request.cseq.number
        if request.method not in ("ACK", "CANCEL"):
            if self.remote_seq is not None and number <= self.remote_seq:
                return False
            self.remote_seq = number
        if request.method in TARGET_REFRESH_METHODS and request.contacts:
            self.remote_target = request.contacts[0].uri
        if request.method == "BYE":
            self.state = DialogState.TERMINATED
        return True

    def matches(self, message: Request | Response, *, incoming: bool = True) -> bool:
        """Whether ``message`` belongs here: an incoming request has our tag in To and the
        peer's in From; a response to our request has ours in From and theirs in To."""
        try:
            if message.call_id != self.call_id:
                return False
            from_tag, to_tag = message.from_tag, message.to_tag
        except Exception:  # noqa: BLE001 - unreadable headers never match
            return False
        if incoming and isinstance(message, Request):
            return (to_tag, from_tag) == (self.local_tag, self.remote_tag)
        return (from_tag, to_tag) == (self.local_tag, self.remote_tag)

    # ----------------------------------------------------------- building (§12.2.1.1)
    def create_request(self, method: str, *, via: Via, contact: NameAddr | str | None = None,
                       body: bytes = b"", content_type: str | None = None,
                       headers: Iterable[tuple[str, str]] = (),
                       cseq: int | None = None) -> Request:
        """A request within the dialog (§12.2.1.1).

        CSeq is the local CSeq + 1 (the dialog remembers it), except ACK and CANCEL, which
        must pass ``cseq`` (the INVITE's number). Routing: loose routing (first route has
        ``lr``) puts the remote target in the Request-URI and the route set in Route; strict
        routing puts the first route in the Request-URI and appends the remote target.
        """
        if self.state is DialogState.TERMINATED and method != "ACK":
            raise DialogError(f"the dialog {self.id} is terminated; no {method} can be sent")
        if method in ("ACK", "CANCEL"):
            if cseq is None:
                raise DialogError(f"{method} uses the INVITE's CSeq number: pass cseq=")
            number = cseq
        else:
            number = cseq if cseq is not None else (self.local_seq or 0) + 1
            self.local_seq = number
        routes = [str(route) for route in self.route_set]
        target = self.remote_target
        if self.route_set and "lr" not in getattr(self.route_set[0].uri, "params", {"lr": 1}):
            first = copy.deepcopy(self.route_set[0].uri)
            target = first
            routes = [str(route) for route in self.route_set[1:]] + [f"<{self.remote_target}>"]
        local = _tagged(self.local_uri, self.local_tag)
        remote = _tagged(self.remote_uri, self.remote_tag)
        extra = [("Route", route) for route in routes] + list(headers)
        return Request.build(method, target, via=via, from_=local, to=remote,
                             call_id=self.call_id, cseq=CSeq(number, method), contact=contact,
                             headers=extra, body=body, content_type=content_type)

    def ack_for_2xx(self, invite: Request, *, via: Via, body: bytes = b"",
                    content_type: str | None = None) -> Request:
        """§13.2.2.4: the ACK for a 2xx, built by the UAC core (new branch, same CSeq number as
        the INVITE, the dialog's route set)."""
        return self.create_request("ACK", via=via, cseq=invite.cseq.number, body=body,
                                   content_type=content_type)
