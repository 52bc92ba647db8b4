"""docs/behaviour.md §2.5 over the whole stack in virtual time: a scripted brute-force phone on the
virtual network against SwitchCore + transactions + digest + policy, one simulated hour per case.

The attacker is fast but not a flood: it answers every challenge at once with the next wrong
password, and waits 1 s after a 403 or after silence before starting a new registration.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from vosapp.config import Account
from vosapp.io.virtual import Packet, VirtualNetwork
from vosapp.params import Params
from vosapp.sip import Response
from vosapp.sip.digest import answer, parse_challenge
from vosapp.store import Store
from vosapp.switch.auth import MemoryJournal
from vosapp.switch.registrar import build_registrar_service

SWITCH = ("10.0.0.1", 5060)
ATTACKER = ("203.0.113.66", 5060)
ACCOUNTS = {"1001": Account(user="1001", password="correct horse battery staple")}


class BruteForcer:
    def __init__(self, net: VirtualNetwork) -> None:
        self.net = net
        self.endpoint = net.add_endpoint(ATTACKER)
        self.endpoint.on_receive = self.on_packet
        self.calls = itertools.count()
        self.branches = itertools.count()
        self.passwords = (f"guess{i}" for i in itertools.count())
        self.responses = 0
        self.call_id = ""
        self.cseq = 0
        self.waiting: object = None

    def register(self, authorization: str | None = None) -> None:
        self.cseq += 1
        lines = ["REGISTER sip:10.0.0.1 SIP/2.0",
                 f"Via: SIP/2.0/UDP 203.0.113.66:5060;branch=z9hG4bK{next(self.branches)}",
                 "Max-Forwards: 70", "From: <sip:1001@10.0.0.1>;tag=a", "To: <sip:1001@10.0.0.1>",
                 f"Call-ID: {self.call_id}", f"CSeq: {self.cseq} REGISTER",
                 "Contact: <sip:1001@203.0.113.66>", "Expires: 600"]
        if authorization:
            lines.append(authorization)
        self.endpoint.send(("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode(),
                           SWITCH)
        self.arm_silence_timer()

    def start_attempt(self) -> None:
        self.call_id = f"bf-{next(self.calls)}"
        self.cseq = 0
        self.register()

    def arm_silence_timer(self) -> None:
        if self.waiting is not None:
            self.waiting.cancel()  # type: ignore[attr-defined]
        # No answer within 1 s (SS_REPLY_UNAUTHORIZED=Off): try again with a new attempt.
        self.waiting = self.net.clock.call_later(1.0, self.start_attempt)

    def on_packet(self, packet: Packet) -> None:
        response = packet.parse()
        assert isinstance(response, Response)
        self.responses += 1
        if self.waiting is not None:
            self.waiting.cancel()  # type: ignore[attr-defined]
            self.waiting = None
        if response.status in (401, 407):
            header = "WWW-Authenticate" if response.status == 401 else "Proxy-Authenticate"
            name = "Authorization" if response.status == 401 else "Proxy-Authorization"
            challenge = parse_challenge(response.headers.get(header))
            creds = answer(challenge, "REGISTER", "sip:10.0.0.1", "1001", next(self.passwords))
            self.register(f"{name}: {creds}")
        else:
            self.waiting = self.net.clock.call_later(1.0, self.start_attempt)


def hour_of_brute_force(tmp_path: Path, **changes: object) -> tuple[int, int, MemoryJournal]:
    net = VirtualNetwork(latency=0.01)
    journal = MemoryJournal()
    store = Store.open(tmp_path)

    def feature(core):  # type: ignore[no-untyped-def]
        build_registrar_service(core, accounts=ACCOUNTS.get, store=store, journal=journal)

    switch = net.add_switch(SWITCH, params=Params.defaults().replace(**changes),
                            features=[feature])
    switch.start()
    attacker = BruteForcer(net)
    attacker.start_attempt()
    net.run(3600)
    guesses = journal.reasons().count("wrong_password")
    store.close()
    return guesses, attacker.responses, journal


def test_defaults_at_most_120_guesses_per_hour(tmp_path: Path) -> None:
    guesses, responses, journal = hour_of_brute_force(tmp_path)
    assert 100 <= guesses <= 120, guesses
    assert responses > guesses  # it was answered all along: 401s, then 403s while suspended
    assert len([e for e in journal.events if "suspended for" in e.detail]) == guesses // 6


def test_retry_3_suspend_600_at_most_20_guesses_per_hour(tmp_path: Path) -> None:
    guesses, _, _ = hour_of_brute_force(tmp_path, SS_SIP_AUTHENTICATION_RETRY=3,
                                        SS_AUTHENTICATION_MAX_RETRY=3,
                                        SS_AUTHENTICATION_FAILED_SUSPEND=600)
    assert 15 <= guesses <= 20, guesses


@pytest.mark.parametrize("code", [401, 407])
def test_reply_unauthorized_off_zero_responses_in_an_hour(tmp_path: Path, code: int) -> None:
    guesses, responses, journal = hour_of_brute_force(tmp_path, SS_REPLY_UNAUTHORIZED=False,
                                                      SS_SIP_AUTHENTICATION_CODE=code)
    assert responses == 0
    assert guesses == 0
    assert len(journal.events) >= 3000  # every dropped attempt is in the audit trail
