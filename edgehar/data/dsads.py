"""UCI Daily and Sports Activities (Altun & Barshan): `data/aNN/pK/sMM.txt`.

Activity 01-19, subject 1-8, 5-s segment 01-60 of 125 rows at 25 Hz. The original files have
45 columns (per unit: acc, gyro, mag x,y,z; units torso, right arm, left arm, right leg, left
leg); the accelerometer copy keeps 15 (per unit acc x,y,z): told apart by column count. A
(subject, activity)'s 60 segments join into one recording per unit, placed at that unit.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from edgehar.data.recording import Recording
from edgehar.errors import UserError, require_dir

RATE = 25.0
CHANNELS = ("acc_x", "acc_y", "acc_z")
UNITS = ("m/s^2",) * 3
UNITS_ON_BODY = ("torso", "right_arm", "left_arm", "right_leg", "left_leg")  # file column order
LABELS = ("sitting", "standing", "lying on back", "lying on right side", "ascending stairs",
          "descending stairs", "standing in an elevator", "moving around in an elevator",
          "walking in a parking lot", "walking on a treadmill flat",
          "walking on a treadmill inclined", "running on a treadmill", "exercising on a stepper",
          "exercising on a cross trainer", "cycling on a horizontal exercise bike",
          "cycling on a vertical exercise bike", "rowing", "jumping", "playing basketball")
WIDTHS = {45: 9, 15: 3}  # columns per file -> columns per unit (acc first)
_ACT, _SUBJ, _SEG = re.compile(r"^a(\d\d)$"), re.compile(r"^p(\d+)$"), re.compile(r"^s(\d\d)\.txt$")


def read_segments(folder: Path) -> np.ndarray:
    """One (subject, activity) folder's segments, in order, as one (rows, cols) float array."""
    files = sorted(p for p in folder.iterdir() if _SEG.match(p.name))
    if not files:
        raise UserError(folder, "no sNN.txt segment files")
    text = "\n".join(p.read_text().strip() for p in files)
    width = text[:text.index("\n")].count(",") + 1
    if width not in WIDTHS:
        raise UserError(files[0], f"line 1: {width} columns, expected 45 (original) or 15 "
                                  "(accelerometer copy)")
    values = np.fromstring(text.replace("\n", ","), sep=",")  # C parser: 143 MB in seconds
    if len(values) != width * (text.count("\n") + 1):  # a short row, a blank line, a non-number
        _find_bad(files, width)
    return values.reshape(-1, width)


def _find_bad(files: list[Path], width: int) -> None:
    """Name the first file and line that is not `width` numbers."""
    for p in files:
        for n, line in enumerate(p.read_text().splitlines(), 1):
            cells = line.split(",")
            if not line.strip():
                continue
            if len(cells) != width:
                raise UserError(p, f"line {n}: {len(cells)} columns, expected {width}")
            try:
                [float(c) for c in cells]
            except ValueError:
                raise UserError(p, f"line {n}: not a number in {line!r}") from None
    raise UserError(files[0].parent, "segments could not be read as numbers")


def load_dsads(root: str | Path, placement: str | None = None) -> list[Recording]:
    """Every (activity, subject, unit) recording; only the `placement` unit when given."""
    root = Path(require_dir(root, "DSADS folder"))
    units = UNITS_ON_BODY if placement is None else (placement,)
    if placement is not None and placement not in UNITS_ON_BODY:
        raise UserError(placement, f"unknown DSADS unit (known: {', '.join(UNITS_ON_BODY)})")
    data = root / "data" if (root / "data").is_dir() else root
    acts = sorted(p for p in data.iterdir() if _ACT.match(p.name))
    if not acts:
        raise UserError(root, "no data/aNN folders: not the DSADS layout")
    out = []
    for act in acts:
        a = int(act.name[1:])
        if not 1 <= a <= len(LABELS):
            raise UserError(act, f"activity {a} outside 01-{len(LABELS)}")
        for subj in sorted((p for p in act.iterdir() if _SUBJ.match(p.name)),
                           key=lambda p: int(p.name[1:])):
            table = read_segments(subj)
            per_unit = WIDTHS[table.shape[1]]
            for unit in units:
                u = UNITS_ON_BODY.index(unit)
                acc = table[:, u * per_unit:u * per_unit + 3]
                out.append(Recording(acc, RATE, CHANNELS, UNITS, subject=int(subj.name[1:]),
                                     labels=np.full(len(acc), a - 1, dtype=np.int64),
                                     label_names=LABELS, name=f"a{a:02d}_{subj.name}_{unit}",
                                     source=str(subj), placement=unit.replace("_", " "),
                                     meta={"activity": a, "unit": unit,
                                           "columns": table.shape[1]}))
    return out
