"""A virtual serial device: replays a real recording through a pseudo-terminal, in real time or
faster, in text or frame mode, with optional faults.

`Replay` is what such a device sends (the bytes of each line or frame, the faults, the ground
truth); `VirtualDevice` paces it through a pty for any program, and the `sim://` URL handler
(`urlhandler/protocol_sim.py`) paces it in-process, for the bridge's own commands.

A pty *is* a serial port to the host side (pyserial opens it like /dev/ttyACM0). The device
behaves like a native-USB board running `while (!Serial) {}`: it streams only while a host
has the port open; samples that fall due while nobody listens are lost, as on a real board.
An unplug closes the pty; the replug opens a new one, and the stable `link` path (a symlink,
like /dev/serial/by-id/...) is re-pointed to it so the host can reopen the same name.

Fault spec (comma separated, all optional): `garbage=P` (a run of 1-8 garbage bytes inside a
line/frame, probability P per line/frame), `drop=P` (line/frame never sent), `burst=P`
(start of a burst: the next 0.5 s of data goes out at once), `err=P` (an `ERR` report),
`disconnect=T[+T...]` (unplug at recording second T), `down=S` (seconds unplugged, default
0.5), `seed=N`. Garbage bytes in text mode exclude newline and everything a number or
separator is made of, so a spoiled line is always detectably garbled.

`sent` is the ground truth: per connection, the recording indices of the samples that
reached the host intact.
"""

from __future__ import annotations

import errno
import math
import os
import re
import select
import threading
import time
import tty
from dataclasses import dataclass, field

import numpy as np

from edgehar.bridge import frames
from edgehar.data import load_recording
from edgehar.data.resample import resample
from edgehar.errors import UserError

# Bytes that cannot be part of a number, a separator or a line end (see module doc).
# (float() also skips whitespace at a field's ends and "_" between digits: excluded too.)
_TEXT_GARBAGE = bytes(b for b in range(256)
                      if chr(b) not in "0123456789+-.eE,;#_" and not chr(b).isspace() and b != 0x7F)
LINGER_S = 0.5  # the device stays after the replay's end, so the host reads its last bytes
DEVICE_T0_US = 2**32 - 5_000_000  # device clock starts 5 s before the uint32 wraps: exercises it


@dataclass
class Faults:
    garbage: float = 0.0
    drop: float = 0.0
    burst: float = 0.0
    err: float = 0.0
    disconnect: list[float] = field(default_factory=list)  # recording seconds
    down: float = 0.5  # seconds unplugged
    seed: int = 0

    @classmethod
    def parse(cls, spec: str | None) -> "Faults":
        f = cls()
        if not spec:
            return f
        for item in spec.split(","):
            key, _, value = item.strip().partition("=")
            try:
                if key in ("garbage", "drop", "burst", "err"):
                    p = float(value.rstrip("%")) / (100.0 if value.endswith("%") else 1.0)
                    if not 0.0 <= p <= 1.0:  # NaN fails too
                        raise ValueError
                    setattr(f, key, p)
                elif key == "disconnect":
                    f.disconnect = sorted(float(t) for t in value.split("+"))
                    if not all(0.0 <= t < math.inf for t in f.disconnect):
                        raise ValueError
                elif key == "down":
                    f.down = float(value)
                    if not 0.0 <= f.down <= 3600.0:
                        raise ValueError
                elif key == "seed":
                    f.seed = int(value)
                    if not 0 <= f.seed < 2**63:  # numpy seeds are non-negative
                        raise ValueError
                else:
                    raise UserError("--faults", f"unknown fault {key!r} (known: garbage, drop, burst, "
                                                "err, disconnect, down, seed)")
            except ValueError:
                raise UserError("--faults", f"bad value in {item.strip()!r} (probabilities 0..1 or "
                                            "0..100%, times >= 0 s, down <= 3600 s, seed >= 0; e.g. "
                                            "garbage=0.01,drop=1%,disconnect=20+40,down=0.5,seed=1)") from None
        return f


_PTY = re.compile(r"^/dev/pts/\d+$")


def _readlink(path: str) -> str | None:
    try:
        return os.readlink(path)
    except OSError:
        return None


def check_link(link: str) -> None:
    """Refuse a `--link` path that would replace anything but a pty link.

    Free paths are fine; so is a symlink to a pty (`/dev/pts/N`): the link of a running or
    killed simulator (SIGKILL leaves it dangling), which the new one re-points. A regular file,
    a folder, any other link or a missing folder is a `UserError`.
    """
    parent = os.path.dirname(link) or "."
    if not os.path.isdir(parent):
        raise UserError(link, f"no such folder {parent!r} for the link")
    if os.path.isdir(link) and not os.path.islink(link):
        raise UserError(link, "is a folder; --link wants a path for a new symlink")
    if not os.path.lexists(link):
        return
    target = _readlink(link)
    if target is None or not _PTY.match(target):
        what = "a symlink to " + target if target is not None else "an existing file"
        raise UserError(link, f"is {what}: refusing to replace it (--link makes its own symlink)")


def frame_scale(data: np.ndarray) -> float:
    """A power-of-two int16 scale covering the recording's range (exact as float32)."""
    peak = float(np.max(np.abs(data))) if data.size else 1.0
    return 2.0 ** math.ceil(math.log2(max(peak, 1e-6) * 1.001)) / 32768.0


def format_line(row: np.ndarray) -> bytes:
    """One text-mode line; float32 values written shortest-exact (they parse back bit-equal)."""
    return (",".join(np.format_float_positional(v, unique=True, trim="-") for v in row) + "\r\n").encode()


def load_replay(path, rate: float | None = None, start: float = 0.0, seconds: float | None = None):
    """(recording, samples to replay): `path` loaded, resampled to `rate` if given, cut to
    `seconds` from `start` seconds in."""
    rec = load_recording(path)
    if rate:
        rec = resample(rec, rate)
    s = int(round(start * rec.rate))
    e = len(rec.data) if seconds is None else s + int(round(seconds * rec.rate))
    data = rec.data[s:e]
    if len(data) == 0:
        raise UserError(path, f"nothing to replay from {start:g} s (the recording lasts {rec.seconds:.1f} s)")
    return rec, data


class Replay:
    """What a virtual device sends for `data` (samples x channels, `rate` Hz): its declaration,
    each line or frame, the faults, and the ground truth `sent`. No timing and no transport."""

    def __init__(self, data: np.ndarray, rate: float, channels=(), units=(), protocol: str = "text",
                 faults: Faults | None = None, frame_samples: int | None = None, loop: bool = False,
                 declare: bool = True):
        if protocol not in ("text", "frame"):
            raise UserError("--protocol", f"unknown protocol {protocol!r} (text or frame)")
        self.data = np.asarray(data, np.float32)
        self.rate, self.protocol = float(rate), protocol
        self.channels, self.units = tuple(channels), tuple(units)
        self.faults = faults or Faults()
        self.loop = loop
        self.declare = declare  # False: like plain Edge Impulse forwarder firmware
        self.frame_samples = frame_samples or max(1, round(self.rate / 10))
        self.scale = frame_scale(self.data)
        self.period_us = int(round(1e6 / self.rate))
        self.rng = np.random.default_rng(self.faults.seed)
        self.sent: list[list[int]] = []  # per connection: recording indices delivered intact
        self.counts = {"chunks": 0, "bytes": 0, "dropped": 0, "garbage": 0, "bursts": 0, "errors": 0,
                       "disconnects": 0, "unheard": 0}

    # -- bytes ----------------------------------------------------------------------------
    def _preamble(self) -> bytes:
        info = f"# edgehar rate={self.rate:g}"
        if self.channels:
            info += f" channels={','.join(self.channels)}"
        if self.units:
            info += f" units={','.join(self.units)}"
        if self.protocol == "text":  # leading newline: the host drops a cut first line
            return b"\r\n" + (info.encode() + b"\r\n" if self.declare else b"")
        return b"\x00" + (frames.encode_message(0, info) if self.declare else b"")

    def _chunks(self):
        """(lap, first, last+1) recording indices of each line/frame; laps repeat when looping."""
        step = 1 if self.protocol == "text" else self.frame_samples
        n, lap = len(self.data), 0
        while True:
            for s in range(0, n, step):
                yield lap, s, min(s + step, n)
            if not self.loop:
                return
            lap += 1

    def _encode(self, s: int, e: int, seq: int, lap: int) -> bytes:
        if self.protocol == "text":
            return format_line(self.data[s])
        t_us = DEVICE_T0_US + (lap * len(self.data) + s) * self.period_us
        return frames.encode_frame(seq, t_us, self.period_us, self.scale,
                                   frames.quantize(self.data[s:e], self.scale))

    def _garble(self, chunk: bytes) -> bytes:
        n = int(self.rng.integers(1, 9))
        if self.protocol == "text":
            junk = bytes(self.rng.choice(np.frombuffer(_TEXT_GARBAGE, np.uint8), n))
            pos = int(self.rng.integers(0, len(chunk) - 2))  # inside the line, before "\r\n"
        else:
            junk = self.rng.integers(0, 256, n, dtype=np.uint8).tobytes()
            pos = int(self.rng.integers(0, len(chunk) - 1))  # before the frame's delimiter
        return chunk[:pos] + junk + chunk[pos:]

    def _compose(self, s: int, e: int, seq: int, lap: int) -> tuple[bytes | None, bytes | None, bool]:
        """(an ERR report or None, the line/frame or None when dropped, whether it is intact)."""
        f = self.faults
        self.counts["chunks"] += 1
        message = None
        if f.err and self.rng.random() < f.err:
            self.counts["errors"] += 1
            msg = "ERR sensor read timeout"
            message = msg.encode() + b"\r\n" if self.protocol == "text" else frames.encode_message(seq, msg)
        if f.drop and self.rng.random() < f.drop:
            self.counts["dropped"] += 1
            return message, None, False
        chunk = self._encode(s, e, seq, lap)
        if f.garbage and self.rng.random() < f.garbage:
            self.counts["garbage"] += 1
            return message, self._garble(chunk), False
        return message, chunk, True

    def _burst_starts(self) -> bool:
        """Whether a burst starts here (the next 0.5 s of data goes out at once)."""
        if self.faults.burst and self.rng.random() < self.faults.burst:
            self.counts["bursts"] += 1
            return True
        return False


class VirtualDevice(Replay):
    """Stream `data` (samples x channels, `rate` Hz) through a pty from a background thread."""

    def __init__(self, data: np.ndarray, rate: float, channels=(), units=(), protocol: str = "text",
                 speed: float = 1.0, faults: Faults | None = None, link: str | None = None,
                 frame_samples: int | None = None, loop: bool = False, declare: bool = True):
        super().__init__(data, rate, channels, units, protocol, faults, frame_samples, loop, declare)
        if speed <= 0:
            raise UserError("--speed", "must be > 0")
        self.speed = float(speed)
        self.link = link
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._master = None
        self._pty: str | None = None  # the pty our link points to
        self.path = self._open_pty()

    # -- pty handling -------------------------------------------------------------------------
    def _open_pty(self) -> str:
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no CR/LF translation: bytes pass through as on a UART
        name = os.ttyname(slave)
        os.close(slave)  # the host opens it; until then the master sees POLLHUP
        os.set_blocking(master, False)
        self._master = master
        if self.link:
            check_link(self.link)  # never replace a user's file, even one made since the start
            tmp = f"{self.link}.{os.getpid()}.tmp"
            if os.path.lexists(tmp):
                os.unlink(tmp)
            os.symlink(name, tmp)
            os.replace(tmp, self.link)  # atomic re-point: a host never sees no link
            self._pty = name
        return self.link or name

    def _host_listening(self) -> bool:
        p = select.poll()
        p.register(self._master, select.POLLHUP)
        return not any(ev & select.POLLHUP for _, ev in p.poll(0))

    def _write(self, data: bytes) -> bool:
        """Write all of `data`; False when the host is gone or stops reading for 2 s (bytes lost)."""
        view = memoryview(data)
        deadline = time.perf_counter() + 2.0  # patient: a loaded test machine may stall the host
        while view:
            try:
                n = os.write(self._master, view)
                view = view[n:]
            except BlockingIOError:
                if time.perf_counter() > deadline:
                    return False
                time.sleep(0.001)
            except OSError as e:
                if e.errno in (errno.EIO, errno.EBADF):
                    return False
                raise
        self.counts["bytes"] += len(data)
        return True

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> "VirtualDevice":
        thread = threading.Thread(target=self._run, name="edgehar-virtual-device", daemon=True)
        thread.start()
        # only a started thread is ever joined: a signal may land between creating and starting it
        self._thread = thread
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.close()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the replay to end; True if it did."""
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    def close(self) -> None:
        if self._master is not None:
            os.close(self._master)
            self._master = None
        if self.link and self._pty and _readlink(self.link) == self._pty:
            os.unlink(self.link)  # only our own link: another simulator may have taken the name

    @property
    def finished(self) -> bool:
        return self._thread is not None and not self._thread.is_alive()

    def _wait_for_host(self) -> None:
        while not self._stop.is_set() and not self._host_listening():
            time.sleep(0.01)
        # pyserial flushes the input right after it opens the port: bytes sent at the very
        # moment the host appears (the declaration) would be lost at random
        if not self._stop.wait(0.1):
            self._write(self._preamble())
            self.sent.append([])

    def _run(self) -> None:
        f = self.faults
        disconnects = list(f.disconnect)
        n = len(self.data)
        seq = 0
        burst_until = -1.0
        self._wait_for_host()
        t0 = time.perf_counter()
        lost_until = t0  # samples due before this were measured while nobody listened
        for lap, s, e in self._chunks():
            if self._stop.is_set():
                return
            rec_t = (lap * n + e) / self.rate  # recording time of the chunk's last sample
            due = t0 + rec_t / self.speed
            if due < lost_until:
                self.counts["unheard"] += e - s
                continue
            if disconnects and rec_t >= disconnects[0]:
                disconnects.pop(0)
                self._unplug(self._encode(s, e, seq, lap))
                lost_until = time.perf_counter()
                continue
            if rec_t > burst_until:
                now = time.perf_counter()
                if due > now and self._stop.wait(due - now):
                    return
                if self._burst_starts():
                    burst_until = rec_t + 0.5
            if not self._host_listening():  # host closed the port: wait like while(!Serial)
                self.counts["unheard"] += e - s
                self._wait_for_host()
                lost_until = time.perf_counter()
                continue
            self._send(s, e, seq, lap)
            seq += 1
        # A board stays plugged in after its last sample; closing the pty at once would flush
        # what the host has not read yet (the last lines of a replay, lost at random).
        if self._host_listening():
            self._stop.wait(LINGER_S)

    def _send(self, s: int, e: int, seq: int, lap: int) -> None:
        message, chunk, intact = self._compose(s, e, seq, lap)
        if message is not None:
            self._write(message)
        if chunk is None:
            return
        if self._write(chunk) and intact:
            self.sent[-1].extend(range(s, e))
        elif intact:
            self.counts["unheard"] += e - s

    def _unplug(self, partial: bytes) -> None:
        """Cut the cable mid-line/frame, stay away `down` s, come back on a new pty."""
        self._write(partial[:max(1, len(partial) // 2)])  # a truncated last line/frame
        time.sleep(0.05)  # let the host read the cut line: a hangup flushes unread input
        self.counts["disconnects"] += 1
        os.close(self._master)
        self._master = None
        if self._stop.wait(self.faults.down):
            return
        self.path = self._open_pty()
        self._wait_for_host()
