"""Data-parallel training under `torchrun`: the same script runs single-process or as N ranks.

`torchrun --nproc_per_node N -m edgehar ...` sets RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR;
`setup(device)` then joins a process group (nccl when training on GPUs, gloo on the CPU), gives
each process its own GPU (cuda:LOCAL_RANK), and every other helper here becomes a no-op when
there is one process. Each rank trains on its own disjoint shard; DistributedDataParallel
averages gradients, rank 0 alone writes files and shows progress.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.distributed as dist
from torch import nn


@dataclass
class Context:
    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def setup(device: str | torch.device | None = None) -> Context:
    """Join the torchrun process group if launched by torchrun, else a 1-process context, for
    training on `device` (`edgehar.train.loop.resolve_device`; None: the session's). Under
    torchrun a GPU device without an index becomes this process's GPU, cuda:LOCAL_RANK."""
    from edgehar.train.loop import device_for  # deferred: loop imports this module

    dev = device_for(device)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")) if world > 1 else 0)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world <= 1:
        return Context(device=dev)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return Context(rank=dist.get_rank(), world=dist.get_world_size(), device=dev)


def teardown(ctx: Context) -> None:
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


def shard(n: int, ctx: Context, seed: int = 0) -> np.ndarray:
    """This rank's disjoint share of indices 0..n-1 (a seeded shuffle, dealt round-robin)."""
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[ctx.rank::ctx.world])


def mean_across(value: float, ctx: Context) -> float:
    """The mean of a scalar over all ranks (for logging)."""
    if not ctx.distributed:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=ctx.device)  # nccl reduces GPU tensors only
    dist.all_reduce(t)
    return float(t.item()) / ctx.world


def barrier(ctx: Context) -> None:
    if ctx.distributed:
        dist.barrier()


class LossModule(nn.Module):
    """Routes `forward(batch)` to `model.<method>(batch)`, so DDP can wrap a loss method
    (DDP hooks gradient averaging onto calls of `forward`)."""

    def __init__(self, model: nn.Module, method: str = "pretrain_loss"):
        super().__init__()
        self.model, self.method = model, method

    def forward(self, *args, **kwargs):
        return getattr(self.model, self.method)(*args, **kwargs)


def wrap(model: nn.Module, ctx: Context, method: str = "pretrain_loss") -> nn.Module:
    """A module whose forward computes `model.<method>`; DDP-wrapped when distributed.
    Parameters a loss does not touch (task heads, text projections) are allowed."""
    step = LossModule(model, method)
    if not ctx.distributed:
        return step
    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(step, device_ids=ids, find_unused_parameters=True)
