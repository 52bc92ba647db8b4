"""Where one authenticated registration's CPU goes inside ``SwitchCore.receive``, stage by
stage, in the full path (bench/registrar_profile.py's traffic and setup).

Each stage is timed inclusively by a thin wrapper (about 0.3 us per call added), and each SQL
statement on the store's connection by a proxy. Unlike a micro-benchmark of one function, the
stages run amid everything else a registration does, with the CPU caches as cold or warm as
they really are: parse_credentials, verify or the challenge cost 2-5x their micro-benchmark
figures here, and skipping a SELECT only moved its cost to the UPSERT and COMMIT after it.
Absolute figures move with the machine's load; compare stages within one run.

    .venv/bin/python bench/registrar_stages.py [--registrations N] [--code PATH]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--registrations", type=int, default=4000)
    parser.add_argument("--code", metavar="PATH",
                        help="measure the vosapp of another checkout (default: this one)")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    import registrar_profile as profile  # puts --code's checkout first on sys.path

    from vosapp import trace
    from vosapp.sip import digest, transaction
    from vosapp.switch import auth, core

    spent: dict[str, float] = defaultdict(float)
    clock = time.perf_counter

    def timed(owner: Any, name: str, label: Callable[..., str]) -> None:
        original = getattr(owner, name)

        def wrapper(*call_args: Any, **kwargs: Any) -> Any:
            start = clock()
            try:
                return original(*call_args, **kwargs)
            finally:
                spent[label(*call_args)] += clock() - start

        setattr(owner, name, wrapper)

    timed(core, "parse", lambda *_: "parse (2 requests)")
    timed(core, "_stamp_via", lambda *_: "_stamp_via (2)")
    timed(core.SwitchCore, "_inspect_headers", lambda *_: "_inspect_headers (2)")
    timed(transaction.TransactionLayer, "create_server", lambda *_: "create_server (2)")
    timed(auth.InboundAuthenticator, "authenticate", lambda _self, request, _source:
          "authenticate " + ("with credentials" if request.headers.get("Authorization")
                             else "without credentials"))
    # InboundAuthenticator calls decide_screened (since the twelfth round), decide before it.
    timed(auth.AuthPolicy, "decide_screened" if hasattr(auth.AuthPolicy, "decide_screened")
          else "decide", lambda _self, _request, verdict: f"  AuthPolicy.decide {verdict.name}")
    timed(auth, "parse_credentials", lambda *_: "  parse_credentials")
    timed(digest.DigestServer, "verify", lambda *_: "  DigestServer.verify")
    timed(digest.DigestServer, "challenge_value", lambda *_: "DigestServer.challenge_value")
    timed(core.SwitchCore, "make_response", lambda _self, _request, status, *_:
          f"make_response {status}")
    timed(transaction.ServerTransaction, "respond", lambda _self, response:
          f"respond {response.status} (bytes, trace, send)")
    timed(trace.Trace, "message", lambda *_: "Trace.message (4)")
    from vosapp.switch.registrar import logic
    timed(logic.Registrar, "register", lambda *_: "Registrar.register")

    class TimedConnection:
        """The store's connection with each statement timed (the first 24 characters name
        it)."""

        def __init__(self, connection: Any) -> None:
            self._connection = connection

        def execute(self, sql: str, *parameters: Any) -> Any:
            start = clock()
            try:
                return self._connection.execute(sql, *parameters)
            finally:
                spent["  SQL " + sql[:24]] += clock() - start

        @property
        def in_transaction(self) -> bool:
            return bool(self._connection.in_transaction)

        def close(self) -> None:
            self._connection.close()

    with tempfile.TemporaryDirectory(prefix="vosapp-regstages-") as tmp:
        switch, sent, store = profile.build(Path(tmp), 1000)
        store._db = TimedConnection(store._db)  # type: ignore[assignment]
        profile.run(switch, sent, 1000, 1000)  # warm-up: every user bound once
        profile.tune_gc()
        spent.clear()
        cpu = profile.run(switch, sent, args.registrations, 1000, 1000)
    count = args.registrations
    print(f"{count} registrations: {cpu / count * 1e6:.0f} us CPU each in SwitchCore.receive "
          "(with the wrappers); stages, inclusive, us per registration:")
    for label in sorted(spent, key=lambda key: -spent[key]):
        print(f"  {label:44s} {spent[label] / count * 1e6:7.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
