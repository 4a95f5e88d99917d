"""Per-channel normalisation statistics, computed on training windows only."""

from __future__ import annotations

import numpy as np

from edgehar.data.windows import Windows


def channel_stats(w: Windows, min_std: float = 1e-6) -> tuple[list[float], list[float]]:
    """Mean and standard deviation of every channel over all samples of all windows."""
    flat = w.x.reshape(-1, w.x.shape[-1]).astype(np.float64)
    mean = flat.mean(axis=0)
    std = np.maximum(flat.std(axis=0), min_std)
    return mean.tolist(), std.tolist()
