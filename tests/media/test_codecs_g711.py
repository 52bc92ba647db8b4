"""G.711 tables against the reference algorithm, for all 65,536 inputs and all 256 codes.

The reference below is written independently of the table code, as the plain per-sample
segment search that ITU-T G.191's g711.c describes (``alaw_compress``, ``alaw_expand``,
``ulaw_compress``, ``ulaw_expand``; 16-bit left-justified linear samples).
"""

from __future__ import annotations

import numpy as np

from vosapp.media import codecs
from vosapp.media.codecs.g711 import ALAW_DECODE, ALAW_ENCODE, ULAW_DECODE, ULAW_ENCODE


def ref_alaw_compress(sample: int) -> int:
    # one's complement of negatives, keep 12 magnitude bits
    ix = (~sample) >> 4 if sample < 0 else sample >> 4
    if ix > 15:
        exponent = 1
        while ix > 16 + 15:  # find the segment: halve until the mantissa fits 4 bits + lead 1
            ix >>= 1
            exponent += 1
        ix -= 16  # drop the leading one
        ix += exponent << 4
    if sample >= 0:
        ix |= 0x80
    return ix ^ 0x55


def ref_alaw_expand(code: int) -> int:
    ix = code ^ 0x55
    exponent = (ix & 0x70) >> 4
    mantissa = ix & 0x0F
    if exponent > 0:
        mantissa += 16
    mantissa = (mantissa << 4) + 0x08  # half a quantization step
    if exponent > 1:
        mantissa <<= exponent - 1
    return mantissa if ix > 127 else -mantissa


def ref_ulaw_compress(sample: int) -> int:
    absno = ((~sample) >> 2) + 33 if sample < 0 else (sample >> 2) + 33
    absno = min(absno, 0x1FFF)
    i = absno >> 6
    segment = 1
    while i != 0:
        segment += 1
        i >>= 1
    high_nibble = 0x08 - segment
    low_nibble = 0x0F - ((absno >> segment) & 0x0F)
    code = (high_nibble << 4) | low_nibble
    if sample >= 0:
        code |= 0x80
    return code


def ref_ulaw_expand(code: int) -> int:
    sign = -1 if code < 0x80 else 1
    inverted = ~code
    exponent = (inverted >> 4) & 0x07
    step = 4 << (exponent + 1)
    mantissa = inverted & 0x0F
    return sign * ((0x80 << exponent) + step * mantissa + step // 2 - 4 * 33)


ALL_SAMPLES = np.arange(-32768, 32768, dtype=np.int16)
# .encode() takes whole 10 ms frames: 65,536 + 64 = 820 x 80 samples
PADDED = np.concatenate([ALL_SAMPLES, np.zeros(64, dtype=np.int16)])


def test_alaw_encode_all_65536_inputs() -> None:
    reference = np.array([ref_alaw_compress(int(s)) for s in ALL_SAMPLES], dtype=np.uint8)
    assert np.array_equal(ALAW_ENCODE[ALL_SAMPLES.view(np.uint16)], reference)
    assert np.array_equal(
        np.frombuffer(codecs.get("PCMA").encode(PADDED), np.uint8)[:65536], reference
    )


def test_ulaw_encode_all_65536_inputs() -> None:
    reference = np.array([ref_ulaw_compress(int(s)) for s in ALL_SAMPLES], dtype=np.uint8)
    assert np.array_equal(ULAW_ENCODE[ALL_SAMPLES.view(np.uint16)], reference)
    assert np.array_equal(
        np.frombuffer(codecs.get("PCMU").encode(PADDED), np.uint8)[:65536], reference
    )


def test_decode_all_256_codes() -> None:
    codes = bytes(range(256))
    assert np.array_equal(ALAW_DECODE, [ref_alaw_expand(c) for c in range(256)])
    assert np.array_equal(ULAW_DECODE, [ref_ulaw_expand(c) for c in range(256)])
    assert np.array_equal(codecs.get("PCMA").decode(codes), ALAW_DECODE)
    assert np.array_equal(codecs.get("PCMU").decode(codes), ULAW_DECODE)


def test_well_known_values() -> None:
    # A-law silence is 0xD5 (even bits inverted), µ-law silence 0xFF; full scale 32256 / 32124
    assert ALAW_ENCODE[0] == 0xD5 and ULAW_ENCODE[0] == 0xFF
    assert ALAW_DECODE.max() == 32256 and ULAW_DECODE.max() == 32124
    assert ALAW_DECODE.min() == -32256 and ULAW_DECODE.min() == -32124


def test_encode_of_decode_is_identity_on_codes() -> None:
    # every code decodes to a value that encodes back to the same code (µ-law has two zeros)
    for encode, decode in ((ALAW_ENCODE, ALAW_DECODE), (ULAW_ENCODE, ULAW_DECODE)):
        again = encode[decode.view(np.uint16)]
        same = decode[again] == decode
        assert same.all()


def test_alaw_matches_python_audioop_where_available() -> None:
    # CPython's audioop (Sun's g711.c) computes A-law identically to G.191; a third opinion.
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import audioop
        except ImportError:  # Python >= 3.13
            return
    encoded = np.frombuffer(audioop.lin2alaw(ALL_SAMPLES.tobytes(), 2), np.uint8)
    assert np.array_equal(encoded, ALAW_ENCODE[ALL_SAMPLES.view(np.uint16)])
