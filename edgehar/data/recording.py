"""`Recording`: one continuous stream of sensor samples, the first object of the flow."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

UNLABELLED = -1
# Highest sample rate the kit accepts anywhere (flags, files, devices): wearable IMUs stream at
# up to a few kHz; above this a rate is a unit mistake or garbage.
MAX_RATE_HZ = 10_000.0


@dataclass
class Recording:
    """Samples x channels at a fixed rate, with names, units and optional per-sample labels.

    `labels[i]` indexes `label_names`, or is `UNLABELLED` (-1) where no label was given.
    `canonical_names[k]` is class k on the activity vocabulary (`vocabulary.py`; empty: not
    mapped). `placement` (wrist, left arm, waist...), `device` and `dataset` say where the
    samples come from.
    """

    data: np.ndarray  # (samples, channels) float32
    rate: float  # Hz
    channels: tuple[str, ...]
    units: tuple[str, ...]
    subject: int = 0
    labels: np.ndarray | None = None  # (samples,) int64, -1 = unlabelled
    label_names: tuple[str, ...] = ()
    name: str = ""
    source: str = ""  # file the samples came from
    start_time: float | None = None  # POSIX seconds of the first sample, if known
    meta: dict = field(default_factory=dict)
    placement: str = ""
    device: str = ""
    dataset: str = ""
    canonical_names: tuple[str, ...] = ()

    def __post_init__(self):
        self.data = np.asarray(self.data, dtype=np.float32)
        if self.data.ndim != 2:
            raise ValueError(f"Recording.data must be 2-D (samples, channels), got {self.data.shape}")
        self.channels = tuple(self.channels)
        self.units = tuple(self.units)
        if len(self.channels) != self.data.shape[1] or len(self.units) != self.data.shape[1]:
            raise ValueError(
                f"{len(self.channels)} channel names and {len(self.units)} units "
                f"for {self.data.shape[1]} channels"
            )
        if self.labels is not None:
            self.labels = np.asarray(self.labels, dtype=np.int64)
            if self.labels.shape != (self.data.shape[0],):
                raise ValueError(f"labels shape {self.labels.shape} != ({self.data.shape[0]},)")
        self.label_names = tuple(self.label_names)
        self.canonical_names = tuple(self.canonical_names)

    @property
    def n_samples(self) -> int:
        return int(self.data.shape[0])

    @property
    def seconds(self) -> float:
        return self.n_samples / self.rate

    def select(self, channels: list[str] | tuple[str, ...]) -> "Recording":
        """A copy holding only `channels`, in that order."""
        missing = [c for c in channels if c not in self.channels]
        if missing:
            raise ValueError(f"channels {missing} not in recording ({', '.join(self.channels)})")
        idx = [self.channels.index(c) for c in channels]
        return replace(self, data=self.data[:, idx], channels=tuple(channels),
                       units=tuple(self.units[i] for i in idx))

    def with_data(self, data: np.ndarray, **changes) -> "Recording":
        """A copy with new samples (and any other field changed)."""
        return replace(self, data=data, **changes)
