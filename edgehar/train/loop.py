"""What every training loop needs besides its loss: the device it runs on, and checkpoints a
killed run resumes from.

- `resolve_device("auto" | "cpu" | "cuda[:N]")`, `autocast(device)` (bf16 on CUDA, a no-op on
  the CPU so CPU numerics stay those of plain fp32), `to_device(batch, device)` (pinned,
  non-blocking copies on CUDA; the very same tensors on the CPU) and `loader(dataset, device)`
  (a DataLoader with pinned memory and workers on CUDA, in-process on the CPU).
- `TrainState`: the model(s), optimiser, schedule, every random generator a loop draws from
  (torch, numpy, python, CUDA, and the loop's own) and the loop's position in its data.
- `Checkpointer`: writes a `TrainState` atomically every N steps into a run folder and, when
  resuming, loads it back so the run continues as if it had never stopped.

A loop takes its device and checkpointing from `session(...)`, which a command opens around
the recipes it calls (explicit arguments win), so recipes and benchmarks need not thread
these settings through every call.
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from edgehar.atomic import staged_file, write_json
from edgehar.checkpoint import read_torch_file
from edgehar.errors import UserError
from edgehar.models.inference import batches
from edgehar.train import ddp
from edgehar.train.flags import DEFAULT_CHECKPOINT_EVERY

STATE_FORMAT = "edgehar-train-state/1"
RUN_MANIFEST = "run.json"
LOADER_WORKERS = 4  # DataLoader workers per process on CUDA (reading shards while the GPU runs)


# -- device -------------------------------------------------------------------------------

def cuda_available() -> bool:
    return torch.cuda.is_available()


def _no_cuda_reason() -> str:
    build = torch.__version__
    if torch.version.cuda is None:
        return f"CUDA is not available on this machine (torch {build} is a CPU build)"
    return f"CUDA is not available on this machine (torch {build} finds no GPU)"


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    """The torch device `spec` names: "auto" (or None) is the first GPU when CUDA is available,
    else the CPU; "cuda" / "cuda:N" must exist here (ValueError saying why not)."""
    if isinstance(spec, torch.device):
        spec = str(spec)
    text = (spec or "auto").strip().lower()
    if text == "auto":
        return torch.device("cuda" if cuda_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    if text == "cuda" or text.startswith("cuda:"):
        index = text[5:] if text.startswith("cuda:") else None
        if index is not None and not index.isdigit():
            raise ValueError(f"expected cuda:N with N a GPU number, got {spec!r}")
        if not cuda_available():
            raise ValueError(_no_cuda_reason())
        count = torch.cuda.device_count()
        if index is not None and int(index) >= count:
            raise ValueError(f"no GPU {index} on this machine ({count} found: cuda:0 to cuda:{count - 1})")
        return torch.device(text)
    raise ValueError(f"expected auto, cpu, cuda or cuda:N, got {spec!r}")


def autocast(device: torch.device, dtype: torch.dtype = torch.bfloat16, enabled: bool | None = None):
    """Mixed precision for the forward pass and loss: bf16 on CUDA; off on the CPU unless
    `enabled` (so a CPU run computes exactly what it did before devices existed)."""
    on = device.type == "cuda" if enabled is None else enabled
    return torch.autocast(device.type, dtype=dtype, enabled=on)


def device_scope(device: torch.device):
    """The block in which a model computes its loss: on a GPU, tensors a model makes itself
    (masks, noise, `torch.arange`) are made there too (`torch.device` as a context); on the CPU
    nothing changes."""
    return contextlib.nullcontext() if device.type == "cpu" else torch.device(device)


def model_generator(host: torch.Generator, device: torch.device, seed: int) -> torch.Generator:
    """The generator a model draws its masks and noise from inside `device_scope`: the loop's
    own host generator on the CPU (so CPU runs draw exactly what they always did), a generator
    on the device, seeded with `seed`, elsewhere (a host generator cannot fill GPU tensors)."""
    return host if device.type == "cpu" else torch.Generator(device=device).manual_seed(seed)


def to_device(obj, device: torch.device):
    """Tensors in `obj` (a tensor, or a dict/list/tuple of them) on `device`; other values as
    they are. On the CPU the very same tensors come back (no copy); on CUDA each goes through
    pinned memory and is copied without blocking the host."""
    if device.type == "cpu":
        return obj
    if isinstance(obj, torch.Tensor):
        if obj.device.type == "cpu" and device.type == "cuda":
            obj = obj.pin_memory()
        return obj.to(device, non_blocking=True)
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(v, device) for v in obj)
    return obj


def loader(dataset, device: torch.device, batch_size: int, workers: int | None = None, **kwargs):
    """A DataLoader over `dataset` (e.g. `edgehar.data.corpus.corpus_dataset`'s memory-mapped
    shards) for a loop on `device`: on CUDA `workers` processes read ahead into pinned memory,
    so the GPU does not wait on the disk; on the CPU the batches are read in-process (workers
    would compete with the training threads for the same cores)."""
    cuda = device.type == "cuda"
    n = (workers if workers is not None else min(LOADER_WORKERS, os.cpu_count() or 1)) if cuda else 0
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=n, pin_memory=cuda,
                                       persistent_workers=n > 0, **kwargs)


# -- what a command sets for the loops it runs --------------------------------------------

@dataclass
class Session:
    device: str | torch.device | None = "auto"
    run_dir: Path | None = None  # checkpoints go here; None: no checkpoints
    checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY
    resume: bool = False


_SESSION = Session(device="cpu")  # a library call without a session trains on the CPU, as it always did


def current() -> Session:
    return _SESSION


@contextlib.contextmanager
def session(device: str | torch.device | None = "auto", run_dir=None,
            checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY, resume: bool = False) -> Iterator[Session]:
    """Device and checkpointing for every training loop run inside the block."""
    global _SESSION
    old = _SESSION
    _SESSION = Session(device, Path(run_dir) if run_dir is not None else None, checkpoint_every, resume)
    try:
        yield _SESSION
    finally:
        _SESSION = old


def use_device(spec: str | torch.device | None) -> torch.device:
    """For a script (a benchmark): every later loop of this process trains on `spec`, as if
    it ran inside `session(spec)`; returns the resolved device."""
    global _SESSION
    dev = resolve_device(spec)
    _SESSION = replace(_SESSION, device=spec)
    return dev


def device_for(device: str | torch.device | None = None) -> torch.device:
    """The device a loop trains on: its explicit `device`, else the session's."""
    return resolve_device(device if device is not None else _SESSION.device)


# -- state of a run -------------------------------------------------------------------------

def _rng_state(generators: dict, rngs: dict) -> dict:
    """Every random stream a loop's results depend on, in a form `weights_only` loading takes."""
    np_state = np.random.get_state(legacy=False)
    np_state = {**np_state, "state": {k: torch.from_numpy(np.asarray(v)) if isinstance(v, np.ndarray) else v
                                      for k, v in np_state["state"].items()}}
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
            "numpy": np_state, "python": random.getstate(),
            "generators": {k: g.get_state() for k, g in generators.items()},
            "rngs": {k: r.bit_generator.state for k, r in rngs.items()}}


def _set_rng_state(saved: dict, generators: dict, rngs: dict) -> None:
    torch.set_rng_state(saved["torch"])
    if saved["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(saved["cuda"])
    np_state = saved["numpy"]
    np_state = {**np_state, "state": {k: v.numpy() if isinstance(v, torch.Tensor) else v
                                      for k, v in np_state["state"].items()}}
    np.random.set_state(np_state)
    version, internal, gauss = saved["python"]
    random.setstate((version, tuple(internal), gauss))
    for k, g in generators.items():
        g.set_state(saved["generators"][k])
    for k, r in rngs.items():
        r.bit_generator.state = saved["rngs"][k]


@dataclass
class TrainState:
    """Everything a loop needs to continue exactly where it stopped. `progress` is the loop's
    own bookkeeping (losses so far, the pass and batch within it, the pass's order seed...)."""

    models: dict[str, nn.Module]
    optimiser: torch.optim.Optimizer
    scheduler: object | None = None
    generators: dict[str, torch.Generator] = field(default_factory=dict)
    rngs: dict[str, np.random.Generator] = field(default_factory=dict)
    progress: dict = field(default_factory=dict)
    step: int = 0

    def state_dict(self) -> dict:
        return {"step": self.step, "progress": self.progress,
                "models": {k: {n: t.detach().cpu() for n, t in m.state_dict().items()}
                           for k, m in self.models.items()},
                "optimiser": _to_cpu(self.optimiser.state_dict()),
                "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
                "rng": _rng_state(self.generators, self.rngs)}

    def load_state_dict(self, saved: dict, rng: dict | None = None) -> None:
        for k, m in self.models.items():
            m.load_state_dict(saved["models"][k])
        self.optimiser.load_state_dict(saved["optimiser"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(saved["scheduler"])
        _set_rng_state(rng if rng is not None else saved["rng"], self.generators, self.rngs)
        self.step, self.progress = int(saved["step"]), saved["progress"]


def _to_cpu(obj):
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_cpu(v) for v in obj]
    return obj


def shuffled_batches(state: TrainState, n: int, batch_size: int, rng: np.random.Generator,
                     steps: int) -> Iterator[np.ndarray]:
    """Index batches for the steps from `state.step` up to `steps`: shuffled passes over the n
    windows one after another (`edgehar.models.inference.batches`), the last one cut where the
    steps end. The caller counts `state.step` and appends each loss to `progress["losses"]`;
    `progress["history"]` gets the mean loss of every pass. Resumable: the order generator's state
    at the start of a pass is kept in `progress`, and a run resumed mid-pass draws the same
    permutation again and skips the batches it had done."""
    p = state.progress
    for key, value in (("pass", 0), ("batch", 0), ("losses", []), ("history", [])):
        p.setdefault(key, value)
    while state.step < steps:
        if p["batch"] > 0:
            rng.bit_generator.state = p["pass_rng"]
        p["pass_rng"] = rng.bit_generator.state
        for i, idx in enumerate(batches(n, batch_size, rng)):
            if i < p["batch"]:
                continue  # done before the run was resumed
            if state.step >= steps:
                break
            p["batch"] = i + 1  # before the step: the caller checkpoints after it
            yield idx
        if p["losses"]:
            p["history"].append(float(np.mean(p["losses"])))
        p["pass"], p["batch"], p["losses"] = p["pass"] + 1, 0, []


# -- checkpoints ----------------------------------------------------------------------------

class Checkpointer:
    """Writes a loop's `TrainState` every `every` steps to `<run_dir>/<name>.pt` (atomically: a
    kill leaves the previous checkpoint or the new one) and restores it when resuming.

    `fingerprint` names what must not change between the run and its resumption (step count,
    batch size, seed, shapes...): a mismatch is a one-line error, never a silent mix of runs.
    Under torchrun every rank calls `step()`; rank 0 writes, with every rank's random state.
    """

    def __init__(self, name: str, fingerprint: dict, run_dir=None, every: int | None = None,
                 resume: bool | None = None, ctx=None):
        s = _SESSION
        self.run_dir = Path(run_dir) if run_dir is not None else s.run_dir
        self.every = int(every if every is not None else s.checkpoint_every)
        self.resume = bool(resume if resume is not None else s.resume)
        self.name, self.ctx = re.sub(r"[^A-Za-z0-9_.-]+", "_", name), ctx
        self.fingerprint = _plain(fingerprint)
        self.path = None if self.run_dir is None else self.run_dir / f"{self.name}.pt"

    @property
    def enabled(self) -> bool:
        return self.path is not None and self.every > 0

    def restore(self, state: TrainState) -> bool:
        """Load the saved state into `state` when resuming and one exists; whether it did."""
        if not (self.resume and self.path is not None and self.path.is_file()):
            return False

        saved = read_torch_file(self.path, "training state")
        if not isinstance(saved, dict) or saved.get("format") != STATE_FORMAT:
            raise UserError(self.path, "not an edgehar training state (written by another program?)")
        if saved.get("fingerprint") != self.fingerprint:
            diff = sorted(k for k in set(self.fingerprint) | set(saved.get("fingerprint") or {})
                          if (saved.get("fingerprint") or {}).get(k) != self.fingerprint.get(k))
            raise UserError(self.path, f"was written by a different run ({', '.join(diff[:4])} differ); "
                                       "resume with the command and flags that started it")
        rank = self.ctx.rank if self.ctx is not None else 0
        ranks = saved["rank_rng"]
        if len(ranks) != (self.ctx.world if self.ctx is not None else 1):
            raise UserError(self.path, f"was written by {len(ranks)} processes; resume it with as many")
        state.load_state_dict(saved, rng=ranks[rank])
        return True

    def step(self, state: TrainState, total: int) -> None:
        """After optimiser step `state.step`: checkpoint when it is a multiple of `every` (not
        after the last step: the caller saves the result itself)."""
        if not self.enabled or state.step % self.every or state.step >= total:
            return
        self.save(state)

    def save(self, state: TrainState) -> None:
        payload = state.state_dict()
        rngs = [payload.pop("rng")]
        if self.ctx is not None and self.ctx.distributed:
            # as bytes: all_gather_object cannot pickle the generators' state tensors itself
            buf = io.BytesIO()
            torch.save(rngs[0], buf)
            gathered = [None] * self.ctx.world
            dist.all_gather_object(gathered, buf.getvalue())
            rngs = [torch.load(io.BytesIO(b), weights_only=True) for b in gathered]
        if self.ctx is None or self.ctx.main:
            payload.update(format=STATE_FORMAT, name=self.name, fingerprint=self.fingerprint, rank_rng=rngs)
            with staged_file(self.path) as tmp:
                torch.save(payload, tmp)
        if self.ctx is not None:
            ddp.barrier(self.ctx)


def _plain(obj):
    """A fingerprint in plain JSON-like values (tuples as lists), as it reads back."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    return obj


def shapes(*modules: nn.Module) -> list:
    """Parameter shapes of `modules`, for a fingerprint (the same recipe on another model size
    must not resume from this one)."""
    return [list(p.shape) for m in modules for p in m.parameters()]


# -- a command's run folder ---------------------------------------------------------------

def default_run_dir(out: str | os.PathLike) -> Path:
    """Where a command writing `out` keeps its checkpoints: `<out>.run/` beside it."""
    out = Path(out)
    return out.with_name(out.name + ".run")


def check_run_folder(out, every: int = DEFAULT_CHECKPOINT_EVERY, resume=None) -> Path:
    """The run folder of a command writing `out` (`resume`, or `<out>.run/`), checked before
    any work: a folder to resume must be one; a fresh run refuses a folder holding an
    interrupted run rather than overwrite it."""
    run_dir = Path(resume) if resume else default_run_dir(out)
    if resume:
        if not run_dir.is_dir():
            raise UserError(run_dir, "no such run folder to resume (a run with --checkpoint-every N > 0 writes one)")
        if not (run_dir / RUN_MANIFEST).is_file():
            raise UserError(run_dir, f"not an edgehar run folder (no {RUN_MANIFEST})")
    elif every > 0 and run_dir.exists():
        raise UserError(run_dir, f"holds an interrupted run: continue it with --resume {run_dir}, "
                                 "or remove it to start again")
    return run_dir


@contextlib.contextmanager
def run_folder(out, device="auto", every: int = DEFAULT_CHECKPOINT_EVERY, resume=None,
               main: bool = True) -> Iterator[Session]:
    """The session of a training command writing `out` on `device`: checkpoints every `every`
    steps in `resume` (the folder of an earlier, interrupted run of the same command) or
    `<out>.run/` (`check_run_folder`). The folder is removed once the block, which writes the
    command's result, ends without error; it stays for `--resume` otherwise. Under torchrun
    only the main rank (`main`) writes and removes it."""
    run_dir = check_run_folder(out, every, resume) if main else (Path(resume) if resume else default_run_dir(out))
    if every <= 0 and not resume:
        with session(device, None, 0, False) as s:
            yield s
        return
    created = main and not run_dir.exists()
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json(run_dir / RUN_MANIFEST, {"format": STATE_FORMAT, "out": str(out)})
    try:
        with session(device, run_dir, every if every > 0 else DEFAULT_CHECKPOINT_EVERY, bool(resume)) as s:
            yield s
    except BaseException:
        if created and not any(run_dir.glob("*.pt")):
            _remove_run(run_dir)  # stopped before its first checkpoint: nothing to resume
        raise
    if main:
        _remove_run(run_dir)


def _remove_run(run_dir: Path) -> None:
    for f in run_dir.glob("*.pt"):
        f.unlink()
    (run_dir / RUN_MANIFEST).unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        run_dir.rmdir()  # left in place if someone put other files in it
