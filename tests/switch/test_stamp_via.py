"""The top Via stamp (RFC 3261 §18.2.1 received, RFC 3581 §4 rport) written onto the text as
sent (issue #14): for a Via that reads as ``str(Via)`` writes it, the stamp is appended to the
text; every other Via is re-formatted from its parse. Either way the request carries exactly
what re-formatting the stamped object gives, and the returned Via is that object."""

from __future__ import annotations

import pytest

from vosapp.sip import Request, Via, parse, parse_vias
from vosapp.switch.core import _stamp_via

TEMPLATE = (
    "REGISTER sip:example.com SIP/2.0\r\n"
    "{via_name}: {via}\r\n"
    "Via: SIP/2.0/UDP 198.51.100.9:5070;branch=z9hG4bKlower;received=10.0.0.9\r\n"
    "Max-Forwards: 70\r\n"
    "From: <sip:alice@example.com>;tag=1\r\n"
    "To: <sip:alice@example.com>\r\n"
    "Call-ID: stamp-test@host\r\n"
    "CSeq: 1 REGISTER\r\n"
    "Content-Length: 0\r\n\r\n"
)

VIAS = [
    # the usual phone / SIPp shapes: the raw path
    "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKabc;rport",
    "SIP/2.0/UDP 192.0.2.1:5060;rport;branch=z9hG4bKabc",
    "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKabc",
    "SIP/2.0/TCP phone.example.com:5061;branch=z9hG4bKabc;rport;alias",
    "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKabc;rport=5062",
    "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKabc;maddr=[2001:db8::1];rport",
    "SIP/2.0/UDP 192.0.2.1:0;branch=z9hG4bKabc;rport",
    "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKrport;rportx;rport",
    "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKabc;rportx",
    # not as str(Via) writes them: re-formatted from the parse, as before
    "SIP/2.0/udp 192.0.2.1:5060;branch=z9hG4bKabc;rport",
    "SIP/2.0/UDP  192.0.2.1:5060;branch=z9hG4bKabc;rport",
    "SIP/2.0/UDP 192.0.2.1:5060 ;branch=z9hG4bKabc;rport",
    "SIP/2.0/UDP 192.0.2.1:5060;Branch=z9hG4bKabc;RPort",
    "SIP/2.0/UDP 192.0.2.1:05060;branch=z9hG4bKabc;rport",
    "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKabc;rport;branch=z9hG4bKdup",
    "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKabc;rport;rport",
    "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKabc;received=192.0.2.99;rport",
    "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKabc;x=\"quoted\";rport",
    "SIP/2.0/UDP [2001:db8::5]:5060;branch=z9hG4bKabc;rport",
    "SIP / 2.0 / UDP 192.0.2.1:5060;branch=z9hG4bKabc;rport",
    "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKabc;rport, SIP/2.0/UDP 192.0.2.7;branch=z9hG4bKb",
]

SOURCES = [("192.0.2.1", 5060), ("192.0.2.1", 40000), ("203.0.113.7", 5060),
           ("203.0.113.7", 61000), ("2001:db8::5", 5060), ("2001:db8::9", 1234)]


def reference_stamp(request: Request, source: tuple[str, int]) -> str | None:
    """The stamped first Via line as the object path writes it (None: no change)."""
    first = request.headers.get("Via") or ""
    vias = parse_vias(first)
    top = vias[0]
    changed = False
    if top.host != source[0]:
        top.params["received"] = source[0]
        changed = True
    if "rport" in top.params and top.params["rport"] is None:
        top.params["received"] = source[0]
        top.params["rport"] = str(source[1])
        changed = True
    if not changed:
        return None
    return ", ".join(str(via) for via in vias)


@pytest.mark.parametrize("via_name", ["Via", "v"])
@pytest.mark.parametrize("via", VIAS)
@pytest.mark.parametrize("source", SOURCES)
def test_stamped_via_is_what_the_object_path_writes(via: str, source: tuple[str, int],
                                                    via_name: str) -> None:
    data = TEMPLATE.format(via=via, via_name=via_name).encode()
    request = parse(data)
    assert isinstance(request, Request)
    expected_line = reference_stamp(parse(data), source)  # type: ignore[arg-type]
    before = bytes(request)

    top = _stamp_via(request, source, request.top_via)

    lines = request.headers.get_all("Via")
    if expected_line is None:
        assert bytes(request) == before  # nothing to stamp: the bytes as received
    else:
        assert lines[0] == expected_line
        # the serialized line: the name as written, the stamped value
        assert f"\r\n{via_name}: {expected_line}\r\n".encode() in bytes(request)
    # the returned Via is the stamped one, and the accessors read the new line
    if expected_line is not None:
        assert str(top) == expected_line.split(", ")[0]
    assert request.top_via == top
    assert request.headers.get("v") == lines[0]
    # the second Via line keeps its bytes
    assert lines[1] == "SIP/2.0/UDP 198.51.100.9:5070;branch=z9hG4bKlower;received=10.0.0.9"
    assert (b"\r\nVia: SIP/2.0/UDP 198.51.100.9:5070;branch=z9hG4bKlower;received=10.0.0.9\r\n"
            in bytes(request))
    # and the stamped message parses back to the same values
    again = parse(bytes(request))
    assert again.vias == request.vias


@pytest.mark.parametrize("via", VIAS[:9])
def test_the_usual_via_is_stamped_without_formatting_it(via: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    request = parse(TEMPLATE.format(via=via, via_name="Via").encode())
    assert isinstance(request, Request)
    top = request.top_via
    formatted: list[str] = []
    original = Via.__str__
    monkeypatch.setattr(Via, "__str__", lambda self: formatted.append("x") or original(self))
    _stamp_via(request, ("203.0.113.7", 61000), top)
    assert formatted == []


@pytest.mark.parametrize("via", VIAS)
def test_a_via_read_by_its_shape_is_stamped_as_its_parse(via: str) -> None:
    """A client's next request: its top Via differs only in the branch, so the header memo
    reads it from the first one's shape, and whether its text can be stamped as sent comes
    from that shape too. The stamp must be what the object path writes, every time."""
    for branch in ("z9hG4bKshape1", "z9hG4bKshape2", "z9hG4bKshape3"):
        data = TEMPLATE.format(via=via.replace("z9hG4bKabc", branch), via_name="Via").encode()
        request = parse(data)
        assert isinstance(request, Request)
        expected_line = reference_stamp(parse(data), ("203.0.113.7", 61000))  # type: ignore[arg-type]
        _stamp_via(request, ("203.0.113.7", 61000), request.top_via)
        assert request.headers.get("Via") == expected_line
