"""The serial reader: a thread that owns the port, parses text or frame mode, and hands
sample blocks to the inference loop through a bounded `Ring`.

It opens the port with pyserial's `serial_for_url` (a device path, or a URL: `socket://`,
`loop://`, and the kit's `sim://` and `qemu://`, see `urlhandler/`), exclusively (a second
reader gets a clear "busy" error), survives unplugs by reopening the same port every `retry`
seconds, and counts bytes, lines, frames and every kind of bad item. Protocol `auto` picks
frame mode when a 0x00 byte shows up in the first bytes (text never contains one), text mode
otherwise; until the chosen decoder has proved itself (`AUTO_LOCK` good items) the other one
reads the same bytes, and when it decodes (`AUTO_SWITCH` items, 4x more than the chosen one: a
0x00 among a noisy text stream's garbage picks frames, which then never decode), the reader
switches and says so on stderr, replaying what the other decoder read. A stream where nothing
decodes in `SILENT_BYTES` bytes gets a one-line hint on stderr (wrong `--protocol` or `--baud`).
"""

from __future__ import annotations

import errno
import importlib
import os
import pkgutil
import sys
import threading
from collections import deque
import time

import numpy as np
import serial

from edgehar.bridge import frames
from edgehar.bridge.flags import rate_problem
from edgehar.bridge.protocol_text import DeviceError, Info, LineParser, Reading, parse_info
from edgehar.bridge.ring import Ring
from edgehar.bridge.stream import Block
from edgehar.errors import UserError

COMMON_RATES = (1, 5, 10, 12.5, 20, 25, 26, 30, 32, 50, 52, 60, 64, 100, 104, 120, 128, 200, 208,
                250, 256, 400, 416, 500, 512, 800, 833, 1000, 1600, 3200)
RATE_PROBE_S = 2.0  # text mode without a declared rate: measure arrivals this long
AUTO_SWITCH = 8  # good items of the other protocol (and 4x those of the chosen one) that switch auto
AUTO_LOCK = 64  # good items after which auto stops watching the other protocol
SILENT_BYTES = 4096  # bytes with nothing decoded before the reader says why on stderr
URL_HANDLERS = "edgehar.bridge.urlhandler"  # the kit's sim:// and qemu:// ports


def pyserial():
    """pyserial, with the kit's URL handlers registered where `serial_for_url` looks for them."""
    if URL_HANDLERS not in serial.protocol_handler_packages:
        serial.protocol_handler_packages.append(URL_HANDLERS)
    return serial


def url_schemes() -> list[str]:
    """The URL schemes `serial_for_url` opens (pyserial's and the kit's)."""
    schemes = []
    for package in pyserial().protocol_handler_packages:
        for module in pkgutil.iter_modules(importlib.import_module(package).__path__):
            if module.name.startswith("protocol_"):
                schemes.append(module.name[len("protocol_"):])
    return sorted(set(schemes))


def check_port(port: str) -> None:
    """A `UserError` for a URL that cannot name a port (unknown scheme, bad option, missing
    file), found before anything is loaded; a device path is checked when it is opened."""
    if "://" not in port:
        return
    scheme = port.split("://", 1)[0].lower()
    if scheme not in url_schemes():
        raise UserError(port, f"unknown URL scheme {scheme!r} (known: "
                              f"{', '.join(s + '://' for s in url_schemes())}, or a device path)")
    for package in pyserial().protocol_handler_packages:
        try:
            handler = importlib.import_module(f"{package}.protocol_{scheme}")
        except ImportError:
            continue
        if hasattr(handler, "check_url"):
            handler.check_url(port)
        return


def open_port(port: str, baud: int, timeout: float = 0.05):
    """Open `port` (a device path or a URL: socket://, loop://, sim://, qemu://, ...) exclusively;
    a one-line `UserError` when missing, busy, not allowed or not a known URL."""
    serial = pyserial()
    check_port(port)
    try:
        return serial.serial_for_url(port, baudrate=baud, timeout=timeout, exclusive=True)
    except serial.SerialException as e:
        code = getattr(e, "errno", None)
        if code == errno.ENOENT and os.path.islink(port):
            raise UserError(port, f"is a link to {os.readlink(port)}, which is gone (the simulator or "
                                  "device that made it has exited)") from None
        if code == errno.ENOENT and "://" not in port:
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
        self._shadow = None  # auto: the other protocol's decoder, reading the same bytes
        self._shadow_items: list[tuple[list, float]] = []
        self._switches = 0
        self._head = bytearray()  # first SILENT_BYTES bytes, to tell why nothing decodes
        self.notices: list[str] = []  # what the reader said on stderr
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
                if self._shadow is not None:
                    self._shadow.connection_lost()

    def _reopen(self):
        """The same port object, opened again (a URL handler keeps its device between opens)."""
        if self._halt.wait(self.retry):
            return None
        try:
            self._serial.open()
        except (serial.SerialException, OSError, ValueError, UserError):
            return None
        self.counts["reconnects"] += 1
        return self._serial

    # -- parsing ------------------------------------------------------------------------------
    def _feed(self, data: bytes, now: float) -> None:
        self.counts["bytes"] += len(data)
        if self._head is not None and len(self._head) < SILENT_BYTES:
            self._head += data[:SILENT_BYTES - len(self._head)]
        if self.protocol == "auto":
            if b"\x00" in data:
                self.protocol = "frame"
            elif self.counts["bytes"] >= 64:
                self.protocol = "text"
            else:
                self._pending += data
                return
            data, self._pending = self._pending + data, b""
            self._shadow = frames.FrameDecoder() if self.protocol == "text" else LineParser()
        if self.protocol == "text":
            self._take_text(self.text.feed(data), now)
        else:
            self._take_frames(self.frames.feed(data), now)
        if self._shadow is not None:
            self._watch_other(data, now)
        if self._head is not None and self.counts["bytes"] >= SILENT_BYTES:
            self._check_silence()

    def _good(self, decoder) -> int:
        """Items a decoder read that only its own protocol can produce."""
        c = decoder.counts
        if isinstance(decoder, LineParser):
            return c["lines"] - c["garbled"]  # numbers (held ones too), `#` and ERR lines
        return c["frames"] + c["messages"] + c["out_of_order"]  # CRC-checked

    def _watch_other(self, data: bytes, now: float) -> None:
        """Auto mode: switch when the other decoder reads the stream and ours reads nothing."""
        other = self._shadow
        self._shadow_items.append((other.feed(data), now))
        mine = self.text if self.protocol == "text" else self.frames
        if self._good(mine) >= AUTO_LOCK or len(self._shadow_items) > 100_000:
            self._shadow, self._shadow_items = None, []  # ours is the stream's protocol
            return
        theirs = self._good(other)
        if theirs < AUTO_SWITCH or theirs <= 4 * self._good(mine) or self._switches >= 2:
            return
        old, self.protocol = self.protocol, ("frame" if self.protocol == "text" else "text")
        self._switches += 1
        self._say(f"{theirs} {'frames' if old == 'text' else 'text lines'} decoded and "
                  f"{self._good(mine)} {'lines' if old == 'text' else 'frames'}: switching to "
                  f"--protocol {self.protocol}")
        items = self._shadow_items
        if self.protocol == "text":
            self.text, self.frames, self._shadow = other, frames.FrameDecoder(), frames.FrameDecoder()
        else:
            self.frames, self.text, self._shadow = other, LineParser(), LineParser()
        self._shadow_items = []
        for batch, t in items:  # what the right decoder read so far: no window lost
            if self.protocol == "text":
                self._take_text(batch, t)
            else:
                self._take_frames(batch, t)

    def _check_silence(self) -> None:
        """Once, after SILENT_BYTES bytes: say why nothing decodes (wrong protocol or baud)."""
        head, self._head = bytes(self._head), None
        if self.protocol == "text" and self.text.counts["readings"] == 0 and not self.info:
            other = frames.FrameDecoder()
            other.feed(head)
            hint = ("is the device sending frames? try --protocol frame" if self._good(other)
                    else "check --baud and that the device sends readings")
            self._say(f"no text lines decoded in {len(head)} bytes: {hint}")
        elif self.protocol == "frame" and self._good(self.frames) == 0:
            other = LineParser()
            other.feed(head)
            hint = ("is the device sending text lines? try --protocol text"
                    if other.counts["readings"] or other.info else "check --baud and the device")
            self._say(f"no frames decoded in {len(head)} bytes: {hint}")

    def _say(self, text: str) -> None:
        self.notices.append(text)
        print(f"edgehar: {self.port}: {text}", file=sys.stderr, flush=True)

    def _take_text(self, items: list, now: float) -> None:
        rows = []
        for item in items:
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

    def _take_frames(self, items: list, now: float) -> None:
        for item in items:
            if isinstance(item, frames.Message):
                if item.text.startswith("#"):
                    self._take_info(parse_info(item.text.encode()))
                else:
                    self._device_error(item.text)
                continue
            rate = 1e6 / item.period_us
            self._check_rate(rate, f"frame period {item.period_us} µs")
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
                rate = float(fields["rate"])
            except ValueError:
                rate = None
            self.rate = self._check_rate(rate, f"declared rate={fields['rate'][:40]}")

    def _check_rate(self, rate: float | None, what: str) -> float:
        """A device's own rate, or a one-line `UserError` naming the port (NaN, 0, 1e9 ...)."""
        problem = rate_problem(rate)
        if problem:
            raise UserError(self.port, f"the device's {what}: {problem}")
        return rate

    def _names(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        ch = tuple(c for c in self.info.get("channels", "").split(",") if c)
        un = tuple(u for u in self.info.get("units", "").split(",") if u)
        return ch, un

