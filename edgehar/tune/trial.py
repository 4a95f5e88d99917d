"""One trial of `edgehar tune`: a student configuration distilled briefly from the teacher,
scored on the validation split, exported full-int8 and measured on every target core.

The teacher runs once for the whole search (`load_tune_data`: its targets on the training
windows are computed up front and shared by every trial); each trial then costs its
distillation steps, one int8 conversion and one emulated run per core.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgehar.calib.build import load_calib
from edgehar.checkpoint import save_checkpoint
from edgehar.data import hapt
from edgehar.data.corpus import is_corpus
from edgehar.data.datasets import windows_for_card
from edgehar.data.windows import Windows
from edgehar.data.wrist_corpus import load_part, relabel_to
from edgehar.errors import UserError
from edgehar.tune.measure import measure_student

CALIB_WINDOWS = 200  # training windows the int8 converter calibrates on (seeded draw)


@dataclass
class TuneData:
    """Everything a trial needs that does not change between trials."""

    teacher: object
    teacher_card: object
    teacher_spec: str
    train: object          # Windows the students distil on (unlabelled ones included)
    validation: object     # Windows every choice is scored on (labelled, other subjects)
    targets: object        # the teacher's TeacherTargets on `train`
    data: dict             # provenance["data"] of the students
    calib_x: np.ndarray = field(repr=False, default=None)  # normalised training windows


def load_tune_data(teacher_spec: str, data: str | None, root=None, windows: str | None = None,
                   seed: int = 0, progress: bool = True) -> TuneData:
    """The teacher, the training and validation windows in its format, and its targets.

    `data`: a registered data set or own-data folder (validation: a seeded share of the
    training subjects, `recipes.split_train_validation`; HAPT's official test subjects are left
    out entirely), or a corpus folder (its own train and validation splits, wrist acc windows).
    `windows`: a windows .npz (calib format) split by subject the same way."""
    from edgehar.recipes import split_train_validation
    from edgehar.train.distill import load_teacher_spec, prepare_targets

    teacher, tcard = load_teacher_spec(teacher_spec)
    if windows:
        train_all, what = _windows_file(windows, tcard), {"dataset": "windows", "file": str(windows)}
        train, val, _ = split_train_validation(train_all, [], seed)
    elif is_corpus(data):
        return _corpus_data(teacher, tcard, teacher_spec, data, seed, progress)
    else:
        w = windows_for_card(tcard, data, root)
        test = list(hapt.TEST_SUBJECTS) if data == "hapt" else []
        train, val, _ = split_train_validation(w, test, seed)
        what = {"dataset": data, "root": str(root) if root else None, "test_subjects": test}
    if not len(val.labelled()):
        raise UserError(windows or data, "no labelled validation windows (tune scores every trial on a "
                                         "validation share of the training subjects: it needs several subjects)")
    targets = prepare_targets(teacher, tcard, tcard.normalise(train.x), progress)
    return TuneData(teacher, tcard, teacher_spec, train, val, targets, what, calib_draw(tcard, train, seed))


def _windows_file(path: str, card):
    from edgehar.train.distill import check_windows_fit

    c = load_calib(path)
    p = c.provenance
    w = Windows(x=c.x, y=c.y, subject=c.subject, rate=float(p.get("rate", 0)),
                channels=tuple(p.get("channels", ())), units=tuple(p.get("units", ())),
                label_names=tuple(p.get("label_names", card.labels)), hop=int(p.get("hop", 0)))
    check_windows_fit(w, card, path)
    return w


def _corpus_data(teacher, tcard, spec: str, folder, seed: int, progress: bool) -> TuneData:
    """As `recipes.distill_corpus_student` reads a corpus (train split, a routed teacher sees
    each window through its source's stem), plus the corpus's validation split."""
    from edgehar.recipes import corpus_teacher_targets

    labels = list(tcard.labels)
    part, targets, data = corpus_teacher_targets(teacher, tcard, folder, spec, progress)
    train = part.windows(labels)
    val = relabel_to(load_part(folder, "validation"), labels).windows(labels, labelled_only=True)
    return TuneData(teacher, tcard, spec, train, val, targets, data, calib_draw(tcard, train, seed))


def calib_draw(card, train, seed: int) -> np.ndarray:
    """Normalised training windows for the int8 converter (a seeded draw, labelled or not)."""
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(train), min(CALIB_WINDOWS, len(train)), replace=False))
    return card.normalise(train.x[idx]).astype(np.float32)


def untrained_student(data: TuneData, size):
    """A student of `size` with initial weights (instruction counts do not depend on them)."""
    import torch

    from edgehar.models.student import build
    from edgehar.train.distill import student_card_from_teacher

    card = student_card_from_teacher(size, data.teacher_card, data.targets, data.teacher_spec, data.data)
    torch.manual_seed(0)
    return build(card.arch).eval(), card


def run_trial(data: TuneData, size, steps: int, seed: int, folder: Path, toolchain,
              targets: list[str]) -> dict:
    """Distil `size` for `steps`, score it on validation, export int8 and measure it.
    Writes `folder`/student.pt and `folder`/model_int8.tflite; returns the trial's figures."""
    from edgehar.models.inference import evaluate
    from edgehar.recipes import scores
    from edgehar.train.distill import DistillConfig, distill

    student, card, history = distill(data.teacher, data.teacher_card, data.train, size,
                                     DistillConfig(steps=steps, seed=seed), data.teacher_spec, data.data,
                                     progress=False, targets=data.targets)
    val = scores(evaluate(student, data.validation, card))
    card.provenance.setdefault("metrics", {})["validation"] = val
    folder.mkdir(parents=True, exist_ok=True)
    save_checkpoint(folder / "student.pt", student, card, extra={"history": history})
    cost = measure_student(toolchain, student, card, data.calib_x, folder / "model_int8.tflite", targets)
    return {"validation_macro_f1": val["macro_f1"], "validation_accuracy": val["accuracy"], **cost}
