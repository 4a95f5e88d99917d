"""A torch model run on windows: its logits, its deployed one-output form, its scores.

What export, evaluation and training all need of a model, kept out of `edgehar.train` so that
`models/` and `export/` never import the training code.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from edgehar.card import ModelCard
from edgehar.data.windows import Windows
from edgehar.metrics import report


def logits_of(output) -> torch.Tensor:
    """Models may return logits or (logits, embedding, ...): the logits come first."""
    return output[0] if isinstance(output, (tuple, list)) else output


class LogitsOnly(nn.Module):
    """A model seen as its deployed graph: one output, the main-task logits."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return logits_of(self.model(x))


def batches(n: int, batch_size: int, rng: np.random.Generator | None):
    """Index batches over n items, shuffled when `rng` is given."""
    order = rng.permutation(n) if rng is not None else np.arange(n)
    for i in range(0, n, batch_size):
        yield order[i:i + batch_size]


def route_kwargs(route, idx) -> dict:
    """The keyword a routed model (`Teacher.takes_routes`) takes for the windows `idx` of a
    per-window `route` array; none without routes, so any model can be called alike."""
    return {} if route is None else {"route": torch.as_tensor(np.asarray(route)[idx], dtype=torch.long)}


@torch.no_grad()
def predict_logits(model: nn.Module, x: np.ndarray, batch_size: int = 512, route=None,
                   device: torch.device | str | None = None) -> np.ndarray:
    """Logits for already-normalised windows (N, T, C); `route`: a stem per window for a
    routed model (the corpus teacher), None for its default; `device`: where the model is
    (None: the CPU), each batch is copied there."""
    model.eval()
    dev = torch.device(device or "cpu")
    out = [logits_of(model(torch.from_numpy(x[i]).to(dev), **route_kwargs(route, i))).cpu().numpy()
           for i in batches(len(x), batch_size, None)]
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def evaluate(model: nn.Module, w: Windows, card: ModelCard, route=None,
             device: torch.device | str | None = None) -> dict:
    """macro-F1, accuracy and confusion of `model` on the labelled windows of `w` (`route`:
    a stem per window of `w`, for a routed model; `device`: where the model is, None: the CPU)."""
    keep = w.y >= 0
    route = None if route is None else np.asarray(route)[keep]
    w = w.labelled()
    pred = predict_logits(model, card.normalise(w.x), route=route, device=device).argmax(1)
    return report(w.y, pred, card.labels)
