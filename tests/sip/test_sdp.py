"""SDP (RFC 8866) parse/serialize and RFC 3264 offer/answer."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vosapp.sip.sdp import (
    G722,
    G723,
    G729,
    PCMA,
    PCMU,
    STATIC_PAYLOAD_TYPES,
    Attribute,
    Codec,
    NoCommonCodec,
    SdpError,
    SessionDescription,
    answer,
    build_offer,
    g729_annexb,
)


def crlf(text: str) -> str:
    return "".join(line + "\r\n" for line in text.strip("\n").split("\n"))


ASTERISK_OFFER = crlf("""
v=0
o=root 1821130429 1821130429 IN IP4 192.168.1.10
s=Asterisk PBX 18.9.0
c=IN IP4 192.168.1.10
t=0 0
m=audio 10000 RTP/AVP 18 0 8 101
a=rtpmap:18 G729/8000
a=fmtp:18 annexb=no
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
a=maxptime:150
a=sendrecv
""")

FREESWITCH_OFFER = crlf("""
v=0
o=FreeSWITCH 1700000000 1700000001 IN IP4 203.0.113.5
s=FreeSWITCH
c=IN IP4 203.0.113.5
t=0 0
m=audio 16384 RTP/AVP 0 8 9 18 101 13
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:9 G722/8000
a=rtpmap:18 G729/8000
a=fmtp:18 annexb=yes
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=rtpmap:13 CN/8000
a=ptime:20
a=sendrecv
a=rtcp:16385 IN IP4 203.0.113.5
""")

LINPHONE_OFFER = crlf("""
v=0
o=alice 3724 1934 IN IP4 192.168.0.20
s=Talk
c=IN IP4 192.168.0.20
b=AS:380
t=0 0
a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics
a=record:off
m=audio 7078 RTP/AVP 96 97 98 0 8 18 101 99 100
a=rtpmap:96 opus/48000/2
a=fmtp:96 useinbandfec=1
a=rtpmap:97 speex/16000
a=fmtp:97 vbr=on
a=rtpmap:98 speex/8000
a=fmtp:98 vbr=on
a=fmtp:18 annexb=no
a=rtpmap:101 telephone-event/48000
a=rtpmap:99 telephone-event/16000
a=rtpmap:100 telephone-event/8000
a=rtcp-fb:* trr-int 1000
a=rtcp-fb:* ccm tmmbr
m=video 9078 RTP/AVP 102
b=AS:300
a=rtpmap:102 VP8/90000
a=rtcp-fb:102 nack pli
a=rtcp-fb:102 ccm fir
""")

# A softphone putting the call on hold (session-level sendonly, media-level c=, i=, k=).
HOLD_OFFER = crlf("""
v=0
o=- 8000 8002 IN IP4 10.1.2.3
s=-
i=A held call
u=http://example.com/
e=ops@example.com
p=+1 555 0100
t=0 0
r=7d 1h 0 25h
a=sendonly
m=audio 4000 RTP/AVP 8 0
i=voice
c=IN IP4 10.1.2.99
b=TIAS:64000
k=prompt
a=rtpmap:8 PCMA/8000
a=rtpmap:0 PCMU/8000
""")

IPV6_OFFER = crlf("""
v=0
o=bob 2890844526 2890842807 IN IP6 2001:db8::1
s=-
c=IN IP6 2001:db8::1
t=0 0
m=audio 49170/2 RTP/AVP 0 9
""")

# A hardware gateway (Cisco-style attributes) with G.729 and a vendor attribute.
GATEWAY_OFFER = crlf("""
v=0
o=CiscoSystemsSIP-GW-UserAgent 4393 2781 IN IP4 198.51.100.20
s=SIP Call
c=IN IP4 198.51.100.20
t=0 0
m=audio 16434 RTP/AVP 18 101 19
c=IN IP4 198.51.100.20
a=rtpmap:18 G729/8000
a=fmtp:18 annexb=no
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=rtpmap:19 CN/8000
a=ptime:20
a=silenceSupp:off - - - -
""")

# A T.38 fax re-INVITE (m=image, udptl).
T38_OFFER = crlf("""
v=0
o=- 1 2 IN IP4 198.51.100.20
s=-
c=IN IP4 198.51.100.20
t=0 0
m=image 16436 udptl t38
a=T38FaxVersion:0
a=T38MaxBitRate:14400
a=T38FaxRateManagement:transferredTCF
a=T38FaxMaxBuffer:200
a=T38FaxMaxDatagram:72
a=T38FaxUdpEC:t38UDPRedundancy
""")

# A WebRTC offer (ICE, DTLS-SRTP, BUNDLE) that vosapp must parse and refuse cleanly.
WEBRTC_OFFER = crlf("""
v=0
o=mozilla...THIS_IS_SDPARTA-99.0 7066540215418215434 0 IN IP4 0.0.0.0
s=-
t=0 0
a=fingerprint:sha-256 6B:8B:F0:65:5F:78:E2:51:3B:AC:6F:F3:3F:46:1B:35:DC:B8:5F:64:1A:24:C2:43:F0:A1:58:D0:A1:2C:19:08
a=group:BUNDLE 0
a=ice-options:trickle
a=msid-semantic:WMS *
m=audio 9 UDP/TLS/RTP/SAVPF 109 9 0 8 101
c=IN IP4 0.0.0.0
a=candidate:0 1 UDP 2122252543 192.168.1.5 50512 typ host
a=sendrecv
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level
a=fmtp:109 maxplaybackrate=48000;stereo=1;useinbandfec=1
a=fmtp:101 0-15
a=ice-pwd:a8a3bd5e1c4b0c3d5a2f8c3a9b0e7d6f
a=ice-ufrag:3f4a1b2c
a=mid:0
a=rtcp-mux
a=rtpmap:109 opus/48000/2
a=rtpmap:9 G722/8000/1
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=setup:actpass
a=ssrc:2655508255 cname:{735484ea-4f6c-f74a-bd66-7425f10c39ba}
""")

REALISTIC = [ASTERISK_OFFER, FREESWITCH_OFFER, LINPHONE_OFFER, HOLD_OFFER, IPV6_OFFER,
             GATEWAY_OFFER, T38_OFFER, WEBRTC_OFFER]


# ---------------------------------------------------------------------------------- parsing


@pytest.mark.parametrize("text", REALISTIC)
def test_round_trip_exact(text: str) -> None:
    sdp = SessionDescription.parse(text)
    assert str(sdp) == text
    assert bytes(sdp) == text.encode()
    assert SessionDescription.parse(text.encode()) == sdp


@pytest.mark.parametrize("text", REALISTIC)
def test_lf_only_and_trailing_blank_lines_are_accepted(text: str) -> None:
    lf = text.replace("\r\n", "\n") + "\n\n"
    assert str(SessionDescription.parse(lf)) == text


def test_asterisk_fields() -> None:
    sdp = SessionDescription.parse(ASTERISK_OFFER)
    assert sdp.version == 0
    assert sdp.origin.username == "root"
    assert sdp.origin.session_version == 1821130429
    assert sdp.origin.address == "192.168.1.10"
    assert sdp.session_name == "Asterisk PBX 18.9.0"
    assert sdp.connection is not None and sdp.connection.address == "192.168.1.10"
    (audio,) = sdp.media
    assert (audio.media, audio.port, audio.proto) == ("audio", 10000, "RTP/AVP")
    assert audio.formats == ["18", "0", "8", "101"]
    rtpmap = audio.rtpmap(18)
    assert rtpmap is not None and (rtpmap.encoding, rtpmap.clock_rate, rtpmap.channels) == (
        "G729", 8000, 1
    )
    assert audio.fmtp(18) == "annexb=no"
    assert audio.fmtp(0) is None
    assert audio.ptime == 20 and audio.maxptime == 150
    assert audio.direction == "sendrecv"
    assert audio.telephone_event_pt == 101
    assert [c.encoding for c in audio.codecs()] == ["G729", "PCMU", "PCMA", "telephone-event"]
    assert not g729_annexb(audio.codecs()[0].fmtp)


def test_linphone_fields() -> None:
    sdp = SessionDescription.parse(LINPHONE_OFFER)
    audio, video = sdp.media
    codecs = audio.codecs()
    assert codecs[0] == Codec("opus", 48000, 2, 96, "useinbandfec=1")
    # static types without rtpmap are filled in from RFC 3551
    assert [c.payload_type for c in codecs if c.encoding in ("PCMU", "PCMA", "G729")] == [0, 8, 18]
    assert audio.telephone_event_pt == 100  # only the 8000 Hz one counts
    assert audio.ptime is None and audio.direction is None
    assert sdp.direction_of(audio) == "sendrecv"
    assert ("b", "AS:380") in sdp.other_lines
    assert Attribute("record", "off") in sdp.attributes
    assert video.media == "video" and video.port == 9078
    assert video.other_lines == [("b", "AS:300")]
    assert video.attribute_values("rtcp-fb") == ["102 nack pli", "102 ccm fir"]


def test_hold_offer_fields() -> None:
    sdp = SessionDescription.parse(HOLD_OFFER)
    (audio,) = sdp.media
    assert audio.direction is None
    assert sdp.direction_of(audio) == "sendonly"
    assert sdp.connection is None
    connection = sdp.connection_of(audio)
    assert connection is not None and connection.address == "10.1.2.99"
    assert audio.other_lines == [("i", "voice"), ("b", "TIAS:64000"), ("k", "prompt")]


def test_ipv6_and_port_count() -> None:
    sdp = SessionDescription.parse(IPV6_OFFER)
    assert sdp.origin.addrtype == "IP6"
    (audio,) = sdp.media
    assert audio.port == 49170 and audio.port_count == 2
    assert [c.encoding for c in audio.codecs()] == ["PCMU", "G722"]


def test_out_of_order_lines_are_normalised() -> None:
    text = crlf("""
v=0
o=- 1 1 IN IP4 1.2.3.4
s=-
t=0 0
c=IN IP4 1.2.3.4
m=audio 5000 RTP/AVP 0
a=sendrecv
c=IN IP4 5.6.7.8
""")
    sdp = SessionDescription.parse(text)
    out = str(sdp)
    assert out.index("c=IN IP4 1.2.3.4") < out.index("t=0 0")
    assert out.index("c=IN IP4 5.6.7.8") < out.index("a=sendrecv")
    assert SessionDescription.parse(out) == sdp


def test_set_direction_replaces_the_old_one() -> None:
    sdp = SessionDescription.parse(ASTERISK_OFFER)
    audio = sdp.media[0]
    audio.set_direction("inactive")
    assert audio.direction == "inactive"
    assert audio.attribute_values("sendrecv") == []
    with pytest.raises(SdpError):
        audio.set_direction("both")


MINIMAL = "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "no v="),
        ("\r\n\r\n", "no v="),
        ("o=- 1 1 IN IP4 1.2.3.4\r\n", "first line must be v="),
        ("v=1\r\n", "unsupported SDP version"),
        ("v=x\r\n", "not a number"),
        ("v=0\r\ns=-\r\n", "missing o="),
        ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\n", "missing s="),
        ("v=0\r\no=- 1 1 IN IP4\r\ns=-\r\n", "o= needs 6 fields"),
        ("v=0\r\no=- 1 x IN IP4 1.2.3.4\r\ns=-\r\n", "session version"),
        (MINIMAL.replace("5000", "70000"), "out of range"),
        (MINIMAL.replace("5000", "-1"), "not a number"),
        (MINIMAL.replace("5000", "5000/0"), "port count"),
        (MINIMAL.replace(" RTP/AVP 0", " RTP/AVP"), "m= needs"),
        (MINIMAL + "a=rtpmap:0 PCMU\r\n", "rtpmap"),
        (MINIMAL + "a=rtpmap:0 PCMU/abc\r\n", "clock rate"),
        (MINIMAL + "a=rtpmap:200 X/8000\r\n", "payload type"),
        (MINIMAL + "a=rtpmap:0 PCMU/8000/0\r\n", "channels"),
        (MINIMAL + "a=ptime:abc\r\n", "ptime"),
        (MINIMAL + "a=ptime:0\r\n", "ptime"),
        (MINIMAL + "a=maxptime:-20\r\n", "maxptime"),
        (MINIMAL + "a=fmtp:\r\n", "fmtp"),
        (MINIMAL + "a=:x\r\n", "attribute name"),
        (MINIMAL + "c=IN IP4\r\n", "c= needs"),
        (MINIMAL + "c=IN IP4 1.1.1.1\r\nc=IN IP4 2.2.2.2\r\n", "repeated c="),
        (MINIMAL + "t=0 0\r\n", "not allowed in a media section"),
        (MINIMAL + "v=0\r\n", "repeated v="),
        (MINIMAL + "Q=1\r\n", "not a <type>=<value>"),
        (MINIMAL + "garbage\r\n", "not a <type>=<value>"),
        (MINIMAL + "a=x\ry\r\n", "stray CR"),
        ("v=0\r\nm=audio 1 RTP/AVP 0\r\n", "m= before"),
        ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nx=1\r\n", "unknown session-level"),
        ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\n", "repeated o="),
        ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\ns=-\r\n", "repeated s="),
    ],
)
def test_malformed(text: str, fragment: str) -> None:
    with pytest.raises(SdpError) as info:
        SessionDescription.parse(text)
    assert fragment in str(info.value)
    assert info.value.reason


def test_non_utf8_and_wrong_type() -> None:
    with pytest.raises(SdpError, match="UTF-8"):
        SessionDescription.parse(b"v=0\r\ns=\xff\r\n")
    with pytest.raises(SdpError, match="str or bytes"):
        SessionDescription.parse(42)  # type: ignore[arg-type]


def test_error_names_the_line() -> None:
    with pytest.raises(SdpError) as info:
        SessionDescription.parse(MINIMAL + "a=ptime:x\r\n")
    assert info.value.line == 6
    assert str(info.value).startswith("line 6:")


# ---------------------------------------------------------------------------------- codecs


def test_static_payload_types() -> None:
    assert STATIC_PAYLOAD_TYPES[0] == PCMU and PCMU.payload_type == 0
    assert STATIC_PAYLOAD_TYPES[8] == PCMA
    assert STATIC_PAYLOAD_TYPES[18] == G729
    assert STATIC_PAYLOAD_TYPES[4] == G723
    # RFC 3551 §4.5.2: G.722 is 16 kHz audio with an 8000 Hz RTP clock
    assert STATIC_PAYLOAD_TYPES[9] == G722 and G722.clock_rate == 8000


def test_codec_matching() -> None:
    assert Codec("pcma", 8000).matches(PCMA)
    assert not Codec("PCMA", 16000).matches(PCMA)
    assert not Codec("opus", 48000, 2).matches(Codec("opus", 48000, 1))
    assert str(Codec("opus", 48000, 2)) == "opus/48000/2"


@pytest.mark.parametrize(
    ("fmtp", "expected"),
    [(None, True), ("", True), ("annexb=no", False), ("annexb=yes", True),
     ("bitrate=8; AnnexB=No", False)],
)
def test_g729_annexb(fmtp: str | None, expected: bool) -> None:
    assert g729_annexb(fmtp) is expected


# ---------------------------------------------------------------------------------- offer/answer


def test_build_offer() -> None:
    offer = build_offer("10.0.0.1", 4000, [PCMA, PCMU, G729], session_id="42")
    text = str(offer)
    assert "o=vosapp 42 1 IN IP4 10.0.0.1\r\n" in text
    assert "c=IN IP4 10.0.0.1\r\n" in text
    assert "m=audio 4000 RTP/AVP 8 0 18 101\r\n" in text
    assert "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n" in text
    assert "a=ptime:20\r\n" in text and text.endswith("a=sendrecv\r\n")
    assert SessionDescription.parse(text) == offer
    bare = build_offer("2001:db8::2", 4000, [PCMU], telephone_event_pt=None, ptime=None,
                       direction="inactive")
    assert "IN IP6 2001:db8::2" in str(bare)
    assert "telephone-event" not in str(bare) and "ptime" not in str(bare)
    assert bare.media[0].direction == "inactive"


def test_build_offer_bad_input() -> None:
    with pytest.raises(SdpError):
        build_offer("10.0.0.1", 4000, [])
    with pytest.raises(SdpError):
        build_offer("10.0.0.1", 0, [PCMU])
    with pytest.raises(SdpError):
        build_offer("10.0.0.1", 4000, [Codec("opus", 48000, 2)])  # no payload type
    with pytest.raises(SdpError):
        build_offer("10.0.0.1", 4000, [PCMU], direction="both")


def test_answer_picks_first_common_codec_in_offerer_order() -> None:
    result = answer(ASTERISK_OFFER, [PCMA, PCMU], address="10.0.0.1", port=20000)
    assert result.codec.encoding == "PCMU"  # offer order 18 0 8: PCMU before PCMA
    assert result.codec.payload_type == 0
    assert result.telephone_event_pt == 101
    assert (result.remote_address, result.remote_port) == ("192.168.1.10", 10000)
    assert result.ptime == 20 and result.direction == "sendrecv"
    audio = result.sdp.media[0]
    assert audio.port == 20000 and audio.formats == ["0", "101"]
    assert audio.fmtp(101) == "0-16"
    text = str(result.sdp)
    assert "c=IN IP4 10.0.0.1\r\n" in text
    assert SessionDescription.parse(text) == result.sdp


def test_answer_keeps_offer_payload_type_and_fmtp() -> None:
    result = answer(ASTERISK_OFFER, [G729], address="10.0.0.1", port=20000)
    assert result.codec == Codec("G729", 8000, 1, 18, "annexb=no")
    assert result.sdp.media[0].fmtp(18) == "annexb=no"
    dynamic = MINIMAL.replace("RTP/AVP 0", "RTP/AVP 96") + "a=rtpmap:96 PCMA/8000\r\n"
    assert answer(dynamic, [PCMA], address="10.0.0.1", port=20000).codec.payload_type == 96


def test_answer_telephone_event_only_when_both_support_it() -> None:
    without = answer(ASTERISK_OFFER, [PCMA], address="10.0.0.1", port=20000,
                     telephone_event=False)
    assert without.telephone_event_pt is None
    assert without.sdp.media[0].formats == ["8"]
    not_offered = answer(HOLD_OFFER, [PCMA], address="10.0.0.1", port=20000)
    assert not_offered.telephone_event_pt is None
    assert "telephone-event" not in str(not_offered.sdp)


def test_answer_rejects_video_with_port_zero() -> None:
    result = answer(LINPHONE_OFFER, [PCMA, PCMU], address="10.0.0.1", port=20000)
    assert result.codec.encoding == "PCMU"  # 0 comes before 8 in the offer
    assert result.telephone_event_pt == 100
    audio, video = result.sdp.media
    assert len(result.sdp.media) == len(SessionDescription.parse(LINPHONE_OFFER).media)
    assert audio.port == 20000
    assert video.port == 0 and video.media == "video" and video.formats == ["102"]
    assert "m=video 0 RTP/AVP 102\r\n" in str(result.sdp)


def test_answer_g722_and_remote_connection_from_media_level() -> None:
    result = answer(FREESWITCH_OFFER, [G722], address="10.0.0.1", port=20000)
    assert result.codec.payload_type == 9 and result.codec.clock_rate == 8000
    held = answer(HOLD_OFFER, [PCMU], address="10.0.0.1", port=20000)
    assert held.remote_address == "10.1.2.99"


@pytest.mark.parametrize(
    ("offered", "answered"),
    [("sendrecv", "sendrecv"), ("sendonly", "recvonly"), ("recvonly", "sendonly"),
     ("inactive", "inactive")],
)
def test_answer_direction(offered: str, answered: str) -> None:
    text = MINIMAL + f"a={offered}\r\n"
    result = answer(text, [PCMU], address="10.0.0.1", port=20000)
    assert result.direction == answered
    assert result.sdp.media[0].direction == answered


def test_answer_session_level_hold() -> None:
    result = answer(HOLD_OFFER, [PCMA], address="10.0.0.1", port=20000)
    assert result.direction == "recvonly"


def test_no_common_codec() -> None:
    with pytest.raises(NoCommonCodec) as info:
        answer(ASTERISK_OFFER, [G722, G723], address="10.0.0.1", port=20000)
    message = str(info.value)
    assert "no common codec" in message and "G729/8000" in message
    assert isinstance(info.value, SdpError)


def test_no_common_codec_when_only_unusable_streams() -> None:
    srtp = MINIMAL.replace("RTP/AVP", "RTP/SAVP")
    with pytest.raises(NoCommonCodec, match="RTP/SAVP"):
        answer(srtp, [PCMU], address="10.0.0.1", port=20000)
    video_only = MINIMAL.replace("m=audio", "m=video")
    with pytest.raises(NoCommonCodec, match="video"):
        answer(video_only, [PCMU], address="10.0.0.1", port=20000)
    no_media = "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\n"
    with pytest.raises(NoCommonCodec, match="no media"):
        answer(no_media, [PCMU], address="10.0.0.1", port=20000)
    disabled = MINIMAL.replace("5000", "0")
    with pytest.raises(NoCommonCodec):
        answer(disabled, [PCMU], address="10.0.0.1", port=20000)


def test_second_audio_stream_used_when_first_has_no_common_codec() -> None:
    text = MINIMAL.replace("RTP/AVP 0", "RTP/AVP 18") + "m=audio 6000 RTP/AVP 8\r\n"
    result = answer(text, [PCMA], address="10.0.0.1", port=20000)
    first, second = result.sdp.media
    assert first.port == 0 and second.port == 20000
    assert result.remote_port == 6000


def test_telephone_event_alone_is_not_a_common_codec() -> None:
    text = MINIMAL.replace("RTP/AVP 0", "RTP/AVP 101") + "a=rtpmap:101 telephone-event/8000\r\n"
    with pytest.raises(NoCommonCodec):
        answer(text, [PCMU, Codec("telephone-event", 8000)], address="10.0.0.1", port=20000)


def test_offer_answer_between_two_vosapp_legs() -> None:
    offer = build_offer("10.0.0.1", 4000, [G729, PCMA])
    result = answer(str(offer), [PCMA, G729], address="10.0.0.2", port=5000)
    assert result.codec == G729  # offerer's preference wins
    assert result.telephone_event_pt == 101


# ---------------------------------------------------------------------------------- hypothesis

_token = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.",
                 min_size=1, max_size=12)
_value = st.text(
    alphabet=st.characters(blacklist_characters="\r\n\x00", blacklist_categories=("Cs",)),
    max_size=30,
).filter(lambda v: v.strip() == v and v != "")


@st.composite
def sdp_texts(draw: st.DrawFn) -> str:
    lines = [
        "v=0",
        (
            f"o={draw(_token)} {draw(st.integers(0, 2**40))} {draw(st.integers(0, 2**40))} "
            f"IN IP4 {draw(_token)}"
        ),
        f"s={draw(_value)}",
    ]
    if draw(st.booleans()):
        lines.append(f"i={draw(_value)}")
    if draw(st.booleans()):
        lines.append(f"c=IN IP4 {draw(_token)}")
    lines.append("t=0 0")
    for name in draw(st.lists(_token, max_size=3)):
        lines.append(f"a={name}:{draw(_value)}" if draw(st.booleans()) else f"a={name}")
    for _ in range(draw(st.integers(0, 3))):
        pts = draw(st.lists(st.integers(0, 127), min_size=1, max_size=5, unique=True))
        lines.append(
            f"m={draw(st.sampled_from(['audio', 'video', 'image']))} "
            f"{draw(st.integers(0, 65535))} RTP/AVP {' '.join(map(str, pts))}"
        )
        if draw(st.booleans()):
            lines.append(f"c=IN IP4 {draw(_token)}")
        for pt in pts:
            if draw(st.booleans()):
                lines.append(f"a=rtpmap:{pt} {draw(_token)}/{draw(st.integers(1, 96000))}")
            if draw(st.booleans()):
                lines.append(f"a=fmtp:{pt} {draw(_value)}")
        if draw(st.booleans()):
            lines.append(f"a=ptime:{draw(st.integers(1, 200))}")
        if draw(st.booleans()):
            lines.append(f"a={draw(st.sampled_from(['sendrecv', 'sendonly', 'recvonly']))}")
    return "".join(line + "\r\n" for line in lines)


@settings(max_examples=200, deadline=None)
@given(sdp_texts())
def test_generated_sdp_round_trips(text: str) -> None:
    sdp = SessionDescription.parse(text)
    assert str(sdp) == text
    for media in sdp.media:
        media.codecs()  # accessors never fail on what parse accepted
        _ = (media.ptime, media.direction, media.telephone_event_pt, media.rtpmaps)


@settings(max_examples=200, deadline=None)
@given(sdp_texts(), st.lists(st.sampled_from([PCMU, PCMA, G729, G722, G723]), max_size=3))
def test_answer_on_generated_offers(text: str, supported: list[Codec]) -> None:
    try:
        result = answer(text, supported, address="10.0.0.1", port=20000)
    except NoCommonCodec:
        return
    assert any(result.codec.matches(codec) for codec in supported)
    assert len(result.sdp.media) == len(SessionDescription.parse(text).media)
    assert SessionDescription.parse(str(result.sdp)) == result.sdp


_noise = st.sampled_from(["v=0", "o=- 1 1 IN IP4 a", "s=-", "m=audio 1 RTP/AVP 0", "a=rtpmap:",
                          "a=ptime:", "c=IN IP4 x", "\r\n", "\n", "=", " ", "/", ":"])


@settings(max_examples=400, deadline=None)
@given(st.lists(_noise | st.text(max_size=8), max_size=20).map("".join))
def test_arbitrary_text_raises_only_sdp_error(text: str) -> None:
    try:
        sdp = SessionDescription.parse(text)
    except SdpError:
        return
    assert SessionDescription.parse(str(sdp)) == sdp
    for media in sdp.media:
        media.codecs()


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_sdp_error(data: bytes) -> None:
    try:
        SessionDescription.parse(data)
    except SdpError:
        pass


# ---------------------------------------------------------------------------------- offerer side


def test_read_answer_after_answer() -> None:
    from vosapp.sip.sdp import read_answer

    offer = build_offer("10.0.0.1", 4000, [PCMA, G729])
    result = answer(offer, [G729], address="10.0.0.2", port=5000)
    agreed = read_answer(str(result.sdp), str(offer))
    assert agreed.codec == G729
    assert agreed.telephone_event_pt == 101
    assert (agreed.remote_address, agreed.remote_port) == ("10.0.0.2", 5000)
    assert agreed.direction == "sendrecv"


def test_read_answer_uses_answer_payload_types_and_skips_rejected_streams() -> None:
    from vosapp.sip.sdp import read_answer

    offer = MINIMAL.replace("RTP/AVP 0", "RTP/AVP 0 96") + "a=rtpmap:96 PCMA/8000\r\n"
    offer += "m=video 5002 RTP/AVP 99\r\na=rtpmap:99 H264/90000\r\n"
    reply = crlf("""
v=0
o=peer 5 5 IN IP4 192.0.2.7
s=-
c=IN IP4 192.0.2.7
t=0 0
m=audio 7000 RTP/AVP 97
a=rtpmap:97 PCMA/8000
a=recvonly
m=video 0 RTP/AVP 99
""")
    agreed = read_answer(reply, offer)
    assert agreed.codec.payload_type == 97 and agreed.codec.encoding == "PCMA"
    assert agreed.telephone_event_pt is None
    assert agreed.direction == "recvonly"


@pytest.mark.parametrize("offer_te", ["", "101 telephone-event/8000", "101 telephone-event/16000"])
@pytest.mark.parametrize("answer_te", ["", "100 telephone-event/8000", "100 telephone-event/16000"])
def test_read_answer_telephone_event_matches_the_media_properties(offer_te: str,
                                                                  answer_te: str) -> None:
    """read_answer reads each side's codecs once; its telephone-event answer is still what
    the media-level telephone_event_pt properties of the offer and the answer say."""
    from vosapp.sip.sdp import read_answer

    def sdp(port: int, te: str) -> str:
        fmts = "8" + (f" {te.split()[0]}" if te else "")
        return MINIMAL.replace("RTP/AVP 0", f"RTP/AVP {fmts}").replace(
            "m=audio 5000", f"m=audio {port}") + (f"a=rtpmap:{te}\r\n" if te else "")

    offer, reply = sdp(4000, offer_te), sdp(7000, answer_te)
    offered = SessionDescription.parse(offer).media[0]
    answered = SessionDescription.parse(reply).media[0]
    expected = answered.telephone_event_pt if offered.telephone_event_pt is not None else None
    agreed = read_answer(reply, offer)
    assert agreed.telephone_event_pt == expected
    assert agreed.codec.encoding == "PCMA"
    assert (agreed.telephone_event_pt == 100) == (offer_te.endswith("/8000")
                                                  and answer_te.endswith("/8000"))


def test_read_answer_errors() -> None:
    from vosapp.sip.sdp import read_answer

    offer = build_offer("10.0.0.1", 4000, [PCMA])
    rejected = crlf("""
v=0
o=peer 5 5 IN IP4 192.0.2.7
s=-
t=0 0
m=audio 0 RTP/AVP 8
""")
    with pytest.raises(NoCommonCodec):
        read_answer(rejected, offer)
    foreign_codec = rejected.replace("audio 0 RTP/AVP 8", "audio 7000 RTP/AVP 18")
    with pytest.raises(NoCommonCodec):
        read_answer(foreign_codec, offer)
    with pytest.raises(SdpError, match="same number"):
        read_answer(rejected + "m=video 0 RTP/AVP 99\r\n", offer)
    with pytest.raises(SdpError, match="video in the answer"):
        read_answer(rejected.replace("m=audio", "m=video"), offer)


def test_next_version_bumps_origin_only_in_the_copy() -> None:
    offer = build_offer("10.0.0.1", 4000, [PCMA], session_id="7", session_version=3)
    hold = offer.next_version()
    hold.media[0].set_direction("sendonly")
    assert hold.origin.session_version == 4 and hold.origin.session_id == "7"
    assert offer.origin.session_version == 3 and offer.media[0].direction == "sendrecv"


# ---------------------------------------------------------------------------------- G.729 modes

G729A_OFFER = MINIMAL.replace("RTP/AVP 0", "RTP/AVP 98 8") + "a=rtpmap:98 G729a/8000\r\n"


def test_g729_variants_match_in_auto_mode() -> None:
    result = answer(G729A_OFFER, [G729], address="10.0.0.1", port=20000)
    assert result.codec == Codec("G729a", 8000, 1, 98)  # answered with the peer's variant
    assert "a=rtpmap:98 G729a/8000" in str(result.sdp)
    strict = answer(G729A_OFFER, [G729, PCMA], address="10.0.0.1", port=20000,
                    g729_variants=False)
    assert strict.codec == PCMA
    assert Codec("G729AB", 8000).family == "g729" and PCMU.family == "pcmu"


def test_g729_annexb_off() -> None:
    result = answer(FREESWITCH_OFFER, [G729], address="10.0.0.1", port=20000, g729_annexb=False)
    assert result.codec.fmtp == "annexb=no"
    assert result.sdp.media[0].fmtp(18) == "annexb=no"
    assert not g729_annexb(result.codec.fmtp)
    plain = answer(MINIMAL.replace("RTP/AVP 0", "RTP/AVP 18"), [G729], address="10.0.0.1",
                   port=20000, g729_annexb=False)
    assert plain.sdp.media[0].fmtp(18) == "annexb=no"
    echoed = answer(FREESWITCH_OFFER, [G729], address="10.0.0.1", port=20000)
    assert echoed.codec.fmtp == "annexb=yes"
    kept = answer(MINIMAL.replace("RTP/AVP 0", "RTP/AVP 18") + "a=fmtp:18 bitrate=8;annexb=yes\r\n",
                  [G729], address="10.0.0.1", port=20000, g729_annexb=False)
    assert kept.codec.fmtp == "bitrate=8;annexb=no"


def test_gateway_offer() -> None:
    result = answer(GATEWAY_OFFER, [PCMA, G729], address="10.0.0.1", port=20000)
    assert result.codec == Codec("G729", 8000, 1, 18, "annexb=no")
    assert result.telephone_event_pt == 101
    sdp = SessionDescription.parse(GATEWAY_OFFER)
    assert sdp.media[0].first_attribute("silenceSupp") == "off - - - -"


def test_t38_and_webrtc_offers_are_refused_cleanly() -> None:
    with pytest.raises(NoCommonCodec, match="image not supported"):
        answer(T38_OFFER, [PCMA], address="10.0.0.1", port=20000)
    with pytest.raises(NoCommonCodec, match="UDP/TLS/RTP/SAVPF"):
        answer(WEBRTC_OFFER, [PCMA], address="10.0.0.1", port=20000)
    webrtc = SessionDescription.parse(WEBRTC_OFFER)
    assert webrtc.media[0].codecs()[1] == Codec("G722", 8000, 1, 9)  # "/1" channels explicit
    assert webrtc.media[0].telephone_event_pt == 101


def test_codecs_agree_with_rtpmaps_and_fmtp() -> None:
    # codecs() reads the attributes in one pass; it must say what rtpmap()/fmtp() say:
    # the first rtpmap and the first fmtp of a type win, static types need no rtpmap,
    # a dynamic type without one is skipped, a non-numeric format is skipped.
    sdp = SessionDescription.parse(
        "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
        "m=audio 4000 RTP/AVP 18 0 101 96 97 x\r\n"
        "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=fmtp:101 0-11\r\n"
        "a=rtpmap:96 opus/48000/2\r\na=rtpmap:96 speex/8000\r\na=fmtp:18 annexb=no\r\n"
        "a=RTPMAP:0 PCMU/8000\r\n")
    media = sdp.media[0]
    expected = []
    for fmt in ("18", "0", "101", "96"):
        pt = int(fmt)
        mapping = media.rtpmap(pt)
        if mapping is not None:
            expected.append(Codec(mapping.encoding, mapping.clock_rate, mapping.channels, pt,
                                  media.fmtp(pt)))
        else:
            expected.append(replace(STATIC_PAYLOAD_TYPES[pt], fmtp=media.fmtp(pt)))
    assert media.codecs() == expected
    assert [c.fmtp for c in expected] == ["annexb=no", None, "0-15", None]
    assert expected[3].encoding == "opus" and media.telephone_event_pt == 101


def test_rtpmaps_parsed_once_answer_the_same_and_bad_ones_fail_every_time() -> None:
    # Each distinct rtpmap text is parsed once per process (sdp._RTPMAPS): later SDPs with
    # the same mapping read equal values; a bad one still fails at its own line each time.
    from vosapp.sip import sdp as sdp_module

    good = MINIMAL.replace("RTP/AVP 0", "RTP/AVP 96") + "a=rtpmap:96 opus/48000/2\r\n"
    first = SessionDescription.parse(good).media[0]
    again = SessionDescription.parse("v=0\r\no=- 2 2 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\n"
                                     "m=audio 7000 RTP/AVP 96\r\ni=x\r\n"
                                     "a=rtpmap:96 opus/48000/2\r\n").media[0]
    assert first.rtpmaps == again.rtpmaps == {96: sdp_module.RtpMap(96, "opus", 48000, 2)}
    assert first.codecs() == again.codecs() == [Codec("opus", 48000, 2, 96)]
    for extra_lines in ("", "i=x\r\n"):
        bad = MINIMAL + extra_lines + "a=rtpmap:96 opus\r\n"
        with pytest.raises(SdpError) as caught:
            SessionDescription.parse(bad)
        assert caught.value.line == bad.count("\r\n")
        assert "96 opus" not in sdp_module._RTPMAPS
    assert len(sdp_module._RTPMAPS) <= 1024
