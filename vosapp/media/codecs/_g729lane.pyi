# The C extension built from _g729lane.c (setup.py); see vosapp.media.codecs.g729.
import numpy as np

class EncoderLane:
    def __init__(
        self, function: int | None, context: int | None, table: np.ndarray, frames: int,
        owner: object, /,
    ) -> None: ...
    def packet(
        self, datagram: bytes, second_byte: int, sequence: int, timestamp: int, ssrc: int, /
    ) -> bytes: ...

class DecoderLane:
    def __init__(
        self, function: int | None, context: int | None, table: np.ndarray, frames: int,
        owner: object, /,
    ) -> None: ...
    def packet(
        self, datagram: bytes, second_byte: int, sequence: int, timestamp: int, ssrc: int, /
    ) -> bytes: ...
