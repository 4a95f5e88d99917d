"""SelfPAB teacher (Logacjov et al., 2024): masked reconstruction of STFT spectrogram tokens.

Each channel's window becomes a magnitude spectrogram (1 s Hann frames every 0.5 s); one token
per frame concatenates all channels' frequency bins, normalised per cell by data-set statistics.
A transformer encoder rebuilds the altered cells (TERA-style): time spans of frames are zeroed
(80%), swapped with other frames of the window (10%) or kept (10%), and frequency bands are
zeroed; the loss is L1 on the altered cells only. Downstream (`LayerMixHead`, which replaces the
default head): a learned softmax-weighted sum of every layer's output, mean-pooled, then an MLP;
`features` (probes, distillation) is that weighted sum.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from edgehar.models import teacher
from edgehar.models.teacher import Teacher

_ALTER = {"frame_seconds": 1.0, "hop_seconds": 0.5, "time_fraction": 0.15, "freq_fraction": 0.2,
          "freq_width": 3}
CONFIGS = {
    "tiny": {"d_model": 32, "layers": 2, "heads": 2, "ff": 64, "dropout": 0.0, "time_span": 1,
             "head_hidden": 32, **_ALTER},  # tests
    # 2.56 s windows hold 6 frames: one altered frame per window
    "cpu": {"d_model": 64, "layers": 2, "heads": 4, "ff": 128, "dropout": 0.1, "time_span": 1,
            "head_hidden": 64, **_ALTER},
    # the published upstream model (4 layers, d 1500, 6 heads, FF 2048; spans of 3 frames),
    # pre-trained there on 5-minute windows
    "paper": {"d_model": 1500, "layers": 4, "heads": 6, "ff": 2048, "dropout": 0.1, "time_span": 3,
              "head_hidden": 512, **_ALTER},
}


class Spectrogram(nn.Module):
    """(B, T, C) windows -> (B, frames, C * bins) STFT magnitudes, channel-major per token."""

    def __init__(self, rate: float, frame_seconds: float, hop_seconds: float):
        super().__init__()
        self.n_fft = max(2, int(round(rate * frame_seconds)))
        self.hop = max(1, int(round(rate * hop_seconds)))
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)
        self.bins = self.n_fft // 2 + 1

    def frames(self, t: int) -> int:
        return t // self.hop + 1  # center=True framing

    def forward(self, x):
        b, t, c = x.shape
        s = torch.stft(x.transpose(1, 2).reshape(b * c, t), self.n_fft, self.hop, window=self.window,
                       center=True, pad_mode="reflect" if t > self.n_fft // 2 else "constant",
                       return_complex=True).abs()  # (B*C, bins, frames)
        return s.reshape(b, c, self.bins, -1).permute(0, 3, 1, 2).flatten(2)


def sinusoid(n: int, d: int) -> torch.Tensor:
    """(n, d) fixed sinusoidal position codes."""
    pos = torch.arange(n, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10000.0) / d))
    pe = torch.zeros(n, d)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div)[:, : d // 2]
    return pe


def alter(spec: torch.Tensor, generator, time_fraction: float, time_span: int, freq_fraction: float,
          freq_width: int, bins: int, channels: int):
    """TERA-style alteration of (B, L, C*bins) tokens -> (altered input, mask of altered cells).

    Time: spans of `time_span` frames covering ~`time_fraction` of the frames, each zeroed (80%),
    swapped with another span of the window (10%) or kept (10%). Frequency: bands of `freq_width`
    bins covering ~`freq_fraction` of the bins, zeroed in every frame and channel."""
    b, n, f = spec.shape
    out = spec.clone()
    cells = torch.zeros(b, n, f, dtype=torch.bool)
    span = max(1, min(time_span, n))
    n_spans = max(1, round(time_fraction * n / span))
    for i in range(b):
        for _ in range(n_spans):
            s = int(torch.randint(0, n - span + 1, (1,), generator=generator))
            sl = slice(s, s + span)
            cells[i, sl] = True
            u = float(torch.rand(1, generator=generator))
            if u < 0.8:
                out[i, sl] = 0.0
            elif u < 0.9:  # swap with another span of the same window
                o = int(torch.randint(0, n - span + 1, (1,), generator=generator))
                out[i, sl] = spec[i, o:o + span]
            # else: keep as is (still predicted, so the model cannot trust unaltered frames)
        width = max(1, min(freq_width, bins))
        band = torch.zeros(channels, bins, dtype=torch.bool)
        for _ in range(round(freq_fraction * bins / width)):
            lo = int(torch.randint(0, bins - width + 1, (1,), generator=generator))
            band[:, lo:lo + width] = True  # the same physical band in every channel
        band = band.flatten()
        out[i, :, band] = 0.0
        cells[i, :, band] = True
    return out, cells


class LayerMixHead(nn.Module):
    """SelfPAB's downstream head: a learned softmax-weighted sum of the hidden states (input
    embedding + every layer), mean over tokens, then an MLP. It lives in the head, so a linear
    probe (frozen backbone) still learns which layers to read."""

    def __init__(self, n_states: int, d: int, hidden: int, n_classes: int, dropout: float):
        super().__init__()
        self.layer_weights = nn.Parameter(torch.zeros(n_states))
        self.mlp = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, n_classes))

    def pool(self, states):  # (S, B, n, d) -> (B, d)
        w = torch.softmax(self.layer_weights, 0)
        return (w[:, None, None, None] * states).sum(0).mean(1)

    def forward(self, states):
        return self.mlp(self.pool(states))


class SelfPAB(Teacher):
    """Spectrogram-token transformer pretrained by masked reconstruction; see module docstring."""

    family = "selfpab"

    def __init__(self, config: dict):
        super().__init__(full_config(config))
        cfg = self.config
        c, d = int(cfg["in_channels"]), int(cfg["d_model"])
        self.spec = Spectrogram(float(cfg["rate"]), cfg["frame_seconds"], cfg["hop_seconds"])
        self.n_channels, token_dim = c, c * self.spec.bins
        # data-set mean/std of every spectrogram cell, as the paper normalises its STFT features
        # (also the reconstruction target's scale): preprocessing fitted on the pre-training
        # windows (`fit_statistics`), not weights
        self.register_buffer("spec_mean", torch.zeros(token_dim))
        self.register_buffer("spec_std", torch.ones(token_dim))
        self.inp = nn.Sequential(nn.Linear(token_dim, d), nn.LayerNorm(d))
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(d, cfg["heads"], cfg["ff"], cfg["dropout"], activation="gelu",
                                       batch_first=True, norm_first=True) for _ in range(cfg["layers"]))
        self.norm = nn.LayerNorm(d)
        self.reconstruct = nn.Linear(d, token_dim)
        self.embed_dim = d

    # -- representation ----------------------------------------------------------------------
    def hidden_states(self, spec):
        """[embedding, layer 1, ..., layer L] of (B, frames, d)."""
        h = self.inp(spec) + sinusoid(spec.shape[1], self.embed_dim).to(spec)
        states = [h]
        for layer in self.layers:
            h = layer(h)
            states.append(h)
        states[-1] = self.norm(h)
        return states

    def spectrogram(self, x):
        """Normalised spectrogram tokens (B, frames, C * bins)."""
        return (self.spec(x) - self.spec_mean) / self.spec_std

    @torch.no_grad()
    def fit_statistics(self, x, batch: int = 1024) -> None:
        """Mean and std of every spectrogram cell over all frames of windows x (N, T, C)."""
        x = torch.as_tensor(x)
        total, total_sq, n = 0.0, 0.0, 0
        for i in range(0, len(x), batch):
            s = self.spec(x[i:i + batch]).flatten(0, 1).double()
            total, total_sq, n = total + s.sum(0), total_sq + (s * s).sum(0), n + len(s)
        mean = total / n
        self.spec_mean.copy_(mean)
        self.spec_std.copy_((total_sq / n - mean * mean).clamp_min(0).sqrt().clamp_min(1e-6))

    def states(self, x):
        return torch.stack(self.hidden_states(self.spectrogram(x)))  # (L+1, B, n, d)

    def tokens(self, x):
        return self.hidden_states(self.spectrogram(x))[-1]

    def features(self, x):
        """The downstream representation: the head's learned weighted sum of every layer's
        output, mean-pooled; before a task exists, the sum with the head's initial (equal)
        weights. (A masked-reconstruction model's last layer alone specialises in rebuilding
        spectrogram cells.)"""
        if isinstance(self.head, LayerMixHead):
            return self.head.pool(self.states(x))
        return self.states(x).mean(0).mean(1)

    # -- downstream head: overrides the default ---------------------------------------------
    def make_head(self, n_classes: int) -> nn.Module:
        c = self.config
        return LayerMixHead(c["layers"] + 1, self.embed_dim, c["head_hidden"], n_classes, c["dropout"])

    def forward(self, x):
        if self.head is None:
            return super().forward(x)  # raises the "no task head" error
        return self.head(self.states(x))

    # -- pretraining -------------------------------------------------------------------------
    def pretrain_loss(self, batch: dict):
        spec = self.spectrogram(batch["x"]).detach()  # the target: no gradient into it
        c = self.config
        altered, cells = alter(spec, batch.get("generator"), c["time_fraction"], c["time_span"],
                               c["freq_fraction"], c["freq_width"], self.spec.bins, self.n_channels)
        recon = self.reconstruct(self.hidden_states(altered)[-1])
        loss = (recon - spec).abs()[cells].mean()
        return loss, {"l1_altered": loss.item(), "altered_fraction": cells.float().mean().item()}


def full_config(config: dict) -> dict:
    """`config` over its named size (`CONFIGS`, default "cpu") and the default HAPT input."""
    return teacher.full_config("selfpab", CONFIGS, config)


def default_config(size: str = "cpu", *, channels, rate: float, window: int, **overrides) -> dict:
    """A full config for windows of `window` samples of `channels` at `rate` Hz."""
    return full_config(teacher.input_config(size, channels, rate, window, **overrides))


def build(arch: dict) -> SelfPAB:
    """SelfPAB teacher from a card's `arch` (`{"name": "selfpab", "config": {...}}`)."""
    return SelfPAB.from_arch(arch)
