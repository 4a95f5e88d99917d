"""The teacher interface every foundation-model family implements (harfm, relcon, selfpab,
language), and the checkpoint helpers that make a teacher travel with its model card.

A teacher is an `nn.Module` that
- pre-trains itself: `pretrain_loss(batch) -> (loss, logs)`;
- embeds windows: `tokens(x) -> (N, L, D)` and `features(x) -> (N, D)` (the pooled embedding
  probes and distillation read), `embed_dim = D`;
- classifies after `set_task(n_classes)`: `forward(x) -> logits`;
- optionally maps windows into a sentence-embedding space: `text_dim`, `text_projection(x)`.

`x` is always card-normalised float32 (N, T, C). `config` holds everything `build` needs,
including `n_classes` once a task head exists, so `build(card.arch)` recreates exactly the
modules a checkpoint holds and the weights reload strictly and bit-exactly.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from edgehar.card import ModelCard, provenance
from edgehar.checkpoint import load_checkpoint, load_weights, save_checkpoint
from edgehar.data.normalise import channel_stats
from edgehar.data.vocabulary import activity_prompt
from edgehar.errors import UserError
from edgehar.models import build_from_card

# The input every family defaults to: HAPT's waist phone, acc + gyro at 50 Hz, 2.56 s windows.
DEFAULT_INPUT = {"channels": ["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"],
                 "window": 128, "rate": 50.0}


def full_config(family: str, configs: dict, config: dict) -> dict:
    """`config` over its named size (one of the family's `configs`, default "cpu") and the
    default HAPT input; `in_channels` without channel names means unnamed channels
    (consecutive x/y/z triples of one sensor)."""
    size = config.get("size", "cpu")
    if size not in configs:
        raise ValueError(f"unknown {family} size {size!r} (known: {', '.join(configs)})")
    cfg = {"size": size, **DEFAULT_INPUT, **configs[size], **config}
    if "channels" not in config and "in_channels" in config:
        cfg["channels"] = None
    if "in_channels" not in cfg:
        cfg["in_channels"] = len(cfg["channels"])
    if cfg["channels"] is not None and len(cfg["channels"]) != int(cfg["in_channels"]):
        raise ValueError(f"{len(cfg['channels'])} channel names for in_channels={cfg['in_channels']}")
    return cfg


def input_config(size: str, channels, rate: float, window: int, **overrides) -> dict:
    """The config items naming a size and an input of `window` samples of `channels` at `rate` Hz."""
    return {"size": size, "channels": [str(c) for c in channels], "rate": float(rate),
            "window": int(window), **overrides}


class Teacher(nn.Module):
    """Base class of the teacher families. Subclasses build their modules in `__init__`
    (after `super().__init__(config)`), set `embed_dim`, and implement `pretrain_loss` and
    `tokens`; `build(arch)` of a family module should return `Family.from_arch(arch)`."""

    family = "teacher"  # the registry name (edgehar.models.FAMILIES)

    def __init__(self, config: dict):
        super().__init__()
        self.config = copy.deepcopy(dict(config))
        self.embed_dim: int = 0
        self.text_dim: int | None = None  # set by text-aligned families
        self.head: nn.Module | None = None

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def from_arch(cls, arch: dict) -> "Teacher":
        """Rebuild from a card's arch dict, task head included when `n_classes` is set."""
        model = cls(arch.get("config", {}))
        n_classes = model.config.get("n_classes")
        if n_classes:
            model.set_task(int(n_classes))
        return model

    @property
    def arch(self) -> dict:
        return {"name": self.family, "config": copy.deepcopy(self.config)}

    # -- self-supervised pre-training -----------------------------------------------------
    phases: tuple[str, ...] = ("pretrain",)  # names of `logs["phase"]` 0, 1, ... if a family has stages

    def normalisation(self, windows) -> tuple[list[float], list[float]]:
        """(mean, std) per channel the card normalises this teacher's input with; computed on
        pre-training windows. Default: each channel's own mean and std."""
        return channel_stats(windows)

    def fit_statistics(self, x: torch.Tensor) -> None:
        """Fit data statistics that are part of the input pipeline, not weights (SelfPAB: the
        mean/std of every spectrogram cell), on normalised pre-training windows (N, T, C);
        `pretrain` calls it first. None by default."""

    def pretrain_pool(self, step: int, total_steps: int) -> str:
        """The windows step `step` draws its batch from: "all" (unlabelled ones included) or
        "labelled" (a stage that learns from labels, like the corpus teacher's multi-task one)."""
        return "all"

    pretrains_task = False  # True: pre-training trains the task head too (`set_task` before it)
    takes_routes = False  # True: `tokens`/`features`/`forward` take `route=`, a stem per window

    def windows_per_subject(self) -> int:
        """Pre-training batches are drawn as groups of this many windows of one subject when
        > 1 (families whose loss compares windows of the same person); 0: uniform draws."""
        return 0

    def pretrain_loss(self, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss of one pre-training step. `batch`: x (N,T,C) float32 normalised, subject (N,)
        long, y (N,) long (-1 unlabelled), step, total_steps (ints), generator, and any
        per-window arrays the caller gave `pretrain` (`extras`, e.g. the corpus's source)."""
        raise NotImplementedError

    # -- embeddings -----------------------------------------------------------------------
    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Per-step embeddings (N, L, D)."""
        raise NotImplementedError

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled window embedding (N, D): the mean of the tokens unless a family overrides."""
        return self.tokens(x).mean(dim=1)

    def probe_features(self, x: torch.Tensor) -> torch.Tensor:
        """What a linear probe reads to judge pre-training: the representation the
        self-supervised objective shapes (`features` unless a family says otherwise)."""
        return self.features(x)

    # -- supervised task ------------------------------------------------------------------
    def make_head(self, n_classes: int) -> nn.Module:
        """The task head `set_task` installs; default: Linear on `features`."""
        return nn.Linear(self.embed_dim, n_classes)

    def set_task(self, n_classes: int, labels=None) -> None:
        """Create (or replace) the task head for `n_classes` classes. `labels` (class names)
        is given when a task is first set up (fine-tuning), never on rebuild: families that
        derive weights/buffers from the names (prompt embeddings) store them in the state."""
        self.config["n_classes"] = int(n_classes)
        self.head = self.make_head(int(n_classes))

    @property
    def n_classes(self) -> int | None:
        return self.config.get("n_classes")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (N, n_classes); needs a task head (`set_task` / `edgehar finetune`)."""
        if self.head is None:
            raise UserError(self.family, "teacher has no task head yet: run `edgehar finetune` first")
        return self.head(self.features(x))

    def finetune_loss(self, x: torch.Tensor, y: torch.Tensor, step: int = 0,
                      total_steps: int = 1) -> tuple[torch.Tensor, dict[str, float]]:
        """Supervised loss on labelled windows; families with a multi-task stage override."""
        loss = nn.functional.cross_entropy(self(x), y)
        return loss, {"ce": float(loss.detach())}

    def frozen_in_finetune(self) -> list[nn.Parameter]:
        """Parameters fine-tuning must leave unchanged (e.g. HAR-FM's quantizer)."""
        return []

    # -- optional text alignment ----------------------------------------------------------
    def text_projection(self, x: torch.Tensor) -> torch.Tensor:
        """Window embeddings in the sentence-embedding space (N, text_dim)."""
        raise NotImplementedError(f"{self.family} is not text-aligned")


def make_teacher_card(teacher: Teacher, windows, norm_mean, norm_std, labels=None,
                      prompts: dict | None = None, text_prototypes=None, **provenance_items) -> ModelCard:
    """A `ModelCard` (kind "teacher") for `teacher` trained on `windows` (an edgehar
    `Windows`) with per-channel normalisation (norm_mean, norm_std)."""
    labels = list(labels if labels is not None else windows.label_names)
    return ModelCard(
        labels=labels, rate=float(windows.rate), window=int(windows.length),
        hop=int(windows.hop or windows.length // 2), channels=list(windows.channels),
        units=list(windows.units), norm_mean=[float(v) for v in norm_mean],
        norm_std=[float(v) for v in norm_std], tasks={"activity": labels},
        prompts=prompts if prompts is not None else {n: activity_prompt(n) for n in labels},
        text_prototypes=text_prototypes, kind="teacher", arch=teacher.arch,
        provenance=provenance(**provenance_items))


def save_teacher(path, teacher: Teacher, card: ModelCard, extra: dict | None = None) -> None:
    """Write teacher weights + card atomically (the card's arch is refreshed from the teacher,
    so a head added by `set_task` is rebuilt on load)."""
    card.arch = teacher.arch
    card.kind = "teacher"
    save_checkpoint(path, teacher, card, extra)


def load_teacher(path) -> tuple[Teacher, ModelCard, dict]:
    """(teacher in eval mode, card, extra) from a teacher checkpoint; weights load strictly."""
    ckpt = load_checkpoint(path)
    card = ckpt["card"]
    if card.kind != "teacher":
        raise UserError(path, f"is a {card.kind} checkpoint, expected a teacher")
    model = build_from_card(card, path)
    if not isinstance(model, Teacher):
        raise UserError(path, f"family {card.arch.get('name')} is not a teacher")
    load_weights(model, ckpt["state_dict"], path, card.arch.get("name"))
    return model.eval(), card, ckpt.get("extra", {})
