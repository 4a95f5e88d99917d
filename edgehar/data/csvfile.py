"""Generic CSV recordings: a header row, optional time and label columns, numeric axes.

Rows may end with a stray `;` (Bangle.js logs do). Times may be seconds (`12.34`), clock times
(`HH:MM:SS.fff`) or ISO date-times (`2023-06-08T12:21:04.5`, naive = UTC); the rate is the
inverse of the median time step, so the jumps of a log stitched from several sessions do not
bias it (they are counted in `meta["time_jumps"]`).
"""

from __future__ import annotations

import csv
import re
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from edgehar.data.recording import MAX_RATE_HZ, UNLABELLED, Recording
from edgehar.data.textfile import check_finite, is_number
from edgehar.errors import UserError, require_file

UNITS = ("g", "m/s^2", "rad/s", "deg/s")
TIME_NAMES = ("time", "timestamp", "t", "seconds", "time_s", "datetime", "date_time")
MIN_SESSION_JUMP_S = 1.0  # a backward time step shorter than this is corrupt, longer a new session
MAX_CELL = 1000  # characters; a longer cell is not a number or a name
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
    `delimiter`: default sniffed from the header (`,` `;` tab, else whitespace).
    """
    path = Path(require_file(path, "CSV file"))
    header, rows, line_nos = _read_rows(path, delimiter)
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
                   if i not in (t_i, l_i) and is_number(rows[0][i])]
        if not columns:
            raise UserError(path, "no numeric columns besides time/label")
    axes = [column(c, "data") for c in columns]
    units = [units] * len(columns) if isinstance(units, str) else list(units)
    if len(units) != len(columns):
        raise UserError(path, f"{len(units)} units given for {len(columns)} columns")
    for u in units:
        if u not in UNITS:
            raise UserError(path, f"unknown unit {u!r} (known: {', '.join(UNITS)})")

    data = np.stack([_numbers(path, rows, i, header[i], line_nos) for i in axes], axis=1)
    check_finite(path, data, lambda row: line_nos[row], [header[i] for i in axes])
    meta: dict = {"columns": list(columns)}
    start_time = None
    if t_i is not None:
        times, kind = _times(path, rows, t_i, header[t_i], line_nos)
        steps = np.diff(times)
        back = np.flatnonzero((steps < 0) & (steps > -MIN_SESSION_JUMP_S))
        if len(back):  # a log stitched from sessions jumps back by hours, a clock never by ms
            k = int(back[0]) + 1
            raise UserError(path, f"line {line_nos[k]}, column {header[t_i]!r}: time goes back "
                                  f"{-steps[k - 1]:.6g} s from the line before")
        positive = steps[steps > 0]
        meta.update(time_column=header[t_i], time_format=kind)
        if rate is None:
            if len(positive) == 0:
                raise UserError(path, f"column {header[t_i]!r}: time never increases, cannot "
                                      "derive the rate (pass rate=)")
            rate = float(f"{1.0 / np.median(positive):.6g}")  # 0.02000000004 s -> 50 Hz
        meta["time_jumps"] = int(((steps <= 0) | (steps > 1.5 / rate)).sum())
        if kind == "iso" or (kind == "seconds" and times[0] > 1e8):  # an absolute time
            start_time = float(times[0])
        elif kind == "clock":
            meta["start_clock"] = rows[0][t_i].strip()
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
        cells = [r[l_i].strip() for r in rows]
        names = {c for c in cells if c}
        numeric = all(is_number(c) for c in names)  # class ids: 2 before 10
        label_names = tuple(sorted(names, key=float if numeric else str))
        lookup = {name: k for k, name in enumerate(label_names)}
        labels = np.array([lookup.get(c, UNLABELLED) for c in cells], dtype=np.int64)
    return Recording(data=data, rate=float(rate), channels=tuple(columns), units=tuple(units),
                     labels=labels, label_names=label_names, name=path.stem, source=str(path),
                     start_time=start_time, meta=meta)


def _read_rows(path: Path, delimiter: str | None) -> tuple[list[str], list[list[str]], list[int]]:
    """Header, data rows (cells as text, trailing `;` dropped) and each row's file line."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise UserError(path, "not a UTF-8 text file") from None
    if "\x00" in text:
        n = text.count("\n", 0, text.index("\x00")) + 1
        raise UserError(path, f"line {n}: a NUL byte (binary data, not a CSV file)")
    lines = [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1)]
    lines = [(n, line) for n, line in lines if line and not line.startswith("#")]
    if not lines:
        raise UserError(path, "empty file (expected a header row and data rows)")
    head = lines[0][1]
    if delimiter is None:
        delimiter = next((d for d in (",", ";", "\t") if d in head.rstrip(";")), " ")
    if delimiter != ";":
        lines = [(n, line.rstrip(";").rstrip()) for n, line in lines]

    def split(n: int, line: str) -> list[str]:
        if len(line) > MAX_CELL:  # before the csv module, which has its own (larger) limit
            long = max(line.split(None if delimiter == " " else delimiter), key=len)
            if len(long) > MAX_CELL:
                raise UserError(path, f"line {n}: a cell of {len(long)} characters (at most {MAX_CELL})")
        if delimiter == " ":
            return line.split()
        try:
            cells = next(csv.reader([line], delimiter=delimiter))
        except csv.Error as e:
            raise UserError(path, f"line {n}: {e}") from None
        return cells[:-1] if delimiter == ";" and cells and cells[-1] == "" else cells

    header = [h.strip() for h in split(*lines[0])]
    if len(lines) < 2:
        raise UserError(path, "no data rows after the header")
    if is_number(header[0]) and len(header) > 1 and all(is_number(h) for h in header):
        raise UserError(path, "no header row (the first line is numbers; name the columns)")
    dupes = {h for h in header if header.count(h) > 1}
    if dupes:
        raise UserError(path, f"header names column {sorted(dupes)[0]!r} more than once")
    rows = []
    for n, line in lines[1:]:
        cells = split(n, line)
        if len(cells) != len(header):
            raise UserError(path, f"line {n}: {len(cells)} cells, the header has {len(header)}")
        rows.append(cells)
    return header, rows, [n for n, _ in lines[1:]]


def _numbers(path: Path, rows: list[list[str]], i: int, name: str, line_nos: list[int]) -> np.ndarray:
    cells = [r[i] for r in rows]
    try:
        return np.array(cells, dtype=np.float64)
    except ValueError:
        pass  # find and name the bad cell
    for k, cell in enumerate(cells):
        if not is_number(cell):
            raise UserError(path, f"line {line_nos[k]}, column {name!r}: not a number: {cell.strip()!r}")
    raise AssertionError("unreachable")


def _times(path: Path, rows, i: int, name: str, line_nos: list[int]) -> tuple[np.ndarray, str]:
    """Times as float seconds, and their format: seconds, clock (s since midnight) or iso."""
    cells = [r[i].strip() for r in rows]
    kind = "seconds" if is_number(cells[0]) else "clock" if _CLOCK.match(cells[0]) else "iso"
    out = np.empty(len(cells), dtype=np.float64)
    for k, cell in enumerate(cells):
        try:
            if kind == "seconds":
                out[k] = float(cell)
            elif kind == "clock":
                h, m, s = _CLOCK.match(cell).groups()
                out[k] = int(h) * 3600 + int(m) * 60 + float(s)
            else:
                dt = datetime.fromisoformat(cell.replace("Z", "+00:00"))
                out[k] = (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).timestamp()
        except (ValueError, AttributeError):
            want = {"seconds": "seconds", "clock": "a HH:MM:SS time",
                    "iso": "an ISO date-time"}[kind]
            raise UserError(path, f"line {line_nos[k]}, column {name!r}: not {want}: {cell!r}") from None
        if not np.isfinite(out[k]):
            raise UserError(path, f"line {line_nos[k]}, column {name!r}: {cell!r} is not a finite time")
    return out, kind
