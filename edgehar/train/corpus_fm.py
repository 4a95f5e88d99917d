"""Training on a pooled corpus (`edgehar data corpus build`): the HAR-FM corpus teacher
(`edgehar.models.corpus_fm`), distillation of accelerometer-only wrist students over the
corpus's windows (unlabelled included), and the labelled-corpus `Windows` the baselines and
benchmarks train on.

The corpus is read through `edgehar.data.corpus.stream` (memory maps). Only accelerometer
channels are used (a watch has no gyroscope to count on); `placements` restricts the sources
(DSADS: the arm units, nearest a watch). Every recipe choice is made on the corpus's
validation split; its test split and Bangle.js are for reporting.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from edgehar.data.wrist_corpus import ACC, CorpusPart, load_part, relabel, relabel_to, train_part
from edgehar.errors import UserError
from edgehar.train import loop
from edgehar.train.schedule import one_cycle



def canonical_classes(train: CorpusPart) -> tuple[list[str], np.ndarray]:
    """(names, remap) of the canonical classes the training split labels (remap: corpus index ->
    class index, -1 for none)."""
    m = train.manifest
    present = sorted(int(c) for c in np.unique(train.canonical) if c >= 0)
    remap = np.full(len(m["canonical"]) + 1, -1, np.int64)
    remap[present] = np.arange(len(present))
    return [m["canonical"][c] for c in present], remap


def original_names(part: CorpusPart) -> dict[str, list[str]]:
    """{canonical class: its source data sets' own names for it that differ} over `part`
    (e.g. "running": ["jogging", "running on a treadmill"]): more text for text-aligned teachers.
    `part` as `load_part` returns it (canonical ids of the corpus, not relabelled)."""
    m = part.manifest
    out: dict[str, set] = {}
    for d, name in enumerate(part.sources):
        own = [n.split("/", 1)[1] for n in m["labels"] if n.startswith(name + "/")]
        rows = (part.source == d) & (part.source_label >= 0) & (part.canonical >= 0)
        for local, canon in set(zip(part.source_label[rows].tolist(), part.canonical[rows].tolist())):
            canonical = m["canonical"][canon]
            if own[local].lower().replace("_", " ") != canonical:
                out.setdefault(canonical, set()).add(own[local].lower().replace("_", " "))
    return {k: sorted(v) for k, v in sorted(out.items())}


def check_teacher_fits_corpus(card, manifest: dict, where) -> None:
    """A teacher and a corpus must agree on rate, window and channels: one line if not."""
    if abs(float(card.rate) - float(manifest["rate"])) > 1e-6:
        raise UserError(where, f"corpus is at {manifest['rate']:g} Hz but the teacher takes {card.rate:g} Hz")
    if int(card.window) != int(manifest["window"]):
        raise UserError(where, f"corpus windows are {manifest['window']} samples but the teacher takes {card.window}")
    missing = [c for c in card.channels if c not in manifest["channels"]]
    if missing:
        raise UserError(where, f"corpus has no {', '.join(missing)} (the teacher takes {', '.join(card.channels)})")


@dataclass
class CorpusFMRecipe:
    steps_a: int = 300  # masked reconstruction
    steps_b: int = 1200  # multi-task + text
    batch_size: int = 128
    lr: float = 2e-3
    seed: int = 0
    augment: bool = True  # random scale + jitter (no rotation: WISDM's sitting vs standing is orientation)


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    scale = 1 + 0.1 * torch.randn(len(x), 1, x.shape[2], generator=gen)
    return x * scale + 0.02 * torch.randn(x.shape, generator=gen)


def pretrain_corpus_fm(folder, recipe: CorpusFMRecipe, datasets=None, progress: bool = True, log=print,
                       device=None):
    """(teacher, card, summary): the HAR-FM corpus teacher trained on the train split of the
    corpus at `folder` (stage A on every window, stage B on the labelled ones), on `device` (or
    the session's, `edgehar.train.loop`); the windows stay in host memory, each batch is copied."""
    from tqdm.auto import tqdm

    from edgehar.data.normalise import channel_stats
    from edgehar.metrics import report
    from edgehar.models.corpus_fm import CorpusFM
    from edgehar.models.teacher import make_teacher_card
    from edgehar.data.vocabulary import activity_prompt
    from edgehar.text import embed_texts

    torch.manual_seed(recipe.seed)
    gen = torch.Generator().manual_seed(recipe.seed)
    t0 = time.perf_counter()
    train = train_part(folder, datasets)
    names, remap = canonical_classes(train)
    train = relabel(train, remap)
    val = relabel(load_part(folder, "validation", datasets=datasets), remap)
    m = train.manifest
    src_classes = [sum(1 for n in m["labels"] if n.startswith(d + "/")) for d in train.sources]
    w = train.windows(names)
    mean, std = channel_stats(w)
    model = CorpusFM({"in_channels": 3, "sources": train.sources, "source_classes": src_classes,
                      "n_canonical": len(names), "window": int(m["window"])})
    model.set_task(len(names))
    model.label_text.copy_(torch.from_numpy(embed_texts([activity_prompt(n) for n in names])))
    x = torch.from_numpy((train.x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32))
    src = torch.from_numpy(train.source)
    canon, local = torch.from_numpy(train.canonical), torch.from_numpy(train.source_label)
    labelled = torch.nonzero(canon >= 0)[:, 0]
    dev = loop.device_for(device)
    model.to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=1e-4)
    total = recipe.steps_a + recipe.steps_b
    sched = one_cycle(opt, recipe.lr, max(total, 2), pct_start=0.1)
    losses = {"a": [], "b": []}
    model_gen = loop.model_generator(gen, dev, recipe.seed)
    gens = {"batches": gen} if model_gen is gen else {"batches": gen, "model": model_gen}
    state = loop.TrainState({"model": model}, opt, sched, gens, progress={"losses": losses})
    checkpoints = loop.Checkpointer("corpus-harfm", {**vars(recipe), "windows": len(x), "datasets": datasets,
                                                     "shapes": loop.shapes(model)})
    checkpoints.restore(state)
    losses = state.progress["losses"]
    model.train()
    for step in tqdm(range(state.step, total), initial=state.step, total=total, desc="corpus teacher",
                     disable=not progress, leave=False):
        stage_a = step < recipe.steps_a
        pool = torch.arange(len(x)) if stage_a else labelled
        idx = pool[torch.randint(len(pool), (recipe.batch_size,), generator=gen)]
        xb = _augment(x[idx], gen) if recipe.augment else x[idx]  # host-side draws: device-independent
        generic = torch.rand(len(idx), generator=gen) < model.config["generic_p"]
        xb, route = loop.to_device((xb, torch.where(generic, len(train.sources), src[idx])), dev)
        model.route = route
        with loop.device_scope(dev), loop.autocast(dev):
            if stage_a:
                loss, parts = model.reconstruction_loss(xb, model_gen), {}
            else:
                loss, parts = model.multitask_loss(xb, *loop.to_device((canon[idx], local[idx], src[idx]), dev))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses["a" if stage_a else "b"].append(float(loss.detach()))
        state.step = step + 1
        checkpoints.step(state, total)
    model.to("cpu")
    model.route = None
    model.eval()
    card = make_teacher_card(model, w, mean, std, labels=names)
    card.text_prototypes = model.label_text.numpy().round(6).tolist()
    val_scores = {}
    vw = val.windows(names, labelled_only=True)
    if len(vw):
        for route in ("generic", "own"):
            model.route = None if route == "generic" else torch.from_numpy(val.source[val.canonical >= 0])
            pred = predict(model, card.normalise(vw.x)).argmax(1)
            val_scores[route] = {k: report(vw.y, pred, names)[k] for k in ("macro_f1", "accuracy")}
        model.route = None
    summary = {"windows": int(len(x)), "labelled": int(len(labelled)), "classes": names,
               "sources": train.sources, "steps": {"a": recipe.steps_a, "b": recipe.steps_b},
               "loss_a": _ends(losses["a"]), "loss_b": _ends(losses["b"]), "validation": val_scores,
               "train_s": round(time.perf_counter() - t0, 1)}
    from edgehar.card import provenance
    card.provenance = provenance(data={"dataset": "corpus", "root": str(folder), "split": "corpus train"},
                                 recipe=vars(recipe), pretrain=summary, metrics={"validation": val_scores})
    return model, card, summary


def _ends(values: list[float]) -> list[float] | None:
    return [round(float(np.mean(values[:20])), 4), round(float(np.mean(values[-20:])), 4)] if values else None


@torch.no_grad()
def predict(model, x: np.ndarray, batch: int = 1024) -> np.ndarray:
    """Main-output logits of a model for normalised windows (routes sliced along)."""
    route = getattr(model, "route", None)
    out = []
    for lo in range(0, len(x), batch):
        if route is not None:
            model.route = route[lo:lo + batch]
        y = model(torch.from_numpy(np.ascontiguousarray(x[lo:lo + batch])))
        out.append((y[0] if isinstance(y, (tuple, list)) else y).numpy())
    if route is not None:
        model.route = route
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def corpus_targets(teacher, card, part: CorpusPart, own_stems: bool = True):
    """Distillation targets of the corpus teacher on `part` (each window through its own stem)."""
    from edgehar.train.distill import targets_from_outputs

    x = card.normalise(part.x)
    logits, embeds, tokens = [], [], []
    for s in np.unique(part.source):
        rows = np.flatnonzero(part.source == s)
        teacher.route = torch.full((len(rows),), int(s)) if own_stems else None
        # teacher_outputs batches by 256: route each batch's slice
        res = _routed_outputs(teacher, x[rows], teacher.route)
        logits.append(res[0]), embeds.append(res[1]), tokens.append(res[2])
    teacher.route = None
    order = np.concatenate([np.flatnonzero(part.source == s) for s in np.unique(part.source)])
    inv = np.empty_like(order)
    inv[order] = np.arange(len(order))
    cat = lambda a: np.concatenate(a)[inv]  # noqa: E731
    return targets_from_outputs(teacher, card, cat(logits), cat(embeds), cat(tokens))


@torch.no_grad()
def _routed_outputs(teacher, x: np.ndarray, route, batch: int = 512):
    teacher.eval()
    lg, em, tk = [], [], []
    for lo in range(0, len(x), batch):
        xb = torch.from_numpy(np.ascontiguousarray(x[lo:lo + batch]))
        teacher.route = None if route is None else route[lo:lo + batch]
        tok = teacher.tokens(xb)
        f = tok.mean(1)
        tk.append(tok.numpy().astype(np.float32))
        em.append(teacher.text(f).numpy())
        lg.append(teacher.head(f).numpy())
    teacher.route = None
    return np.concatenate(lg), np.concatenate(em), np.concatenate(tk)


def is_corpus(path) -> bool:
    from pathlib import Path

    return bool(path) and (Path(path) / "corpus.json").is_file()


def distill_from_corpus(teacher_spec: str, folder, size: str, cfg, progress: bool = True):
    """(student, card, history): an accelerometer-only student distilled from a teacher over
    every wrist window of the corpus's train split (unlabelled ones included; each window
    through its own stem when the teacher is the corpus HAR-FM)."""
    from edgehar.data.corpus import read_manifest
    from edgehar.train.distill import distill, load_teacher_spec, prepare_targets

    manifest = read_manifest(folder)
    teacher, tcard = load_teacher_spec(teacher_spec)
    check_teacher_fits_corpus(tcard, manifest, teacher_spec)
    if list(tcard.channels) != list(ACC):
        raise UserError(teacher_spec, f"teacher takes {', '.join(tcard.channels)}; a wrist student is "
                                      "accelerometer-only (acc_x, acc_y, acc_z)")
    train = relabel_to(train_part(folder), list(tcard.labels))
    if hasattr(teacher, "route"):
        targets = corpus_targets(teacher, tcard, train)
    else:
        targets = prepare_targets(teacher, tcard, tcard.normalise(train.x), progress)
    data = {"dataset": "corpus", "root": str(folder), "split": "corpus train (wrist placements, acc)"}
    return distill(teacher, tcard, train.windows(list(tcard.labels)), size, cfg, teacher_spec, data,
                   progress, targets=targets)
