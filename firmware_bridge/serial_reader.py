"""The serial reader: a thread that owns the port, parses text or frame mode, and hands
sample blocks to the inference loop through a bounded `Ring`.

It opens the port exclusively (a second reader gets a clear "busy" error), survives unplugs
by reopening the same path every `retry` seconds, and counts bytes, lines, frames and every
kind of bad item. Protocol `auto` picks frame mode when a 0x00 byte shows up in the first
bytes (text never contains one), text mode otherwise.
"""

from __future__ import annotations

import errno
import threading
from collections import deque
import time

import numpy as np

from edgehar.bridge import frames
from edgehar.bridge.protocol_text import DeviceError, Info, LineParser, Reading, parse_info
from edgehar.bridge.ring import Ring
from edgehar.bridge.stream import Block
from edgehar.errors import UserError

COMMON_RATES = (1, 5, 10, 12.5, 20, 25, 26, 30, 32, 50, 52, 60, 64, 100, 104, 120, 128, 200, 208,
                250, 256, 400, 416, 500, 512, 800, 833, 1000, 1600, 3200)
RATE_PROBE_S = 2.0  # text mode without a declared rate: measure arrivals this long


def open_port(port: str, baud: int, timeout: float = 0.05):
    """Open `port` exclusively; a one-line `UserError` when missing, busy or not allowed."""
    import serial

    try:
        return serial.Serial(port, baud, timeout=timeout, exclusive=True)
    except serial.SerialException as e:
        code = getattr(e, "errno", None)
        if code == errno.ENOENT:
            raise UserError(port, "no such serial port (is the device plugged in? try "
                                  "`python -m serial.tools.list_ports`)") from None
        if code in (errno.EAGAIN, errno.EBUSY, errno.EWOULDBLOCK):
            raise UserError(port, "serial port is busy (another program has it open)") from None
        if code == errno.EACCES:
            raise UserError(port, "permission denied (add yourself to the dialout group)") from None
        raise UserError(port, f"cannot open serial port ({e})") from None
    except (OSError, ValueError) as e:
        raise UserError(port, f"cannot open serial port ({e})") from None


def snap_rate(measured: float) -> float:
    """The common sensor rate within 6% of `measured`, else `measured` rounded."""
    best = min(COMMON_RATES, key=lambda r: abs(r - measured) / r)
    return float(best) if abs(best - measured) / best <= 0.06 else round(measured, 1)


class SerialReader(threading.Thread):
    """Reads `port` until `stop()`; puts `Block`s into `ring`. `error` holds a fatal UserError."""

    def __init__(self, port: str, ring: Ring, baud: int = 115200, protocol: str = "auto",
                 rate: float | None = None, retry: float = 0.2):
        super().__init__(name="edgehar-serial-reader", daemon=True)
        if protocol not in ("auto", "text", "frame"):
            raise UserError("--protocol", f"unknown protocol {protocol!r} (auto, text or frame)")
        self.port, self.ring, self.baud, self.retry = port, ring, baud, retry
        self.protocol = protocol
        self.rate = rate  # given by the user; else declared by the device or measured
        self.text = LineParser()
        self.frames = frames.FrameDecoder()
        self.counts = {"bytes": 0, "reconnects": 0, "device_errors": 0}
        self.device_errors: deque[str] = deque(maxlen=20)  # latest ERR reports
        self.failure: BaseException | None = None  # a bug in this thread, re-raised by the consumer
        self.info: dict[str, str] = {}
        self.connected = False
        self._halt = threading.Event()
        self._probe: list[tuple[float, tuple]] = []  # text readings held while measuring the rate
        self._pending = b""  # first bytes, before auto picks the protocol
        self._t_origin: int | None = None  # unwrapped device µs of the first frame
        self._t_last = 0
        self._t_unwrapped = 0
        self._serial = open_port(port, baud)  # fail here, in the caller's thread, on a bad port

    # -- public -------------------------------------------------------------------------------
    def stop(self) -> None:
        self._halt.set()

    def close(self) -> None:
        """Release the port of a reader that was never started (a started one closes it itself)."""
        if not self.is_alive() and self._serial is not None and self._serial.is_open:
            self._serial.close()

    def stats(self) -> dict:
        """All counters in one flat dict."""
        t, f = self.text.counts, self.frames.counts
        return {"bytes": self.counts["bytes"], "lines": t["lines"], "frames": f["frames"],
                "readings": t["readings"], "garbled": t["garbled"] + f["garbled"],
                "dropped": f["dropped"], "out_of_order": f["out_of_order"],
                "truncated": t["truncated"] + f["truncated"], "device_errors": self.counts["device_errors"],
                "reconnects": self.counts["reconnects"], "overruns": self.ring.overruns,
                "protocol": self.protocol, "rate": self.rate}

    # -- thread -------------------------------------------------------------------------------
    def run(self) -> None:
        try:
            self._loop()
        except BaseException as e:  # keep it for the consumer thread, which reports it
            self.failure = e

    def _loop(self) -> None:
        import serial

        ser = self._serial
        while not self._halt.is_set():
            if ser is None:
                ser = self._reopen()
                if ser is None:
                    continue
            self.connected = True
            try:
                while not self._halt.is_set():
                    data = ser.read(max(1, ser.in_waiting))
                    if data:
                        self._feed(data, time.perf_counter())
            except (serial.SerialException, OSError):  # unplugged: reopen the same path
                pass
            finally:
                self.connected = False
                try:
                    ser.close()
                except (serial.SerialException, OSError):
                    pass  # already gone with the device
                ser = None
                self.text.connection_lost()
                self.frames.connection_lost()

    def _reopen(self):
        import serial

        if self._halt.wait(self.retry):
            return None
        try:
            ser = serial.Serial(self.port, self.baud, timeout=0.05, exclusive=True)
        except (serial.SerialException, OSError, ValueError):
            return None
        self.counts["reconnects"] += 1
        return ser

    # -- parsing ------------------------------------------------------------------------------
    def _feed(self, data: bytes, now: float) -> None:
        self.counts["bytes"] += len(data)
        if self.protocol == "auto":
            if b"\x00" in data:
                self.protocol = "frame"
            elif self.counts["bytes"] >= 64:
                self.protocol = "text"
            else:
                self._pending += data
                return
            data, self._pending = self._pending + data, b""
        if self.protocol == "text":
            self._feed_text(data, now)
        else:
            self._feed_frames(data, now)

    def _feed_text(self, data: bytes, now: float) -> None:
        rows = []
        for item in self.text.feed(data):
            if isinstance(item, Reading):
                rows.append(item.values)
            elif isinstance(item, Info):
                self._take_info(item.fields)
            elif isinstance(item, DeviceError):
                self._device_error(item.text)
        if not rows:
            return
        if self.rate is None:  # measure the rate from arrival times, holding the samples
            self._probe.extend((now, r) for r in rows)
            t0 = self._probe[0][0]
            first = sum(1 for t, _ in self._probe if t == t0)  # the first batch came at once
            span = now - t0
            if span < RATE_PROBE_S or len(self._probe) - first < 10:
                return
            self.rate = snap_rate((len(self._probe) - first) / span)
            rows = [r for _, r in self._probe]
            self._probe = []
        self.ring.put(Block(np.asarray(rows, np.float32), self.rate, now, None,
                            self.counts["reconnects"], *self._names()))

    def _feed_frames(self, data: bytes, now: float) -> None:
        for item in self.frames.feed(data):
            if isinstance(item, frames.Message):
                if item.text.startswith("#"):
                    self._take_info(parse_info(item.text.encode()))
                else:
                    self._device_error(item.text)
                continue
            rate = 1e6 / item.period_us
            if self.rate is None or abs(rate - self.rate) > 1e-9:
                self.rate = rate
            self.ring.put(Block(item.values, rate, now, self._device_index(item),
                                self.counts["reconnects"], *self._names()))

    def _device_index(self, frame: frames.Frame) -> int:
        """Sample index on the device's clock, from the wrapping 32-bit µs timestamp."""
        if self._t_origin is None:
            self._t_origin, self._t_last, self._t_unwrapped = frame.t_us, frame.t_us, 0
        else:
            delta = (frame.t_us - self._t_last) & 0xFFFFFFFF
            if delta >= 0x80000000:
                delta -= 0x100000000  # a timestamp from the past (reordered frame)
            self._t_unwrapped += delta
            self._t_last = frame.t_us
        return int(round(self._t_unwrapped / frame.period_us))

    def _device_error(self, text: str) -> None:
        self.counts["device_errors"] += 1
        self.device_errors.append(text)

    def _take_info(self, fields: dict[str, str]) -> None:
        self.info.update(fields)
        if self.rate is None and "rate" in fields:
            try:
                self.rate = float(fields["rate"])
            except ValueError:
                pass

    def _names(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        ch = tuple(c for c in self.info.get("channels", "").split(",") if c)
        un = tuple(u for u in self.info.get("units", "").split(",") if u)
        return ch, un

