"""WISDM 2019 smartwatch accelerometer (Weiss, Fordham; UCI): `data_<subject>_accel_watch.txt`.

One reading per line, `subject,activity,x,y,z;` (the reduced release) or
`subject,activity,timestamp,x,y,z;` (the original), acc in m/s^2 at 20 Hz. A contiguous run
of one (subject, activity) is one recording (subject 1629's file holds two sessions).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from edgehar.data.fastparse import read_text, split_table, to_float
from edgehar.data.recording import Recording
from edgehar.errors import UserError, require_dir

RATE = 20.0
CHANNELS = ("acc_x", "acc_y", "acc_z")
UNITS = ("m/s^2",) * 3
# WISDM's activity codes (its activity_key.txt) kept by the watch release
CODES = {"A": "walking", "B": "jogging", "C": "stairs", "D": "sitting", "E": "standing",
         "M": "kicking"}
LABELS = tuple(CODES.values())
_FILE = re.compile(r"^data_(\d+)_accel_watch\.txt$")


def load_wisdm_file(path: Path) -> list[Recording]:
    """The recordings (contiguous subject x activity runs) of one WISDM watch file."""
    text = read_text(path)
    cells = split_table(path, text)
    if cells.shape[1] not in (5, 6):
        raise UserError(path, f"{cells.shape[1]} values per line, expected 5 "
                              "(subject,activity,x,y,z) or 6 (with a timestamp)")
    xyz = to_float(path, text, cells, slice(-3, None))
    subject, code = cells[:, 0], cells[:, 1]
    unknown = sorted(set(np.unique(code)) - set(CODES))
    if unknown:
        row = int(np.flatnonzero(code == unknown[0])[0])
        raise UserError(path, f"row {row + 1}: unknown activity code {unknown[0]!r} "
                              f"(known: {', '.join(CODES)})")
    if not all(s.isdigit() for s in np.unique(subject)):
        raise UserError(path, "the subject column holds non-numbers")
    key = np.char.add(np.char.add(subject, ","), code)
    cuts = np.flatnonzero(key[1:] != key[:-1]) + 1
    bounds = zip(np.concatenate([[0], cuts]), np.concatenate([cuts, [len(key)]]))
    label_of = {c: k for k, c in enumerate(CODES)}
    out = []
    for run, (s, e) in enumerate(bounds):
        labels = np.full(e - s, label_of[code[s]], dtype=np.int64)
        meta = {"activity_code": str(code[s]), "run": run, "first_line": int(s) + 1}
        if cells.shape[1] == 6:
            meta["timestamps"] = True
        out.append(Recording(xyz[s:e], RATE, CHANNELS, UNITS, subject=int(subject[s]), labels=labels,
                             label_names=LABELS, name=f"{path.stem}_{run:02d}_{code[s]}",
                             source=str(path), meta=meta))
    return out


def load_wisdm(root: str | Path) -> list[Recording]:
    """Every recording of a WISDM watch folder, by subject then file order."""
    root = Path(require_dir(root, "WISDM watch folder"))
    files = sorted(p for p in root.iterdir() if _FILE.match(p.name))
    if not files:
        raise UserError(root, "no data_<subject>_accel_watch.txt files: not the WISDM watch layout")
    return [r for p in files for r in load_wisdm_file(p)]
