"""Where one authenticated registration's CPU goes inside ``SwitchCore.receive``, stage by
stage, in the full path (bench/registrar_profile.py's traffic and setup).

Each stage is timed inclusively by a thin wrapper (about 0.3 us per call added), and each SQL
statement on the store's connection by a proxy. Unlike a micro-benchmark of one function, the
stages run amid everything else a registration does, with the CPU caches as cold or warm as
they really are: parse_credentials, verify or the challenge cost 2-5x their micro-benchmark
figures here, and skipping a SELECT only moved its cost to the UPSERT and COMMIT after it.
Absolute figures move with the machine's load; compare stages within one run.

With ``--instructions`` each stage is counted instead of timed: one child process per stage
runs the same traffic under valgrind's callgrind, collecting only inside that stage's calls
of the measured pass (the wrapper calls the stage through ``operator.call``, and callgrind
collects only inside that C function: ``--toggle-collect=_operator_call``), so neither the
wrappers nor the warm-up nor the traffic's own making are counted. Counts do not move with the
machine's speed; the ``SwitchCore.receive`` row is the whole registration in process, and the
Python minimum's ``answer`` (bench/python_minimum_registrar.py, bindings in memory) is counted
on the same traffic beside it.

    .venv/bin/python bench/registrar_stages.py [--registrations N] [--code PATH]
    .venv/bin/python bench/registrar_stages.py --instructions [--registrations N] [--users N]
        [--jobs J] [--only LABEL,...] [--keep DIR] [--code PATH] [--sources]

The wrappers see a stage only where it is called through Python. Compiled code (the modules of
vosapp/compiled.py: the SIP layer and, since the twenty-fourth round, the switch's request
path) calls its own functions natively, so the stages inside the switch's request path show
only with ``--sources``: every compiled module runs from its source (``VOSAPP_PURE_PYTHON=1``,
here and in the children), which is not what the switch runs. Without it, the whole
registration is what runs; ``--keep`` and callgrind_annotate name the compiled functions
inside it.

``--keep DIR`` keeps each stage's callgrind output: ``callgrind_annotate --inclusive=yes
DIR/callgrind.<stage>.out`` then shows where inside the stage the instructions go (C functions:
the compiled SIP layer's by name, the regex engine's, CPython's; pure-Python lines appear as
the interpreter's).
"""

from __future__ import annotations

import argparse
import operator
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent


#: The whole registration in process, and the minimum's: rows of the --instructions table.
WHOLE = "SwitchCore.receive (the whole registration)"
MINIMUM = "python minimum: answer() (bindings in memory)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--registrations", type=int,
                        help="measured registrations (default 4000; 1000 with --instructions)")
    parser.add_argument("--code", metavar="PATH",
                        help="measure the vosapp of another checkout (default: this one)")
    parser.add_argument("--instructions", action="store_true",
                        help="count each stage's instructions (valgrind's callgrind) instead "
                             "of timing it")
    parser.add_argument("--users", type=int, default=1000,
                        help="distinct users, each bound once by the warm-up (default 1000)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="with --instructions: stages counted at once")
    parser.add_argument("--only", metavar="LABEL,...",
                        help="with --instructions: count these stages only (labels as printed, "
                             "without their indentation)")
    parser.add_argument("--keep", metavar="DIR",
                        help="with --instructions: keep each stage's callgrind output in DIR "
                             "(callgrind.<stage>.out), for callgrind_annotate --inclusive=yes")
    parser.add_argument("--sources", action="store_true",
                        help="run every compiled module from its source (VOSAPP_PURE_PYTHON=1), "
                             "so that the stages inside the switch's request path show")
    # the child of --instructions: the measured pass calls this stage through operator.call
    parser.add_argument("--count-stage", metavar="LABEL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sources:
        os.environ["VOSAPP_PURE_PYTHON"] = "1"  # before vosapp is imported; children inherit it
    if args.registrations is None:
        args.registrations = 1000 if args.instructions or args.count_stage else 4000
    if args.instructions:
        return count_stages(args)
    sys.path.insert(0, str(ROOT))
    import registrar_profile as profile  # puts --code's checkout first on sys.path

    from vosapp import trace
    from vosapp.sip import digest, transaction
    from vosapp.switch import auth, core

    spent: dict[str, float] = defaultdict(float)
    calls: dict[str, int] = defaultdict(int)
    clock = time.perf_counter
    chosen = args.count_stage
    measuring = False  # the child counts the measured pass only, not the warm-up
    call = operator.call

    def timed(owner: Any, name: str, label: str | Callable[..., str], stem: str = "") -> None:
        """Wrap ``owner.name`` as a stage: ``label`` (or ``label(*args)``, whose labels all
        start with ``stem``) names it. Counting, only the chosen stage is wrapped: the others'
        wrappers would run inside it and be counted with it."""
        label_of = label if callable(label) else (lambda *_: label)
        stem = stem if callable(label) else label
        if chosen is not None and not chosen.strip().startswith(stem.strip()):
            return
        original = getattr(owner, name)

        if chosen is not None:
            def wrapper(*call_args: Any, **kwargs: Any) -> Any:
                if measuring and label_of(*call_args) == chosen:
                    calls[chosen] += 1
                    return call(original, *call_args, **kwargs)
                return original(*call_args, **kwargs)
        else:
            def wrapper(*call_args: Any, **kwargs: Any) -> Any:
                start = clock()
                try:
                    return original(*call_args, **kwargs)
                finally:
                    stage = label_of(*call_args)
                    spent[stage] += clock() - start
                    calls[stage] += 1

        setattr(owner, name, wrapper)

    if chosen == MINIMUM:
        return count_minimum(profile, args.registrations, args.users)
    if chosen is not None:
        timed(core.SwitchCore, "receive", WHOLE)
    timed(core, "parse", "parse (2 requests)")
    timed(core, "_stamp_via", "_stamp_via (2)")
    timed(core.SwitchCore, "_inspect_headers", "_inspect_headers (2)")
    timed(transaction.TransactionLayer, "create_server", "create_server (2)")
    timed(auth.InboundAuthenticator, "authenticate", lambda _self, request, _source:
          "authenticate " + ("with credentials" if request.headers.get("Authorization")
                             else "without credentials"), "authenticate ")
    # InboundAuthenticator calls decide_screened (since the twelfth round), decide before it.
    timed(auth.AuthPolicy, "decide_screened" if hasattr(auth.AuthPolicy, "decide_screened")
          else "decide", lambda _self, _request, verdict: f"  AuthPolicy.decide {verdict.name}",
          "AuthPolicy.decide ")
    timed(auth, "parse_credentials", "  parse_credentials")
    timed(digest.DigestServer, "verify", "  DigestServer.verify")
    timed(digest.DigestServer, "challenge_value", "DigestServer.challenge_value")
    timed(core.SwitchCore, "make_response", lambda _self, _request, status, *_:
          f"make_response {status}", "make_response ")
    timed(transaction.ServerTransaction, "respond", lambda _self, response:
          f"respond {response.status} (bytes, trace, send)", "respond ")
    timed(trace.Trace, "add", "  Trace.add (4)")
    from vosapp import store as store_module
    # (vosapp/store.py's _Transaction before the thirty-fifth round: --code of an older one,
    # whose package has no store_transaction.py; looked for there, not imported: the
    # editable install's finder would find this checkout's)
    if (Path(store_module.__file__).parent / "store_transaction.py").exists():
        from vosapp.store_transaction import StoreTransaction as transaction_class
    else:
        transaction_class = store_module._Transaction  # type: ignore[attr-defined]
    from vosapp.switch.registrar import logic, model
    timed(logic.Registrar, "register", "Registrar.register")
    timed(logic, "live_bindings", "  live_bindings")
    # (the binding's row: bindings_store.write since the forty-first round, its UPSERT before)
    timed(logic, "write" if hasattr(logic, "write") else "upsert", "  write or upsert")
    timed(model.Binding, "__init__", "  Binding() (2)")
    timed(logic.RegisterOutcome, "__init__", "  RegisterOutcome()")
    timed(transaction_class, "__enter__", "  Store.transaction enter")
    timed(transaction_class, "__exit__", "  Store.transaction exit")

    class TimedConnection:
        """The store's connection with each statement timed (the first 24 characters name
        it)."""

        def __init__(self, connection: Any) -> None:
            self._connection = connection

        def execute(self, sql: str, *parameters: Any) -> Any:
            stage = "  SQL " + sql[:24]
            if chosen is not None:
                if measuring and stage == chosen:
                    calls[stage] += 1
                    return call(self._connection.execute, sql, *parameters)
                return self._connection.execute(sql, *parameters)
            start = clock()
            try:
                return self._connection.execute(sql, *parameters)
            finally:
                spent[stage] += clock() - start
                calls[stage] += 1

        @property
        def in_transaction(self) -> bool:
            return bool(self._connection.in_transaction)

        @property
        def rowcount(self) -> int:  # (the statement cursor's: bindings_store.write reads it)
            return int(self._connection.rowcount)

        def close(self) -> None:
            self._connection.close()

    with tempfile.TemporaryDirectory(prefix="vosapp-regstages-") as tmp:
        switch, sent, store = profile.build(Path(tmp), args.users)
        # the trace's ring's compiled method, held by each Trace (not by its class)
        timed(switch.trace, "message", "Trace.message (4)")
        if chosen is None or chosen.startswith("  SQL "):
            store._db = TimedConnection(store._db)  # type: ignore[assignment]
            # Since the thirty-sixth round the write transaction's own statements (BEGIN,
            # SAVEPOINT, RELEASE, COMMIT) run on a cursor of the store's: timed the same way
            # (a checkout before it, --code, has none).
            if hasattr(store, "_statements"):
                store._statements = TimedConnection(store._statements)
        profile.run(switch, sent, args.users, args.users)  # warm-up: every user bound once
        profile.tune_gc()
        spent.clear()
        calls.clear()
        measuring = True
        cpu = profile.run(switch, sent, args.registrations, args.users, args.users)
        measuring = False
    count = args.registrations
    if chosen is not None:
        print(f"calls {calls[chosen]}")  # read by count_stages
        return 0
    print(f"{count} registrations: {cpu / count * 1e6:.0f} us CPU each in SwitchCore.receive "
          "(with the wrappers); stages, inclusive, us per registration (calls per "
          "registration):")
    for label in sorted(spent, key=lambda key: -spent[key]):
        print(f"  {label:44s} {spent[label] / count * 1e6:7.1f}  ({calls[label] / count:g})")
    return 0


def count_minimum(profile: Any, registrations: int, users: int) -> int:
    """The child of --instructions for the minimum's row: its ``answer`` through operator.call
    in the measured pass (the same traffic as vosapp's: warm-up binds every user once)."""
    from python_minimum_registrar import MinimumRegistrar

    minimum = MinimumRegistrar(None)
    profile.run_minimum(minimum, users, users)
    answer = minimum.answer
    answered = 0

    def counted(data: bytes, now: float) -> bytes | None:
        nonlocal answered
        answered += 1
        return operator.call(answer, data, now)

    minimum.answer = counted  # type: ignore[method-assign]
    profile.run_minimum(minimum, registrations, users, users)
    print(f"calls {answered}")
    return 0


def count_stages(args: argparse.Namespace) -> int:
    """--instructions: the stages' labels from a short timed run, then one callgrind child per
    stage; prints thousand instructions per registration, inclusive, and calls per
    registration."""
    sys.path.insert(0, str(ROOT))
    from instruction_count import callgrind_total

    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind; make setup installs it)")
        return 1
    code = ["--code", str(args.code)] if args.code else []
    code += ["--users", str(args.users)]
    script = str(Path(__file__).resolve())
    listing = subprocess.run([sys.executable, script, "--registrations", "200", *code],
                             capture_output=True, text=True, check=True).stdout
    # a label keeps its own indentation (a stage inside another: "  parse_credentials")
    labels = [WHOLE, MINIMUM] + re.findall(r"^  (.+?) +[\d.]+  \(", listing, re.MULTILINE)
    if args.only:
        # commas inside a label's parentheses belong to it: "respond 200 (bytes, trace, send)"
        wanted = {label.strip() for label in re.split(r",(?![^()]*\))", args.only)}
        unknown = wanted - {label.strip() for label in labels}
        if unknown:
            hint = "" if args.sources else (
                " (the stages inside the switch's request path show with --sources: compiled, "
                "it calls them natively)")
            raise SystemExit(f"--only: no stage {', '.join(map(repr, sorted(unknown)))}; the "
                             f"stages: {', '.join(label.strip() for label in labels)}{hint}")
        labels = [label for label in labels if label.strip() in wanted]

    keep = Path(args.keep) if args.keep else None
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)

    def count(label: str) -> tuple[str, float, float]:
        with tempfile.TemporaryDirectory(prefix="vosapp-regstage-") as tmp:
            out = Path(tmp) / "callgrind.out"
            done = subprocess.run(
                ["valgrind", "--tool=callgrind", "--toggle-collect=_operator_call",
                 f"--callgrind-out-file={out}", sys.executable, script, "--count-stage", label,
                 "--registrations", str(args.registrations), *code],
                capture_output=True, text=True, check=False,
                env=dict(os.environ, PYTHONHASHSEED="0"))
            calls = re.search(r"^calls (\d+)$", done.stdout, re.MULTILINE)
            total = callgrind_total(out) if out.exists() else None
            if done.returncode != 0 or calls is None or total is None:
                raise SystemExit(f"counting {label!r} failed ({done.returncode}):\n"
                                 f"{done.stdout[-1500:]}{done.stderr[-1500:]}")
            if keep is not None:
                slug = re.sub(r"[^A-Za-z0-9]+", "-", label.strip()).strip("-")
                shutil.copyfile(out, keep / f"callgrind.{slug}.out")
        return label, total / args.registrations, int(calls.group(1)) / args.registrations

    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        rows = list(pool.map(count, labels))
    whole = next((per for label, per, _ in rows if label == WHOLE), None)
    print(f"{args.registrations} registrations after {args.users} of warm-up, counted by callgrind "
          f"(python {sys.version.split()[0]}): thousand instructions per registration, "
          "inclusive; share of SwitchCore.receive; calls per registration")
    for label, per, calls in sorted(rows, key=lambda row: -row[1]):
        share = f"{per / whole:6.1%}" if whole else "     —"  # no WHOLE row (--only)
        print(f"  {label:46s} {per / 1000:8.1f}  {share}  ({calls:g})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
