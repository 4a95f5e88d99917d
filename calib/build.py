"""Calibration sets: real windows drawn class- and subject-stratified, with their provenance.

File format (`.npz`, loadable with `allow_pickle=False`):
- `x` (N, T, C) float32: RAW windows in the data's units (the exporter normalises them with
  the model card, so one set serves every model with the same input format);
- `y` (N,) int64: class id, -1 for an unlabelled window (transitions, unlabelled stretches:
  they are real inputs the deployed model will see, so they belong in calibration);
- `subject` (N,) int64;
- `provenance`: a JSON string (format, dataset, root, rate, window, hop, channels, units, seed,
  n, subjects, excluded subjects, per-class counts, created).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgehar.atomic import staged_file
from edgehar.card import provenance as stamp
from edgehar.data import hapt
from edgehar.data.datasets import activity_windows, data_root
from edgehar.errors import UserError, first_line, require_file

FORMAT = "edgehar-calib/1"
UNLABELLED_NAME = "unlabelled"


@dataclass
class CalibSet:
    x: np.ndarray  # (N, T, C) raw float32
    y: np.ndarray  # (N,) int64, -1 = unlabelled
    subject: np.ndarray  # (N,) int64
    provenance: dict

    def __len__(self) -> int:
        return int(len(self.x))


def _round_robin(groups: list[list[int]]) -> list[int]:
    """Interleave groups: one item from each in turn until all are used up."""
    out, depth = [], max((len(g) for g in groups), default=0)
    for i in range(depth):
        out.extend(g[i] for g in groups if i < len(g))
    return out


def stratified_indices(y: np.ndarray, subject: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Up to `n` indices balanced over classes (unlabelled = one more class) and, within a
    class, spread evenly over subjects; a class that runs out leaves its share to the others."""
    rng = np.random.default_rng(seed)
    per_class = []
    for c in np.unique(y):
        subjects = rng.permutation(np.unique(subject[y == c]))
        per_class.append(_round_robin([rng.permutation(np.flatnonzero((y == c) & (subject == s))).tolist()
                                       for s in subjects]))
    order = [per_class[i] for i in rng.permutation(len(per_class))]
    return np.array(sorted(_round_robin(order)[:n]), dtype=np.int64)


def calib_from_windows(w, n: int, seed: int = 0, **provenance) -> CalibSet:
    """A calibration set of `n` windows drawn from `Windows` w (stratified, reproducible)."""
    if n < 1:
        raise UserError("--n", f"needs at least 1 window, got {n}")
    idx = stratified_indices(w.y, w.subject, n, seed)
    y, subject = w.y[idx], w.subject[idx]
    names = list(w.label_names)
    counts = {(names[c] if 0 <= c < len(names) else UNLABELLED_NAME): int((y == c).sum())
              for c in np.unique(y)}
    prov = stamp(format=FORMAT, **provenance, rate=float(w.rate), window=int(w.length), hop=int(w.hop),
                 channels=list(w.channels), units=list(w.units), label_names=names, seed=seed,
                 n=int(len(idx)), requested=int(n), subjects=sorted(int(s) for s in np.unique(subject)),
                 counts=counts)
    return CalibSet(x=w.x[idx].astype(np.float32), y=y.astype(np.int64), subject=subject.astype(np.int64),
                    provenance=prov)


def build_calibration(dataset: str, n: int = 500, root=None, rate: float = 50.0, window: int | None = None,
                      channels=None, units=None, seed: int = 0, exclude_subjects=None) -> CalibSet:
    """Load data set `dataset`, window it as a model expects, and draw a calibration set.

    `exclude_subjects` defaults to the data set's official test subjects (HAPT), so the
    windows used to judge an export never calibrate it.
    """
    w = activity_windows(dataset, root, rate=rate, window=window, channels=channels, units=units)
    if exclude_subjects is None:
        exclude_subjects = list(hapt.TEST_SUBJECTS) if dataset == "hapt" else []
    keep = ~np.isin(w.subject, list(exclude_subjects))
    if not keep.any():
        raise UserError(dataset, "no windows left after excluding the test subjects")
    return calib_from_windows(w.take(keep), n, seed, dataset=dataset, root=str(data_root(dataset, root)),
                              excluded_subjects=sorted(int(s) for s in exclude_subjects))


def save_calib(path, calib: CalibSet) -> Path:
    """Write a calibration set atomically as .npz (see the module docstring for the format)."""
    path = Path(path)
    if path.suffix != ".npz":
        raise UserError(path, "calibration file name must end in .npz")
    if not np.isfinite(calib.x).all():  # a NaN window would spoil every quantisation range
        raise UserError(path, "refusing to write calibration windows holding NaN or infinite values")
    with staged_file(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, x=calib.x, y=calib.y, subject=calib.subject,
                     provenance=np.array(json.dumps(calib.provenance)))
    return path


def load_calib(path) -> CalibSet:
    """Read and validate a calibration .npz."""
    path = require_file(path, "calibration file")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ("x", "y", "subject", "provenance") if k not in z.files]
            if missing:
                raise UserError(path, f"not an edgehar calibration set (lacks {', '.join(missing)})")
            x, y, subject, prov = z["x"], z["y"], z["subject"], str(z["provenance"])
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 - a cut or damaged zip raises BadZipFile, EOFError, zlib.error...
        raise UserError(path, f"not a readable .npz calibration set, truncated or damaged "
                              f"({first_line(e, 100)})") from None
    try:
        prov = json.loads(prov)
    except ValueError:
        raise UserError(path, "calibration provenance is not JSON") from None
    if not isinstance(prov, dict):
        raise UserError(path, "calibration provenance is not a JSON object")
    if x.ndim != 3 or len(x) == 0:
        raise UserError(path, f"calibration windows must be (N, T, C) with N >= 1, got shape {x.shape}")
    if any(a.dtype.kind not in "fiu" for a in (x, y, subject)):
        raise UserError(path, f"calibration arrays are not numbers (x {x.dtype}, y {y.dtype}, "
                              f"subject {subject.dtype})")
    if not np.isfinite(x).all():
        raise UserError(path, "calibration windows hold NaN or infinite values")
    if y.shape != (len(x),) or subject.shape != (len(x),):
        raise UserError(path, f"y {y.shape} / subject {subject.shape} do not match {len(x)} windows")
    return CalibSet(x=x.astype(np.float32), y=y.astype(np.int64), subject=subject.astype(np.int64),
                    provenance=prov)


def check_fits_card(calib: CalibSet, card, where) -> None:
    """Raise a one-line `UserError` when the calibration windows cannot feed the model."""
    t, c = calib.x.shape[1:]
    if (t, c) != (card.window, len(card.channels)):
        raise UserError(where, f"calibration windows are {t} samples x {c} channels, the model takes "
                               f"{card.window} x {len(card.channels)} ({', '.join(card.channels)})")
    prov = calib.provenance
    if "rate" in prov and abs(float(prov["rate"]) - float(card.rate)) > 1e-6:
        raise UserError(where, f"calibration windows are at {prov['rate']:g} Hz, the model takes {card.rate:g} Hz")
    if prov.get("channels") and list(prov["channels"]) != list(card.channels):
        raise UserError(where, f"calibration channels {', '.join(prov['channels'])} differ from the "
                               f"model's {', '.join(card.channels)}")
    if prov.get("units") and list(prov["units"]) != list(card.units):
        raise UserError(where, f"calibration units {', '.join(prov['units'])} differ from the "
                               f"model's {', '.join(card.units)}")
