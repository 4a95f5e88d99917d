"""Fast parsing of large, clean delimited text: one read, one split, one numpy conversion.

The common case (every row well formed) never loops in Python; only when the conversion
fails is the text scanned row by row to name the first bad line and column.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgehar.data.textfile import is_number
from edgehar.errors import UserError


def read_text(path: Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise UserError(path, "not a UTF-8 text file") from None


def split_table(path: Path, text: str, columns: int | None = None, skip: int = 0,
                sep: str = ",") -> np.ndarray:
    """Cells of a `sep`-separated table as a (rows, cols) array of str; rows may end with `;`.

    `columns`: expected width (default: the first row's). Ragged rows are a `UserError`
    naming the line.
    """
    lines = (text if sep == ";" else text.replace(";", "")).split("\n")[skip:]
    lines = [ln for ln in (s.strip() for s in lines) if ln]
    if not lines:
        raise UserError(path, "no data rows")
    width = columns or lines[0].count(sep) + 1
    cells = sep.join(lines).split(sep)
    if len(cells) != width * len(lines):
        _ragged(path, text, width, skip, sep)
    return np.array(cells).reshape(len(lines), width)


def to_float(path: Path, text: str, cells: np.ndarray, cols, names=None, skip: int = 0) -> np.ndarray:
    """Columns `cols` of a cell table as float64; a bad cell is a `UserError` naming it."""
    try:
        return cells[:, cols].astype(np.float64)
    except ValueError:
        pass
    cols = list(range(cells.shape[1]))[cols] if isinstance(cols, slice) else list(cols)
    for r in range(len(cells)):
        for c in cols:
            if not is_number(cells[r, c]):
                what = f"column {names[c]!r}" if names else f"column {c + 1}"
                raise UserError(path, f"line {_line_of(text, r, skip)}, {what}: not a number: "
                                      f"{cells[r, c]!r}")
    raise AssertionError("unreachable")


def _line_of(text: str, row: int, skip: int) -> int:
    """File line number (1-based) of data row `row` (blank lines are not rows)."""
    seen = -1
    for n, line in enumerate(text.split("\n"), 1):
        if n <= skip or not line.replace(";", "").strip():
            continue
        seen += 1
        if seen == row:
            return n
    return n


def _ragged(path: Path, text: str, width: int, skip: int, sep: str) -> None:
    for n, line in enumerate(text.split("\n"), 1):
        line = (line if sep == ";" else line.replace(";", "")).strip()
        if n <= skip or not line:
            continue
        if line.count(sep) + 1 != width:
            raise UserError(path, f"line {n}: {line.count(sep) + 1} values, expected {width}")
    raise AssertionError("unreachable")
