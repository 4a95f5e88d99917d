"""Rate and unit conversion of recordings (scipy polyphase resampling)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from edgehar.data.recording import Recording
from edgehar.errors import UserError

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
    from scipy.signal import resample_poly  # 0.8-1.9 s to import: only when a rate really changes

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


def resample_on_times(t: np.ndarray, values: np.ndarray, labels: np.ndarray, rate: float,
                      path, first_line: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """(values as float32, labels) on a grid of `rate` Hz from the first time stamp (`t` in
    seconds), by linear interpolation; a grid point takes the label of the nearest sample.

    Repeated stamps are averaged; time going backwards is a `UserError` naming the line. The
    caller bounds the grid (a glitched stamp must not make it huge).
    """
    steps = np.diff(t)
    if (steps < 0).any():
        k = int(np.flatnonzero(steps < 0)[0]) + 1
        raise UserError(path, f"line {k + first_line}: time goes backwards "
                              f"({t[k - 1]:.3f} s, then {t[k]:.3f} s)")
    first = np.concatenate([[0], np.flatnonzero(steps > 0) + 1])  # first sample of each stamp
    del steps
    uniq = t[first]
    counts = np.diff(np.append(first, len(t)))
    n = int(np.floor((uniq[-1] - uniq[0]) * rate + 1e-9)) + 1
    grid = uniq[0] + np.arange(n) / rate
    out = np.empty((n, values.shape[1]), np.float32)
    for c in range(values.shape[1]):  # one float64 column at a time
        mean = np.add.reduceat(np.asarray(values[:, c], np.float64), first) / counts
        out[:, c] = np.interp(grid, uniq, mean)
    del mean, uniq, counts, first
    right = np.clip(np.searchsorted(t, grid), 0, len(t) - 1)
    left = np.clip(right - 1, 0, len(t) - 1)
    nearest = np.where(np.abs(t[left] - grid) <= np.abs(t[right] - grid), left, right)
    return out, labels[nearest]
