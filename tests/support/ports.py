"""Free loopback ports for servers a test starts (switch, SIPp, Jupyter)."""

from __future__ import annotations

import socket


def free_port(transport: str = "udp") -> int:
    """A port on 127.0.0.1 that nothing is bound to right now (``"udp"`` or ``"tcp"``)."""
    kind = socket.SOCK_DGRAM if transport.lower() == "udp" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
