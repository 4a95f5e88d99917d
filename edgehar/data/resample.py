"""Rate and unit conversion of recordings (scipy polyphase resampling)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from scipy.signal import resample_poly

from edgehar.data.recording import Recording

G = 9.80665  # m/s^2 per g (standard gravity)

# unit -> (canonical unit, factor to multiply by to reach it)
_TO_CANONICAL = {
    "g": ("m/s^2", G),
    "m/s^2": ("m/s^2", 1.0),
    "rad/s": ("rad/s", 1.0),
    "deg/s": ("rad/s", np.pi / 180.0),
}


def rate_ratio(source: float, target: float, max_den: int = 1000) -> tuple[int, int]:
    """(up, down) integers with up/down ~= target/source."""
    frac = Fraction(float(target) / float(source)).limit_denominator(max_den)
    return frac.numerator, frac.denominator


def resample_array(x: np.ndarray, source: float, target: float) -> np.ndarray:
    """Resample (samples, channels) from `source` Hz to `target` Hz with a polyphase filter."""
    if source == target:
        return np.asarray(x, dtype=np.float32)
    up, down = rate_ratio(source, target)
    return resample_poly(np.asarray(x, dtype=np.float64), up, down, axis=0,
                         padtype="line").astype(np.float32)


def resample(rec: Recording, rate: float) -> Recording:
    """`rec` at `rate` Hz; labels follow the nearest original sample."""
    if rec.rate == rate:
        return rec
    data = resample_array(rec.data, rec.rate, rate)
    labels = None
    if rec.labels is not None:
        src = np.minimum(np.round(np.arange(len(data)) * rec.rate / rate).astype(np.int64),
                         rec.n_samples - 1)
        labels = rec.labels[src]
    return rec.with_data(data, rate=float(rate), labels=labels)


def unit_factor(source: str, target: str) -> float:
    """Multiplier taking values in `source` units to `target` units (same quantity)."""
    if source == target:
        return 1.0
    try:
        s_canon, s_f = _TO_CANONICAL[source]
        t_canon, t_f = _TO_CANONICAL[target]
    except KeyError as e:
        raise ValueError(f"unknown unit {e.args[0]!r} (known: {', '.join(_TO_CANONICAL)})") from None
    if s_canon != t_canon:
        raise ValueError(f"cannot convert {source} to {target}")
    return s_f / t_f


def convert_units(rec: Recording, units: list[str] | tuple[str, ...]) -> Recording:
    """`rec` with each channel converted to the matching entry of `units`."""
    units = tuple(units)
    if len(units) != len(rec.units):
        raise ValueError(f"{len(units)} target units for {len(rec.units)} channels")
    factors = np.array([unit_factor(s, t) for s, t in zip(rec.units, units)], dtype=np.float32)
    if np.all(factors == 1.0):
        return rec.with_data(rec.data, units=units)
    return rec.with_data(rec.data * factors, units=units)
