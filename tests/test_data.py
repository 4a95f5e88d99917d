"""Data layer on generated recordings: windows, labels, resampling, units, splits, stats."""

import numpy as np
import pytest

from edgehar.data.normalise import channel_stats
from edgehar.data.recording import Recording
from edgehar.data.resample import G, convert_units, resample, unit_factor
from edgehar.data.splits import leave_subjects_out, split_subjects, validation_subjects
from edgehar.data.windows import make_windows, window_label, window_starts


def make_rec(n=1000, rate=50.0, subject=1, labels=None, channels=3):
    rng = np.random.default_rng(subject)
    return Recording(rng.normal(size=(n, channels)), rate,
                     [f"acc_{a}" for a in "xyz"][:channels], ["g"] * channels, subject=subject,
                     labels=labels, label_names=("a", "b"))


def test_window_starts_cover_only_full_windows():
    assert window_starts(10, 4, 2).tolist() == [0, 2, 4, 6]
    assert window_starts(3, 4, 2).tolist() == []


def test_window_label_majority_and_purity():
    assert window_label(np.array([0, 0, 0, 1]), 2, 0.7) == 0
    assert window_label(np.array([0, 0, 1, 1]), 2, 0.7) == -1
    assert window_label(np.array([-1, -1, 1, 1]), 2, 0.5) == 1
    assert window_label(np.array([-1, -1, -1, 1]), 2, 0.5) == -1


def test_make_windows_labels_subjects_and_unlabelled_kept():
    labels = np.full(1000, -1)
    labels[:500] = 0
    labels[500:900] = 1
    w = make_windows([make_rec(labels=labels), make_rec(subject=2)], 100, 50, purity=0.8)
    assert w.x.shape == (2 * 19, 100, 3)
    first = w.take(w.subject == 1)
    assert first.y[0] == 0 and first.y[12] == 1 and first.y[-1] == -1
    assert (w.take(w.subject == 2).y == -1).all()
    np.testing.assert_array_equal(first.x[3], make_rec(labels=labels).data[150:250])
    assert len(w.labelled()) + len(w.unlabelled()) == len(w)


def test_make_windows_rejects_mixed_rates():
    with pytest.raises(ValueError, match="rate/channels differ"):
        make_windows([make_rec(), make_rec(rate=25.0)], 10, 5)


def test_resample_keeps_a_sine_and_the_labels():
    t = np.arange(2000) / 50.0
    data = np.stack([np.sin(2 * np.pi * 1.0 * t)] * 3, 1)
    labels = (t > 20).astype(int)
    rec = Recording(data, 50.0, ["acc_x", "acc_y", "acc_z"], ["g"] * 3, labels=labels,
                    label_names=("a", "b"))
    r20 = resample(rec, 20.0)
    assert r20.n_samples == 800 and r20.rate == 20.0
    t20 = np.arange(800) / 20.0
    inner = slice(20, -20)
    np.testing.assert_allclose(r20.data[inner, 0], np.sin(2 * np.pi * t20)[inner], atol=0.02)
    assert abs(r20.labels.argmax() - 20 * 20) <= 1


def test_unit_conversion_round_trip():
    rec = make_rec()
    ms2 = convert_units(rec, ["m/s^2"] * 3)
    np.testing.assert_allclose(ms2.data, rec.data * G, rtol=1e-6)
    np.testing.assert_allclose(convert_units(ms2, ["g"] * 3).data, rec.data, rtol=1e-6)
    assert unit_factor("deg/s", "rad/s") == pytest.approx(np.pi / 180)
    with pytest.raises(ValueError):
        unit_factor("g", "rad/s")


def test_splits_are_subject_disjoint():
    recs = [make_rec(subject=s) for s in range(1, 11)]
    w = make_windows(recs, 100, 100)
    train, test = split_subjects(w, [2, 4])
    assert set(test.subject) == {2, 4} and not set(train.subject) & {2, 4}
    folds = leave_subjects_out(range(1, 11), k=3)
    tested = sorted(s for _, t in folds for s in t)
    assert tested == list(range(1, 11))
    for tr, te in folds:
        assert not set(tr) & set(te)
    assert validation_subjects(range(1, 21), 0.1, seed=3) == validation_subjects(range(1, 21), 0.1, seed=3)


def test_channel_stats():
    w = make_windows([make_rec(n=5000)], 100, 100)
    mean, std = channel_stats(w)
    np.testing.assert_allclose(mean, 0, atol=0.05)
    np.testing.assert_allclose(std, 1, atol=0.05)
