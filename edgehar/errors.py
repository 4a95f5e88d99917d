"""The one error type a user can cause.

Anything a user can get wrong (a missing file, a malformed recording, a model that does not
fit the stream) raises `UserError`; the CLI prints it as one line,
`edgehar: error: <file>: <what is wrong>`, and exits with status 2. Every other exception is
a bug in edgehar and keeps its traceback.
"""

from __future__ import annotations

import os
import sys


class UserError(Exception):
    """A problem with the user's input, reported as one line naming the file at fault."""

    def __init__(self, where: str | os.PathLike | None, what: str):
        self.where = None if where is None else str(where)
        self.what = what
        super().__init__(self.message)

    @property
    def message(self) -> str:
        return f"{self.where}: {self.what}" if self.where else self.what


def require_file(path: str | os.PathLike, what: str = "file") -> str:
    """Return `path` as a string if it is an existing file, else raise a `UserError`."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise UserError(path, f"no such {what}")
    if os.path.isdir(path):
        raise UserError(path, f"is a folder, expected a {what}")
    return path


def require_dir(path: str | os.PathLike, what: str = "folder") -> str:
    """Return `path` as a string if it is an existing folder, else raise a `UserError`."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise UserError(path, f"no such {what}")
    if not os.path.isdir(path):
        raise UserError(path, f"is not a folder")
    return path


def first_line(error: BaseException | str, limit: int = 160) -> str:
    """The first non-empty line of an exception's message (or its type name when it has
    none), shortened to `limit` characters at a word boundary, for one-line messages."""
    text = error if isinstance(error, str) else str(error)
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    if not line:
        return "" if isinstance(error, str) else type(error).__name__
    if len(line) <= limit:
        return line
    cut = line[:limit + 1].rsplit(None, 1)[0] if " " in line[:limit + 1] else line[:limit]
    return cut.rstrip(" ,;:(") + " ..."


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so every `finally` and staging cleanup runs."""


def _open_bars() -> list:
    """Progress bars (tqdm) still on screen; tqdm is only looked at when already imported."""
    std = sys.modules.get("tqdm.std")
    if std is None:
        return []
    return [b for b in list(getattr(std.tqdm, "_instances", [])) if not getattr(b, "disable", True)]


def end_progress_bars() -> None:
    """Close every open progress bar and end its line, so what is printed next starts a line
    of its own (an error is never glued to a half-drawn bar)."""
    bars = _open_bars()
    for bar in bars:
        try:
            leave = bar.leave
            bar.close()
            if not leave:  # a bar that clears itself leaves the cursor after a bare \r
                (bar.fp or sys.stderr).write("\n")
        except Exception:  # noqa: BLE001 - a bar on a closed stream must not hide the error
            pass
    if bars:
        sys.stderr.flush()


def warn(where: str | os.PathLike | None, what: str) -> None:
    """Print a one-line warning (`edgehar: warning: <where>: <what>`) on stderr, on a line
    of its own even while a progress bar is drawn."""
    message = f"edgehar: warning: {f'{where}: {what}' if where else what}"
    if _open_bars():
        # every command loads this module; a bar is open here, so tqdm is loaded already
        from tqdm import tqdm  # deferred: start-up time, see above

        tqdm.write(message, file=sys.stderr)
    else:
        sys.stderr.write(message + "\n")
        sys.stderr.flush()
