"""Parsing large delimited text with memory bounded by the samples, not the text.

`read_table` reads a file in chunks of about a megabyte: each chunk is split into cells, the
wanted numeric columns are converted straight into preallocated float32/float64 arrays and
the text columns (labels, subjects) into small integer codes, so the peak is the arrays it
returns plus one chunk, whatever the widest cell. A cell that is not a number, not finite or
beyond float32's range, longer than any number, or a ragged row is a `UserError` naming the
file, line and column.

`split_table` / `to_float` are the whole-text form the named loaders (WISDM, GeoTec) use on
their known, clean files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgehar.data.textfile import FLOAT32_MAX, check_finite, is_number
from edgehar.errors import UserError

CHUNK = 1 << 20  # characters of text per chunk
MAX_NUMBER = 64  # characters; "-1.2345678901234567e-308" is 24, a longer cell is no number
MAX_WORD = 1000  # characters of a label or subject cell
MAX_WORDS = 10_000  # different labels (or subjects) in one column: more is not a label column


def read_text(path: Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise UserError(path, "not a UTF-8 text file") from None


@dataclass
class Table:
    """Columns of one file. `numbers[c]`: values of column c; `words[c]`: (codes, names) with
    `names[codes[i]]` the stripped text of row i. Row i is the i-th non-blank data line."""

    path: Path
    rows: int
    numbers: dict[int, np.ndarray] = field(default_factory=dict)
    block: np.ndarray | None = None  # (rows, len(block columns)) float32
    words: dict[int, tuple[np.ndarray, list[str]]] = field(default_factory=dict)
    skip: int = 0

    def line_of(self, row: int) -> int:
        """File line (1-based) of data row `row`: the file is read again, a chunk at a time
        (only an error message needs it)."""
        seen = -1
        with _open(self.path) as f:
            for n, line in enumerate(f, 1):
                if n > self.skip and line.strip().rstrip(";").strip():
                    seen += 1
                    if seen == row:
                        return n
        return n


def _open(path: Path):
    return open(path, encoding="utf-8-sig", newline=None)


def _capacity(path: Path, width: int) -> int:
    """An upper bound on the data rows: the lines, and no more than the text could hold.
    Arrays this long are allocated empty: only the rows written take memory."""
    lines, size = 1, 0
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            lines += block.count(b"\n") + block.count(b"\r")
            size += len(block)
    return max(1, min(lines, size // (2 * width - 1) + 1))


def read_table(path: Path, sep: str, width: int, skip: int, numbers: dict[int, type],
               words=(), names=None, block=()) -> Table:
    """The columns `numbers` ({column: np.float32 or np.float64}), `block` (columns read into
    one (rows, k) float32 array, a recording's samples without a copy) and `words` of a
    `sep`-separated file of `width` columns, after `skip` header lines.

    Rows may end with `;` (when `sep` is not `;`); blank lines are skipped. `names` (one per
    column) name the columns in messages.
    """
    path = Path(path)
    table = Table(path, 0, skip=skip)
    cap = _capacity(path, width)
    matrix = np.empty((cap, len(block)), np.float32)
    out = {c: np.empty(cap, dt) for c, dt in numbers.items()}
    out.update({c: matrix[:, k] for k, c in enumerate(block)})
    codes = {c: np.empty(cap, np.int32) for c in words}
    lookup: dict[int, dict[str, int]] = {c: {} for c in words}
    kept: dict[int, dict[str, int]] = {c: {} for c in words}  # stripped name -> code
    longest = width * (max(MAX_NUMBER, MAX_WORD) + 2)  # characters a row can need
    what = (lambda c: f"column {names[c]!r}") if names else (lambda c: f"column {c + 1}")
    line_no, row = 0, 0
    try:
        with _open(path) as f:
            for _ in range(skip):
                f.readline(longest + 1)
            line_no = skip
            while True:
                text = f.read(CHUNK)
                if not text:
                    break
                if not text.endswith("\n"):
                    tail = f.readline(longest + 1)
                    text += tail
                    if len(tail) > longest and not tail.endswith("\n"):
                        lines_before = text.count("\n")
                        raise UserError(path, f"line {line_no + lines_before + 1}: over {longest} "
                                              f"characters for {width} columns (a cell too long to "
                                              "be a number or a name)")
                lines = text.split("\n")
                if lines[-1] == "":
                    lines.pop()
                rows = [s.strip() for s in lines]
                if sep != ";":
                    rows = [s.rstrip(";").rstrip() for s in rows]
                where = [k for k, s in enumerate(rows) if s] if any(not s for s in rows) else None
                if where is not None:
                    rows = [rows[k] for k in where]

                def line(k: int) -> int:  # file line of this chunk's k-th row
                    return line_no + 1 + (where[k] if where is not None else k)

                cells = sep.join(rows).split(sep)
                if len(cells) != width * len(rows):
                    for k, s in enumerate(rows):
                        if s.count(sep) + 1 != width:
                            raise UserError(path, f"line {line(k)}: {s.count(sep) + 1} values, "
                                                  f"expected {width}")
                n = len(rows)
                for c, arr in out.items():
                    col = cells[c::width]
                    if max(map(len, col), default=0) > MAX_NUMBER:
                        k = next(k for k, s in enumerate(col) if len(s) > MAX_NUMBER)
                        raise UserError(path, f"line {line(k)}, {what(c)}: a cell of {len(col[k])} "
                                              f"characters is no number")
                    try:
                        vals = np.array(col, dtype=np.float64)
                    except ValueError:
                        k = next(k for k, s in enumerate(col) if not is_number(s))
                        raise UserError(path, f"line {line(k)}, {what(c)}: not a number: "
                                              f"{col[k].strip()!r}") from None
                    check_finite(path, vals[:, None], line, [names[c]] if names else None)
                    arr[row:row + n] = vals
                for c in words:
                    col = cells[c::width]
                    seen, ids = lookup[c], kept[c]
                    for s in set(col).difference(seen):
                        name = s.strip()
                        if len(name) > MAX_WORD:
                            raise UserError(path, f"line {line(col.index(s))}, {what(c)}: a cell of "
                                                  f"{len(name)} characters (at most {MAX_WORD})")
                        if name not in ids and len(ids) >= MAX_WORDS:
                            raise UserError(path, f"line {line(col.index(s))}, {what(c)}: more than "
                                                  f"{MAX_WORDS} different names in one column")
                        seen[s] = ids.setdefault(name, len(ids))
                    codes[c][row:row + n] = np.fromiter(map(seen.__getitem__, col), np.int32, n)
                row += n
                line_no += len(lines)
    except UnicodeDecodeError as e:
        raise UserError(path, f"not a UTF-8 text file (byte {e.start} of a chunk after line "
                              f"{line_no})") from None
    if row == 0:
        raise UserError(path, "no data rows")
    table.rows = row
    table.numbers = {c: a[:row] for c, a in out.items() if c not in block}
    table.block = matrix[:row]
    table.words = {c: (codes[c][:row], list(kept[c])) for c in words}
    return table


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
    """Columns `cols` of a cell table as float64; a bad cell (not a number, not finite, beyond
    float32) is a `UserError` naming it."""
    try:
        out = cells[:, cols].astype(np.float64)
    except ValueError:
        out = None
    cols = list(range(cells.shape[1]))[cols] if isinstance(cols, slice) else list(cols)
    if out is not None:
        check_finite(path, out, lambda r: _line_of(text, r, skip),
                     [names[c] for c in cols] if names else None)
        return out
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


__all__ = ["FLOAT32_MAX", "MAX_NUMBER", "Table", "read_table", "read_text", "split_table", "to_float"]
