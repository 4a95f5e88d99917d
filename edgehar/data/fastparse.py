"""Parsing large delimited text with memory bounded by the samples, not the text.

`read_table` reads a file in chunks of about a megabyte: each chunk is split into cells, the
wanted numeric columns are converted straight into preallocated float32/float64 arrays and
the text columns (labels, subjects) into small integer codes, so the peak is the arrays it
returns plus one chunk, whatever the widest cell. A cell that is not a number, not finite or
beyond float32's range, longer than any number, or a ragged row is a `UserError` naming the
file, line and column.

Other columns can be parsed by a function of their cells (`parsers`: clock or ISO times,
`csvfile`). A NUL byte, and a line longer than a row of cells can be (its longest cell measured
a chunk at a time), are problems naming the line too.

`split_table` / `to_float` are the whole-text form the named loaders (WISDM, GeoTec) use on
their known, clean files.
"""

from __future__ import annotations

import re
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


class BadCell(ValueError):
    """A column parser's refusal of cell `k` of the cells it was given; `read_table` names the
    file, line and column."""

    def __init__(self, k: int, what: str):
        super().__init__(what)
        self.k, self.what = k, what


@dataclass
class Table:
    """Columns of one file. `numbers[c]`: values of column c; `words[c]`: (codes, names) with
    `names[codes[i]]` the stripped text of row i. Row i is the i-th data line (not blank, not
    a comment)."""

    path: Path
    rows: int
    numbers: dict[int, np.ndarray] = field(default_factory=dict)
    block: np.ndarray | None = None  # (rows, len(block columns)) float32
    words: dict[int, tuple[np.ndarray, list[str]]] = field(default_factory=dict)
    skip: int = 0
    comment: str | None = None

    def line_of(self, row: int) -> int:
        """File line (1-based) of data row `row`: the file is read again, a chunk at a time
        (only an error message needs it)."""
        seen = -1
        with _open(self.path) as f:
            for n, line in enumerate(f, 1):
                if n > self.skip and _is_row(line.strip(), self.comment):
                    seen += 1
                    if seen == row:
                        return n
        return n


def _is_row(stripped: str, comment: str | None) -> bool:
    return bool(stripped.rstrip(";").strip()) and not (comment and stripped.startswith(comment))


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


def split_cells(line: str, sep: str | None) -> list[str]:
    """A line's cells: split at each `sep`, or at runs of blanks when `sep` is None."""
    return line.split() if sep is None else line.split(sep)


def row_limit(width: int) -> int:
    """Characters a row of `width` columns can need: longer, a cell is no number or name."""
    return width * (max(MAX_NUMBER, MAX_WORD) + 2)


def too_long(path: Path, n: int, start: str, f, sep: str | None, limit: int) -> UserError:
    """The problem with line `n`, which begins with `start` (no line end in it), runs on in `f`
    and is over `limit` characters: its longest cell is measured reading the rest a chunk at a
    time, so a line of any length costs one chunk of memory."""
    cut = (lambda s: re.split(r"\s", s)) if sep is None else (lambda s: s.split(sep))
    longest = run = 0
    piece = start
    while piece:
        end = piece.find("\n")
        parts = cut(piece[:end] if end >= 0 else piece)
        run += len(parts[0])
        if len(parts) > 1:
            longest = max(longest, run, *map(len, parts[1:-1]))
            run = len(parts[-1])
        if end >= 0:
            break
        piece = f.readline(CHUNK)
    longest = max(longest, run)
    if longest > MAX_WORD:
        return UserError(path, f"line {n}: over {limit} characters, with a cell of {longest} (a "
                               f"number or a name has at most {MAX_WORD})")
    return UserError(path, f"line {n}: over {limit} characters (more cells than the columns)")


def check_text(path: Path, text: str, first_line: int) -> None:
    """A NUL byte in text that starts at line `first_line` is binary data: a problem naming the
    line."""
    if "\x00" in text:
        n = first_line + text.count("\n", 0, text.index("\x00"))
        raise UserError(path, f"line {n}: a NUL byte (binary data, not a text table)")


def read_table(path: Path, sep: str | None, width: int, skip: int, numbers: dict[int, type],
               words=(), names=None, block=(), parsers=None, comment: str | None = None,
               trailing_sep: bool = False, width_of: str = "") -> Table:
    """The columns `numbers` ({column: np.float32 or np.float64}), `block` (columns read into
    one (rows, k) float32 array, a recording's samples without a copy), `parsers` ({column:
    function of a list of cells -> float64 array, raising `BadCell`}, e.g. clock times) and
    `words` of a `sep`-separated file (None: blank-separated) of `width` columns, after `skip`
    lines (the header).

    Rows may end with `;` (when `sep` is not `;`; with `trailing_sep`, with one `sep` more);
    blank lines, and lines starting with `comment` when given, are skipped. `names` (one per
    column) name the columns in messages; `width_of` what gives the width ("the header"), for
    a ragged row's message.
    """
    path = Path(path)
    parsers = parsers or {}
    table = Table(path, 0, skip=skip, comment=comment)
    cap = _capacity(path, width)
    matrix = np.empty((cap, len(block)), np.float32)
    out = {c: np.empty(cap, dt) for c, dt in numbers.items()}
    out.update({c: matrix[:, k] for k, c in enumerate(block)})
    parsed = {c: np.empty(cap, np.float64) for c in parsers}
    codes = {c: np.empty(cap, np.int32) for c in words}
    lookup: dict[int, dict[str, int]] = {c: {} for c in words}
    kept: dict[int, dict[str, int]] = {c: {} for c in words}  # stripped name -> code
    longest = row_limit(width)
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
                        start = text.rfind("\n") + 1
                        raise too_long(path, line_no + text.count("\n") + 1, text[start:], f,
                                       sep, longest)
                check_text(path, text, line_no + 1)
                lines = text.split("\n")
                if lines[-1] == "":
                    lines.pop()
                rows = [s.strip() for s in lines]
                notes = [k for k, s in enumerate(rows) if s.startswith(comment)] if comment else ()
                if sep != ";":
                    rows = [s.rstrip(";").rstrip() for s in rows]
                elif trailing_sep:
                    rows = [s.removesuffix(";") for s in rows]
                for k in notes:
                    rows[k] = ""  # a comment line counts as a line, not a row
                where = [k for k, s in enumerate(rows) if s] if any(not s for s in rows) else None
                if where is not None:
                    rows = [rows[k] for k in where]
                if not rows:  # a chunk of blank or comment lines
                    line_no += len(lines)
                    continue

                def line(k: int) -> int:  # file line of this chunk's k-th row
                    return line_no + 1 + (where[k] if where is not None else k)

                cells = (" ".join(rows).split() if sep is None else sep.join(rows).split(sep))
                if len(cells) != width * len(rows):
                    for k, s in enumerate(rows):
                        found = len(split_cells(s, sep))
                        if found != width:
                            raise UserError(path, f"line {line(k)}: {found} " + (
                                f"cells, {width_of} has {width}" if width_of else
                                f"values, expected {width}"))
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
                for c, parse in parsers.items():
                    try:
                        parsed[c][row:row + n] = parse(cells[c::width])
                    except BadCell as e:
                        raise UserError(path, f"line {line(e.k)}, {what(c)}: {e.what}") from None
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
    table.numbers.update({c: a[:row] for c, a in parsed.items()})
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


__all__ = ["FLOAT32_MAX", "MAX_NUMBER", "BadCell", "Table", "check_text", "read_table", "read_text",
           "row_limit", "split_cells", "split_table", "to_float", "too_long"]
