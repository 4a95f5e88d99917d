"""Atomic file and folder writes: a reader sees the old content or the new, never half.

Files are written to a temporary sibling and renamed over the target (`os.replace` is atomic
on POSIX); artifact folders are built in a temporary sibling folder and renamed into place, so
a failed export leaves nothing half-written behind.

Every temporary sibling is named `.<target>.<kind>-<pid>-<random>`: it goes on every exit path
Python sees (error, Ctrl-C, SIGTERM via `edgehar.cli`), and one left by a process that was
killed outright (SIGKILL, power loss) is removed by the next write to the same target once
that pid is gone.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterator

from edgehar.errors import UserError, first_line


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _publish(tmp, mode: int) -> None:
    """Give a temp file/folder the permissions a plain open()/mkdir() would have
    (mkstemp/mkdtemp make them private)."""
    os.chmod(tmp, mode & ~_umask())


def resolve_target(path: str | os.PathLike) -> Path:
    """The path a write really lands on: a symbolic link is followed to what it names, so a
    user's link stays a link and its target gets the new content (staging goes beside the
    target). A link loop is a `UserError`, raised before any work is done."""
    path = Path(path)
    if not path.is_symlink():
        return path
    try:
        return path.resolve()
    except (RuntimeError, OSError) as e:  # Python 3.11 raises RuntimeError on a loop
        raise UserError(path, f"is a symbolic link that cannot be followed ({first_line(e)})") from None


def _check_parent_writable(path: Path) -> None:
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(parent, f"cannot create folder ({e.strerror or e})") from None
    if not parent.is_dir():
        raise UserError(parent, "cannot create folder (a file is in the way)")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(parent, "folder is not writable")


def _staging_prefix(path: Path, kind: str) -> str:
    return f".{path.name}.{kind}-{os.getpid()}-"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # someone else's live process (or a pid we cannot judge): leave it
    return True


def remove_stale_staging(path: str | os.PathLike) -> list[Path]:
    """Remove the temporary siblings of `path` (`.<name>.<kind>-<pid>-<random>`) whose process
    no longer runs; returns what was removed."""
    path = Path(path)
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(?:new|old|tmp|scratch)-(\d+)-[A-Za-z0-9_]{{8}}(?:\.\w+)?")
    removed = []
    try:
        entries = list(path.parent.iterdir()) if str(path.parent) else list(Path(".").iterdir())
    except OSError:
        return removed
    for entry in entries:
        m = pattern.fullmatch(entry.name)
        if not m or int(m.group(1)) == os.getpid() or _pid_alive(int(m.group(1))):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                entry.unlink()
        removed.append(entry)
    return removed


@contextlib.contextmanager
def scratch_folder(beside: str | os.PathLike) -> Iterator[Path]:
    """A temporary folder next to `beside` for a tool's scratch files (TensorFlow's generated
    code), removed on exit, and by a later run if this process is killed."""
    beside = resolve_target(beside)
    _check_parent_writable(beside)
    remove_stale_staging(beside)
    tmp = Path(tempfile.mkdtemp(prefix=_staging_prefix(beside, "scratch"), dir=beside.parent))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def temp_dir(folder: str | os.PathLike) -> Iterator[None]:
    """Point Python's `tempfile` (and $TMPDIR, for libraries that read it) at `folder`."""
    old_dir, old_env = tempfile.tempdir, os.environ.get("TMPDIR")
    tempfile.tempdir = os.fspath(folder)
    os.environ["TMPDIR"] = os.fspath(folder)
    try:
        yield
    finally:
        tempfile.tempdir = old_dir
        if old_env is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = old_env


def check_writable(path: str | os.PathLike) -> None:
    """Raise a one-line `UserError` unless a file could be created at `path`: its nearest
    existing ancestor must be a folder we can write in (probed by creating a file, so
    read-only mounts and permission bits both count). Creates nothing that stays."""
    given = path
    path = Path(os.path.abspath(resolve_target(path)))
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise UserError(given, f"cannot be created: {parent} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".edgehar-probe.", dir=parent)
    except OSError as e:
        raise UserError(parent, f"folder is not writable ({e.strerror or e})") from None
    os.close(fd)
    os.unlink(probe)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` atomically and return the path."""
    path = resolve_target(path)
    _check_parent_writable(path)
    remove_stale_staging(path)
    fd, tmp = tempfile.mkstemp(prefix=_staging_prefix(path, "tmp"), dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        _publish(tmp, 0o666)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 `text` to `path` atomically."""
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj) -> Path:
    """Write `obj` as indented JSON to `path` atomically."""
    return write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


@contextlib.contextmanager
def staged_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write to (by any library); renamed onto `path` on success."""
    path = resolve_target(path)
    _check_parent_writable(path)
    remove_stale_staging(path)
    fd, tmp = tempfile.mkstemp(prefix=_staging_prefix(path, "tmp"), suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        _publish(tmp, 0o666)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


@contextlib.contextmanager
def staged_folder(path: str | os.PathLike, overwrite: bool = True,
                  before_replace: Callable[[Path], None] | None = None) -> Iterator[Path]:
    """Yield a temporary folder; on success it replaces `path` as a whole, on failure it goes.

    The files already in `path` survive a failure untouched. `overwrite=False` refuses a folder
    that holds anything (an empty one is taken). `before_replace(path)`, called just before the
    swap, may raise to keep the old folder (see `edgehar.outputs.staged_output_folder`).
    """
    path = Path(os.path.abspath(resolve_target(path)))  # `.` has no name to stage beside
    _check_parent_writable(path)
    if path.exists() and not path.is_dir():
        raise UserError(path, "exists and is not a folder")
    if not overwrite and path.is_dir() and any(path.iterdir()):
        raise UserError(path, "already exists and is not empty: choose a new or empty folder")
    remove_stale_staging(path)
    tmp = Path(tempfile.mkdtemp(prefix=_staging_prefix(path, "new"), dir=path.parent))
    try:
        yield tmp
        _publish(tmp, 0o777)
        if before_replace is not None:
            before_replace(path)
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=_staging_prefix(path, "old"), dir=path.parent))
            try:
                os.replace(path, old / "x")
            except OSError as e:  # a mount point, the current folder elsewhere, a busy folder
                shutil.rmtree(old, ignore_errors=True)
                raise UserError(path, f"cannot be replaced ({e.strerror or e}); nothing was changed") from None
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
