"""`sim://RECORDING?speed=20&protocol=frame&faults=...`: the virtual device as a pyserial port,
in process (no pty, no second program).

RECORDING is a recording file (Bangle.js, HAPT, CSV, .cwa), relative to the working folder or
absolute (`sim:///data/rec.csv`), %XX-quoted where it holds `?`, `&`, `%` or `#`. Options, as
`edgehar device simulate` takes them: `speed=X` (default 1; 0 = as fast as the host reads),
`protocol=text|frame`, `faults=SPEC` (the `--faults` syntax), `rate=HZ`, `start=S`,
`seconds=S`, `frame_samples=N`, `loop=1`, `declare=0`.

The device's bytes are made when the host reads them, each line or frame no earlier than its
time in the recording divided by `speed`. A `disconnect` fault cuts a line or frame in two,
fails the next read, and refuses `open()` for `down` seconds; the same port object then opens
again and the replay goes on (samples that fell due meanwhile are lost, as on a real board;
with speed=0 the device's clock is the host's reading, and none are). When the replay ends
the device is unplugged for good: a reader sees a disconnect and no device coming back.
"""

from __future__ import annotations

import errno
import os
import threading
import time

from serial.serialutil import PortNotOpenError, SerialException, to_bytes

from edgehar.bridge import flags
from edgehar.bridge.urlhandler import InProcessPort, boolean, option, refuse_unknown, split_url
from edgehar.bridge.virtual_device import Faults, Replay, load_replay
from edgehar.cli_types import nonneg_float, positive_float
from edgehar.errors import UserError

OPTIONS = ("speed", "protocol", "faults", "rate", "start", "seconds", "frame_samples", "loop", "declare")
READ_AHEAD = 4096  # bytes made ahead for `in_waiting` when the host reads faster than real time


def parse(url: str) -> dict:
    """The recording path and the device's settings; a bad URL is a `UserError` naming it."""
    path, opts = split_url(url, "sim")
    refuse_unknown(url, opts, OPTIONS)
    if not path:
        raise UserError(url, "no recording: use sim://RECORDING (a file path) with ?options")

    def protocol(text: str) -> str:
        if text not in ("text", "frame"):
            raise ValueError("use text or frame")
        return text

    return {"path": path,
            "speed": option(url, opts, "speed", nonneg_float, 1.0),
            "protocol": option(url, opts, "protocol", protocol, "text"),
            "faults": option(url, opts, "faults", Faults.parse, Faults()),
            "rate": option(url, opts, "rate", flags.rate_hz),
            "start": option(url, opts, "start", nonneg_float, 0.0),
            "seconds": option(url, opts, "seconds", positive_float),
            "frame_samples": option(url, opts, "frame_samples", flags.frame_samples),
            "loop": option(url, opts, "loop", boolean, False),
            "declare": option(url, opts, "declare", boolean, True)}


def check_url(url: str) -> None:
    """Refuse a bad option or a missing recording before anything is loaded."""
    path = parse(url)["path"]
    if not os.path.exists(path):
        raise UserError(url, f"no such recording file {path!r}")
    if os.path.isdir(path):
        raise UserError(url, f"{path!r} is a folder, expected a recording file")


class SimDevice(Replay):
    """A `Replay` paced by its host's reads instead of a thread (see the module doc)."""

    def __init__(self, data, rate: float, channels=(), units=(), protocol: str = "text",
                 speed: float = 1.0, faults: Faults | None = None, frame_samples: int | None = None,
                 loop: bool = False, declare: bool = True):
        super().__init__(data, rate, channels, units, protocol, faults, frame_samples, loop, declare)
        self.speed = float(speed)
        self._items = self._chunks()
        self._next = next(self._items, None)
        self._seq = 0
        self._disconnects = list(self.faults.disconnect)
        self._burst_until = -1.0
        self._t0: float | None = None  # perf_counter() when the host first opened the port
        self._lost_until: float | None = None  # chunks due before this fell due while unplugged
        self._out = bytearray()  # made, not read yet
        self._cut = False  # the cable is cut: the host's read after `_out` fails
        self.away_until: float | None = None  # unplugged until then (inf: the replay has ended)
        self.attached = False

    @property
    def ended(self) -> bool:
        return self._next is None

    def attach(self) -> None:
        """The host opens the port: the device greets it (again, after an unplug)."""
        now = time.perf_counter()
        if self.away_until is not None:
            if now < self.away_until:
                what = "the replay has ended" if self.ended else "the simulated device is unplugged"
                raise SerialException(errno.ENOENT, what)
            self.away_until = None
            if self.speed:
                self._lost_until = now
        if self._t0 is None:
            self._t0 = now
        self._cut = False
        self.attached = True
        self._out = bytearray(self._preamble())
        self.counts["bytes"] += len(self._out)
        self.sent.append([])

    def detach(self) -> None:
        """The host closes the port: what it did not read is lost, as on a real board."""
        self.attached = False
        self.discard()

    def available(self, now: float, limit: int) -> float | None:
        """Make the chunks due by `now` until `limit` bytes wait; the time the next one falls
        due (None: none will, the cable is cut or the replay has ended)."""
        n = len(self.data)
        while len(self._out) < limit and not self._cut and self._next is not None:
            lap, s, e = self._next
            rec_t = (lap * n + e) / self.rate  # recording time of the chunk's last sample
            due = self._t0 + rec_t / self.speed if self.speed else self._t0
            if self._lost_until is not None and due < self._lost_until:
                self.counts["unheard"] += e - s
                self._advance()
                continue
            if self._disconnects and rec_t >= self._disconnects[0]:
                self._disconnects.pop(0)
                partial = self._encode(s, e, self._seq, lap)
                self._emit(partial[:max(1, len(partial) // 2)])  # a truncated last line/frame
                self.counts["disconnects"] += 1
                self._cut = True
                self.away_until = now + self.faults.down
                self._advance()
                return None
            if rec_t > self._burst_until:
                if due > now:
                    return due
                if self._burst_starts():
                    self._burst_until = rec_t + 0.5
            message, chunk, intact = self._compose(s, e, self._seq, lap)
            self._seq += 1
            for piece in (message, chunk):
                if piece is not None:
                    self._emit(piece)
            if intact:
                self.sent[-1].extend(range(s, e))
            self._advance()
        if self._next is None and not self._cut:
            self.away_until = float("inf")  # unplugged for good once the host has read it all
            self._cut = True
        return None

    @property
    def waiting(self) -> int:
        """Bytes made and not read yet."""
        return len(self._out)

    @property
    def gone(self) -> bool:
        """The cable is cut and the host has read everything sent before the cut."""
        return self._cut and not self._out

    def take(self, size: int) -> bytes:
        data = bytes(self._out[:size])
        del self._out[:size]
        return data

    def discard(self) -> None:
        self._out.clear()

    def _advance(self) -> None:
        self._next = next(self._items, None)

    def _emit(self, data: bytes) -> None:
        self._out += data
        self.counts["bytes"] += len(data)


class Serial(InProcessPort):
    """The port of one `SimDevice`; `close()` then `open()` reconnects to the same device."""

    def __init__(self, *args, **kwargs):
        self.device: SimDevice | None = None
        self._device_url: str | None = None
        self._wake = threading.Event()
        super().__init__(*args, **kwargs)

    def open(self) -> None:
        if self._port is None:
            raise SerialException("Port must be configured before it can be used.")
        if self.is_open:
            raise SerialException("Port is already open.")
        if self.device is None or self._device_url != self._port:
            self.device, self._device_url = self._make_device(self._port), self._port
        self.device.attach()
        self._wake.clear()
        self.is_open = True

    @staticmethod
    def _make_device(url: str) -> SimDevice:
        check_url(url)
        spec = parse(url)
        try:
            rec, data = load_replay(spec["path"], spec["rate"], spec["start"], spec["seconds"])
        except UserError as e:  # a bad recording, or nothing left to replay: name the URL
            raise UserError(url, e.message) from None
        return SimDevice(data, rec.rate, rec.channels, rec.units, spec["protocol"], spec["speed"],
                         spec["faults"], spec["frame_samples"], spec["loop"], spec["declare"])

    def close(self) -> None:
        if self.is_open:
            self.is_open = False
            self._wake.set()
            self.device.detach()

    def _reconfigure_port(self, *args, **kwargs) -> None:
        pass  # no line settings: the bytes are made here

    @property
    def in_waiting(self) -> int:
        if not self.is_open:
            raise PortNotOpenError()
        self.device.available(time.perf_counter(), READ_AHEAD)
        return self.device.waiting

    def read(self, size: int = 1) -> bytes:
        """Up to `size` bytes: waits for them until the timeout, as a serial port does."""
        if not self.is_open:
            raise PortNotOpenError()
        dev = self.device
        deadline = None if self._timeout is None else time.perf_counter() + self._timeout
        while self.is_open:
            now = time.perf_counter()
            next_due = dev.available(now, size)
            if dev.waiting >= size or (dev.waiting and next_due is None):
                break  # all asked for, or all there will be before the cut
            if dev.gone:
                raise SerialException(errno.EIO, "the replay has ended" if dev.ended
                                      else "the simulated device was unplugged")
            if deadline is not None and now >= deadline:
                break
            waits = [t for t in (next_due, deadline) if t is not None]
            self._wake.wait(max(0.0, min(waits) - now) if waits else None)
            self._wake.clear()
        return dev.take(size)

    def write(self, data) -> int:
        """The device ignores what the host sends (as the pty device does)."""
        if not self.is_open:
            raise PortNotOpenError()
        return len(to_bytes(data))

    def cancel_read(self) -> None:
        self._wake.set()

    def reset_input_buffer(self) -> None:
        if not self.is_open:
            raise PortNotOpenError()
        self.device.discard()
