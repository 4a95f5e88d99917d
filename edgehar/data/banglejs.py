"""Bangle.js smartwatch recordings: `acc_expNN_userNN.txt` (CSV `time,acc_x,acc_y,acc_z`, rows
ending in `;`, acc in g) plus `labels.csv` (`exp user class start end`, 1-based rows) and
`classnames.csv` (`index name`).

Bangle.js reports the gravity vector: lying flat face up it reads (0, 0, -1) g (Espruino's
`accel` event). Android phones and watches (HAPT, WISDM, GeoTec) and Xsens units (DSADS) report
the specific force, (0, 0, +1) g face up. The loader negates Bangle.js samples into that common
convention, as it would convert units; `write_banglejs` writes them back in the device's own."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from edgehar.data.csvfile import load_csv
from edgehar.data.recording import UNLABELLED, Recording
from edgehar.data.hapt import label_line, check_label_table
from edgehar.data.textfile import read_numeric_table
from edgehar.errors import UserError, require_dir, require_file

_ACC = re.compile(r"^acc_exp(\d+)_user(\d+)\.txt$")
CHANNELS = ("acc_x", "acc_y", "acc_z")
SIGN = -1.0  # Bangle.js sample = SIGN x specific force (see the module docstring)


def read_class_names(root: Path) -> tuple[str, ...]:
    path = Path(require_file(root / "classnames.csv", "Bangle.js classnames.csv"))
    names = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or not parts[0].isdigit():
            raise UserError(path, f"line {n}: expected '<index> <name>', got {line!r}")
        names[int(parts[0])] = parts[1]
    return tuple(names[i] for i in sorted(names))


def read_label_table(path) -> np.ndarray:
    """`labels.csv` rows (exp, user, class, start, end) as int64."""
    return check_label_table(path, read_numeric_table(path, columns=5))


def load_banglejs_file(path: str | Path, segments: np.ndarray | None = None,
                       class_names: tuple[str, ...] = ()) -> Recording:
    """One Bangle.js acc file; labelled when `segments` rows for its (exp, user) are given."""
    path = Path(require_file(path, "Bangle.js recording"))
    m = _ACC.match(path.name)
    exp, user = (int(m.group(1)), int(m.group(2))) if m else (0, 0)
    rec = load_csv(path, columns=list(CHANNELS), units="g", time_column="time")
    labels = None
    if segments is not None:
        labels = np.full(rec.n_samples, UNLABELLED, dtype=np.int64)
        labels_path = path.parent / "labels.csv"
        for k in np.flatnonzero((segments[:, 0] == exp) & (segments[:, 1] == user)):
            _, _, cls, start, end = segments[k]
            if class_names and not 0 <= cls < len(class_names):
                raise UserError(labels_path, f"{label_line(labels_path, k)}class {cls} of {path.name} is "
                                             f"not one of the {len(class_names)} in classnames.csv")
            # the published labels.csv overshoots the last row by one in places: clip to the file
            if not 1 <= start <= end <= rec.n_samples + 1:
                raise UserError(labels_path, f"{label_line(labels_path, k)}segment {start}-{end} of "
                                             f"{path.name} is outside its {rec.n_samples} rows")
            labels[start - 1:min(end, rec.n_samples)] = cls
    # the device's gravity-vector convention -> the specific force every other source reports
    return rec.with_data(SIGN * rec.data, subject=user, labels=labels, label_names=class_names,
                         name=path.stem.removeprefix("acc_"),
                         meta={**rec.meta, "experiment": exp, "placement": "left wrist",
                               "device": "Bangle.js"})


def load_banglejs(root: str | Path) -> list[Recording]:
    """Every labelled recording in a Bangle.js folder, sorted by experiment."""
    root = Path(require_dir(root, "Bangle.js folder"))
    files = sorted(p for p in root.iterdir() if _ACC.match(p.name))
    if not files:
        raise UserError(root, "no acc_expNN_userNN.txt files: not a Bangle.js recording folder")
    names = read_class_names(root)
    segments = read_label_table(root / "labels.csv")
    return [load_banglejs_file(p, segments, names) for p in files]
