"""RFC 3261 §17 transactions on a ManualClock: every state, every timer's firing time."""

from __future__ import annotations

import itertools

import pytest

from vosapp.clock import ManualClock
from vosapp.params import Params
from vosapp.sip import Request, Response, make_response, parse
from vosapp.sip.transaction import (
    DeliverRequest,
    DeliverResponse,
    SentResponse,
    State,
    Terminated,
    TimedOut,
    TimerName,
    TimerSettings,
    TransactionError,
    TransactionLayer,
    TransportFailed,
    server_key,
)

PEER = ("192.0.2.10", 5060)


def request(method: str = "OPTIONS", branch: str = "z9hG4bKabc", *, cseq: int = 1,
            sent_by: str = "192.0.2.1:5060", to_tag: str | None = None) -> Request:
    to = "<sip:bob@example.com>" + (f";tag={to_tag}" if to_tag else "")
    text = (f"{method} sip:bob@example.com SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {sent_by};branch={branch}\r\n"
            "Max-Forwards: 70\r\n"
            "From: <sip:alice@example.com>;tag=fromtag\r\n"
            f"To: {to}\r\n"
            "Call-ID: call-1@example.com\r\n"
            f"CSeq: {cseq} {method}\r\n"
            "Route: <sip:proxy.example.com;lr>\r\n"
            "Content-Length: 0\r\n\r\n")
    message = parse(text.encode())
    assert isinstance(message, Request)
    return message


def response(req: Request, status: int, tag: str | None = "totag") -> Response:
    return make_response(req, status, to_tag=tag if status > 100 else None)


class Harness:
    """A TransactionLayer on a ManualClock that records (time, message, destination)."""

    def __init__(self, t1_ms: int = 500, fail_sends: bool = False) -> None:
        self.clock = ManualClock()
        self.sent: list[tuple[float, Request | SentResponse, tuple[str, int], str]] = []
        self.fail_sends = fail_sends
        params = Params.defaults().replace(SS_SIP_RESEND_INTERVAL=t1_ms)
        self.layer = TransactionLayer(self.clock, TimerSettings.from_params(params),
                                      self.transmit)
        self.events: list[tuple[float, object]] = []

    def transmit(self, message: Request | SentResponse, destination: tuple[str, int],
                 transport: str) -> None:
        if self.fail_sends:
            raise OSError("network unreachable")
        self.sent.append((self.clock.now(), message, destination, transport))

    def listen(self, event: object) -> None:
        self.events.append((self.clock.now(), event))

    def send_times(self) -> list[float]:
        return [round(t, 6) for t, *_ in self.sent]

    def event_types(self) -> list[type]:
        return [type(e) for _, e in self.events]


def gaps(times: list[float]) -> list[float]:
    return [round(b - a, 6) for a, b in itertools.pairwise(times)]


# --------------------------------------------------------------------- client non-INVITE


def test_non_invite_client_udp_retransmission_schedule_and_timer_f() -> None:
    h = Harness()
    txn = h.layer.send_request(request("OPTIONS"), PEER, "UDP", h.listen)
    assert txn.state is State.TRYING
    h.clock.advance(40)
    # §17.1.2.2: 500 ms, 1 s, 2 s, 4 s, 4 s … until Timer F = 64*T1 = 32 s
    assert gaps(h.send_times()) == [0.5, 1, 2, 4, 4, 4, 4, 4, 4, 4]
    assert h.send_times()[-1] == 31.5
    assert [(t, type(e)) for t, e in h.events] == [(32.0, TimedOut), (32.0, Terminated)]
    assert h.events[0][1] == TimedOut(TimerName.F)
    assert txn.state is State.TERMINATED and len(h.layer) == 0


def test_non_invite_client_t1_from_ss_sip_resend_interval() -> None:
    h = Harness(t1_ms=100)
    h.layer.send_request(request("OPTIONS"), PEER, "UDP", h.listen)
    h.clock.advance(10)
    assert gaps(h.send_times()) == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2]  # then F at 64*T1
    assert h.events[0] == (6.4, TimedOut(TimerName.F))


def test_non_invite_client_proceeding_retransmits_every_t2_then_completed_timer_k() -> None:
    h = Harness()
    req = request("REGISTER")
    txn = h.layer.send_request(req, PEER, "UDP", h.listen)
    h.clock.advance(0.6)  # one retransmission at 0.5, next E due at 1.5
    h.layer.receive_response(response(req, 100))
    assert txn.state is State.PROCEEDING
    h.clock.advance(10)  # E keeps its schedule at 1.5 then T2 = 4 s: 5.5, 9.5
    assert h.send_times() == [0, 0.5, 1.5, 5.5, 9.5]
    final = response(req, 200)
    h.layer.receive_response(final)
    assert txn.state is State.COMPLETED
    assert h.layer.receive_response(final) is txn  # retransmitted final absorbed
    assert [type(e) for _, e in h.events].count(DeliverResponse) == 2
    h.clock.advance_to(15.59)
    assert txn.state is State.COMPLETED
    h.clock.advance_to(15.6)  # Timer K = T4 = 5 s after the final at 10.6
    assert txn.state is State.TERMINATED
    assert h.events[-1] == (pytest.approx(15.6), Terminated())
    assert len(h.sent) == 5


def test_non_invite_client_tcp_no_retransmissions_and_no_timer_k() -> None:
    h = Harness()
    req = request("OPTIONS")
    txn = h.layer.send_request(req, PEER, "TCP", h.listen)
    h.clock.advance(10)
    assert h.send_times() == [0]
    h.layer.receive_response(response(req, 200))
    assert txn.state is State.TERMINATED  # Timer K is zero on reliable transports
    assert h.event_types() == [DeliverResponse, Terminated]


def test_non_invite_client_tcp_timer_f() -> None:
    h = Harness()
    h.layer.send_request(request("OPTIONS"), PEER, "TCP", h.listen)
    h.clock.advance(33)
    assert h.events == [(32.0, TimedOut(TimerName.F)), (32.0, Terminated())]


# --------------------------------------------------------------------- client INVITE


def test_invite_client_timer_a_doubles_uncapped_and_timer_b() -> None:
    h = Harness()
    txn = h.layer.send_request(request("INVITE"), PEER, "UDP", h.listen)
    assert txn.state is State.CALLING
    h.clock.advance(40)
    # §17.1.1.2: A = T1, 2T1, 4T1 … (not capped at T2); B = 64*T1
    assert h.send_times() == [0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert h.events == [(32.0, TimedOut(TimerName.B)), (32.0, Terminated())]


def test_invite_client_provisional_stops_retransmissions_and_timer_b() -> None:
    h = Harness()
    req = request("INVITE")
    txn = h.layer.send_request(req, PEER, "UDP", h.listen)
    h.clock.advance(1)
    h.layer.receive_response(response(req, 180))
    assert txn.state is State.PROCEEDING
    h.clock.advance(100)
    assert h.send_times() == [0, 0.5]
    assert txn.state is State.PROCEEDING  # no timeout in Proceeding: the TU's business
    assert h.event_types() == [DeliverResponse]


def test_invite_client_non_2xx_acks_inside_transaction_then_timer_d() -> None:
    h = Harness()
    req = request("INVITE", branch="z9hG4bKinv")
    txn = h.layer.send_request(req, PEER, "UDP", h.listen)
    h.layer.receive_response(response(req, 180))
    busy = response(req, 486, tag="busytag")
    h.clock.advance(2)
    h.layer.receive_response(busy)
    assert txn.state is State.COMPLETED
    ack = h.sent[-1][1]
    assert isinstance(ack, Request) and ack.method == "ACK"
    # §17.1.1.3: same Request-URI, Call-ID, From, branch; To from the response; CSeq ACK
    assert str(ack.uri) == str(req.uri)
    assert ack.top_via.branch == "z9hG4bKinv" and len(ack.vias) == 1
    assert ack.to.tag == "busytag" and ack.from_.tag == "fromtag"
    assert (ack.cseq.number, ack.cseq.method) == (1, "ACK")
    assert ack.call_id == req.call_id
    assert ack.headers.get_all("Route") == req.headers.get_all("Route")
    assert h.event_types() == [DeliverResponse, DeliverResponse]
    h.layer.receive_response(busy)  # retransmitted 486: ACK again, TU not told again
    assert [m.method for _, m, *_ in h.sent if isinstance(m, Request)][-2:] == ["ACK", "ACK"]
    assert h.event_types() == [DeliverResponse, DeliverResponse]
    h.clock.advance_to(33.99)
    assert txn.state is State.COMPLETED
    h.clock.advance_to(34)  # Timer D = 32 s after entering Completed at t=2
    assert txn.state is State.TERMINATED and h.events[-1] == (34.0, Terminated())


def test_invite_client_non_2xx_over_tcp_terminates_at_once() -> None:
    h = Harness()
    req = request("INVITE")
    txn = h.layer.send_request(req, PEER, "TCP", h.listen)
    h.layer.receive_response(response(req, 503))
    assert txn.state is State.TERMINATED
    assert h.sent[-1][1].method == "ACK"  # type: ignore[union-attr]


def test_invite_client_2xx_accepted_state_timer_m() -> None:
    h = Harness()
    req = request("INVITE")
    txn = h.layer.send_request(req, PEER, "UDP", h.listen)
    ok = response(req, 200)
    h.layer.receive_response(ok)
    assert txn.state is State.ACCEPTED
    assert not any(isinstance(m, Request) and m.method == "ACK" for _, m, *_ in h.sent)
    h.clock.advance(10)
    h.layer.receive_response(ok)  # RFC 6026: retransmitted 2xx reach the TU
    assert h.event_types() == [DeliverResponse, DeliverResponse]
    h.clock.advance(22)  # Timer M = 64*T1 from t=0
    assert txn.state is State.TERMINATED and h.events[-1] == (32.0, Terminated())


# --------------------------------------------------------------------- server non-INVITE


def test_non_invite_server_states_and_timer_j() -> None:
    h = Harness()
    req = request("REGISTER")
    txn = h.layer.create_server(req, PEER, "UDP", PEER)
    txn.add_listener(h.listen)
    assert txn.state is State.TRYING
    h.layer.receive_retransmission(txn, req)
    assert h.sent == []  # Trying absorbs retransmissions
    txn.respond(response(req, 100))
    assert txn.state is State.PROCEEDING
    h.layer.receive_retransmission(txn, req)
    assert [m.status for _, m, *_ in h.sent] == [100, 100]  # type: ignore[union-attr]
    h.clock.advance(1)
    txn.respond(response(req, 200))
    assert txn.state is State.COMPLETED
    h.layer.receive_retransmission(txn, req)
    assert [m.status for _, m, *_ in h.sent] == [100, 100, 200, 200]  # type: ignore[union-attr]
    with pytest.raises(TransactionError):
        txn.respond(response(req, 500))
    h.clock.advance_to(32.99)
    assert txn.state is State.COMPLETED
    h.clock.advance_to(33)  # Timer J = 64*T1 from t=1
    assert txn.state is State.TERMINATED and h.events == [(33.0, Terminated())]
    assert len(h.layer) == 0


def test_timer_j_ends_lingering_transactions_in_turn_from_one_clock_timer() -> None:
    """Completed non-INVITE transactions wait for Timer J in a queue with one clock timer
    between them (TransactionLayer._linger): each still ends at exactly its own 64*T1 and
    answers retransmissions until then; one that left early is skipped."""
    h = Harness()
    txns = []
    for i, at in enumerate((1.0, 1.0, 2.5, 4.0)):
        h.clock.advance_to(at)
        req = request("REGISTER", f"z9hG4bKlinger{i}")
        txn = h.layer.create_server(req, PEER, "UDP", PEER)
        txn.add_listener(lambda event, i=i: h.events.append((h.clock.now(), (i, event))))
        txn.respond(response(req, 200))
        txns.append((txn, req))
    # one clock timer for all four, armed for the first (the abandon timers were cancelled)
    assert [s.when for s in h.clock._queue if not s.cancelled] == [33.0]
    assert h.clock.next_deadline() == 33.0
    # the third leaves early (its response cannot be resent: a transport error)
    h.fail_sends = True
    h.layer.receive_retransmission(*txns[2])
    h.fail_sends = False
    assert txns[2][0].terminated and txns[2][0].key not in h.layer.servers
    h.clock.advance_to(32.99)
    h.layer.receive_retransmission(*txns[3])  # still in Completed: the 200 again
    assert [m.status for _, m, *_ in h.sent[-1:]] == [200]  # type: ignore[union-attr]
    ends = [(t, i) for t, (i, e) in h.events if isinstance(e, Terminated)]  # type: ignore[misc]
    assert ends == [(4.0, 2)]
    h.clock.advance_to(100)
    ends = [(t, i) for t, (i, e) in h.events if isinstance(e, Terminated)]  # type: ignore[misc]
    assert ends == [(4.0, 2), (33.0, 0), (33.0, 1), (36.0, 3)]
    assert all(txn.state is State.TERMINATED for txn, _ in txns) and len(h.layer) == 0
    assert h.clock.next_deadline() is None
    # a retransmission after Timer J matches nothing: the TU sees it as a new request
    assert h.layer.match_request(txns[3][1]) is None


def test_timer_j_ends_close_together_run_the_queue_at_most_once_a_second() -> None:
    # No loop wake-up per transaction: one due within 1 s of the last run ends with the next,
    # up to 1 s late (it only absorbs retransmissions a little longer).
    h = Harness()
    txns = []
    for i, at in enumerate((1.0, 1.5, 2.5)):
        h.clock.advance_to(at)
        req = request("REGISTER", f"z9hG4bKclose{i}")
        txn = h.layer.create_server(req, PEER, "UDP", PEER)
        txn.add_listener(lambda event, i=i: h.events.append((h.clock.now(), (i, event))))
        txn.respond(response(req, 200))
        txns.append(txn)
    h.clock.advance_to(100)
    ends = [(t, i) for t, (i, e) in h.events if isinstance(e, Terminated)]  # type: ignore[misc]
    assert ends == [(33.0, 0), (34.0, 1), (35.0, 2)]


def test_a_transaction_completed_while_the_queue_runs_does_not_delay_the_next() -> None:
    # A Terminated listener answers another request while the queue's timer runs (before it
    # is armed again): the timer is then armed for the queue's first, not for the newcomer.
    h = Harness()
    ends: list[tuple[float, str]] = []
    first_req, second_req = request("REGISTER", "z9hG4bKq1"), request("REGISTER", "z9hG4bKq2")
    first = h.layer.create_server(first_req, PEER, "UDP", PEER)

    def answer_another(event: object) -> None:
        if isinstance(event, Terminated):
            ends.append((h.clock.now(), "first"))
            late_req = request("REGISTER", "z9hG4bKq3")
            h.layer.create_server(late_req, PEER, "UDP", PEER).respond(response(late_req, 200))

    first.add_listener(answer_another)
    first.respond(response(first_req, 200))
    h.clock.advance_to(1.5)
    second = h.layer.create_server(second_req, PEER, "UDP", PEER)
    second.add_listener(lambda event: ends.append((h.clock.now(), "second")))
    second.respond(response(second_req, 200))
    h.clock.advance_to(60)
    assert ends == [(32.0, "first"), (33.5, "second")]


def test_a_timer_j_shorter_than_the_queue_gets_its_own_clock_timer() -> None:
    # SS_SIP_RESEND_INTERVAL lowered between two: the queue stays in the order it ends.
    h = Harness()
    first = request("REGISTER", "z9hG4bKlong")
    long_txn = h.layer.create_server(first, PEER, "UDP", PEER)
    long_txn.respond(response(first, 200))
    h.layer.set_timers(TimerSettings.from_params(
        Params.defaults().replace(SS_SIP_RESEND_INTERVAL=100)))
    second = request("REGISTER", "z9hG4bKshort")
    short_txn = h.layer.create_server(second, PEER, "UDP", PEER)
    short_txn.respond(response(second, 200))
    h.clock.advance_to(6.4)  # 64 * 0.1 s
    assert short_txn.terminated and not long_txn.terminated
    h.clock.advance_to(32)
    assert long_txn.terminated and len(h.layer) == 0


def test_non_invite_server_tcp_terminates_on_final() -> None:
    h = Harness()
    req = request("OPTIONS")
    txn = h.layer.create_server(req, PEER, "TCP", PEER)
    txn.respond(response(req, 200))
    assert txn.state is State.TERMINATED and len(h.layer) == 0


def test_a_stateless_answer_is_sent_once_and_holds_no_transaction() -> None:
    """RFC 3261 §26.3.2.4: a challenge to an unauthenticated request, once, no Completed
    state: no Timer J, nothing in the table, a retransmission matches nothing (the TU then
    handles it as a new request and answers it anew)."""
    h = Harness()
    req = request("REGISTER")
    txn = h.layer.create_server(req, PEER, "UDP", PEER)
    txn.add_listener(h.listen)
    txn.respond_statelessly(response(req, 401))
    assert [m.status for _, m, *_ in h.sent] == [401]  # type: ignore[union-attr]
    assert txn.state is State.TERMINATED and h.events == [(0.0, Terminated())]
    assert len(h.layer) == 0 and h.layer.match_request(req) is None
    assert h.clock.next_deadline() is None  # no timer of any kind waits (no Timer J)
    h.clock.advance(64)
    assert len(h.sent) == 1  # never resent
    with pytest.raises(TransactionError):
        txn.respond(response(req, 200))


def test_a_stateless_answer_is_final_and_for_an_invite_not_a_2xx() -> None:
    h = Harness()
    req = request("REGISTER")
    txn = h.layer.create_server(req, PEER, "UDP", PEER)
    with pytest.raises(TransactionError):
        txn.respond_statelessly(response(req, 100))
    assert h.sent == [] and txn.state is State.TRYING  # nothing sent, still answerable
    h = Harness()  # the INVITE on a layer of its own: no other transaction, no other timer
    invite = request("INVITE", branch="z9hG4bKinv")
    invite_txn = h.layer.create_server(invite, PEER, "UDP", PEER)
    for status in (100, 200):  # a 2xx goes through the transaction (RFC 6026)
        with pytest.raises(TransactionError):
            invite_txn.respond_statelessly(response(invite, status))
    invite_txn.respond_statelessly(response(invite, 407))
    # no Timer G retransmission, no Timer H: its ACK will match nothing (the TU's to judge)
    assert invite_txn.state is State.TERMINATED and len(h.layer) == 0
    assert h.clock.next_deadline() is None
    ack = request("ACK", branch="z9hG4bKinv")
    assert h.layer.match_request(ack) is None
    assert [m.status for _, m, *_ in h.sent] == [407]  # type: ignore[union-attr]


def test_server_drop_absorbs_retransmissions_silently_for_64_t1() -> None:
    h = Harness()
    req = request("REGISTER")
    txn = h.layer.create_server(req, PEER, "UDP", PEER)
    txn.drop()
    assert h.layer.match_request(req) is txn
    h.layer.receive_retransmission(txn, req)
    with pytest.raises(TransactionError):
        txn.respond(response(req, 401))
    h.clock.advance(32)
    assert h.sent == [] and txn.state is State.TERMINATED


def test_a_server_transaction_lets_go_of_its_request_once_only_retransmissions_remain() -> None:
    """A transaction that sent its final response, or a dropped one, keeps no parsed request
    for its 64*T1 (memory per transaction under load); it still matches and answers
    retransmissions, and reading the request is a clear error. An INVITE lets go of it at
    its final response too (a call holds its INVITE while it lasts, and no longer)."""
    h = Harness()
    req = request("REGISTER")
    txn = h.layer.create_server(req, PEER, "UDP", PEER)
    assert txn.request is req
    txn.respond(response(req, 100))
    assert txn.request is req  # Proceeding: the final response is still to be built
    txn.respond(response(req, 200))
    with pytest.raises(TransactionError, match="no longer keeps its request"):
        _ = txn.request
    assert txn.machine.request is None  # (a compiled Request takes no weak reference)
    retransmission = request("REGISTER")
    assert h.layer.match_request(retransmission) is txn
    h.layer.receive_retransmission(txn, retransmission)
    assert [m.status for _, m, *_ in h.sent] == [100, 200, 200]  # type: ignore[union-attr]

    dropped = request("REGISTER", "z9hG4bKdropped")
    txn = h.layer.create_server(dropped, PEER, "UDP", PEER)
    txn.drop()
    with pytest.raises(TransactionError):
        _ = txn.request
    assert h.layer.match_request(request("REGISTER", "z9hG4bKdropped")) is txn

    for status, branch in ((486, "z9hG4bKrefused"), (200, "z9hG4bKaccepted")):
        invite = request("INVITE", branch)
        txn = h.layer.create_server(invite, PEER, "UDP", PEER)
        txn.respond(response(invite, 180))
        assert txn.request is invite  # Proceeding: the final response is still to be built
        txn.respond(response(invite, status))
        assert txn.final_sent and txn.machine.request is None
        with pytest.raises(TransactionError, match="no longer keeps its request"):
            _ = txn.request
        # still its transaction: a retransmitted INVITE is answered (486, §17.2.1) or
        # absorbed (Accepted, RFC 6026 §7.1: the TU resends the 2xx), the ACK matched
        sent = len(h.sent)
        h.layer.receive_retransmission(txn, request("INVITE", branch))
        assert len(h.sent) == sent + (1 if status == 486 else 0)
        assert h.layer.match_request(request("ACK", branch, to_tag="totag")) is txn


def test_a_server_transaction_keeps_its_response_as_the_bytes_it_sent() -> None:
    """Not the built Response (~0.9 KB of header lists) for its 64*T1: its bytes, status and
    To. Retransmissions are those bytes, not serialized again, even when the TU changes
    its Response afterwards; final_sent and the RFC 2543 ACK match (§17.2.3) read the rest."""
    h = Harness()
    req = request("REGISTER")
    txn = h.layer.create_server(req, PEER, "UDP", PEER)
    ok = response(req, 200, tag="t200")
    txn.respond(ok)
    sent = txn.machine.last_response
    assert isinstance(sent, SentResponse) and (sent.status, sent.to_tag) == (200, "t200")
    assert sent.to == ok.headers.get("To")
    assert bytes(sent) == bytes(ok) and txn.final_sent
    ok.headers.set("Server", "changed later")
    h.layer.receive_retransmission(txn, request("REGISTER"))
    assert [bytes(m) for _, m, *_ in h.sent] == [bytes(sent), bytes(sent)]

    invite = request("INVITE", branch="old2")  # RFC 2543: no magic cookie
    txn = h.layer.create_server(invite, PEER, "UDP", PEER)
    txn.respond(response(invite, 100, tag=None))
    assert txn.answered and not txn.final_sent
    txn.respond(response(invite, 486, tag="t486"))
    assert txn.final_sent
    assert h.layer.match_request(request("ACK", branch="old2", to_tag="t486")) is txn
    assert h.layer.match_request(request("ACK", branch="old2", to_tag="other")) is None


# --------------------------------------------------------------------- server INVITE


def test_invite_server_non_2xx_timer_g_schedule_and_timer_h() -> None:
    h = Harness()
    req = request("INVITE")
    txn = h.layer.create_server(req, PEER, "UDP", PEER)
    txn.add_listener(h.listen)
    assert txn.state is State.PROCEEDING
    txn.respond(response(req, 180))
    h.layer.receive_retransmission(txn, req)  # resend the last provisional
    assert [m.status for _, m, *_ in h.sent] == [180, 180]  # type: ignore[union-attr]
    txn.respond(response(req, 486))
    assert txn.state is State.COMPLETED
    h.clock.advance(40)
    finals = [t for t, m, *_ in h.sent if m.status == 486]  # type: ignore[union-attr]
    # Timer G: T1 doubling, capped at T2 (§17.2.1); Timer H = 64*T1
    assert gaps(finals) == [0.5, 1, 2, 4, 4, 4, 4, 4, 4, 4]
    assert h.events == [(32.0, TimedOut(TimerName.H)), (32.0, Terminated())]


def test_invite_server_ack_confirms_and_timer_i() -> None:
    h = Harness()
    req = request("INVITE", branch="z9hG4bKsrv")
    txn = h.layer.create_server(req, PEER, "UDP", PEER)
    txn.add_listener(h.listen)
    txn.respond(response(req, 404, tag="t404"))
    h.clock.advance(0.7)
    ack = request("ACK", branch="z9hG4bKsrv", to_tag="t404")
    assert h.layer.match_request(ack) is txn
    h.layer.receive_retransmission(txn, ack)
    assert txn.state is State.CONFIRMED
    sent_before = len(h.sent)
    h.layer.receive_retransmission(txn, request("INVITE", branch="z9hG4bKsrv"))
    h.layer.receive_retransmission(txn, ack)  # ACK retransmissions absorbed
    h.clock.advance_to(5.69)
    assert len(h.sent) == sent_before and txn.state is State.CONFIRMED
    h.clock.advance_to(5.7)  # Timer I = T4 after the ACK at 0.7
    assert txn.state is State.TERMINATED and h.events == [(5.7, Terminated())]
    assert h.event_types() == [Terminated]  # the ACK for a non-2xx never reaches the TU


def test_invite_server_tcp_no_timer_g_and_immediate_confirm() -> None:
    h = Harness()
    req = request("INVITE")
    txn = h.layer.create_server(req, PEER, "TCP", PEER)
    txn.respond(response(req, 486))
    h.clock.advance(10)
    assert len(h.sent) == 1
    h.layer.receive_retransmission(txn, request("ACK", to_tag="totag"))
    assert txn.state is State.TERMINATED  # Timer I = 0 on TCP


def test_invite_server_2xx_accepted_ack_to_tu_timer_l() -> None:
    h = Harness()
    req = request("INVITE")
    txn = h.layer.create_server(req, PEER, "UDP", PEER)
    txn.add_listener(h.listen)
    ok = response(req, 200)
    txn.respond(ok)
    assert txn.state is State.ACCEPTED
    h.layer.receive_retransmission(txn, req)  # absorbed; the TU core retransmits 2xx itself
    assert len(h.sent) == 1
    txn.respond(ok)  # TU retransmission of the 2xx (§13.3.1.4)
    assert len(h.sent) == 2
    ack = request("ACK", to_tag="totag")
    h.layer.receive_retransmission(txn, ack)
    assert isinstance(h.events[0][1], DeliverRequest)
    h.clock.advance(32)  # Timer L
    assert txn.state is State.TERMINATED


# --------------------------------------------------------------------- matching, errors


def test_matching_rfc3261_by_branch_sent_by_and_method() -> None:
    h = Harness()
    invite = request("INVITE", branch="z9hG4bKm")
    txn = h.layer.create_server(invite, PEER, "UDP", PEER)
    assert h.layer.match_request(request("INVITE", branch="z9hG4bKm")) is txn
    assert h.layer.match_request(request("ACK", branch="z9hG4bKm")) is txn
    # Same branch, other sent-by or other method: another transaction (§17.2.3).
    assert h.layer.match_request(request("INVITE", branch="z9hG4bKm",
                                         sent_by="192.0.2.99:5060")) is None
    cancel = request("CANCEL", branch="z9hG4bKm")
    assert h.layer.match_request(cancel) is None
    assert h.layer.find_invite_for_cancel(cancel) is txn


def test_matching_rfc2543_fallback_without_magic_cookie() -> None:
    h = Harness()
    invite = request("INVITE", branch="old1")
    txn = h.layer.create_server(invite, PEER, "UDP", PEER)
    assert server_key(invite)[0] == "2543"
    assert h.layer.match_request(request("INVITE", branch="old1")) is txn
    assert h.layer.match_request(request("INVITE", branch="old1", cseq=2)) is None
    txn.respond(response(invite, 486, tag="srvtag"))
    assert h.layer.match_request(request("ACK", branch="old1", to_tag="srvtag")) is txn
    assert h.layer.match_request(request("ACK", branch="old1", to_tag="other")) is None
    assert h.layer.find_invite_for_cancel(request("CANCEL", branch="old1")) is txn


def test_client_matching_by_branch_and_cseq_method() -> None:
    h = Harness()
    req = request("OPTIONS", branch="z9hG4bKc1")
    txn = h.layer.send_request(req, PEER, "UDP", h.listen)
    assert h.layer.receive_response(response(request("OPTIONS", branch="z9hG4bKother"), 200)) \
        is None
    assert h.layer.receive_response(response(req, 200)) is txn


def test_transport_error_terminates_and_informs_tu() -> None:
    h = Harness(fail_sends=True)
    txn = h.layer.send_request(request("OPTIONS"), PEER, "UDP", h.listen)
    assert txn.state is State.TERMINATED
    assert h.event_types() == [TransportFailed, Terminated]
    assert h.clock.next_deadline() is None  # every timer cancelled


def test_bad_uses_are_refused() -> None:
    h = Harness()
    with pytest.raises(TransactionError):
        h.layer.send_request(request("ACK"), PEER, "UDP")
    h.layer.send_request(request("OPTIONS", branch="z9hG4bKdup"), PEER, "UDP")
    with pytest.raises(TransactionError):
        h.layer.send_request(request("OPTIONS", branch="z9hG4bKdup"), PEER, "UDP")
    with pytest.raises(ValueError):
        TimerSettings(t1=0)


def test_non_invite_server_never_answered_is_abandoned_after_64_t1() -> None:
    h = Harness()
    req = request("MESSAGE")
    txn = h.layer.create_server(req, PEER, "UDP", PEER)
    txn.add_listener(h.listen)
    h.clock.advance_to(31.9)
    assert txn.state is State.TRYING
    h.clock.advance_to(32)
    assert h.events == [(32.0, TimedOut(TimerName.ABANDON)), (32.0, Terminated())]
    assert h.sent == [] and len(h.layer) == 0


def test_server_cap_forgets_the_oldest_answered_transactions_and_keeps_working_ones() -> None:
    # Bounded memory under a flood (issue 12): past max_servers the oldest transactions that
    # have their final response are forgotten (their listeners told Terminated); one still
    # waiting for its TU is kept whatever its age.
    h = Harness()
    h.layer.max_servers = 3
    pending = h.layer.create_server(request("INVITE", "z9hG4bKpending"), PEER, "UDP", PEER)
    answered = []
    for i in range(5):
        req = request("REGISTER", f"z9hG4bKdone{i}")
        txn = h.layer.create_server(req, PEER, "UDP", PEER)
        txn.add_listener(h.listen)
        txn.respond(response(req, 200))
        answered.append(txn)
    assert len(h.layer.servers) == 3 and h.layer.evicted == 3
    assert pending.key in h.layer.servers and not pending.terminated
    assert [t.key in h.layer.servers for t in answered] == [False, False, False, True, True]
    assert h.event_types() == [Terminated] * 3
    h.clock.advance(64)  # the forgotten ones' timers were cancelled: nothing fires for them
    assert h.event_types() == [Terminated] * 5
    pending.respond(response(pending.request, 486))  # the kept one still works
    assert h.sent[-1][1].status == 486  # type: ignore[union-attr]


def test_server_cap_evicts_in_batches_to_a_64th_below_the_cap() -> None:
    # One pass over the oldest keys per batch (a dict's first key lies past every entry
    # deleted before it): past the cap the table drops to cap - cap // 64, then fills again.
    h = Harness()
    h.layer.max_servers = 128
    sizes = []
    for i in range(400):
        req = request("REGISTER", f"z9hG4bKflood{i}")
        h.layer.create_server(req, PEER, "UDP", PEER).respond(response(req, 200))
        sizes.append(len(h.layer.servers))
    assert max(sizes) == 128 and min(sizes[128:]) == 126
    assert h.layer.evicted == 400 - len(h.layer.servers)
    newest = [f"z9hG4bKflood{i}" for i in range(400 - len(h.layer.servers), 400)]
    assert [key[1] for key in h.layer.servers] == newest  # the oldest went, in order


def test_a_terminated_listener_that_ends_another_transaction_does_not_break_eviction() -> None:
    h = Harness()
    h.layer.max_servers = 2
    txns = []
    for i in range(3):
        req = request("REGISTER", f"z9hG4bKchain{i}")
        if i == 2:
            # the oldest one's listener drops the next oldest from the table meanwhile
            txns[0].add_listener(lambda event: h.layer.servers.pop(txns[1].key, None))
        txn = h.layer.create_server(req, PEER, "UDP", PEER)
        txn.respond(response(req, 200))
        txns.append(txn)
    assert list(h.layer.servers) == [txns[2].key] and h.layer.evicted == 1
