"""`qemu://ARTIFACT_DIR?cpu=cortex-m4`: the wrist firmware of an `edgehar export --int8` folder,
running on an emulated Cortex-M, as a pyserial port (no pty).

Opening the port builds the firmware (cached; `edgehar.mcu.firmware_build`) for the emulated
board of `cpu` and boots it in qemu-system-arm; the port's stream is the firmware's UART: a
read returns what the firmware sends (its `# edgehar device` greeting, `P <window> <top> <q..>`
predictions and ERR reports, as frame-mode messages, see PROTOCOL.md), a write goes to its
UART as an IMU's samples frames would. With `replay=RECORDING` the port feeds the recording
itself (the card's channels, units and rate, as `edgehar device emulate` does), at `speed`
(default 1; 0 = as fast as the firmware takes it) from `start=S` for `seconds=S`, so
`edgehar live --on-device --port 'qemu://DIR?replay=REC'` shows the MCU's own predictions.
`toolchains=DIR` stands for $EDGEHAR_TOOLCHAINS. ARTIFACT_DIR and RECORDING are paths,
relative or absolute, %XX-quoted where they hold `?`, `&`, `%` or `#`.

Closing the port powers the emulated board off; opening it again boots it afresh.
"""

from __future__ import annotations

import errno
import os
import threading
import time

from serial.serialutil import PortNotOpenError, SerialException, to_bytes

from edgehar.bridge.emulator import EmulatedDevice, card_values, stream_scale
from edgehar.bridge.urlhandler import InProcessPort, option, refuse_unknown, split_url
from edgehar.card import ModelCard
from edgehar.cli_types import nonneg_float, positive_float
from edgehar.data import load_recording
from edgehar.errors import UserError
from edgehar.mcu.firmware_build import artifact_files, build_firmware
from edgehar.mcu.toolchain import find_toolchain

OPTIONS = ("cpu", "replay", "speed", "start", "seconds", "toolchains")
BOARDS = {"cortex-m4": "mps2-an386"}  # CPU -> the emulated board the wrist firmware runs on
GREETING_S = 60.0  # a booting firmware greets within this (first words of a loaded machine)


def parse(url: str) -> dict:
    """The export folder and the port's settings; a bad URL is a `UserError` naming it."""
    path, opts = split_url(url, "qemu")
    refuse_unknown(url, opts, OPTIONS)
    if not path:
        raise UserError(url, "no export folder: use qemu://ARTIFACT_DIR (written by "
                             "`edgehar export --int8`) with ?options")

    def cpu(text: str) -> str:
        if text not in BOARDS:
            raise ValueError(f"no emulated board runs the firmware on it (known: {', '.join(BOARDS)})")
        return text

    return {"path": path,
            "cpu": option(url, opts, "cpu", cpu, "cortex-m4"),
            "replay": option(url, opts, "replay", str),
            "speed": option(url, opts, "speed", nonneg_float, 1.0),
            "start": option(url, opts, "start", nonneg_float, 0.0),
            "seconds": option(url, opts, "seconds", positive_float),
            "toolchains": option(url, opts, "toolchains", str)}


def check_url(url: str) -> None:
    """Refuse a bad option, a missing export folder or recording before the build."""
    spec = parse(url)
    if not os.path.isdir(spec["path"]):
        raise UserError(url, f"no such export folder {spec['path']!r}")
    if spec["replay"] is not None and not os.path.isfile(spec["replay"]):
        raise UserError(url, f"no such recording file {spec['replay']!r}")


def _replay_values(spec: dict, card, url: str):
    """The recording's samples as the card takes them, cut to start/seconds."""
    try:
        values = card_values(load_recording(spec["replay"]), card, spec["replay"])
    except UserError as e:
        raise UserError(url, e.message) from None
    s = int(round(spec["start"] * card.rate))
    values = values[s:] if spec["seconds"] is None else values[s:s + int(round(spec["seconds"] * card.rate))]
    if len(values) < card.window:
        raise UserError(url, f"fewer than one window ({card.window} samples) to replay")
    return values


class Serial(InProcessPort):
    """The UART of one emulated board (see the module doc)."""

    def __init__(self, *args, **kwargs):
        self.device = None  # the running `EmulatedDevice`
        self._buffer = bytearray()
        self._eof = False
        self._cond = threading.Condition()
        self._feeder: threading.Thread | None = None
        super().__init__(*args, **kwargs)

    def open(self) -> None:
        if self._port is None:
            raise SerialException("Port must be configured before it can be used.")
        if self.is_open:
            raise SerialException("Port is already open.")
        check_url(self._port)
        spec = parse(self._port)
        _, _, card_path = artifact_files(spec["path"])  # the folder is checked before the tools
        card = ModelCard.from_json(card_path.read_text(), str(card_path))
        values = _replay_values(spec, card, self._port) if spec["replay"] else None
        tc = find_toolchain(spec["toolchains"])
        elf = build_firmware(spec["path"], BOARDS[spec["cpu"]], spec["toolchains"], quiet=True)
        with self._cond:
            self._buffer.clear()
            self._eof = False
        self.device = EmulatedDevice(elf, tc.qemu, BOARDS[spec["cpu"]], pty=False,
                                     on_bytes=self._received)
        self.is_open = True
        if values is not None:
            self._feeder = threading.Thread(target=self._feed, args=(self.device, values, card.rate,
                                                                     spec["speed"]),
                                            name="edgehar-qemu-replay", daemon=True)
            self._feeder.start()

    @staticmethod
    def _feed(device, values, rate: float, speed: float) -> None:
        """The IMU: the replay's samples frames, once the firmware has greeted."""
        if not device.wait_for(lambda d: d.messages, GREETING_S):
            return  # no firmware to feed; the host sees a silent port
        try:
            device.send(values, rate, stream_scale(values), speed=speed)
        except OSError:
            pass  # the port was closed mid-replay: the board is off

    def _received(self, data: bytes) -> None:
        with self._cond:
            if data:
                self._buffer += data
            else:
                self._eof = True
            self._cond.notify_all()

    def close(self) -> None:
        if self.is_open:
            self.is_open = False
            device, self.device = self.device, None
            device.close()
            with self._cond:
                self._eof = True
                self._cond.notify_all()
            if self._feeder is not None:
                self._feeder.join(timeout=5)
                self._feeder = None

    def _reconfigure_port(self, *args, **kwargs) -> None:
        pass  # the emulated UART has no line settings

    @property
    def in_waiting(self) -> int:
        if not self.is_open:
            raise PortNotOpenError()
        with self._cond:
            return len(self._buffer)

    def read(self, size: int = 1) -> bytes:
        """Up to `size` bytes: waits for them until the timeout, as a serial port does."""
        if not self.is_open:
            raise PortNotOpenError()
        deadline = None if self._timeout is None else time.monotonic() + self._timeout
        with self._cond:
            while len(self._buffer) < size and not self._eof:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                self._cond.wait(left)
            if not self._buffer and self._eof:
                raise SerialException(errno.EIO, "the emulated board stopped")
            data = bytes(self._buffer[:size])
            del self._buffer[:size]
            return data

    def write(self, data) -> int:
        if not self.is_open:
            raise PortNotOpenError()
        data = to_bytes(data)
        try:
            self.device.write(data)
        except OSError as e:
            raise SerialException(errno.EIO, f"the emulated board stopped ({e})") from None
        return len(data)

    def cancel_read(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def reset_input_buffer(self) -> None:
        if not self.is_open:
            raise PortNotOpenError()
        with self._cond:
            self._buffer.clear()
