"""One function per recipe: teacher, baseline, student, export.

The CLI (`pretrain`, `finetune`, `distill`, `export`), `edgehar demo` and the benchmarks all
call these, so a recipe is written once and a figure in the README is made by the same code a
user runs. Every recipe takes its training windows and a *validation* split drawn from the
training subjects: every choice (steps, best teacher, thresholds) is made on validation;
test subjects are scored once, by the caller, for the report.
"""

from __future__ import annotations

import importlib
import time
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch

from edgehar.card import ModelCard, default_streams, provenance
from edgehar.data.corpus import read_manifest
from edgehar.data.normalise import channel_stats
from edgehar.data.splits import split_subjects, validation_subjects
from edgehar.data.vocabulary import activity_prompt, coarse
from edgehar.data.windows import Windows
from edgehar.data.wrist_corpus import (
    ACC,
    canonical_classes,
    check_teacher_fits_corpus,
    load_part,
    relabel,
    relabel_to,
    train_part,
)
from edgehar.errors import UserError
from edgehar.export import pipeline
from edgehar.models import FAMILIES, build
from edgehar.models.baselines import arch_for
from edgehar.models.inference import evaluate
from edgehar.models.limubert import canonical_labels, is_limubert
from edgehar.models.student import build as build_student
from edgehar.models.student import make_student_card
from edgehar.models.teacher import make_teacher_card
from edgehar.text import embed_texts
from edgehar.train import distill as distill_module
from edgehar.train.distill import (
    DistillConfig,
    distill,
    prepare_targets,
    targets_on_teacher_spec,
)
from edgehar.train.finetune import finetune
from edgehar.train.pretrain import pretrain
from edgehar.train.supervised import fit

VALIDATION_FRACTION = 0.15  # share of the training subjects held out for every choice


def split_train_validation(w: Windows, test_subjects, seed: int = 0,
                           fraction: float = VALIDATION_FRACTION) -> tuple[Windows, Windows, Windows]:
    """(train, validation, test), subject-disjoint: test holds `test_subjects`, validation a
    seeded `fraction` of the remaining subjects."""
    rest, test = split_subjects(w, test_subjects)
    val_subjects = validation_subjects(rest.subject, fraction, seed)
    train, val = split_subjects(rest, val_subjects)
    return train, val, test


def scores(metrics: dict) -> dict:
    """The figures of `edgehar.metrics.report` a card or a table keeps."""
    return {k: metrics[k] for k in ("macro_f1", "accuracy", "n") if k in metrics}


# -- teacher ------------------------------------------------------------------------------------
@dataclass
class TeacherRecipe:
    """Pre-train without labels, then fine-tune on the labelled training windows."""
    family: str = "harfm"
    config: str = "cpu"
    pretrain_steps: int = 2000
    pretrain_batch_size: int = 64
    pretrain_lr: float = 1e-3
    pretrain_weight_decay: float = 0.01
    pretrain_schedule: str = "cosine"  # or "one-cycle" (`edgehar.train.pretrain.SCHEDULES`)
    pretrain_clip_norm: float | None = 1.0
    finetune_steps: int = 1000
    finetune_batch_size: int = 64
    finetune_lr: float | None = None  # the family's default (1e-3, probe 1e-2)
    seed: int = 0
    overrides: dict = field(default_factory=dict)  # config entries over the named config's


def family_config(method: str, size: str, windows: Windows) -> dict:
    """The family's named config with the input format (and class names, which text-aligned
    families pre-train on) of `windows` filled in."""
    if method not in FAMILIES:
        raise UserError(method, f"unknown teacher family (known: {', '.join(FAMILIES)})")
    try:
        module = importlib.import_module(FAMILIES[method])
    except ModuleNotFoundError as e:
        if e.name != FAMILIES[method]:
            raise
        raise UserError(method, "this teacher family is not available in this build") from None
    configs = getattr(module, "CONFIGS", {})
    if size not in configs:
        raise UserError(size, f"unknown {method} config (known: {', '.join(configs)})")
    return {**configs[size], "channels": list(windows.channels), "window": int(windows.length),
            "rate": float(windows.rate), "streams": default_streams(windows.channels),
            "labels": list(windows.label_names)}


def pretrain_teacher(recipe: TeacherRecipe, windows: Windows, ctx=None, progress: bool = True,
                     extras: dict | None = None, device=None, **provenance_items):
    """(teacher, card, PretrainResult): a new teacher of `recipe.family` pre-trained on every
    window of `windows` (unlabelled ones included; a family whose pre-training has a labelled
    stage, `Teacher.pretrains_task`, gets its task head over `windows.label_names` first);
    `extras`: per-window arrays its batches carry (`edgehar.train.pretrain.pretrain`); `ctx` a
    torchrun context, else `device` (or the session's)."""
    torch.manual_seed(recipe.seed)  # same initial weights on every rank
    config = {**family_config(recipe.family, recipe.config, windows), **recipe.overrides}
    teacher = build({"name": recipe.family, "config": config})
    if teacher.pretrains_task:
        teacher.set_task(len(windows.label_names), list(windows.label_names))
    mean, std = teacher.normalisation(windows)  # the family's choice (language: rotation-safe)
    x = ((windows.x - np.float32(mean)) / np.float32(std)).astype(np.float32)
    result = pretrain(teacher, x, windows.y, windows.subject, recipe.pretrain_steps,
                      recipe.pretrain_batch_size, recipe.pretrain_lr, recipe.pretrain_weight_decay,
                      seed=recipe.seed, ctx=ctx, progress=progress, device=device, extras=extras,
                      schedule=recipe.pretrain_schedule, clip_norm=recipe.pretrain_clip_norm)
    phases = {name: [c[0][1], c[-1][1]] for name, c in result.phase_curves().items() if c}
    card = make_teacher_card(teacher, windows, mean, std, stage="pretrain", pretrain={
        "family": recipe.family, "config": recipe.config, "steps": recipe.pretrain_steps,
        "batch_size": recipe.pretrain_batch_size, "lr": recipe.pretrain_lr, "seed": recipe.seed,
        "windows": len(windows), "subjects": sorted(set(windows.subject.tolist())),
        "seconds": round(result.seconds, 1), "phases": phases,
        "world_size": getattr(ctx, "world", 1)}, **provenance_items)
    return teacher, card, result


def finetune_teacher(teacher, card: ModelCard, train: Windows, validation: Windows | None,
                     recipe: TeacherRecipe, linear_probe: bool = False, augment: bool = True,
                     label_fraction: float = 1.0, progress: bool = True) -> dict:
    """Fine-tune `teacher` on the labelled windows of `train` (in place; `card` updated with
    labels, prompts, text prototypes and provenance); returns its validation scores."""
    card.labels = list(train.label_names)
    card.tasks = {"activity": card.labels}
    card.prompts = {n: (card.prompts or {}).get(n, activity_prompt(n)) for n in card.labels}
    t0 = time.perf_counter()
    history = finetune(teacher, train, card, recipe.finetune_steps, recipe.finetune_batch_size,
                       recipe.finetune_lr, linear_probe=linear_probe, augment=augment,
                       seed=recipe.seed, progress=progress, label_fraction=label_fraction).pass_losses
    if teacher.text_dim:
        card.text_prototypes = embed_texts([card.prompts[n] for n in card.labels]).tolist()
    val = scores(evaluate(teacher, validation, card)) if validation is not None and len(validation.labelled()) else None
    card.provenance["stage"] = "probe" if linear_probe else "finetune"
    card.provenance["finetune"] = {
        "steps": recipe.finetune_steps, "batch_size": recipe.finetune_batch_size,
        "lr": recipe.finetune_lr, "linear_probe": linear_probe, "seed": recipe.seed,
        "label_fraction": label_fraction, "train_subjects": sorted(set(train.subject.tolist())),
        "validation_subjects": sorted(set(validation.subject.tolist())) if validation is not None else [],
        "pass_losses": history, "seconds": round(time.perf_counter() - t0, 1)}
    card.provenance.setdefault("metrics", {})["validation"] = val
    return val


def train_teacher(recipe: TeacherRecipe, train: Windows, validation: Windows | None,
                  progress: bool = True, **provenance_items):
    """(teacher, card, PretrainResult): the whole teacher recipe, pre-training on `train` (unlabelled windows
    included), then fine-tuning on its labels; validation scores in the card's provenance."""
    teacher, card, result = pretrain_teacher(recipe, train, progress=progress, **provenance_items)
    finetune_teacher(teacher, card, train, validation, recipe, progress=progress)
    card.provenance["recipe"] = {"teacher": asdict(recipe)}
    return teacher, card, result


# -- the corpus teacher -------------------------------------------------------------------------
@dataclass
class CorpusTeacherRecipe:
    """The HAR-FM corpus teacher (`edgehar.models.corpus_fm`: a stem per source data set over
    one backbone) on a pooled corpus's wrist windows: masked reconstruction on every window for
    the first `reconstruction_fraction` of the steps, then multi-task + text on the labelled
    ones; one-cycle schedule, no gradient clipping."""
    steps: int = 1500
    reconstruction_fraction: float = 0.2
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0
    augment: bool = True  # random scale + jitter (no rotation: WISDM's sitting vs standing is orientation)
    generic_p: float = 0.3  # share of windows through the generic stem instead of their own

    def teacher_recipe(self) -> TeacherRecipe:
        """The same recipe as the `TeacherRecipe` every family's pre-training reads."""
        return TeacherRecipe(
            family="corpus_fm", config="cpu", pretrain_steps=self.steps, pretrain_batch_size=self.batch_size,
            pretrain_lr=self.lr, pretrain_weight_decay=self.weight_decay, pretrain_schedule="one-cycle",
            pretrain_clip_norm=None, seed=self.seed,
            overrides={"reconstruction_fraction": self.reconstruction_fraction, "augment": self.augment,
                       "generic_p": self.generic_p})


def train_corpus_teacher(recipe: CorpusTeacherRecipe | TeacherRecipe, folder, datasets=None,
                         progress: bool = True, device=None):
    """(teacher, card, summary): the corpus teacher pre-trained (`pretrain_teacher`, the loop
    every family trains through) on the wrist windows of the train split of the corpus at
    `folder` (of `datasets` only, when given); each window carries its source, which routes it
    to its stem. `recipe`: a `CorpusTeacherRecipe`, or a `TeacherRecipe` of family corpus_fm.
    Validation scores through the generic stem and through each window's own stem are in the
    summary (`summary["validation"]["generic"]["macro_f1"]`) and the card."""
    if isinstance(recipe, CorpusTeacherRecipe):
        recipe = recipe.teacher_recipe()
    if recipe.family != "corpus_fm":
        raise UserError(recipe.family, "the corpus teacher is of family corpus_fm")
    t0 = time.perf_counter()
    train = train_part(folder, datasets)
    names, remap = canonical_classes(train)
    if not names:
        raise UserError(folder, "no labelled wrist windows in the train split: the corpus teacher's "
                                "multi-task stage learns from labels")
    train = relabel(train, remap)
    labels = train.manifest["labels"]
    source_classes = [sum(1 for n in labels if n.startswith(d + "/")) for d in train.sources]
    recipe = replace(recipe, overrides={**recipe.overrides, "sources": list(train.sources),
                                        "source_classes": source_classes})
    w = train.windows(names)
    data = {"dataset": "corpus", "root": str(folder), "split": "corpus train"}
    teacher, card, result = pretrain_teacher(recipe, w, progress=progress, device=device,
                                             extras={"source": train.source, "source_label": train.source_label},
                                             data=data)
    card.text_prototypes = teacher.label_text.numpy().round(6).tolist()
    val = relabel(load_part(folder, "validation", datasets=datasets), remap)
    vw = val.windows(names)
    validation = {}
    if (vw.y >= 0).any():
        for how, route in (("generic", None), ("own", teacher.route_for(val.sources, val.source))):
            validation[how] = {k: v for k, v in scores(evaluate(teacher, vw, card, route=route)).items()
                               if k != "n"}
    phases = card.provenance["pretrain"]["phases"]
    n_a = teacher.reconstruction_steps(recipe.pretrain_steps)
    summary = {"windows": len(w), "labelled": int((w.y >= 0).sum()), "classes": names,
               "sources": list(train.sources), "steps": {"a": n_a, "b": recipe.pretrain_steps - n_a},
               "loss_a": phases.get(teacher.phases[0]), "loss_b": phases.get(teacher.phases[1]),
               "validation": validation, "train_s": round(time.perf_counter() - t0, 1)}
    card.provenance["recipe"] = {"teacher": asdict(recipe)}
    card.provenance.setdefault("metrics", {})["validation"] = validation
    return teacher, card, summary


def distill_corpus_student(teacher, folder, size: str, cfg=None, progress: bool = True):
    """(student, card, history): an accelerometer-only student distilled from `teacher` (a
    checkpoint path or `limu-bert:DIR`, or a (teacher, card) pair) over every wrist window of
    the corpus's train split, unlabelled ones included; a routed teacher (the corpus teacher)
    sees each window through its own source's stem; LIMU-BERT sees each window in its own
    input spec (`distill_limubert_on_corpus`). Validation scores (the corpus's validation
    split, the student's classes) in the card's provenance."""
    if isinstance(teacher, (tuple, list)):
        (teacher, tcard), spec, where = teacher, "", folder
    else:
        spec = where = str(teacher)
        teacher, tcard = distill_module.load_teacher_spec(spec)
    if is_limubert(tcard):
        return distill_limubert_on_corpus(teacher, tcard, spec, folder, size, cfg, progress)
    labels = list(tcard.labels)
    train, targets, data = corpus_teacher_targets(teacher, tcard, folder, where, progress)
    val = relabel_to(load_part(folder, "validation"), labels).windows(labels)
    return distill_student(teacher, tcard, train.windows(labels), val, size, cfg, spec, data,
                           progress=progress, targets=targets)


def corpus_teacher_targets(teacher, tcard: ModelCard, folder, where, progress: bool = True):
    """(train part, teacher targets, data record) for distilling an accelerometer-only student
    from `teacher` over every wrist window of the corpus's train split (unlabelled ones
    included), relabelled to the teacher's classes; a routed teacher (the corpus teacher) sees
    each window through its own source's stem. A teacher that does not fit the corpus, or
    reads more than the accelerometer, is a `UserError` at `where`."""
    check_teacher_fits_corpus(tcard, read_manifest(folder), where)
    if list(tcard.channels) != list(ACC):
        raise UserError(where, f"teacher takes {', '.join(tcard.channels)}; a wrist student is "
                               "accelerometer-only (acc_x, acc_y, acc_z)")
    train = relabel_to(train_part(folder), list(tcard.labels))
    route = teacher.route_for(train.sources, train.source) if getattr(teacher, "takes_routes", False) else None
    targets = prepare_targets(teacher, tcard, tcard.normalise(train.x), progress, route=route)
    data = {"dataset": "corpus", "root": str(folder), "split": "corpus train (wrist placements, acc)"}
    return train, targets, data


def distill_limubert_on_corpus(teacher, tcard: ModelCard, spec: str, folder, size: str, cfg=None,
                               progress: bool = True):
    """`distill_corpus_student` with LIMU-BERT's published weights as the teacher. The teacher
    reads each corpus window converted to its own spec (`edgehar.data.limu.to_limu_spec`: acc
    m/s^2 + a pseudo-gyroscope, 120 samples at 20 Hz); the student keeps the corpus's (acc in
    g, the corpus's window and rate). Classes: the student's head is over the corpus classes
    the teacher also knows (on the activity vocabulary); a window labelled with one of them
    gets the label loss and the soft labels (the teacher's logits of those classes), an
    unlabelled window or one whose class is a coarser name of a head class ("stairs") the
    soft labels only, any other class (e.g. "running" for the UCI teacher) neither: the
    teacher cannot name it. The embedding and token-hint losses run on every window."""
    from edgehar.data.limu import to_limu_spec

    part = train_part(folder)
    teacher_classes = canonical_labels(tcard)
    corpus_classes, _ = canonical_classes(part)
    head = [c for c in teacher_classes if c in corpus_classes]
    if not head:
        raise UserError(folder, f"the corpus's train split labels none of the teacher's classes "
                                f"({', '.join(teacher_classes)}): the student would have no head")
    names = part.manifest["canonical"]
    label = np.array([names[c] if c >= 0 else "" for c in part.canonical.tolist()], dtype=object)
    parents = {coarse(c) for c in head}
    soft = np.array([n == "" or n in head or n in parents for n in label], bool)
    train = relabel_to(part, head).windows(head)
    converted = to_limu_spec(train, folder)  # the one place the input specs meet
    targets = targets_on_teacher_spec(teacher, tcard, converted, [teacher_classes.index(c) for c in head],
                                      soft, progress)
    fmt = make_student_card(size, train)  # acc in g, the corpus's rate and window, its statistics
    data = {"dataset": "corpus", "root": str(folder), "split": "corpus train (wrist placements, acc)"}
    val = relabel_to(load_part(folder, "validation"), head).windows(head)
    student, card, history = distill_student(teacher, tcard, train, val, size, cfg, spec, data,
                                             progress=progress, targets=targets, student_format=fmt)
    card.provenance["teacher"]["input"] = {
        "spec": {"rate": tcard.rate, "window": tcard.window, "channels": list(tcard.channels),
                 "units": list(tcard.units)},
        "conversion": "edgehar.data.limu.to_limu_spec: acc g -> m/s^2 (x 9.80665); gyroscope absent on "
                      "the wrist: the pseudo-gyroscope of the accelerometer (rotation of the low-passed "
                      "gravity direction, rad/s); window padded at its end by reflection to 120 samples "
                      "(the same rate); the student reads the unconverted window"}
    card.provenance["teacher"]["classes"] = {
        "teacher": list(tcard.labels), "student": head,
        "soft_labels": "the teacher's logits of the student's classes, on unlabelled windows, windows "
                       "of those classes and of a coarser name of one (e.g. stairs); none on windows "
                       "of other classes",
        "label_loss": "windows of the student's classes", "embedding_and_hints": "every window"}
    return student, card, history


# -- baseline -----------------------------------------------------------------------------------
def train_baseline(name: str, train: Windows, validation: Windows | None, steps: int, seed: int = 0,
                   progress: bool = True, **provenance_items):
    """(model, card): a baseline of `edgehar.models.baselines` trained from scratch on labels."""
    torch.manual_seed(seed)
    mean, std = channel_stats(train.labelled())
    arch = arch_for(name, len(train.channels), len(train.label_names), train.length)
    card = ModelCard(labels=list(train.label_names), rate=train.rate, window=train.length, hop=train.hop,
                     channels=list(train.channels), units=list(train.units), norm_mean=mean, norm_std=std,
                     kind="baseline", arch=arch)
    model = build(arch)
    t0 = time.perf_counter()
    history = fit(model, train, card, steps=steps, seed=seed, desc=name, progress=progress)
    val = scores(evaluate(model, validation, card)) if validation is not None else None
    card.provenance = provenance(steps=steps, seed=seed, recipe={"baseline": name, "steps": steps},
                                 train_s=round(time.perf_counter() - t0, 1), pass_losses=history,
                                 metrics={"validation": val}, **provenance_items)
    return model, card


def train_student_supervised(train: Windows, size: str = "tiny", card=None, steps: int = 2000, seed: int = 0,
                             data: dict | None = None, progress: bool = True, **fit_kwargs):
    """(student, card) trained with plain cross-entropy on the labelled windows of `train`
    (the distillation recipe adds teacher losses on top; this is its labels-only control)."""
    torch.manual_seed(seed)
    card = card or make_student_card(size, train, data=data)
    model = build_student(card.arch)
    history = fit(model, train, card, steps=steps, seed=seed, progress=progress,
                  desc=f"student-{size}", **fit_kwargs)
    card.provenance["training"] = {"method": "supervised", "steps": steps, "seed": seed,
                                   "final_loss": history[-1] if history else None,
                                   "train_windows": int((train.y >= 0).sum())}
    card.provenance.setdefault("metrics", {})["train"] = {
        k: v for k, v in evaluate(model, train, card).items() if k in ("macro_f1", "accuracy")}
    return model, card


# -- student ------------------------------------------------------------------------------------
def distill_student(teacher, teacher_card: ModelCard, train: Windows, validation: Windows | None,
                    size: str, cfg=None, teacher_spec: str = "", data: dict | None = None,
                    progress: bool = True, targets=None, student_format=None):
    """(student, card, history): a student of `size` distilled from `teacher` over `train`
    (unlabelled windows included); validation scores in the card's provenance.
    `student_format`: the student's input card when it is not the teacher's (`distill`)."""
    student, card, history = distill(teacher, teacher_card, train, size, cfg or DistillConfig(),
                                     teacher_spec, data, progress=progress, targets=targets,
                                     student_format=student_format)
    if validation is not None and len(validation.labelled()):
        card.provenance.setdefault("metrics", {})["validation"] = scores(evaluate(student, validation, card))
    return student, card, history


# -- export -------------------------------------------------------------------------------------
def export_artifact(checkpoint, out, **kwargs) -> dict:
    """The artifact folder of a student checkpoint (`edgehar.export.pipeline.export_student`:
    fp32 + int8 TFLite and ONNX, C array, card, parity)."""
    return pipeline.export_student(checkpoint, out, **kwargs)
