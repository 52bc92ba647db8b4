"""Audio codecs for RTP: ``get(name)`` returns a fresh, stateful codec object.

>>> from vosapp.media import codecs
>>> pcma = codecs.get("PCMA")
>>> pcma.rtpmap
'8 PCMA/8000'

Names (case-insensitive): ``PCMA``, ``PCMU``, ``G729`` (Annex A; ``G729B`` or
``get("G729", annexb=True)`` for Annex B), ``G723`` (G.723.1 6.3 kbit/s), ``G722``.
"""

from __future__ import annotations

from collections.abc import Callable

from vosapp.media.codecs.base import Codec, CodecError, CodecUnavailableError

__all__ = ["NAMES", "Codec", "CodecError", "CodecUnavailableError", "available", "get"]


def _pcma() -> Codec:
    from vosapp.media.codecs.g711 import PCMA

    return PCMA()


def _pcmu() -> Codec:
    from vosapp.media.codecs.g711 import PCMU

    return PCMU()


def _g729(*, annexb: bool = False) -> Codec:
    from vosapp.media.codecs.g729 import G729

    return G729(annexb=annexb)


def _g729b() -> Codec:
    from vosapp.media.codecs.g729 import G729

    return G729(annexb=True)


def _g723() -> Codec:
    from vosapp.media.codecs.g723 import G723

    return G723()


def _g722() -> Codec:
    from vosapp.media.codecs.g722 import G722

    return G722()


_FACTORIES: dict[str, Callable[..., Codec]] = {
    "PCMA": _pcma,
    "PCMU": _pcmu,
    "G729": _g729,
    "G729B": _g729b,
    "G723": _g723,
    "G722": _g722,
}
_ALIASES = {"G729A": "G729", "G.729": "G729", "G7231": "G723", "G723.1": "G723", "G.722": "G722"}

NAMES: tuple[str, ...] = tuple(_FACTORIES)
"""Every codec name :func:`get` knows (installed or not)."""


def canonical_name(name: str) -> str:
    """Map a codec name or alias (case-insensitive) to its registry name.

    Raises
    ------
    CodecError
        For an unknown name, listing the known ones.
    """
    key = str(name).strip().upper()
    key = _ALIASES.get(key, key)
    if key not in _FACTORIES:
        raise CodecError(f"unknown codec {name!r}; known codecs: {', '.join(NAMES)}")
    return key


def get(name: str, **options: object) -> Codec:
    """Return a new codec object (its own encoder and decoder state).

    Parameters
    ----------
    name : str
        Codec name, case-insensitive (see module docstring).
    **options
        Codec-specific keyword options (``annexb`` for G729).

    Raises
    ------
    CodecError
        Unknown name.
    CodecUnavailableError
        The native library is missing (e.g. ``libbcg729-0`` for G.729).
    """
    return _FACTORIES[canonical_name(name)](**options)


def available() -> list[str]:
    """Names of the codecs that can be instantiated on this machine."""
    names = []
    for name in NAMES:
        try:
            get(name)
        except CodecUnavailableError:
            continue
        names.append(name)
    return names
