"""Distillation on small generated windows with a tiny HAR-FM teacher (fast), plus its errors."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from edgehar.card import ModelCard
from edgehar.checkpoint import save_checkpoint
from edgehar.models import load_model
from edgehar.data.splits import keep_label_fraction
from edgehar.data.windows import Windows
from edgehar.errors import UserError
from edgehar.models.harfm import HarFM
from edgehar.models.inference import evaluate
from edgehar.models.teacher import make_teacher_card, save_teacher
from edgehar.train.distill import (DistillConfig, distill, distill_loss, prepare_targets,
                                   reduction_basis, student_metrics, teacher_outputs, without_stream)

CHANNELS = ("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z")
LABELS = ("walking", "sitting", "lying")


def synthetic_windows(n=240, seed=0) -> Windows:
    """Three separable 'activities': a 2 Hz swing, a still tilt, a still flat pose; some unlabelled."""
    rng = np.random.default_rng(seed)
    t = np.arange(128) / 50.0
    y = rng.integers(0, 3, n)
    x = rng.normal(0, 0.05, (n, 128, 6)).astype(np.float32)
    x[y == 0, :, 0] += np.sin(2 * np.pi * 2 * t)
    x[y == 0, :, 3] += np.cos(2 * np.pi * 2 * t)
    x[y == 1, :, 1] += 1.0
    x[y == 2, :, 2] += 1.0
    y[: n // 6] = -1
    return Windows(x=x, y=y.astype(np.int64), subject=rng.integers(1, 6, n).astype(np.int64), rate=50.0,
                   channels=CHANNELS, units=("g",) * 3 + ("rad/s",) * 3, label_names=LABELS, hop=64)


@pytest.fixture(scope="module")
def teacher():
    torch.manual_seed(0)
    w = synthetic_windows()
    t = HarFM({"d": 16, "stack1": [1, 2, 32], "stack2": [1, 2, 32], "groups": 6, "entries": 4,
               "tau_start": 2.0, "tau_end": 0.5, "kappa": 0.1, "diversity_weight": 0.1,
               "index_weight": 1.0, "align_weight": 1.0, "mask_start_prob": 0.2, "mask_span": 3,
               "dropout": 0.0, "dataset": "test"})
    t.set_task(3, list(LABELS))
    card = make_teacher_card(t, w, [0.0] * 6, [1.0] * 6, labels=list(LABELS))
    return t.eval(), card


def test_label_fraction_is_stratified():
    y = np.repeat(np.arange(3), 100)
    kept = keep_label_fraction(y, 0.1, seed=0)
    assert [(kept == c).sum() for c in range(3)] == [10, 10, 10]
    assert (kept[kept >= 0] == y[kept >= 0]).all()


def test_reduction_basis_keeps_cosines():
    rng = np.random.default_rng(0)
    low = rng.normal(size=(200, 8))
    emb = low @ rng.normal(size=(8, 384))  # rank 8 in a 384-d space
    basis = reduction_basis(emb, None, 16)
    a, b = emb[0], emb[1]
    cos = a @ b / np.linalg.norm(a) / np.linalg.norm(b)
    pa, pb = a @ basis, b @ basis
    assert pa @ pb / np.linalg.norm(pa) / np.linalg.norm(pb) == pytest.approx(cos, abs=1e-4)
    assert reduction_basis(emb[:, :32], None, 64).shape == (32, 32)


def test_distill_learns_and_round_trips(teacher, tmp_path):
    t, tcard = teacher
    w = synthetic_windows()
    student, card, history = distill(t, tcard, w, "tiny", DistillConfig(steps=48, batch_size=32, seed=0),
                                     "test-teacher", {"dataset": "synthetic"}, progress=False)
    assert history[-1] < history[0]
    assert card.kind == "student" and card.labels == list(LABELS) and card.rate == tcard.rate
    # text-aligned teacher: 3 unit prototypes in the student's reduced embedding space
    protos = np.array(card.text_prototypes)
    assert protos.shape == (3, card.arch["config"]["embed_dim"])
    np.testing.assert_allclose(np.linalg.norm(protos, axis=1), 1, atol=1e-5)
    test = synthetic_windows(120, seed=1)
    m = student_metrics(student, card, test)
    assert m["test"]["macro_f1"] == evaluate(student, test, card)["macro_f1"]
    assert "test_without_gyro" in m and "zero_shot" in m
    path = tmp_path / "s.pt"
    save_checkpoint(path, student, card)
    again, card2 = load_model(path, kind="student")
    x = torch.from_numpy(card.normalise(test.x[:4]))
    assert torch.equal(again(x)[0], student(x)[0]) and card2 == card


def test_teacher_outputs_run_the_backbone_once_with_the_same_result(teacher):
    t, tcard = teacher
    x = tcard.normalise(synthetic_windows(20).x)
    calls = []
    hook = t.stack2.register_forward_hook(lambda *a: calls.append(1))
    logits, embed, tokens = teacher_outputs(t, x, batch_size=8, progress=False)
    hook.remove()
    assert len(calls) == 3  # one backbone pass per batch of 8, 8, 4 windows
    assert "tokens" not in vars(t)  # the per-batch shortcut is gone afterwards
    with torch.no_grad():
        xb = torch.from_numpy(x)
        torch.testing.assert_close(torch.from_numpy(tokens), t.tokens(xb))
        torch.testing.assert_close(torch.from_numpy(embed), t.text_projection(xb))
        torch.testing.assert_close(torch.from_numpy(logits), t(xb))


def test_distill_from_precomputed_targets_with_augmentation(teacher):
    t, tcard = teacher
    w = synthetic_windows(60)
    targets = prepare_targets(t, tcard, tcard.normalise(w.x), progress=False)
    cfg = DistillConfig(steps=3, batch_size=16, augment=True)
    student, card, history = distill(None, tcard, w, "tiny", cfg, targets=targets, progress=False)
    assert card.provenance["training"]["steps"] == 3 and card.provenance["training"]["augment"]
    assert np.isfinite(history).all()
    with pytest.raises(ValueError, match="targets cover 60 windows"):
        distill(None, tcard, synthetic_windows(30), "tiny", cfg, targets=targets, progress=False)


def test_absent_stream_is_zero_after_normalising(teacher):
    _, tcard = teacher
    card = ModelCard(**{**tcard.to_dict(), "norm_mean": [0.5] * 6, "norm_std": [2.0] * 6})
    w = without_stream(synthetic_windows(10), card, "gyro")
    assert (card.normalise(w.x)[..., 3:] == 0).all()


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "edgehar", "distill", *args], capture_output=True, text=True)


def test_distill_errors_name_both_sides(teacher, tmp_path, data_root):
    out = run_cli("--teacher", str(tmp_path / "missing.pt"), "--student", "tiny")
    assert out.returncode == 2 and "missing.pt: no such checkpoint" in out.stderr
    assert out.stderr.count("\n") == 1
    t, tcard = teacher
    path = tmp_path / "teacher.pt"
    save_teacher(path, t, tcard)
    # channel mismatch: a 6-channel teacher on the 3-channel wrist recordings
    out = run_cli("--teacher", str(path), "--data", "banglejs")
    assert out.returncode == 2 and "3 channels (acc_x, acc_y, acc_z)" in out.stderr
    assert "model expects 6" in out.stderr
    # rate mismatch: windows at 20 Hz for a 50 Hz teacher
    from edgehar.calib.build import calib_from_windows, save_calib
    w20 = synthetic_windows(20)
    w20.rate = 20.0
    save_calib(tmp_path / "w20.npz", calib_from_windows(w20, 20))
    out = run_cli("--teacher", str(path), "--windows", str(tmp_path / "w20.npz"))
    assert out.returncode == 2 and "20 Hz but the teacher takes 50 Hz" in out.stderr


def test_negative_loss_weight_is_a_one_line_error():
    out = run_cli("--teacher", "whatever.pt", "--w-hint", "-0.5")
    # refused at parse time, before any file is read
    assert out.returncode == 2 and out.stderr.splitlines()[-1] == \
        "edgehar distill: error: argument --w-hint: must be >= 0, got '-0.5'"


def test_soft_labels_can_skip_labelled_windows():
    from edgehar.models.student import build, make_student_card

    w = synthetic_windows(8)
    card = make_student_card("tiny", w)
    torch.manual_seed(0)
    student, hint = build(card.arch).eval(), torch.nn.Linear(32, 16)
    x = torch.from_numpy(card.normalise(w.x))
    t_logits, t_embed, t_tokens = torch.randn(8, 3), torch.randn(8, 64), torch.randn(8, 13, 16)
    y = torch.from_numpy(w.y)
    cfg = DistillConfig(kd_on_labelled=False)
    _, all_labelled = distill_loss(student, hint, x, y.clamp(min=0), t_logits, t_embed, t_tokens, cfg)
    assert "kd" not in all_labelled and "label" in all_labelled
    y_half = y.clone()
    y_half[:4] = -1
    _, half = distill_loss(student, hint, x, y_half, t_logits, t_embed, t_tokens, cfg)
    _, first4 = distill_loss(student, hint, x[:4], y_half[:4], t_logits[:4], t_embed[:4], t_tokens[:4], cfg)
    assert half["kd"] == pytest.approx(first4["kd"], rel=1e-5)  # the mean over the unlabelled rows only
