"""`edgehar record`: labelled capture from a serial device into your own data folder format.

The bridge's reader (`serial_reader.SerialReader`, text or frame protocol) fills a ring; each
take streams to disk as it arrives: `<label>_<subject>_<time>_<k>.partial.csv`, one write per
block, listed in the folder's `edgehar.json` with `"partial": true` from its first sample on.
A take ends after --seconds of samples, on Ctrl-C / SIGTERM, or when the device goes away (a
disconnect ends the take so far; a reconnect within --wait starts the next take); it is then
renamed to `<...>.csv` and its entry gets the sample count and the reader's counters. A take
whose process was killed outright keeps every block written before: the next `record` into
the folder cuts a half-written last line and counts its samples, and the entry stays
`"partial": true`, so `--data FOLDER` reads it with the rest in every command.

Several `record` processes may write into one folder: every manifest update, and the choice of
a take's name (created with O_EXCL), happens under an `fcntl.flock` on the folder; a recorder
holds a lock on its open take too, so another never mistakes it for a killed one.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import re
import signal
import sys
import time
from pathlib import Path
from typing import Iterator

import numpy as np

from edgehar.atomic import check_writable, write_json, write_text
from edgehar.bridge.flags import rate_hz
from edgehar.bridge.ring import Ring
from edgehar.bridge.serial_reader import SerialReader
from edgehar.cli_types import positive_float, positive_int
from edgehar.data.plausibility import check_stream, warning_lines
from edgehar.errors import UserError
from edgehar.outputs import claim_folder

FORMAT = "edgehar-record/1"
MANIFEST = "edgehar.json"
PARTIAL = ".partial.csv"
COMMAND = "record"
_NAME = re.compile(r"^[\w.+-]+$")
MAX_NAME_BYTES = 80  # label and subject each: a take's name and its staging names stay short
_STAMP = "%Y%m%dT%H%M%S"
# the longest name a take needs beyond label and subject: "_" + "_" + stamp + "_" + 6 digits +
# ".csv" and the staging name of an atomic rewrite, ".<name>.tmp-<pid>-<8 chars>"
_NAME_OVERHEAD = 2 + len(time.strftime(_STAMP)) + 1 + 6 + len(".csv") + len("..tmp-4194304-") + 8


def register(sub) -> None:
    p = sub.add_parser(
        "record", help="labelled capture from a serial device into a data folder",
        description="Record labelled takes from a serial device (text lines or COBS frames, as "
                    "`edgehar live` reads them) into FOLDER (new, empty, or one `record` wrote): one CSV "
                    "per take, streamed to disk as it arrives, listed in FOLDER/edgehar.json with its "
                    "label, subject, rate and the reader's counters. A take ends after --seconds of "
                    "samples, on Ctrl-C, or when the device disconnects (what was read is kept; a "
                    "take whose process was killed is kept too, marked \"partial\"); the folder then "
                    "works as `--data FOLDER` everywhere. Several recorders may share one folder.")
    p.add_argument("--port", required=True, help="serial port or URL (e.g. /dev/ttyACM0, a simulator's "
                                                  "path, sim://RECORDING?speed=20, socket://HOST:PORT)")
    p.add_argument("--label", required=True, type=_name,
                   help=f"activity label of the takes (at most {MAX_NAME_BYTES} bytes, not starting with '.')")
    p.add_argument("--subject", default="0", type=_name, help="subject name or number (default 0)")
    p.add_argument("--out", required=True, help="data folder (created; takes are added to it)")
    p.add_argument("--seconds", type=positive_float, metavar="S", help="length of a take in device "
                                                                  "seconds (default: until Ctrl-C)")
    p.add_argument("--takes", type=positive_int, default=1, metavar="N", help="takes to record (default 1)")
    p.add_argument("--wait", type=positive_float, default=10.0, metavar="S",
                   help="after a disconnect, wait S seconds for the device to come back (default 10)")
    p.add_argument("--baud", type=positive_int, default=115200, help="baud rate (default 115200)")
    p.add_argument("--protocol", choices=["auto", "text", "frame"], default="auto")
    p.add_argument("--rate", type=rate_hz, metavar="HZ",
                   help="device rate (text mode; default: declared by the device or measured)")
    p.add_argument("--units", help="unit of every channel when the device declares none (default g)")
    p.add_argument("--json", action="store_true", help="print one JSON line per take")
    p.set_defaults(func=run_record)


def _name(text: str) -> str:
    """A label or subject: a plain file-name part (no path, nothing hidden), short enough that
    a take's name and its staging names fit any file system."""
    if not _NAME.match(text):
        raise argparse.ArgumentTypeError(f"{text!r}: use letters, digits, '.', '+', '-' or '_'")
    if text.startswith("."):
        raise argparse.ArgumentTypeError(f"{text!r}: must not start with '.' (the file would be hidden "
                                         "and the data loaders skip hidden files)")
    if len(text.encode("utf-8")) > MAX_NAME_BYTES:
        raise argparse.ArgumentTypeError(f"{text[:20]!r}... is {len(text.encode('utf-8'))} bytes long: "
                                         f"at most {MAX_NAME_BYTES} (it names every take's file)")
    return text


def check_name_length(out: Path, label: str, subject: str) -> None:
    """A take's longest name (an atomic rewrite's staging name) must fit the file system's
    NAME_MAX where the folder is (checked on its nearest existing ancestor)."""
    where = Path(os.path.abspath(out))
    while not where.exists() and where != where.parent:
        where = where.parent
    try:
        limit = os.pathconf(where, "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    need = len(label.encode("utf-8")) + len(subject.encode("utf-8")) + _NAME_OVERHEAD
    if limit and need > limit:
        raise UserError(out, f"--label and --subject are too long for this file system: a take's file "
                             f"names need {need} bytes, at most {limit} fit")


class Take:
    """One take, streamed to `<name>.partial.csv` block by block (each block one write of whole
    lines, so a killed process leaves every block before), and kept in memory for the rare
    rewrite (frames that arrived out of device order are sorted in when the take ends)."""

    def __init__(self, connection: int, counters: dict, first_block, seconds: float | None = None):
        self.connection = connection
        self.counters0 = counters
        self.rate = first_block.rate
        self.channels, self.units = tuple(first_block.channels), tuple(first_block.units)
        self.width = int(np.shape(first_block.values)[1])
        self.limit = max(1, int(round(seconds * self.rate))) if seconds else None  # --seconds, in samples
        self.values: list[np.ndarray] = []
        self.index: list[np.ndarray] = []  # device sample index of every sample
        self.n = 0
        self.fd: int | None = None
        self.path: Path | None = None  # the partial file
        self.first = self.last = None  # device indices of the first and last streamed sample
        self.reordered = False

    def add(self, block) -> None:
        v = np.asarray(block.values, np.float32)
        if self.limit is not None:
            v = v[:max(self.limit - self.n, 0)]
        if not len(v):
            return
        first = block.index if block.index is not None else self.n  # text: consecutive samples
        index = np.arange(first, first + len(v))
        self.values.append(v)
        self.index.append(index)
        self.n += len(v)
        if self.fd is not None:
            self._stream(v, index)

    def full(self) -> bool:
        return self.limit is not None and self.n >= self.limit

    def columns(self, width: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
        channels = self.channels if len(self.channels) == width else tuple(f"ch{i}" for i in range(width))
        return channels, self.units

    def _stream(self, v: np.ndarray, index: np.ndarray) -> None:
        if self.first is None:
            self.first = int(index[0])
        keep = index > (self.last if self.last is not None else self.first - 1)
        if not keep.all():
            self.reordered = True  # a late or repeated frame: the final file is rewritten sorted
        if keep.any():
            _write_all(self.fd, rows((index[keep] - self.first) / self.rate, v[keep]).encode())
            self.last = int(index[keep][-1])

    def seconds(self) -> float:
        return self.n / self.rate if self.rate else 0.0

    def samples(self) -> tuple[np.ndarray, np.ndarray]:
        """(time in seconds, values): the take in device order, each sample once."""
        data = np.concatenate(self.values)
        index, keep = np.unique(np.concatenate(self.index), return_index=True)
        return (index - index[0]) / self.rate, data[keep]


def rows(t: np.ndarray, data: np.ndarray) -> str:
    """CSV lines of samples (9 digits: float32 reads back bit-equal)."""
    return "".join(f"{ti:.6f}," + ",".join(f"{v:.9g}" for v in row) + "\n" for ti, row in zip(t, data))


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


# -- the folder's manifest, shared by concurrent recorders -------------------------------------
def _new_manifest() -> dict:
    return {"format": FORMAT, "time": {"column": "time", "unit": "s"}, "subject": {"value": "0"}, "files": {}}


def _folder_manifest(out: Path) -> dict:
    path = out / MANIFEST
    if not path.exists():
        return _new_manifest()
    try:
        spec = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        spec = None
    if not isinstance(spec, dict) or spec.get("format") != FORMAT or not isinstance(spec.get("files"), dict):
        raise UserError(path, "a manifest `edgehar record` did not write: record into another folder")
    return spec


@contextlib.contextmanager
def locked_manifest(out: Path) -> Iterator[dict]:
    """The folder's manifest, read and (when the block ends without an error) written back
    atomically while holding the folder's lock: concurrent recorders never lose an entry."""
    out.mkdir(parents=True, exist_ok=True)
    lock = os.open(out, os.O_RDONLY | os.O_DIRECTORY)  # the folder itself: no lock file to leave
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        spec = _folder_manifest(out)
        yield spec
        write_json(out / MANIFEST, spec)
    finally:
        os.close(lock)


def record_folder_names(folder: Path) -> list[str] | None:
    """What a record folder may hold (`edgehar.outputs.claim_folder`): anything, when its
    manifest is record's (takes are only ever added, never replaced); else it is not one."""
    try:
        spec = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return ["*"] if isinstance(spec, dict) and spec.get("format") == FORMAT else None


def start_take(out: Path, take: Take, label: str, subject: str, units: str | None) -> None:
    """Create the take's partial file (a name no other take has, taken with O_EXCL), lock it
    and list it as partial, all under the folder's lock."""
    width = take.width
    channels, unit = take.columns(width)
    unit = unit if len(unit) == width else (units or "g",) * width
    stamp = time.strftime(_STAMP)
    with locked_manifest(out) as spec:
        k = len(spec["files"])
        while True:
            base = f"{label}_{subject}_{stamp}_{k:03d}"
            names = (base + ".csv", base + PARTIAL)
            if not any(n in spec["files"] or os.path.lexists(out / n) for n in names):
                try:
                    fd = os.open(out / names[1], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
                    break
                except FileExistsError:
                    pass
            k += 1
        fcntl.flock(fd, fcntl.LOCK_EX)  # held while the take records: it is not a killed one
        take.fd, take.path = fd, out / names[1]
        _write_all(fd, ("time," + ",".join(channels) + "\n").encode())
        spec["files"][names[1]] = {"label": {"value": label}, "subject": {"value": subject},
                                   "rate": take.rate, "units": list(unit), "samples": 0, "partial": True}


def end_take(out: Path, take: Take, counters: dict, reason: str) -> dict | None:
    """Close the take's file, give it its final name and complete its manifest entry (None,
    and the file and entry gone, for a take that holds no sample)."""
    if not take.n:
        with locked_manifest(out) as spec:
            spec["files"].pop(take.path.name, None)
            os.close(take.fd)
            take.fd = None
            take.path.unlink()
        return None
    os.fsync(take.fd)
    t, data = take.samples()
    partial = take.path.name
    final = out / (partial[:-len(PARTIAL)] + ".csv")
    with locked_manifest(out) as spec:
        entry = spec["files"].pop(partial, None) or {}
        if take.reordered:  # frames arrived out of device order: the take's file, sorted
            channels, _ = take.columns(data.shape[1])
            write_text(take.path, "time," + ",".join(channels) + "\n" + rows(t, data))
        try:
            os.link(take.path, final)  # never onto a file that appeared meanwhile
            os.unlink(take.path)
        except FileExistsError:
            final = take.path  # keep the partial name rather than replace someone's file
        os.close(take.fd)
        take.fd = None
        entry.pop("partial", None)
        entry.update({"samples": int(len(data)), "ended_by": reason, "counters": counters,
                      "check": _check_take(take, data, entry.get("units"))})
        if final == take.path:
            entry["partial"] = True
        spec["files"][final.name] = entry
    return {"file": str(final), **entry}


def _check_take(take: Take, data: np.ndarray, units) -> dict:
    """The take's stream checks in the units it was recorded in (`edgehar.data.plausibility`)."""
    units = units if isinstance(units, list) and len(units) == data.shape[1] else ["g"] * data.shape[1]
    return check_stream(data, take.columns(data.shape[1])[0], units, take.rate, fix="record")


def recover_killed_takes(out: Path) -> list[str]:
    """Takes whose recorder was killed (no process holds their lock): cut a half-written last
    line, count their samples, and keep them listed as partial; a take killed before its first
    sample (a header alone) is removed with its entry. Returns the names recovered."""
    if not (out / MANIFEST).is_file():
        return []
    recovered = []
    with locked_manifest(out) as spec:
        for name, entry in list(spec["files"].items()):
            if not (isinstance(entry, dict) and entry.get("partial") and entry.get("ended_by") is None):
                continue
            path = out / name
            try:
                fd = os.open(path, os.O_RDWR)
            except FileNotFoundError:
                spec["files"].pop(name)
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a recorder is writing it now
                with open(fd, "rb", closefd=False) as f:
                    text = f.read()
                keep = text[:text.rfind(b"\n") + 1]
                os.ftruncate(fd, len(keep))
                samples = max(keep.count(b"\n") - 1, 0)
            finally:
                os.close(fd)
            if samples == 0:
                path.unlink()
                spec["files"].pop(name)
            else:
                entry.update({"samples": samples, "ended_by": "killed"})
            recovered.append(name)
    return recovered


def _delta(now: dict, before: dict) -> dict:
    return {k: (v - before.get(k, 0) if isinstance(v, (int, float)) and k != "rate" else v)
            for k, v in now.items()}


def run_record(args: argparse.Namespace) -> int:
    out = Path(args.out)
    # before the port is touched: a new or empty folder, or one `record` wrote (a foreign or
    # damaged manifest, or anyone else's files, are refused), with room for the take names
    claim_folder(out, COMMAND, legacy=record_folder_names)
    _folder_manifest(out)
    check_name_length(out, args.label, args.subject)
    check_writable(out / MANIFEST)  # the folder itself is made with the first take
    recover_killed_takes(out)
    ring = Ring(4096)
    reader = SerialReader(args.port, ring, args.baud, args.protocol, args.rate)
    signal.signal(signal.SIGTERM, _interrupt)
    reader.start()
    written, take, gone_since = [], None, None

    def finish(reason: str) -> None:
        nonlocal take
        if take is not None and take.fd is not None:
            info = end_take(out, take, _delta(reader.stats(), take.counters0), reason)
        else:
            info = None
        if info is not None:
            written.append(info)
            for line in warning_lines(info["check"], info["file"]):  # the take is kept: a warning
                print(f"edgehar: warning: {line}", file=sys.stderr, flush=True)
            print(json.dumps(info) if args.json else
                  f"edgehar: take {len(written)}: {info['samples']} samples at {info['rate']:g} Hz "
                  f"-> {info['file']} ({reason})", file=sys.stdout if args.json else sys.stderr,
                  flush=True)
        take = None

    def handle(block) -> bool:
        """Add one block to the open take (a new take when none is open or the device came
        back); True once every take asked for is written."""
        nonlocal take
        if take is not None and block.connection != take.connection:
            finish("disconnect")
        if len(written) >= args.takes:
            return True
        if take is None:
            take = Take(block.connection, reader.stats(), block, args.seconds)
            start_take(out, take, args.label, args.subject, args.units)
            print(f"edgehar: take {len(written) + 1} of {args.label!r} started "
                  f"({block.rate:g} Hz, {reader.protocol} protocol) -> {take.path}",
                  file=sys.stderr, flush=True)
        take.add(block)
        if take.full():
            finish("seconds")
        return len(written) >= args.takes

    try:
        while len(written) < args.takes:
            if reader.failure is not None:
                raise reader.failure
            if any(handle(block) for block in ring.get_all(timeout=0.05)):
                break
            if reader.connected:
                gone_since = None
            elif gone_since is None:
                gone_since = time.perf_counter()
                # the last blocks read before the cable went, a take of their own if none is open
                if not any(handle(block) for block in ring.get_all()):
                    finish("disconnect")
            elif time.perf_counter() - gone_since > args.wait:
                break
    except KeyboardInterrupt:
        pass
    finally:
        reader.stop()
        reader.join(timeout=2)
        for block in ring.get_all():  # what arrived before the stop
            if take is not None and block.connection == take.connection:
                take.add(block)
        finish("stopped")
    if not written:
        raise UserError(args.port, "no samples were read: no take written")
    return 0


def _interrupt(*_):
    raise KeyboardInterrupt
