# The C extension built from _g729lane.c (setup.py); see vosapp.media.codecs.g729.
# (_Lane exists in this stub only: both C types take and give the same.)
import numpy as np

class _Lane:
    def __init__(
        self, function: int | None, context: int | None, table: np.ndarray, frames: int,
        owner: object, /,
    ) -> None: ...
    def packet(
        self, datagram: bytes, second_byte: int, sequence: int, timestamp: int, ssrc: int, /
    ) -> bytes: ...

class EncoderLane(_Lane): ...
class DecoderLane(_Lane): ...
