"""Distillation: a foundation-model teacher -> a compact student that fits a wrist MCU.

The student reads exactly the teacher's input (rate, window, channels, units, normalisation:
its card is derived from the teacher's), so one set of windows feeds both; or, for a teacher
on another input spec (LIMU-BERT's published weights on the wrist corpus), its own format
(`student_format`), the teacher's targets then computed on the windows converted to the
teacher's spec (`targets_on_teacher_spec`). The teacher runs
once over every training window (labelled and unlabelled) and its outputs are cached; the
student then learns from

- soft labels: T^2 * KL(teacher/T || student/T) on every window with teacher logits,
- embedding distillation: 1 - cos(student embedding, teacher embedding) on every window,
- token hints: MSE between (a training-only linear map of) the student's tokens and the
  teacher's tokens pooled to the student's token count, each layer-normalised,
- the plain label loss on the labelled windows (optionally only a fraction of them).

The teacher embedding is its text-aligned projection when it has one (HAR-FM, the
sensor-language teacher), else its pooled features. It is reduced to at most `EMBED_DIM`
dimensions by an uncentred SVD basis (cosine-friendly), so the student's embedding head stays
small; the class-text prototypes, projected the same way, go into the student card, which is
what keeps zero-shot labels on the device: cosine of the embedding to each prototype.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from edgehar.card import ModelCard
from edgehar.data.splits import keep_label_fraction
from edgehar.data.vocabulary import activity_prompt
from edgehar.data.windows import Windows
from edgehar.errors import UserError
from edgehar.metrics import report
from edgehar.models import teacher as teacher_module  # load_teacher found at call time
from edgehar.models.augment import jitter, scale
from edgehar.models.inference import batches, evaluate, predict_logits, route_kwargs
from edgehar.models.limubert import teacher_from_spec
from edgehar.models.student import build, count_params, make_student_card
from edgehar.models.torch_macs import torch_macs
from edgehar.text import embed_texts
from edgehar.train import loop
from edgehar.train.schedule import one_cycle
from edgehar.train.supervised import optimiser_step
from edgehar.zeroshot import basis_digest

EMBED_DIM = 64  # at most this many dimensions in the student's embedding head


@dataclass
class DistillConfig:
    steps: int = 3000
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-4
    temperature: float = 4.0
    w_kd: float = 1.0
    w_embed: float = 1.0
    w_hint: float = 0.5
    w_label: float = 1.0
    label_fraction: float = 1.0
    seed: int = 0
    augment: bool = False  # jitter + scale on the student's input (the teacher targets stay cached)
    kd_on_labelled: bool = True  # False: soft labels only where there is no label to trust


@dataclass
class TeacherTargets:
    """Teacher outputs cached for every training window."""

    logits: np.ndarray | None  # (N, K) or None when the teacher has no task head; a row of NaN: no soft label
    embed: np.ndarray  # (N, E) unit-norm targets in the reduced space
    tokens: np.ndarray  # (N, L, D)
    basis: np.ndarray  # (D_full, E) reduction of the teacher embedding space
    prototypes: np.ndarray | None  # (K, E) class-text prototypes, unit-norm, if text-aligned


# -- the teacher side ---------------------------------------------------------------------

def load_teacher_spec(spec: str):
    """(teacher model in eval mode, its card) from a checkpoint path or `limu-bert:DIR`."""
    if spec.startswith("limu-bert:"):
        return teacher_from_spec(spec)
    model, card, _ = teacher_module.load_teacher(spec)
    return model, card


def is_text_aligned(teacher) -> bool:
    return getattr(teacher, "text_dim", None) is not None and hasattr(teacher, "text_projection")


def has_task_head(teacher) -> bool:
    return getattr(teacher, "head", None) is not None


def class_text_embeddings(teacher, card: ModelCard) -> np.ndarray | None:
    """Unit-norm embeddings of the class prompts in the teacher's text space."""
    if not is_text_aligned(teacher):
        return None
    label_text = getattr(teacher, "label_text", None)
    if isinstance(label_text, torch.Tensor) and label_text.shape[0] == len(card.labels) \
            and float(label_text.abs().sum()) > 0:
        emb = label_text.detach().numpy()
    else:
        emb = embed_texts([card.prompts.get(n, activity_prompt(n)) for n in card.labels])
    return emb / np.linalg.norm(emb, axis=1, keepdims=True)


@torch.no_grad()
def teacher_outputs(teacher, x: np.ndarray, batch_size: int = 256, progress: bool = True, route=None):
    """(logits or None, embedding, tokens) of the teacher for normalised windows; `route`: a
    stem per window for a routed teacher (the corpus teacher: each window through its own
    source's stem), None for its default.

    The backbone runs once per batch: while the embedding and the logits are computed,
    `teacher.tokens` answers the batch from the tokens already computed (every family derives
    features, text projection and head output from `self.tokens(x)`; eval mode, so the result
    is the same as three separate passes, for a third of the cost of a paper-size teacher)."""
    teacher.eval()
    logits, embeds, tokens = [], [], []
    text = is_text_aligned(teacher)
    head = has_task_head(teacher)
    backbone = teacher.tokens
    try:
        for idx in tqdm(list(batches(len(x), batch_size, None)), desc="teacher", disable=not progress,
                        leave=False):
            xb, kw = torch.from_numpy(x[idx]), route_kwargs(route, idx)
            tok = backbone(xb, **kw)
            teacher.tokens = lambda x_, xb=xb, tok=tok, **k: tok if x_ is xb else backbone(x_, **k)
            tokens.append(tok.numpy().astype(np.float32))
            embeds.append((teacher.text_projection(xb, **kw) if text else teacher.features(xb, **kw)).numpy())
            if head:
                out = teacher(xb, **kw)
                logits.append((out[0] if isinstance(out, (tuple, list)) else out).numpy())
    finally:
        if "tokens" in vars(teacher):
            del teacher.tokens
    return (np.concatenate(logits) if head else None, np.concatenate(embeds), np.concatenate(tokens))


def reduction_basis(embed: np.ndarray, extra: np.ndarray | None, dim: int) -> np.ndarray:
    """(D, dim) orthonormal basis of the top right-singular vectors of the (uncentred) unit
    embeddings, so cosines survive the reduction; identity when D <= dim."""
    d = embed.shape[1]
    if d <= dim:
        return np.eye(d, dtype=np.float32)
    rows = embed / np.maximum(np.linalg.norm(embed, axis=1, keepdims=True), 1e-12)
    if extra is not None:  # the prototypes must be represented well too
        rows = np.concatenate([rows, np.repeat(extra, max(1, len(rows) // (10 * len(extra))), 0)])
    _, _, vt = np.linalg.svd(rows.astype(np.float64), full_matrices=False)
    return vt[:dim].T.astype(np.float32)


def unit(a: np.ndarray) -> np.ndarray:
    return (a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-12)).astype(np.float32)


def prepare_targets(teacher, card: ModelCard, x: np.ndarray, progress: bool = True,
                    route=None) -> TeacherTargets:
    """The teacher's distillation targets for normalised windows x (`route`: a stem per
    window for a routed teacher, `teacher_outputs`)."""
    return targets_from_outputs(teacher, card, *teacher_outputs(teacher, x, progress=progress, route=route))


def targets_from_outputs(teacher, card: ModelCard, logits: np.ndarray | None, embed: np.ndarray,
                         tokens: np.ndarray) -> TeacherTargets:
    """Targets from `teacher_outputs` (e.g. cached): embeddings reduced, prototypes projected."""
    protos = class_text_embeddings(teacher, card)
    basis = reduction_basis(embed, protos, EMBED_DIM)
    return TeacherTargets(logits=logits, embed=unit(embed @ basis), tokens=tokens, basis=basis,
                          prototypes=None if protos is None else unit(protos @ basis))


def targets_on_teacher_spec(teacher, card: ModelCard, converted: Windows, columns: list[int],
                            soft: np.ndarray, progress: bool = True) -> TeacherTargets:
    """Targets of a teacher whose input spec is not the student's, computed on `converted`
    (the student's windows, one for one, in the teacher's spec: e.g.
    `edgehar.data.limu.to_limu_spec`). The soft labels keep the teacher's logits of
    `columns` (teacher class index per student class, in the student's order), and only on
    the rows `soft` marks: a NaN row has no soft label (`distill_loss` skips it)."""
    if converted.rate != card.rate or converted.length != card.window or list(converted.channels) != list(card.channels):
        raise ValueError("the converted windows are not in the teacher's input spec")
    targets = prepare_targets(teacher, card, card.normalise(converted.x), progress)
    if targets.logits is not None:
        logits = targets.logits[:, columns].astype(np.float32)
        logits[~np.asarray(soft, bool)] = np.nan
        targets = replace(targets, logits=logits)
    return targets


# -- the data side ------------------------------------------------------------------------

def check_windows_fit(w: Windows, card: ModelCard, where: str) -> None:
    """A windows file must already be in the teacher's format: name both sides if not."""
    if abs(float(w.rate) - float(card.rate)) > 1e-6:
        raise UserError(where, f"windows are at {w.rate:g} Hz but the teacher takes {card.rate:g} Hz")
    if list(w.channels) != list(card.channels) or w.length != card.window:
        raise UserError(where, f"windows are {w.length} samples x {', '.join(w.channels)} but the teacher "
                               f"takes {card.window} x {', '.join(card.channels)}")


# -- the student side ---------------------------------------------------------------------

def student_card_from_teacher(size: str, teacher_card: ModelCard, targets: TeacherTargets,
                              teacher_spec: str, data: dict, student_format: ModelCard | None = None) -> ModelCard:
    card = make_student_card(size, student_format or teacher_card, embed_dim=targets.embed.shape[1], data=data)
    protos = None if targets.prototypes is None else targets.prototypes.round(6).tolist()
    card = replace(card, text_prototypes=protos)
    if protos is not None:  # the text basis rides in the student (buffer text_basis): zero-shot labels
        card.arch["config"].update(
            text_dim=int(targets.basis.shape[0]), text_basis_sha256=basis_digest(targets.basis),
            text_prompt="descriptions" if (teacher_card.arch or {}).get("name") == "language" else "activity")
    card.provenance["teacher"] = {"spec": teacher_spec, "arch": teacher_card.arch.get("name"),
                                  "metrics": teacher_card.provenance.get("metrics", {})}
    return card


def hint_targets(tokens: torch.Tensor, length: int) -> torch.Tensor:
    """Teacher tokens (N, L_t, D) pooled along time to the student's token count."""
    if tokens.shape[1] == length:
        return tokens
    return F.adaptive_avg_pool1d(tokens.transpose(1, 2), length).transpose(1, 2)


def distill_loss(student, hint_map: nn.Module, xb, yb, t_logits, t_embed, t_tokens,
                 cfg: DistillConfig) -> tuple[torch.Tensor, dict]:
    tok = student.tokens(xb)
    pooled = student.pool(tok)  # mean, or the attention pooling the deployed graph runs
    logits = student.heads[student.main_task](pooled)
    emb = student.embed(pooled)
    parts = {}
    labelled = yb >= 0
    kd_rows = torch.ones_like(labelled) if cfg.kd_on_labelled else ~labelled
    if t_logits is not None:
        kd_rows = kd_rows & torch.isfinite(t_logits).all(1)  # NaN: no soft label on this window
    if t_logits is not None and cfg.w_kd > 0 and kd_rows.any():
        t = cfg.temperature
        parts["kd"] = cfg.w_kd * t * t * F.kl_div(F.log_softmax(logits[kd_rows] / t, 1),
                                                  F.log_softmax(t_logits[kd_rows] / t, 1),
                                                  log_target=True, reduction="batchmean")
    if cfg.w_embed > 0:
        parts["embed"] = cfg.w_embed * (1 - F.cosine_similarity(emb, t_embed, dim=1)).mean()
    if cfg.w_hint > 0:
        target = hint_targets(t_tokens, tok.shape[1])
        pred = hint_map(tok)
        parts["hint"] = cfg.w_hint * F.mse_loss(F.layer_norm(pred, pred.shape[-1:]),
                                                F.layer_norm(target, target.shape[-1:]))
    if labelled.any() and cfg.w_label > 0:
        parts["label"] = cfg.w_label * F.cross_entropy(logits[labelled], yb[labelled])
    loss = sum(parts.values())
    return loss, {k: float(v.detach()) for k, v in parts.items()}


def distill(teacher, teacher_card: ModelCard, train: Windows, size: str, cfg: DistillConfig,
            teacher_spec: str = "", data: dict | None = None, progress: bool = True,
            targets: TeacherTargets | None = None, device=None, student_format: ModelCard | None = None):
    """(student, card, history): a student of `size` distilled from `teacher` on `train`.
    `targets`: the teacher's outputs on `train` computed earlier (`prepare_targets`), e.g. from
    a cache; the teacher is then not run at all. `student_format`: the card whose input format
    (normalisation included) and classes the student takes when they are not the teacher's;
    its `targets` are then required (`targets_on_teacher_spec`). The student trains on `device` (or the
    session's, `edgehar.train.loop`; the teacher's targets are computed on the CPU) and comes
    back on the CPU."""
    if has_task_head(teacher) and getattr(teacher, "n_classes", len(teacher_card.labels)) not in (
            None, len(teacher_card.labels)):
        raise UserError(teacher_spec, "teacher head and card disagree on the number of classes")
    x = (student_format or teacher_card).normalise(train.x)
    if targets is None:
        if student_format is not None:
            raise ValueError("a teacher on another input spec needs its targets on the converted windows")
        targets = prepare_targets(teacher, teacher_card, x, progress)
    elif len(targets.embed) != len(x):
        raise ValueError(f"targets cover {len(targets.embed)} windows, the training set has {len(x)}")
    card = student_card_from_teacher(size, teacher_card, targets, teacher_spec, data or {}, student_format)
    torch.manual_seed(cfg.seed)
    student = build(card.arch)
    if hasattr(student, "text_basis"):
        student.text_basis.copy_(torch.from_numpy(np.ascontiguousarray(targets.basis, np.float32)))
    hint_map = nn.Linear(card.arch["config"]["d"], targets.tokens.shape[-1])
    y = keep_label_fraction(train.y, cfg.label_fraction, cfg.seed)
    tensors = [torch.from_numpy(a) for a in (x, y, targets.embed, targets.tokens)]
    t_logits = None if targets.logits is None else torch.from_numpy(targets.logits)
    dev = loop.device_for(device)
    student.to(dev), hint_map.to(dev)
    params = list(student.parameters()) + list(hint_map.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    total = cfg.steps
    sched = one_cycle(opt, cfg.lr, total)
    rng, gen = np.random.default_rng(cfg.seed), torch.Generator().manual_seed(cfg.seed)
    state = loop.TrainState({"student": student, "hint_map": hint_map}, opt, sched, {"augment": gen},
                            {"order": rng})
    checkpoints = loop.Checkpointer(f"distill-{size}", {
        **{k: v for k, v in vars(cfg).items()}, "windows": len(x),
        "shapes": loop.shapes(student, hint_map)})
    checkpoints.restore(state)
    p = state.progress
    bar = tqdm(total=total, initial=state.step, desc=f"distill-{size}", disable=not progress, leave=False)
    student.train()
    for idx in loop.shuffled_batches(state, len(x), cfg.batch_size, rng, total):
        xb, yb, eb, tb = (t[idx] for t in tensors)
        if cfg.augment:  # on the host: the generator's draws do not depend on the device
            xb = scale(jitter(xb, gen), gen)
        tl = None if t_logits is None else t_logits[idx]
        xb, yb, eb, tb, tl = loop.to_device((xb, yb, eb, tb, tl), dev)
        with loop.device_scope(dev), loop.autocast(dev):
            loss, parts = distill_loss(student, hint_map, xb, yb, tl, eb, tb, cfg)
        p["losses"].append(optimiser_step(loss, opt, sched, bar))
        state.step += 1
        checkpoints.step(state, total)
    bar.close()
    history, step = p["history"], state.step
    student.to("cpu"), hint_map.to("cpu")
    student.eval()
    card.provenance["training"] = {
        "method": "distillation", "teacher": teacher_spec, "steps": step,
        "seed": cfg.seed, "label_fraction": cfg.label_fraction, "temperature": cfg.temperature,
        "augment": cfg.augment, "kd_on_labelled": cfg.kd_on_labelled,
        "weights": {"kd": cfg.w_kd, "embed": cfg.w_embed, "hint": cfg.w_hint, "label": cfg.w_label},
        "soft_labels": targets.logits is not None, "train_windows": len(x),
        "soft_label_windows": 0 if targets.logits is None else int(np.isfinite(targets.logits).all(1).sum()),
        "labelled_windows": int((y >= 0).sum()), "final_loss": history[-1] if history else None}
    return student, card, history


# -- evaluation ---------------------------------------------------------------------------

def without_stream(w: Windows, card: ModelCard, stream: str) -> Windows:
    """Windows whose `stream` reads as absent: its channels hold the normalisation mean, so they
    are exactly zero after `card.normalise` (the student's absent-stream convention)."""
    idx = card.streams[stream]
    x = w.x.copy()
    mean = np.asarray(card.norm_mean, np.float32) if card.norm_mean else np.zeros(x.shape[-1], np.float32)
    x[..., idx] = mean[idx]
    return replace(w, x=x)


@torch.no_grad()
def zero_shot_report(student, card: ModelCard, w: Windows) -> dict | None:
    """Classify by cosine of the student embedding to the card's class-text prototypes."""
    if not card.text_prototypes:
        return None

    w = w.labelled()
    student.eval()
    emb = torch.cat([student(torch.from_numpy(card.normalise(w.x[i])))[1]
                     for i in batches(len(w), 512, None)])
    protos = torch.tensor(card.text_prototypes)
    pred = (F.normalize(emb, dim=1) @ F.normalize(protos, dim=1).T).argmax(1).numpy()
    return report(w.y, pred, card.labels)


def student_metrics(student, card: ModelCard, test: Windows) -> dict:
    """Test macro-F1/accuracy, the same with every non-acc stream absent, and zero-shot."""
    full = evaluate(student, test, card)
    out = {"test": {k: full[k] for k in ("macro_f1", "accuracy", "n")}, "confusion": full["confusion"],
           "params": count_params(student),
           "macs": int(torch_macs(student, torch.zeros(1, card.window, len(card.channels))))}
    for stream in card.streams:
        if stream != "acc" and "acc" in card.streams:
            r = evaluate(student, without_stream(test, card, stream), card)
            out[f"test_without_{stream}"] = {k: r[k] for k in ("macro_f1", "accuracy")}
    zs = zero_shot_report(student, card, test)
    if zs is not None:
        out["zero_shot"] = {k: zs[k] for k in ("macro_f1", "accuracy")}
    return out


def teacher_metrics(teacher, card: ModelCard, test: Windows) -> dict | None:
    """The teacher's own test macro-F1 (when it has a task head)."""
    if not has_task_head(teacher):
        return None

    test = test.labelled()
    pred = predict_logits(teacher, card.normalise(test.x), batch_size=256).argmax(1)
    r = report(test.y, pred, card.labels)
    return {k: r[k] for k in ("macro_f1", "accuracy", "n")}
