"""GeoTec smartwatch inertial measurements (Matey-Sanz et al., Data in Brief 2023), watch part.

`sXX/sXX_YY_sw.csv`: header `x_acc,y_acc,z_acc,x_gyro,y_gyro,z_gyro,timestamp,label`, acc in
m/s^2, gyro in rad/s, timestamps in Unix ms, about 100 Hz but irregular (steps of 0-60 ms,
repeated stamps). Each execution is resampled onto a fixed grid by linear interpolation of
the samples against their own timestamps (repeated stamps averaged first); a grid point takes
the label of the nearest original sample.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from edgehar.data.fastparse import read_text, split_table, to_float
from edgehar.data.recording import Recording
from edgehar.data.resample import resample_on_times
from edgehar.errors import UserError, require_dir

RATE = 100.0
HEADER = ("x_acc", "y_acc", "z_acc", "x_gyro", "y_gyro", "z_gyro", "timestamp", "label")
CHANNELS = ("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z")
UNITS = ("m/s^2",) * 3 + ("rad/s",) * 3
LABELS = ("SEATED", "STANDING_UP", "WALKING", "TURNING", "SITTING_DOWN")
_FILE = re.compile(r"^s(\d+)_(\d+)_sw\.csv$")


def load_geotec_file(path: Path, rate: float = RATE) -> Recording:
    """One execution, resampled to `rate` Hz."""
    text = read_text(path)
    head = text[:text.find("\n")].strip().split(",")
    if tuple(head) != HEADER:
        raise UserError(path, f"line 1: header {','.join(head)!r}, expected {','.join(HEADER)!r}")
    cells = split_table(path, text, columns=len(HEADER), skip=1)
    values = to_float(path, text, cells, slice(0, 7), HEADER, skip=1)
    names = cells[:, 7]
    unknown = sorted(set(np.unique(names)) - set(LABELS))
    if unknown:
        raise UserError(path, f"unknown label {unknown[0]!r} (known: {', '.join(LABELS)})")
    lookup = {n: k for k, n in enumerate(LABELS)}
    labels = np.array([lookup[n] for n in names], dtype=np.int64)
    t_ms = values[:, 6]
    data, y = resample_on_times((t_ms - t_ms[0]) / 1000.0, values[:, :6], labels, rate, path)
    m = _FILE.match(path.name)
    return Recording(data, rate, CHANNELS, UNITS, subject=int(m.group(1)) if m else 0,
                     labels=y, label_names=LABELS, name=path.stem.removesuffix("_sw"),
                     source=str(path), start_time=float(t_ms[0]) / 1000.0,
                     meta={"execution": int(m.group(2)) if m else 0, "raw_samples": len(t_ms),
                           "raw_rate_hz": round(float((len(t_ms) - 1) / max(1e-9, (t_ms[-1] - t_ms[0]) / 1000)), 2)})


def load_geotec(root: str | Path, rate: float = RATE) -> list[Recording]:
    """Every execution of every subject (`sXX/sXX_YY_sw.csv`), resampled to `rate` Hz."""
    root = Path(require_dir(root, "GeoTec folder"))
    files = sorted(p for d in root.iterdir() if d.is_dir() for p in d.iterdir() if _FILE.match(p.name))
    if not files:
        raise UserError(root, "no sXX/sXX_YY_sw.csv files: not the GeoTec smartwatch layout")
    return [load_geotec_file(p, rate) for p in files]
