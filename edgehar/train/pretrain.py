"""Self-supervised pre-training of any teacher family (`Teacher.pretrain_loss`), single process
or data-parallel under torchrun (see `edgehar.train.ddp`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from edgehar.data.windows import Windows
from edgehar.models.teacher import Teacher
from edgehar.train import ddp

SYNTHETIC = "synthetic"  # hidden data set name: generated windows for tests and smoke runs
SYNTHETIC_TEST_SUBJECTS = (2, 5)


def synthetic_windows(n: int = 256, length: int = 64, rate: float = 25.0, seed: int = 0) -> Windows:
    """Class-dependent noisy sines on 6 channels (acc + gyro), 8 subjects, 3 classes and some
    unlabelled windows: enough structure for a model to learn, generated in milliseconds."""
    rng = np.random.default_rng(seed)
    y = rng.integers(-1, 3, n)
    t = np.arange(length) / rate
    freq = np.where(y < 0, rng.uniform(0.5, 3.0, n), 0.7 + 0.9 * np.maximum(y, 0))[:, None, None]
    phase = rng.uniform(0, 2 * np.pi, (n, 1, 6))
    x = np.sin(2 * np.pi * freq * t[None, :, None] + phase) * rng.uniform(0.5, 1.5, (n, 1, 6))
    x = x + 0.1 * rng.standard_normal(x.shape)
    return Windows(x=x.astype(np.float32), y=y.astype(np.int64),
                   subject=rng.integers(1, 9, n).astype(np.int64), rate=rate,
                   channels=("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"),
                   units=("g", "g", "g", "rad/s", "rad/s", "rad/s"),
                   label_names=("slow", "medium", "fast"), hop=length // 2)


def load_windows(data: str, root=None, card=None) -> tuple[Windows, tuple[int, ...]]:
    """(windows, default test subjects) of a named data set; at the card's rate, window length
    and channels when a card is given."""
    if data == SYNTHETIC:
        w = synthetic_windows(length=card.window if card else 64, rate=card.rate if card else 25.0)
        return w, SYNTHETIC_TEST_SUBJECTS
    from edgehar.data import hapt
    from edgehar.data.datasets import activity_windows

    if card is None:
        w = activity_windows(data, root)
    else:
        w = activity_windows(data, root, rate=card.rate, window=card.window, hop=card.hop,
                             channels=card.channels)
    return w, (hapt.TEST_SUBJECTS if data == "hapt" else ())


@dataclass
class PretrainResult:
    loss_curve: list[list[float]] = field(default_factory=list)  # [step, mean loss] points
    last_logs: dict = field(default_factory=dict)
    steps: int = 0
    seconds: float = 0.0


def lr_at(step: int, total: int, lr: float, warmup: float = 0.05) -> float:
    """Linear warm-up then cosine decay to 1% of `lr`."""
    w = max(1, int(warmup * total))
    if step < w:
        return lr * (step + 1) / w
    frac = (step - w) / max(1, total - w)
    return lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * frac)))


def pretrain(teacher: Teacher, x: np.ndarray, y: np.ndarray, subject: np.ndarray, steps: int,
             batch_size: int = 64, lr: float = 1e-3, weight_decay: float = 0.01, seed: int = 0,
             ctx: ddp.Context | None = None, progress: bool = True, points: int = 100) -> PretrainResult:
    """Train `teacher` for `steps` optimiser steps on normalised windows x (N, T, C).

    Every rank draws its batches from its own disjoint shard; the logged loss is the mean over
    ranks, kept as about `points` averaged [step, loss] points.
    """
    import time

    ctx = ctx or ddp.Context()
    mine = ddp.shard(len(x), ctx, seed)
    if len(mine) == 0:
        raise ValueError(f"rank {ctx.rank} has no windows ({len(x)} windows, {ctx.world} ranks)")
    xs = torch.from_numpy(np.ascontiguousarray(x[mine]))
    ys, ss = torch.from_numpy(y[mine]), torch.from_numpy(subject[mine])
    gen = torch.Generator().manual_seed(seed * 1000 + ctx.rank)
    step_fn = ddp.wrap(teacher, ctx, "pretrain_loss")
    opt = torch.optim.AdamW([p for p in teacher.parameters() if p.requires_grad], lr=lr,
                            weight_decay=weight_decay)
    every = max(1, steps // points)
    result, window_losses = PretrainResult(), []
    bar = tqdm(total=steps, desc=f"pretrain {teacher.family}", disable=not (progress and ctx.main),
               leave=False)
    start = time.perf_counter()
    teacher.train()
    for step in range(steps):
        idx = torch.randint(0, len(xs), (min(batch_size, len(xs)),), generator=gen)
        batch = {"x": xs[idx], "y": ys[idx], "subject": ss[idx], "step": step,
                 "total_steps": steps, "generator": gen}
        for group in opt.param_groups:
            group["lr"] = lr_at(step, steps, lr)
        loss, logs = step_fn(batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(teacher.parameters(), 1.0)
        opt.step()
        value = ddp.mean_across(float(loss.detach()), ctx)
        if not math.isfinite(value):
            raise FloatingPointError(f"pre-training diverged at step {step} (loss {value})")
        window_losses.append(value)
        if len(window_losses) == every or step == steps - 1:
            result.loss_curve.append([step + 1, float(np.mean(window_losses))])
            window_losses = []
        result.last_logs = logs
        bar.update(1)
        bar.set_postfix(loss=f"{value:.3f}")
    bar.close()
    teacher.eval()
    result.steps, result.seconds = steps, time.perf_counter() - start
    return result
