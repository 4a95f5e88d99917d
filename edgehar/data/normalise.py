"""Per-channel normalisation statistics, computed on training windows only."""

from __future__ import annotations

import numpy as np

from edgehar.data.windows import Windows


def channel_stats(w: Windows, min_std: float = 1e-6) -> tuple[list[float], list[float]]:
    """Mean and standard deviation of every channel over all samples of all windows."""
    mean, std, _ = _per_channel(w.x, min_std)
    return mean.tolist(), std.tolist()


def rotation_safe_stats(x: np.ndarray, positions, min_std: float = 1e-6) -> tuple[list[float], list[float]]:
    """Per-channel (mean, std) normalisation of windows x (N, T, C) that commutes with rotations:
    no offset and one scale shared by the three axes of every sensor triple (acc x/y/z share
    one std, gyro x/y/z another), so rotating normalised windows rotates the physical vectors
    (a per-axis shift or scale would skew them). Channels outside a triple keep their own mean
    and std."""
    mean, std, flat = _per_channel(x, min_std)
    for triples in positions:
        for idx in triples:
            mean[idx] = 0.0
            std[idx] = max(float(flat[:, idx].std()), min_std)  # pooled over the three axes
    return mean.tolist(), std.tolist()


def _per_channel(x: np.ndarray, min_std: float):
    flat = x.reshape(-1, x.shape[-1]).astype(np.float64)
    return flat.mean(axis=0), np.maximum(flat.std(axis=0), min_std), flat
