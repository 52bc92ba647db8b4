"""The least a registrar written in Python can cost per registration: a bench baseline (issue
#14 part 3), not a registrar.

One blocking UDP socket and a loop: read a datagram, answer it, read the next. No event loop,
no parsing beyond finding the lines a response copies (Via, From, To, Call-ID, CSeq: RFC 3261
§8.2.6.2), no digest check, no policy, no store, no transaction, no trace. A REGISTER without
an Authorization line gets a 401 with a fixed-shape challenge (a counter as nonce, so SIPp's
digest answer is computed as for a real one), one with it a 200 echoing the Contact. Whatever
a real Python registrar does on top of this costs more; bench/registrar.sh runs it beside
vosapp and Kamailio so that "per CPU-second" can be read against Python's own floor.

    python bench/python_floor_registrar.py PORT     (prints "listening on 127.0.0.1:PORT")
"""

from __future__ import annotations

import socket
import sys

# The header lines a response copies from the request (long and compact forms, lower case).
_COPIED = (b"via:", b"v:", b"from:", b"f:", b"to:", b"t:", b"call-id:", b"i:", b"cseq:")


def answer(data: bytes, nonce: int) -> bytes:
    head = data.split(b"\r\n\r\n", 1)[0]
    lines = head.split(b"\r\n")[1:]
    copied = []
    contact = b""
    authorized = False
    for line in lines:
        folded = line[:16].lower().replace(b" ", b"")
        if folded.startswith(_COPIED):
            if folded.startswith((b"to:", b"t:")):
                line += b";tag=floor"
            copied.append(line)
        elif folded.startswith((b"contact:", b"m:")):
            contact = line
        elif folded.startswith(b"authorization:"):
            authorized = True
    if authorized:
        status = b"SIP/2.0 200 OK"
        extra = [contact + b";expires=3600"] if contact else []
    else:
        status = b"SIP/2.0 401 Unauthorized"
        extra = [b'WWW-Authenticate: Digest realm="floor", nonce="%x", qop="auth", '
                 b"algorithm=MD5" % nonce]
    return b"\r\n".join([status, *copied, *extra, b"Content-Length: 0", b"", b""])


def main() -> int:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind(("127.0.0.1", port))
    print(f"listening on 127.0.0.1:{sock.getsockname()[1]}", flush=True)
    nonce = 0
    recvfrom, sendto = sock.recvfrom, sock.sendto
    while True:
        data, source = recvfrom(65535)
        if data.startswith(b"REGISTER "):
            nonce += 1
            sendto(answer(data, nonce), source)


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except KeyboardInterrupt:
        raise SystemExit(0) from None
