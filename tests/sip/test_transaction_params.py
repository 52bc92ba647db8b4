"""SS_SIP_RESEND_INTERVAL (T1) changed on a running switch: new transactions use the new T1,
transactions already running keep the one they started with (docs/behaviour.md §1)."""

from __future__ import annotations

import itertools

from vosapp.clock import ManualClock
from vosapp.params import Params
from vosapp.sip import Request, make_response, parse
from vosapp.sip.transaction import (
    SentResponse,
    Terminated,
    TimedOut,
    TimerName,
    TimerSettings,
    TransactionLayer,
)
from vosapp.switch.core import SwitchCore

PEER = ("192.0.2.10", 5060)


def request(method: str, branch: str, call_id: str) -> Request:
    text = (f"{method} sip:bob@example.com SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 192.0.2.1:5060;branch={branch}\r\n"
            "Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=f\r\n"
            f"To: <sip:bob@example.com>\r\nCall-ID: {call_id}\r\n"
            f"CSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n")
    message = parse(text.encode())
    assert isinstance(message, Request)
    return message


def gaps(times: list[float]) -> list[float]:
    return [round(b - a, 6) for a, b in itertools.pairwise(times)]


def t1(ms: int) -> TimerSettings:
    return TimerSettings.from_params(Params.defaults().replace(SS_SIP_RESEND_INTERVAL=ms))


class Recorder:
    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.sent: dict[str, list[float]] = {}
        self.events: dict[str, list[tuple[float, object]]] = {}

    def transmit(self, message: Request | SentResponse, _dest: tuple[str, int], _tp: str
                 ) -> None:
        call_id = parse(bytes(message)).call_id  # a server transaction sends its bytes
        self.sent.setdefault(str(call_id), []).append(round(self.clock.now(), 6))

    def listener(self, call_id: str):  # type: ignore[no-untyped-def]
        return lambda event: self.events.setdefault(call_id, []).append(
            (round(self.clock.now(), 6), event))


def test_new_client_transactions_use_the_new_t1_open_ones_keep_theirs() -> None:
    clock = ManualClock()
    rec = Recorder(clock)
    layer = TransactionLayer(clock, t1(500), rec.transmit)
    layer.send_request(request("OPTIONS", "z9hG4bKold", "old"), PEER, "UDP", rec.listener("old"))
    clock.advance(0.2)
    layer.set_timers(t1(100))
    layer.send_request(request("OPTIONS", "z9hG4bKnew", "new"), PEER, "UDP", rec.listener("new"))
    clock.advance(40)
    # The old transaction: T1 = 500 ms, Timer F = 64*T1 = 32 s from its start.
    assert gaps(rec.sent["old"]) == [0.5, 1, 2, 4, 4, 4, 4, 4, 4, 4]
    assert rec.events["old"][0] == (32.0, TimedOut(TimerName.F))
    # The new one: T1 = 100 ms, doubling up to T2; Timer F = 6.4 s from its start (0.2).
    assert gaps(rec.sent["new"]) == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2]
    assert rec.events["new"][0] == (6.6, TimedOut(TimerName.F))
    assert len(layer) == 0


def test_new_server_transactions_use_the_new_t1() -> None:
    clock = ManualClock()
    rec = Recorder(clock)
    layer = TransactionLayer(clock, t1(500), rec.transmit)
    old_req = request("REGISTER", "z9hG4bKs-old", "s-old")
    old = layer.create_server(old_req, PEER, "UDP", PEER)
    old.add_listener(rec.listener("s-old"))
    layer.set_timers(t1(200))
    new_req = request("REGISTER", "z9hG4bKs-new", "s-new")
    new = layer.create_server(new_req, PEER, "UDP", PEER)
    new.add_listener(rec.listener("s-new"))
    old.respond(make_response(old_req, 200, to_tag="t"))
    new.respond(make_response(new_req, 200, to_tag="t"))
    clock.advance(40)
    # Timer J = 64*T1 on UDP: 32 s for the old one, 12.8 s for the new one.
    assert rec.events["s-old"] == [(32.0, Terminated())]
    assert rec.events["s-new"] == [(12.8, Terminated())]


def test_switch_core_update_params_reaches_the_transaction_layer() -> None:
    clock = ManualClock()
    sent: list[tuple[float, str]] = []
    core = SwitchCore(clock=clock, sender=lambda data, _d, _t: sent.append(
        (round(clock.now(), 6), parse(data).call_id or "")))
    core.local_addresses["UDP"] = ("192.0.2.1", 5060)
    core.send_request(request("OPTIONS", "z9hG4bKc-old", "c-old"), PEER)
    changes = core.update_params(core.params.replace(SS_SIP_RESEND_INTERVAL=250), by="test")
    assert changes == {"SS_SIP_RESEND_INTERVAL": (500, 250)}
    assert core.transactions.timers.t1 == 0.25
    assert any(r.note == "parameters changed by test: SS_SIP_RESEND_INTERVAL 500→250"
               for r in core.trace.records())
    core.send_request(request("OPTIONS", "z9hG4bKc-new", "c-new"), PEER)
    clock.advance(2)
    assert [t for t, c in sent if c == "c-old"] == [0, 0.5, 1.5]
    assert [t for t, c in sent if c == "c-new"] == [0, 0.25, 0.75, 1.75]
    # Assigning core.params goes through the same path; unchanged values change nothing.
    core.params = core.params.replace(SS_SIP_RESEND_INTERVAL=1000)
    assert core.transactions.timers.t1 == 1.0
    assert core.update_params(core.params, by="test") == {}
