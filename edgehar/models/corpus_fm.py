"""HAR-FM for heterogeneous data: an input encoder per source (data set x placement) over one
shared backbone, trained on a pooled corpus (`edgehar.data.corpus`).

HAR-FM's paper builds an encoder per (data set, modality) so that devices with other axes,
ranges and placements meet one backbone in a common space. Here each corpus source gets a
conv stem; one more, the *generic* stem, is trained on every source (encoder dropout: a window
goes through it instead of its own with probability `generic_p`) and is what a device the
corpus never saw (Bangle.js) and distillation's unlabelled windows use by default.

Stage A (self-supervised, every window, unlabelled included): masked-span reconstruction.
Stage B (multi-task): a head per source data set on its own labels, a head on the canonical
classes (the deployed task), and semantic alignment of every window to its canonical label's
text (all-MiniLM prompt embedding, `label_text`), CLIP-style over the label set.

`route` (a long tensor of source indices per window, or None = generic) selects the stems.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from edgehar.models.teacher import Teacher
from edgehar.text import TEXT_DIM

DEFAULTS = {"width": 48, "dim": 128, "generic_p": 0.3, "mask_ratio": 0.25, "mask_span": 10}


def conv_bn(c_in: int, c_out: int, k: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv1d(c_in, c_out, k, stride, padding=k // 2, bias=False),
                         nn.BatchNorm1d(c_out), nn.ReLU())


class CorpusFM(Teacher):
    family = "corpus_fm"
    phases = ("masked reconstruction", "multi-task + text")

    def __init__(self, config: dict):
        super().__init__({**DEFAULTS, **config})
        c = self.config
        n_in, w, d = int(c["in_channels"]), int(c["width"]), int(c["dim"])
        self.stems = nn.ModuleList(conv_bn(n_in, w, 5) for _ in range(len(c["sources"]) + 1))
        self.backbone = nn.Sequential(conv_bn(w, w, 5, 2), conv_bn(w, 96, 5, 2), conv_bn(96, d, 3),
                                      conv_bn(d, d, 3))
        self.decoder = nn.Sequential(nn.Upsample(scale_factor=4), nn.Conv1d(d, n_in, 5, padding=2))
        self.source_heads = nn.ModuleList(nn.Linear(d, int(n)) for n in c["source_classes"])
        self.text = nn.Linear(d, TEXT_DIM)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        self.register_buffer("label_text", torch.zeros(int(c["n_canonical"]), TEXT_DIM))
        self.embed_dim, self.text_dim = d, TEXT_DIM
        self.route: torch.Tensor | None = None

    def stem_out(self, x: torch.Tensor) -> torch.Tensor:
        xt = x.transpose(1, 2)
        if self.route is None:
            return self.stems[-1](xt)
        out = None
        for s in self.route.unique().tolist():
            m = self.route == s
            h = self.stems[s](xt[m])
            out = h.new_zeros(len(x), *h.shape[1:]) if out is None else out
            out[m] = h
        return out

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(self.stem_out(x)).transpose(1, 2)

    def text_projection(self, x: torch.Tensor) -> torch.Tensor:
        return self.text(self.features(x))

    def reconstruction_loss(self, x: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
        """Masked spans (zeroed) reconstructed; the loss counts masked samples only."""
        n, t, _ = x.shape
        span = int(self.config["mask_span"])
        starts = torch.rand(n, t // span, generator=gen) < self.config["mask_ratio"]
        mask = starts.repeat_interleave(span, 1)[:, :t]
        mask = F.pad(mask, (0, t - mask.shape[1]))[:, :, None]
        rec = self.decoder(self.backbone(self.stem_out(x * ~mask))).transpose(1, 2)[:, :t]
        return ((rec - x) ** 2 * mask).sum() / mask.sum().clamp(min=1) / x.shape[2]

    def multitask_loss(self, x, canon, source_label, source) -> tuple[torch.Tensor, dict]:
        f = self.features(x)
        parts = {}
        lab = canon >= 0
        if lab.any():
            parts["canonical"] = F.cross_entropy(self.head(f[lab]), canon[lab])
            z = F.normalize(self.text(f[lab]), dim=1)
            logits = self.logit_scale.exp().clamp(max=100) * z @ F.normalize(self.label_text, dim=1).T
            parts["text"] = F.cross_entropy(logits, canon[lab])
        per_source = []
        for s in source.unique().tolist():
            m = (source == s) & (source_label >= 0)
            if m.any():
                per_source.append(F.cross_entropy(self.source_heads[s](f[m]), source_label[m], reduction="sum"))
        if per_source:
            parts["sources"] = torch.stack(per_source).sum() / max(1, int((source_label >= 0).sum()))
        loss = sum(parts.values()) if parts else f.sum() * 0
        return loss, {k: float(v.detach()) for k, v in parts.items()}


def build(arch: dict) -> CorpusFM:
    return CorpusFM.from_arch(arch)
