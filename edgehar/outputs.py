"""Where a command may write: one guard for every output path, checked before any work.

A command never deletes or replaces a file or folder it did not create:

- an output that is one of the command's inputs, or holds one (a folder above it), is refused;
  so is an output inside an input folder the command treats as sealed (a model artifact folder);
- an output folder is used only when it is new, empty, or holds a previous output of the same
  command, recognised by the marker that command left in it (`.edgehar-output.json`: the
  command and the names it wrote); anything else in it is named in the refusal;
- a command that replaces its folder whole (export, download, corpus build) swaps in a staged
  copy, so it may not write to the current folder or one above it, and it checks the folder
  again just before the swap (`staged_output_folder`);
- an existing output file is replaced only when the command recognises it as its own kind of
  file (a checkpoint, a calibration set, a prediction log, an ELF).
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import re
from pathlib import Path
from typing import Callable, Iterable, Iterator

from edgehar.atomic import check_writable, staged_folder, write_json
from edgehar.errors import UserError

MARKER = ".edgehar-output.json"
MARKER_FORMAT = "edgehar-output/1"
# temporary siblings edgehar itself makes (edgehar.atomic staging, a live log's partial file)
_STAGING = re.compile(r"\..+\.(?:(?:new|old|tmp|scratch)-\d+-[A-Za-z0-9_]{8}(?:\.\w+)?|\d+\.part)")

Paths = Iterable["str | os.PathLike | None"]


def real(path: str | os.PathLike) -> Path:
    """The absolute path a write to `path` lands on (symbolic links followed)."""
    return Path(os.path.realpath(os.path.abspath(os.fspath(path))))


def _within(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def _same(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    if real(a) == real(b):
        return True
    try:
        return os.path.samefile(a, b)  # a hard link to the input is the input too
    except OSError:
        return False


def refuse_inputs(out: str | os.PathLike, inputs: Paths = (), sealed: Paths = (),
                  flag: str = "--out") -> None:
    """Raise a one-line `UserError` when `out` is one of `inputs` (files or folders the command
    reads), holds one, or lies inside a `sealed` input folder (one whose content the command
    reads as a whole, like a model artifact folder). `None` entries are skipped."""
    target = real(out)
    for given in [*inputs, *sealed]:
        if given is None or str(given) == "":
            continue
        source = real(given)
        if _same(out, given):
            raise UserError(out, f"is an input of this command ({given}): choose another {flag}")
        if source != target and _within(source, target):
            raise UserError(out, f"holds {given}, an input of this command: choose another {flag}")
    for given in sealed:
        if given is None or str(given) == "":
            continue
        if _within(target, real(given)):
            raise UserError(out, f"is inside {given}, which this command reads: choose another {flag}")


# -- folders ------------------------------------------------------------------------------------
def read_marker(folder: str | os.PathLike) -> dict | None:
    """The marker a command left in `folder`, or None when there is none (or it is damaged)."""
    try:
        with open(Path(folder) / MARKER, encoding="utf-8") as f:
            marker = json.load(f)
    except (OSError, ValueError):
        return None
    ok = (isinstance(marker, dict) and marker.get("format") == MARKER_FORMAT
          and isinstance(marker.get("command"), str) and isinstance(marker.get("files"), list)
          and all(isinstance(n, str) for n in marker["files"]))
    return marker if ok else None


def marked_names(folder: str | os.PathLike, command: str) -> list[str] | None:
    """The names (glob patterns allowed) `command`'s marker in `folder` lists, or None."""
    marker = read_marker(folder)
    return marker["files"] if marker is not None and marker["command"] == command else None


def mark_folder(folder: str | os.PathLike, command: str, names: Iterable[str] | None = None) -> None:
    """Write the marker that lets `command` recognise `folder` as its own output: `names` (glob
    patterns allowed) or, by default, every entry the folder holds now."""
    folder = Path(folder)
    if names is None:
        names = (e for e in os.listdir(folder) if e != MARKER)
    write_json(folder / MARKER, {"format": MARKER_FORMAT, "command": command, "files": sorted(set(names))})


def foreign_entries(folder: str | os.PathLike, command: str,
                    legacy: Callable[[Path], Iterable[str] | None] | None = None) -> list[str]:
    """The entries of `folder` that no previous output of `command` wrote (sorted; empty for an
    empty folder). `legacy(folder)` recognises an output written before markers existed."""
    folder = Path(folder)
    entries = sorted(e for e in os.listdir(folder) if e != MARKER and not _STAGING.fullmatch(e))
    if not entries:
        return []
    own = marked_names(folder, command)
    if own is None and legacy is not None and not (folder / MARKER).exists():
        own = legacy(folder)
    if own is None:
        return entries
    return [e for e in entries if not any(fnmatch.fnmatchcase(e, pattern) for pattern in own)]


def _describe(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def claim_folder(out: str | os.PathLike, command: str, *, inputs: Paths = (), sealed: Paths = (),
                 replaces: bool = False, legacy: Callable[[Path], Iterable[str] | None] | None = None,
                 flag: str = "--out") -> Path:
    """Check, before any work, that `command` may write its output folder at `out`; returns it
    resolved. `replaces`: the command swaps the whole folder (never the current folder or one
    above it). Raises a one-line `UserError` otherwise; creates nothing."""
    target = real(out)
    if replaces and _within(Path.cwd().resolve(), target):
        where = "the current folder" if target == Path.cwd().resolve() else "a folder above the current one"
        raise UserError(out, f"is {where}: edgehar {command} replaces its output folder whole; "
                             f"choose a new folder ({flag})")
    refuse_inputs(out, inputs, sealed, flag)
    if os.path.lexists(target) and not os.path.isdir(target):
        raise UserError(out, "exists and is not a folder")
    if os.path.isdir(target):
        try:
            foreign = foreign_entries(target, command, legacy)
        except OSError as e:
            raise UserError(out, f"cannot be read ({e.strerror or e})") from None
        if foreign:
            raise UserError(out, f"holds files edgehar {command} did not write ({_describe(foreign)}); "
                                 "choose an empty or new folder")
    return target


@contextlib.contextmanager
def staged_output_folder(out: str | os.PathLike, command: str,
                         legacy: Callable[[Path], Iterable[str] | None] | None = None) -> Iterator[Path]:
    """`edgehar.atomic.staged_folder` for a folder `claim_folder` accepted: yields the staging
    folder; on success it is marked as `command`'s output (every name it holds) and swapped in,
    after checking once more that the folder still holds nothing else (a file a user put there
    while the command ran makes it fail, and the old folder stays as it was)."""
    def still_ours(path: Path) -> None:
        foreign = foreign_entries(path, command, legacy) if path.is_dir() else []
        if foreign:
            raise UserError(out, f"holds files edgehar {command} did not write ({_describe(foreign)}), "
                                 "put there while it ran: nothing was replaced; choose an empty or new folder")

    with staged_folder(out, before_replace=still_ours) as tmp:
        yield tmp
        mark_folder(tmp, command)


# -- files --------------------------------------------------------------------------------------
def claim_file(out: str | os.PathLike, command: str, *, inputs: Paths = (), sealed: Paths = (),
               recognise: Callable[[Path], bool] | None = None, kind: str = "output",
               flag: str = "--out") -> Path:
    """Check, before any work, that `command` may write the file `out`: not an input, not inside
    a sealed input folder, not a folder, and, when it exists, a file `recognise` accepts as this
    command's own kind (`kind` names it in the refusal). Returns `out` resolved."""
    refuse_inputs(out, inputs, sealed, flag)
    target = real(out)
    if os.path.isdir(target):
        raise UserError(out, f"is a folder, expected the path of a file ({kind})")
    if os.path.lexists(target):
        if not os.path.isfile(target):
            raise UserError(out, "exists and is not a regular file; refusing to replace it")
        if recognise is not None and not recognise(target):
            raise UserError(out, f"exists and is not {kind}; edgehar {command} replaces only its "
                                 f"own files: choose another {flag}")
    check_writable(target)
    return target
