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
    fine). A non-numeric cell or a ragged row is a `UserError` naming the line and column.
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
    return np.asarray(rows, dtype=np.float64)


def is_number(cell: str) -> bool:
    """Whether `float()` reads the cell ("1e-3", " 2 ", "nan" and "inf" included)."""
    try:
        float(cell)
        return True
    except ValueError:
        return False
