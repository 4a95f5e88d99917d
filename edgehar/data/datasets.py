"""Named data sets and the one place their default windowing is defined."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np

from edgehar.data import hapt
from edgehar.data.recording import Recording
from edgehar.data.resample import convert_units, resample
from edgehar.data.windows import Windows, make_windows
from edgehar.errors import UserError

# name -> its sub-folder under EDGEHAR_DATA
DATASETS = {
    "hapt": "hapt",
    "banglejs": "banglejs_wrist",
    "axivity": "axivity_wrist",
}
WINDOW_SECONDS = 2.56  # 128 samples at 50 Hz, the UCI-HAR window
PURITY = 0.8


def data_root(name: str, root: str | Path | None = None) -> Path:
    """Folder of data set `name`: `root` if given, else `$EDGEHAR_DATA/<folder>`."""
    if name not in DATASETS:
        raise UserError(name, f"unknown data set (known: {', '.join(DATASETS)})")
    if root is not None:
        return Path(root)
    env = os.environ.get("EDGEHAR_DATA")
    if not env:
        raise UserError(name, "no --root given and EDGEHAR_DATA is unset")
    return Path(env) / DATASETS[name]


def load_dataset(name: str, root: str | Path | None = None) -> list[Recording]:
    """All recordings of a named data set."""
    path = data_root(name, root)
    if name == "hapt":
        return hapt.load_hapt(path)
    if name == "banglejs":
        from edgehar.data.banglejs import load_banglejs
        return load_banglejs(path)
    from edgehar.data.cwa import load_cwa
    files = sorted(p for p in Path(path).iterdir() if p.name.endswith((".cwa", ".cwa.gz")))
    if not files:
        raise UserError(path, "no .cwa or .cwa.gz files")
    return [load_cwa(p) for p in files]


def prepare(recordings: list[Recording], rate: float, channels, units=None) -> list[Recording]:
    """Recordings at `rate` Hz holding `channels` (in that order), optionally in `units`."""
    out = []
    for rec in recordings:
        rec = resample(rec.select(list(channels)), rate)
        out.append(convert_units(rec, units) if units is not None else rec)
    return out


def activity_windows(name: str = "hapt", root=None, rate: float = 50.0, window: int | None = None,
                     hop: int | None = None, channels=None, units=None,
                     purity: float = PURITY) -> Windows:
    """The activity-recognition windows of a data set.

    HAPT: the 6 activities are the classes; postural transitions and unlabelled stretches
    become unlabelled windows (y = -1), kept for self-supervised use.
    """
    recs = load_dataset(name, root)
    channels = tuple(channels or recs[0].channels)
    window = window or int(round(WINDOW_SECONDS * rate))
    hop = hop or window // 2
    recs = prepare(recs, rate, channels, units)
    if name == "hapt":
        w = make_windows(recs, window, hop, purity, keep_label=set(range(hapt.ACTIVITIES)))
        return replace(w, label_names=w.label_names[:hapt.ACTIVITIES])
    return make_windows(recs, window, hop, purity)


def windows_for_card(card, name: str, root=None, hop: int | None = None) -> Windows:
    """Windows of data set `name` in a model card's input format (rate, window, channels,
    units; hop defaults to half a window); a one-line error names both sides when the data
    lacks a channel the model needs."""
    recs = load_dataset(name, root)
    have = list(recs[0].channels)
    missing = [c for c in card.channels if c not in have]
    if missing:
        raise UserError(name, f"data has {len(have)} channels ({', '.join(have)}) but the model "
                              f"expects {len(card.channels)} ({', '.join(card.channels)})")
    return activity_windows(name, root, rate=card.rate, window=card.window,
                            hop=hop or card.window // 2, channels=card.channels, units=card.units)


def summary(name: str, root=None) -> dict:
    """Subjects, recordings, hours, classes and windows per class of a data set."""
    recs = load_dataset(name, root)
    label_names = recs[0].label_names
    seconds = np.zeros(len(label_names))
    for r in recs:
        if r.labels is not None and len(label_names):
            seconds += np.bincount(r.labels[r.labels >= 0], minlength=len(label_names)) / r.rate
    rate = recs[0].rate
    window = int(round(WINDOW_SECONDS * rate))
    w = make_windows([r for r in recs if r.rate == rate], window, window // 2, PURITY)
    return {
        "dataset": name,
        "root": str(data_root(name, root)),
        "subjects": len({r.subject for r in recs}),
        "recordings": len(recs),
        "hours": round(sum(r.seconds for r in recs) / 3600, 3),
        "rate_hz": sorted({r.rate for r in recs}),
        "channels": list(recs[0].channels),
        "units": list(recs[0].units),
        "classes": {n: round(s / 3600, 3) for n, s in zip(label_names, seconds)},
        "window": {"samples": window, "hop": window // 2, "purity": PURITY},
        "windows_per_class": w.class_counts() if label_names else {},
        "unlabelled_windows": int((w.y < 0).sum()),
    }
