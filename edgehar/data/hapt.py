"""UCI HAPT raw recordings, in their original layout (`RawData/acc_expXX_userYY.txt`, ...).

Each experiment becomes one `Recording` of 6 channels at 50 Hz (acc in g, gyro in rad/s) with
per-sample labels from `RawData/labels.txt` (1-based, inclusive rows). Rows outside a labelled
segment are unlabelled (-1): the source of unlabelled windows for self-supervised training.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import numpy as np

from edgehar.data.recording import UNLABELLED, Recording
from edgehar.data.textfile import data_line, read_numeric_table
from edgehar.errors import UserError, require_dir, require_file

RATE = 50.0
CHANNELS = ("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z")
UNITS = ("g", "g", "g", "rad/s", "rad/s", "rad/s")
ACTIVITIES = 6  # ids 1..6 are activities, 7..12 postural transitions
# The UCI-HAR official test subjects: the default subject-disjoint split.
TEST_SUBJECTS = (2, 4, 9, 10, 12, 13, 18, 20, 24)
_ACC = re.compile(r"^acc_exp(\d+)_user(\d+)\.txt$")


def read_label_names(root: Path) -> tuple[str, ...]:
    """Class names from `activity_labels.txt` ("1 WALKING" ...), index 0 = id 1."""
    path = Path(require_file(root / "activity_labels.txt", "HAPT activity_labels.txt"))
    names = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise UserError(path, f"line {n}: expected '<id> <NAME>', got {line!r}")
        names[int(parts[0])] = parts[1].lower()
    if sorted(names) != list(range(1, len(names) + 1)):
        raise UserError(path, "activity ids are not 1..N")
    return tuple(names[i] for i in range(1, len(names) + 1))


def read_segments(root: Path) -> np.ndarray:
    """`RawData/labels.txt` as an int array (exp, user, activity, start, end)."""
    path = Path(require_file(root / "RawData" / "labels.txt", "HAPT labels file"))
    table = read_numeric_table(path, sep=None)
    if table.ndim != 2 or table.shape[1] != 5:
        raise UserError(path, f"expected 5 columns (exp user activity start end), got {table.shape[-1]}")
    return check_label_table(path, table)


def experiments(root: str | Path) -> list[tuple[int, int]]:
    """(experiment, user) pairs present in `RawData`, sorted by experiment."""
    raw = Path(require_dir(Path(root) / "RawData", "HAPT RawData folder"))
    found = []
    for p in raw.iterdir():
        m = _ACC.match(p.name)
        if m:
            found.append((int(m.group(1)), int(m.group(2))))
    if not found:
        raise UserError(raw, "no acc_expXX_userYY.txt files: not the UCI HAPT layout")
    return sorted(found)


def load_experiment(root: str | Path, exp: int, user: int, segments: np.ndarray | None = None,
                    label_names: tuple[str, ...] | None = None) -> Recording:
    """One HAPT experiment: acc + gyro side by side, labelled per sample."""
    root = Path(root)
    segments = read_segments(root) if segments is None else segments
    label_names = read_label_names(root) if label_names is None else label_names
    tag = f"exp{exp:02d}_user{user:02d}"
    acc_path = require_file(root / "RawData" / f"acc_{tag}.txt", "HAPT acc file")
    gyro_path = require_file(root / "RawData" / f"gyro_{tag}.txt", "HAPT gyro file")
    acc = read_numeric_table(acc_path, sep=None, columns=3)
    gyro = read_numeric_table(gyro_path, sep=None, columns=3)
    if len(acc) != len(gyro):
        raise UserError(gyro_path, f"{len(gyro)} rows but the acc file has {len(acc)}")
    labels = np.full(len(acc), UNLABELLED, dtype=np.int64)
    labels_path = root / "RawData" / "labels.txt"
    for k in np.flatnonzero((segments[:, 0] == exp) & (segments[:, 1] == user)):
        _, _, act, start, end = segments[k]
        if not 1 <= act <= len(label_names):
            raise UserError(labels_path, f"{label_line(labels_path, k)}activity {act} of {tag} is not "
                                         f"one of the {len(label_names)} in activity_labels.txt")
        if not (1 <= start <= end <= len(acc)):
            raise UserError(labels_path, f"{label_line(labels_path, k)}segment {start}-{end} of {tag} "
                                         f"is outside its {len(acc)} rows")
        labels[start - 1:end] = act - 1
    return Recording(np.hstack([acc, gyro]), RATE, CHANNELS, UNITS, subject=user, labels=labels,
                     label_names=label_names, name=tag, source=str(acc_path),
                     meta={"experiment": exp, "placement": "waist"})


def check_label_table(path, table: np.ndarray) -> np.ndarray:
    """A (exp, user, class, start, end) table as int64; non-integer cells name their line."""
    frac = np.flatnonzero((table != np.round(table)).any(axis=1))
    if len(frac):
        raise UserError(path, f"{label_line(path, frac[0])}expected whole numbers, got "
                              f"{' '.join(f'{v:g}' for v in table[frac[0]])}")
    return table.astype(np.int64)


def label_line(path, row: int) -> str:
    """'line N: ' of the `row`-th data row of a label table (for messages)."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return f"line {data_line(text, int(row))}: "


@functools.lru_cache(maxsize=4)
def _load_cached(root: str) -> tuple[Recording, ...]:
    root_p = Path(require_dir(root, "HAPT folder"))
    if not (root_p / "RawData").is_dir():
        raise UserError(root_p, "not the UCI HAPT layout (no RawData/ folder)")
    found = experiments(root_p)
    segments, names = read_segments(root_p), read_label_names(root_p)
    return tuple(load_experiment(root_p, e, u, segments, names) for e, u in found)


def load_hapt(root: str | Path) -> list[Recording]:
    """Every HAPT experiment under `root` (the folder holding `RawData/`), cached per root."""
    return list(_load_cached(str(Path(root).resolve())))
