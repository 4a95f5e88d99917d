"""Few-label fine-tuning and zero-shot scoring of a corpus teacher on a data set it did not
pre-train on (`edgehar.train.corpus_transfer`), and the fine-tuning stage's options that
few-label transfer uses (`edgehar.train.finetune`: a constant rate, the best state on
validation)."""

import copy
from dataclasses import replace

import numpy as np
import pytest
import torch

from edgehar.data.windows import Windows
from edgehar.models.corpus_fm import CorpusFM
from edgehar.models.inference import evaluate
from edgehar.models.teacher import make_teacher_card
from edgehar.train.corpus_transfer import STEP_GRID, few_label_score, zero_shot_predict
from edgehar.train.finetune import finetune
from edgehar.zeroshot import label_text_embeddings

CFG = {"in_channels": 3, "sources": ["a", "b"], "source_classes": [3, 2], "n_canonical": 4, "window": 100}
ACC = ("acc_x", "acc_y", "acc_z")


def windows(n, seed, classes=3):
    """Windows whose class sets the mean of every channel: learnable from few labels."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    x = rng.normal(0, 0.3, (n, 100, 3)).astype(np.float32) + y[:, None, None].astype(np.float32)
    return Windows(x=x, y=y.astype(np.int64), subject=np.arange(n) // 10, rate=20.0, channels=ACC,
                   units=("g",) * 3, label_names=("a", "b", "c")[:classes], hop=50)


def teacher_and_card(w):
    torch.manual_seed(0)
    m = CorpusFM(CFG)
    m.set_task(4)
    return m.eval(), make_teacher_card(m, w, [0.0] * 3, [1.0] * 3, labels=["walking", "running", "sitting", "lying"])


def test_few_label_finetuning_chooses_its_steps_on_validation_and_learns():
    train, val, test = windows(300, 0), windows(90, 1), windows(90, 2)
    teacher, card = teacher_and_card(train)
    labels = ["a", "b", "c"]
    for init in (teacher, None):
        r = few_label_score(init, teacher.arch, card, train, val, test, labels, 0.1, seed=0)
        assert r["steps"] in STEP_GRID and r["train_windows"] == 30
        assert r["validation_macro_f1"] == max(r["validation_curve"].values())
        assert r["test_macro_f1"] > 0.9  # classes 1 g apart with 0.3 g noise: separable by construction
    assert teacher.n_classes == 4  # the teacher itself is left as it was


def small_task(seed=0):
    """A corpus teacher with a head over a new data set's three classes, and that data set."""
    train, val = windows(30, seed), windows(30, seed + 1)
    teacher, card = teacher_and_card(train)
    return teacher, replace(card, labels=["a", "b", "c"]), train, val


FEW = {"batch_size": 8, "lr": 1e-3, "augment": False, "progress": False, "schedule": "constant", "clip_norm": None}


def test_finetune_ends_with_the_state_that_scored_best_on_validation():
    teacher, card, train, val = small_task()
    r = finetune(teacher, train, card, steps=6, validation=val, keep_best_at=(6, 2, 4), **FEW)
    assert sorted(r.validation_curve) == [2, 4, 6] and r.windows == 30
    best = max(r.validation_curve.values())
    assert r.best_step == min(k for k, f in r.validation_curve.items() if f == best)  # the first, on a tie
    assert round(r.best_macro_f1, 4) == best
    # the teacher comes back in the chosen state: validation scores what the curve says
    assert evaluate(teacher, val, card)["macro_f1"] == pytest.approx(r.best_macro_f1, abs=1e-9)


def test_a_constant_rate_makes_a_kept_step_the_same_run_stopped_there():
    teacher, card, train, val = small_task()
    long, short = copy.deepcopy(teacher), copy.deepcopy(teacher)
    r = finetune(long, train, card, steps=5, validation=val, keep_best_at=(2,), **FEW)
    finetune(short, train, card, steps=2, **FEW)
    assert r.best_step == 2 and r.validation_curve == {2: round(evaluate(short, val, card)["macro_f1"], 4)}
    assert all(torch.equal(v, short.state_dict()[k]) for k, v in long.state_dict().items())


def test_finetune_options_are_checked():
    teacher, card, train, val = small_task()
    for bad in ({"validation": val}, {"keep_best_at": (2,)}, {"validation": val, "keep_best_at": (0, 2)},
                {"validation": val, "keep_best_at": (7,)}, {"schedule": "cosine"}):
        with pytest.raises(ValueError):
            finetune(teacher, train, card, steps=6, progress=False, **bad)


def test_zero_shot_is_the_nearest_label_text():
    w = windows(20, 0)
    teacher, card = teacher_and_card(w)
    labels = ["walking", "brushing teeth", "lying"]
    pred = zero_shot_predict(teacher, card, w.x, labels)
    with torch.no_grad():
        z = torch.nn.functional.normalize(teacher.text_projection(torch.from_numpy(card.normalise(w.x))), dim=1)
    want = (z.numpy() @ label_text_embeddings(labels).T).argmax(1)
    assert np.array_equal(pred, want)


def test_original_names_lists_each_sets_own_names_per_canonical_class():
    from edgehar.data.wrist_corpus import original_names
    from edgehar.data.wrist_corpus import CorpusPart

    m = {"labels": ["a/jogging", "a/sitting", "b/running on a treadmill", "b/sitting"],
         "canonical": ["running", "sitting"]}
    part = CorpusPart(x=np.zeros((5, 4, 3), np.float32), source=np.array([0, 0, 1, 1, 1]),
                      canonical=np.array([0, 1, 0, 1, -1]), source_label=np.array([0, 1, 0, 1, -1]),
                      subject=np.zeros(5, np.int64), dataset=np.array([0, 0, 1, 1, 1]), manifest=m,
                      sources=["a", "b"])
    assert original_names(part) == {"running": ["jogging", "running on a treadmill"]}


def test_language_teacher_aligns_extra_label_names_to_their_class():
    from edgehar.models.language import LanguageTeacher, class_descriptions

    cfg = {"encoder": "cnn", "widths": [8], "strides": [2], "kernel": 3, "channels": list(ACC), "window": 100,
           "rate": 20.0, "labels": ["running", "sitting"], "label_texts": {"running": ["jogging on a track"]}}
    texts, cls = LanguageTeacher(cfg).text_bank()
    n_run = len(class_descriptions("running")) + len(class_descriptions("jogging on a track"))
    assert int((cls == 0).sum()) == n_run and int((cls == 1).sum()) == len(class_descriptions("sitting"))
