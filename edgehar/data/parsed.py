"""Parsed data sets, kept: a registered data set is read from its text files once per change.

Reading HAPT's 61 files takes about 2 s and DSADS's 9,120 about 4 s, on every command that
names them; unpickling what the reader returned takes 0.04 s and 0.15 s. An entry in
`<cache>/recordings/` (`edgehar.cachedir`) holds one data set, option and folder, and serves
while the folder's fingerprint (every file's path, size and modification time) and the
readers' own source (`edgehar/data/*.py`) are what they were when it was written. A cache that
cannot be read or written is a miss, never an error. Each write removes the entries whose
folder is gone (a deleted copy of a data set), and what a killed write of the same entry left
(`edgehar.atomic`). Entries are pickles: point `$EDGEHAR_CACHE` only at a folder no one else
writes to.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
from collections.abc import Callable
from pathlib import Path

from edgehar.atomic import staged_file
from edgehar.cachedir import cache_dir

READERS = Path(__file__).parent  # edgehar/data: a change to any reader invalidates every entry
MAX_FILES = 50_000  # DSADS, the largest data set, has 9,120; a --root far above the data is not cached


def fingerprint(folder: Path) -> str | None:
    """Hex SHA-256 over the readers' source and every file under `folder` (path, size, mtime);
    None over `MAX_FILES` files, where the walk would cost more than it saves."""
    h = hashlib.sha256()
    for f in sorted(READERS.glob("*.py")):
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    seen = 0
    for top, dirs, files in os.walk(folder):
        dirs.sort()
        seen += len(files)
        if seen > MAX_FILES:
            return None
        for name in sorted(files):
            path = os.path.join(top, name)
            with contextlib.suppress(OSError):  # a dangling link: the reader says what it means
                st = os.stat(path)
                h.update(f"{os.path.relpath(path, folder)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _header(entry: Path) -> dict:
    with open(entry, "rb") as f:
        return pickle.load(f)


def _prune(folder: Path) -> None:
    """Remove the entries whose data folder is gone."""
    for entry in folder.glob("[!.]*.pkl"):  # not another process's staging (.NAME.tmp-*)
        with contextlib.suppress(Exception):  # another process may be replacing it
            if not Path(_header(entry)["folder"]).is_dir():
                entry.unlink()


def load_parsed(name: str, option: str | None, folder: Path, read: Callable[[], list]) -> list:
    """The recordings `read()` returns for data set `name[:option]` in `folder`, from the cache
    while it holds (see the module docstring), else read and kept."""
    folder = Path(folder)
    if not folder.is_dir():  # the reader's own error says what is missing
        return read()
    folder = folder.resolve()
    store = cache_dir("recordings")
    entry = store / (hashlib.sha256(f"{name}\0{option}\0{folder}".encode()).hexdigest()[:32] + ".pkl")
    stamp = fingerprint(folder)
    if stamp is None:
        return read()
    with contextlib.suppress(Exception), open(entry, "rb") as f:  # missing, cut, foreign or stale: a miss
        if pickle.load(f)["fingerprint"] == stamp:
            return pickle.load(f)
    recordings = read()
    with contextlib.suppress(Exception):  # a read-only or full disk: work on without it
        store.mkdir(parents=True, exist_ok=True)
        _prune(store)
        with staged_file(entry) as tmp, open(tmp, "wb") as f:
            pickle.dump({"fingerprint": stamp, "folder": str(folder), "dataset": name, "option": option}, f)
            pickle.dump(recordings, f, protocol=pickle.HIGHEST_PROTOCOL)
    return recordings
