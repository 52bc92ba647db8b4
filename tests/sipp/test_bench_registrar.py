"""bench/registrar.sh's pieces, so that the benchmark cannot rot silently: the in-process
profile (bench/registrar_profile.py) completes authenticated registrations through the real
core and SQLite store, and SO_REUSEPORT workers (bench/reuseport_serve.py) share one port and
one store, each SIPp socket's registration (401, then credentials) handled end to end; and
Python's floor (bench/python_floor_registrar.py) answers SIPp's registrations as a registrar
would look on the wire (challenge, then 200 with the To tag and Contact)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path

import pytest

from tests.support import free_port, needs_sipp
from tests.support.bench import load_bench
from tests.support.serving import ROOT, wait_ready
from tests.support.sipp import run_sipp
from vosapp.sip import digest

registrar_profile = load_bench("registrar_profile")


def test_the_in_process_profile_completes_every_registration() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        core, sent, store = registrar_profile.build(Path(tmp), 20)
        try:
            # run() raises SystemExit when a REGISTER is not challenged or not answered 200
            registrar_profile.run(core, sent, 60, 20)
            [bound] = store.query("SELECT COUNT(DISTINCT aor) FROM registrar_bindings")[0]
        finally:
            store.close()
    assert bound == 20


def test_the_in_process_profile_completes_every_registration_against_the_minimum(
        tmp_path: Path) -> None:
    minimum = load_bench("python_minimum_registrar").MinimumRegistrar(
        str(tmp_path / "location.sqlite"))
    # run_minimum() raises SystemExit when a REGISTER is not challenged or not answered 200
    assert registrar_profile.run_minimum(minimum, 60, 20) > 0
    assert len(minimum.bindings) == 20


def _users_file(directory: Path, users: int) -> Path:
    config = directory / "switch.toml"
    lines = ["[switch]", 'sip_listen = "127.0.0.1:5060"', f'data_dir = "{directory / "data"}"',
             "[limits]", "source_threshold = 0"]
    injection = ["SEQUENTIAL"]
    for n in range(users):
        user = str(20000 + n)
        lines += ["[[account]]", f'user = "{user}"', f'password = "pw-{user}"']
        injection.append(f"{user};[authentication username={user} password=pw-{user}]")
    config.write_text("\n".join(lines) + "\n")
    (directory / "users.csv").write_text("\n".join(injection) + "\n")
    return config


@pytest.mark.sipp
@needs_sipp
def test_reuse_port_workers_share_one_port_and_one_store(tmp_path: Path) -> None:
    config = _users_file(tmp_path, 40)
    port = free_port()
    workers = []
    try:
        for _ in range(2):
            process = subprocess.Popen(
                [sys.executable, str(ROOT / "bench" / "reuseport_serve.py"), "serve",
                 "--listen", f"127.0.0.1:{port}", "--udp-only", "--no-trace-store",
                 "--no-control", "--config", str(config)],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
            workers.append(process)
            wait_ready(process, config, tmp_path / "data", 30)  # both bound the same port
        cpu_before = [_cpu_seconds(w.pid) for w in workers]
        result = run_sipp(ROOT / "bench" / "registrar_sipp.xml", cwd=tmp_path,
                          remote=f"127.0.0.1:{port}", transport="un", calls=400, rate=200,
                          extra=["-inf", str(tmp_path / "users.csv"), "-max_socket", "100"])
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        used = [_cpu_seconds(w.pid) - before for w, before in zip(workers, cpu_before)]
    finally:
        for process in workers:
            process.send_signal(signal.SIGTERM)
        for process in workers:
            process.wait(timeout=15)
    with sqlite3.connect(tmp_path / "data" / "vosapp.sqlite") as db:
        bound = db.execute("SELECT COUNT(DISTINCT aor) FROM registrar_bindings WHERE "
                           "expires_at > ?", (time.time(),)).fetchone()[0]
    assert bound == 40
    # the kernel spread the SIPp sockets over both workers: each did some of the work
    assert all(seconds > 0 for seconds in used), used


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100


def test_the_python_floor_answers_a_challenge_then_a_200() -> None:
    floor = load_bench("python_floor_registrar")
    register = (b"REGISTER sip:127.0.0.1:5060 SIP/2.0\r\n"
                b"Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK1;rport\r\n"
                b"From: <sip:20000@127.0.0.1>;tag=a\r\nTo: <sip:20000@127.0.0.1>\r\n"
                b"Call-ID: c1\r\nCSeq: 1 REGISTER\r\nContact: <sip:20000@127.0.0.1:5061>\r\n"
                b"Content-Length: 0\r\n\r\n")
    challenge = floor.answer(register, 7)
    assert challenge.startswith(b"SIP/2.0 401 ")
    assert b'WWW-Authenticate: Digest realm="floor", nonce="7", qop="auth"' in challenge
    assert b"To: <sip:20000@127.0.0.1>;tag=floor\r\n" in challenge
    assert b"Call-ID: c1\r\nCSeq: 1 REGISTER\r\n" in challenge
    with_credentials = register.replace(b"CSeq: 1", b"CSeq: 2").replace(
        b"Content-Length", b'Authorization: Digest username="20000"\r\nContent-Length')
    ok = floor.answer(with_credentials, 8)
    assert ok.startswith(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK1")
    assert b"Contact: <sip:20000@127.0.0.1:5061>;expires=3600\r\n" in ok
    assert ok.endswith(b"Content-Length: 0\r\n\r\n")


@pytest.mark.sipp
@needs_sipp
def test_sipp_completes_registrations_against_the_python_floor(tmp_path: Path) -> None:
    result = _sipp_registers_with(tmp_path, "python_floor_registrar.py")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]


def _sipp_registers_with(tmp_path: Path, script: str, *options: str
                         ) -> subprocess.CompletedProcess[str]:
    """SIPp's 100 registrations of 20 users (bench/registrar_sipp.xml) against
    ``bench/<script> PORT *options``, started here and stopped after."""
    _users_file(tmp_path, 20)
    port = free_port()
    server = subprocess.Popen([sys.executable, str(ROOT / "bench" / script), str(port), *options],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        assert server.stdout.readline().startswith(f"listening on 127.0.0.1:{port}")
        return run_sipp(ROOT / "bench" / "registrar_sipp.xml", cwd=tmp_path,
                        remote=f"127.0.0.1:{port}", calls=100, rate=100,
                        extra=["-inf", str(tmp_path / "users.csv")])
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=15)


def _digest_register(challenge: bytes, password: str, user: str = "20000",
                     aor_user: str = "20000") -> bytes:
    """The REGISTER (CSeq 2) for ``aor_user`` a UA sends back for ``challenge``, its
    credentials (``user``'s) computed by vosapp's own digest client (RFC 7616 §3.4.1,
    qop=auth). The AOR is set before the credentials go in: a nonce or response whose hex
    holds "20000" must not be rewritten with it."""
    header = re.search(rb"\r\nWWW-Authenticate: ([^\r\n]*)", challenge)
    assert header is not None
    credentials = digest.answer(header.group(1).decode(), "REGISTER", "sip:127.0.0.1:5060", user,
                                password, cnonce="c0ffee")
    return _REGISTER.replace(b"20000", aor_user.encode()).replace(b"CSeq: 1", b"CSeq: 2").replace(
        b"Content-Length", f"Authorization: {credentials}\r\n".encode() + b"Content-Length")


_REGISTER = (b"REGISTER sip:127.0.0.1:5060 SIP/2.0\r\n"
             b"Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK1;rport\r\n"
             b"f: <sip:20000@127.0.0.1>;tag=a\r\nTo: <sip:20000@127.0.0.1>\r\n"
             b"Call-ID: c1\r\nCSeq: 1 REGISTER\r\nContact: <sip:20000@127.0.0.1:5061>\r\n"
             b"Expires: 600\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")


def test_the_python_minimum_checks_digest_and_binds_like_the_kamailio_cfg(
        tmp_path: Path) -> None:
    minimum = load_bench("python_minimum_registrar")
    registrar = minimum.MinimumRegistrar(str(tmp_path / "location.sqlite"))
    now = 1_000_000.0
    challenge = registrar.answer(_REGISTER, now)
    assert challenge.startswith(b"SIP/2.0 401 Unauthorized\r\n")
    assert b'WWW-Authenticate: Digest realm="vosapp", nonce="' in challenge
    assert b"From: <sip:20000@127.0.0.1>;tag=a\r\n" in challenge  # compact form understood
    # a wrong password, another user's credentials, a nonce past nonce_expire: challenged again
    assert registrar.answer(_digest_register(challenge, "wrong"), now).startswith(
        b"SIP/2.0 401 ")
    assert registrar.answer(_digest_register(challenge, "pw-20001", "20001"),
                            now).startswith(b"SIP/2.0 401 ")
    assert registrar.answer(_digest_register(challenge, "pw-20000"),
                            now + 31).startswith(b"SIP/2.0 401 ")
    assert registrar.bindings == {}
    ok = registrar.answer(_digest_register(challenge, "pw-20000"), now + 1)
    assert ok.startswith(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK1")
    assert b"Contact: <sip:20000@127.0.0.1:5061>;expires=600\r\n" in ok
    assert b"CSeq: 2 REGISTER\r\n" in ok and ok.endswith(b"Content-Length: 0\r\n\r\n")
    assert registrar.bindings == {"sip:20000@127.0.0.1": {"sip:20000@127.0.0.1:5061": now + 601}}
    with sqlite3.connect(tmp_path / "location.sqlite") as db:  # written through, committed
        assert db.execute("SELECT aor, contact, expires FROM location").fetchall() == [
            ("sip:20000@127.0.0.1", "sip:20000@127.0.0.1:5061", now + 601)]
    # the rest of the cfg's route: Max-Forwards 0, other methods, a line without a colon
    assert registrar.answer(_REGISTER.replace(b"Max-Forwards: 70", b"Max-Forwards: 0"),
                            now).startswith(b"SIP/2.0 483 ")
    assert registrar.answer(_REGISTER.replace(b"REGISTER sip", b"OPTIONS sip"),
                            now).startswith(b"SIP/2.0 404 ")
    assert registrar.answer(_REGISTER.replace(b"Expires: 600", b"Expires 600"),
                            now).startswith(b"SIP/2.0 400 ")
    assert registrar.answer(_digest_register(challenge, "pw-20000").replace(
        b"Expires: 600", b"Expires: soon"), now + 1).startswith(b"SIP/2.0 400 Bad Expires")
    assert registrar.answer(b"SIP/2.0 200 OK\r\n\r\n", now) is None


def test_the_python_minimums_group_commit_commits_a_batch_once_before_it_answers(
        tmp_path: Path) -> None:
    """answer_batch (the --group-commit loop's step): 32 registrations' credentials, one
    COMMIT, every binding visible to a second connection when the answers come back; a batch
    that writes nothing commits nothing."""
    minimum = load_bench("python_minimum_registrar")
    registrar = minimum.MinimumRegistrar(str(tmp_path / "location.sqlite"))
    statements: list[str] = []
    registrar.db.set_trace_callback(statements.append)
    users = [str(30000 + n) for n in range(minimum.GROUP)]
    source = ("127.0.0.1", 5061)
    challenges = minimum.answer_batch(
        registrar, [(_REGISTER.replace(b"20000", user.encode()), source) for user in users])
    assert [response[:12] for response, _ in challenges] == [b"SIP/2.0 401 "] * len(users)
    assert statements == []  # challenges write nothing: no transaction
    batch = [(_digest_register(challenge, f"pw-{user}", user, aor_user=user), source)
             for user, (challenge, _) in zip(users, challenges)]
    answers = minimum.answer_batch(registrar, batch)
    assert [response[:15] for response, _ in answers] == [b"SIP/2.0 200 OK\r"] * len(users)
    assert [s for s in statements if not s.startswith("INSERT")] == ["BEGIN", "COMMIT"]
    with sqlite3.connect(tmp_path / "location.sqlite") as reader:
        assert reader.execute("SELECT COUNT(DISTINCT aor) FROM location").fetchone() == (32,)
    assert not registrar.in_transaction and not registrar.batching


@pytest.mark.sipp
@needs_sipp
@pytest.mark.parametrize("store", ["memory", "sqlite", "memory --asyncio",
                                   "sqlite --group-commit"])
def test_sipp_completes_registrations_against_the_python_minimum(tmp_path: Path,
                                                                 store: str) -> None:
    database = tmp_path / "location.sqlite"
    options = ["--sqlite", str(database)] if store.startswith("sqlite") else []
    options += store.split()[1:]
    result = _sipp_registers_with(tmp_path, "python_minimum_registrar.py", *options)
    # every authenticated REGISTER got its 200 (SIPp fails the call on anything else)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    if store.startswith("sqlite"):
        with sqlite3.connect(database) as db:
            assert db.execute("SELECT COUNT(DISTINCT aor) FROM location").fetchone()[0] == 20


def test_the_python_minimum_with_group_commit_commits_each_binding_before_its_200(
        tmp_path: Path) -> None:
    """On the wire: 40 registrations' credentials queued at once, so that they share batches,
    each 200 finding its binding committed, read by a second connection as it arrives. (Only
    the first 200s of a batch could catch answers sent before its COMMIT, and only when this
    test reads fast enough: the order itself is checked by the answer_batch test above.)"""
    database = tmp_path / "location.sqlite"
    port = free_port()
    server = subprocess.Popen([sys.executable, str(ROOT / "bench" / "python_minimum_registrar.py"),
                               str(port), "--sqlite", str(database), "--group-commit"],
                              stdout=subprocess.PIPE, text=True)
    users = [str(30000 + n) for n in range(40)]
    try:
        assert server.stdout is not None
        assert server.stdout.readline().startswith(f"listening on 127.0.0.1:{port}")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as phone:
            phone.settimeout(5)
            phone.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            for user in users:
                phone.sendto(_REGISTER.replace(b"20000", user.encode()), ("127.0.0.1", port))
            challenges = {}
            for _ in users:
                challenge = phone.recv(65535)
                assert challenge.startswith(b"SIP/2.0 401 ")
                challenges[_user_of(challenge)] = challenge
            with closing(sqlite3.connect(database)) as reader:
                reader.execute("SELECT COUNT(*) FROM location").fetchall()  # schema read: warm
                # The credentials queue up while this test holds the write lock (the server's
                # first INSERT waits), so that the next batches are full ones.
                with closing(sqlite3.connect(database, isolation_level=None)) as blocker:
                    blocker.execute("BEGIN IMMEDIATE")
                    for user in users:
                        phone.sendto(_digest_register(challenges[user], f"pw-{user}", user,
                                                      aor_user=user),
                                     ("127.0.0.1", port))
                    time.sleep(0.3)
                    blocker.execute("ROLLBACK")
                for _ in users:
                    ok = phone.recv(65535)
                    assert ok.startswith(b"SIP/2.0 200 OK\r\n"), ok[:80]
                    user = _user_of(ok)
                    [(rows,)] = reader.execute("SELECT COUNT(*) FROM location WHERE aor = ?",
                                               (f"sip:{user}@127.0.0.1",)).fetchall()
                    assert rows == 1, f"the 200 for {user} came before its binding's COMMIT"
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=15)


def _user_of(response: bytes) -> str:
    found = re.search(rb"\r\nTo: <sip:(\d+)@", response)
    assert found is not None
    return found.group(1).decode()


@needs_sipp
def test_the_live_before_and_after_bench_measures_both_checkouts_in_each_pair() -> None:
    """bench/registrar_ab.sh's plumbing: two pairs of small saturated passes, this checkout on
    both sides (BEFORE), Kamailio left out (KAMAILIO=0): every registration of each pass
    completes, the first pass of a pair alternates, and the ratios are read from the rates."""
    env = dict(os.environ, BEFORE=str(ROOT), KAMAILIO="0", PY=sys.executable)
    result = subprocess.run(["bash", str(ROOT / "bench" / "registrar_ab.sh"), "HEAD", "2", "300"],
                            env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    rows = [line.split(" | ") for line in result.stdout.splitlines() if line[:2] in ("1 ", "2 ")]
    assert [row[:2] for row in rows] == [["1", "before"], ["2", "after"]], result.stdout
    for _, _, before, after, kamailio, after_before, *_ in rows:
        for side in (before, after):
            per_cpu, wall, failed = re.fullmatch(r"(\d+) \((\d+), (\d+)\)", side).groups()
            assert int(per_cpu) > 0 and int(wall) > 0 and failed == "0"
        assert kamailio == "- (-, -)"
        ratio = int(after.split()[0]) / int(before.split()[0])
        assert float(after_before) == pytest.approx(ratio, abs=0.001)


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace (scripts/sysdeps.sh)")
def test_the_syscall_counts_read_a_real_strace_summary(tmp_path: Path) -> None:
    """bench/registrar_syscalls.sh's reading of ``strace -c -f``: a program that makes 40
    getrandom calls in a thread (-f follows it) reads as at least 4 per unit of 10."""
    syscall_counts = load_bench("syscall_counts")
    summary = tmp_path / "summary.strace"
    program = ("import os, threading\n"
               "t = threading.Thread(target=lambda: [os.urandom(1) for _ in range(40)])\n"
               "t.start(); t.join()\n")
    subprocess.run(["strace", "-c", "-f", "-o", str(summary), sys.executable, "-c", program],
                   check=True, capture_output=True, timeout=60)
    calls = syscall_counts.parse_summary(summary.read_text())
    assert calls["getrandom"] >= 40 and "total" not in calls
    rows = syscall_counts.table(10, {"a": calls, "b": {"getrandom": 5, "futex": 9}})
    assert rows[0].split() == ["system", "call", "a", "b"]
    getrandom = next(row.split() for row in rows if row.startswith("getrandom "))
    assert float(getrandom[1]) >= 4.0 and getrandom[2] == "0.500"
    total = rows[-1].split()
    assert total[:3] == ["total", "(no", "futex)"] and total[-1] == "0.50"  # futex left out
