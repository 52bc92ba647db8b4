"""The least a Python registrar costs when it does the work bench/kamailio-registrar.cfg has
Kamailio do per registration: a bench baseline (issue #14 part 3), not a registrar.

Python's floor (bench/python_floor_registrar.py) answers without looking at what it answers.
This one does, per REGISTER, what the Kamailio baseline's route does and nothing more, in the
cheapest Python its author could find, in one function, with no event loop:

- parse the request line and every header line (compact forms folded, RFC 7.3.3), refuse a
  line without a colon (400) and Max-Forwards 0 (483, the cfg's mf_process_maxfwd_header);
- without credentials, or with a nonce it did not sign or older than 30 s (Kamailio auth's
  nonce_expire), or a wrong response: a 401 with a fresh stateless nonce (a timestamp and an
  HMAC-MD5 of it under a per-process secret: nothing is kept per nonce, like Kamailio's auth
  module with nonce_count off) and qop=auth;
- with credentials: the RFC 7616 §3.4.1 response for qop=auth, the password "pw-<user>" as the
  cfg's pv_auth_check("vosapp", "pw-" + $tU, "0", "1") has it (HA1 computed per request), the
  user checked against the To user (that call's last "1");
- save("location"): the Contact's URI bound to the To URI with Expires (or the Contact's
  ;expires) in a dict, and with ``--sqlite FILE`` also written through to an SQLite table with
  one autocommitted upsert before the 200 (journal_mode WAL, synchronous NORMAL: usrloc
  db_mode 1 in the Kamailio SQLite baseline);
- the 200 copies Via, From, To (with a tag), Call-ID and CSeq (RFC 3261 §8.2.6.2) and lists
  the binding with its expires; anything but REGISTER gets the cfg's 404.

No transaction layer (a retransmitted REGISTER is processed again, as Kamailio's sl does), no
policy beyond the above, no trace, no audit. bench/registrar.sh runs it under the same SIPp
load as vosapp and Kamailio: "python minimum / kamailio (per CPU-second)" says how much of the
registrar target's 0.5 any Python registrar of this shape could reach.

With ``--asyncio`` it serves from an asyncio datagram endpoint that drains the socket per
wake-up, as vosapp/io/udp.py does, instead of a blocking loop: what vosapp's runtime adds.

With ``--sqlite FILE --group-commit`` it commits as vosapp does (vosapp/io/group_commit.py):
it reads what is queued on the socket, up to 32 datagrams a wake-up (vosapp/io/udp.py's
DRAIN_BATCH), answers them inside one SQLite transaction begun at the batch's first write,
commits, and only then sends the batch's answers. "Committed before the 200" holds as with a
commit per REGISTER, at one commit per batch: the durability vosapp keeps, at vosapp's price.

    python bench/python_minimum_registrar.py PORT [--sqlite FILE [--group-commit]] [--asyncio]
        (prints "listening on 127.0.0.1:PORT")
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import os
import re
import socket
import sqlite3
import time

REALM = "vosapp"
NONCE_EXPIRE = 30.0  # seconds: Kamailio auth's nonce_expire default
_COMPACT = {"v": "via", "f": "from", "t": "to", "i": "call-id", "m": "contact"}
_PARAM = re.compile(r'([A-Za-z-]+)\s*=\s*(?:"([^"]*)"|([^\s,]+))')
_URI = re.compile(r"<([^>]*)>|^\s*([^;\s]+)")
_USER = re.compile(r"^sips?:([^@;>]+)@")
_EXPIRES = re.compile(r";\s*expires\s*=\s*(\d+)")
Address = tuple[str, int]


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8", "surrogateescape")).hexdigest()


def _uri(value: str) -> str:
    """The URI of a name-addr or addr-spec header value (RFC 3261 §20.10)."""
    match = _URI.search(value)
    return (match.group(1) or match.group(2)) if match else ""


class MinimumRegistrar:
    """Answers one datagram at a time; ``bindings`` maps an AOR to {contact: expires_at}."""

    def __init__(self, sqlite_path: str | None = None, secret: bytes | None = None) -> None:
        self.secret = secret if secret is not None else os.urandom(16)
        self.bindings: dict[str, dict[str, float]] = {}
        self.db: sqlite3.Connection | None = None
        if sqlite_path is not None:
            self.db = sqlite3.connect(sqlite_path, isolation_level=None)  # autocommit
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("CREATE TABLE IF NOT EXISTS location (aor TEXT, contact TEXT, "
                            "expires REAL, PRIMARY KEY (aor, contact))")
        self.tag = 0
        #: --group-commit: a batch is being answered, its transaction not yet begun
        self.batching = False
        self.in_transaction = False

    def nonce(self, now: float) -> str:
        stamp = f"{int(now * 1000):x}"
        return stamp + hmac.digest(self.secret, stamp.encode(), "md5").hex()

    def nonce_fresh(self, nonce: str, now: float) -> bool:
        stamp, signature = nonce[:-32], nonce[-32:]
        try:
            issued = int(stamp, 16) / 1000
        except ValueError:
            return False
        expected = hmac.digest(self.secret, stamp.encode(), "md5").hex()
        return hmac.compare_digest(signature, expected) and 0 <= now - issued <= NONCE_EXPIRE

    def answer(self, data: bytes, now: float) -> bytes | None:
        head = data.partition(b"\r\n\r\n")[0].decode("utf-8", "surrogateescape")
        lines = head.split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or parts[2] != "SIP/2.0":
            return None  # not a request: nothing to answer
        method = parts[0]
        vias: list[str] = []
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon:
                return self._reply(vias, headers, "400 Bad Request", [])
            name = name.strip().lower()
            name = _COMPACT.get(name, name)
            if name == "via":
                vias.append(value.strip())
            else:
                headers.setdefault(name, value.strip())
        if not vias or "call-id" not in headers or "cseq" not in headers:
            return None  # cannot be answered (RFC 3261 §8.2.6.2 needs them)
        if headers.get("max-forwards", "70").strip() == "0":
            return self._reply(vias, headers, "483 Too Many Hops", [])
        if method != "REGISTER":
            return self._reply(vias, headers, "404 Not Here", [])
        aor = _uri(headers.get("to", ""))
        if not self._authorized(headers.get("authorization"), aor, now):
            challenge = (f'WWW-Authenticate: Digest realm="{REALM}", '
                         f'nonce="{self.nonce(now)}", qop="auth"')
            return self._reply(vias, headers, "401 Unauthorized", [challenge])
        contact = headers.get("contact")
        extra = []
        if contact is not None:
            uri = _uri(contact)
            expires_param = _EXPIRES.search(contact)
            raw_expires = expires_param.group(1) if expires_param else headers.get("expires",
                                                                                 "3600")
            if not raw_expires.isdigit():
                return self._reply(vias, headers, "400 Bad Expires", [])
            expires = int(raw_expires)
            self.bindings.setdefault(aor, {})[uri] = now + expires
            if self.db is not None:
                if self.batching and not self.in_transaction:
                    self.db.execute("BEGIN")  # the batch's first write begins its transaction
                    self.in_transaction = True
                self.db.execute("INSERT INTO location VALUES (?, ?, ?) ON CONFLICT (aor, "
                                "contact) DO UPDATE SET expires = excluded.expires",
                                (aor, uri, now + expires))
            extra = [f"Contact: <{bound}>;expires={int(at - now)}"
                     for bound, at in self.bindings[aor].items() if at > now]
        return self._reply(vias, headers, "200 OK", extra)

    def _authorized(self, value: str | None, aor: str, now: float) -> bool:
        if value is None or value[:7].lower() != "digest ":
            return False
        params = {m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
                  for m in _PARAM.finditer(value, 7)}
        try:
            user, nonce, uri = params["username"], params["nonce"], params["uri"]
            nc, cnonce, response = params["nc"], params["cnonce"], params["response"]
        except KeyError:
            return False
        to_user = _USER.match(aor)
        if (params.get("realm") != REALM or params.get("qop") != "auth"
                or to_user is None or to_user.group(1) != user
                or not self.nonce_fresh(nonce, now)):
            return False
        ha1 = _md5(f"{user}:{REALM}:pw-{user}")
        ha2 = _md5(f"REGISTER:{uri}")
        expected = _md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
        return hmac.compare_digest(response.lower(), expected)

    def _reply(self, vias: list[str], headers: dict[str, str], status: str,
               extra: list[str]) -> bytes:
        to = headers.get("to", "")
        if ";tag=" not in to:
            self.tag += 1
            to = f"{to};tag=m{self.tag:x}"
        lines = [f"SIP/2.0 {status}", *(f"Via: {via}" for via in vias),
                 f"From: {headers.get('from', '')}", f"To: {to}",
                 f"Call-ID: {headers['call-id']}", f"CSeq: {headers['cseq']}",
                 *extra, "Content-Length: 0", "", ""]
        return "\r\n".join(lines).encode("utf-8", "surrogateescape")


class _DrainingProtocol(asyncio.DatagramProtocol):
    """vosapp's runtime shape (vosapp/io/udp.py): an asyncio datagram endpoint whose callback
    also reads whatever else is queued on the socket, up to 64 datagrams, before it returns."""

    def __init__(self, sock: socket.socket, registrar: MinimumRegistrar) -> None:
        self.sock, self.registrar = sock, registrar
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        sendto, answer, clock = self.transport.sendto, self.registrar.answer, time.time
        for _ in range(64):
            response = answer(data, clock())
            if response is not None:
                sendto(response, addr)
            try:
                data, addr = self.sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return


#: Datagrams read per wake-up at most: vosapp/io/udp.py's DRAIN_BATCH.
GROUP = 32


def answer_batch(registrar: MinimumRegistrar, batch: list[tuple[bytes, Address]]
                 ) -> list[tuple[bytes, Address]]:
    """The answers to ``batch``, its writes committed in one transaction before it returns."""
    assert registrar.db is not None
    answer, clock = registrar.answer, time.time
    registrar.batching = True
    try:
        answers = [(answer(data, clock()), source) for data, source in batch]
    finally:
        registrar.batching = False
    if registrar.in_transaction:
        registrar.db.execute("COMMIT")
        registrar.in_transaction = False
    return [(response, source) for response, source in answers if response is not None]


def _serve_group_commit(sock: socket.socket, registrar: MinimumRegistrar) -> None:
    """Blocking loop: the datagrams queued on the socket (up to GROUP) answered as one batch,
    the answers sent once answer_batch has committed."""
    recvfrom, sendto = sock.recvfrom, sock.sendto
    while True:
        batch = [recvfrom(65535)]
        while len(batch) < GROUP:
            try:
                batch.append(recvfrom(65535, socket.MSG_DONTWAIT))
            except (BlockingIOError, InterruptedError):
                break
        for response, source in answer_batch(registrar, batch):
            sendto(response, source)


async def _serve_asyncio(sock: socket.socket, registrar: MinimumRegistrar) -> None:
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.create_datagram_endpoint(lambda: _DrainingProtocol(sock, registrar), sock=sock)
    await asyncio.Event().wait()  # until the process is stopped


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("port", type=int, nargs="?", default=0)
    parser.add_argument("--sqlite", metavar="FILE",
                        help="write each binding through to this SQLite file before the 200")
    parser.add_argument("--asyncio", action="store_true",
                        help="serve from an asyncio event loop with drained reads, as vosapp "
                             "does, instead of a blocking socket loop")
    parser.add_argument("--group-commit", action="store_true",
                        help="with --sqlite: one transaction per batch of queued datagrams, "
                             "its answers sent after its COMMIT (vosapp's group commit)")
    args = parser.parse_args()
    if args.group_commit and (args.sqlite is None or args.asyncio):
        parser.error("--group-commit needs --sqlite and the blocking loop (no --asyncio)")
    registrar = MinimumRegistrar(args.sqlite)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind(("127.0.0.1", args.port))
    print(f"listening on 127.0.0.1:{sock.getsockname()[1]}", flush=True)
    if args.asyncio:
        asyncio.run(_serve_asyncio(sock, registrar))
        return 0
    if args.group_commit:
        _serve_group_commit(sock, registrar)
        return 0
    recvfrom, sendto, answer, clock = sock.recvfrom, sock.sendto, registrar.answer, time.time
    while True:
        data, source = recvfrom(65535)
        response = answer(data, clock())
        if response is not None:
            sendto(response, source)


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except KeyboardInterrupt:
        raise SystemExit(0) from None
