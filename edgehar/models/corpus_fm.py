"""HAR-FM for heterogeneous data: an input encoder per source (data set x placement) over one
shared backbone, trained on a pooled corpus (`edgehar.data.corpus`).

HAR-FM's paper builds an encoder per (data set, modality) so that devices with other axes,
ranges and placements meet one backbone in a common space. Here each corpus source gets a
conv stem; one more, the *generic* stem, is trained on every source (encoder dropout: a window
goes through it instead of its own with probability `generic_p`) and is what a device the
corpus never saw (Bangle.js) and distillation's unlabelled windows use by default.

It pre-trains through `edgehar.train.pretrain.pretrain` like every family; `pretrain_loss`
picks its stage from the step (the first `reconstruction_fraction` of the steps):
Stage A (self-supervised, every window, unlabelled included): masked-span reconstruction.
Stage B (multi-task, labelled windows only: `pretrain_pool`): a head per source data set on its
own labels, a head on the canonical classes (the deployed task), and semantic alignment of
every window to its canonical label's text (all-MiniLM prompt embedding, `label_text`),
CLIP-style over the label set. The batch carries each window's `source` (index into
`config["sources"]`) and `source_label` (its data set's own class, -1 unlabelled); `y` is the
canonical class.

Routes are data: `tokens`, `features`, `forward` and `text_projection` take `route`, a long
tensor of stem indices per window (`route_for` maps source names to them; `generic_stem` is the
generic one), or None: every window through the generic stem.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from edgehar.data.vocabulary import activity_prompt
from edgehar.models.teacher import Teacher
from edgehar.text import TEXT_DIM, embed_texts

DEFAULTS = {"width": 48, "dim": 128, "generic_p": 0.3, "mask_ratio": 0.25, "mask_span": 10,
            "reconstruction_fraction": 0.2, "augment": True}
CONFIGS = {"cpu": {}}  # one size; `edgehar.recipes.family_config` fills in the input format


def conv_bn(c_in: int, c_out: int, k: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv1d(c_in, c_out, k, stride, padding=k // 2, bias=False),
                         nn.BatchNorm1d(c_out), nn.ReLU())


def augment(x: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
    """Random per-channel scale and jitter (no rotation: WISDM's sitting vs standing is
    orientation)."""
    scale = 1 + 0.1 * torch.randn(len(x), 1, x.shape[2], generator=gen, device=x.device)
    return x * scale + 0.02 * torch.randn(x.shape, generator=gen, device=x.device)


class CorpusFM(Teacher):
    family = "corpus_fm"
    phases = ("masked reconstruction", "multi-task + text")
    takes_routes = True
    pretrains_task = True

    def __init__(self, config: dict):
        config = {**DEFAULTS, **config}
        if "in_channels" not in config:
            config["in_channels"] = len(config["channels"])
        if "n_canonical" not in config:
            config["n_canonical"] = len(config["labels"])
        super().__init__(config)
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

    # -- routes -----------------------------------------------------------------------------
    @property
    def generic_stem(self) -> int:
        return len(self.config["sources"])

    def route_for(self, source_names, source) -> torch.Tensor:
        """Stem index of each window whose source is `source_names[source[i]]` (a corpus
        part's `sources` and `source`): its own stem when this teacher has one for that data
        set, else the generic stem."""
        own = list(self.config["sources"])
        stem = [own.index(n) if n in own else self.generic_stem for n in source_names]
        return torch.as_tensor(stem, dtype=torch.long)[torch.as_tensor(source, dtype=torch.long)]

    def stem_out(self, x: torch.Tensor, route: torch.Tensor | None = None) -> torch.Tensor:
        xt = x.transpose(1, 2)
        if route is None:
            return self.stems[-1](xt)
        route = route.to(x.device)
        out = None
        for s in route.unique().tolist():
            m = route == s
            h = self.stems[s](xt[m])
            out = h.new_zeros(len(x), *h.shape[1:]) if out is None else out
            out[m] = h
        return out

    # -- embeddings and outputs ---------------------------------------------------------------
    def tokens(self, x: torch.Tensor, route: torch.Tensor | None = None) -> torch.Tensor:
        return self.backbone(self.stem_out(x, route)).transpose(1, 2)

    def features(self, x: torch.Tensor, route: torch.Tensor | None = None) -> torch.Tensor:
        return self.tokens(x, route).mean(dim=1)

    def forward(self, x: torch.Tensor, route: torch.Tensor | None = None) -> torch.Tensor:
        if self.head is None:
            return super().forward(x)  # the one-line "no task head" error
        return self.head(self.features(x, route))

    def text_projection(self, x: torch.Tensor, route: torch.Tensor | None = None) -> torch.Tensor:
        return self.text(self.features(x, route))

    def set_task(self, n_classes: int, labels=None) -> None:
        """The canonical head; with `labels` (a new task), `label_text` holds their prompts'
        embeddings, which stage B aligns windows to."""
        super().set_task(n_classes, labels)
        if labels is not None:
            self.config["n_canonical"] = len(labels)
            emb = embed_texts([activity_prompt(n) for n in labels])
            self.label_text = torch.from_numpy(emb).to(self.label_text)

    # -- pre-training -------------------------------------------------------------------------
    def reconstruction_steps(self, total_steps: int) -> int:
        return int(total_steps * float(self.config["reconstruction_fraction"]) + 1e-9)

    def pretrain_phase(self, step: int, total_steps: int) -> int:
        return 0 if step < self.reconstruction_steps(total_steps) else 1

    def pretrain_pool(self, step: int, total_steps: int) -> str:
        return "all" if self.pretrain_phase(step, total_steps) == 0 else "labelled"

    def pretrain_loss(self, batch: dict) -> tuple[torch.Tensor, dict]:
        """Stage A or B by the step; each window through the generic stem with probability
        `generic_p`, else through its own source's (`batch["source"]`)."""
        x, gen = batch["x"], batch.get("generator")
        phase = self.pretrain_phase(int(batch["step"]), int(batch["total_steps"]))
        if self.config["augment"]:
            x = augment(x, gen)
        source = batch["source"]
        generic = torch.rand(len(x), generator=gen, device=x.device) < float(self.config["generic_p"])
        route = torch.where(generic, self.generic_stem, source)
        if phase == 0:
            loss, parts = self.reconstruction_loss(x, gen, route), {}
        else:
            loss, parts = self.multitask_loss(x, batch["y"], batch["source_label"], source, route)
        return loss, {"phase": phase, **parts}

    def reconstruction_loss(self, x: torch.Tensor, gen: torch.Generator | None = None,
                            route: torch.Tensor | None = None) -> torch.Tensor:
        """Masked spans (zeroed) reconstructed; the loss counts masked samples only."""
        n, t, _ = x.shape
        span = int(self.config["mask_span"])
        starts = torch.rand(n, t // span, generator=gen, device=x.device) < self.config["mask_ratio"]
        mask = starts.repeat_interleave(span, 1)[:, :t]
        mask = F.pad(mask, (0, t - mask.shape[1]))[:, :, None]
        rec = self.decoder(self.backbone(self.stem_out(x * ~mask, route))).transpose(1, 2)[:, :t]
        return ((rec - x) ** 2 * mask).sum() / mask.sum().clamp(min=1) / x.shape[2]

    def multitask_loss(self, x, canon, source_label, source, route=None) -> tuple[torch.Tensor, dict]:
        """`canon`: canonical class (-1 none); `source_label`: the source data set's own class
        (-1 none); `source`: index into `config["sources"]` (its head); `route`: the stems."""
        f = self.features(x, route)
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
