"""Network vocabulary every layer shares: a transport address and host comparison.

Below ``sip`` in the layering (like :mod:`vosapp.params`), so the SIP core, the switch, the
I/O runtime and the lab all name an address the same way.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Sequence
from typing import Any

__all__ = ["NO_ADDRESS", "Address", "AddressObject", "as_address", "is_ip_literal", "same_host"]

# (host, port) as the socket layer gives and takes it; the host is an IP literal or a name.
Address = tuple[str, int]
NO_ADDRESS: Address = ("", 0)
#: An address as the tuple object the socket layer takes, where compiled code only passes
#: it on: compiled (mypyc), an :data:`Address` is a pair held unboxed, and each hand-over to
#: code taking an object made a new tuple and port int of it (the sender's path: the trace,
#: the group commit, the socket; docs/benchmarks.md, thirty-ninth round).
AddressObject = tuple[Any, ...]


def as_address(value: Sequence[Any]) -> Address:
    """``value`` (a list after JSON, or the tuple a socket gives) as a tuple, element for
    element: an IPv6 socket address keeps its flow info and scope id."""
    # Not typing.cast: that is a Python-level call, and this runs twice per traced message.
    return tuple(value)


def same_host(a: str, b: str) -> bool:
    """Whether two host strings name the same host.

    IPv6 brackets are ignored; IP addresses are compared as addresses (``::1`` equals
    ``[0:0::1]``); anything else is a domain name, compared case-insensitively (RFC 3261
    §19.1.4). A name never equals an address: no DNS lookup here.
    """
    a, b = a.strip("[]"), b.strip("[]")
    if a == b:  # the common case (a response's Via naming our own address), without parsing
        return True
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return a.lower() == b.lower()


@functools.lru_cache(maxsize=4096)  # asked per datagram sent
def is_ip_literal(host: str) -> bool:
    """Whether ``host`` is an IP address (a name would need a DNS lookup to send to)."""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True
