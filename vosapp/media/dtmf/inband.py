"""Inband DTMF: a tone generator and an ITU-T Q.24 receiver (docs/behaviour.md §6).

Theory of operation
-------------------
The signal is cut into short *blocks* (``hop_ms``, 5 ms by default). For every block the
single-bin DFT (what the Goertzel recurrence computes) is taken at the 8 DTMF frequencies and
at their second harmonics, for all blocks at once as one matrix product. An *analysis window*
is ``window_ms / hop_ms`` consecutive blocks (20 ms by default); its DFT is the phase-aligned
sum of the block DFTs, so windows slide by one block at no extra cost.

Per window the receiver picks the strongest row (low-group) and column (high-group) tone and
accepts the pair only if every check passes (each a :class:`DetectorTuning` field):

* level: each tone at least ``min_level_dbm0``;
* twist: the low group at most ``max_normal_twist_db`` louder than the high group (normal
  twist, what line loss does to a tone pair) and the high group at most
  ``max_reverse_twist_db`` louder than the low group (reverse twist);
* relative peak: each chosen tone ``min_relative_peak_db`` above the other tones of its group;
* second harmonic: the energy at twice each chosen frequency at most
  ``max_second_harmonic_db`` relative to the tone (speech is rich in harmonics, DTMF is not);
* tone-to-total: the two tones carry at least ``min_tone_to_total_db`` of the window energy;
* frequency: each tone within ``max_frequency_deviation`` of its nominal frequency. The
  frequency is *measured*, not inferred from a filter's bandwidth: the phase advance between the
  first and the last ``K - 1`` blocks of the window gives the offset, so the ±1.5 % operate /
  ±3.5 % reject limits of Q.24 hold at every level.

Levels and frequencies are measured after removing each tone's leakage into the other tone's
bin (known from its measured frequency and complex amplitude), and corrected for the window's
attenuation of an off-frequency tone, so twist stays accurate (to about 0.1 dB for a clean
pair, 0.8 dB at 8 dB twist with ±1.5 % offsets). Windows that fail the cheap checks (level,
relative peak, tone-to-total) skip these measurements, which keeps silence and speech cheap.

Timing: a window is *full* when its tone energy is within ``edge_tolerance_db`` of both
neighbouring windows, i.e. it is not a window that only partly overlaps the tone. A digit
starts after ``min_on_ms`` worth of consecutive full windows of the same digit (40 ms tones are
accepted, 23 ms tones rejected). Once started it *holds* while its two tones stay within
``hold_drop_db`` of their peak, and ends after ``min_off_ms`` of windows that do not hold: a
10 ms interruption is bridged, a 40 ms pause ends the digit.

Level convention: +3.17 dBm0 is a full-scale sine (amplitude 32768 in int16, 1.0 in float).
Twist convention of :func:`generate_digits`: ``twist_db > 0`` makes the high group louder.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from .errors import AudioInputError, DigitError, TuningError

__all__ = [
    "COLUMN_FREQUENCIES",
    "DIGITS",
    "FULL_SCALE_DBM0",
    "ROW_FREQUENCIES",
    "SUPPORTED_RATES",
    "DetectorTuning",
    "DigitEvent",
    "DtmfDetector",
    "DtmfDetectorBank",
    "analyse_windows",
    "detect_digits",
    "detect_events",
    "digit_frequencies",
    "generate_digits",
    "tone_levels_dbm0",
]

#: Keys in keypad order: ``DIGITS[4 * row + column]``.
DIGITS = "123A456B789C*0#D"
ROW_FREQUENCIES = (697.0, 770.0, 852.0, 941.0)
COLUMN_FREQUENCIES = (1209.0, 1336.0, 1477.0, 1633.0)
#: Level of a full-scale sine (the G.711 convention).
FULL_SCALE_DBM0 = 3.17
SUPPORTED_RATES = (8000, 16000)

_FUNDAMENTALS = np.array(ROW_FREQUENCIES + COLUMN_FREQUENCIES)
_ANALYSIS_FREQUENCIES = np.concatenate([_FUNDAMENTALS, 2.0 * _FUNDAMENTALS])
_TINY = 1e-20


def digit_frequencies(digit: str) -> tuple[float, float]:
    """Return the nominal (row, column) frequencies in Hz of one DTMF key.

    Raises
    ------
    DigitError
        If ``digit`` is not one of ``0-9 * # A-D`` (lower-case a-d accepted).
    """
    index = _digit_index(digit)
    return ROW_FREQUENCIES[index // 4], COLUMN_FREQUENCIES[index % 4]


def _digit_index(digit: str) -> int:
    if not isinstance(digit, str) or len(digit) != 1 or digit.upper() not in DIGITS:
        raise DigitError(f"{digit!r} is not a DTMF key; expected one of {DIGITS}")
    return DIGITS.index(digit.upper())


def _check_rate(rate: int) -> int:
    if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)):
        raise AudioInputError(f"rate must be an int, got {rate!r}")
    if int(rate) not in SUPPORTED_RATES:
        raise AudioInputError(f"rate {rate} Hz is not supported; use one of {SUPPORTED_RATES}")
    return int(rate)


def _as_float_samples(samples: Any, *, ndim: int) -> npt.NDArray[np.float32]:
    """Validate and convert int16 or float [-1, 1) samples to float32 in [-1, 1)."""
    if not isinstance(samples, np.ndarray):
        raise AudioInputError(
            f"samples must be a numpy array (int16 or float), got {type(samples).__name__}"
        )
    if samples.ndim != ndim:
        raise AudioInputError(f"samples must be {ndim}-D, got shape {samples.shape}")
    if samples.dtype == np.int16:
        return samples.astype(np.float32) * np.float32(1.0 / 32768.0)
    if samples.dtype in (np.float32, np.float64):
        if samples.size:
            if not np.all(np.isfinite(samples)):
                raise AudioInputError("float samples contain NaN or infinity")
            low, high = float(samples.min()), float(samples.max())
            if low < -1.0 or high >= 1.0:
                raise AudioInputError(
                    f"float samples must lie in [-1, 1), got range [{low:.4g}, {high:.4g}]"
                )
        return samples.astype(np.float32, copy=False)
    raise AudioInputError(f"samples must have dtype int16, float32 or float64, got {samples.dtype}")


@dataclass(frozen=True)
class DetectorTuning:
    """Every threshold of the inband receiver, as named, validated fields.

    Levels are per tone in dBm0 (+3.17 dBm0 = full-scale sine); ratios are in dB.

    Attributes
    ----------
    hop_ms : float
        Block length and window step in ms (time resolution). 2-8 ms; the measurable frequency
        offset is ±1000 / (2 * hop_ms) Hz, so it must stay above 3.5 % of 1633 Hz.
    window_ms : float
        Analysis window in ms, a whole number (2-10) of blocks. Longer windows separate
        neighbouring tones better but blur the timing.
    min_level_dbm0 : float
        Weakest accepted tone. Q.24 asks for operation down to -25 dBm0 per tone.
    max_normal_twist_db : float
        How much louder the low group may be than the high group (Q.24: at least 8 dB). One dB
        of measurement margin above the requirement by default.
    max_reverse_twist_db : float
        How much louder the high group may be than the low group (Q.24: at least 4 dB).
    min_relative_peak_db : float
        The chosen tone must exceed every other tone of its group by this much.
    max_second_harmonic_db : float
        Largest accepted energy at twice a chosen frequency, relative to that tone.
    min_tone_to_total_db : float
        Smallest accepted share of the window energy carried by the two tones.
    max_frequency_deviation : float
        Largest accepted relative frequency offset of each tone (Q.24: operate at 0.015,
        reject at 0.035; the default sits in between).
    min_on_ms : float
        Shortest accepted tone, counted in full windows: ``(min_on_ms - window_ms) / hop_ms
        + 1`` of them. Q.24: accept 40 ms, reject 23 ms. With the default 35 ms, tones up to
        28 ms are always rejected and tones from 38 ms on always accepted (measured over all
        16 digits and 8 start phases), so both limits have margin.
    min_off_ms : float
        A started digit ends after this long without its tones (the bridge time). Q.24: bridge
        10 ms, separate at 40 ms.
    edge_tolerance_db : float
        A window is *full* (counts towards ``min_on_ms``) when its tone energy is within this
        many dB of both neighbours; windows that only partly overlap a tone are not.
    hold_drop_db : float
        A started digit holds while both its tones stay within this many dB of their peak.
    """

    hop_ms: float = 5.0
    window_ms: float = 20.0
    min_level_dbm0: float = -30.0
    max_normal_twist_db: float = 9.0
    max_reverse_twist_db: float = 5.0
    min_relative_peak_db: float = 8.0
    max_second_harmonic_db: float = -6.0
    min_tone_to_total_db: float = -2.0
    max_frequency_deviation: float = 0.025
    min_on_ms: float = 35.0
    min_off_ms: float = 20.0
    edge_tolerance_db: float = 1.0
    hold_drop_db: float = 12.0

    _RANGES: ClassVar[dict[str, tuple[float, float]]] = {
        "hop_ms": (2.0, 8.0),
        "window_ms": (4.0, 80.0),
        "min_level_dbm0": (-60.0, 3.17),
        "max_normal_twist_db": (0.0, 20.0),
        "max_reverse_twist_db": (0.0, 20.0),
        "min_relative_peak_db": (0.0, 30.0),
        "max_second_harmonic_db": (-40.0, 10.0),
        "min_tone_to_total_db": (-20.0, 0.0),
        "max_frequency_deviation": (0.001, 0.1),
        "min_on_ms": (5.0, 500.0),
        "min_off_ms": (2.0, 500.0),
        "edge_tolerance_db": (0.0, 6.0),
        "hold_drop_db": (1.0, 40.0),
    }

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TuningError(field.name, f"must be a number, got {value!r}")
            if not math.isfinite(value):
                raise TuningError(field.name, f"must be finite, got {value!r}")
            low, high = self._RANGES[field.name]
            if not low <= value <= high:
                raise TuningError(field.name, f"{value!r} is outside [{low}, {high}]")
        blocks = self.window_ms / self.hop_ms
        if abs(blocks - round(blocks)) > 1e-9 or not 2 <= round(blocks) <= 10:
            raise TuningError(
                "window_ms",
                f"{self.window_ms} must be 2 to 10 whole blocks of hop_ms={self.hop_ms}",
            )
        if self.min_on_ms < self.window_ms:
            raise TuningError(
                "min_on_ms", f"{self.min_on_ms} must be at least window_ms={self.window_ms}"
            )

    @classmethod
    def from_kwargs(cls, tuning: DetectorTuning | None = None, **changes: Any) -> DetectorTuning:
        """Build a tuning from ``tuning`` (or the defaults) with ``changes`` applied.

        Raises
        ------
        TuningError
            For an unknown field name or a value out of range.
        """
        base = tuning if tuning is not None else cls()
        known = {f.name for f in fields(cls)}
        for name in changes:
            if name not in known:
                raise TuningError(name, f"unknown tuning field; known: {', '.join(sorted(known))}")
        return replace(base, **changes) if changes else base

    # Derived quantities (in blocks/windows) for a sample rate.
    def block_samples(self, rate: int) -> int:
        """Samples per block at ``rate``."""
        samples = self.hop_ms * rate / 1000.0
        if abs(samples - round(samples)) > 1e-9:
            raise TuningError("hop_ms", f"{self.hop_ms} ms is not a whole number of samples")
        return round(samples)

    @property
    def window_blocks(self) -> int:
        """Blocks per analysis window."""
        return round(self.window_ms / self.hop_ms)

    @property
    def on_windows(self) -> int:
        """Full windows needed to start a digit."""
        return math.floor((self.min_on_ms - self.window_ms) / self.hop_ms + 1e-9) + 1

    @property
    def off_windows(self) -> int:
        """Consecutive non-holding windows that end a digit."""
        return max(1, math.ceil(self.min_off_ms / self.hop_ms - 1e-9))


@dataclass(frozen=True)
class DigitEvent:
    """One detected digit.

    Attributes
    ----------
    digit : str
        The key, one of ``0-9 * # A-D``.
    start : float
        Start time in seconds from the first sample fed (resolution ``hop_ms``).
    end : float
        End time in seconds.
    channel : int
        The channel of a :class:`DtmfDetectorBank` (0 for :class:`DtmfDetector`).
    """

    digit: str
    start: float
    end: float
    channel: int = 0

    @property
    def duration(self) -> float:
        """``end - start`` in seconds."""
        return self.end - self.start


class _Analyser:
    """Per-rate constants: block basis, window phase factors, limits in linear units."""

    def __init__(self, rate: int, tuning: DetectorTuning) -> None:
        self.rate = rate
        self.tuning = tuning
        self.block = tuning.block_samples(rate)
        self.k = tuning.window_blocks
        self.window = self.block * self.k
        n = np.arange(self.block)
        phase = 2.0 * np.pi * np.outer(n, _ANALYSIS_FREQUENCIES) / rate
        # Real basis: [cos | -sin] so one float32 matmul gives real and imaginary parts.
        self.basis = np.concatenate([np.cos(phase), -np.sin(phase)], axis=1).astype(np.float32)
        theta = 2.0 * np.pi * _ANALYSIS_FREQUENCIES * self.block / rate
        self.rotation = np.exp(-1j * np.outer(np.arange(self.k), theta)).astype(np.complex64)
        self.fund_theta = theta[:8]
        t = tuning
        self.min_power = 10.0 ** ((t.min_level_dbm0 - FULL_SCALE_DBM0) / 10.0) / 2.0
        self.normal_twist = 10.0 ** (t.max_normal_twist_db / 10.0)
        self.reverse_twist = 10.0 ** (t.max_reverse_twist_db / 10.0)
        self.relative_peak = 10.0 ** (t.min_relative_peak_db / 10.0)
        self.harmonic = 10.0 ** (t.max_second_harmonic_db / 10.0)
        self.tone_to_total = 10.0 ** (t.min_tone_to_total_db / 10.0)
        self.edge = 10.0 ** (-t.edge_tolerance_db / 10.0)
        self.hold = 10.0 ** (-t.hold_drop_db / 10.0)

    def block_sums(self, x: npt.NDArray[np.float32]) -> tuple[np.ndarray, np.ndarray]:
        """Block DFTs ``(C, M, 16)`` complex64 and block energies ``(C, M)`` of ``(C, M*L)``."""
        c = x.shape[0]
        blocks = x.reshape(c, -1, self.block)
        prod = blocks @ self.basis
        half = len(_ANALYSIS_FREQUENCIES)
        sums = prod[..., :half] + 1j * prod[..., half:]
        energy = np.einsum("cml,cml->cm", blocks, blocks)
        return sums.astype(np.complex64, copy=False), energy

    def windows(
        self, sums: np.ndarray, energy: np.ndarray, *, diagnostics: bool = False
    ) -> dict[str, np.ndarray]:
        """Classify every window of ``k`` consecutive blocks.

        Returns arrays of shape ``(C, W)``: ``cls`` (digit index or -1), ``row``, ``col``
        (chosen tones) and ``power`` ``(C, W, 8)``: per-tone power at the nominal frequencies.
        """
        k, m = self.k, sums.shape[1]
        nwin = m - k + 1
        # Partial sums over the first k-1 blocks of each position (phase aligned).
        first = np.zeros((sums.shape[0], nwin + 1, sums.shape[2]), np.complex64)
        for i in range(k - 1):
            first += self.rotation[i] * sums[:, i : i + nwin + 1, :]
        full = first[:, :nwin] + self.rotation[k - 1] * sums[:, k - 1 : k - 1 + nwin, :]
        n = float(self.window)
        power = (np.abs(full) ** 2) * (2.0 / (n * n))  # a^2 / 2 with a = 2|X| / N
        fund = power[..., :8]
        harm = power[..., 8:]
        cum = np.concatenate(
            [np.zeros((energy.shape[0], 1)), np.cumsum(energy, axis=1, dtype=np.float64)], axis=1
        )
        total = (cum[:, k:] - cum[:, :-k]) / n
        rows = fund[..., :4]
        cols = fund[..., 4:]
        r = np.argmax(rows, axis=-1)
        c = np.argmax(cols, axis=-1)
        p_r = rows.max(axis=-1)
        p_c = cols.max(axis=-1)
        others_r = np.sort(rows, axis=-1)[..., -2]
        others_c = np.sort(cols, axis=-1)[..., -2]
        # Stage 1, cheap and on every window: checks that do not need the frequency. The
        # level and tone-to-total tests get 6 dB of slack here because the frequency
        # compensation below can raise a tone's level by up to 6 dB.
        maybe = (
            (p_r >= others_r * self.relative_peak)
            & (p_c >= others_c * self.relative_peak)
            & (p_r >= self.min_power * 0.25)
            & (p_c >= self.min_power * 0.25)
            & (p_r + p_c >= total * self.tone_to_total * 0.25)
        )
        cls = np.full(r.size, -1)
        found = np.flatnonzero(np.ones(r.size, bool) if diagnostics else maybe.ravel())
        out: dict[str, np.ndarray] = {"cls": cls, "row": r, "col": c, "power": fund}
        if found.size:
            # Stage 2 on the few windows left (tones, rarely speech).
            m = self._measure(
                found,
                r.ravel()[found],
                c.ravel()[found] + 4,
                first,
                full,
                harm.reshape(-1, 8)[found],
                nwin,
            )
            t = self.tuning
            p_r_s, p_c_s = p_r.ravel()[found], p_c.ravel()[found]
            lev_r, lev_c = m["lev_r"], m["lev_c"]
            ok = (
                (lev_r >= self.min_power)
                & (lev_c >= self.min_power)
                & (lev_r <= lev_c * self.normal_twist)
                & (lev_c <= lev_r * self.reverse_twist)
                & (m["h_r"] <= p_r_s * self.harmonic)
                & (m["h_c"] <= p_c_s * self.harmonic)
                & (lev_r + lev_c >= total.ravel()[found] * self.tone_to_total)
                & (np.abs(m["d_r"]) <= m["f_r"] * t.max_frequency_deviation)
                & (np.abs(m["d_c"]) <= m["f_c"] * t.max_frequency_deviation)
                & maybe.ravel()[found]
            )
            cls[found] = np.where(ok, r.ravel()[found] * 4 + c.ravel()[found], -1)
            if diagnostics:

                def db(p: np.ndarray) -> np.ndarray:
                    level: np.ndarray = 10.0 * np.log10(np.maximum(p, _TINY))
                    return level

                shape = r.shape
                out.update(
                    low_dbm0=(db(2.0 * lev_r) + FULL_SCALE_DBM0).reshape(shape),
                    high_dbm0=(db(2.0 * lev_c) + FULL_SCALE_DBM0).reshape(shape),
                    low_deviation=(m["d_r"] / m["f_r"]).reshape(shape),
                    high_deviation=(m["d_c"] / m["f_c"]).reshape(shape),
                    twist_db=(db(lev_c) - db(lev_r)).reshape(shape),
                    low_relative_peak_db=db(p_r) - db(others_r),
                    high_relative_peak_db=db(p_c) - db(others_c),
                    low_harmonic_db=(db(m["h_r"]) - db(p_r_s)).reshape(shape),
                    high_harmonic_db=(db(m["h_c"]) - db(p_c_s)).reshape(shape),
                    tone_to_total_db=(db(lev_r + lev_c) - db(total.ravel())).reshape(shape),
                )
        out["cls"] = cls.reshape(r.shape)
        return out

    def _measure(
        self,
        found: np.ndarray,
        r_idx: np.ndarray,
        c_idx: np.ndarray,
        first: np.ndarray,
        full: np.ndarray,
        harm: np.ndarray,
        nwin: int,
    ) -> dict[str, np.ndarray]:
        """Frequencies, leakage-corrected and frequency-compensated tone powers and
        second-harmonic powers of the chosen tones in the windows ``found`` (flat indices)."""
        channels = first.shape[0]
        win = found % nwin
        chan = found // nwin
        # Frequency offset from the phase advance of one block between the first and the last
        # k-1 blocks of the window: A_{t+1} conj(A_t), rotated back by the nominal advance.
        a = first[chan, win]
        b = first[chan, win + 1]
        x = full.reshape(channels * nwin, -1)[found]
        rows = np.arange(found.size)
        a_r, b_r, x_r = a[rows, r_idx], b[rows, r_idx], x[rows, r_idx]
        a_c, b_c, x_c = a[rows, c_idx], b[rows, c_idx], x[rows, c_idx]
        rot = self.rotation[1, :8]
        f_r = _FUNDAMENTALS[r_idx]
        f_c = _FUNDAMENTALS[c_idx]
        hz_per_rad = self.rate / (2.0 * np.pi * self.block)
        n_a = (self.k - 1) * self.block
        d_r = np.angle(b_r * np.conj(a_r) * rot[r_idx]) * hz_per_rad
        d_c = np.angle(b_c * np.conj(a_c) * rot[c_idx]) * hz_per_rad
        # Each tone leaks into the other's bin through the rectangular window's sidelobes (a
        # weak tone 8 dB under the other is off by up to +-2 dB, its frequency by 0.5 %).
        # Knowing each tone's frequency and complex amplitude, remove its leakage from the
        # other bin and measure again (twice: the second pass uses the cleaner frequencies).
        xr0, xc0, ar0, ac0, br0, bc0 = x_r, x_c, a_r, a_c, b_r, b_c
        for _ in range(2):
            lr_x = _leak_ratio(f_r + d_r, f_r, f_c, self.window, self.rate)  # row into column
            lc_x = _leak_ratio(f_c + d_c, f_c, f_r, self.window, self.rate)  # column into row
            lr_a = _leak_ratio(f_r + d_r, f_r, f_c, n_a, self.rate)
            lc_a = _leak_ratio(f_c + d_c, f_c, f_r, n_a, self.rate)
            x_r, x_c = xr0 - xc0 * lc_x, xc0 - xr0 * lr_x
            a_r, a_c = ar0 - ac0 * lc_a, ac0 - ar0 * lr_a
            b_r, b_c = br0 - bc0 * lc_a, bc0 - br0 * lr_a
            d_r = np.angle(b_r * np.conj(a_r) * rot[r_idx]) * hz_per_rad
            d_c = np.angle(b_c * np.conj(a_c) * rot[c_idx]) * hz_per_rad
        scale = 2.0 / (self.window * self.window)
        # Undo the rectangular window's attenuation of an off-frequency tone (at most 6 dB).
        g_r = np.maximum(_window_gain(d_r, self.window, self.rate), 0.5) ** 2
        g_c = np.maximum(_window_gain(d_c, self.window, self.rate), 0.5) ** 2
        lev_r = np.abs(x_r) ** 2 * scale / g_r
        lev_c = np.abs(x_c) ** 2 * scale / g_c
        h_r = harm[rows, r_idx]
        h_c = harm[rows, c_idx]
        # Twice a row frequency lies within 4.5 % of a column frequency (2 x 697 = 1394 vs
        # 1336): take out what the column tone itself leaks into the row's harmonic bin, so a
        # real tone pair with +-1.5 % offsets is not mistaken for a harmonic-rich sound.
        leak = lev_c * _window_gain(2.0 * f_r - (f_c + d_c), self.window, self.rate) ** 2
        h_r = np.maximum(h_r - leak, 0.0)
        return {
            "d_r": d_r,
            "d_c": d_c,
            "f_r": f_r,
            "f_c": f_c,
            "lev_r": lev_r,
            "lev_c": lev_c,
            "h_r": h_r,
            "h_c": h_c,
        }


def _dirichlet(offset_hz: np.ndarray, n: int, rate: int) -> np.ndarray:
    """``sum(exp(2j*pi*offset*k/rate) for k in range(n))``: a tone ``offset_hz`` away from a
    bin, seen through an ``n``-sample rectangular window (complex, time origin at sample 0)."""
    x = offset_hz / rate
    response: np.ndarray = np.exp(1j * np.pi * x * (n - 1)) * n * (np.sinc(x * n) / np.sinc(x))
    return response


def _leak_ratio(
    tone_hz: np.ndarray, own_bin_hz: np.ndarray, other_bin_hz: np.ndarray, n: int, rate: int
) -> np.ndarray:
    """What a tone at ``tone_hz`` puts into ``other_bin_hz`` relative to its own bin's value
    (0 where its own bin sees it too faintly to say)."""
    own = _dirichlet(tone_hz - own_bin_hz, n, rate)
    other = _dirichlet(tone_hz - other_bin_hz, n, rate)
    ok = np.abs(own) >= 0.5 * n
    return np.where(ok, other / np.where(ok, own, 1.0), 0.0)


def _window_gain(offset_hz: np.ndarray, n: int, rate: int) -> np.ndarray:
    """Magnitude response of an ``n``-sample rectangular DFT at ``offset_hz`` from the bin."""
    x = offset_hz / rate
    return np.abs(np.sinc(x * n) / np.sinc(x))


class DtmfDetectorBank:
    """Streaming inband DTMF receiver for many channels at once (vectorised across them).

    Parameters
    ----------
    channels : int
        Number of independent channels.
    rate : int
        Sample rate, 8000 or 16000 Hz.
    tuning : DetectorTuning, optional
        Base tuning; keyword arguments override its fields.
    **changes
        :class:`DetectorTuning` fields.

    Notes
    -----
    :meth:`feed` takes ``(channels, n)`` samples with any ``n``; leftovers shorter than a block
    are buffered. Digits are reported when they end (see :attr:`active` for those in
    progress), with times measured from the first sample fed.
    """

    def __init__(
        self,
        channels: int,
        rate: int = 8000,
        *,
        tuning: DetectorTuning | None = None,
        **changes: Any,
    ) -> None:
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise AudioInputError(f"channels must be a positive int, got {channels!r}")
        self.rate = _check_rate(rate)
        self.tuning = DetectorTuning.from_kwargs(tuning, **changes)
        self.channels = channels
        self._an = _Analyser(self.rate, self.tuning)
        c = channels
        k = self._an.k
        self._pending = np.zeros((c, 0), np.float32)
        self._sums = np.zeros((c, k - 1, len(_ANALYSIS_FREQUENCIES)), np.complex64)
        self._energy = np.zeros((c, k - 1))
        self._blocks_seen = 0
        # Window features kept for the one-window look-ahead: [previous, pending].
        self._feat_cls = np.full((c, 1), -1)
        self._feat_row = np.zeros((c, 1), np.int64)
        self._feat_col = np.zeros((c, 1), np.int64)
        self._feat_power = np.zeros((c, 1, 8))
        self._first_index = -1  # global window index of the first buffered window
        # Decision state, one small record per channel.
        self._states = [_ChannelState() for _ in range(c)]

    @property
    def active(self) -> list[tuple[str, float] | None]:
        """Per channel, the digit in progress and its start time, or ``None``."""
        hop = self._an.block / self.rate
        return [(DIGITS[st.cand], st.start * hop) if st.reported else None for st in self._states]

    def feed(self, samples: np.ndarray) -> list[DigitEvent]:
        """Process ``(channels, n)`` samples (int16, or float in [-1, 1)).

        Returns
        -------
        list of DigitEvent
            Digits that ended within these samples, in time order per channel.
        """
        x = _as_float_samples(samples, ndim=2)
        if x.shape[0] != self.channels:
            raise AudioInputError(f"expected {self.channels} channels, got {x.shape[0]}")
        if self._pending.shape[1]:
            x = np.concatenate([self._pending, x], axis=1)
        nblocks = x.shape[1] // self._an.block
        used = nblocks * self._an.block
        self._pending = x[:, used:].copy()
        if nblocks == 0:
            return []
        sums, energy = self._an.block_sums(np.ascontiguousarray(x[:, :used]))
        sums = np.concatenate([self._sums, sums], axis=1)
        energy = np.concatenate([self._energy, energy], axis=1)
        k = self._an.k
        self._sums = sums[:, -(k - 1) :]
        self._energy = energy[:, -(k - 1) :]
        first_new_window = self._blocks_seen - (k - 1)
        self._blocks_seen += nblocks
        if sums.shape[1] < k:
            return []
        feats = self._an.windows(sums, energy)
        start = max(0, -first_new_window)  # windows before the stream start are not real
        return self._decide(
            feats["cls"][:, start:],
            feats["row"][:, start:],
            feats["col"][:, start:],
            feats["power"][:, start:],
        )

    def flush(self) -> list[DigitEvent]:
        """End of stream: decide the last window and end any digit in progress."""
        c = self.channels
        events = self._decide(
            np.full((c, 1), -1),
            np.zeros((c, 1), np.int64),
            np.zeros((c, 1), np.int64),
            np.zeros((c, 1, 8)),
        )
        hop = self._an.block / self.rate
        for i, st in enumerate(self._states):
            if st.reported:
                events.append(self._event(i, st, hop))
            self._states[i] = _ChannelState()
        return events

    def _event(self, channel: int, st: _ChannelState, hop: float) -> DigitEvent:
        return DigitEvent(
            DIGITS[st.cand],
            st.start * hop,
            st.last_full * hop + self._an.window / self.rate,
            channel,
        )

    def _decide(
        self, cls: np.ndarray, row: np.ndarray, col: np.ndarray, power: np.ndarray
    ) -> list[DigitEvent]:
        """Run the per-channel timing state machine over windows ``1 .. n-2`` of the buffered
        plus new windows (each needs its neighbours for the *full* test)."""
        cls = np.concatenate([self._feat_cls, cls], axis=1)
        row = np.concatenate([self._feat_row, row], axis=1)
        col = np.concatenate([self._feat_col, col], axis=1) + 4
        power = np.concatenate([self._feat_power, power], axis=1)
        base = self._first_index
        nwin = cls.shape[1]
        events: list[DigitEvent] = []
        if nwin >= 3:
            # Vectorised: the energy of each window at its own two tones and the same tones in
            # the neighbouring windows -> the "full" flag.
            inner = slice(1, nwin - 1)
            ch = np.arange(self.channels)[:, None]
            pos = np.arange(1, nwin - 1)[None, :]
            r, c = row[:, inner], col[:, inner]

            def pair(at: np.ndarray) -> np.ndarray:
                energy: np.ndarray = power[ch, at, r] + power[ch, at, c]
                return energy

            e, e_prev, e_next = pair(pos), pair(pos - 1), pair(pos + 1)
            full = (cls[:, inner] >= 0) & (e >= np.maximum(e_prev, e_next) * self._an.edge)
            busy = np.asarray((cls[:, inner] >= 0).any(axis=1))
            hop = self._an.block / self.rate
            for i, st in enumerate(self._states):
                if not (busy[i] or st.cand >= 0):
                    continue  # silence or speech and nothing pending: nothing can change
                self._run_channel(
                    i,
                    st,
                    base + 1,
                    cls[i, inner].tolist(),
                    full[i].tolist(),
                    power[i, inner].tolist(),
                    events,
                    hop,
                )
        keep = min(2, nwin)
        self._feat_cls = cls[:, -keep:]
        self._feat_row = row[:, -keep:]
        self._feat_col = col[:, -keep:] - 4
        self._feat_power = power[:, -keep:]
        self._first_index = base + nwin - keep
        return events

    def _run_channel(
        self,
        channel: int,
        st: _ChannelState,
        first_index: int,
        classes: list[int],
        fulls: list[bool],
        powers: list[list[float]],
        events: list[DigitEvent],
        hop: float,
    ) -> None:
        on_windows = self.tuning.on_windows
        off_windows = self.tuning.off_windows
        hold_ratio = self._an.hold
        for offset, (cls, full, p) in enumerate(zip(classes, fulls, powers, strict=True)):
            index = first_index + offset
            match = cls == st.cand and cls >= 0
            if st.reported:
                # A started digit holds while both its tones stay near their peak.
                p_r, p_c = p[st.cand // 4], p[st.cand % 4 + 4]
                if match or (p_r >= st.peak_r * hold_ratio and p_c >= st.peak_c * hold_ratio):
                    st.gap = 0
                    if match and full:
                        st.last_full = index
                        st.peak_r = max(st.peak_r, p_r)
                        st.peak_c = max(st.peak_c, p_c)
                    continue
                st.gap += 1
                if st.gap < off_windows:
                    continue
                events.append(self._event(channel, st, hop))
                st.reset()
                match = False
            # Idle or candidate: consecutive windows of one digit, only full ones count.
            if cls < 0:
                st.reset()
                continue
            if not match:
                st.reset()
                st.cand = cls
            if full:
                if st.run == 0:
                    st.start = index
                st.run += 1
                st.last_full = index
                st.peak_r = max(st.peak_r, p[cls // 4])
                st.peak_c = max(st.peak_c, p[cls % 4 + 4])
                if st.run >= on_windows:
                    st.reported = True
                    st.gap = 0


class _ChannelState:
    """Timing state of one channel: candidate digit, counters, peaks."""

    __slots__ = ("cand", "gap", "last_full", "peak_c", "peak_r", "reported", "run", "start")

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.cand = -1
        self.run = 0
        self.reported = False
        self.gap = 0
        self.start = 0
        self.last_full = 0
        self.peak_r = 0.0
        self.peak_c = 0.0


class DtmfDetector:
    """Streaming inband DTMF receiver for one channel.

    Parameters
    ----------
    rate : int
        8000 or 16000 Hz.
    tuning : DetectorTuning, optional
        Base tuning; keyword arguments override its fields.
    **changes
        :class:`DetectorTuning` fields, e.g. ``min_level_dbm0=-35``.

    Examples
    --------
    >>> det = DtmfDetector()
    >>> events = []
    >>> for chunk in np.split(generate_digits("12"), 40):
    ...     events += det.feed(chunk)
    >>> events += det.flush()
    >>> "".join(e.digit for e in events)
    '12'
    """

    def __init__(
        self, rate: int = 8000, *, tuning: DetectorTuning | None = None, **changes: Any
    ) -> None:
        self._bank = DtmfDetectorBank(1, rate, tuning=tuning, **changes)

    @property
    def tuning(self) -> DetectorTuning:
        """The tuning in use."""
        return self._bank.tuning

    @property
    def rate(self) -> int:
        """The sample rate."""
        return self._bank.rate

    @property
    def active(self) -> tuple[str, float] | None:
        """The digit in progress and its start time in seconds, or ``None``."""
        return self._bank.active[0]

    def feed(self, samples: np.ndarray) -> list[DigitEvent]:
        """Process 1-D samples (int16 or float in [-1, 1)) of any length.

        Returns
        -------
        list of DigitEvent
            Digits that ended within these samples.
        """
        x = _as_float_samples(samples, ndim=1)
        return self._bank.feed(x[None, :])

    def flush(self) -> list[DigitEvent]:
        """End of stream: report a digit still in progress."""
        return self._bank.flush()


def detect_events(
    samples: np.ndarray,
    rate: int = 8000,
    *,
    tuning: DetectorTuning | None = None,
    **changes: Any,
) -> list[DigitEvent]:
    """Detect DTMF digits in a whole signal, with their times.

    Parameters
    ----------
    samples : np.ndarray, shape (n,), dtype int16 or float32/float64 in [-1, 1)
        The signal.
    rate : int
        8000 or 16000 Hz.
    tuning, **changes
        See :class:`DetectorTuning`.

    Returns
    -------
    list of DigitEvent
    """
    detector = DtmfDetector(rate, tuning=tuning, **changes)
    return detector.feed(samples) + detector.flush()


def detect_digits(
    samples: np.ndarray,
    rate: int = 8000,
    *,
    tuning: DetectorTuning | None = None,
    **changes: Any,
) -> str:
    """Detect DTMF digits in a whole signal.

    Parameters
    ----------
    samples : np.ndarray, shape (n,), dtype int16 or float32/float64 in [-1, 1)
        The signal.
    rate : int
        8000 or 16000 Hz.
    tuning, **changes
        See :class:`DetectorTuning`.

    Returns
    -------
    str
        The digits in order, e.g. ``"123#"``.
    """
    return "".join(e.digit for e in detect_events(samples, rate, tuning=tuning, **changes))


def analyse_windows(
    samples: np.ndarray,
    rate: int = 8000,
    *,
    tuning: DetectorTuning | None = None,
    **changes: Any,
) -> dict[str, np.ndarray]:
    """Per-window measurements of the receiver, for plots and tuning in a notebook.

    Parameters
    ----------
    samples : np.ndarray, shape (n,), dtype int16 or float in [-1, 1)
    rate : int
        8000 or 16000 Hz.
    tuning, **changes
        See :class:`DetectorTuning`.

    Returns
    -------
    dict of np.ndarray, each of shape (windows,)
        ``time`` (window start, s), ``digit`` (key accepted by the per-window checks or ``""``),
        ``low_dbm0``, ``high_dbm0``, ``low_deviation``, ``high_deviation`` (relative),
        ``twist_db`` (high minus low), ``low_relative_peak_db``, ``high_relative_peak_db``,
        ``low_harmonic_db``, ``high_harmonic_db``, ``tone_to_total_db``.
    """
    rate = _check_rate(rate)
    analyser = _Analyser(rate, DetectorTuning.from_kwargs(tuning, **changes))
    x = _as_float_samples(samples, ndim=1)
    n = x.shape[0] // analyser.block * analyser.block
    if n < analyser.window:
        raise AudioInputError(f"need at least {analyser.window} samples, got {x.shape[0]}")
    sums, energy = analyser.block_sums(np.ascontiguousarray(x[None, :n]))
    found = analyser.windows(sums, energy, diagnostics=True)
    out = {key: value[0] for key, value in found.items() if key not in ("row", "col", "power")}
    cls = out.pop("cls")
    out["digit"] = np.array([DIGITS[i] if i >= 0 else "" for i in cls])
    out["time"] = np.arange(cls.shape[0]) * analyser.block / rate
    return out


def tone_levels_dbm0(level_dbm0: float, twist_db: float = 0.0) -> tuple[float, float]:
    """Per-tone levels ``(low group, high group)`` used by :func:`generate_digits`.

    The louder tone is at ``level_dbm0``; ``twist_db > 0`` makes the high group louder
    (reverse twist), ``twist_db < 0`` the low group (normal twist).
    """
    if twist_db >= 0:
        return level_dbm0 - twist_db, level_dbm0
    return level_dbm0, level_dbm0 + twist_db


def generate_digits(
    digits: str | Sequence[str],
    rate: int = 8000,
    on_ms: float = 100,
    off_ms: float = 100,
    level_dbm0: float = -10,
    twist_db: float = 0,
    *,
    row_deviation: float = 0.0,
    column_deviation: float = 0.0,
    clip: bool = False,
) -> npt.NDArray[np.int16]:
    """Generate DTMF tones: each digit ``on_ms`` of tone followed by ``off_ms`` of silence.

    Parameters
    ----------
    digits : str
        Keys from ``0-9 * # A-D`` (a-d accepted).
    rate : int
        8000 or 16000 Hz.
    on_ms, off_ms : float
        Tone and pause durations in ms.
    level_dbm0 : float
        Level of the louder tone, per tone, in dBm0 (+3.17 dBm0 = full-scale sine).
    twist_db : float
        High-group level minus low-group level: positive makes the high group louder
        (reverse twist), negative the low group (normal twist).
    row_deviation, column_deviation : float
        Relative frequency offsets of the tones (0.015 = +1.5 %).
    clip : bool
        Two tones at 0 dBm0 each peak above full scale; by default that raises, with
        ``clip=True`` the samples saturate as a G.711 channel would.

    Returns
    -------
    np.ndarray, shape (len(digits) * (on + off) samples,), dtype int16

    Raises
    ------
    DigitError
        For a character that is not a key.
    AudioInputError
        For an unsupported rate, negative durations, or a level that would clip.
    """
    rate = _check_rate(rate)
    if on_ms < 0 or off_ms < 0:
        raise AudioInputError(f"on_ms and off_ms must be >= 0, got {on_ms}, {off_ms}")
    indices = [_digit_index(d) for d in digits]
    low_db, high_db = tone_levels_dbm0(level_dbm0, twist_db)
    a_low = 10.0 ** ((low_db - FULL_SCALE_DBM0) / 20.0)
    a_high = 10.0 ** ((high_db - FULL_SCALE_DBM0) / 20.0)
    if a_low + a_high > 32767 / 32768 and not clip:
        raise AudioInputError(
            f"two tones at {low_db:.2f} and {high_db:.2f} dBm0 peak above full scale; "
            "lower level_dbm0 or pass clip=True"
        )
    n_on = round(on_ms * rate / 1000.0)
    n_off = round(off_ms * rate / 1000.0)
    t = np.arange(n_on) / rate
    out = np.zeros(len(indices) * (n_on + n_off))
    for i, index in enumerate(indices):
        f_low = ROW_FREQUENCIES[index // 4] * (1.0 + row_deviation)
        f_high = COLUMN_FREQUENCIES[index % 4] * (1.0 + column_deviation)
        tone = a_low * np.sin(2 * np.pi * f_low * t) + a_high * np.sin(2 * np.pi * f_high * t)
        start = i * (n_on + n_off)
        out[start : start + n_on] = tone
    return np.clip(np.round(out * 32768.0), -32768, 32767).astype(np.int16)
