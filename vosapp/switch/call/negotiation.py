"""Media negotiation for one call attempt (docs/behaviour.md §5), as pure functions.

:func:`plan_media` decides, before the vendor INVITE goes out, whether the media relay is in
the path and which codecs each side gets; :func:`vendor_offer` writes the SDP offered to the
routing gateway; :func:`answer_media` turns the vendor's answer into the caller's answer and
the two relay legs. Nothing here sends a message, starts a relay or writes a CDR: the call
handler (:class:`~vosapp.switch.call.B2bua`) does that with what these return.

G.729 modes (each gateway's ``g729_mode``) apply to the SDP the switch writes: the vendor
offer (built for the relay; forwarded or restricted without it, only ``G729``'s ``annexb=no``
is applied since RTP then uses the caller's payload types) per the routing gateway
(:func:`g729_codecs`, :func:`g729_rewrite_offer`, :func:`vosapp.sip.sdp.g729_offer`), the
relay's answer to the caller per the mapping gateway (:func:`vosapp.sip.sdp.answer`
``g729_mode``). Without the relay the vendor's answer reaches the caller unchanged.

The vendor's answer must pick its codec from the offer (RFC 3264 §6): :func:`checked_answer`
raises :class:`MediaRefused` otherwise and the handler ends the call. When the vendor refuses
the first offer for its codecs (488/606), :func:`conversion_plan` re-plans the attempt for
"Allow codec conversion": the vendor is offered its own (specified) codec through the relay,
which transcodes.

Offers and answers inside the call (hold/resume, RFC 3264 §8) through the relay:
:func:`relay_reoffer` writes the other leg's offer with the originator's direction,
:func:`relay_reanswer` the switch's answer back; :func:`next_leg_sdp` keeps each leg's own
``o=`` (session id fixed, version +1 per changed SDP).
"""

from __future__ import annotations

import copy
import secrets
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from vosapp.net import Address
from vosapp.sip.sdp import (
    G722,
    G723,
    G729,
    PCMA,
    PCMU,
    Answer,
    Attribute,
    Codec,
    Connection,
    MediaDescription,
    NoCommonCodec,
    Origin,
    SdpError,
    SessionDescription,
    answer,
    build_offer,
    g729_offer,
    read_answer,
)
from vosapp.switch.call.media import LegSpec

if TYPE_CHECKING:
    from vosapp.params import GatewaySettings

SPECIFIED: dict[str, Codec] = {"PCMA": PCMA, "PCMU": PCMU, "G729": G729, "G723": G723,
                               "G722": G722}
#: sdp encoding family -> vosapp.media.codecs name
MEDIA_CODEC = {"pcma": "PCMA", "pcmu": "PCMU", "g729": "G729", "g723": "G723", "g722": "G722"}


class MediaRefused(Exception):
    """The call cannot get media as configured: answer 488 with this reason (Warning 305)."""


class AnswerRefused(MediaRefused):
    """The vendor's answer broke RFC 3264 §6 (a codec it was not offered): the switch ends
    the call with 488 and this reason (Warning 399: the fault is the vendor's, not the
    caller's media)."""


@dataclass
class MediaPlan:
    """How one attempt's media is handled (decided before the vendor INVITE is sent)."""

    relay: bool
    transcode: bool
    reason: str
    a_codecs: list[Codec]  # what the caller may be answered with
    b_codecs: list[Codec] | None  # offered to the vendor (None: the caller's offer as is)
    dtmf_conversion: bool = False


def _specified_codec(settings: GatewaySettings) -> Codec:
    codec = SPECIFIED[settings.specified_codec]
    if codec is G729 and settings.g729_mode == "G729":
        codec = replace(codec, fmtp="annexb=no")  # docs/behaviour.md §5: G729 mode = no Annex B
    return codec


def _dtmf_needs_conversion(settings: GatewaySettings) -> bool:
    return settings.dtmf_send in ("SIP INFO", "Inband") or settings.dtmf_receive in (
        "SIP INFO", "Inband")


def plan_media(offer: SessionDescription | None, source_host: str, mapping: GatewaySettings,
               routing: GatewaySettings) -> MediaPlan:
    """docs/behaviour.md §5 for one attempt; raises :class:`MediaRefused` when the call cannot proceed.

    The relay (media proxy) is used when either gateway says media_proxy=On, or (neither says
    Off and) transcoding or DTMF conversion is needed, or the caller's SDP address differs
    from its signalling source (NAT). Softswitch specified offers each side only its
    gateway's codec; two different specified codecs need Allow codec conversion on both
    gateways and a relay, else 488 with a Warning saying why."""
    offered: list[Codec] = []
    audio = offer.first_audio() if offer is not None else None
    if audio is not None:
        offered = [c for c in audio.codecs() if c.encoding.lower() != "telephone-event"]
    supported = [c for c in offered if c.family in MEDIA_CODEC]
    if mapping.codec_mode == "Softswitch specified":
        wanted = _specified_codec(mapping)
        a_codecs = [c for c in offered if c.matches(wanted, g729_variants=True)]
        if offer is not None and not a_codecs:
            raise MediaRefused(f"the caller did not offer its gateway's specified codec "
                               f"{mapping.specified_codec}")
    else:
        a_codecs = supported or offered
    if routing.codec_mode == "Softswitch specified":
        b_codecs: list[Codec] | None = [_specified_codec(routing)]
    else:
        b_codecs = None if mapping.codec_mode != "Softswitch specified" else [
            replace(c) for c in a_codecs]
    transcode = False
    if b_codecs is not None and a_codecs and not any(
            b.matches(a, g729_variants=True) for b in b_codecs for a in a_codecs):
        transcode = True
        if not (mapping.allow_codec_conversion and routing.allow_codec_conversion):
            raise MediaRefused(
                f"codec conversion needed ({a_codecs[0].encoding} to {b_codecs[0].encoding}) "
                "but Allow codec conversion is off on "
                + ("both gateways" if not (mapping.allow_codec_conversion
                                           or routing.allow_codec_conversion)
                   else "the " + ("mapping" if not mapping.allow_codec_conversion
                                  else "routing") + " gateway"))
        if "Off" in (mapping.media_proxy, routing.media_proxy):
            raise MediaRefused("codec conversion needs the media proxy, which is Off")
        if not supported:
            raise MediaRefused("no codec of the caller's offer can be transcoded")
        a_codecs = [c for c in a_codecs if c.family in MEDIA_CODEC]
    reason = ""
    if "On" in (mapping.media_proxy, routing.media_proxy):
        reason = "media proxy On"
    elif "Off" not in (mapping.media_proxy, routing.media_proxy):
        if transcode:
            reason = "transcoding"
        elif _dtmf_needs_conversion(mapping) or _dtmf_needs_conversion(routing):
            reason = "DTMF conversion"
        elif offer is not None and audio is not None:
            connection = offer.connection_of(audio)
            if connection is not None and connection.address.split("/")[0] != source_host:
                reason = "caller SDP address differs from its signalling source (NAT)"
    relay = bool(reason) and offer is not None
    if relay and not transcode:
        if not supported:
            raise MediaRefused("no codec of the caller's offer can be relayed")
        a_codecs = [c for c in a_codecs if c.family in MEDIA_CODEC] or a_codecs
        if b_codecs is None:
            b_codecs = [replace(c) for c in a_codecs]
    return MediaPlan(relay=relay, transcode=transcode, reason=reason, a_codecs=a_codecs,
                     b_codecs=b_codecs,
                     dtmf_conversion=relay and (_dtmf_needs_conversion(mapping)
                                                or _dtmf_needs_conversion(routing)))


def restrict_offer(offer: SessionDescription, codecs: list[Codec]) -> SessionDescription:
    """The caller's offer with only ``codecs`` (and telephone-event) left on its audio line:
    Softswitch specified without the media proxy (the addresses stay the caller's)."""
    result = copy.deepcopy(offer)
    audio = result.first_audio()
    if audio is None:
        return result
    keep = {str(c.payload_type) for c in audio.codecs()
            if c.encoding.lower() == "telephone-event"
            or any(c.matches(w, g729_variants=True) for w in codecs)}
    audio.formats = [f for f in audio.formats if f in keep]
    audio.attributes = [
        a for a in audio.attributes
        if a.name.lower() not in ("rtpmap", "fmtp")
        or (a.value or "").split(" ", 1)[0] in keep]
    return result


def _free_dynamic_pt(used: set[int]) -> int:
    return next(pt for pt in range(96, 128) if pt not in used)


def g729_codecs(codecs: list[Codec], mode: str, peer: list[Codec],
                used: set[int] | None = None) -> list[Codec]:
    """``codecs`` to offer with their G.729 entries replaced per the routing gateway's G.729
    mode (:func:`~vosapp.sip.sdp.g729_offer`); ``peer`` is the caller's offer (Annex B),
    ``used`` payload types a new dynamic one must avoid."""
    if mode == "Auto" or not any(c.family == "g729" for c in codecs):
        return codecs
    taken = {c.payload_type for c in codecs if c.payload_type is not None} | (used or set())
    result: list[Codec] = []
    for codec in codecs:
        if codec.family != "g729":
            result.append(codec)
        elif not any(c.family == "g729" for c in result):
            result.extend(g729_offer(mode, peer, dynamic_pt=_free_dynamic_pt(taken)))
    return result


def g729_rewrite_offer(offer: SessionDescription, mode: str) -> SessionDescription:
    """The caller's offer forwarded without the relay, per the routing gateway's G.729 mode:
    RTP flows end to end, so only payload types the caller offered can be used — ``G729``
    sets ``annexb=no`` on its G.729 entries; the other modes leave them as offered (Annex B
    follows the peer; the second name of G729&G729a needs the relay's own payload type).
    The same object when nothing changes."""
    audio = offer.first_audio()
    if mode != "G729" or audio is None:
        return offer
    fmtp = g729_offer(mode)[0].fmtp
    pts = {str(c.payload_type) for c in audio.codecs()
           if c.family == "g729" and c.fmtp != fmtp}
    if not pts:
        return offer
    result = copy.deepcopy(offer)
    audio = result.first_audio()
    assert audio is not None
    attributes: list[Attribute] = []
    for attribute in audio.attributes:
        pt = (attribute.value or "").split(" ", 1)[0]
        name = attribute.name.lower()
        if name == "fmtp" and pt in pts:
            continue
        attributes.append(attribute)
        if name == "rtpmap" and pt in pts:
            attributes.append(Attribute("fmtp", f"{pt} {fmtp}"))
    for pt in pts - {(a.value or "").split(" ", 1)[0] for a in attributes
                     if a.name.lower() == "fmtp"}:
        attributes.append(Attribute("fmtp", f"{pt} {fmtp}"))  # static PT 18 without rtpmap
    audio.attributes = attributes
    return result


@dataclass(frozen=True)
class VendorOffer:
    """The SDP for the vendor INVITE: ``sdp`` (None without an offer) and the bytes to send
    (the caller's own bytes when its offer is forwarded unchanged)."""

    sdp: SessionDescription | None
    body: bytes


def vendor_offer(offer: SessionDescription | None, raw: bytes, plan: MediaPlan,
                 routing: GatewaySettings, relay_b: Address | None) -> VendorOffer:
    """The offer to the routing gateway: built on the relay's vendor-side address
    ``relay_b`` when the plan relays, else the caller's ``offer`` (bytes ``raw``) restricted
    to the plan's codecs and rewritten for the gateway's G.729 mode."""
    if plan.relay:
        assert plan.b_codecs is not None and offer is not None and relay_b is not None
        from vosapp.media.dtmf.convert import advertise_telephone_event

        audio = offer.first_audio()
        peer_te = audio is not None and audio.telephone_event_pt is not None
        te = routing.rfc2833_payload if advertise_telephone_event(
            routing.use_peer_rfc2833, peer_te) else None
        ptime = (audio.ptime if audio is not None else None) or 20
        codecs = [c if c.payload_type is not None else replace(c, payload_type=96)
                  for c in plan.b_codecs]
        peer = [c for c in (audio.codecs() if audio is not None else [])
                if c.family == "g729"]
        codecs = g729_codecs(codecs, routing.g729_mode, peer, {te} if te is not None else set())
        sdp = build_offer(relay_b[0], relay_b[1], codecs, telephone_event_pt=te, ptime=ptime)
        return VendorOffer(sdp, bytes(sdp))
    if offer is None:
        return VendorOffer(None, b"")
    forwarded = restrict_offer(offer, plan.b_codecs) if plan.b_codecs is not None else offer
    sdp = g729_rewrite_offer(forwarded, routing.g729_mode)
    changed = plan.b_codecs is not None or sdp is not forwarded
    return VendorOffer(sdp, bytes(sdp) if changed else raw)


def checked_answer(sdp: bytes, offer: SessionDescription) -> Answer:
    """The vendor's answer to ``offer``; raises :class:`AnswerRefused` when it accepted no
    stream with a codec from the offer (RFC 3264 §6: the answer picks from the offer) and
    :class:`~vosapp.sip.sdp.SdpError` when it is unreadable."""
    try:
        return read_answer(sdp, offer)
    except NoCommonCodec:
        answered = SessionDescription.parse(sdp).first_audio()
        offered = offer.first_audio()

        def names(media: Any) -> str:
            found = [c.encoding for c in (media.codecs() if media is not None else [])
                     if c.encoding.lower() != "telephone-event"]
            return "/".join(found) or "nothing"

        raise AnswerRefused(f"the vendor answered {names(answered)} to an offer of "
                            f"{names(offered)} (RFC 3264 §6)") from None


def conversion_plan(plan: MediaPlan, offer: SessionDescription | None,
                    mapping: GatewaySettings, routing: GatewaySettings) -> MediaPlan | None:
    """docs/behaviour.md §5 "Allow codec conversion" after the vendor refused the first offer for its
    codecs (488/606): a plan that offers the vendor the routing gateway's own codec
    (``specified_codec``) through the relay and transcodes — None when conversion is not
    allowed on both gateways, the media proxy is Off on either, the plan already transcodes,
    or that codec was already offered (the vendor refused it)."""
    if plan.transcode or offer is None:
        return None
    if not (mapping.allow_codec_conversion and routing.allow_codec_conversion):
        return None
    if "Off" in (mapping.media_proxy, routing.media_proxy):
        return None
    audio = offer.first_audio()
    offered = plan.b_codecs if plan.b_codecs is not None else (
        audio.codecs() if audio is not None else [])
    own = _specified_codec(routing)
    a_codecs = [c for c in plan.a_codecs if c.family in MEDIA_CODEC]
    if not a_codecs or any(own.matches(c, g729_variants=True) for c in offered):
        return None
    return MediaPlan(relay=True, transcode=True,
                     reason=f"codec conversion (the vendor refused {offered_names(offered)})",
                     a_codecs=a_codecs, b_codecs=[own],
                     dtmf_conversion=(_dtmf_needs_conversion(mapping)
                                      or _dtmf_needs_conversion(routing)))


def offered_names(codecs: list[Codec]) -> str:
    return "/".join(c.encoding for c in codecs if c.encoding.lower() != "telephone-event")


# ---------------------------------------------------------------- offers inside the call


def offered_direction(sdp: SessionDescription) -> str:
    """What the offerer of ``sdp`` wants for its first audio stream (RFC 3264 §8.4), with the
    RFC 2543 hold form folded in: ``c=0.0.0.0`` means the offerer receives nothing, so
    sendrecv reads as sendonly and recvonly as inactive."""
    audio = sdp.first_audio()
    if audio is None:
        return "sendrecv"
    direction = sdp.direction_of(audio)
    connection = sdp.connection_of(audio)
    if connection is not None and connection.address.split("/")[0] in ("0.0.0.0", "::"):
        direction = {"sendrecv": "sendonly", "recvonly": "inactive"}.get(direction, direction)
    return direction


def answer_direction(offered: str, answered: str) -> str:
    """The answerer's direction ``answered`` limited to what an offer of ``offered`` allows
    (RFC 3264 §6.1: it may send only if the offerer receives, receive only if it sends)."""
    sends = answered in ("sendrecv", "sendonly") and offered in ("sendrecv", "recvonly")
    receives = answered in ("sendrecv", "recvonly") and offered in ("sendrecv", "sendonly")
    return {(True, True): "sendrecv", (True, False): "sendonly", (False, True): "recvonly",
            (False, False): "inactive"}[(sends, receives)]


def next_leg_sdp(sdp: SessionDescription, last: bytes) -> SessionDescription:
    """``sdp`` as the next SDP the switch sends on a leg whose last one was ``last``
    (RFC 3264 §8): the leg's ``o=`` username, session id and address, the version one up
    when anything else changed and the same when nothing did (a session refresh)."""
    previous = SessionDescription.parse(last)
    result = copy.deepcopy(sdp)
    result.origin = replace(previous.origin)
    if str(result) != str(previous):
        result.origin.session_version = previous.origin.session_version + 1
    return result


def _accepted_audio(sdp: SessionDescription) -> Any:
    return next((m for m in sdp.media if m.media == "audio" and m.port), None)


def relay_reoffer(offer: SessionDescription, other_last: bytes, codec: Codec
                  ) -> SessionDescription:
    """The other leg's offer for a re-offer from one side, the relay in the path: the SDP
    last sent on the other leg (the relay's address) restricted to ``codec`` (the one running
    on that leg: the relay keeps its codecs), the originator's direction carried over (hold,
    resume: RFC 3264 §8.4) and the leg's next ``o=`` version."""
    sdp = restrict_offer(SessionDescription.parse(other_last), [codec])
    audio = _accepted_audio(sdp)
    if audio is not None:
        audio.set_direction(offered_direction(offer))
    return next_leg_sdp(sdp, other_last)


def relay_reanswer(offer: SessionDescription, codec: Codec, relay: Address, last: bytes, *,
                   far_direction: str, telephone_event: bool, g729_mode: str) -> Answer:
    """The switch's answer to a re-offer from one side, the relay in the path: ``codec`` (the
    one running on that leg; :class:`~vosapp.sip.sdp.NoCommonCodec` when the re-offer
    dropped it) on the relay's address, the direction the far side answered (limited to what
    the offer allows) and the leg's next ``o=`` version after ``last``."""
    result = answer(offer, [codec], address=relay[0], port=relay[1],
                    telephone_event=telephone_event, g729_mode=g729_mode)
    direction = answer_direction(offered_direction(offer), far_direction)
    audio = _accepted_audio(result.sdp)
    assert audio is not None  # answer() raised NoCommonCodec otherwise
    audio.set_direction(direction)
    return replace(result, sdp=next_leg_sdp(result.sdp, last), direction=direction)


def unchanged_offer(offer: SessionDescription, last: bytes) -> bool:
    """Whether ``offer`` repeats the SDP last received on a leg (``o=`` version included):
    a session refresh, not a change to relay (RFC 3264 §8)."""
    if not last:
        return False
    try:
        return str(SessionDescription.parse(last)) == str(offer)
    except SdpError:
        return False


def rejecting_answer(offer: bytes, host: str) -> bytes:
    """An answer to ``offer`` that rejects every stream: each ``m=`` with port 0 and its
    formats kept (RFC 3264 §6: one format must stay), our own ``o=``. It is the "valid
    answer" §13.2.2.4 asks an ACK to carry for a 2xx offer the switch will BYE at once.
    Empty when the offer cannot be read (nothing to answer)."""
    try:
        parsed = SessionDescription.parse(offer)
    except SdpError:
        return b""
    addrtype = "IP6" if ":" in host else "IP4"
    rejected = SessionDescription(
        origin=Origin("vosapp", str(secrets.randbelow(2**62) + 1), 1, "IN", addrtype, host),
        connection=Connection(host, "IN", addrtype), other_lines=[("t", "0 0")],
        media=[MediaDescription(m.media, 0, m.proto, m.formats[:1]) for m in parsed.media])
    return bytes(rejected)


@dataclass
class MediaAnswer:
    """What the vendor's answer means for a relayed call: the caller's answer, both relay
    legs and the DTMF converters (``{"a": ..., "b": ...}`` when the plan converts DTMF)."""

    a_answer: Answer
    b_answer: Answer
    a_spec: LegSpec
    b_spec: LegSpec
    dtmf: dict[str, Any]


def answer_media(plan: MediaPlan, caller_offer: SessionDescription, vendor_offer: SessionDescription,
                 vendor_sdp: bytes, *, mapping: GatewaySettings, routing: GatewaySettings,
                 relay_a: Address, caller_host: str, vendor_host: str) -> MediaAnswer:
    """The relay's answer to the caller (on ``relay_a``) from the vendor's answer to
    ``vendor_offer``; raises :class:`~vosapp.sip.sdp.SdpError` for an unreadable answer and
    :class:`MediaRefused` when the vendor's codec cannot reach the caller."""
    b_answer = checked_answer(vendor_sdp, vendor_offer)
    if plan.transcode:
        a_codecs = plan.a_codecs
    else:
        a_codecs = [c for c in plan.a_codecs if c.matches(b_answer.codec, g729_variants=True)]
        if not a_codecs:
            raise MediaRefused(f"the vendor answered {b_answer.codec.encoding}, "
                               "which the caller cannot use and conversion is off")
    from vosapp.media.dtmf.convert import (
        DtmfConverter,
        DtmfSideSettings,
        ReceiveSetting,
        SendSetting,
        advertise_telephone_event,
    )

    offer_audio = caller_offer.first_audio()
    caller_te = offer_audio is not None and offer_audio.telephone_event_pt is not None
    te_to_caller = caller_te and advertise_telephone_event(
        mapping.use_peer_rfc2833, b_answer.telephone_event_pt is not None)
    a_answer = answer(caller_offer, a_codecs, address=relay_a[0], port=relay_a[1],
                      telephone_event=te_to_caller, g729_mode=mapping.g729_mode)
    vendor_audio = vendor_offer.first_audio()
    a_spec = LegSpec(codec=MEDIA_CODEC[a_answer.codec.family],
                     ptime=a_answer.ptime or 20,
                     payload_type=int(a_answer.codec.payload_type or 0),
                     dtmf_payload_type=a_answer.telephone_event_pt,
                     remote=(a_answer.remote_address or caller_host, a_answer.remote_port))
    b_spec = LegSpec(codec=MEDIA_CODEC[b_answer.codec.family],
                     ptime=b_answer.ptime or ((vendor_audio.ptime if vendor_audio else None)
                                              or 20),
                     payload_type=int(b_answer.codec.payload_type or 0),
                     dtmf_payload_type=b_answer.telephone_event_pt,
                     remote=(b_answer.remote_address or vendor_host, b_answer.remote_port))
    dtmf: dict[str, Any] = {}
    if plan.dtmf_conversion:
        side_a = DtmfSideSettings(receive=ReceiveSetting.parse(mapping.dtmf_receive),
                                  send=SendSetting.parse(mapping.dtmf_send),
                                  payload_type=mapping.rfc2833_payload,
                                  use_peer_rfc2833_ability=mapping.use_peer_rfc2833)
        side_b = DtmfSideSettings(receive=ReceiveSetting.parse(routing.dtmf_receive),
                                  send=SendSetting.parse(routing.dtmf_send),
                                  payload_type=routing.rfc2833_payload,
                                  use_peer_rfc2833_ability=routing.use_peer_rfc2833)
        dtmf["a"] = DtmfConverter(side_a, side_b, far_rfc2833=b_spec.dtmf_payload_type is not None)
        dtmf["b"] = DtmfConverter(side_b, side_a, far_rfc2833=a_spec.dtmf_payload_type is not None)
    return MediaAnswer(a_answer, b_answer, a_spec, b_spec, dtmf)


__all__ = ["MEDIA_CODEC", "SPECIFIED", "AnswerRefused", "MediaAnswer", "MediaPlan",
           "MediaRefused", "VendorOffer", "answer_direction", "answer_media", "checked_answer",
           "conversion_plan", "g729_codecs", "g729_rewrite_offer", "next_leg_sdp",
           "offered_direction", "plan_media", "rejecting_answer", "relay_reanswer",
           "relay_reoffer", "restrict_offer", "unchanged_offer", "vendor_offer"]
