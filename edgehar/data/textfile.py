"""Reading whitespace/comma separated numeric text tables with errors that name the cell."""

from __future__ import annotations

import re

import numpy as np

from edgehar.errors import UserError, require_file

_SPLIT = re.compile(r"[,\s;]+")


def read_numeric_table(path, sep: str | None = None, columns: int | None = None,
                       skip_header: int = 0) -> np.ndarray:
    """Parse a numeric table into float64 (rows, cols).

    `sep=None` splits on any run of spaces, tabs, commas or semicolons (so trailing `;` is
    fine). A non-numeric cell, a ragged row, or a value that is NaN, infinite or beyond float32
    (samples become float32) is a `UserError` naming the line and column.
    """
    path = require_file(path)
    try:
        with open(path, "r", encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError:
        raise UserError(path, "not a text file") from None
    try:
        # Fast path: numpy's C parser handles clean whitespace-separated files.
        if sep is None and "," not in text[:4096] and ";" not in text[:4096]:
            arr = np.loadtxt(path, ndmin=2, skiprows=skip_header)
            if columns is not None and arr.shape[1] != columns:
                raise UserError(path, f"expected {columns} columns, found {arr.shape[1]}")
            check_finite(path, arr, lambda row: data_line(text, row, skip_header))
            return arr
    except ValueError:
        pass  # fall through to the slow path, which names the bad cell
    rows = []
    width = None
    for n, line in enumerate(text.splitlines()[skip_header:], 1 + skip_header):
        line = line.strip().rstrip(";")
        if not line:
            continue
        cells = [c for c in (_SPLIT.split(line) if sep is None else line.split(sep)) if c != ""]
        if width is None:
            width = len(cells)
            if columns is not None and width != columns:
                raise UserError(path, f"line {n}: expected {columns} columns, found {width}")
        if len(cells) != width:
            raise UserError(path, f"line {n}: {len(cells)} values, expected {width}")
        try:
            rows.append([float(c) for c in cells])
        except ValueError:
            bad = next(i for i, c in enumerate(cells) if not is_number(c))
            raise UserError(path, f"line {n}, column {bad + 1}: not a number: {cells[bad]!r}") from None
    if not rows:
        raise UserError(path, "no data rows")
    arr = np.asarray(rows, dtype=np.float64)
    check_finite(path, arr, lambda row: data_line(text, row, skip_header))
    return arr


FLOAT32_MAX = float(np.finfo(np.float32).max)


def check_finite(path, table: np.ndarray, line_of, names=None) -> None:
    """A `UserError` naming the first cell that is NaN, infinite or beyond float32's range.

    `line_of(row)` gives the file line of a table row; `names` the column names, if any.
    """
    bad = ~(np.abs(table) <= FLOAT32_MAX)  # NaN compares False: caught too
    if not bad.any():
        return
    row, col = (int(i) for i in np.argwhere(bad)[0])
    value = table[row, col]
    what = "not a finite number" if not np.isfinite(value) else "beyond the float32 range"
    column = f"column {names[col]!r}" if names else f"column {col + 1}"
    raise UserError(path, f"line {line_of(row)}, {column}: {value:g} is {what}")


def data_line(text: str, row: int, skip_header: int = 0) -> int:
    """File line (1-based) of the `row`-th data row (blank lines skipped) of a table's text."""
    k = -1
    for n, line in enumerate(text.splitlines()[skip_header:], 1 + skip_header):
        if line.strip().rstrip(";").strip():
            k += 1
            if k == row:
                return n
    return row + 1 + skip_header


def is_number(cell: str) -> bool:
    """Whether `float()` reads the cell ("1e-3", " 2 ", "nan" and "inf" included)."""
    try:
        float(cell)
        return True
    except ValueError:
        return False
