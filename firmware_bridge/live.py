"""Live predictions from a serial device: reader -> ring -> assembler (gaps, resampling,
windows) -> Predictor -> smoothing -> terminal view and CSV/JSONL log.

Everything about the model input comes from the model's card: rate, window, hop, channel
count and order, units, normalisation.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import sys
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from edgehar.bridge.flags import is_prediction_log
from edgehar.bridge.ring import Ring
from edgehar.bridge.serial_reader import SerialReader
from edgehar.bridge.smoothing import Smoother
from edgehar.bridge.stream import Assembler, Block
from edgehar.card_io import CARD_FILE
from edgehar.data.plausibility import FirstSeconds, warning_lines
from edgehar.data.resample import unit_factor
from edgehar.errors import UserError
from edgehar.outputs import MARKER, claim_file
from edgehar.runtime import Predictor


@dataclass
class Prediction:
    segment: int  # contiguous stream piece (a long gap or a text-mode reconnect starts a new one)
    start: int  # first sample of the window, in model-rate samples on the stream's index line
    label: int
    probs: np.ndarray
    smoothed: int
    arrival: float  # perf_counter() when the window's last sample arrived
    done: float  # perf_counter() when its prediction was ready

    @property
    def delay(self) -> float:
        return self.done - self.arrival


@dataclass
class LiveStats:
    windows: int = 0
    delays: list[float] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)

    def delay_ms(self) -> dict:
        if not self.delays:
            return {"median": None, "p99": None}
        d = np.asarray(self.delays) * 1e3
        return {"median": round(float(np.median(d)), 3), "p99": round(float(np.percentile(d, 99)), 3)}


class LiveSession:
    """One model listening to one port. `run()` blocks until the duration ends or `stop()`."""

    def __init__(self, port: str, model, baud: int = 115200, protocol: str = "auto",
                 rate: float | None = None, smooth: str = "ema:0.5", backend: str | None = None,
                 threads: int = 1, max_gap: float = 0.25, keep: bool = False):
        self.port = port
        self.smoother = Smoother(smooth)  # check every argument before touching the port
        self.predictor = model if hasattr(model, "predict_proba") else Predictor(model, backend, threads)
        self.card = self.predictor.card
        self.assembler = Assembler(self.card.rate, self.card.window, self.card.hop, max_gap)
        self.ring = Ring(capacity=8192)
        self.reader = SerialReader(port, self.ring, baud, protocol, rate)
        self.stats = LiveStats()
        self.keep = keep
        self.predictions: list[Prediction] = []
        self._stop = threading.Event()
        self._segment = -1
        self._checked: tuple | None = None
        self.notes: list[str] = []  # said once on stderr
        self.stream_check = None  # the first seconds against the declared units and the card

    def stop(self) -> None:
        self._stop.set()

    def run(self, duration: float | None = None, on_prediction=None, on_idle=None) -> LiveStats:
        """Read and predict until `duration` seconds pass or `stop()`; returns the stats."""
        end = None if duration is None else time.perf_counter() + duration
        self.reader.start()
        try:
            while not self._stop.is_set():
                if end is not None and time.perf_counter() >= end:
                    break
                blocks = self.ring.get_all(timeout=0.05)
                if self.reader.failure is not None:
                    raise self.reader.failure
                for block in blocks:
                    for p in self._process(block):
                        if on_prediction:
                            on_prediction(p)
                if on_idle:
                    on_idle()
        finally:
            self.reader.stop()
            self.reader.join(timeout=2)
            if self.stream_check is not None:  # a stream shorter than the check: what came
                self._warn(self.stream_check.finish())
        return self.stats

    def counts(self) -> dict:
        return {**self.reader.stats(), **self.assembler.counts, "windows": self.stats.windows,
                "delay_ms": self.stats.delay_ms(),
                "check": self.stream_check.result if self.stream_check is not None else None}

    # -- one block ----------------------------------------------------------------------------
    def _process(self, block: Block) -> list[Prediction]:
        block.values = self._to_card_channels(block)
        self._check_stream(block)
        windows = self.assembler.push(block)
        if not windows:
            return []
        probs = self.predictor.predict_proba(np.stack([w.data for w in windows]))
        done = time.perf_counter()
        out = []
        for w, p in zip(windows, probs):
            if w.segment != self._segment:
                self._segment = w.segment
                self.smoother.reset()
            smoothed, _ = self.smoother.update(p)
            pred = Prediction(w.segment, w.start, int(np.argmax(p)), p, smoothed, w.arrival, done)
            self.stats.windows += 1
            self.stats.delays.append(pred.delay)
            if self.keep:
                self.predictions.append(pred)
            out.append(pred)
        return out

    def _to_card_channels(self, block: Block) -> np.ndarray:
        """Check the channel count; reorder by declared names and convert declared units."""
        card = self.card
        v = np.asarray(block.values, np.float32)
        key = (v.shape[1], block.channels, block.units)
        if key == self._checked:
            return self._convert(v)
        if v.shape[1] != len(card.channels):
            raise UserError(self.port, f"stream has {v.shape[1]} channels but the model expects "
                                       f"{len(card.channels)} ({', '.join(card.channels)})")
        order = list(range(v.shape[1]))
        if len(block.channels) == v.shape[1] and set(block.channels) == set(card.channels):
            order = [block.channels.index(c) for c in card.channels]
        elif block.channels:
            self._check_channel_names(block.channels)
        factors = np.ones(v.shape[1], np.float32)
        if len(block.units) == v.shape[1]:
            try:
                factors = np.array([unit_factor(block.units[i], u) for i, u in zip(order, card.units)],
                                   np.float32)
            except ValueError as e:
                raise UserError(self.port, f"device units do not fit the model: {e}") from None
        self._order, self._factors, self._checked = order, factors, key
        return self._convert(v)

    def _check_stream(self, block: Block) -> None:
        """Check the stream's first seconds once, in the units it declared (else the card's),
        from the signal: units, gravity, the sign of gravity against the card
        (`edgehar.data.plausibility`); a finding is a warning, the session goes on."""
        if self.stream_check is None:
            declared = ([block.units[i] for i in self._order] if len(block.units) == len(self._order)
                        else list(self.card.units))
            self.stream_check = FirstSeconds(self.card.channels, declared, self.card, fix="device")
        self._warn(self.stream_check.add(block.values / self._factors, block.rate))

    def _warn(self, result: dict | None) -> None:
        for line in warning_lines(result or {}, self.port):
            print(f"edgehar: warning: {line}", file=sys.stderr, flush=True)

    def _check_channel_names(self, declared: tuple[str, ...]) -> None:
        """Declared names that differ from the card's: another sensor is an error (a gyroscope
        feeding an accelerometer model); other names (x,y,z) are taken in order, with a note."""
        card = self.card.channels
        if len(declared) == len(card) and _sensors(declared) and _sensors(card) \
                and _sensors(declared) != _sensors(card):
            raise UserError(self.port, f"the device declares channels {','.join(declared)} but the "
                                       f"model takes {','.join(card)}: another sensor")
        note = (f"the device declares channels {','.join(declared)}, the model takes "
                f"{','.join(card)}: using them in the order sent")
        if note not in self.notes:
            self.notes.append(note)
            print(f"edgehar: {self.port}: {note}", file=sys.stderr, flush=True)

    def _convert(self, v: np.ndarray) -> np.ndarray:
        return v[:, self._order] * self._factors


_SENSOR = re.compile(r"^(acc|gyro|mag|ori|grav|lin_acc|linacc|bvp|eda|temp|ppg)[_ ]?[xyz]?$", re.I)


def _sensors(names) -> set[str]:
    """The sensor kinds of channel names like acc_x, gyro_z; empty when any name is free-form."""
    kinds = set()
    for n in names:
        m = _SENSOR.match(n.strip())
        if not m:
            return set()
        kinds.add(m.group(1).lower())
    return kinds


# -- output -----------------------------------------------------------------------------------
class PredictionLog:
    """Predictions appended to a .csv or JSON-lines (.jsonl, .json) file.

    Rows go to a hidden staging file beside FILE (flushed per row, so a crash keeps them) that
    `close()` renames onto FILE; `discard()` deletes it, so a run that fails before it logs
    anything leaves an existing FILE untouched. A staging file left by a killed run is removed
    by the next run that logs to the same FILE.
    """

    def __init__(self, path, labels: list[str]):
        self.path, self.labels = str(path), labels
        self.jsonl = not self.path.lower().endswith(".csv")
        target = os.path.realpath(self.path)  # write through a symlink, never replace it
        if os.path.exists(target) and not os.path.isfile(target):
            raise UserError(self.path, "exists and is not a regular file (refusing to write onto it)")
        self.target = target
        folder, name = os.path.split(target)
        _remove_stale_staging(folder, name)
        self.staging = os.path.join(folder, f".{name}.{os.getpid()}.part")
        try:
            self.f = open(self.staging, "w", newline="", encoding="utf-8")
        except OSError as e:
            raise UserError(self.path, f"cannot write the log ({e.strerror or e})") from None
        self.rows = 0
        self.t0 = time.time()
        if not self.jsonl:
            self.csv = csv.writer(self.f)
            self.csv.writerow(["time", "segment", "start", "label", "smoothed", "delay_ms",
                               *[f"p_{c}" for c in labels]])

    def write(self, p: Prediction) -> None:
        now = time.time()
        if self.jsonl:
            self.f.write(json.dumps(prediction_json(p, self.labels, now)) + "\n")
        else:
            self.csv.writerow([f"{now:.3f}", p.segment, p.start, self.labels[p.label],
                               self.labels[p.smoothed], f"{p.delay * 1e3:.3f}",
                               *[f"{x:.5f}" for x in p.probs]])
        self.f.flush()
        self.rows += 1

    def close(self) -> None:
        """Close and move the log into place."""
        if self.f.closed:
            return
        self.f.close()
        os.replace(self.staging, self.target)

    def discard(self) -> None:
        """Close and delete the staging file; FILE stays as it was."""
        if self.f.closed:
            return
        self.f.close()
        with contextlib.suppress(OSError):
            os.unlink(self.staging)


def check_log_target(log, model, port) -> None:
    """Refuse, before the model loads or the port opens, a --log that is an input (the model,
    the port), lies inside the model's artifact folder, or is an existing file that is not a
    prediction log."""
    sealed = []
    if model and os.path.isdir(model):
        sealed.append(model)
    elif model:
        folder = os.path.dirname(os.path.abspath(model))
        if os.path.isfile(os.path.join(folder, CARD_FILE)) or os.path.isfile(os.path.join(folder, MARKER)):
            sealed.append(folder)  # a model file of an artifact folder: the folder is read too
    claim_file(log, "live", inputs=[model, port], sealed=sealed, recognise=is_prediction_log,
               kind="a prediction log", flag="--log")


def _remove_stale_staging(folder: str, name: str) -> None:
    """Delete `.NAME.PID.part` files whose process is gone (a run killed with SIGKILL)."""
    prefix = f".{name}."
    try:
        entries = os.listdir(folder or ".")
    except OSError:
        return
    for entry in entries:
        pid = entry[len(prefix):-len(".part")]
        if not (entry.startswith(prefix) and entry.endswith(".part") and pid.isdigit()):
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(folder, entry))
        except OSError:
            pass  # alive, someone else's


def prediction_json(p: Prediction, labels: list[str], now: float | None = None) -> dict:
    return {"time": round(now or time.time(), 3), "segment": p.segment, "start": p.start,
            "label": labels[p.label], "smoothed": labels[p.smoothed],
            "delay_ms": round(p.delay * 1e3, 3),
            "probs": {c: round(float(x), 5) for c, x in zip(labels, p.probs)}}


class TerminalView:
    """A live ANSI panel on a terminal; one line per prediction otherwise (or JSON lines)."""

    BAR = 24

    def __init__(self, session: LiveSession, out=None, json_lines: bool = False):
        self.s = session
        self.out = out or sys.stdout
        self.json = json_lines
        self.tty = self.out.isatty() and not json_lines
        self.last: Prediction | None = None
        self._drawn = 0
        self._next_draw = 0.0

    def prediction(self, p: Prediction) -> None:
        self.last = p
        labels = self.s.card.labels
        if self.json:
            print(json.dumps(prediction_json(p, labels)), file=self.out, flush=True)
        elif not self.tty:
            print(f"{time.perf_counter() - self.s.stats.started:8.2f}s  window {p.start:>7}  "
                  f"{labels[p.label]:<12} p={p.probs[p.label]:.2f}  smoothed {labels[p.smoothed]:<12} "
                  f"delay {p.delay * 1e3:6.2f} ms", file=self.out, flush=True)
        else:
            self.idle()

    def idle(self) -> None:
        if not self.tty or time.perf_counter() < self._next_draw:
            return
        self._next_draw = time.perf_counter() + 0.1
        c = self.s.counts()
        card, d = self.s.card, c["delay_ms"]
        state = "connected" if self.s.reader.connected else "waiting for the device / reconnecting"
        rate = f"{c['rate']:g} Hz" if c["rate"] else "rate ?"
        lines = [f"\x1b[1medgehar live\x1b[0m  {self.s.port}  {state}",
                 f"stream {c['protocol']}  {rate} -> model {card.rate:g} Hz x {len(card.channels)}  "
                 f"windows {c['windows']}  delay median {d['median']} ms  p99 {d['p99']} ms",
                 f"bytes {c['bytes']}  lines {c['lines']}  frames {c['frames']}  garbled {c['garbled']}  "
                 f"dropped {c['dropped']}  out-of-order {c['out_of_order']}  filled {c['filled']}  "
                 f"reconnects {c['reconnects']}  device errors {c['device_errors']}"]
        if self.s.reader.device_errors:
            lines.append(f"last device error: {self.s.reader.device_errors[-1][:70]}")
        if self.last is not None:
            p = self.last
            lines.append(f"now: \x1b[1m{card.labels[p.label]}\x1b[0m   smoothed: "
                         f"\x1b[1m{card.labels[p.smoothed]}\x1b[0m")
            for name, x in zip(card.labels, p.probs):
                n = int(round(float(x) * self.BAR))
                lines.append(f"  {name[:14]:<14} {'#' * n}{'.' * (self.BAR - n)} {x:5.2f}")
        up = f"\x1b[{self._drawn}F" if self._drawn else ""
        self.out.write(up + "".join(f"\x1b[2K{line}\n" for line in lines))
        self.out.write("\x1b[J")
        self.out.flush()
        self._drawn = len(lines)
