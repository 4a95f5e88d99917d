"""An emulated wrist device: the real firmware ELF on an emulated Cortex-M4, fed replayed samples.

`EmulatedDevice` boots the wrist firmware (edgehar.mcu.firmware_build, board mps2-an386) in
`qemu-system-arm`, with the board's UART on a Unix socket this process holds. Replayed samples
go IN as samples frames (PROTOCOL.md), as a sensor would deliver them; everything the firmware
sends OUT (its "# edgehar device" greeting, "P <window> <top> <q0>,<q1>,..." prediction
messages, ERR reports) is decoded here and also copied byte for byte to a pseudo-terminal, which
`edgehar live --port PTY --on-device` reads like a real board's USB serial port.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import tty
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgehar.bridge import frames
from edgehar.data.resample import resample, unit_factor
from edgehar.errors import UserError
from edgehar.interpreters import quantize

PREDICTION = re.compile(r"^P (\d+) (\d+) (-?\d+(?:,-?\d+)*)$")


@dataclass
class DevicePrediction:
    window: int                 # 0 = the first full window, then one per hop
    top: int                    # argmax of the int8 outputs, as the firmware computed it
    outputs: np.ndarray         # the int8 logits


def parse_prediction(text: str) -> DevicePrediction | None:
    m = PREDICTION.match(text.strip())
    if not m:
        return None
    return DevicePrediction(int(m.group(1)), int(m.group(2)),
                            np.array([int(v) for v in m.group(3).split(",")], np.int8))


def stream_scale(values: np.ndarray) -> float:
    """The int16 scale of the frames: a power of two that keeps the stream's peak in range."""
    peak = float(np.abs(values).max()) if values.size else 1.0
    return 2.0 ** math.ceil(math.log2(max(peak, 1e-6) / 32000))


class EmulatedDevice:
    """`on_bytes(data)`, when given, gets every byte the firmware sends, as it arrives (b"" once
    the emulator's UART closes): the `qemu://` port's stream."""

    def __init__(self, elf: Path, qemu: str, machine: str = "mps2-an386", pty: bool = True,
                 on_bytes=None):
        self.on_bytes = on_bytes
        self.messages: list[str] = []
        self.predictions: list[DevicePrediction] = []
        self._work = Path(tempfile.mkdtemp(prefix="edgehar-emu-"))
        sock_path = str(self._work / "uart.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(sock_path)
        listener.listen(1)
        listener.settimeout(30)
        self._qemu = subprocess.Popen(
            [qemu, "-M", machine, "-nographic", "-monitor", "none", "-kernel", str(elf),
             "-chardev", f"socket,id=uart,path={sock_path}", "-serial", "chardev:uart"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            self._sock, _ = listener.accept()
        except socket.timeout:
            self.close()
            raise UserError(elf, "qemu-system-arm did not connect the emulated UART") from None
        finally:
            listener.close()
        self.master = self.slave = None
        self.path = None
        if pty:
            self.master, self.slave = os.openpty()
            tty.setraw(self.slave)
            os.set_blocking(self.master, False)  # a full pty drops output, never stalls the MCU
            self.path = os.ttyname(self.slave)
        self._decoder = frames.FrameDecoder()
        self._seq = 0
        self._lock = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = self._sock.recv(4096)
            except OSError:
                data = b""
            if self.on_bytes is not None:
                self.on_bytes(data)
            if not data:
                break
            if self.master is not None:
                try:
                    os.write(self.master, data)
                except OSError:  # nobody reads the pty right now: as a board with no host
                    pass
            for item in self._decoder.feed(data):
                if isinstance(item, frames.Message):
                    with self._lock:
                        self.messages.append(item.text)
                        p = parse_prediction(item.text)
                        if p is not None:
                            self.predictions.append(p)
                        self._lock.notify_all()

    def wait_for(self, predicate, timeout: float) -> bool:
        """Wait until `predicate(self)` holds (checked on every message) or `timeout` s pass."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while not predicate(self):
                left = deadline - time.monotonic()
                if left <= 0 or self._qemu.poll() is not None:
                    return predicate(self)
                self._lock.wait(min(left, 0.5))
        return True

    def write(self, data: bytes) -> None:
        """Bytes into the firmware's UART, as the IMU (or a host) sends them."""
        self._sock.sendall(data)

    @property
    def running(self) -> bool:
        return self._qemu.poll() is None and self._reader.is_alive()

    def send(self, values: np.ndarray, rate: float, scale: float, frame_samples: int = 10,
             speed: float = 0.0, t0_us: int = 0) -> None:
        """Send (samples, channels) physical values as samples frames; `speed` 0 = at once."""
        period_us = int(round(1e6 / rate))
        start = time.monotonic()
        for i in range(0, len(values), frame_samples):
            block = frames.quantize(values[i:i + frame_samples], scale)
            self._sock.sendall(frames.encode_frame(self._seq, t0_us + i * period_us, period_us,
                                                   scale, block))
            self._seq = (self._seq + 1) & 0xFFFF
            if speed > 0:
                due = start + (i + len(block)) / rate / speed
                time.sleep(max(0.0, due - time.monotonic()))

    def close(self) -> None:
        for closer in (lambda: self._sock.close(), lambda: self._qemu.kill(),
                       lambda: self._qemu.wait(5)):
            try:
                closer()
            except Exception:  # noqa: BLE001 - closing what may already be gone
                pass
        for fd in (self.master, self.slave):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        shutil.rmtree(self._work, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def device_windows(values: np.ndarray, scale: float, card, input_scale: float,
                   input_zero: int) -> np.ndarray:
    """The int8 windows the firmware builds from the same frames (host side, for checking):
    int16 on the wire -> x scale -> normalise -> quantise, windows every hop."""
    wire = frames.quantize(values, scale).astype(np.float32) * np.float32(scale)
    q = quantize(card.normalise(wire), np.int8, input_scale, input_zero)
    starts = range(0, len(q) - card.window + 1, card.hop)
    return np.stack([q[s:s + card.window] for s in starts])


def card_values(rec, card, where: str):
    """The recording's samples in the card's channel order, units and rate."""
    if abs(rec.rate - card.rate) > 1e-6:
        rec = resample(rec, card.rate)
    missing = [c for c in card.channels if c not in rec.channels]
    if missing:
        raise UserError(where, f"has no {', '.join(missing)} (the model needs "
                               f"{', '.join(card.channels)})")
    cols = [rec.channels.index(c) for c in card.channels]
    try:
        factors = [unit_factor(rec.units[i], u) for i, u in zip(cols, card.units)]
    except ValueError as e:
        raise UserError(where, f"units do not fit the model: {e}") from None
    return (rec.data[:, cols] * np.asarray(factors, np.float32)).astype(np.float32)
