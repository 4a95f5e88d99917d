"""HAR-FM: a customizable HAR foundation model (after Qiu et al., IMWUT 2025).

Tokens: the signal is cut into ~200 ms frames (rate/5 samples, the window padded at the end to
a whole number of frames); each sensor stream (acc, gyro, ...) has its own frame encoder per
(dataset, stream), and the stream tokens of one frame are SUMMED into one token. Summing (not
interleaving) keeps one token per 200 ms whatever the sensor set, so a model pre-trained on
acc+gyro still reads acc-only data, and attention costs stay (T/frame)^2.

Backbone: a learned position embedding, then two transformer stacks (paper: d=96, 10 layers x 8
heads x FF 256, then 24 layers x 4 heads x FF 128; "cpu": d=64, 2+2 layers).

Stage A (self-supervised, `pretrain_loss`): span masking replaces masked frame tokens with a
learnable vector; a Gumbel product quantizer (G=6 groups x V=4 entries, temperature annealed
2 -> 0.5) discretises the unmasked frame tokens; loss = contrastive (stack-1 context at each
masked step vs its quantized target, the window's other steps as distractors, wav2vec 2.0) +
0.1 x codebook diversity + masked index prediction (stack 2 predicts the G quantizer indices
of masked steps). Distractors (config "distractors"): "window" (default, wav2vec 2.0) uses
the other steps of the same window; "batch" uses every step of the batch. Measured on HAPT
(cpu config, 3000 steps, benchmarks/results/teachers.md): with "window" the contrastive loss
only falls from 2.56 (chance, 13 steps) to 2.24, since static postures give near-identical
frames; "batch" learns more of the pretext task but its features probe and fine-tune WORSE
(probe 0.851 vs 0.878, fine-tuned 0.921 vs 0.933 macro-F1), so "window" stays the default.

Stage B (multi-task, `finetune_loss`): the quantizer is frozen; loss = index prediction on
all steps + cross-entropy of the task projector (mean-pool + linear) + semantic alignment
(MSE from every step's projected, unit-normalised output to the sentence embedding of
"The status or/and activity of the subject is: <label>.", from `edgehar.text`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from edgehar.data.vocabulary import activity_prompt
from edgehar.models.teacher import Teacher
from edgehar.text import TEXT_DIM, embed_texts

PAPER = ("Xin Qiu et al. Towards customizable foundation models for human activity recognition "
         "with wearable devices. Proc. ACM IMWUT 2025.")

_COMMON = {"groups": 6, "entries": 4, "distractors": "window", "tau_start": 2.0, "tau_end": 0.5, "kappa": 0.1,
           "diversity_weight": 0.1, "index_weight": 1.0, "align_weight": 1.0,
           "mask_start_prob": 0.2, "mask_span": 3, "dropout": 0.1, "dataset": "hapt"}
CONFIGS = {
    "cpu": {"d": 64, "stack1": [2, 4, 128], "stack2": [2, 4, 128], **_COMMON},
    "paper": {"d": 96, "stack1": [10, 8, 256], "stack2": [24, 4, 128], **_COMMON},
    "tiny": {"d": 16, "stack1": [1, 2, 32], "stack2": [1, 2, 32], **_COMMON},  # tests
}
DEFAULT_INPUT = {"channels": ["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"],
                 "window": 128, "rate": 50.0, "streams": {"acc": [0, 1, 2], "gyro": [3, 4, 5]}}


def _stack(d: int, layers: int, heads: int, ff: int, dropout: float) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(d, heads, ff, dropout, activation="gelu", batch_first=True,
                                       norm_first=True)
    return nn.TransformerEncoder(layer, layers, norm=nn.LayerNorm(d), enable_nested_tensor=False)


class FrameEncoder(nn.Module):
    """One stream's frame (frame x axes samples) -> one d-dim token."""

    def __init__(self, frame: int, axes: int, d: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(frame * axes, d), nn.GELU(), nn.Linear(d, d))

    def forward(self, frames):  # (N, L, frame, axes)
        return self.net(frames.flatten(2))


class GumbelProductQuantizer(nn.Module):
    """G groups x V entries; each step picks one entry per group (straight-through Gumbel)."""

    def __init__(self, d: int, groups: int, entries: int):
        super().__init__()
        self.groups, self.entries = groups, entries
        self.code_dim = max(1, d // groups)
        self.logits = nn.Linear(d, groups * entries)
        self.codebook = nn.Parameter(torch.randn(groups * entries, self.code_dim) * 0.5)
        self.out = nn.Linear(groups * self.code_dim, d)

    def group_logits(self, z):  # (N, L, G, V)
        return self.logits(z).unflatten(-1, (self.groups, self.entries))

    def forward(self, z, tau: float, generator=None):
        """(quantized (N,L,d), hard indices (N,L,G), soft probabilities (N,L,G,V))."""
        logits = self.group_logits(z)
        probs = logits.softmax(-1)
        idx = logits.argmax(-1)
        if self.training:
            u = torch.rand(logits.shape, generator=generator).clamp_(1e-9, 1 - 1e-9)
            soft = ((logits - torch.log(-torch.log(u))) / tau).softmax(-1)
            hard = F.one_hot(soft.argmax(-1), self.entries).to(soft.dtype)
            onehot = hard - soft.detach() + soft
            idx = soft.argmax(-1)
        else:
            onehot = F.one_hot(idx, self.entries).to(z.dtype)
        book = self.codebook.view(self.groups, self.entries, self.code_dim)
        codes = torch.einsum("nlgv,gvc->nlgc", onehot, book).flatten(2)
        return self.out(codes), idx, probs

    def diversity(self, probs):
        """wav2vec 2.0 diversity loss: 1 - perplexity / (G V) of the batch-mean code usage."""
        mean = probs.flatten(0, 1).mean(0)  # (G, V)
        perplexity = torch.exp(-(mean * torch.log(mean + 1e-7)).sum(-1)).sum()
        n = self.groups * self.entries
        return (n - perplexity) / n


class HarFM(Teacher):
    family = "harfm"

    def __init__(self, config: dict):
        super().__init__({**DEFAULT_INPUT, **config})
        c = self.config
        d = int(c["d"])
        self.frame = int(c.get("frame") or max(1, round(float(c["rate"]) / 5)))
        self.steps = math.ceil(int(c["window"]) / self.frame)
        self.streams = {k: list(v) for k, v in c["streams"].items()}
        # one encoder per (dataset, stream); key -> stream name kept beside the ModuleDict
        self.stream_of = {f"{c['dataset']}_{k}": k for k in self.streams}
        self.encoders = nn.ModuleDict({key: FrameEncoder(self.frame, len(self.streams[k]), d)
                                       for key, k in self.stream_of.items()})
        self.position = nn.Parameter(torch.randn(1, self.steps, d) * 0.02)
        self.mask_token = nn.Parameter(torch.randn(d) * 0.02)
        self.token_norm = nn.LayerNorm(d)
        self.stack1 = _stack(d, *c["stack1"], c["dropout"])
        self.stack2 = _stack(d, *c["stack2"], c["dropout"])
        self.quantizer = GumbelProductQuantizer(d, int(c["groups"]), int(c["entries"]))
        self.context_proj = nn.Linear(d, d)  # stack-1 context -> contrastive space
        self.index_head = nn.Linear(d, int(c["groups"]) * int(c["entries"]))
        self.text_proj = nn.Linear(d, TEXT_DIM)  # per-step semantic alignment
        self.embed_dim, self.text_dim = d, TEXT_DIM

    # -- tokens -----------------------------------------------------------------------------
    def frame_tokens(self, x):
        """(N, L, d): summed per-stream frame tokens of normalised windows (N, T, C)."""
        pad = self.steps * self.frame - x.shape[1]
        if pad:
            x = F.pad(x, (0, 0, 0, pad))
        frames = x.unflatten(1, (self.steps, self.frame))  # (N, L, frame, C)
        z = 0
        for key, enc in self.encoders.items():
            z = z + enc(frames[..., self.streams[self.stream_of[key]]])
        return z

    def run(self, z):
        """(stack-1 output, stack-2 output) of frame tokens z (N, L, d)."""
        h1 = self.stack1(self.token_norm(z) + self.position)
        return h1, self.stack2(h1)

    def tokens(self, x):
        return self.run(self.frame_tokens(x))[1]

    def probe_features(self, x):
        # stack 1 is the contrastive context (wav2vec 2.0's representation); stack 2 is shaped by
        # masked index prediction. Probes on HAPT (pre-trained vs random weights, macro-F1):
        # stack 1 0.883 vs 0.858 (cpu), 0.871 vs 0.846 (paper); stack 2 0.878 vs 0.874 (cpu),
        # 0.809 vs 0.844 (paper); both concatenated 0.886 vs 0.875 (cpu), 0.867 vs 0.855 (paper).
        return self.run(self.frame_tokens(x))[0].mean(1)

    def text_projection(self, x):
        return F.normalize(F.normalize(self.text_proj(self.tokens(x)), dim=-1).mean(1), dim=-1)

    # -- task ---------------------------------------------------------------------------------
    def set_task(self, n_classes: int, labels=None) -> None:
        """Task projector (mean-pool + linear) and the prompt embeddings of `labels` (stage B)."""
        super().set_task(n_classes, labels)
        label_text = torch.zeros(n_classes, TEXT_DIM)
        if labels is not None:
            label_text = torch.from_numpy(embed_texts([activity_prompt(n) for n in labels]))
        self.register_buffer("label_text", label_text)

    # -- stage A ------------------------------------------------------------------------------
    def span_mask(self, n: int, generator=None) -> torch.Tensor:
        """(n, L) bool: spans of `mask_span` steps from starts drawn with `mask_start_prob`;
        every window gets at least one masked step."""
        c = self.config
        starts = torch.rand(n, self.steps, generator=generator) < float(c["mask_start_prob"])
        forced = torch.randint(0, self.steps, (n,), generator=generator)
        starts[torch.arange(n), forced] = True
        mask = torch.zeros_like(starts)
        for k in range(int(c["mask_span"])):
            mask[:, k:] |= starts[:, :self.steps - k]
        return mask

    def tau(self, step: int, total: int) -> float:
        c = self.config
        frac = min(1.0, step / max(1, total - 1))
        return float(c["tau_start"]) * (float(c["tau_end"]) / float(c["tau_start"])) ** frac

    def pretrain_loss(self, batch):
        c = self.config
        gen = batch.get("generator")
        z = self.frame_tokens(batch["x"])
        n = z.shape[0]
        tau = self.tau(int(batch.get("step", 0)), int(batch.get("total_steps", 1)))
        q, idx, probs = self.quantizer(z, tau, gen)
        mask = self.span_mask(n, gen)
        h1, h2 = self.run(torch.where(mask[..., None], self.mask_token.to(z.dtype), z))
        # contrastive: the context of every masked step against the quantized targets of the
        # steps of its own window ("window", wav2vec 2.0) or of the whole batch ("batch")
        ctx = F.normalize(self.context_proj(h1), dim=-1)
        qn = F.normalize(q, dim=-1)
        if c.get("distractors", "window") == "batch":
            sim = ctx[mask] @ qn.flatten(0, 1).T / float(c["kappa"])  # (M, N L)
            target = torch.arange(n * self.steps).view(n, self.steps)[mask]
        else:
            sim = torch.einsum("nld,nkd->nlk", ctx, qn)[mask] / float(c["kappa"])  # (M, L)
            target = torch.arange(self.steps).expand(n, -1)[mask]
        contrastive = F.cross_entropy(sim, target)
        diversity = self.quantizer.diversity(probs)
        index = self._index_loss(h2[mask], idx[mask].detach())
        loss = contrastive + float(c["diversity_weight"]) * diversity + float(c["index_weight"]) * index
        return loss, {"loss": float(loss.detach()), "contrastive": float(contrastive.detach()),
                      "diversity": float(diversity.detach()), "index": float(index.detach()), "tau": tau}

    def _index_loss(self, h, idx):
        """Mean CE of predicting each group's code index; h (M, d), idx (M, G)."""
        v = int(self.config["entries"])
        return F.cross_entropy(self.index_head(h).view(-1, v), idx.reshape(-1)) if len(h) else h.sum() * 0

    # -- stage B ------------------------------------------------------------------------------
    def finetune_loss(self, x, y, step: int = 0, total_steps: int = 1):
        c = self.config
        z = self.frame_tokens(x)
        with torch.no_grad():  # frozen quantizer: targets only
            idx = self.quantizer.group_logits(z).argmax(-1)
        _, h2 = self.run(z)
        ce = F.cross_entropy(self.head(h2.mean(1)), y)
        index = self._index_loss(h2.flatten(0, 1), idx.flatten(0, 1))
        target = self.label_text[y][:, None, :].expand(-1, self.steps, -1)
        # squared distance of the unit-norm step projection to the unit-norm prompt embedding
        align = (F.normalize(self.text_proj(h2), dim=-1) - target).pow(2).sum(-1).mean()
        loss = ce + float(c["index_weight"]) * index + float(c["align_weight"]) * align
        return loss, {"loss": float(loss.detach()), "ce": float(ce.detach()),
                      "index": float(index.detach()), "align": float(align.detach())}

    def frozen_in_finetune(self) -> list[nn.Parameter]:
        """Stage B keeps the quantizer fixed."""
        return list(self.quantizer.parameters())


def build(arch: dict) -> HarFM:
    return HarFM.from_arch(arch)
