"""SDP (RFC 8866) parsing/serialization and the RFC 3264 offer/answer rules vosapp needs.

Sans-IO and independent of the SIP message module: text or bytes in, objects out.

* :meth:`SessionDescription.parse` keeps every line it does not interpret (``i=``, ``b=``,
  ``t=``, ``r=``, unknown ``a=`` ...) in order, so ``str(parse(x)) == x`` for a well-formed
  description written in RFC 8866 §5 order with CRLF line ends. Lines in another order are
  re-emitted in RFC order.
* Codecs: :class:`Codec` and the static payload types of RFC 3551 §6 (0 PCMU, 4 G723, 8 PCMA,
  9 G722 — whose RTP clock is 8000 Hz although it samples at 16 kHz, RFC 3551 §4.5.2 —, 18 G729).
* Offer/answer: :func:`build_offer` and :func:`answer` (first common codec in the offerer's
  order, telephone-event kept when both sides support it, unsupported streams rejected with
  port 0). :class:`NoCommonCodec` is what the call layer turns into 488 (docs/behaviour.md §5).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from copy import deepcopy
from dataclasses import dataclass, field, replace
from typing import Final

from vosapp.sip.headers import HeaderMemo

__all__ = [
    "G722",
    "G723",
    "G729",
    "G729_MODES",
    "PCMA",
    "PCMU",
    "STATIC_PAYLOAD_TYPES",
    "TELEPHONE_EVENT",
    "Answer",
    "Attribute",
    "Codec",
    "Connection",
    "MediaDescription",
    "NoCommonCodec",
    "Origin",
    "RtpMap",
    "SdpError",
    "SessionDescription",
    "answer",
    "build_offer",
    "g729_annexb",
    "g729_offer",
    "read_answer",
]

DIRECTIONS: Final = ("sendrecv", "sendonly", "recvonly", "inactive")
RTP_PROTOS: Final = ("RTP/AVP",)  # what vosapp's media relay speaks (no SRTP, no AVPF feedback)


class SdpError(ValueError):
    """Malformed or unusable SDP; ``reason`` says what and ``line`` where (1-based, or None)."""

    def __init__(self, reason: str, line: int | None = None) -> None:
        super().__init__(reason if line is None else f"line {line}: {reason}")
        self.reason = reason
        self.line = line


class NoCommonCodec(SdpError):
    """The offer has no audio stream the answerer can accept: answer 488 Not Acceptable Here."""


# --------------------------------------------------------------------------------------------
# Codecs


@dataclass(slots=True, unsafe_hash=True)
class Codec:
    """An RTP payload format: ``encoding/clock_rate[/channels]`` plus optional fmtp.

    ``payload_type`` is None for a codec not bound to a number yet (static codecs know theirs).
    Matching (:meth:`matches`) ignores payload type and fmtp, compares the encoding
    case-insensitively (RFC 8866 §6.6).
    """

    encoding: Final[str]
    clock_rate: Final[int]
    channels: Final[int]
    payload_type: Final[int | None]
    fmtp: Final[str | None]

    def __init__(self, encoding: str, clock_rate: int, channels: int = 1,
                 payload_type: int | None = None, fmtp: str | None = None) -> None:
        self.encoding, self.clock_rate, self.channels = encoding, clock_rate, channels
        self.payload_type, self.fmtp = payload_type, fmtp

    def matches(self, other: Codec, *, g729_variants: bool = False) -> bool:
        """Same payload format. With ``g729_variants`` G729, G729a, G729b and G729ab count as
        one (the same bitstream; docs/behaviour.md §5 "Auto" G.729 negotiation answers the peer's
        variant)."""
        if g729_variants:
            same_name = self.family == other.family
        else:
            same_name = self.encoding.lower() == other.encoding.lower()
        return (
            same_name and self.clock_rate == other.clock_rate and self.channels == other.channels
        )

    @property
    def family(self) -> str:
        """Lower-case encoding name with G.729 variants folded to ``"g729"``."""
        name = self.encoding.lower()
        return "g729" if name in _G729_VARIANTS else name

    @property
    def rtpmap_value(self) -> str:
        suffix = f"/{self.channels}" if self.channels != 1 else ""
        return f"{self.encoding}/{self.clock_rate}{suffix}"

    def __str__(self) -> str:
        return self.rtpmap_value


_G729_VARIANTS: Final = frozenset({"g729", "g729a", "g729b", "g729ab"})

PCMU: Final = Codec("PCMU", 8000, 1, 0)
G723: Final = Codec("G723", 8000, 1, 4)
PCMA: Final = Codec("PCMA", 8000, 1, 8)
G722: Final = Codec("G722", 8000, 1, 9)  # RFC 3551 §4.5.2: 8000 Hz RTP clock for 16 kHz audio
G729: Final = Codec("G729", 8000, 1, 18)
TELEPHONE_EVENT: Final = Codec("telephone-event", 8000, 1, 101, "0-16")  # RFC 4733

# RFC 3551 §6 table 4 (audio), the ones a softswitch meets in practice.
STATIC_PAYLOAD_TYPES: Final[dict[int, Codec]] = {
    0: PCMU,
    3: Codec("GSM", 8000, 1, 3),
    4: G723,
    8: PCMA,
    9: G722,
    13: Codec("CN", 8000, 1, 13),
    18: G729,
}


def g729_annexb(fmtp: str | None) -> bool:
    """Whether G.729 Annex B (VAD/CNG) is in use; RFC 4856 §2.1.9: absent means ``annexb=yes``."""
    for name, value in _fmtp_params(fmtp):
        if name.lower() == "annexb":
            return value.strip().lower() != "no"
    return True


#: docs/behaviour.md §5 G.729 negotiation modes (``GatewaySettings.g729_mode``).
G729_MODES: Final = ("Auto", "G729", "G729a", "G729&G729a")


def g729_offer(mode: str, peer: Sequence[Codec] = (), *, dynamic_pt: int = 96) -> list[Codec]:
    """The G.729 entries vosapp offers in ``mode`` (docs/behaviour.md §5); ``peer`` are the G.729
    entries of the offer being forwarded (empty when there is none, e.g. transcoding).

    * ``Auto``: the peer's entries unchanged (name, payload type, fmtp); none → ``18 G729/8000``.
    * ``G729``: ``18 G729/8000`` with ``annexb=no`` (never Annex B).
    * ``G729a``: ``18 G729/8000`` — the usual wire form of G.729A (same bitstream as G.729);
      the name ``G729a`` is accepted on receipt but not sent in this mode.
    * ``G729&G729a``: both names, ``18 G729/8000`` and ``<dynamic_pt> G729a/8000``.

    Annex B in G729a and G729&G729a follows the peer: ``annexb=yes`` when the peer's G.729 asked
    for it (an absent annexb means yes, RFC 4856), else (or without a peer) ``annexb=no``.
    """
    if mode not in G729_MODES:
        raise SdpError(f"G.729 mode must be one of {G729_MODES}, not {mode!r}")
    peer = [c for c in peer if c.family == "g729"]
    if mode == "Auto":
        return list(peer) or [G729]
    annexb = mode != "G729" and any(g729_annexb(c.fmtp) for c in peer)
    fmtp = "annexb=yes" if annexb else "annexb=no"
    codecs = [replace(G729, fmtp=fmtp)]
    if mode == "G729&G729a":
        codecs.append(Codec("G729a", 8000, 1, dynamic_pt, fmtp))
    return codecs


def _with_annexb_no(fmtp: str | None) -> str:
    """``fmtp`` with ``annexb=no`` (other parameters kept)."""
    kept = [f"{n}={v}" if v else n for n, v in _fmtp_params(fmtp) if n.lower() != "annexb"]
    return ";".join([*kept, "annexb=no"])


def _fmtp_params(fmtp: str | None) -> list[tuple[str, str]]:
    if not fmtp:
        return []
    pairs = []
    for item in fmtp.split(";"):
        name, _, value = item.strip().partition("=")
        if name:
            pairs.append((name.strip(), value.strip()))
    return pairs


# --------------------------------------------------------------------------------------------
# Model


@dataclass
class Origin:
    """``o=<username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address>``."""

    username: str
    session_id: str
    session_version: int
    nettype: str = "IN"
    addrtype: str = "IP4"
    address: str = "0.0.0.0"

    def __init__(self, username: str, session_id: str, session_version: int, nettype: str = "IN",
                 addrtype: str = "IP4", address: str = "0.0.0.0") -> None:
        self.username, self.session_id, self.session_version = (
            username, session_id, session_version)
        self.nettype, self.addrtype, self.address = nettype, addrtype, address

    def __str__(self) -> str:
        return (
            f"{self.username} {self.session_id} {self.session_version} "
            f"{self.nettype} {self.addrtype} {self.address}"
        )


@dataclass
class Connection:
    """``c=<nettype> <addrtype> <connection-address>`` (``address`` keeps any /ttl suffix)."""

    address: str
    nettype: str = "IN"
    addrtype: str = "IP4"

    def __init__(self, address: str, nettype: str = "IN", addrtype: str = "IP4") -> None:
        self.address, self.nettype, self.addrtype = address, nettype, addrtype

    def __str__(self) -> str:
        return f"{self.nettype} {self.addrtype} {self.address}"


@dataclass
class Attribute:
    """``a=<name>[:<value>]``; ``value`` is None for a property attribute like ``sendrecv``."""

    name: str
    value: str | None = None

    def __init__(self, name: str, value: str | None = None) -> None:
        self.name, self.value = name, value

    def __str__(self) -> str:
        return self.name if self.value is None else f"{self.name}:{self.value}"


@dataclass(slots=True, unsafe_hash=True)
class RtpMap:
    """``a=rtpmap:<payload type> <encoding name>/<clock rate>[/<channels>]``."""

    payload_type: Final[int]
    encoding: Final[str]
    clock_rate: Final[int]
    channels: Final[int]

    def __init__(self, payload_type: int, encoding: str, clock_rate: int,
                 channels: int = 1) -> None:
        self.payload_type, self.encoding = payload_type, encoding
        self.clock_rate, self.channels = clock_rate, channels


# RFC 8866 §5 field order; lines vosapp does not interpret keep their relative order.
_SESSION_RANK: Final = {"i": 1, "u": 1, "e": 1, "p": 1, "c": 2, "b": 3, "t": 4, "r": 4, "z": 5, "k": 6}
_MEDIA_RANK: Final = {"i": 1, "c": 2, "b": 3, "k": 4}


@dataclass
class MediaDescription:
    """One ``m=`` section. ``formats`` are strings (RTP payload type numbers for RTP/AVP)."""

    media: str
    port: int
    proto: str
    formats: list[str]
    port_count: int | None = None
    connection: Connection | None = None
    attributes: list[Attribute] = field(default_factory=list)
    other_lines: list[tuple[str, str]] = field(default_factory=list)  # i=, b=, k= in order

    def __init__(self, media: str, port: int, proto: str, formats: list[str],
                 port_count: int | None = None, connection: Connection | None = None,
                 attributes: list[Attribute] | None = None,
                 other_lines: list[tuple[str, str]] | None = None) -> None:
        self.media, self.port, self.proto, self.formats = media, port, proto, formats
        self.port_count, self.connection = port_count, connection
        self.attributes = [] if attributes is None else attributes
        self.other_lines = [] if other_lines is None else other_lines

    def __deepcopy__(self, memo: dict[int, object]) -> MediaDescription:
        # Field by field: a compiled (mypyc) class has no argument-free constructor for
        # copy's default; every field below a list is a str, an int or a tuple of them.
        return MediaDescription(
            self.media, self.port, self.proto, list(self.formats), self.port_count,
            None if self.connection is None else replace(self.connection),
            [replace(attribute) for attribute in self.attributes], list(self.other_lines))

    # -- attribute helpers ------------------------------------------------------------------

    def attribute_values(self, name: str) -> list[str | None]:
        key = name.lower()
        return [a.value for a in self.attributes if a.name.lower() == key]

    def first_attribute(self, name: str) -> str | None:
        values = self.attribute_values(name)
        return values[0] if values else None

    @property
    def rtpmaps(self) -> dict[int, RtpMap]:
        return self._maps()[0]

    def rtpmap(self, payload_type: int) -> RtpMap | None:
        return self.rtpmaps.get(payload_type)

    def fmtp(self, payload_type: int) -> str | None:
        """The fmtp parameters of ``payload_type`` (text after ``a=fmtp:<pt> ``), or None."""
        return self._fmtps().get(str(payload_type))

    def _fmtps(self) -> dict[str, str]:
        return self._maps()[1]

    def _maps(self) -> tuple[dict[int, RtpMap], dict[str, str]]:
        """The rtpmaps (payload type -> RtpMap) and the fmtps (payload type as written -> its
        parameters), in one pass over the attributes; the first line of a type counts."""
        maps: dict[int, RtpMap] = {}
        fmtps: dict[str, str] = {}
        for attribute in self.attributes:
            name = attribute.name.lower()
            if name == "rtpmap":
                mapping = _rtpmap(attribute.value or "", None)
                maps.setdefault(mapping.payload_type, mapping)
            elif name == "fmtp":
                fmtp_pt, _, params = (attribute.value or "").partition(" ")
                fmtps.setdefault(fmtp_pt, params.strip())
        return maps, fmtps

    @property
    def ptime(self) -> int | None:
        return _parse_ms(self.first_attribute("ptime"), "ptime", None)

    @property
    def maxptime(self) -> int | None:
        return _parse_ms(self.first_attribute("maxptime"), "maxptime", None)

    @property
    def direction(self) -> str | None:
        """The media-level direction attribute, or None when absent (see
        :meth:`SessionDescription.direction_of`)."""
        for attribute in self.attributes:
            if attribute.name in DIRECTIONS and attribute.value is None:
                return attribute.name
        return None

    def set_direction(self, direction: str) -> None:
        if direction not in DIRECTIONS:
            raise SdpError(f"direction must be one of {DIRECTIONS}, not {direction!r}")
        self.attributes = [
            a for a in self.attributes if not (a.name in DIRECTIONS and a.value is None)
        ]
        self.attributes.append(Attribute(direction))

    def codecs(self) -> list[Codec]:
        """The formats as codecs in offer order (static types filled in from RFC 3551).

        Dynamic payload types without an rtpmap are skipped (nothing can be known about them).
        """
        # both maps in one pass (the call path asks for the codecs of every offer and answer)
        maps, fmtps = self._maps()
        result = []
        for fmt in self.formats:
            if not fmt.isdigit():
                continue
            pt = int(fmt)
            fmtp = fmtps.get(str(pt))
            known = maps.get(pt)
            if known is not None:
                result.append(Codec(known.encoding, known.clock_rate, known.channels, pt,
                                    fmtp))
            elif pt in STATIC_PAYLOAD_TYPES:
                static = STATIC_PAYLOAD_TYPES[pt]
                result.append(Codec(static.encoding, static.clock_rate, static.channels,
                                    static.payload_type, fmtp))
        return result

    @property
    def telephone_event_pt(self) -> int | None:
        """The payload type of ``telephone-event/8000`` (RFC 4733), when offered."""
        return _telephone_event_pt(self.codecs())

    @property
    def rejected(self) -> bool:
        return self.port == 0

    # -- serialization ----------------------------------------------------------------------

    def lines(self) -> list[str]:
        port = f"{self.port}/{self.port_count}" if self.port_count is not None else str(self.port)
        out = [f"m={self.media} {port} {self.proto} {' '.join(self.formats)}"]
        ranked: list[tuple[int, str]] = [(_MEDIA_RANK[k], f"{k}={v}") for k, v in self.other_lines]
        if self.connection is not None:
            ranked.append((2, f"c={self.connection}"))
        ranked.sort(key=lambda item: item[0])  # stable: keeps order within a rank
        out.extend(line for _rank, line in ranked)
        out.extend(f"a={a}" for a in self.attributes)
        return out


def _telephone_event_pt(codecs: list[Codec]) -> int | None:
    for codec in codecs:
        if codec.encoding.lower() == "telephone-event" and codec.clock_rate == 8000:
            return codec.payload_type
    return None


@dataclass
class SessionDescription:
    """A whole SDP body. ``str()`` serializes with CRLF line ends, ``bytes()`` as UTF-8."""

    origin: Origin
    session_name: str = "-"
    connection: Connection | None = None
    attributes: list[Attribute] = field(default_factory=list)
    media: list[MediaDescription] = field(default_factory=list)
    other_lines: list[tuple[str, str]] = field(default_factory=list)  # i u e p b t r z k
    version: int = 0

    def __init__(self, origin: Origin, session_name: str = "-",
                 connection: Connection | None = None, attributes: list[Attribute] | None = None,
                 media: list[MediaDescription] | None = None,
                 other_lines: list[tuple[str, str]] | None = None, version: int = 0) -> None:
        self.origin, self.session_name, self.connection = origin, session_name, connection
        self.attributes = [] if attributes is None else attributes
        self.media = [] if media is None else media
        self.other_lines = [] if other_lines is None else other_lines
        self.version = version

    def __deepcopy__(self, memo: dict[int, object]) -> SessionDescription:
        # As MediaDescription's: a compiled class has no argument-free constructor.
        return SessionDescription(
            replace(self.origin), self.session_name,
            None if self.connection is None else replace(self.connection),
            [replace(attribute) for attribute in self.attributes],
            [media.__deepcopy__(memo) for media in self.media], list(self.other_lines),
            self.version)

    @classmethod
    def parse(cls, data: object) -> SessionDescription:
        """Parse SDP text (str or bytes); raise :class:`SdpError` naming the line and the
        problem, or that ``data`` is neither."""
        # ``object``: a compiled (mypyc) signature of str | bytes would raise a bare TypeError
        # before the SdpError this gives
        return _parse(data)

    def __str__(self) -> str:
        out = [f"v={self.version}", f"o={self.origin}", f"s={self.session_name}"]
        ranked: list[tuple[int, str]] = [
            (_SESSION_RANK[k], f"{k}={v}") for k, v in self.other_lines
        ]
        if self.connection is not None:
            ranked.append((2, f"c={self.connection}"))
        ranked.sort(key=lambda item: item[0])
        out.extend(line for _rank, line in ranked)
        out.extend(f"a={a}" for a in self.attributes)
        for media in self.media:
            out.extend(media.lines())
        return "\r\n".join(out) + "\r\n"

    def __bytes__(self) -> bytes:
        return str(self).encode("utf-8")

    def connection_of(self, media: MediaDescription) -> Connection | None:
        """The connection for ``media``: its own ``c=`` or the session-level one."""
        return media.connection or self.connection

    def direction_of(self, media: MediaDescription) -> str:
        """Media-level direction, else session-level, else sendrecv (RFC 8866 §6.7)."""
        if media.direction is not None:
            return media.direction
        for attribute in self.attributes:
            if attribute.name in DIRECTIONS and attribute.value is None:
                return attribute.name
        return "sendrecv"

    def next_version(self) -> SessionDescription:
        """A copy with ``o=`` session version + 1, as a changed re-offer needs (RFC 3264 §8)."""
        copy = deepcopy(self)
        copy.origin.session_version += 1
        return copy

    def first_audio(self) -> MediaDescription | None:
        return next((m for m in self.media if m.media == "audio"), None)


# --------------------------------------------------------------------------------------------
# Parsing


def _parse_int(text: str, what: str, line: int | None, lo: int = 0, hi: int | None = None) -> int:
    if not text.isdigit() or not text.isascii():
        raise SdpError(f"{what} {text!r} is not a number", line)
    value = int(text)
    if value < lo or (hi is not None and value > hi):
        bound = f"{lo}..{hi}" if hi is not None else f">= {lo}"
        raise SdpError(f"{what} {value} out of range ({bound})", line)
    return value


def _parse_ms(value: str | None, what: str, line: int | None) -> int | None:
    if value is None:
        return None
    text = value.strip()
    try:
        number = float(text)
    except ValueError:
        raise SdpError(f"{what} {value!r} is not a number of milliseconds", line) from None
    if not 0 < number <= 10_000:
        raise SdpError(f"{what} {value!r} out of range (0..10000 ms)", line)
    return max(1, round(number))


# rtpmap value -> its RtpMap (frozen: shared). The same few mappings ("8 PCMA/8000",
# "101 telephone-event/8000") come in nearly every offer and answer, and the call path reads
# them at parse time and again for codecs(): each distinct text is parsed once (the bounded
# memo of the SIP headers; a value that fails to parse raises every time, never remembered).
_RTPMAPS: Final = HeaderMemo(lambda value: _parse_rtpmap(value, None), longest=128)


def _rtpmap(value: str, line: int | None) -> RtpMap:
    try:
        return _RTPMAPS(value)
    except SdpError as exc:
        raise SdpError(exc.reason, line) from None  # the same error, naming the line


def _parse_rtpmap(value: str, line: int | None) -> RtpMap:
    pt_text, _, rest = value.strip().partition(" ")
    pt = _parse_int(pt_text, "rtpmap payload type", line, 0, 127)
    parts = rest.strip().split("/")
    if len(parts) not in (2, 3) or not parts[0]:
        raise SdpError(f"rtpmap {value!r} is not <pt> <encoding>/<clock>[/<channels>]", line)
    clock = _parse_int(parts[1], "rtpmap clock rate", line, 1)
    channels = _parse_int(parts[2], "rtpmap channels", line, 1) if len(parts) == 3 else 1
    return RtpMap(pt, parts[0], clock, channels)


def _parse_connection(value: str, line: int) -> Connection:
    parts = value.split()
    if len(parts) != 3:
        raise SdpError(f"c= needs <nettype> <addrtype> <address>, got {value!r}", line)
    return Connection(parts[2], parts[0], parts[1])


def _parse_origin(value: str, line: int) -> Origin:
    parts = value.split()
    if len(parts) != 6:
        raise SdpError(f"o= needs 6 fields, got {len(parts)}: {value!r}", line)
    version = _parse_int(parts[2], "o= session version", line)
    return Origin(parts[0], parts[1], version, parts[3], parts[4], parts[5])


def _parse_media(value: str, line: int) -> MediaDescription:
    parts = value.split()
    if len(parts) < 4:
        raise SdpError(f"m= needs <media> <port> <proto> <fmt>..., got {value!r}", line)
    port_text, slash, count_text = parts[1].partition("/")
    port = _parse_int(port_text, "m= port", line, 0, 65535)
    port_count = _parse_int(count_text, "m= port count", line, 1) if slash else None
    return MediaDescription(parts[0], port, parts[2], parts[3:], port_count)


def _check_attribute(attribute: Attribute, line: int) -> None:
    """Validate the attributes vosapp interprets, so accessors never fail later."""
    name, value = attribute.name.lower(), attribute.value
    if name == "rtpmap":
        _rtpmap(value or "", line)
    elif name == "fmtp":
        pt_text = (value or "").strip().partition(" ")[0]
        if not pt_text:
            raise SdpError("fmtp without a format", line)
    elif name in ("ptime", "maxptime"):
        _parse_ms(value or "", name, line)


def _parse(data: object) -> SessionDescription:
    if isinstance(data, bytes | bytearray):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SdpError(f"not UTF-8 (byte {exc.start})") from None
    elif isinstance(data, str):
        text = data
    else:
        raise SdpError(f"SDP must be str or bytes, not {type(data).__name__}")
    raw_lines = text.split("\n")
    session: SessionDescription | None = None
    version: int | None = None
    origin: Origin | None = None
    session_name: str | None = None
    current: MediaDescription | None = None
    pending: list[tuple[int, str, str]] = []  # session lines seen before o= and s= both exist
    for number, raw in enumerate(raw_lines, start=1):
        line = raw.removesuffix("\r")
        if not line.strip():
            continue  # blank lines (and the final CRLF) are tolerated
        if len(line) < 2 or line[1] != "=" or not ("a" <= line[0] <= "z"):
            raise SdpError(f"not a <type>=<value> line: {line[:40]!r}", number)
        if "\r" in line or "\x00" in line:
            raise SdpError("stray CR or NUL inside a line", number)
        key, value = line[0], line[2:]
        if version is None:
            if key != "v":
                raise SdpError("the first line must be v=", number)
            version = _parse_int(value.strip(), "v=", number)
            if version != 0:
                raise SdpError(f"unsupported SDP version {version}", number)
            continue
        if key == "v":
            raise SdpError("repeated v= line", number)
        if key == "m":
            if session is None:
                raise SdpError("m= before the o= and s= lines", number)
            current = _parse_media(value, number)
            session.media.append(current)
            continue
        if key == "o" and current is None:
            if origin is not None:
                raise SdpError("repeated o= line", number)
            origin = _parse_origin(value, number)
        elif key == "s" and current is None:
            if session_name is not None:
                raise SdpError("repeated s= line", number)
            session_name = value
        elif key == "c":
            connection = _parse_connection(value, number)
            target = current if current is not None else session
            if target is None:
                pending.append((number, key, value))
            elif target.connection is not None:
                raise SdpError("repeated c= line", number)
            else:
                target.connection = connection
        elif key == "a":
            name, colon, attr_value = value.partition(":")
            if not name:
                raise SdpError("a= without an attribute name", number)
            attribute = Attribute(name, attr_value if colon else None)
            if current is not None:
                _check_attribute(attribute, number)  # media-level ones the accessors read
                current.attributes.append(attribute)
            elif session is not None:
                session.attributes.append(attribute)
            else:
                pending.append((number, key, value))
        elif current is not None:
            if key not in _MEDIA_RANK:
                raise SdpError(f"{key}= is not allowed in a media section", number)
            current.other_lines.append((key, value))
        else:
            if key not in _SESSION_RANK:
                raise SdpError(f"unknown session-level line {key}=", number)
            if session is None:
                pending.append((number, key, value))
            else:
                session.other_lines.append((key, value))
        if session is None and origin is not None and session_name is not None:
            session = SessionDescription(origin=origin, session_name=session_name)
            for p_number, p_key, p_value in pending:
                if p_key == "c":
                    if session.connection is not None:
                        raise SdpError("repeated c= line", p_number)
                    session.connection = _parse_connection(p_value, p_number)
                elif p_key == "a":
                    name, colon, attr_value = p_value.partition(":")
                    session.attributes.append(Attribute(name, attr_value if colon else None))
                else:
                    session.other_lines.append((p_key, p_value))
            pending = []
    if version is None:
        raise SdpError("empty SDP (no v= line)")
    if origin is None:
        raise SdpError("missing o= line")
    if session_name is None:
        raise SdpError("missing s= line")
    assert session is not None
    return session


# --------------------------------------------------------------------------------------------
# Offer / answer (RFC 3264)


def _addrtype(address: str) -> str:
    return "IP6" if ":" in address else "IP4"


def _new_session_id() -> str:
    # RFC 8866 §5.2 suggests an NTP timestamp; any unique number works and needs no clock.
    return str(secrets.randbelow(2**62) + 1)


def _media_attributes(
    codecs: Sequence[Codec],
    telephone_event: Codec | None,
    ptime: int | None,
    direction: str,
) -> tuple[list[str], list[Attribute]]:
    formats: list[str] = []
    attributes: list[Attribute] = []
    for codec in [*codecs, *([telephone_event] if telephone_event else [])]:
        if codec.payload_type is None:
            raise SdpError(f"codec {codec} has no payload type")
        formats.append(str(codec.payload_type))
        attributes.append(Attribute("rtpmap", f"{codec.payload_type} {codec.rtpmap_value}"))
        if codec.fmtp:
            attributes.append(Attribute("fmtp", f"{codec.payload_type} {codec.fmtp}"))
    if ptime is not None:
        attributes.append(Attribute("ptime", str(ptime)))
    if direction not in DIRECTIONS:
        raise SdpError(f"direction must be one of {DIRECTIONS}, not {direction!r}")
    attributes.append(Attribute(direction))
    return formats, attributes


def build_offer(
    address: str,
    port: int,
    codecs: Sequence[Codec],
    *,
    telephone_event_pt: int | None = 101,
    ptime: int | None = 20,
    direction: str = "sendrecv",
    session_id: str | None = None,
    session_version: int = 1,
    username: str = "vosapp",
    session_name: str = "vosapp",
) -> SessionDescription:
    """An audio offer listing ``codecs`` in preference order (each needs a payload type),
    plus ``telephone-event`` on ``telephone_event_pt`` unless it is None."""
    if not codecs:
        raise SdpError("an offer needs at least one codec")
    if not 0 < port <= 65535:
        raise SdpError(f"RTP port {port} out of range 1..65535")
    event = (
        replace(TELEPHONE_EVENT, payload_type=telephone_event_pt)
        if telephone_event_pt is not None
        else None
    )
    formats, attributes = _media_attributes(codecs, event, ptime, direction)
    addrtype = _addrtype(address)
    return SessionDescription(
        origin=Origin(
            username, session_id or _new_session_id(), session_version, "IN", addrtype, address
        ),
        session_name=session_name,
        connection=Connection(address, "IN", addrtype),
        other_lines=[("t", "0 0")],
        media=[MediaDescription("audio", port, "RTP/AVP", formats, attributes=attributes)],
    )


_ANSWER_DIRECTION: Final = {
    "sendrecv": "sendrecv",
    "sendonly": "recvonly",
    "recvonly": "sendonly",
    "inactive": "inactive",
}


@dataclass(slots=True, unsafe_hash=True)
class Answer:
    """The answer SDP plus what the call/media layers need from the negotiation."""

    sdp: Final[SessionDescription]
    codec: Final[Codec]  # the chosen codec with the offerer's payload type and fmtp
    telephone_event_pt: Final[int | None]
    remote_address: Final[str | None]  # where to send RTP (the offer's connection address)
    remote_port: Final[int]
    ptime: Final[int | None]  # offerer's packetization time, when given
    direction: Final[str]  # the answer's direction for the accepted stream

    def __init__(self, sdp: SessionDescription, codec: Codec, telephone_event_pt: int | None,
                 remote_address: str | None, remote_port: int, ptime: int | None,
                 direction: str) -> None:
        self.sdp, self.codec, self.telephone_event_pt = sdp, codec, telephone_event_pt
        self.remote_address, self.remote_port = remote_address, remote_port
        self.ptime, self.direction = ptime, direction


def answer(
    offer: SessionDescription | str | bytes,
    supported_codecs: Iterable[Codec],
    *,
    address: str,
    port: int,
    telephone_event: bool = True,
    g729_variants: bool = True,
    g729_annexb: bool = True,
    g729_mode: str | None = None,
    ptime: int | None = None,
    session_id: str | None = None,
    session_version: int = 1,
    username: str = "vosapp",
    session_name: str = "vosapp",
) -> Answer:
    """Answer ``offer`` (RFC 3264 §6) accepting the first audio stream we can handle.

    The chosen codec is the first one *in the offerer's order* that matches one of
    ``supported_codecs`` (encoding/clock/channels), answered with the offerer's payload type
    and fmtp (RFC 3264 §6.1). ``telephone-event/8000`` is kept when offered and
    ``telephone_event`` is true. Every other stream (video, other protocols, further audio
    streams) is rejected with port 0. Raises :class:`NoCommonCodec` when nothing is accepted.

    ``g729_variants``: G729/G729a/G729b/G729ab match each other (docs/behaviour.md §5 G.729 "Auto").
    ``g729_annexb=False`` answers a chosen G.729 with ``annexb=no`` (no VAD/CNG, RFC 4856
    §2.1.9); with True the offer's annexb is echoed (an answer cannot turn on what the offer
    turned off).

    ``g729_mode`` (docs/behaviour.md §5, one of :data:`G729_MODES`) overrides ``g729_annexb``:
    ``G729`` answers ``annexb=no``, the other modes echo the offer's annexb. Among several offered
    G.729 variants ``G729`` prefers one named ``G729``, ``G729a`` one named ``G729a``; Auto and
    ``G729&G729a`` take the offerer's first (the variant the peer offered).
    """
    if not isinstance(offer, SessionDescription):
        offer = SessionDescription.parse(offer)
    if g729_mode is not None:
        if g729_mode not in G729_MODES:
            raise SdpError(f"G.729 mode must be one of {G729_MODES}, not {g729_mode!r}")
        g729_annexb = g729_mode != "G729"
    supported = list(supported_codecs)
    if not 0 < port <= 65535:
        raise SdpError(f"RTP port {port} out of range 1..65535")
    chosen: tuple[int, Codec, int | None, str] | None = None
    reasons: list[str] = []
    answered_media: list[MediaDescription] = []
    for index, media in enumerate(offer.media):
        if chosen is None and media.media == "audio" and media.proto in RTP_PROTOS and media.port:
            offered = media.codecs()
            codec = next(
                (c for c in offered if c.encoding.lower() != "telephone-event"
                 and any(c.matches(s, g729_variants=g729_variants) for s in supported)),
                None,
            )
            if codec is not None and codec.family == "g729" and g729_mode in ("G729", "G729a"):
                codec = next(
                    (c for c in offered if c.encoding.lower() == g729_mode.lower()
                     and any(c.matches(s, g729_variants=g729_variants) for s in supported)),
                    codec,
                )
            if codec is not None:
                if codec.family == "g729" and not g729_annexb:
                    codec = replace(codec, fmtp=_with_annexb_no(codec.fmtp))
                event_pt = media.telephone_event_pt if telephone_event else None
                direction = _ANSWER_DIRECTION[offer.direction_of(media)]
                chosen = (index, codec, event_pt, direction)
                event = next(
                    (c for c in offered if c.payload_type == event_pt), None
                ) if event_pt is not None else None
                formats, attributes = _media_attributes([codec], event, ptime, direction)
                answered_media.append(
                    MediaDescription("audio", port, media.proto, formats, attributes=attributes)
                )
                continue
            names = ", ".join(str(c) for c in offered) or "none"
            reasons.append(f"audio stream {index}: no common codec (offered {names})")
        elif media.media != "audio":
            reasons.append(f"stream {index}: {media.media} not supported")
        elif media.proto not in RTP_PROTOS:
            reasons.append(f"stream {index}: protocol {media.proto} not supported")
        # RFC 3264 §6: a rejected stream keeps its m= line with port 0 and the offered formats.
        answered_media.append(MediaDescription(media.media, 0, media.proto, list(media.formats)))
    if chosen is None:
        detail = "; ".join(reasons) or "the offer has no media stream"
        raise NoCommonCodec(f"no acceptable audio stream: {detail}")
    index, codec, event_pt, direction = chosen
    offered_media = offer.media[index]
    connection = offer.connection_of(offered_media)
    addrtype = _addrtype(address)
    sdp = SessionDescription(
        origin=Origin(
            username, session_id or _new_session_id(), session_version, "IN", addrtype, address
        ),
        session_name=session_name,
        connection=Connection(address, "IN", addrtype),
        other_lines=[("t", "0 0")],
        media=answered_media,
    )
    return Answer(
        sdp=sdp,
        codec=codec,
        telephone_event_pt=event_pt,
        remote_address=connection.address if connection is not None else None,
        remote_port=offered_media.port,
        ptime=offered_media.ptime,
        direction=direction,
    )


def read_answer(
    answer_sdp: SessionDescription | str | bytes, offer: SessionDescription | str | bytes
) -> Answer:
    """Offerer side (RFC 3264 §7): what the peer's answer to our ``offer`` agreed.

    The result's ``codec`` is the first codec of the first accepted audio stream that was also
    offered, with the *answer's* payload type (the number the peer expects to receive);
    ``remote_address``/``remote_port`` are where to send RTP. Raises :class:`SdpError` when
    the answer does not mirror the offer's m= lines, :class:`NoCommonCodec` when it accepted
    no audio stream with an offered codec.
    """
    if not isinstance(answer_sdp, SessionDescription):
        answer_sdp = SessionDescription.parse(answer_sdp)
    if not isinstance(offer, SessionDescription):
        offer = SessionDescription.parse(offer)
    if len(answer_sdp.media) != len(offer.media):
        raise SdpError(
            f"the answer has {len(answer_sdp.media)} m= lines, the offer had "
            f"{len(offer.media)} (RFC 3264 §6 requires the same number)"
        )
    for index, (offered, answered) in enumerate(zip(offer.media, answer_sdp.media, strict=True)):
        if offered.media != answered.media:
            raise SdpError(
                f"m= line {index} is {answered.media} in the answer but {offered.media} in "
                "the offer"
            )
        if answered.port == 0 or answered.media != "audio" or answered.proto not in RTP_PROTOS:
            continue
        # each side's codecs read once (the telephone-event check reuses them)
        offered_codecs = offered.codecs()
        answered_codecs = answered.codecs()
        codec = next(
            (c for c in answered_codecs if c.encoding.lower() != "telephone-event"
             and any(c.matches(o, g729_variants=True) for o in offered_codecs)),
            None,
        )
        if codec is None:
            continue
        connection = answer_sdp.connection_of(answered)
        return Answer(
            sdp=answer_sdp,
            codec=codec,
            telephone_event_pt=(
                _telephone_event_pt(answered_codecs)
                if _telephone_event_pt(offered_codecs) is not None else None
            ),
            remote_address=connection.address if connection is not None else None,
            remote_port=answered.port,
            ptime=answered.ptime,
            direction=answer_sdp.direction_of(answered),
        )
    raise NoCommonCodec("the answer accepted no audio stream with a codec from the offer")
