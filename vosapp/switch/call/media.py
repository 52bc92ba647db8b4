"""The media relay as the call handler sees it: the interface a runtime implements.

Relay sockets belong to the runtime (:mod:`vosapp.io.call_media` for asyncio); this package
never imports :mod:`vosapp.io`. The runtime passes a :data:`MediaBackendFactory` to
:func:`vosapp.switch.app.build_switch_app`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from vosapp.net import Address

if TYPE_CHECKING:
    from vosapp.switch.core import SwitchCore


@dataclass(frozen=True)
class LegSpec:
    """One leg of a relay, as negotiated (the backend turns it into its own leg config)."""

    codec: str  # vosapp.media.codecs name
    ptime: int
    payload_type: int
    dtmf_payload_type: int | None
    remote: Address | None


class MediaSession(Protocol):
    local_a: Address
    local_b: Address

    def start(self, a: LegSpec, b: LegSpec, *, dtmf: dict[str, Any],
              on_info_send: Callable[[str, Any], None] | None) -> str: ...

    def info_received(self, side: str, content_type: str, body: bytes) -> None: ...

    def relatch(self, side: str, remote: Address | None) -> None: ...

    def set_direction(self, side: str, direction: str) -> None:
        """The leg's endpoint now has SDP ``direction`` (RFC 3264 §8.4 hold/resume): the
        relay sends it nothing when it is sendonly/inactive."""

    def dtmf_methods(self) -> list[str]: ...

    def close(self) -> None: ...


class MediaBackend(Protocol):
    def allocate(self) -> MediaSession: ...


#: ``factory(core) -> backend``: how a runtime that owns media sockets provides relays.
MediaBackendFactory = Callable[["SwitchCore"], MediaBackend]

__all__ = ["Address", "LegSpec", "MediaBackend", "MediaBackendFactory", "MediaSession"]
