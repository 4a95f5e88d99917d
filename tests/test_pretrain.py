"""The pre-training loop's batch sampling and stage-aware loss curve, few-label fine-tuning,
the generated windows smoke runs use, and the rotation-safe normalisation (no data needed)."""

import numpy as np
import pytest
import torch

from edgehar.data.normalise import rotation_safe_stats
from edgehar.models import augment, build
from edgehar.recipes import family_config
from edgehar.train.finetune import label_subset
from edgehar.train.pretrain import PretrainResult, pretrain, subject_groups, synthetic_windows


def test_subject_groups_hold_windows_of_one_subject():
    subject = torch.tensor([3] * 50 + [7] * 5 + [9] * 45)
    gen = torch.Generator().manual_seed(0)
    idx = subject_groups(subject, 64, 8, gen)
    assert idx.shape == (64,) and idx.min() >= 0 and idx.max() < len(subject)
    groups = subject[idx].view(8, 8)
    assert (groups == groups[:, :1]).all()  # every group: one subject
    # subjects are drawn in proportion to their windows: the 5-window subject is rare
    many = subject[subject_groups(subject, 8000, 8, gen)].view(-1, 8)[:, 0]
    share = (many == 7).float().mean().item()
    assert 0.01 < share < 0.1
    assert subject_groups(subject, 10, 4, gen).shape == (10,)  # a partial last group


def test_relcon_batches_come_in_same_subject_groups(monkeypatch):
    w = synthetic_windows(n=96)
    torch.manual_seed(0)
    model = build({"name": "relcon", "config": {**family_config("relcon", "tiny", w), "same_subject": 4,
                                                "distance_fraction": 0.5}})
    seen = []
    real = model.pretrain_loss

    def spy(batch):
        seen.append(batch["subject"].clone())
        return real(batch)

    monkeypatch.setattr(model, "pretrain_loss", spy)
    result = pretrain(model, w.x, w.y, w.subject, steps=6, batch_size=8, progress=False)
    assert all((s.view(2, 4) == s.view(2, 4)[:, :1]).all() for s in seen)
    # two stages, never averaged together: the curve is cut at the switch (step 3)
    assert [name for _, name in result.phases] == ["distance", "relcon"]
    curves = result.phase_curves()
    assert [p[0] for p in curves["distance"]] == [1, 2, 3] and [p[0] for p in curves["relcon"]] == [4, 5, 6]


def test_phase_curves_of_a_single_stage_family():
    r = PretrainResult(loss_curve=[[1, 2.0], [2, 1.0]], phases=[[0, "pretrain"]])
    assert r.phase_curves() == {"pretrain": [[1, 2.0], [2, 1.0]]}


def test_label_subset_is_a_seeded_per_class_share():
    w = synthetic_windows()
    sub = label_subset(w, 0.1, seed=3)
    assert (sub.y >= 0).all() and set(sub.y.tolist()) == set(w.labelled().y.tolist())
    for k in np.unique(w.labelled().y):
        assert (sub.y == k).sum() == max(1, round(0.1 * (w.y == k).sum()))
    assert np.array_equal(label_subset(w, 0.1, seed=3).x, sub.x)
    assert not np.array_equal(label_subset(w, 0.1, seed=4).x, sub.x)
    assert len(label_subset(w, 1.0)) == len(w.labelled())
    with pytest.raises(ValueError):
        label_subset(w, 0.0)


def test_synthetic_windows_are_the_generated_hapt_stand_in():
    w = synthetic_windows(length=128, rate=50.0)
    assert w.x.shape[1:] == (128, 6) and w.rate == 50.0 and len(w.label_names) == 6
    assert (w.y < 0).any() and len(set(w.subject.tolist())) == 10  # transitions stay unlabelled
    assert len(synthetic_windows(n=40)) == 40


def test_rotation_safe_normalisation_commutes_with_rotations():
    g = np.random.default_rng(0)
    x = (g.normal(size=(32, 50, 7)) * [1, 2, 3, 10, 20, 30, 5] + [0.5, -1, 1, 0, 0, 0, 9]).astype(np.float32)
    positions = augment.sensor_positions(["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z", "temp"])
    mean, std = rotation_safe_stats(x, positions)
    assert mean[:6] == [0.0] * 6 and len(set(std[:3])) == 1 and len(set(std[3:6])) == 1
    assert mean[6] == pytest.approx(9, abs=0.5) and std[6] == pytest.approx(5, rel=0.1)
    norm = lambda a: (a - np.float32(mean)) / np.float32(std)  # noqa: E731
    gen = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    rotated_then_normalised = norm(augment.rotate(torch.from_numpy(x), gen(), positions).numpy())
    normalised_then_rotated = augment.rotate(torch.from_numpy(norm(x)), gen(), positions).numpy()
    np.testing.assert_allclose(rotated_then_normalised, normalised_then_rotated, atol=1e-4)
