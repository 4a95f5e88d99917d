"""`edgehar record`: labelled capture from a serial device into your own data folder format.

The bridge's reader (`serial_reader.SerialReader`, text or frame protocol) fills a ring; each
take becomes one CSV (`time` in device seconds + the device's channels), written atomically
when the take ends: after --seconds of samples, on Ctrl-C / SIGTERM, or when the device goes
away (a disconnect ends the take so far; a reconnect within --wait starts the next take).
The folder's `edgehar.json` lists every take with its label, subject, rate and the reader's
counters, so `--data FOLDER` reads the takes in every command.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

from edgehar.bridge.flags import rate_hz
from edgehar.cli_types import positive_float, positive_int

FORMAT = "edgehar-record/1"
_NAME = re.compile(r"^[\w.+-]+$")


def register(sub) -> None:
    p = sub.add_parser(
        "record", help="labelled capture from a serial device into a data folder",
        description="Record labelled takes from a serial device (text lines or COBS frames, as "
                    "`edgehar live` reads them) into FOLDER: one CSV per take, written atomically, "
                    "listed in FOLDER/edgehar.json with its label, subject, rate and the reader's "
                    "counters. A take ends after --seconds of samples, on Ctrl-C, or when the "
                    "device disconnects (what was read is kept); the folder then works as "
                    "`--data FOLDER` everywhere.")
    p.add_argument("--port", required=True, help="serial port or URL (e.g. /dev/ttyACM0, a simulator's "
                                                  "path, sim://RECORDING?speed=20, socket://HOST:PORT)")
    p.add_argument("--label", required=True, type=_name, help="activity label of the takes")
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
    if not _NAME.match(text):
        raise argparse.ArgumentTypeError(f"{text!r}: use letters, digits, '.', '+', '-' or '_'")
    return text


class Take:
    """Blocks of one take, with the reader's counters when it began."""

    def __init__(self, connection: int, counters: dict):
        self.connection = connection
        self.counters0 = counters
        self.values: list[np.ndarray] = []
        self.index: list[np.ndarray] = []  # device sample index of every sample
        self.rate = None
        self.channels, self.units = (), ()
        self.n = 0

    def add(self, block) -> None:
        v = np.asarray(block.values, np.float32)
        if self.rate is None:
            self.rate, self.channels, self.units = block.rate, block.channels, block.units
        first = block.index if block.index is not None else self.n  # text: consecutive samples
        self.values.append(v)
        self.index.append(np.arange(first, first + len(v)))
        self.n += len(v)

    def seconds(self) -> float:
        return self.n / self.rate if self.rate else 0.0


def _folder_manifest(out: Path) -> dict:
    from edgehar.errors import UserError

    path = out / "edgehar.json"
    if not path.exists():
        return {"format": FORMAT, "time": {"column": "time", "unit": "s"}, "subject": {"value": "0"},
                "files": {}}
    try:
        spec = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        spec = None
    if not isinstance(spec, dict) or spec.get("format") != FORMAT:
        raise UserError(path, "a manifest `edgehar record` did not write: record into another folder")
    return spec


def write_take(out: Path, take: Take, label: str, subject: str, units: str | None,
               counters: dict, reason: str) -> dict:
    """Write one take CSV and list it in the manifest (both atomically)."""
    from edgehar.atomic import write_json, write_text

    spec = _folder_manifest(out)
    data = np.concatenate(take.values)
    index, keep = np.unique(np.concatenate(take.index), return_index=True)  # frames in device order
    data, index = data[keep], index - index[0]
    channels = take.channels if len(take.channels) == data.shape[1] else tuple(
        f"ch{i}" for i in range(data.shape[1]))
    unit = take.units if len(take.units) == data.shape[1] else (units or "g",) * data.shape[1]
    stamp = time.strftime("%Y%m%dT%H%M%S")
    k = len(spec["files"])
    name = f"{label}_{subject}_{stamp}_{k:03d}.csv"
    while name in spec["files"] or (out / name).exists():
        k += 1
        name = f"{label}_{subject}_{stamp}_{k:03d}.csv"
    t = index / take.rate
    lines = ["time," + ",".join(channels)]
    lines += [f"{ti:.6f}," + ",".join(f"{v:.9g}" for v in row) for ti, row in zip(t, data)]
    write_text(out / name, "\n".join(lines) + "\n")  # 9 digits: float32 reads back bit-equal
    entry = {"label": {"value": label}, "subject": {"value": subject}, "rate": take.rate,
             "units": list(unit), "samples": int(len(data)), "ended_by": reason,
             "counters": counters}
    spec["files"][name] = entry
    write_json(out / "edgehar.json", spec)
    return {"file": str(out / name), **entry}


def _delta(now: dict, before: dict) -> dict:
    return {k: (v - before.get(k, 0) if isinstance(v, (int, float)) and k != "rate" else v)
            for k, v in now.items()}


def run_record(args: argparse.Namespace) -> int:
    import signal

    from edgehar.bridge.ring import Ring
    from edgehar.bridge.serial_reader import SerialReader
    from edgehar.atomic import check_writable
    from edgehar.errors import UserError

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(out, "exists and is not a folder")
    _folder_manifest(out)  # refuse a foreign manifest before the port is touched
    check_writable(out / "edgehar.json")  # the folder itself is made with the first take
    ring = Ring(4096)
    reader = SerialReader(args.port, ring, args.baud, args.protocol, args.rate)
    signal.signal(signal.SIGTERM, _interrupt)
    reader.start()
    written, take, gone_since = [], None, None

    def finish(reason: str) -> None:
        nonlocal take
        if take is not None and take.n:
            info = write_take(out, take, args.label, args.subject, args.units,
                              _delta(reader.stats(), take.counters0), reason)
            written.append(info)
            print(json.dumps(info) if args.json else
                  f"edgehar: take {len(written)}: {info['samples']} samples at {info['rate']:g} Hz "
                  f"-> {info['file']} ({reason})", file=sys.stdout if args.json else sys.stderr,
                  flush=True)
        take = None

    try:
        while len(written) < args.takes:
            if reader.failure is not None:
                raise reader.failure
            for block in ring.get_all(timeout=0.05):
                if take is not None and block.connection != take.connection:
                    finish("disconnect")
                    if len(written) >= args.takes:
                        break
                if take is None:
                    take = Take(block.connection, reader.stats())
                    print(f"edgehar: take {len(written) + 1} of {args.label!r} started "
                          f"({block.rate:g} Hz, {reader.protocol} protocol)", file=sys.stderr, flush=True)
                take.add(block)
                if args.seconds and take.n >= args.seconds * take.rate:
                    keep = int(round(args.seconds * take.rate))
                    _trim(take, keep)
                    finish("seconds")
                    if len(written) >= args.takes:
                        break
            if reader.connected:
                gone_since = None
            elif gone_since is None:
                gone_since = time.perf_counter()
                for block in ring.get_all():  # the last blocks read before the cable went
                    if take is not None and block.connection == take.connection:
                        take.add(block)
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


def _trim(take: Take, n: int) -> None:
    data, index = np.concatenate(take.values)[:n], np.concatenate(take.index)[:n]
    take.values, take.index, take.n = [data], [index], len(data)


def _interrupt(*_):
    raise KeyboardInterrupt
