"""RelCon teacher (Xu et al., ICLR 2025): relative contrastive learning with a learned distance.

Two phases inside one `pretrain_loss`, switched by the step counter:
1. distance phase (the first `distance_fraction` of the steps): a cross-attention network learns
   to rebuild an anchor window from an augmented copy of it (queries from the masked anchor,
   keys/values from the candidate, dilated convolutions, sparsemax attention, the output mapped
   back with the candidate's RevIN statistics);
   its reconstruction error is the distance d(anchor, candidate).
2. encoder phase: the distance network is frozen; a 1-D pre-activation ResNet is trained with
   the relative contrastive loss: every candidate is a positive in turn, and every candidate
   farther from the anchor by the learned distance is one of its negatives. Candidates are the
   other windows of the batch, which `pretrain` draws as groups of `same_subject` windows of one
   subject (`windows_per_subject`): each anchor meets windows of its own subject from other
   times and windows of other subjects.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from edgehar.models import teacher
from edgehar.models.augment import default_positions, random_augment, sensor_positions
from edgehar.models.teacher import Teacher

# A CPU-sized default (trains in minutes) and the paper's ResNet-34-like encoder (256-d).
# `projection`: width of the MLP the relative loss reads (0: the loss reads the pooled embedding
# itself); without it the encoder reproduces the learned distance's ranking almost exactly
# (Spearman 0.97) and its embedding collapses to a few directions, which a linear probe pays for.
_COMMON = {"mask_fraction": 0.25, "mask_span": 8, "temperature": 0.1, "distance_fraction": 0.3,
           "augmentations": 2, "stem_kernel": 7, "same_subject": 8, "view_candidate": False}
CONFIGS = {
    "tiny": {"widths": [8, 16], "blocks": [1, 1], "dist_dim": 16, "dist_dilations": [1, 2],
             "dist_stride": 4, "projection": 16, **_COMMON},  # tests
    "cpu": {"widths": [16, 32, 64], "blocks": [1, 1, 1], "dist_dim": 32, "dist_dilations": [1, 2, 4],
            "dist_stride": 4, "projection": 128, **_COMMON},
    # paper: ResNet-34-like stages 3/4/6 at 64/128/256 channels, distance attention per sample
    "paper": {"widths": [64, 128, 256], "blocks": [3, 4, 6], "dist_dim": 64,
              "dist_dilations": [1, 2, 4, 8], "dist_stride": 1, "projection": 256, **_COMMON},
}


def sparsemax(z: torch.Tensor, dim: int = -1, topk: int | None = None) -> torch.Tensor:
    """Euclidean projection of `z` onto the probability simplex (Martins & Astudillo, 2016).

    Like softmax it sums to 1 along `dim`, but entries below a data-dependent threshold are exactly
    0, so each reconstructed time step draws on a few candidate motifs only. With `topk`, the
    threshold is found from the `topk` largest scores (much cheaper than a full sort); it is
    exact whenever the support is smaller than `topk`, and falls back to the full sort otherwise.
    """
    z = z.transpose(dim, -1)
    z = z - z.max(dim=-1, keepdim=True).values  # shift-invariant; keeps the cumsum small
    n = z.shape[-1]
    partial = topk is not None and topk < n
    zs = z.topk(topk, dim=-1).values if partial else z.sort(dim=-1, descending=True).values
    k = torch.arange(1, zs.shape[-1] + 1, device=z.device, dtype=z.dtype)
    cums = zs.cumsum(-1)
    support = (1 + k * zs) > cums  # true for exactly the first k(z) sorted entries
    k_z = support.sum(-1, keepdim=True)
    tau = (cums.gather(-1, k_z - 1) - 1) / k_z.to(z.dtype)
    if partial:
        wide = (k_z == topk)[..., 0]  # rows whose support may reach past the top-k
        if bool(wide.any()):
            full = z[wide].sort(dim=-1, descending=True).values
            cums_w = full.cumsum(-1)
            k_w = ((1 + k.new_tensor(range(1, n + 1)) * full) > cums_w).sum(-1, keepdim=True)
            tau = tau.clone()
            tau[wide] = (cums_w.gather(-1, k_w - 1) - 1) / k_w.to(z.dtype)
    return (z - tau).clamp_min(0).transpose(dim, -1)


# -- encoder: 1-D pre-activation ResNet ------------------------------------------------------
class PreActBlock(nn.Module):
    """BN-ReLU-conv-BN-ReLU-conv with an identity (or 1x1 projection) shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.bn1, self.bn2 = nn.BatchNorm1d(c_in), nn.BatchNorm1d(c_out)
        self.conv1 = nn.Conv1d(c_in, c_out, 3, stride, 1, bias=False)
        self.conv2 = nn.Conv1d(c_out, c_out, 3, 1, 1, bias=False)
        self.shortcut = (nn.Conv1d(c_in, c_out, 1, stride, bias=False)
                         if stride != 1 or c_in != c_out else None)

    def forward(self, x):
        h = F.relu(self.bn1(x))
        skip = self.shortcut(h) if self.shortcut is not None else x
        h = self.conv1(h)
        h = self.conv2(F.relu(self.bn2(h)))
        return h + skip


class ResNet1d(nn.Module):
    """Stem conv, stages of pre-activation blocks (stride 2 from the second stage), final BN
    (then ReLU with `out_relu`; without it embeddings can point anywhere, which a cosine
    similarity needs to push windows apart)."""

    def __init__(self, in_channels: int, widths, blocks, stem_kernel: int = 7, out_relu: bool = True):
        super().__init__()
        self.stem = nn.Conv1d(in_channels, widths[0], stem_kernel, 1, stem_kernel // 2, bias=False)
        layers, c = [], widths[0]
        for s, (w, n) in enumerate(zip(widths, blocks)):
            for b in range(n):
                layers.append(PreActBlock(c, w, 2 if (s > 0 and b == 0) else 1))
                c = w
        self.blocks = nn.Sequential(*layers)
        self.bn = nn.BatchNorm1d(c)
        self.out_relu = out_relu
        self.out_channels = c

    def forward(self, x):  # (B, T, C) -> (B, T', D)
        h = self.bn(self.blocks(self.stem(x.transpose(1, 2))))
        return (F.relu(h) if self.out_relu else h).transpose(1, 2)


# -- learned distance: cross-attention reconstruction ----------------------------------------
class DilatedConvStack(nn.Module):
    """A patch conv (`stride` samples per step) then residual dilated convs: a motif embedding
    per step."""

    def __init__(self, c_in: int, dim: int, dilations, stride: int = 1):
        super().__init__()
        self.inp = nn.Conv1d(c_in, dim, stride, stride)
        self.convs = nn.ModuleList(nn.Conv1d(dim, dim, 3, padding=d, dilation=d) for d in dilations)

    def forward(self, x):  # (B, T, C) -> (B, T / stride, D)
        h = self.inp(x.transpose(1, 2))
        for conv in self.convs:
            h = h + conv(F.gelu(h))
        return h.transpose(1, 2)


class ReconstructionDistance(nn.Module):
    """d(anchor, candidate): error of rebuilding the anchor from the candidate's motifs.

    Both windows are instance-normalised (RevIN); the reconstruction, a sparse mix of the
    candidate's values, is mapped back with the *candidate's* mean and scale, so a candidate of
    another intensity or offset cannot rebuild the anchor well.
    """

    def __init__(self, in_channels: int, dim: int, dilations, mask_fraction: float, mask_span: int,
                 stride: int = 1):
        super().__init__()
        # attention runs over steps of `stride` samples: B^2 (T/stride)^2 scores per batch
        self.stride = int(stride)
        self.query = DilatedConvStack(in_channels + 1, dim, dilations, stride)  # + the mask flag
        self.key = DilatedConvStack(in_channels, dim, dilations, stride)
        self.value = DilatedConvStack(in_channels, dim, dilations, stride)
        self.out = nn.Linear(dim, in_channels * stride)  # every step rebuilds `stride` samples
        self.mask_fraction, self.mask_span = mask_fraction, mask_span
        self.topk = 16  # sparsemax fast path; exact (see `sparsemax`)

    def mask(self, shape, generator=None) -> torch.Tensor:
        """(B, T) bool, True on hidden samples: random spans covering ~mask_fraction of T."""
        b, t = shape
        span = max(1, min(self.mask_span, t))
        n_spans = max(1, round(self.mask_fraction * t / span))
        starts = torch.randint(0, t - span + 1, (b, n_spans), generator=generator)
        idx = (starts[:, :, None] + torch.arange(span)).reshape(b, -1)
        return torch.zeros(b, t, dtype=torch.bool).scatter_(1, idx, True)

    @staticmethod
    def stats(x: torch.Tensor):
        """Per-window, per-channel mean and std (reversible instance normalisation)."""
        return x.mean(-2, keepdim=True), x.std(-2, keepdim=True).clamp_min(1e-3)

    def pad(self, x):
        """Zero-pad the time axis (B, T, C) to a whole number of steps."""
        extra = -x.shape[1] % self.stride
        return F.pad(x, (0, 0, 0, extra)) if extra else x

    def encode_anchor(self, anchor, hidden):
        """Queries from the anchor with its hidden spans blanked (motif context only there)."""
        mean, std = self.stats(anchor)
        a = ((anchor - mean) / std).masked_fill(hidden[:, :, None], 0.0)
        return self.query(self.pad(torch.cat([a, hidden[:, :, None].to(a.dtype)], dim=-1)))

    def encode_candidate(self, candidate):
        mean, std = self.stats(candidate)
        c = self.pad((candidate - mean) / std)
        return self.key(c), self.value(c), mean, std

    def rebuild(self, q, k, v, mean, std):
        """Anchor rebuilt from candidate keys/values, in the candidate's units (RevIN inverse);
        (..., steps * stride, C), the padding included."""
        attn = sparsemax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1, topk=self.topk)
        r = self.out(attn @ v)  # (..., steps, stride * C)
        r = r.unflatten(-1, (self.stride, -1)).flatten(-3, -2)
        return r * std + mean

    @staticmethod
    def error(recon, anchor):
        """Mean squared error in the (card-normalised) input units, padding ignored. Not divided
        by the anchor's own spread: a still window's tiny std would blow its error up and
        swamp the distance network's training."""
        return ((recon[..., :anchor.shape[-2], :] - anchor) ** 2).mean(dim=(-1, -2))

    def pair_loss(self, anchor, candidate, hidden) -> torch.Tensor:
        """(B,) reconstruction error of each anchor from its own candidate."""
        q = self.encode_anchor(anchor, hidden)
        return self.error(self.rebuild(q, *self.encode_candidate(candidate)), anchor)

    @torch.no_grad()
    def matrix(self, anchors, candidates, generator=None, chunk: int = 16) -> torch.Tensor:
        """(A, C) distances from every anchor to every candidate (one mask per anchor)."""
        q = self.encode_anchor(anchors, self.mask(anchors.shape[:2], generator))  # (A, L, D)
        k, v, mean, std = self.encode_candidate(candidates)  # (C, L, D), (C, 1, ch)
        rows = []
        for i in range(0, len(anchors), chunk):
            recon = self.rebuild(q[i:i + chunk, None], k[None], v[None], mean[None], std[None])
            rows.append(self.error(recon, anchors[i:i + chunk, None]))  # (a, C)
        return torch.cat(rows)


def relative_contrastive_loss(sim: torch.Tensor, dist: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean over anchors i and candidates p of -log(e^s_ip / (e^s_ip + sum_{n: d_in > d_ip} e^s_in)).

    `sim` (A, C) similarities already divided by the temperature, `dist` (A, C) learned distances,
    `valid` (A, C) which candidates exist (the anchor itself is not its own candidate). Pairs
    whose candidate is the farthest have no negatives and add nothing.
    """
    neg = (dist[:, None, :] > dist[:, :, None]) & valid[:, None, :] & valid[:, :, None]  # (A, P, N)
    s_neg = sim[:, None, :].expand_as(neg).masked_fill(~neg, float("-inf"))
    denom = torch.logsumexp(torch.cat([sim[:, :, None], s_neg], dim=2), dim=2)
    terms = denom - sim  # -log softmax of the positive
    use = valid & neg.any(2)
    return (terms * use).sum() / use.sum().clamp_min(1)


class RelCon(Teacher):
    """1-D ResNet encoder + frozen learned distance; see the module docstring."""

    family = "relcon"
    phases = ("distance", "relcon")

    def __init__(self, config: dict):
        super().__init__(full_config(config))
        cfg = self.config
        c = int(cfg["in_channels"])
        self.encoder = ResNet1d(c, cfg["widths"], cfg["blocks"], cfg["stem_kernel"], cfg.get("out_relu", True))
        self.embed_dim = self.encoder.out_channels
        self.distance = ReconstructionDistance(c, cfg["dist_dim"], cfg["dist_dilations"],
                                               cfg["mask_fraction"], cfg["mask_span"], cfg["dist_stride"])
        channels = cfg.get("channels")
        self.positions = sensor_positions(channels) if channels else default_positions(c)
        # optional MLP between the pooled embedding and the loss (SimCLR's projection head): the
        # loss shapes its output, `features` stays the richer pooled embedding before it
        width = int(cfg.get("projection") or 0)
        self.projector = (nn.Sequential(nn.Linear(self.embed_dim, width), nn.ReLU(), nn.Linear(width, width))
                          if width else nn.Identity())

    # -- representation ----------------------------------------------------------------------
    def tokens(self, x):
        return self.encoder(x)

    def features(self, x):
        return self.encoder(x).mean(1)

    def frozen_in_finetune(self):
        """The learned distance and the projection only serve pre-training."""
        return list(self.distance.parameters()) + list(self.projector.parameters())

    # -- pretraining -------------------------------------------------------------------------
    def distance_steps(self, total_steps: int) -> int:
        """Steps spent training the distance network before the encoder phase starts."""
        return int(round(self.config["distance_fraction"] * total_steps))

    def augment(self, x, generator=None):
        return random_augment(x, generator, n=self.config["augmentations"], positions=self.positions)

    def windows_per_subject(self) -> int:
        return int(self.config["same_subject"])

    def pretrain_loss(self, batch: dict):
        x, gen = batch["x"], batch.get("generator")
        in_distance_phase = batch["step"] < self.distance_steps(batch["total_steps"])
        self.distance.requires_grad_(in_distance_phase)
        self.encoder.requires_grad_(not in_distance_phase)
        self.projector.requires_grad_(not in_distance_phase)
        if in_distance_phase:
            view = self.augment(x, gen)
            hidden = self.distance.mask(x.shape[:2], gen)
            loss = self.distance.pair_loss(x, view, hidden).mean()
            return loss, {"phase": 0.0, "recon": loss.item()}
        # candidates: every other window of the batch (same subject at other times, other
        # subjects); `view_candidate` adds the anchor's augmented copy
        n = len(x)
        dist = self.distance.matrix(x, x, gen)  # (B, B)
        inputs = x
        if self.config["view_candidate"]:
            view = self.augment(x, gen)
            with torch.no_grad():
                d_view = self.distance.pair_loss(x, view, self.distance.mask(x.shape[:2], gen))
            dist = torch.cat([dist, d_view[:, None]], dim=1)
            inputs = torch.cat([x, view])
        z = F.normalize(self.projector(self.features(inputs)), dim=1)
        za = z[:n]
        sim = za @ z[:n].T
        if self.config["view_candidate"]:
            sim = torch.cat([sim, (za * z[n:]).sum(1, keepdim=True)], dim=1)
        valid = torch.ones_like(dist, dtype=torch.bool)
        valid[:, :n] &= ~torch.eye(n, dtype=torch.bool)  # the anchor is not its own candidate
        loss = relative_contrastive_loss(sim / self.config["temperature"], dist, valid)
        return loss, {"phase": 1.0, "relcon": loss.item()}


def full_config(config: dict) -> dict:
    """`config` over its named size (`CONFIGS`, default "cpu") and the default HAPT input."""
    return teacher.full_config("relcon", CONFIGS, config)


def default_config(size: str = "cpu", *, channels, rate: float, window: int, **overrides) -> dict:
    """A full config for windows of `window` samples of `channels` at `rate` Hz."""
    return full_config(teacher.input_config(size, channels, rate, window, **overrides))


def build(arch: dict) -> RelCon:
    """RelCon teacher from a card's `arch` (`{"name": "relcon", "config": {...}}`)."""
    return RelCon.from_arch(arch)
