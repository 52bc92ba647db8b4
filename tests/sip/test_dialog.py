"""RFC 3261 §12 dialogs: creation on both sides, in-dialog requests, CSeq order, routing."""

from __future__ import annotations

import pytest

from vosapp.sip import Request, Response, make_response, parse, parse_name_addr, parse_vias
from vosapp.sip.dialog import Dialog, DialogError, DialogState

INVITE = (
    "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    "Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n"
    "Max-Forwards: 70\r\n"
    "To: Bob <sip:bob@biloxi.example.com>\r\n"
    "From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    "Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    "CSeq: 314159 INVITE\r\n"
    "Contact: <sip:alice@pc33.atlanta.example.com>\r\n"
    "Record-Route: <sip:p2.example.com;lr>, <sip:p1.example.com;lr>\r\n"
    "Content-Length: 0\r\n\r\n"
)


def invite() -> Request:
    message = parse(INVITE.encode())
    assert isinstance(message, Request)
    return message


def ok_response(request: Request, status: int = 200) -> Response:
    response = make_response(request, status, to_tag="a6c85cf")
    response.headers.add("Contact", "<sip:bob@192.0.2.4>")
    for value in request.headers.get_all("Record-Route"):
        response.headers.add("Record-Route", value)
    return response


def via():  # type: ignore[no-untyped-def]
    return parse_vias("SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bKnew")[0]


def test_uac_dialog_from_2xx() -> None:
    request = invite()
    dialog = Dialog.from_uac(request, ok_response(request))
    assert dialog.id == ("a84b4c76e66710@pc33.atlanta.example.com", "1928301774", "a6c85cf")
    assert dialog.state is DialogState.CONFIRMED
    assert str(dialog.remote_target) == "sip:bob@192.0.2.4"
    # §12.1.2: the UAC's route set is the Record-Route list reversed
    assert [str(r.uri) for r in dialog.route_set] == ["sip:p1.example.com;lr",
                                                      "sip:p2.example.com;lr"]
    assert (dialog.local_seq, dialog.remote_seq) == (314159, None)
    assert dialog.local_uri.tag is None and not dialog.secure


@pytest.mark.parametrize("side", ["uac", "uas"])
def test_dialog_uris_are_untagged_copies_owned_by_the_dialog(side: str) -> None:
    # The dialog takes the accessors' copies and drops the tag: what .copy() + tag = None
    # gave. Nothing mutable is shared with the messages or with another dialog.
    request = invite()
    response = ok_response(request)
    make = Dialog.from_uac if side == "uac" else Dialog.from_uas
    dialog, twin = make(request, response), make(request, response)
    local, remote = (request.from_, response.to) if side == "uac" else (request.to,
                                                                          request.from_)
    for ours, theirs in ((dialog.local_uri, local), (dialog.remote_uri, remote)):
        expected = theirs.copy()
        expected.tag = None
        assert ours == expected and ours.tag is None
    assert dialog.local_uri is not twin.local_uri
    dialog.local_uri.params["x"] = "1"
    dialog.remote_uri.uri.params["y"] = "2"
    assert "x" not in twin.local_uri.params and "y" not in twin.remote_uri.uri.params
    assert request.from_.tag == "1928301774" and response.to.tag == "a6c85cf"
    assert "y" not in request.from_.uri.params and "y" not in response.to.uri.params
    assert "y" not in request.to.uri.params


def test_uas_dialog_keeps_record_route_order() -> None:
    request = invite()
    dialog = Dialog.from_uas(request, ok_response(request))
    assert dialog.id == ("a84b4c76e66710@pc33.atlanta.example.com", "a6c85cf", "1928301774")
    assert str(dialog.remote_target) == "sip:alice@pc33.atlanta.example.com"
    assert [str(r.uri) for r in dialog.route_set] == ["sip:p2.example.com;lr",
                                                      "sip:p1.example.com;lr"]
    assert (dialog.local_seq, dialog.remote_seq) == (None, 314159)


def test_early_dialog_confirmed_by_2xx_and_target_refresh() -> None:
    request = invite()
    dialog = Dialog.from_uac(request, ok_response(request, 180))
    assert dialog.state is DialogState.EARLY
    final = ok_response(request, 200)
    final.headers.set("Contact", "<sip:bob@192.0.2.5>")
    dialog.update_from_response(final)
    assert dialog.state is DialogState.CONFIRMED
    assert str(dialog.remote_target) == "sip:bob@192.0.2.5"


def test_in_dialog_request_loose_routing_and_cseq() -> None:
    request = invite()
    dialog = Dialog.from_uac(request, ok_response(request))
    bye = dialog.create_request("BYE", via=via())
    assert str(bye.uri) == "sip:bob@192.0.2.4"  # loose routing: remote target in R-URI
    assert bye.headers.get_all("Route") == ["<sip:p1.example.com;lr>",
                                            "<sip:p2.example.com;lr>"]
    assert (bye.cseq.number, bye.cseq.method) == (314160, "BYE")
    assert bye.from_.tag == "1928301774" and bye.to.tag == "a6c85cf"
    assert bye.call_id == dialog.call_id
    assert dialog.create_request("INFO", via=via()).cseq.number == 314161
    ack = dialog.ack_for_2xx(request, via=via())
    assert (ack.cseq.number, ack.cseq.method) == (314159, "ACK")
    with pytest.raises(DialogError):
        dialog.create_request("CANCEL", via=via())


def test_strict_routing_puts_first_route_in_request_uri() -> None:
    request = invite()
    request.headers.set("Record-Route", "<sip:strict.example.com>")
    dialog = Dialog.from_uas(request, ok_response(request))
    bye = dialog.create_request("BYE", via=via())
    assert str(bye.uri) == "sip:strict.example.com"
    assert bye.headers.get_all("Route") == ["<sip:alice@pc33.atlanta.example.com>"]


def test_uas_rejects_out_of_order_cseq_and_bye_terminates() -> None:
    request = invite()
    dialog = Dialog.from_uas(request, ok_response(request))
    peer = Dialog.from_uac(request, ok_response(request))
    info = peer.create_request("INFO", via=via())
    assert dialog.matches(info)
    assert dialog.receive_request(info) is True and dialog.remote_seq == 314160
    assert dialog.receive_request(info) is False  # §12.2.2: lower or equal CSeq → 500
    reinvite = peer.create_request("INVITE", via=via(),
                                   contact=parse_name_addr("<sip:alice@198.51.100.7>"))
    assert dialog.receive_request(reinvite)
    assert str(dialog.remote_target) == "sip:alice@198.51.100.7"
    assert dialog.receive_request(peer.create_request("BYE", via=via()))
    assert dialog.state is DialogState.TERMINATED
    with pytest.raises(DialogError):
        dialog.create_request("INFO", via=via())


def test_matching_and_creation_errors() -> None:
    request = invite()
    dialog = Dialog.from_uac(request, ok_response(request))
    stranger = invite()
    stranger.headers.set("Call-ID", "other")
    assert not dialog.matches(stranger)
    assert dialog.matches(ok_response(request), incoming=False)
    with pytest.raises(DialogError):
        Dialog.from_uac(request, make_response(request, 200))  # no To tag
    with pytest.raises(DialogError):
        Dialog.from_uac(request, ok_response(request, 486))
    no_contact = make_response(request, 200, to_tag="x")
    with pytest.raises(DialogError):
        Dialog.from_uac(request, no_contact)
    dialog.update_from_response(make_response(dialog.create_request("INFO", via=via()), 481))
    assert dialog.state is DialogState.TERMINATED
