"""Subject-disjoint splits: no subject ever appears on both sides."""

from __future__ import annotations

import numpy as np

from edgehar.data.windows import Windows


def split_subjects(w: Windows, test_subjects) -> tuple[Windows, Windows]:
    """(train, test) where test holds exactly the windows of `test_subjects`."""
    test = np.isin(w.subject, list(test_subjects))
    return w.take(~test), w.take(test)


def validation_subjects(subjects, fraction: float = 0.15, seed: int = 0) -> list[int]:
    """A reproducible subset of `subjects` held out for validation (at least one)."""
    subjects = sorted(set(int(s) for s in subjects))
    rng = np.random.default_rng(seed)
    n = max(1, int(round(fraction * len(subjects))))
    return sorted(rng.choice(subjects, size=n, replace=False).tolist())


def leave_subjects_out(subjects, k: int, seed: int = 0) -> list[tuple[list[int], list[int]]]:
    """k folds of (train_subjects, test_subjects); every subject is tested exactly once."""
    subjects = sorted(set(int(s) for s in subjects))
    if not 2 <= k <= len(subjects):
        raise ValueError(f"k={k} folds need 2..{len(subjects)} subjects")
    order = np.random.default_rng(seed).permutation(subjects)
    folds = np.array_split(order, k)
    return [(sorted(set(subjects) - set(f.tolist())), sorted(f.tolist())) for f in folds]


def keep_label_fraction(y: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A copy of y where only a class-stratified `fraction` of the labelled windows keep labels."""
    if fraction >= 1.0:
        return y.copy()
    rng = np.random.default_rng(seed)
    out = np.full_like(y, -1)
    for c in np.unique(y[y >= 0]):
        idx = np.flatnonzero(y == c)
        k = max(1, int(round(fraction * len(idx))))
        keep = rng.choice(idx, size=k, replace=False)
        out[keep] = c
    return out
