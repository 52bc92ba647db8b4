"""The lab carrier: calls in to the switch's phones from a trusted gateway address.

A :class:`LabCarrier` is a :class:`~vosapp.lab.sip_ua.UserAgent` that does not register:
it sends INVITEs to the switch from its own address, which the switch trusts as a mapping
gateway by IP (a mapping gateway's ``addresses``), so no digest challenge is answered::

    async with LabCarrier(switch.sip_address, port=5090) as carrier:
        call = await carrier.call("1001")      # rings the phone registered as 1001
        await call.wait_answered()

Everything a call can do (media, DTMF, hold, hangup) is :class:`~vosapp.lab.calls.Call`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from vosapp.lab.calls import Call
from vosapp.lab.sip_ua import Address, UserAgent, check_address

__all__ = ["LabCarrier"]


class LabCarrier(UserAgent):
    """Calls ``number`` at the switch ``switch_address`` as ``caller`` (the From user)."""

    def __init__(self, switch_address: Address, *, caller: str = "carrier",
                 host: str = "127.0.0.1", port: int = 0, **options: Any) -> None:
        self.switch_address = check_address(switch_address, "switch_address")
        super().__init__(caller, host=host, port=port, user_agent="vosapp-lab-carrier",
                         **options)

    async def call(self, number: str, *, codecs: Iterable[str] | None = None,
                   headers: Iterable[tuple[str, str]] = ()) -> Call:
        """INVITE ``number`` at the switch; returns the call at once (``wait_answered``)."""
        return await self.dial(number, self.switch_address, codecs=codecs, headers=headers)
