"""Named data sets and the one place their default windowing is defined."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from edgehar.data.channel_names import mismatch_message
from edgehar.data.owndata import MANIFEST, load_folder
from edgehar.data.parsed import load_parsed
from edgehar.data.recording import Recording
from edgehar.data.registry import REGISTRY, folder_of, is_folder_arg, lookup
from edgehar.data.resample import convert_units, resample
from edgehar.data.vocabulary import canonical_names
from edgehar.data.windows import Windows, make_windows, window_labels
from edgehar.errors import UserError

WINDOW_SECONDS = 2.56  # 128 samples at 50 Hz, the UCI-HAR window
PURITY = 0.8
DATASETS = REGISTRY  # name -> DataSet (registry.py), kept under its old name


def data_root(name: str, root: str | Path | None = None) -> Path:
    """Folder of data set `name` (or the folder itself, for your own data)."""
    if is_folder_arg(name):
        return Path(name)
    return folder_of(lookup(name)[0], root)


def load_dataset(name: str, root: str | Path | None = None) -> list[Recording]:
    """All recordings of `name`: a registered data set (`name[:option]`, from `root` or
    $EDGEHAR_DATA) or a folder of your own CSV recordings with a manifest. The one entry point
    every command loads data through; each recording comes back with its data set, placement,
    device and canonical class names filled in."""
    if is_folder_arg(name):
        return load_folder(name)
    ds, option = lookup(name)
    folder = folder_of(ds, root)
    recs = load_parsed(ds.name, option, folder, lambda: ds.load(folder, option))
    return [replace(r, dataset=name, placement=r.placement or r.meta.get("placement") or ds.placement,
                    device=r.device or r.meta.get("device") or ds.device,
                    canonical_names=canonical_names(r.label_names, ds.labels))
            for r in recs]


def test_subjects(name: str) -> tuple[int, ...]:
    """The official test subjects of a data set (HAPT's UCI-HAR split), else ()."""
    return () if is_folder_arg(name) else lookup(name)[0].test_subjects


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

    A data set whose registry entry keeps only its first N classes (HAPT: the 6 activities)
    turns the others (postural transitions) into unlabelled windows (y = -1), kept for
    self-supervised use.
    """
    recs = load_dataset(name, root)
    channels = tuple(channels or recs[0].channels)
    window = window or int(round(WINDOW_SECONDS * rate))
    hop = hop or window // 2
    recs = prepare(recs, rate, channels, units)
    keep = None if is_folder_arg(name) else lookup(name)[0].classes
    if keep is not None:
        w = make_windows(recs, window, hop, purity, keep_label=set(range(keep)))
        return replace(w, label_names=w.label_names[:keep], canonical_names=w.canonical_names[:keep])
    return make_windows(recs, window, hop, purity)


def windows_for_card(card, name: str, root=None, hop: int | None = None) -> Windows:
    """Windows of data set `name` in a model card's input format (rate, window, channels,
    units; hop defaults to half a window); a one-line error names both sides when the data
    lacks a channel the model needs, and for your own data the `"channels"` mapping to write."""
    recs = load_dataset(name, root)
    first = recs[0]
    if any(c not in first.channels for c in card.channels):
        if not is_folder_arg(name):
            raise UserError(name, mismatch_message(first.channels, card.channels))
        raise UserError(Path(name) / MANIFEST, mismatch_message(
            first.channels, card.channels, MANIFEST,
            first.meta.get("channel_columns", first.channels), first.units))
    return activity_windows(name, root, rate=card.rate, window=card.window,
                            hop=hop or card.window // 2, channels=card.channels, units=card.units)


def summary(name: str, root=None) -> dict:
    """Subjects, recordings, hours, classes and windows per class of a data set."""
    recs = load_dataset(name, root)
    label_names = recs[0].label_names
    seconds = np.zeros(len(label_names))
    for r in recs:
        if r.labels is not None and len(label_names):
            for lo in range(0, r.n_samples, 1 << 20):  # a block at a time: no copy of the labels
                part = r.labels[lo:lo + (1 << 20)]
                seconds += np.bincount(part[part >= 0], minlength=len(label_names)) / r.rate
    rate = recs[0].rate
    window = int(round(WINDOW_SECONDS * rate))
    same_rate = [r for r in recs if r.rate == rate]
    # the window labels alone: cutting the windows would copy every sample twice (50 % hop)
    y = np.concatenate([window_labels(r, window, window // 2, PURITY) for r in same_rate])
    if not len(y):
        make_windows(same_rate, window, window // 2, PURITY)  # says every recording is too short
    per_class = np.bincount(y[y >= 0], minlength=len(label_names))
    canon = recs[0].canonical_names or label_names
    return {
        "dataset": name,
        "root": str(data_root(name, root)),
        "subjects": len({r.subject for r in recs}),
        "placements": sorted({r.placement for r in recs}),
        "devices": sorted({r.device for r in recs}),
        "n_classes": len(label_names),
        "canonical": {n: c for n, c in zip(label_names, canon)},
        "recordings": len(recs),
        "hours": round(sum(r.seconds for r in recs) / 3600, 3),
        "rate_hz": sorted({r.rate for r in recs}),
        "channels": list(recs[0].channels),
        "units": list(recs[0].units),
        "classes": {n: round(s / 3600, 3) for n, s in zip(label_names, seconds)},
        "window": {"samples": window, "hop": window // 2, "purity": PURITY},
        "windows_per_class": {n: int(c) for n, c in zip(label_names, per_class)} if label_names else {},
        "unlabelled_windows": int((y < 0).sum()),
    }
