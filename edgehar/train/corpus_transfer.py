"""Transfer of a corpus teacher to a data set it did not pre-train on: fine-tuning with a few
labels (pre-trained vs random initialisation) and zero-shot labels from text.

Both answer the question a foundation model is trained for. `finetune_few_labels` takes a
fraction of a data set's labelled training windows (stratified by class, per seed), fine-tunes
the whole model with a fresh head, and keeps the step count (of `STEP_GRID`) that scores best on
the data set's validation subjects; the same call with `init=None` trains the same
architecture from random weights. `zero_shot_predict` scores windows by cosine between the
teacher's text projection and the label names' prompt embeddings, so classes no training label
named can be scored from their text alone.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F

from edgehar.data.windows import Windows
from edgehar.metrics import report
from edgehar.train import loop

STEP_GRID = (50, 100, 200, 400)  # fine-tuning steps compared on validation


def label_subset(w: Windows, fraction: float, seed: int) -> Windows:
    """`fraction` of the labelled windows of `w`, stratified by class (at least one per class)."""
    rng = np.random.default_rng(seed)
    keep = []
    for c in np.unique(w.y[w.y >= 0]):
        rows = np.flatnonzero(w.y == c)
        keep.append(rng.choice(rows, max(1, int(round(fraction * len(rows)))), replace=False))
    return w.take(np.sort(np.concatenate(keep)))


@torch.no_grad()
def _predict(model, x: np.ndarray, device: torch.device | None = None, batch: int = 1024) -> np.ndarray:
    model.eval()
    dev = device or torch.device("cpu")
    return np.concatenate([model(loop.to_device(torch.from_numpy(np.ascontiguousarray(x[lo:lo + batch])), dev))
                           .argmax(1).cpu().numpy() for lo in range(0, len(x), batch)])


def finetune_few_labels(init, arch: dict, card, train: Windows, val: Windows, labels: list[str], seed: int,
                        batch_size: int = 64, lr: float = 1e-3, device=None) -> tuple[torch.nn.Module, dict]:
    """(model, summary): `init` (a corpus teacher, or None for random weights of `arch`)
    fine-tuned on the labelled `train` windows with a new head over `labels`, the step count
    chosen on `val` (a corpus teacher through its generic stem: a new data set has no stem of
    its own). Inputs are normalised with `card` for both initialisations (preprocessing,
    not weights). A constant learning rate, so every grid point is the same run stopped earlier.
    Trains on `device` (or the session's, `edgehar.train.loop`); the model comes back on the CPU."""
    from edgehar.models import build

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = copy.deepcopy(init) if init is not None else build({**arch, "config": {
        k: v for k, v in arch["config"].items() if k != "n_classes"}})
    model.set_task(len(labels))
    x = torch.from_numpy(card.normalise(train.x))
    y = torch.from_numpy(train.y)
    vx = card.normalise(val.x)
    dev = loop.device_for(device)
    model.to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    state = loop.TrainState({"model": model}, opt, generators={"batches": gen},
                            progress={"best": [-1.0, 0, None], "curve": {}})
    checkpoints = loop.Checkpointer("transfer", {"seed": seed, "batch_size": batch_size, "lr": lr,
                                                 "grid": list(STEP_GRID), "windows": len(x), "labels": labels,
                                                 "shapes": loop.shapes(model)})
    checkpoints.restore(state)
    best, curve = state.progress["best"], state.progress["curve"]
    for step in range(state.step + 1, max(STEP_GRID) + 1):
        model.train()
        idx = torch.randint(len(x), (min(batch_size, len(x)),), generator=gen)
        xb, yb = loop.to_device((x[idx], y[idx]), dev)
        with loop.device_scope(dev), loop.autocast(dev):
            loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step in STEP_GRID:
            f1 = report(val.y, _predict(model, vx, dev), labels)["macro_f1"]
            curve[step] = round(f1, 4)
            if f1 > best[0]:
                best[:] = [f1, step, {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}]
        state.step = step
        checkpoints.step(state, max(STEP_GRID))
    model.to("cpu")
    model.load_state_dict(best[2])
    model.eval()
    return model, {"steps": best[1], "validation_macro_f1": round(best[0], 4), "validation_curve": curve,
                   "train_windows": int(len(train))}


def few_label_score(init, arch, card, train: Windows, val: Windows, test: Windows, labels: list[str],
                    fraction: float, seed: int) -> dict:
    """Test macro-F1 of `finetune_few_labels` on `fraction` of `train`'s labels (seed `seed`)."""
    model, summary = finetune_few_labels(init, arch, card, label_subset(train, fraction, seed), val, labels, seed)
    return {**summary, "test_macro_f1": report(test.y, _predict(model, card.normalise(test.x)), labels)["macro_f1"]}


@torch.no_grad()
def zero_shot_predict(teacher, card, x: np.ndarray, labels: list[str], prompt: str = "activity",
                      batch: int = 1024) -> np.ndarray:
    """Index into `labels` of each window's nearest label text (cosine; the corpus teacher's
    generic stem). `prompt`: "activity" (HAR-FM's label prompt) or "descriptions" (the
    language teacher's mean of each label's descriptions)."""
    from edgehar.zeroshot import label_text_embeddings

    protos = torch.from_numpy(label_text_embeddings(labels, prompt))
    teacher.eval()
    xn = card.normalise(x)
    out = []
    for lo in range(0, len(xn), batch):
        z = F.normalize(teacher.text_projection(torch.from_numpy(np.ascontiguousarray(xn[lo:lo + batch]))), dim=1)
        out.append((z @ protos.T).argmax(1).numpy())
    return np.concatenate(out) if out else np.zeros(0, np.int64)
