"""Generic CSV recordings: a header row, optional time and label columns, numeric axes.

Rows may end with a stray `;` (Bangle.js logs do). Times may be seconds (`12.34`), clock times
(`HH:MM:SS.fff`) or ISO date-times (`2023-06-08T12:21:04.5`, naive = UTC); the rate is the
inverse of the median time step, so the jumps of a log stitched from several sessions do not
bias it (they are counted in `meta["time_jumps"]`).
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from edgehar.data.fastparse import (
    MAX_WORD,
    BadCell,
    check_text,
    read_table,
    split_cells,
    too_long,
)
from edgehar.data.recording import MAX_RATE_HZ, UNLABELLED, Recording
from edgehar.data.textfile import is_number
from edgehar.errors import UserError, require_file

UNITS = ("g", "m/s^2", "rad/s", "deg/s")
TIME_NAMES = ("time", "timestamp", "t", "seconds", "time_s", "datetime", "date_time")
MIN_SESSION_JUMP_S = 1.0  # a backward time step shorter than this is corrupt, longer a new session
MAX_HEADER = 100_000  # characters of a header line
_TIME_FORMATS = {"seconds": "seconds", "clock": "a HH:MM:SS time", "iso": "an ISO date-time"}
_CLOCK = re.compile(r"^(\d{1,2}):(\d{2}):(\d{2}(?:\.\d*)?)$")


def load_csv(path: str | Path, columns: list[str] | None = None, units: str | list[str] = "g",
             rate: float | None = None, time_column: str | None = "auto",
             label_column: str | None = None, delimiter: str | None = None) -> Recording:
    """Read a CSV with a header row into a `Recording`.

    `columns`: the axis columns in order (default: every numeric column but time and label).
    `units`: one unit for all axes or one per axis (g, m/s^2, rad/s, deg/s).
    `rate`: Hz; default 1 / median step of the time column (one of them is needed).
    `time_column`: a column name, "auto" (a column named time/timestamp/t/...) or None.
    `label_column`: a column of class names (empty cell = unlabelled) -> labels, label_names.
    `delimiter`: default sniffed from the header (`,` `;` tab, else blanks).

    Lines starting with `#` are comments. The file is read in chunks (`fastparse.read_table`):
    memory follows the samples, not the text.
    """
    path = Path(require_file(path, "CSV file"))
    head = _head(path, delimiter)
    header = head.header
    index = {name: i for i, name in enumerate(header)}

    def column(name: str, what: str) -> int:
        if name not in index:
            raise UserError(path, f"no {what} column {name!r} (columns: {', '.join(header)})")
        return index[name]

    if time_column == "auto":
        time_column = next((h for h in header if h.strip().lower() in TIME_NAMES), None)
    t_i = column(time_column, "time") if time_column is not None else None
    l_i = column(label_column, "label") if label_column is not None else None
    if columns is None:
        columns = [h for i, h in enumerate(header)
                   if i not in (t_i, l_i) and is_number(head.first_row[i])]
        if not columns:
            raise UserError(path, "no numeric columns besides time/label")
    axes = [column(c, "data") for c in columns]
    units = [units] * len(columns) if isinstance(units, str) else list(units)
    if len(units) != len(columns):
        raise UserError(path, f"{len(units)} units given for {len(columns)} columns")
    for u in units:
        if u not in UNITS:
            raise UserError(path, f"unknown unit {u!r} (known: {', '.join(UNITS)})")

    read = list(dict.fromkeys(axes))  # a column named twice is read once
    times = _TimeCells(head.first_row[t_i].strip()) if t_i is not None else None
    table = read_table(path, head.sep, len(header), head.line, {}, [l_i] if l_i is not None else (),
                       header, block=read, parsers={t_i: times} if times else None, comment="#",
                       trailing_sep=True, width_of="the header")
    data = table.block if read == axes else table.block[:, [read.index(i) for i in axes]]
    meta: dict = {"columns": list(columns)}
    start_time = None
    if t_i is not None:
        t = table.numbers.pop(t_i)
        steps = np.diff(t)
        back = np.flatnonzero((steps < 0) & (steps > -MIN_SESSION_JUMP_S))
        if len(back):  # a log stitched from sessions jumps back by hours, a clock never by ms
            k = int(back[0]) + 1
            raise UserError(path, f"line {table.line_of(k)}, column {header[t_i]!r}: time goes back "
                                  f"{-steps[k - 1]:.6g} s from the line before")
        positive = steps[steps > 0]
        meta.update(time_column=header[t_i], time_format=times.kind)
        if rate is None:
            if len(positive) == 0:
                raise UserError(path, f"column {header[t_i]!r}: time never increases, cannot "
                                      "derive the rate (pass rate=)")
            rate = float(f"{1.0 / np.median(positive):.6g}")  # 0.02000000004 s -> 50 Hz
        meta["time_jumps"] = int(((steps <= 0) | (steps > 1.5 / rate)).sum())
        if times.kind == "iso" or (times.kind == "seconds" and t[0] > 1e8):  # an absolute time
            start_time = float(t[0])
        elif times.kind == "clock":
            meta["start_clock"] = head.first_row[t_i].strip()
        del t, steps, positive
    elif rate is None:
        raise UserError(path, "no time column and no rate given: pass the sampling rate "
                              "(rate=, --rate)")
    if not rate > 0:
        raise UserError(path, f"rate must be positive, got {rate}")
    if rate > MAX_RATE_HZ:
        where = f"column {header[t_i]!r}: time steps of" if t_i is not None else "a rate of"
        raise UserError(path, f"{where} {1 / rate:.3g} s give {rate:.6g} Hz, above the "
                              f"{MAX_RATE_HZ:g} Hz of any wearable sensor (seconds in another unit?)")

    labels, label_names = None, ()
    if l_i is not None:
        codes, found = table.words[l_i]
        names = [c for c in found if c]
        numeric = all(is_number(c) for c in names)  # class ids: 2 before 10
        label_names = tuple(sorted(names, key=float if numeric else str))
        order = {name: k for k, name in enumerate(label_names)}
        labels = np.array([order.get(c, UNLABELLED) for c in found], np.int64)[codes]
    return Recording(data=data, rate=float(rate), channels=tuple(columns), units=tuple(units),
                     labels=labels, label_names=label_names, name=path.stem, source=str(path),
                     start_time=start_time, meta=meta)


@dataclass
class _Head:
    header: list[str]  # column names
    sep: str | None  # None: blank-separated
    line: int  # file line of the header: the rows follow it
    first_row: list[str]  # cells of the first data row


def _head(path: Path, delimiter: str | None) -> _Head:
    """The header and first data row (blank and `#` lines skipped), read a line at a time."""
    sep = None if delimiter == " " else delimiter
    header = None
    try:
        with open(path, encoding="utf-8-sig", newline=None) as f:
            for n, raw in enumerate(iter(lambda: f.readline(MAX_HEADER + 1), ""), 1):
                line = raw.strip()
                if header is None and delimiter is None:
                    sep = next((d for d in (",", ";", "\t") if d in line.rstrip(";")), None)
                if len(raw) > MAX_HEADER and not raw.endswith("\n"):
                    raise too_long(path, n, raw, f, sep, MAX_HEADER)
                check_text(path, raw, n)
                if not line or line.startswith("#"):
                    continue
                cells = _split(line, sep, quoted=header is None)
                if not cells:
                    continue
                if header is None:
                    header, at = [h.strip() for h in cells], n
                    _check_header(path, header, n)
                elif len(cells) != len(header):
                    raise UserError(path, f"line {n}: {len(cells)} cells, the header has {len(header)}")
                else:
                    return _Head(header, sep, at, cells)
    except UnicodeDecodeError:
        raise UserError(path, "not a UTF-8 text file") from None
    except csv.Error as e:
        raise UserError(path, f"line {n}: {e}") from None
    if header is None:
        raise UserError(path, "empty file (expected a header row and data rows)")
    raise UserError(path, "no data rows after the header")


def _split(line: str, sep: str | None, quoted: bool) -> list[str]:
    """Cells of a stripped line, as `read_table` splits a row; a row's trailing `;`
    (Bangle.js) is no cell. `quoted`: names may be quoted (the csv module reads a header)."""
    line = line.removesuffix(";") if sep == ";" else line.rstrip(";").rstrip()
    if not line:
        return []
    if quoted and sep is not None:
        return next(csv.reader([line], delimiter=sep))  # csv.Error: see _head
    return split_cells(line, sep)


def _check_header(path: Path, header: list[str], n: int) -> None:
    long = max(header, key=len)
    if len(long) > MAX_WORD:
        raise UserError(path, f"line {n}: a cell of {len(long)} characters (at most {MAX_WORD})")
    if is_number(header[0]) and len(header) > 1 and all(is_number(h) for h in header):
        raise UserError(path, "no header row (the first line is numbers; name the columns)")
    dupes = sorted(h for h, k in Counter(header).items() if k > 1)
    if dupes:
        raise UserError(path, f"header names column {dupes[0]!r} more than once")


class _TimeCells:
    """A time column's cells as float seconds (`read_table` parser). The first cell decides
    the format: seconds, clock (HH:MM:SS.fff, seconds since midnight) or an ISO date-time."""

    def __init__(self, first: str):
        self.kind = "seconds" if is_number(first) else "clock" if _CLOCK.match(first) else "iso"

    def __call__(self, cells: list[str]) -> np.ndarray:
        if self.kind == "seconds":
            try:
                out = np.array(cells, dtype=np.float64)
                if np.isfinite(out).all():
                    return out
            except ValueError:
                pass  # find and name the bad cell below
        out = np.empty(len(cells), dtype=np.float64)
        for k, cell in enumerate(cells):
            cell = cell.strip()
            try:
                out[k] = self.seconds(cell)
            except (ValueError, AttributeError):
                raise BadCell(k, f"not {_TIME_FORMATS[self.kind]}: {cell!r}") from None
            if not np.isfinite(out[k]):
                raise BadCell(k, f"{cell!r} is not a finite time")
        return out

    def seconds(self, cell: str) -> float:
        if self.kind == "seconds":
            return float(cell)
        if self.kind == "clock":
            h, m, s = _CLOCK.match(cell).groups()
            return int(h) * 3600 + int(m) * 60 + float(s)
        dt = datetime.fromisoformat(cell.replace("Z", "+00:00"))
        return (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).timestamp()
