"""Your own data: a folder of CSV recordings described by a small manifest, `edgehar.json`.

    {"rate": 50,                                  # Hz; or a time column:
     "time": {"column": "t", "unit": "ms"},       #   s, ms, us or ns; irregular times are
                                                  #   interpolated onto a grid of `rate` Hz
     "header": true,                              # false: name the columns below
     "columns": ["t", "ax", "ay", "az", "act"],   # the file's columns (header-less files)
     "channels": ["ax", "ay", "az"],              # default: every column but time/subject/label;
                                                  #   or {"ax": "acc_x", ...}: each one's sensor
                                                  #   axis (else inferred: `channel_names.infer`)
     "units": "g",                                # one unit, or one per channel
     "subject": {"pattern": "^(\\w+?)_"},         # {"column": C} | {"pattern": RE on the file
     "label": {"column": "act"},                  #   path} | {"folder": N} (N-th parent) |
                                                  #   {"value": V}
     "classes": ["walk", "sit"],                  # class order (default: sorted names found)
     "label_map": {"walk": "walking"},            # own name -> canonical vocabulary name
     "placement": "left wrist", "device": "Bangle.js",
     "files": {"take_003.csv": {"label": {"value": "sit"}, "rate": 25}}}  # per-file overrides

Every key is checked (`manifest_schema`) before any file is read. Every `*.csv` file under
the folder (sub-folders included, hidden ones not) is one recording; it is read in chunks
(`fastparse.read_table`), so memory follows its samples, not its text. Problems are
`UserError`s naming the CSV file (and line); `check_folder` collects them all.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgehar.atomic import staged_folder, write_json, write_text
from edgehar.data import manifest_schema as schema
from edgehar.data.channel_names import infer as infer_axes
from edgehar.data.fastparse import read_table
from edgehar.data.recording import UNLABELLED, Recording
from edgehar.data.resample import resample_on_times
from edgehar.data.vocabulary import canonical_names
from edgehar.errors import UserError, require_dir

MANIFEST = "edgehar.json"
TIME_UNITS = schema.TIME_UNITS
MAX_GAP_STEPS = 100  # a time step this many median steps long (and over MAX_GAP_S) is no pause
MAX_GAP_S = 1.0  # ... to interpolate across: a wrong stamp, or two sessions in one file
MAX_GRID_FACTOR = 8  # interpolation onto a grid of at most this many points per sample
MAX_HEADER = 100_000  # characters of a header line


@dataclass
class Manifest:
    folder: Path
    spec: dict

    @classmethod
    def read(cls, folder: str | Path) -> "Manifest":
        """The folder's manifest, every key checked (`manifest_schema`) before any CSV is read."""
        folder = Path(require_dir(folder, "data folder"))
        path = folder / MANIFEST
        if not path.is_file():
            raise UserError(folder, f"no {MANIFEST} manifest (see README: Your own data)")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise UserError(path, "not a UTF-8 text file") from None
        except OSError as e:
            raise UserError(path, f"cannot read ({e.strerror or e})") from None
        spec = schema.parse(path, text)
        m = cls(folder, spec)
        schema.validate(path, spec, [m.name_of(p) for p in m.candidates()])
        return m

    @property
    def path(self) -> Path:
        return self.folder / MANIFEST

    def name_of(self, path: Path) -> str:
        return path.relative_to(self.folder).as_posix()

    def candidates(self) -> list[Path]:
        """Every `*.csv` entry under the folder that is not a folder itself or hidden (nor in a
        hidden folder); a folder named `x.csv` is a folder, and its CSV files are read."""
        return sorted(p for p in self.folder.rglob("*.csv")
                      if not any(part.startswith(".") for part in p.relative_to(self.folder).parts)
                      and not p.is_dir())

    def files(self) -> list[Path]:
        files = self.candidates()
        if not files:
            raise UserError(self.folder, "no .csv recordings in the folder")
        return files

    def for_file(self, path: Path) -> dict:
        """The manifest with this file's overrides applied."""
        return {**self.spec, **self.spec.get("files", {}).get(self.name_of(path), {})}


@dataclass
class RawFile:
    """One CSV as read, before the folder-wide class list is known."""

    path: Path
    data: np.ndarray  # (n, channels) float32
    rate: float
    channels: tuple[str, ...]
    units: tuple[str, ...]
    subject: str
    label_codes: np.ndarray | None  # (n,) int32 index into label_names
    label_names: list[str]  # "" = unlabelled
    spec: dict
    meta: dict


def _regular_file(path: Path) -> None:
    """A recording must be a readable regular file: a link to nothing or a FIFO (which would
    block the reader for ever) is a problem naming it."""
    if path.is_symlink() and not path.exists():
        raise UserError(path, f"a symbolic link to {os.readlink(path)!r}, which does not exist: "
                              "restore the file or remove the link")
    if not path.is_file():
        raise UserError(path, "not a regular file (a device, socket or pipe): remove it")
    if not os.access(path, os.R_OK):
        raise UserError(path, "cannot be read (permission denied)")


def _header(path: Path, sep: str | None) -> tuple[str, str]:
    """(first line, delimiter): the delimiter as given, else sniffed from the first line."""
    try:
        with open(path, encoding="utf-8-sig", newline=None) as f:
            first = f.readline(MAX_HEADER + 1)
    except UnicodeDecodeError:
        raise UserError(path, "not a UTF-8 text file") from None
    if len(first) > MAX_HEADER:
        raise UserError(path, f"line 1: over {MAX_HEADER} characters (not a CSV header or row)")
    first = first.rstrip("\n")
    return first, sep or next((d for d in (",", ";", "\t") if d in first.rstrip(";")), ",")


def read_file(m: Manifest, path: Path) -> RawFile:
    spec = m.for_file(path)
    _regular_file(path)
    first, sep = _header(path, spec.get("delimiter"))
    header = spec.get("header", True)
    names = list(spec["columns"]) if spec.get("columns") else None
    if header and not first.strip():
        raise UserError(path, "empty file (expected a header row and data rows)" if
                        path.stat().st_size == 0 else "line 1: blank, where the header names the columns")
    if header:
        found = [c.strip() for c in first.strip().rstrip(";" if sep != ";" else "").split(sep)]
        unnamed = [i for i, c in enumerate(found) if not c]
        if unnamed and len(found) > 1:
            raise UserError(path, f"line 1: column {unnamed[0] + 1} of the header has no name")
        twice = next((c for i, c in enumerate(found) if c in found[:i]), None)
        if twice is not None:
            raise UserError(path, f"line 1: the header names column {twice!r} twice (columns: "
                                  f"{', '.join(found)}): give each column its own name")
        if names and names != found:
            raise UserError(path, f"line 1: header {found} differs from the manifest's columns {names}")
        names = found
    skip = 1 if header else 0

    def col(name: str, what: str) -> int:
        if name not in names:
            raise UserError(path, f"{'line 1: ' if header else ''}no {what} column {name!r} "
                                  f"(columns: {', '.join(names)})")
        return names.index(name)

    t_i = col(spec["time"]["column"], "time") if spec.get("time") else None
    src = {k: spec.get(k) for k in ("subject", "label")}
    text_cols = {k: col(s["column"], k) for k, s in src.items() if s and "column" in s}
    used = {t_i} | set(text_cols.values())
    named = spec.get("channels")  # a list of columns, or {column: sensor axis}
    channels = list(named or [n for i, n in enumerate(names) if i not in used])
    if not channels:
        raise UserError(path, f"no channel columns (columns: {', '.join(names)})")
    ch_i = [col(c, "channel") for c in channels]
    if t_i in ch_i or set(text_cols.values()) & set(ch_i):
        both = names[next(i for i in ch_i if i in used)]
        raise UserError(m.path, f"column {both!r} is a channel and the time, subject or label column")
    units = spec.get("units", "g")
    units = [units] * len(channels) if isinstance(units, str) else list(units)
    if len(units) != len(channels):
        raise UserError(m.path, f"units: {len(units)} units for {len(channels)} channels "
                                f"({', '.join(channels)}): give one unit, or one per channel")
    axes = named if isinstance(named, dict) else infer_axes(channels, units)
    table = read_table(path, sep, len(names), skip, {} if t_i is None else {t_i: np.float64},
                       sorted(set(text_cols.values())), names, block=ch_i)
    data = table.block
    meta = {"columns": names}
    if axes:  # the samples keep their columns' names in meta: what the manifest maps from
        meta["channel_columns"] = channels
        channels = [axes.get(c, c) for c in channels]
    rate = spec.get("rate")
    subject = _source(m, path, table, names, src["subject"], "subject")
    labels, label_names = _source(m, path, table, names, src["label"], "label", per_sample=True)
    if t_i is not None:
        t = table.numbers.pop(t_i)
        t *= TIME_UNITS[spec["time"].get("unit", "s")]
        data, labels, rate, meta["resampled"] = _on_grid(table, names[t_i], t, data, labels, rate)
        meta["start_time"] = float(t[0])
        del t
    return RawFile(path, data, float(rate), tuple(channels), tuple(units),
                   subject if subject is not None else "0", labels, label_names, spec, meta)


def _steps(t: np.ndarray) -> np.ndarray:
    """Time steps as float32, computed a block at a time (no float64 copy of the column)."""
    out = np.empty(max(len(t) - 1, 0), np.float32)
    for lo in range(0, len(out), 1 << 20):
        out[lo:lo + (1 << 20)] = np.diff(t[lo:lo + (1 << 20) + 1])
    return out


def _on_grid(table, name, t, data, labels, rate):
    """Samples (and label codes) at a fixed rate from timed samples: as they are when the
    steps are regular, else interpolated (`resample_on_times`; labels: nearest). Time going
    backwards, a jump no pause explains, and a grid out of proportion to the samples are
    problems naming the line, found before anything is interpolated."""
    path = table.path
    steps = _steps(t)
    if len(steps) and steps.min() < 0:
        k = int(steps.argmin()) + 1
        raise UserError(path, f"line {table.line_of(k)}: time goes backwards in column {name!r} "
                              f"({t[k - 1]:g} s, then {t[k]:g} s)")
    zeros = int(len(steps) - np.count_nonzero(steps))
    positive = len(steps) - zeros
    if not positive:
        raise UserError(path, f"column {name!r}: time never increases: cannot derive the rate")
    biggest, k = float(steps.max()), int(steps.argmax()) + 1
    regular = zeros == 0 and rate is not None and \
        abs(float(steps.min()) * rate - 1) < 0.01 and abs(biggest * rate - 1) < 0.01
    mid = [zeros + (positive - 1) // 2, zeros + positive // 2]
    steps.partition(mid)  # in place: the median positive step without a sorted copy
    median = float(steps[mid].astype(np.float64).mean())
    del steps
    if biggest > MAX_GAP_STEPS * median and biggest > MAX_GAP_S:
        raise UserError(path, f"line {table.line_of(k)}, column {name!r}: time jumps {biggest:.6g} s "
                              f"from the line before ({biggest / median:.3g} times the median step of "
                              f"{median:.3g} s): fix the wrong stamp, or split the file where the "
                              "pause is")
    measured = float(f"{1.0 / median:.6g}")
    rate = float(rate or measured)
    if regular or (rate == measured and zeros == 0 and abs(biggest * rate - 1) < 0.01):
        return data, labels, rate, False
    points = (float(t[-1]) - float(t[0])) * rate + 1
    if points > MAX_GRID_FACTOR * len(t):
        raise UserError(path, f"column {name!r}: {len(t)} samples over {t[-1] - t[0]:.6g} s would "
                              f"be interpolated onto {points:.4g} points at {rate:g} Hz (the times "
                              f"say {measured:g} Hz): give the rate the times have")
    codes = labels if labels is not None else np.zeros(len(t), np.int32)
    grid, codes = resample_on_times(t, data, codes, rate, path, 1 + table.skip)
    return grid, (codes if labels is not None else None), rate, True


def _source(m, path, table, names, src, what, per_sample=False):
    """Subject or label of a file from a column, the file path, a parent folder or a value:
    a name, or per sample (codes, names)."""
    if not src:
        return (None, []) if per_sample else None
    kind, arg = next(iter(src.items()))
    if kind == "column":
        codes, found = table.words[names.index(arg)]
        if per_sample:
            return codes, found
        if len(found) != 1:
            raise UserError(path, f"column {arg!r} holds {len(found)} {what}s; one per file")
        value = found[0]
        if not value:
            raise UserError(path, f"column {arg!r}: every {what} cell is empty")
    elif kind == "pattern":
        rx = re.compile(arg)  # compiled once by the schema: valid
        rel = m.name_of(path)
        hit = rx.search(rel)
        if not hit:
            raise UserError(path, f"{what} pattern {arg!r} matches nothing in {rel!r}")
        value = hit.group(what) if what in rx.groupindex else hit.group(1 if rx.groups else 0)
        if value is None or not value.strip():
            raise UserError(path, f"{what} pattern {arg!r} matches an empty {what} in {rel!r}")
    elif kind == "folder":
        parents = path.relative_to(m.folder).parents
        if not 1 <= arg < len(parents):
            raise UserError(path, f"{what} from folder level {arg!r}: the file is "
                                  f"{len(parents) - 1} folder(s) deep")
        value = parents[arg - 1].name
    else:
        value = str(arg)
    return (np.zeros(table.rows, np.int32), [value]) if per_sample else value


def _subject_ids(names: list[str]) -> dict[str, int]:
    """Numeric subject names keep their number; others are numbered 1.. in sorted order."""
    if all(n.isdigit() for n in names):
        return {n: int(n) for n in names}
    return {n: k for k, n in enumerate(sorted(names), 1)}


def _blocks(n: int, size: int = 1 << 20):
    return ((lo, min(lo + size, n)) for lo in range(0, n, size))


def _labels(codes: np.ndarray, table: np.ndarray) -> np.ndarray:
    """`table[codes]` as int64, a block at a time (no intp copy of the codes)."""
    out = np.empty(len(codes), np.int64)
    for lo, hi in _blocks(len(codes)):
        out[lo:hi] = table[codes[lo:hi]]
    return out


def label_counts(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Samples per class (index 0: unlabelled, then class k at k + 1), a block at a time."""
    counts = np.zeros(n_classes + 1, np.int64)
    for lo, hi in _blocks(len(labels)):
        counts += np.bincount(labels[lo:hi] + 1, minlength=n_classes + 1)
    return counts


def build(m: Manifest, raws: list[RawFile]) -> list[Recording]:
    """Recordings of a folder's files, sharing one class list and subject numbering."""
    found = sorted({n for r in raws if r.label_codes is not None for n in r.label_names} - {""})
    classes = list(m.spec.get("classes") or found)
    extra = [c for c in found if c not in classes]
    if extra:
        where = next(r.path for r in raws if r.label_codes is not None and extra[0] in r.label_names)
        raise UserError(where, f"label {extra[0]!r} is not in the manifest's \"classes\" "
                               f"({', '.join(classes)}): add it there, or fix the cell")
    lookup = {c: k for k, c in enumerate(classes)}
    ids = _subject_ids(sorted({r.subject for r in raws}))
    canon = canonical_names(classes, m.spec.get("label_map", {}))
    out = []
    for r in raws:
        labels = None
        if r.label_codes is not None:
            table = np.array([lookup.get(n, UNLABELLED) for n in r.label_names], np.int64)
            labels, r.label_codes = _labels(r.label_codes, table), None
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


def check_folder(folder: str | Path, inspect=None) -> dict:
    """What a folder holds, per file, and every problem found (file and line), without stopping
    at the first. `inspect(recording)`, when given, adds its dict to each readable file's entry
    as "check" (`edgehar data check` passes the stream checks of `plausibility.py`)."""
    m = Manifest.read(folder)  # a manifest problem stops here, before any file is read
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
        counts = (label_counts(rec.labels, len(rec.label_names)) if rec.labels is not None else
                  np.array([rec.n_samples]))
        files.append({"file": rec.source, "ok": True, "rows": rec.n_samples, "rate_hz": rec.rate,
                      "seconds": round(rec.seconds, 2), "channels": list(rec.channels),
                      "units": list(rec.units), "subject": rec.meta["subject_name"],
                      **({"channel_columns": rec.meta["channel_columns"]}
                         if "channel_columns" in rec.meta else {}),
                      "labels": {n: int(c) for n, c in zip(rec.label_names, counts[1:]) if c},
                      "unlabelled": int(counts[0]), "resampled": bool(rec.meta.get("resampled")),
                      **({"check": inspect(rec)} if inspect else {})})
    files.sort(key=lambda f: f["file"])
    return {"folder": str(m.folder), "files": files, "problems": problems}


def write_folder(recordings: list[Recording], out: str | Path, placement: str = "",
                 device: str = "") -> Path:
    """Write recordings in this format (one CSV per recording, `rate` in the manifest, label
    column, subject in the file name), atomically: a named data set converted to your own."""
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
