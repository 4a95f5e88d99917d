"""Lightweight supervised baselines, the floor every student must beat.

All take card-normalised windows (N, T, C) and return logits (N, classes); `build(arch)` picks
the family by `arch["name"]` and reads `arch["config"]` (`in_channels`, `n_classes`, `window`
plus the family's own sizes).

- `cnn`: a plain 3-layer 1-D CNN (conv-BN-ReLU x3, max-pool after the first two, global
  average pool, linear). ~32.5k params, ~1.4 M MACs at 128 x 6.
- `ignatov`: Ignatov (2018), "Real-time human activity recognition from accelerometer data
  using Convolutional Neural Networks" (Applied Soft Computing 62): one wide-kernel temporal
  convolution over all channels, max-pool, flatten, concatenated with per-window statistical
  features, a dense layer, softmax. Sized like the STM32 model zoo's "ign" (24 filters of 16,
  pool 3, dense 12) rather than the paper's 196 filters / 1024 units. The statistics are the
  paper's mean, standard deviation, mean absolute deviation per channel and mean magnitude
  per 3-axis sensor, computed inside the model and standardised by a BatchNorm (the paper
  standardises them with data-set statistics); its 10-bin histograms are left out: their
  data-dependent bins are not differentiable and do not quantise.
- `tinyhar`: TinyHAR (Zhou et al., ISWC 2022): per-channel temporal convolutions shared across
  channels (4 layers, kernel 5, every second one stride 2), cross-channel interaction by a
  transformer layer over the channel tokens at each time step, cross-channel fusion by a
  fully-connected layer, an LSTM over time, temporal attention aggregation added to the last
  step, linear. Configuration of the paper's code: 20 filters, transformer 4 heads x 16.
- `tinyhar_tflm`: TinyHAR with the changes a full-int8 TFLite-Micro graph needs, the sizes and
  the structure kept: conv-BN-ReLU (the BN folds into the conv; TinyHAR normalises after the
  ReLU), BatchNorm over the token features instead of LayerNorm (folds into the next linear
  layer: TFLM has no LAYER_NORM), ReLU instead of GELU (TFLM has no int8 GELU). The LSTM stays;
  the export unrolls it into fully-connected, logistic, tanh, mul and add ops
  (`edgehar.export.baseline_mirror`), since the runner has no UNIDIRECTIONAL_SEQUENCE_LSTM. A
  separate family, trained from scratch: TinyHAR's own checkpoints stay as they are.

Every family but `tinyhar` exports full-int8 (`edgehar export BASELINE.pt --int8`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from edgehar.errors import UserError
from edgehar.models.student import ChannelNorm

DEFAULTS = {
    "cnn": {"channels": [32, 64, 64], "kernel": 5, "dropout": 0.1},
    "ignatov": {"filters": 24, "kernel": 16, "pool": 3, "hidden": 12, "dropout": 0.5},
    "tinyhar": {"filters": 20, "conv_layers": 4, "kernel": 5, "heads": 4, "head_dim": 16,
                "mlp_dim": 16, "dropout": 0.1},
    "tinyhar_tflm": {"filters": 20, "conv_layers": 4, "kernel": 5, "heads": 4, "head_dim": 16,
                     "mlp_dim": 16, "dropout": 0.1},
}
# families with a full-int8 export (edgehar.export.baseline_mirror)
INT8_EXPORTABLE = ("cnn", "ignatov", "tinyhar_tflm")


class PlainCNN(nn.Module):
    """conv-BN-ReLU (-max-pool) x 3 -> global average pool -> dropout -> linear."""

    def __init__(self, in_channels: int, n_classes: int, channels=(32, 64, 64), kernel: int = 5,
                 dropout: float = 0.1):
        super().__init__()
        layers, c_in = [], in_channels
        for i, c_out in enumerate(channels):
            layers += [nn.Conv1d(c_in, c_out, kernel, padding=kernel // 2, bias=False),
                       nn.BatchNorm1d(c_out), nn.ReLU()]
            if i < len(channels) - 1:
                layers.append(nn.MaxPool1d(2))
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(c_in, n_classes)

    def embed(self, x):
        """Pooled features (N, channels[-1])."""
        return self.features(x.transpose(1, 2)).mean(-1)

    def forward(self, x):
        return self.classifier(self.dropout(self.embed(x)))


def window_statistics(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Ignatov's per-window statistics of (N, T, C): mean, std, mean |x - mean| per channel,
    and the mean magnitude of each of the first `groups` 3-channel sensors."""
    mean = x.mean(1)
    centred = x - mean[:, None]
    std = torch.sqrt(centred.pow(2).mean(1) + 1e-8)
    mad = centred.abs().mean(1)
    feats = [mean, std, mad]
    if groups:
        xyz = x[:, :, :3 * groups].reshape(x.shape[0], x.shape[1], groups, 3)
        feats.append(torch.sqrt(xyz.pow(2).sum(-1) + 1e-8).mean(1))
    return torch.cat(feats, 1)


class IgnatovCNN(nn.Module):
    """conv(k=16) -> ReLU -> max-pool -> flatten ++ BN(statistics) -> dense -> dropout -> linear."""

    def __init__(self, in_channels: int, n_classes: int, window: int, filters: int = 24,
                 kernel: int = 16, pool: int = 3, hidden: int = 12, dropout: float = 0.5):
        super().__init__()
        if window < kernel + pool - 1:
            raise ValueError(f"window {window} is shorter than kernel {kernel} + pool {pool} - 1")
        self.conv = nn.Conv1d(in_channels, filters, kernel)
        self.pool = nn.MaxPool1d(pool)
        self.groups = in_channels // 3
        n_stats = 3 * in_channels + self.groups
        self.stats_norm = nn.BatchNorm1d(n_stats)
        flat = (window - kernel + 1) // pool * filters
        self.hidden = nn.Linear(flat + n_stats, hidden)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden, n_classes)

    def forward(self, x):
        h = self.pool(F.relu(self.conv(x.transpose(1, 2)))).flatten(1)
        stats = self.stats_norm(window_statistics(x, self.groups))
        h = F.relu(self.hidden(torch.cat([h, stats], 1)))
        return self.classifier(self.dropout(h))


class ChannelTransformer(nn.Module):
    """One pre-norm transformer layer over channel tokens (TinyHAR's cross-channel interaction);
    `tflm`: BatchNorm over the token features and a ReLU feed-forward (see the module doc)."""

    def __init__(self, dim: int, heads: int, head_dim: int, mlp_dim: int, dropout: float, tflm: bool = False):
        super().__init__()
        inner = heads * head_dim
        self.heads, self.head_dim = heads, head_dim
        norm = ChannelNorm if tflm else nn.LayerNorm
        self.norm1 = norm(dim)
        self.qkv = nn.Linear(dim, 3 * inner, bias=False)
        self.out = nn.Linear(inner, dim)
        self.norm2 = norm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, mlp_dim), nn.ReLU() if tflm else nn.GELU(), nn.Dropout(dropout),
                                nn.Linear(mlp_dim, dim), nn.Dropout(dropout))
        self.drop = nn.Dropout(dropout)

    def forward(self, x):  # (B, tokens, dim)
        b, n, _ = x.shape
        q, k, v = (t.reshape(b, n, self.heads, self.head_dim).transpose(1, 2)
                   for t in self.qkv(self.norm1(x)).chunk(3, dim=-1))
        att = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(self.head_dim), dim=-1)
        x = x + self.drop(self.out((att @ v).transpose(1, 2).reshape(b, n, -1)))
        return x + self.ff(self.norm2(x))


class TemporalAttention(nn.Module):
    """Attention-weighted sum over time, added (scaled by a learned gamma, init 0) to the last step."""

    def __init__(self, dim: int):
        super().__init__()
        self.score = nn.Sequential(nn.Linear(dim, dim), nn.Tanh(), nn.Linear(dim, 1, bias=False))
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x):  # (B, L, dim)
        weights = torch.softmax(self.score(x), dim=1)
        return x[:, -1] + self.gamma * (weights * x).sum(1)


class TinyHAR(nn.Module):
    """Per-channel convs -> channel transformer -> FC fusion -> LSTM -> temporal attention -> linear."""

    tflm = False  # TinyHARTFLM: the variant a full-int8 TFLite-Micro graph can hold

    def __init__(self, in_channels: int, n_classes: int, window: int, filters: int = 20,
                 conv_layers: int = 4, kernel: int = 5, heads: int = 4, head_dim: int = 16,
                 mlp_dim: int = 16, dropout: float = 0.1):
        super().__init__()
        convs, c_in, length = [], 1, window
        for i in range(conv_layers):
            stride = 2 if i % 2 == 1 else 1
            # (kernel, 1) kernels: each sensor channel is filtered alone, with shared weights
            if self.tflm:
                layer = [nn.Conv2d(c_in, filters, (kernel, 1), (stride, 1), bias=False),
                         nn.BatchNorm2d(filters), nn.ReLU()]
            else:
                layer = [nn.Conv2d(c_in, filters, (kernel, 1), (stride, 1)), nn.ReLU(), nn.BatchNorm2d(filters)]
            convs.append(nn.Sequential(*layer))
            c_in, length = filters, (length - kernel) // stride + 1
        if length < 1:
            raise ValueError(f"window {window} is too short for {conv_layers} convolutions of {kernel}")
        self.convs = nn.Sequential(*convs)
        self.interaction = ChannelTransformer(filters, heads, head_dim, mlp_dim, dropout, tflm=self.tflm)
        self.dropout = nn.Dropout(dropout)
        hidden = 2 * filters
        self.fusion = nn.Linear(in_channels * filters, hidden)
        self.lstm = nn.LSTM(hidden, hidden, batch_first=True)
        self.aggregate = TemporalAttention(hidden)
        self.classifier = nn.Linear(hidden, n_classes)

    def embed(self, x):
        """The aggregated temporal feature (N, 2 * filters)."""
        h = self.convs(x.unsqueeze(1))  # (B, F, L, C)
        b, f, length, c = h.shape
        tokens = h.permute(0, 2, 3, 1).reshape(b * length, c, f)  # channel tokens per time step
        h = self.dropout(self.interaction(tokens)).reshape(b, length, c * f)
        h, _ = self.lstm(F.relu(self.fusion(h)))
        return self.aggregate(h)

    def forward(self, x):
        return self.classifier(self.embed(x))


class TinyHARTFLM(TinyHAR):
    """TinyHAR with conv-BN-ReLU, BatchNorm token norms and a ReLU feed-forward (module doc)."""

    tflm = True


def build(arch: dict) -> nn.Module:
    """Registry entry for the families "cnn", "ignatov", "tinyhar" and "tinyhar_tflm"."""
    name = arch.get("name")
    if name not in DEFAULTS:
        raise UserError(name, f"not a baseline family (known: {', '.join(DEFAULTS)})")
    cfg = {**DEFAULTS[name], **arch.get("config", {})}
    try:
        common = {"in_channels": int(cfg.pop("in_channels")), "n_classes": int(cfg.pop("n_classes"))}
        window = int(cfg.pop("window", 128))
    except KeyError as e:
        raise UserError(name, f"baseline config lacks {e.args[0]!r}") from None
    if name == "cnn":
        return PlainCNN(**common, **cfg)
    if name == "ignatov":
        return IgnatovCNN(**common, window=window, **cfg)
    return (TinyHARTFLM if name == "tinyhar_tflm" else TinyHAR)(**common, window=window, **cfg)


def arch_for(name: str, in_channels: int, n_classes: int, window: int, **overrides) -> dict:
    """A complete `arch` dict (defaults filled in) for a model card."""
    if name not in DEFAULTS:
        raise UserError(name, f"not a baseline family (known: {', '.join(DEFAULTS)})")
    return {"name": name, "config": {**DEFAULTS[name], "in_channels": in_channels,
                                     "n_classes": n_classes, "window": window, **overrides}}
