"""Self-supervised pre-training of any teacher family (`Teacher.pretrain_loss`), single process
or data-parallel under torchrun (see `edgehar.train.ddp`)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from edgehar.data import hapt, synthetic
from edgehar.data.corpus import is_corpus, read_manifest
from edgehar.data.datasets import activity_windows, prepare
from edgehar.data.windows import Windows, make_windows
from edgehar.data.wrist_corpus import check_teacher_fits_corpus, train_windows
from edgehar.models.teacher import Teacher
from edgehar.train import ddp, loop
from edgehar.train.schedule import one_cycle

SYNTHETIC = "synthetic"  # data set name of edgehar.data.synthetic's generated waist recordings


def synthetic_windows(n: int | None = None, length: int = 64, rate: float = 25.0, seed: int = 0,
                      channels=None, subjects: int = 10, seconds: float = 8.0) -> Windows:
    """Windows of `length` samples at `rate` Hz of the generated HAPT stand-in
    (`edgehar.data.synthetic`: 6 activities, unlabelled transitions, `subjects` subjects with
    each activity once for about `seconds` s), small enough for tests and smoke runs; with `n`,
    n windows drawn at random (seeded) from them."""
    recs = synthetic.synthetic_dataset(subjects, "waist", seconds, bouts=1, seed=seed)
    recs = prepare(recs, rate, channels or synthetic.CHANNELS)
    w = make_windows(recs, length, length // 2, purity=0.8)
    if n is not None:
        w = w.take(np.sort(np.random.default_rng(seed).choice(len(w), min(n, len(w)), replace=False)))
    return w


def load_windows(data: str, root=None, card=None) -> tuple[Windows, tuple[int, ...]]:
    """(windows, default test subjects) of a named data set, an own-data folder or a corpus
    folder (its train split's wrist acc windows, `edgehar.data.wrist_corpus.train_windows`); at
    the card's rate, window length and channels when a card is given."""
    if is_corpus(data):
        if card is not None:
            check_teacher_fits_corpus(card, read_manifest(data), data)
        return train_windows(data, labels=None if card is None else card.labels), ()
    if data == SYNTHETIC:
        w = (synthetic_windows() if card is None else
             synthetic_windows(length=card.window, rate=card.rate, channels=card.channels))
        return w, synthetic.TEST_SUBJECTS

    if card is None:
        w = activity_windows(data, root)
    else:
        w = activity_windows(data, root, rate=card.rate, window=card.window, hop=card.hop,
                             channels=card.channels)
    return w, (hapt.TEST_SUBJECTS if data == "hapt" else ())


@dataclass
class PretrainResult:
    loss_curve: list[list[float]] = field(default_factory=list)  # [step, mean loss] points
    phases: list[list] = field(default_factory=list)  # [first step, name] of each stage
    last_logs: dict = field(default_factory=dict)
    steps: int = 0
    seconds: float = 0.0

    def phase_curves(self) -> dict[str, list[list[float]]]:
        """The loss curve cut at the stage boundaries (a family with stages, like RelCon's
        distance then encoder phase, optimises a different loss in each)."""
        if not self.phases:
            return {"pretrain": self.loss_curve}
        out = {}
        for k, (start, name) in enumerate(self.phases):
            end = self.phases[k + 1][0] if k + 1 < len(self.phases) else float("inf")
            out[name] = [p for p in self.loss_curve if start < p[0] <= end]
        return out


def subject_groups(subject: torch.Tensor, batch_size: int, group: int, generator) -> torch.Tensor:
    """Indices of a batch made of groups of `group` windows of one subject: each group's
    subject is that of a uniformly drawn window (so subjects count by their windows), its
    windows are drawn uniformly (with replacement) among that subject's."""
    order = torch.argsort(subject, stable=True)
    ids, counts = torch.unique_consecutive(subject[order], return_counts=True)
    starts = torch.cumsum(counts, 0) - counts
    which = torch.searchsorted(ids, subject)  # subject slot of every window
    n_groups = -(-batch_size // group)
    heads = which[torch.randint(0, len(subject), (n_groups,), generator=generator)]
    offsets = (torch.rand(n_groups, group, generator=generator) * counts[heads, None]).long()
    return order[(starts[heads, None] + offsets).flatten()[:batch_size]]


def draw_batch(pools: dict, pool: str, subject: torch.Tensor, size: int, per_subject: int,
               generator) -> torch.Tensor:
    """Indices of one batch of `size` windows drawn from `pools[pool]` (None: every window), as
    groups of `per_subject` windows of one subject when > 1, else uniformly."""
    rows = pools[pool]
    if rows is not None and len(rows) == 0:
        raise ValueError(f"no {pool} windows to draw a pre-training batch from")
    n = len(subject) if rows is None else len(rows)
    if per_subject > 1:
        idx = subject_groups(subject if rows is None else subject[rows], size, per_subject, generator)
    else:
        idx = torch.randint(0, n, (size,), generator=generator)
    return idx if rows is None else rows[idx]


def lr_at(step: int, total: int, lr: float, warmup: float = 0.05) -> float:
    """Linear warm-up then cosine decay to 1% of `lr`."""
    w = max(1, int(warmup * total))
    if step < w:
        return lr * (step + 1) / w
    frac = (step - w) / max(1, total - w)
    return lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * frac)))


SCHEDULES = ("cosine", "one-cycle")


def pretrain(teacher: Teacher, x: np.ndarray, y: np.ndarray, subject: np.ndarray, steps: int,
             batch_size: int = 64, lr: float = 1e-3, weight_decay: float = 0.01, seed: int = 0,
             ctx: ddp.Context | None = None, progress: bool = True, points: int = 100,
             device=None, extras: dict[str, np.ndarray] | None = None, schedule: str = "cosine",
             clip_norm: float | None = 1.0) -> PretrainResult:
    """Train `teacher` for `steps` optimiser steps on normalised windows x (N, T, C).

    Every rank draws its batches from its own disjoint shard, from the pool of windows the
    step's stage asks for (`Teacher.pretrain_pool`: all, or the labelled ones), as groups of
    windows of one subject when the family asks (`Teacher.windows_per_subject`). `extras`:
    more per-window arrays (N, ...) the batch carries under their names (the corpus's source
    of each window). `schedule`: "cosine" (`lr_at`) or "one-cycle" (`edgehar.train.schedule`,
    10% warm-up); `clip_norm`: gradient-norm clipping, None for none. The logged loss is the
    mean over ranks, kept as about `points` averaged [step, loss] points, never averaged
    across a stage boundary (`logs["phase"]`, named by `Teacher.phases`). Runs on `ctx.device`
    (or `device`, or the session's: `edgehar.train.loop`), checkpointing and resuming as the
    session says; the teacher comes back on the CPU.
    """
    ctx = ctx or ddp.Context(device=loop.device_for(device))
    dev = ctx.device
    teacher.fit_statistics(torch.from_numpy(x))  # on every window: the same on every rank
    mine = ddp.shard(len(x), ctx, seed)
    if len(mine) == 0:
        raise ValueError(f"rank {ctx.rank} has no windows ({len(x)} windows, {ctx.world} ranks)")
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule {schedule!r}: expected one of {', '.join(SCHEDULES)}")
    # windows stay in host memory; each batch is gathered there and copied to the device
    xs = torch.from_numpy(np.ascontiguousarray(x[mine]))
    ys, ss = torch.from_numpy(y[mine]), torch.from_numpy(subject[mine])
    more = {k: torch.from_numpy(np.ascontiguousarray(v[mine])) for k, v in (extras or {}).items()}
    pools = {"all": None, "labelled": torch.nonzero(ys >= 0)[:, 0]}
    gen = torch.Generator().manual_seed(seed * 1000 + ctx.rank)
    model_gen = loop.model_generator(gen, dev, seed * 1000 + ctx.rank)
    per_subject = teacher.windows_per_subject()
    size = min(batch_size, len(xs))
    teacher.to(dev)
    step_fn = ddp.wrap(teacher, ctx, "pretrain_loss")
    opt = torch.optim.AdamW([p for p in teacher.parameters() if p.requires_grad], lr=lr,
                            weight_decay=weight_decay)
    sched = one_cycle(opt, lr, steps, pct_start=0.1) if schedule == "one-cycle" else None
    every = max(1, steps // points)
    result = PretrainResult()
    gens = {"batches": gen} if model_gen is gen else {"batches": gen, "model": model_gen}
    state = loop.TrainState({"teacher": teacher}, opt, sched, generators=gens,
                            progress={"loss_curve": result.loss_curve, "phases": result.phases,
                                      "window_losses": [], "last_logs": {}, "seconds": 0.0})
    checkpoints = loop.Checkpointer("pretrain", {
        "family": teacher.family, "steps": steps, "batch_size": batch_size, "lr": lr,
        "weight_decay": weight_decay, "seed": seed, "world": ctx.world, "windows": len(x),
        "schedule": schedule, "clip_norm": clip_norm, "extras": sorted(more),
        "shapes": loop.shapes(teacher)}, ctx=ctx)
    checkpoints.restore(state)
    p = state.progress
    result.loss_curve, result.phases, window_losses = p["loss_curve"], p["phases"], p["window_losses"]
    result.last_logs = p["last_logs"]
    bar = tqdm(total=steps, initial=state.step, desc=f"pretrain {teacher.family}",
               disable=not (progress and ctx.main), leave=False)
    start = time.perf_counter() - p["seconds"]
    teacher.train()
    for step in range(state.step, steps):
        idx = draw_batch(pools, teacher.pretrain_pool(step, steps), ss, size, per_subject, gen)
        batch = {"x": loop.to_device(xs[idx], dev), "y": loop.to_device(ys[idx], dev),
                 "subject": loop.to_device(ss[idx], dev), "step": step, "total_steps": steps,
                 "generator": model_gen, **{k: loop.to_device(v[idx], dev) for k, v in more.items()}}
        if sched is None:
            for group in opt.param_groups:
                group["lr"] = lr_at(step, steps, lr)
        with loop.device_scope(dev), loop.autocast(dev):
            loss, logs = step_fn(batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(teacher.parameters(), clip_norm)
        opt.step()
        if sched is not None:
            sched.step()
        value = ddp.mean_across(float(loss.detach()), ctx)
        if not math.isfinite(value):
            raise FloatingPointError(f"pre-training diverged at step {step} (loss {value})")
        phase = teacher.phases[int(logs.get("phase", 0))]
        if not result.phases or result.phases[-1][1] != phase:
            if window_losses:  # close the previous stage's last point
                result.loss_curve.append([step, float(np.mean(window_losses))])
                window_losses.clear()
            result.phases.append([step, phase])
        window_losses.append(value)
        if len(window_losses) == every or step == steps - 1:
            result.loss_curve.append([step + 1, float(np.mean(window_losses))])
            window_losses.clear()
        result.last_logs = p["last_logs"] = logs
        bar.update(1)
        bar.set_postfix(loss=f"{value:.3f}")
        state.step, p["seconds"] = step + 1, time.perf_counter() - start
        checkpoints.step(state, steps)
    bar.close()
    teacher.eval()
    teacher.to("cpu")
    result.steps, result.seconds = steps, time.perf_counter() - start
    return result
