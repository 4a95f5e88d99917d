"""Transfer of a corpus teacher to a data set it did not pre-train on: fine-tuning with a few
labels (pre-trained vs random initialisation) and zero-shot labels from text.

Both answer the question a foundation model is trained for. `few_label_score` fine-tunes
(`edgehar.train.finetune.finetune`, the fine-tuning stage) on a fraction of a data set's
labelled training windows (a seeded per-class share, `finetune.label_subset`) with a fresh
head, and keeps the step count (of `STEP_GRID`) that scores best on the data set's validation
subjects; the same call with `init=None` trains the same architecture from random weights.
`zero_shot_predict` scores windows by cosine between the teacher's text projection and the
label names' prompt embeddings, so classes no training label named can be scored from their
text alone.
"""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F

from edgehar.data.windows import Windows
from edgehar.models import build
from edgehar.models.inference import evaluate
from edgehar.train.finetune import finetune
from edgehar.zeroshot import label_text_embeddings

STEP_GRID = (50, 100, 200, 400)  # fine-tuning steps compared on validation


def few_label_score(init, arch: dict, card, train: Windows, val: Windows, test: Windows, labels: list[str],
                    fraction: float, seed: int, batch_size: int = 64, lr: float = 1e-3, device=None) -> dict:
    """Validation curve, chosen step and test macro-F1 of `init` (a corpus teacher, left as it
    is, or None for random weights of `arch`) fine-tuned with a new head over `labels` on
    `fraction` of `train`'s labels (seed `seed`), the step chosen on `val`. A corpus teacher
    goes through its generic stem (a new data set has no stem of its own); inputs are
    normalised with `card` for both initialisations (preprocessing, not weights). A constant
    learning rate, so every grid point is the same run stopped earlier; no augmentation."""
    torch.manual_seed(seed)
    model = copy.deepcopy(init) if init is not None else build({**arch, "config": {
        k: v for k, v in arch["config"].items() if k != "n_classes"}})
    task = replace(card, labels=list(labels), tasks={"activity": list(labels)})
    result = finetune(model, train, task, steps=max(STEP_GRID), batch_size=batch_size, lr=lr, weight_decay=1e-4,
                      augment=False, seed=seed, progress=False, label_fraction=fraction, device=device,
                      schedule="constant", clip_norm=None, validation=val, keep_best_at=STEP_GRID)
    return {"steps": result.best_step, "validation_macro_f1": round(result.best_macro_f1, 4),
            "validation_curve": result.validation_curve, "train_windows": result.windows,
            "test_macro_f1": evaluate(model, test, task)["macro_f1"]}


@torch.no_grad()
def zero_shot_predict(teacher, card, x: np.ndarray, labels: list[str], prompt: str = "activity",
                      batch: int = 1024) -> np.ndarray:
    """Index into `labels` of each window's nearest label text (cosine; the corpus teacher's
    generic stem). `prompt`: "activity" (HAR-FM's label prompt) or "descriptions" (the
    language teacher's mean of each label's descriptions)."""
    protos = torch.from_numpy(label_text_embeddings(labels, prompt))
    teacher.eval()
    xn = card.normalise(x)
    out = []
    for lo in range(0, len(xn), batch):
        z = F.normalize(teacher.text_projection(torch.from_numpy(np.ascontiguousarray(xn[lo:lo + batch]))), dim=1)
        out.append((z @ protos.T).argmax(1).numpy())
    return np.concatenate(out) if out else np.zeros(0, np.int64)
