"""Your own data: a folder of CSV recordings described by a small manifest, `edgehar.json`.

    {"rate": 50,                                  # Hz; or a time column:
     "time": {"column": "t", "unit": "ms"},       #   s, ms, us or ns; irregular times are
                                                  #   interpolated onto a grid of `rate` Hz
     "header": true,                              # false: name the columns below
     "columns": ["t", "ax", "ay", "az", "act"],   # the file's columns (header-less files)
     "channels": ["ax", "ay", "az"],              # default: every column but time/subject/label
     "units": "g",                                # one unit, or one per channel
     "subject": {"pattern": "^(\\w+?)_"},         # {"column": C} | {"pattern": RE on the file
     "label": {"column": "act"},                  #   path} | {"folder": N} (N-th parent) |
                                                  #   {"value": V}
     "classes": ["walk", "sit"],                  # class order (default: sorted names found)
     "label_map": {"walk": "walking"},            # own name -> canonical vocabulary name
     "placement": "left wrist", "device": "Bangle.js",
     "files": {"take_003.csv": {"label": "sit", "rate": 25}}}   # per-file overrides

Every `*.csv` under the folder (sub-folders included) is one recording. Problems are
`UserError`s naming the CSV file (and line); `check_folder` collects them all.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgehar.data.fastparse import read_text, split_table, to_float
from edgehar.data.recording import UNLABELLED, Recording
from edgehar.data.vocabulary import canonical_names
from edgehar.errors import UserError, require_dir

MANIFEST = "edgehar.json"
TIME_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
KEYS = {"rate", "time", "header", "columns", "channels", "units", "subject", "label", "classes",
        "label_map", "placement", "device", "files", "delimiter", "counters", "format"}
SOURCES = ("column", "pattern", "folder", "value")


@dataclass
class Manifest:
    folder: Path
    spec: dict

    @classmethod
    def read(cls, folder: str | Path) -> "Manifest":
        folder = Path(require_dir(folder, "data folder"))
        path = folder / MANIFEST
        if not path.is_file():
            raise UserError(folder, f"no {MANIFEST} manifest (see README: Your own data)")
        try:
            spec = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise UserError(path, f"not valid JSON ({e})") from None
        if not isinstance(spec, dict):
            raise UserError(path, "expected a JSON object")
        unknown = sorted(set(spec) - KEYS)
        if unknown:
            raise UserError(path, f"unknown key {unknown[0]!r} (known: {', '.join(sorted(KEYS))})")
        for key in ("subject", "label"):
            src = spec.get(key)
            if src is not None and (not isinstance(src, dict) or len(src) != 1 or
                                    next(iter(src)) not in SOURCES):
                raise UserError(path, f"{key!r} must be one of {{\"column\": NAME}}, {{\"pattern\": "
                                      "REGEX}, {\"folder\": N}, {\"value\": V}")
        if spec.get("header") is False and not spec.get("columns"):
            raise UserError(path, "header-less files need \"columns\" naming every column")
        t = spec.get("time")
        if t is not None and (not isinstance(t, dict) or "column" not in t or
                              t.get("unit", "s") not in TIME_UNITS):
            raise UserError(path, f"\"time\" must be {{\"column\": NAME, \"unit\": "
                                  f"{'|'.join(TIME_UNITS)}}}")
        return cls(folder, spec)

    @property
    def path(self) -> Path:
        return self.folder / MANIFEST

    def files(self) -> list[Path]:
        files = sorted(p for p in self.folder.rglob("*.csv") if not p.name.startswith("."))
        if not files:
            raise UserError(self.folder, "no .csv recordings in the folder")
        return files

    def for_file(self, path: Path) -> dict:
        """The manifest with this file's overrides applied."""
        rel = path.relative_to(self.folder).as_posix()
        return {**self.spec, **self.spec.get("files", {}).get(rel, {})}


@dataclass
class RawFile:
    """One CSV as read, before the folder-wide class list is known."""

    path: Path
    data: np.ndarray
    rate: float
    channels: tuple[str, ...]
    units: tuple[str, ...]
    subject: str
    label_cells: np.ndarray | None  # (n,) class name per sample ("" = unlabelled)
    spec: dict
    meta: dict


def read_file(m: Manifest, path: Path) -> RawFile:
    spec = m.for_file(path)
    text = read_text(path)
    first = text.lstrip("\ufeff").split("\n", 1)[0]
    sep = spec.get("delimiter") or next((d for d in (",", ";", "\t") if d in first.rstrip(";")), ",")
    header = spec.get("header", True)
    names = list(spec["columns"]) if spec.get("columns") else None
    if header:
        found = [c.strip() for c in first.strip().rstrip(";" if sep != ";" else "").split(sep)]
        if names and names != found:
            raise UserError(path, f"line 1: header {found} differs from the manifest's columns {names}")
        names = found
    cells = split_table(path, text, columns=len(names), skip=1 if header else 0, sep=sep)
    skip = 1 if header else 0

    def col(name: str, what: str) -> int:
        if name not in names:
            raise UserError(path, f"{'line 1: ' if header else ''}no {what} column {name!r} "
                                  f"(columns: {', '.join(names)})")
        return names.index(name)

    t_i = col(spec["time"]["column"], "time") if spec.get("time") else None
    src = {k: spec.get(k) for k in ("subject", "label")}
    used = {t_i} | {col(s["column"], k) for k, s in src.items() if s and "column" in s}
    channels = spec.get("channels") or [n for i, n in enumerate(names) if i not in used]
    ch_i = [col(c, "channel") for c in channels]
    data = to_float(path, text, cells, ch_i, names, skip)
    units = spec.get("units", "g")
    units = [units] * len(channels) if isinstance(units, str) else list(units)
    if len(units) != len(channels):
        raise UserError(m.path, f"{len(units)} units for {len(channels)} channels")
    from edgehar.data.csvfile import UNITS
    bad = [u for u in units if u not in UNITS]
    if bad:
        raise UserError(m.path, f"unknown unit {bad[0]!r} (known: {', '.join(UNITS)})")
    meta = {"columns": names}
    rate = spec.get("rate")
    subject = _source(m, path, cells, names, src["subject"], "subject", header)
    labels = _source(m, path, cells, names, src["label"], "label", header, per_sample=True)
    if t_i is not None:
        t = to_float(path, text, cells, [t_i], names, skip)[:, 0]
        t = t * TIME_UNITS[spec["time"].get("unit", "s")]
        data, labels, rate, meta["resampled"] = _on_grid(path, t, data, labels, rate, skip)
        meta["start_time"] = float(t[0])
    elif rate is None:
        raise UserError(m.path, f"{path.name}: no \"rate\" and no \"time\" column: the sampling "
                                "rate is unknown")
    if not isinstance(rate, (int, float)) or not rate > 0:
        raise UserError(m.path, f"rate must be a positive number of Hz, got {rate!r}")
    return RawFile(path, data, float(rate), tuple(channels), tuple(units),
                   subject if subject is not None else "0", labels, spec, meta)


def _on_grid(path, t, data, labels, rate, skip):
    """Samples (and label cells) at a fixed rate from timed samples: as they are when the
    steps are regular, else interpolated (`geotec.resample_on_times`; labels: nearest)."""
    from edgehar.data.geotec import resample_on_times

    steps = np.diff(t)
    if (steps < 0).any():
        k = int(np.flatnonzero(steps < 0)[0]) + 1
        raise UserError(path, f"line {k + 1 + skip}: time goes backwards ({t[k - 1]:g} s, then {t[k]:g} s)")
    positive = steps[steps > 0]
    if not len(positive):
        raise UserError(path, "time never increases: cannot derive the rate")
    measured = float(f"{1.0 / np.median(positive):.6g}")
    rate = float(rate or measured)
    if len(steps) == len(positive) and np.all(np.abs(steps * rate - 1) < 0.01):
        return data, labels, rate, False
    names, codes = np.unique(labels if labels is not None else np.zeros(len(t), str),
                             return_inverse=True)
    grid, codes = resample_on_times(t, data, codes, rate, path, 1 + skip)
    return grid, (names[codes] if labels is not None else None), rate, True


def _source(m, path, cells, names, src, what, header, per_sample=False):
    """Subject or label of a file from a column, the file path, a parent folder or a value."""
    if not src:
        return None
    kind, arg = next(iter(src.items()))
    if kind == "column":
        vals = np.char.strip(cells[:, names.index(arg)])
        if per_sample:
            return vals
        uniq = np.unique(vals)
        if len(uniq) != 1:
            raise UserError(path, f"column {arg!r} holds {len(uniq)} {what}s; one per file")
        value = str(uniq[0])
    elif kind == "pattern":
        try:
            rx = re.compile(arg)
        except re.error as e:
            raise UserError(m.path, f"{what} pattern {arg!r}: {e}") from None
        rel = path.relative_to(m.folder).as_posix()
        hit = rx.search(rel)
        if not hit:
            raise UserError(path, f"{what} pattern {arg!r} matches nothing in {rel!r}")
        value = hit.group(what) if what in rx.groupindex else hit.group(1 if rx.groups else 0)
    elif kind == "folder":
        parents = path.relative_to(m.folder).parents
        if not isinstance(arg, int) or not 1 <= arg < len(parents):
            raise UserError(path, f"{what} from folder level {arg!r}: the file is "
                                  f"{len(parents) - 1} folder(s) deep")
        value = parents[arg - 1].name
    else:
        value = str(arg)
    return np.full(len(cells), value) if per_sample else value


def _subject_ids(names: list[str]) -> dict[str, int]:
    """Numeric subject names keep their number; others are numbered 1.. in sorted order."""
    if all(n.isdigit() for n in names):
        return {n: int(n) for n in names}
    return {n: k for k, n in enumerate(sorted(names), 1)}


def build(m: Manifest, raws: list[RawFile]) -> list[Recording]:
    """Recordings of a folder's files, sharing one class list and subject numbering."""
    found = sorted({str(c) for r in raws if r.label_cells is not None for c in np.unique(r.label_cells)} - {""})
    classes = list(m.spec.get("classes") or found)
    extra = [c for c in found if c not in classes]
    if extra:
        where = next(r.path for r in raws if r.label_cells is not None and extra[0] in r.label_cells)
        raise UserError(where, f"label {extra[0]!r} is not in the manifest's \"classes\"")
    lookup = {c: k for k, c in enumerate(classes)}
    ids = _subject_ids(sorted({r.subject for r in raws}))
    canon = canonical_names(classes, m.spec.get("label_map", {}))
    out = []
    for r in raws:
        labels = None
        if r.label_cells is not None:
            uniq, inv = np.unique(r.label_cells, return_inverse=True)
            labels = np.array([lookup.get(str(c), UNLABELLED) for c in uniq], np.int64)[inv]
        out.append(Recording(r.data, r.rate, r.channels, r.units, subject=ids[r.subject],
                             labels=labels, label_names=tuple(classes),
                             name=r.path.relative_to(m.folder).with_suffix("").as_posix(),
                             source=str(r.path), start_time=r.meta.get("start_time"),
                             meta={**r.meta, "subject_name": r.subject},
                             placement=r.spec.get("placement", ""), device=r.spec.get("device", ""),
                             dataset=str(m.folder), canonical_names=canon))
    return out


def check_rates(m: Manifest, raws: list[RawFile]) -> None:
    rates = sorted({r.rate for r in raws})
    if len(rates) > 1 and not m.spec.get("time"):
        r = next(r for r in raws if r.rate != raws[0].rate)
        raise UserError(r.path, f"rate {r.rate:g} Hz but {raws[0].path.name} has {raws[0].rate:g} Hz, "
                                "and there is no \"time\" column to confirm either: give the folder "
                                "one rate, or a time column")


def load_folder(folder: str | Path) -> list[Recording]:
    """Every recording of your own data folder; the first problem is a `UserError`."""
    m = Manifest.read(folder)
    raws = [read_file(m, p) for p in m.files()]
    check_rates(m, raws)
    return build(m, raws)


def check_folder(folder: str | Path) -> dict:
    """What a folder holds, per file, and every problem found (file and line), without stopping
    at the first."""
    m = Manifest.read(folder)
    files, problems, raws = [], [], []
    for p in m.files():
        try:
            raws.append(read_file(m, p))
        except UserError as e:
            problems.append(e.message)
            files.append({"file": str(p), "ok": False})
    try:
        check_rates(m, raws)
        recs = build(m, raws)
    except UserError as e:
        problems.append(e.message)
        recs = []
    for rec in recs:
        counts = {} if rec.labels is None else {
            n: int(c) for n, c in zip(rec.label_names, np.bincount(rec.labels[rec.labels >= 0],
                                                                   minlength=len(rec.label_names))) if c}
        files.append({"file": rec.source, "ok": True, "rows": rec.n_samples, "rate_hz": rec.rate,
                      "seconds": round(rec.seconds, 2), "channels": list(rec.channels),
                      "units": list(rec.units), "subject": rec.meta["subject_name"],
                      "labels": counts, "unlabelled": int((rec.labels < 0).sum()) if rec.labels is not None else rec.n_samples,
                      "resampled": bool(rec.meta.get("resampled"))})
    files.sort(key=lambda f: f["file"])
    return {"folder": str(m.folder), "files": files, "problems": problems}


def write_folder(recordings: list[Recording], out: str | Path, placement: str = "",
                 device: str = "") -> Path:
    """Write recordings in this format (one CSV per recording, `rate` in the manifest, label
    column, subject in the file name), atomically: a named data set converted to your own."""
    from edgehar.atomic import staged_folder, write_json, write_text

    rates = {r.rate for r in recordings}
    if len(rates) != 1:
        raise UserError(out, f"recordings at {len(rates)} rates: resample them first")
    first = recordings[0]
    with staged_folder(out, overwrite=False) as tmp:
        for k, r in enumerate(recordings):
            labels = ([""] * r.n_samples if r.labels is None else
                      [r.label_names[i] if i >= 0 else "" for i in r.labels])
            rows = (",".join(f"{v:.9g}" for v in row) + f",{lab}" for row, lab in zip(r.data, labels))
            write_text(tmp / f"{r.subject}_{k:04d}.csv", ",".join(first.channels) + ",label\n"
                       + "\n".join(rows) + "\n")
        write_json(tmp / MANIFEST, {
            "rate": first.rate, "units": list(first.units), "channels": list(first.channels),
            "subject": {"pattern": r"^(\d+)_"}, "label": {"column": "label"},
            "classes": list(first.label_names), "placement": placement or first.placement,
            "device": device or first.device,
            "label_map": {n: c for n, c in zip(first.label_names, first.canonical_names) if n != c}})
    return Path(out)
