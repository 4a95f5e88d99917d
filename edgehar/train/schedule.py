"""The one learning-rate schedule every trainer uses: one-cycle (warm-up, then anneal)."""

from __future__ import annotations

import torch


def one_cycle(opt: torch.optim.Optimizer, lr: float, total_steps: int,
              pct_start: float = 0.3) -> torch.optim.lr_scheduler.OneCycleLR:
    """`torch.optim.lr_scheduler.OneCycleLR` over `total_steps` (at least 1) steps.

    torch divides by `pct_start * total_steps - 1` at the first step, so a warm-up of exactly
    one step raises ZeroDivisionError (10 steps at pct_start 0.1); such a warm-up is stretched to two steps.
    """
    total = max(int(total_steps), 1)
    if float(pct_start * total) - 1 == 0:
        pct_start = 2 / total if total >= 2 else 0.5
    return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total, pct_start=pct_start)
