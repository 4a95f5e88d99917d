"""Supervised stage of a teacher: full fine-tuning with the family's `finetune_loss` (HAR-FM:
stage B multi-task), or a linear probe (frozen backbone, only the task head learns).

Few-label transfer (`edgehar.train.corpus_transfer`) is the same stage with other options: a
constant learning rate, no augmentation or clipping, and the state kept that scores best on
validation windows at the steps of `keep_best_at`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from tqdm.auto import tqdm

from edgehar.card import ModelCard
from edgehar.data.splits import keep_label_fraction
from edgehar.data.windows import Windows
from edgehar.models.augment import random_augment
from edgehar.models.inference import evaluate
from edgehar.models.teacher import Teacher
from edgehar.train import loop
from edgehar.train.schedule import one_cycle
from edgehar.train.supervised import optimiser_step

SCHEDULES = ("one-cycle", "constant")


@dataclass
class FinetuneResult:
    pass_losses: list[float]  # mean loss of every pass over the windows
    windows: int  # labelled windows trained on
    validation_curve: dict[int, float] = field(default_factory=dict)  # step -> macro-F1 (4 places)
    best_step: int | None = None  # the step whose state the teacher ends with (`keep_best_at`)
    best_macro_f1: float | None = None


def label_subset(w: Windows, fraction: float, seed: int = 0) -> Windows:
    """The labelled windows `keep_label_fraction` keeps (a seeded per-class share, at least one
    window of every class): fine-tuning with few labels, on the same windows `distill` keeps."""
    if not 0 < fraction <= 1:
        raise ValueError(f"label fraction must be in (0, 1], got {fraction}")
    return replace(w, y=keep_label_fraction(w.y, fraction, seed)).labelled()


def _check_options(steps: int, schedule: str, validation, keep_best_at) -> list[int]:
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule {schedule!r}: expected one of {', '.join(SCHEDULES)}")
    at = sorted({int(s) for s in keep_best_at})
    if bool(at) != (validation is not None):
        raise ValueError("validation windows and keep_best_at steps go together")
    if at and not 1 <= at[0] <= at[-1] <= steps:
        raise ValueError(f"keep_best_at steps must lie in 1..{steps}, got {at}")
    if validation is not None and len(validation.labelled()) == 0:
        raise ValueError("no labelled validation windows to choose the step on")
    return at


def finetune(teacher: Teacher, train: Windows, card: ModelCard, steps: int = 1000,
             batch_size: int = 64, lr: float | None = None, weight_decay: float = 0.01,
             linear_probe: bool = False, augment: bool = True, seed: int = 0,
             progress: bool = True, label_fraction: float = 1.0, device=None,
             schedule: str = "one-cycle", clip_norm: float | None = 1.0,
             validation: Windows | None = None, keep_best_at: Sequence[int] = ()) -> FinetuneResult:
    """Set up a fresh task head for `card.labels` and train on the labelled windows of `train`
    (y == -1: unlabelled, skipped; `label_fraction` < 1: a seeded per-class share of them,
    `label_subset`) for `steps` optimiser steps of AdamW, in shuffled passes over the windows.

    `schedule`: "one-cycle" (10% warm-up) or "constant"; `clip_norm`: gradient-norm clipping,
    None for none; `augment`: noise and scale draws (never for a probe). With `validation`
    windows and `keep_best_at` steps, the validation macro-F1 (`edgehar.models.inference.evaluate`)
    is measured after each of those steps and the teacher ends with the state that scored best
    (the first, on a tie); the result holds the curve and the step chosen. A routed teacher
    (`Teacher.takes_routes`, the corpus teacher) trains through its generic stem: the data set
    to fine-tune on has no stem of its own. Device and checkpoints: `edgehar.train.loop` (the
    best state so far is part of the checkpoint; the teacher comes back on the CPU)."""
    dev = loop.device_for(device)
    keep_best_at = _check_options(steps, schedule, validation, keep_best_at)
    train = label_subset(train, label_fraction, seed) if label_fraction < 1 else train.labelled()
    if len(train) == 0:
        raise ValueError("no labelled windows to fine-tune on")
    torch.manual_seed(seed)
    teacher.set_task(len(card.labels), card.labels)
    frozen = {id(p) for p in teacher.frozen_in_finetune()}
    head = {id(p) for p in teacher.head.parameters()}
    for p in teacher.parameters():
        p.requires_grad_(id(p) in head if linear_probe else id(p) not in frozen)
    teacher.to(dev)
    params = [p for p in teacher.parameters() if p.requires_grad]
    lr = lr if lr is not None else (1e-2 if linear_probe else 1e-3)
    x_all = torch.from_numpy(card.normalise(train.x))
    y_all = torch.from_numpy(train.y)
    rng, gen = np.random.default_rng(seed), torch.Generator().manual_seed(seed)
    total = steps
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    sched = one_cycle(opt, lr, total, pct_start=0.1) if schedule == "one-cycle" else None
    state = loop.TrainState({"teacher": teacher}, opt, sched, {"augment": gen}, {"order": rng},
                            progress={"curve": {}, "best": None})
    checkpoints = loop.Checkpointer("probe" if linear_probe else "finetune", {
        "family": teacher.family, "steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed,
        "augment": augment, "label_fraction": label_fraction, "windows": len(train),
        "weight_decay": weight_decay, "schedule": schedule, "clip_norm": clip_norm,
        "keep_best_at": keep_best_at, "labels": list(card.labels),
        "validation_windows": 0 if validation is None else len(validation.labelled()),
        "shapes": loop.shapes(teacher)})
    checkpoints.restore(state)
    prog = state.progress
    bar = tqdm(total=total, initial=state.step, desc="probe" if linear_probe else f"finetune {teacher.family}",
               disable=not progress, leave=False)
    # a probe keeps the backbone deterministic (no dropout): only the head trains
    teacher.eval() if linear_probe else teacher.train()
    for idx in loop.shuffled_batches(state, len(train), batch_size, rng, total):
        x, y = x_all[idx], y_all[idx]
        if augment and not linear_probe:  # on the host: the draws do not depend on the device
            x = random_augment(x, gen, n=1, names=("noise", "scale"))
        x, y = loop.to_device(x, dev), loop.to_device(y, dev)
        with loop.device_scope(dev), loop.autocast(dev):
            if linear_probe:
                loss = torch.nn.functional.cross_entropy(teacher(x), y)
            else:
                loss, _ = teacher.finetune_loss(x, y, state.step, total)
        prog["losses"].append(optimiser_step(loss, opt, sched, bar, clip_norm=clip_norm,
                                             clip_params=params if clip_norm is not None else None))
        state.step += 1
        if state.step in keep_best_at:
            _score_and_keep(teacher, validation, card, dev, state.step, prog)
            teacher.eval() if linear_probe else teacher.train()
        checkpoints.step(state, total)
    bar.close()
    for p in teacher.parameters():
        p.requires_grad_(True)
    teacher.eval()
    teacher.to("cpu")
    best = prog["best"]
    if best is not None:
        teacher.load_state_dict(best["state"])
    return FinetuneResult(prog["history"], len(train), dict(prog["curve"]),
                          None if best is None else best["step"], None if best is None else best["macro_f1"])


def _score_and_keep(teacher: Teacher, validation: Windows, card: ModelCard, dev, step: int, prog: dict) -> None:
    """Validation macro-F1 after `step` into `prog["curve"]`; the state into `prog["best"]`
    when it beats the best so far (kept in the progress: a resumed run keeps it too)."""
    f1 = evaluate(teacher, validation, card, device=dev)["macro_f1"]
    prog["curve"][step] = round(f1, 4)
    if prog["best"] is None or f1 > prog["best"]["macro_f1"]:
        prog["best"] = {"step": step, "macro_f1": f1,
                        "state": {k: v.detach().cpu().clone() for k, v in teacher.state_dict().items()}}
