"""Supervised training of any window classifier (students, baselines, fine-tuning)."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from edgehar.card import ModelCard
from edgehar.data.windows import Windows
from edgehar.models.inference import logits_of
from edgehar.train import loop
from edgehar.train.schedule import one_cycle


def optimiser_step(loss: torch.Tensor, opt, sched, bar, clip_params=None, clip_norm: float = 1.0) -> float:
    """Backward pass, one optimiser step and a schedule step (`sched` None: a constant rate),
    the gradient norm over `clip_params` clipped to `clip_norm` when they are given; ticks the
    progress bar; returns the loss value."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if clip_params is not None:
        torch.nn.utils.clip_grad_norm_(clip_params, clip_norm)
    opt.step()
    if sched is not None:
        sched.step()
    value = float(loss.detach())
    bar.update(1)
    bar.set_postfix(loss=f"{value:.3f}")
    return value


def fit(model: nn.Module, train: Windows, card: ModelCard, steps: int = 1000, batch_size: int = 64,
        lr: float = 2e-3, weight_decay: float = 1e-4, seed: int = 0, label_smoothing: float = 0.0,
        augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
        progress: bool = True, desc: str = "train", device=None) -> list[float]:
    """Train on the labelled windows of `train` for `steps` optimiser steps with AdamW +
    one-cycle LR; returns the mean loss of every pass over the windows. Device and checkpoints:
    `edgehar.train.loop` (the model comes back on the CPU)."""
    dev = loop.device_for(device)
    train = train.labelled()
    x_all = torch.from_numpy(card.normalise(train.x))
    y_all = torch.from_numpy(train.y)
    rng, gen = np.random.default_rng(seed), torch.Generator().manual_seed(seed)
    model.to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = one_cycle(opt, lr, steps)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    state = loop.TrainState({"model": model}, opt, sched, {"augment": gen}, {"order": rng})
    checkpoints = loop.Checkpointer(f"fit-{desc}", {
        "steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed,
        "windows": len(train), "shapes": loop.shapes(model)})
    checkpoints.restore(state)
    p = state.progress
    bar = tqdm(total=steps, initial=state.step, desc=desc, disable=not progress, leave=False)
    model.train()
    for idx in loop.shuffled_batches(state, len(train), batch_size, rng, steps):
        x = x_all[idx]
        if augment is not None:
            x = augment(x, gen)  # on the host: the generator's draws do not depend on the device
        x, y = loop.to_device(x, dev), loop.to_device(y_all[idx], dev)
        with loop.device_scope(dev), loop.autocast(dev):
            loss = loss_fn(logits_of(model(x)), y)
        p["losses"].append(optimiser_step(loss, opt, sched, bar))
        state.step += 1
        checkpoints.step(state, steps)
    bar.close()
    model.eval()
    model.to("cpu")
    return p["history"]
