"""Text mode, compatible with the Edge Impulse data forwarder: one reading per line, numbers
separated by commas, tabs or spaces (a trailing `;` is tolerated), 115200 baud by default.

- The axis count is the field count most lines agree on (the first `DETECT_LINES` numeric
  lines), unless given.
- The bytes before the first newline after a (re)connect are dropped (the line may be cut),
  and so is an unfinished line when the link drops.
- Lines starting with `ERR` are device error reports: counted and passed on.
- Lines starting with `#` are comments; `# edgehar rate=50 channels=acc_x,acc_y,acc_z units=g,g,g`
  declares the stream (optional: the rate is otherwise measured from arrival times).
- Anything else that is not exactly `axes` finite numbers is a garbled line: counted, skipped.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

from edgehar.bridge.resync import DelimitedSplitter

MAX_LINE = 512  # bytes; a longer line without newline is garbage
DETECT_LINES = 8
_SPLIT = re.compile(rb"[,\t ]+")


@dataclass
class Reading:
    values: tuple[float, ...]


@dataclass
class DeviceError:
    text: str


@dataclass
class Info:
    fields: dict[str, str]


def parse_numbers(line: bytes) -> tuple[float, ...] | None:
    """The finite numbers of one line, or None when any field is not one."""
    line = line.strip().rstrip(b";").strip()
    if not line:
        return None
    try:
        values = tuple(float(f) for f in _SPLIT.split(line) if f)
    except ValueError:
        return None
    if not values or not all(math.isfinite(v) for v in values):
        return None
    return values


def parse_info(line: bytes) -> dict[str, str]:
    """`key=value` pairs of a `#` comment line."""
    fields = {}
    for tok in line.lstrip(b"#").decode("utf-8", "replace").split():
        if "=" in tok:
            k, v = tok.split("=", 1)
            fields[k.strip().lower()] = v.strip()
    return fields


class LineParser:
    """Incremental text-mode parser: feed arbitrary bytes, get Readings/DeviceErrors/Info.

    Never raises on input. Until the axis count is known (given, declared, or agreed by
    `DETECT_LINES` lines) numeric lines are held back, then released in order.
    """

    def __init__(self, axes: int | None = None):
        self.axes = axes
        self.counts = {"lines": 0, "readings": 0, "garbled": 0, "errors": 0, "truncated": 0}
        self.last_error = ""
        self.info: dict[str, str] = {}
        self._held: list[tuple[float, ...]] = []
        self._lines = DelimitedSplitter(b"\n", MAX_LINE, self.counts, blank=lambda line: not line.strip())

    def reset(self) -> None:
        """A new connection: the first line may be cut, drop it."""
        self._lines.reset()

    def connection_lost(self) -> None:
        self._lines.connection_lost()

    def feed(self, data: bytes) -> list:
        out: list = []
        for line in self._lines.split(data):
            self._line(line.rstrip(b"\r"), out)
        return out

    def _line(self, line: bytes, out: list) -> None:
        if not line.strip():
            return
        self.counts["lines"] += 1
        if line.startswith(b"ERR"):
            self.counts["errors"] += 1
            self.last_error = line.decode("utf-8", "replace").strip()[:200]
            out.append(DeviceError(self.last_error))
            return
        if line.startswith(b"#"):
            fields = parse_info(line)
            if fields:
                self.info.update(fields)
                if self.axes is None and "channels" in fields:
                    self.axes = len(fields["channels"].split(","))
                out.append(Info(fields))
                self._release_held(out)
            return
        values = parse_numbers(line)
        if values is None:
            self.counts["garbled"] += 1
            return
        if self.axes is None:
            self._held.append(values)
            if len(self._held) >= DETECT_LINES:
                self.axes = Counter(len(v) for v in self._held).most_common(1)[0][0]
                self._release_held(out)
            return
        self._accept(values, out)

    def _release_held(self, out: list) -> None:
        held, self._held = self._held, []
        for v in held:
            self._accept(v, out)

    def _accept(self, values: tuple[float, ...], out: list) -> None:
        if len(values) != self.axes:
            self.counts["garbled"] += 1
            return
        self.counts["readings"] += 1
        out.append(Reading(values))
