"""Smoothing of successive predictions: majority vote over the last N, or an exponential
moving average (EMA) of the probabilities. Spec strings: `none`, `vote:5`, `ema:0.3`."""

from __future__ import annotations

from collections import Counter, deque

import numpy as np

from edgehar.errors import UserError


class Smoother:
    def __init__(self, spec: str = "ema:0.5"):
        kind, _, arg = (spec or "none").partition(":")
        self.kind = kind
        try:
            if kind == "vote":
                self.n = int(arg or 5)
                if self.n < 1:
                    raise ValueError
                self.recent: deque[int] = deque(maxlen=self.n)
            elif kind == "ema":
                self.alpha = float(arg or 0.5)
                if not 0.0 < self.alpha <= 1.0:
                    raise ValueError
                self.avg: np.ndarray | None = None
            elif kind != "none":
                raise ValueError
        except ValueError:
            raise UserError("--smooth", f"bad smoothing {spec!r} (none, vote:N with N >= 1, "
                                        "ema:A with 0 < A <= 1)") from None

    def reset(self) -> None:
        """Forget the past (a new stream segment)."""
        if self.kind == "vote":
            self.recent.clear()
        elif self.kind == "ema":
            self.avg = None

    def update(self, probs: np.ndarray) -> tuple[int, np.ndarray]:
        """(smoothed label, smoothed probabilities) after one more prediction."""
        probs = np.asarray(probs, np.float32)
        if self.kind == "vote":
            self.recent.append(int(np.argmax(probs)))
            counts = Counter(self.recent)
            top = max(counts.values())
            # ties go to the most recent of the tied labels
            label = next(c for c in reversed(self.recent) if counts[c] == top)
            share = np.bincount(list(self.recent), minlength=len(probs)).astype(np.float32)
            return label, share / share.sum()
        if self.kind == "ema":
            self.avg = probs.copy() if self.avg is None else self.alpha * probs + (1 - self.alpha) * self.avg
            return int(np.argmax(self.avg)), self.avg
        return int(np.argmax(probs)), probs
