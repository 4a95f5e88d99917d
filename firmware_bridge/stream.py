"""From a live sample stream to model windows: gap handling, resampling, sliding windows.

- `Assembler` turns sample blocks (from the text or frame protocol) into contiguous
  *segments*: a frame-mode gap known from device timestamps is filled by linear interpolation
  when short (`max_gap` seconds), and starts a new segment when longer; a reconnect in text
  mode (no timestamps) starts a new segment.
- `StreamResampler` is `scipy.signal.resample_poly` (the offline resampler) computed causally,
  sample by sample: in steady state it gives the same output as the offline call.
- `Windower` cuts each segment into windows of `window` samples every `hop` samples from the
  segment's first sample, exactly like offline windowing of that segment.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edgehar.data.resample import rate_ratio


@dataclass
class Block:
    """Consecutive samples from the reader, as the ring carries them."""

    values: np.ndarray  # (n, C) float32, device units
    rate: float  # device Hz
    arrival: float  # time.perf_counter() when the bytes holding the last sample arrived
    index: int | None = None  # device sample index of the first sample (frame mode)
    connection: int = 0  # reader's connection count (a change = reconnect)
    channels: tuple[str, ...] = ()  # names, when the device declared them
    units: tuple[str, ...] = ()


class StreamResampler:
    """Causal polyphase resampler, equal to `resample_poly(x, up, down)` away from the start.

    Indices before the first sample take the first sample's value (offline pads with a line;
    only the first ~10 output samples can differ).
    """

    def __init__(self, source: float, target: float):
        self.up, self.down = rate_ratio(source, target)
        g = math.gcd(self.up, self.down)
        self.up, self.down = self.up // g, self.down // g
        self.identity = self.up == self.down
        if self.identity:
            return
        from scipy.signal import firwin  # 0.6 s to import: only when a rate really changes

        max_rate = max(self.up, self.down)
        half_len = 10 * max_rate
        h = firwin(2 * half_len + 1, 1.0 / max_rate, window=("kaiser", 5.0)) * self.up
        n_pre_pad = self.down - half_len % self.down
        h = np.concatenate([np.zeros(n_pre_pad), h])
        self.n_pre_remove = (half_len + n_pre_pad) // self.down
        self.phases = [h[r::self.up][::-1].copy() for r in range(self.up)]  # reversed taps
        self.hist_len = max(len(p) for p in self.phases)
        self.buf: np.ndarray | None = None  # inputs from index `base`
        self.base = 0
        self.n_in = 0
        self.m = 0  # next output index

    def push(self, x: np.ndarray) -> np.ndarray:
        """Feed (n, C) samples, get the (k, C) output samples that became computable."""
        x = np.asarray(x, dtype=np.float64)
        if self.identity:
            return x.astype(np.float32)
        if self.buf is None:
            # pad the past with the first sample, so the filter starts without a step from 0
            self.buf = np.repeat(x[:1], self.hist_len, axis=0)
            self.base = -self.hist_len
        self.buf = np.concatenate([self.buf, x])
        self.n_in += len(x)
        out = []
        while True:
            j = (self.m + self.n_pre_remove) * self.down
            last = j // self.up
            if last >= self.n_in:
                break
            taps = self.phases[j % self.up]
            lo = last - len(taps) + 1 - self.base
            out.append(taps @ self.buf[lo:lo + len(taps)])
            self.m += 1
        # keep only what the next outputs can still need
        keep_from = ((self.m + self.n_pre_remove) * self.down) // self.up - self.hist_len
        if keep_from > self.base:
            self.buf = self.buf[keep_from - self.base:]
            self.base = keep_from
        if not out:
            return np.zeros((0, x.shape[1]), np.float32)
        return np.asarray(out, dtype=np.float32)


@dataclass
class Window:
    segment: int
    start: int  # index of the first sample, in model-rate samples, on the stream's index line
    data: np.ndarray  # (window, C) float32
    arrival: float  # when the sample that completed it arrived


class Windower:
    """Sliding windows of one segment: starts at the segment's first sample, every `hop`."""

    def __init__(self, window: int, hop: int, segment: int = 0, first_index: int = 0):
        self.window, self.hop = window, hop
        self.segment, self.first_index = segment, first_index
        self.buf: np.ndarray | None = None
        self.buf_start = 0  # segment-relative index of buf[0]
        self.next_start = 0  # segment-relative start of the next window

    def push(self, x: np.ndarray, arrival: float) -> list[Window]:
        if len(x) == 0:
            return []
        self.buf = x if self.buf is None else np.concatenate([self.buf, x])
        out = []
        while self.next_start + self.window <= self.buf_start + len(self.buf):
            lo = self.next_start - self.buf_start
            out.append(Window(self.segment, self.first_index + self.next_start,
                              self.buf[lo:lo + self.window].copy(), arrival))
            self.next_start += self.hop
        drop = self.next_start - self.buf_start
        if drop > 0:
            self.buf = self.buf[drop:]
            self.buf_start += drop
        return out


class Assembler:
    """Blocks -> windows at the model's rate, handling gaps, reconnects and resampling."""

    def __init__(self, rate: float, window: int, hop: int, max_gap: float = 0.25):
        self.rate, self.window, self.hop, self.max_gap = float(rate), window, hop, max_gap
        self.counts = {"samples": 0, "filled": 0, "segments": 0, "overlap": 0}
        self.segment = -1
        self._device_rate = None
        self._next_index: int | None = None  # device index expected next
        self._connection = None
        self._last = None  # last sample (for gap interpolation)
        self._produced_from = 0  # model-rate index of the current segment's first sample
        self._produced = 0  # model-rate samples produced in the current segment

    def _new_segment(self, block: Block, index: int | None) -> None:
        self.segment += 1
        self.counts["segments"] += 1
        self._device_rate = block.rate
        self._resampler = StreamResampler(block.rate, self.rate)
        if index is not None:  # device timestamps: keep the device's index line
            first = int(round(index * self.rate / block.rate))
        else:  # text mode: segments follow each other on one index line
            first = self._produced_from + self._produced
        self._windower = Windower(self.window, self.hop, self.segment, first)
        self._produced_from = first
        self._produced = 0

    def push(self, block: Block) -> list[Window]:
        v = np.asarray(block.values, np.float32)
        if len(v) == 0:
            return []
        gap = 0
        new = self.segment < 0 or block.rate != self._device_rate
        if block.index is not None and self._next_index is not None and not new:
            gap = block.index - self._next_index
            if gap < 0:  # overlaps what we placed already: keep only the new part
                self.counts["overlap"] += min(-gap, len(v))
                v = v[-gap:]
                if len(v) == 0:
                    return []
                gap = 0
            elif gap > self.max_gap * block.rate:
                new = True
        elif block.index is None and block.connection != self._connection:
            new = True
        self._connection = block.connection
        if new:
            self._new_segment(block, block.index)
        elif gap > 0:  # short hole in a timestamped stream: bridge it linearly
            t = np.arange(1, gap + 1, dtype=np.float32)[:, None] / (gap + 1)
            v = np.concatenate([self._last + t * (v[:1] - self._last), v])
            self.counts["filled"] += gap
        self.counts["samples"] += len(v)
        self._last = v[-1:].copy()
        if block.index is not None:
            self._next_index = block.index + len(block.values)
        y = self._resampler.push(v)
        self._produced += len(y)
        return self._windower.push(y, block.arrival)
