"""Classification metrics (macro-F1, accuracy, confusion) in plain numpy."""

from __future__ import annotations

import numpy as np


def confusion(y_true, y_pred, n_classes: int) -> np.ndarray:
    """Counts[i, j] = windows of true class i predicted as j."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes).reshape(
        n_classes, n_classes)


def macro_f1(y_true, y_pred, n_classes: int) -> float:
    """Unweighted mean F1 over the classes present in `y_true` or `y_pred`."""
    c = confusion(y_true, y_pred, n_classes).astype(np.float64)
    tp = np.diag(c)
    support, predicted = c.sum(1), c.sum(0)
    present = (support + predicted) > 0
    f1 = np.where(present, 2 * tp / np.maximum(support + predicted, 1), 0.0)
    return float(f1[present].mean()) if present.any() else 0.0


def report(y_true, y_pred, labels) -> dict:
    """macro_f1, accuracy, per-class F1 and the confusion matrix as plain JSON types."""
    n = len(labels)
    c = confusion(y_true, y_pred, n)
    tp, support, predicted = np.diag(c), c.sum(1), c.sum(0)
    per_class = 2 * tp / np.maximum(support + predicted, 1)
    return {
        "macro_f1": macro_f1(y_true, y_pred, n),
        "accuracy": float(tp.sum() / max(c.sum(), 1)),
        "n": int(c.sum()),
        "per_class_f1": {name: float(f) for name, f in zip(labels, per_class)},
        "labels": list(labels),
        "confusion": c.tolist(),
    }


def chance(y_true, n_classes: int, draws: int = 1000, seed: int = 0) -> dict:
    """What uniformly random guessing over `n_classes` scores on `y_true`, measured over `draws`
    runs: macro-F1 (mean, std) and each class's F1 (mean)."""
    y_true = np.asarray(y_true)
    rng = np.random.default_rng(seed)
    macro, per_class = [], []
    for _ in range(draws):
        pred = rng.integers(0, n_classes, len(y_true))
        c = confusion(y_true, pred, n_classes)
        per_class.append(2 * np.diag(c) / np.maximum(c.sum(0) + c.sum(1), 1))
        macro.append(macro_f1(y_true, pred, n_classes))
    return {"macro_f1": float(np.mean(macro)), "macro_f1_std": float(np.std(macro)),
            "per_class_f1": np.mean(per_class, axis=0).tolist()}


def softmax(z: np.ndarray) -> np.ndarray:
    """Class probabilities of scores `z` along the last axis (float64 inside, float32 out)."""
    z = np.asarray(z, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)
