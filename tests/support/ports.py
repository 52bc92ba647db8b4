"""Free loopback ports for servers a test starts (switch, SIPp, Jupyter)."""

from __future__ import annotations

import socket


def free_port(transport: str = "udp") -> int:
    """A port on 127.0.0.1 that nothing is bound to right now (``"udp"`` or ``"tcp"``)."""
    kind = socket.SOCK_DGRAM if transport.lower() == "udp" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_media_port() -> int:
    """A first port for SIPp's media sockets: SIPp binds it and the three above it (audio RTP
    and RTCP, video RTP and RTCP), so all four must be free, not just the first."""
    for _ in range(100):
        first = free_port()
        socks = []
        try:
            for port in range(first, first + 4):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(sock)
                sock.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError("no four consecutive free UDP ports on 127.0.0.1")
