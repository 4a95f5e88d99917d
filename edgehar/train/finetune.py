"""Supervised stage of a teacher: full fine-tuning with the family's `finetune_loss` (HAR-FM:
stage B multi-task), or a linear probe (frozen backbone, only the task head learns)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
from tqdm.auto import tqdm

from edgehar.card import ModelCard
from edgehar.data.splits import keep_label_fraction
from edgehar.data.windows import Windows
from edgehar.models.augment import random_augment
from edgehar.models.teacher import Teacher
from edgehar.train import loop
from edgehar.train.supervised import optimiser_step
from edgehar.train.schedule import one_cycle


def label_subset(w: Windows, fraction: float, seed: int = 0) -> Windows:
    """The labelled windows `keep_label_fraction` keeps (a seeded per-class share, at least one
    window of every class): fine-tuning with few labels, on the same windows `distill` keeps."""
    if not 0 < fraction <= 1:
        raise ValueError(f"label fraction must be in (0, 1], got {fraction}")
    return replace(w, y=keep_label_fraction(w.y, fraction, seed)).labelled()


def finetune(teacher: Teacher, train: Windows, card: ModelCard, steps: int = 1000,
             batch_size: int = 64, lr: float | None = None, weight_decay: float = 0.01,
             linear_probe: bool = False, augment: bool = True, seed: int = 0,
             progress: bool = True, label_fraction: float = 1.0, device=None) -> list[float]:
    """Set up the task head for `card.labels` and train on the labelled windows of `train`
    (y == -1: unlabelled, skipped; `label_fraction` < 1: a seeded per-class share of them,
    `label_subset`) for `steps` optimiser steps with AdamW + one-cycle; returns the mean loss of
    every pass over the windows. Device and
    checkpoints: `edgehar.train.loop` (the teacher comes back on the CPU)."""
    dev = loop.device_for(device)
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
    sched = one_cycle(opt, lr, total, pct_start=0.1)
    state = loop.TrainState({"teacher": teacher}, opt, sched, {"augment": gen}, {"order": rng})
    checkpoints = loop.Checkpointer("probe" if linear_probe else "finetune", {
        "family": teacher.family, "steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed,
        "augment": augment, "label_fraction": label_fraction, "windows": len(train),
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
        prog["losses"].append(optimiser_step(loss, opt, sched, bar, clip_params=params))
        state.step += 1
        checkpoints.step(state, total)
    bar.close()
    for p in teacher.parameters():
        p.requires_grad_(True)
    teacher.eval()
    teacher.to("cpu")
    return prog["history"]
