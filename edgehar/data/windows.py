"""Sliding windows: Recording -> `Windows` (N x T x C), the unit every model consumes."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from edgehar.data.recording import UNLABELLED, Recording
from edgehar.errors import UserError


@dataclass
class Windows:
    """A stack of equal-length windows with their labels and subjects.

    `y[i] == -1` marks an unlabelled window (kept for self-supervised use).
    """

    x: np.ndarray  # (N, T, C) float32
    y: np.ndarray  # (N,) int64
    subject: np.ndarray  # (N,) int64
    rate: float
    channels: tuple[str, ...]
    units: tuple[str, ...]
    label_names: tuple[str, ...]
    hop: int = 0
    recording: np.ndarray = field(default=None)  # (N,) int index of the source recording
    start: np.ndarray = field(default=None)  # (N,) first sample index in that recording
    canonical_names: tuple[str, ...] = ()  # class k on the activity vocabulary (empty: unknown)

    def __post_init__(self):
        n = len(self.x)
        if self.recording is None:
            self.recording = np.zeros(n, dtype=np.int64)
        if self.start is None:
            self.start = np.zeros(n, dtype=np.int64)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def length(self) -> int:
        return int(self.x.shape[1])

    def take(self, idx) -> "Windows":
        """A subset by index array or boolean mask."""
        return replace(self, x=self.x[idx], y=self.y[idx], subject=self.subject[idx],
                       recording=self.recording[idx], start=self.start[idx])

    def labelled(self) -> "Windows":
        return self.take(self.y >= 0)

    def unlabelled(self) -> "Windows":
        return self.take(self.y < 0)

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.y[self.y >= 0], minlength=len(self.label_names))
        return {name: int(c) for name, c in zip(self.label_names, counts)}

    @staticmethod
    def concat(parts: list["Windows"]) -> "Windows":
        if not parts:
            raise ValueError("no windows to concatenate")
        first = parts[0]
        return replace(first, x=np.concatenate([p.x for p in parts]),
                       y=np.concatenate([p.y for p in parts]),
                       subject=np.concatenate([p.subject for p in parts]),
                       recording=np.concatenate([p.recording for p in parts]),
                       start=np.concatenate([p.start for p in parts]))


def window_starts(n_samples: int, length: int, hop: int) -> np.ndarray:
    """Start indices of every full window of `length` samples stepping by `hop`."""
    if n_samples < length:
        return np.zeros(0, dtype=np.int64)
    return np.arange(0, n_samples - length + 1, hop, dtype=np.int64)


def window_label(labels: np.ndarray, n_classes: int, purity: float) -> int:
    """Majority label of one window, or -1 if fewer than `purity` of its samples carry it."""
    known = labels[labels >= 0]
    if len(known) == 0:
        return UNLABELLED
    counts = np.bincount(known, minlength=n_classes)
    best = int(np.argmax(counts))
    return best if counts[best] >= purity * len(labels) else UNLABELLED


def window_labels(rec: Recording, length: int, hop: int, purity: float = 0.8) -> np.ndarray:
    """The label of each window `make_windows` cuts from `rec` (-1: unlabelled), without
    cutting the samples (what a summary counts)."""
    st = window_starts(rec.n_samples, length, hop)
    if rec.labels is None:
        return np.full(len(st), UNLABELLED, dtype=np.int64)
    return np.array([window_label(rec.labels[s:s + length], len(rec.label_names), purity)
                     for s in st], dtype=np.int64)


def make_windows(recordings: list[Recording], length: int, hop: int, purity: float = 0.8,
                 keep_label: set[int] | None = None) -> Windows:
    """Cut every recording into windows of `length` samples every `hop` samples.

    A window takes its majority label when at least `purity` of its samples carry it, and is
    unlabelled (-1) otherwise; `keep_label`, if given, turns every other label into -1 (so e.g.
    postural transitions become unlabelled data for self-supervised use).
    """
    if not recordings:
        raise ValueError("no recordings to window")
    first = recordings[0]
    xs, ys, subs, recs, starts = [], [], [], [], []
    for r_i, rec in enumerate(recordings):
        if rec.rate != first.rate or rec.channels != first.channels:
            raise ValueError(f"{rec.source or rec.name}: rate/channels differ from the first recording;"
                             " resample and select channels first")
        st = window_starts(rec.n_samples, length, hop)
        if len(st) == 0:
            continue
        idx = st[:, None] + np.arange(length)[None, :]
        xs.append(rec.data[idx])
        y = window_labels(rec, length, hop, purity)
        if keep_label is not None:
            y = np.where(np.isin(y, list(keep_label)), y, UNLABELLED)
        ys.append(y)
        subs.append(np.full(len(st), rec.subject, dtype=np.int64))
        recs.append(np.full(len(st), r_i, dtype=np.int64))
        starts.append(st)
    if not xs:  # a window longer than the data: the user's --window or data, not a bug
        longest = max(recordings, key=lambda r: r.n_samples)
        raise UserError(longest.source or None, f"every recording is shorter than one window of {length} "
                        f"samples (the longest has {longest.n_samples} at {longest.rate:g} Hz)")
    return Windows(x=np.concatenate(xs).astype(np.float32), y=np.concatenate(ys),
                   subject=np.concatenate(subs), rate=first.rate, channels=first.channels,
                   units=first.units, label_names=first.label_names, hop=hop,
                   recording=np.concatenate(recs), start=np.concatenate(starts),
                   canonical_names=tuple(first.canonical_names))
