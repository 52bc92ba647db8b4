"""Sans-IO SIP: messages, parsing and serialization (RFC 3261), no sockets, no clock.

Public API (see docs/contracts.md §vosapp.sip): :func:`parse`, :class:`SipParseError`,
:class:`StreamParser`, :class:`Request`, :class:`Response`, :class:`Headers`, :class:`SipUri`,
:func:`parse_uri`, :class:`NameAddr`, :class:`Via`, :class:`CSeq`, :func:`make_response`,
:func:`new_branch`, :func:`new_tag`, :func:`new_call_id`.
"""

from vosapp.sip.headers import (
    CSeq,
    Headers,
    NameAddr,
    Via,
    parse_cseq,
    parse_name_addr,
    parse_name_addr_list,
    parse_vias,
)
from vosapp.sip.message import (
    REASON_PHRASES,
    Message,
    Request,
    Response,
    make_error_response,
    make_response,
    new_branch,
    new_call_id,
    new_tag,
    reason_phrase,
)
from vosapp.sip.parser import MAX_MESSAGE_SIZE, StreamParser, parse
from vosapp.sip.uri import AbsoluteUri, SipParseError, SipUri, parse_any_uri, parse_uri

__all__ = [
    "MAX_MESSAGE_SIZE",
    "REASON_PHRASES",
    "AbsoluteUri",
    "CSeq",
    "Headers",
    "Message",
    "NameAddr",
    "Request",
    "Response",
    "SipParseError",
    "SipUri",
    "StreamParser",
    "Via",
    "make_error_response",
    "make_response",
    "new_branch",
    "new_call_id",
    "new_tag",
    "parse",
    "parse_any_uri",
    "parse_cseq",
    "parse_name_addr",
    "parse_name_addr_list",
    "parse_uri",
    "parse_vias",
    "reason_phrase",
]
