"""`edgehar pretrain` under `torchrun --nproc_per_node 2` (gloo on CPU): both ranks train on
disjoint shards, rank 0 writes one checkpoint that reloads."""

import os
import subprocess
import sys

import numpy as np
import torch

from edgehar.models.teacher import load_teacher
from edgehar.train.ddp import Context, shard


def test_shards_are_disjoint_and_cover_everything():
    parts = [shard(101, Context(rank=r, world=3), seed=4) for r in range(3)]
    joined = np.concatenate(parts)
    assert sorted(joined.tolist()) == list(range(101)) and all(abs(len(p) - 101 / 3) < 1 for p in parts)


def test_two_process_torchrun_pretraining(tmp_path):
    out = tmp_path / "ddp.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "edgehar", "pretrain", "--method", "harfm", "--data", "synthetic", "--config", "tiny",
           "--steps", "4", "--batch-size", "8", "--threads", "1", "--out", str(out), "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count('"world_size": 2') == 1  # only rank 0 reports
    teacher, card, extra = load_teacher(out)
    assert card.provenance["pretrain"]["world_size"] == 2 and len(extra["loss_curve"]) == 4
    assert torch.isfinite(teacher.features(torch.randn(2, 64, 6))).all()
