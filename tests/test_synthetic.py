"""The embedded default data: deterministic, physically plausible, learnable, and readable back
through the Bangle.js loader the simulated device uses."""

import numpy as np
import pytest

from edgehar.data.synthetic import (CHANNELS, LABELS, RATE, synthetic_dataset, synthetic_recording,
                                    synthetic_windows, write_banglejs)


@pytest.mark.parametrize("placement", ["waist", "wrist"])
def test_deterministic_and_seed_dependent(placement):
    a = synthetic_recording(3, placement, seconds=6, bouts=1, seed=1)
    b = synthetic_recording(3, placement, seconds=6, bouts=1, seed=1)
    c = synthetic_recording(3, placement, seconds=6, bouts=1, seed=2)
    assert np.array_equal(a.data, b.data) and np.array_equal(a.labels, b.labels)
    assert a.data.shape != c.data.shape or not np.allclose(a.data, c.data)
    assert a.rate == RATE and a.channels == CHANNELS and a.units[:3] == ("g",) * 3
    assert a.units[3:] == ("rad/s",) * 3 and a.label_names == LABELS


@pytest.mark.parametrize("placement", ["waist", "wrist"])
def test_physics(placement):
    rec = synthetic_recording(1, placement, seconds=20, bouts=1)
    acc, gyro, y = rec.data[:, :3], rec.data[:, 3:], rec.labels
    assert set(np.unique(y)) == {-1, 0, 1, 2, 3, 4, 5}  # every activity + unlabelled transitions
    for k, name in enumerate(LABELS):
        a = acc[y == k]
        # at rest the accelerometer reads 1 g whatever the orientation; moving, 1 g on average
        assert abs(np.linalg.norm(a, axis=1).mean() - 1.0) < 0.08, name
        if name.startswith("walking"):
            assert a.std(0).max() > 0.1 and np.abs(gyro[y == k]).max() > 0.2, name
            # the step frequency (cadence) dominates the vertical spectrum at the waist
            if placement == "waist" and name == "walking":
                v = a[:, 0] - a[:, 0].mean()
                f = np.fft.rfftfreq(len(v), 1 / RATE)[np.argmax(np.abs(np.fft.rfft(v)))]
                assert 1.3 <= f <= 2.4, f
        else:
            assert a.std(0).max() < 0.08 and gyro[y == k].std(0).max() < 0.1, name
    # postures differ by the direction of gravity
    g = {n: acc[y == k].mean(0) for k, n in enumerate(LABELS)}
    assert np.linalg.norm(g["standing"] - g["laying"]) > 0.5


def nearest_centroid_accuracy(w, test_subjects) -> float:
    """Accuracy of a nearest-centroid classifier on per-channel mean and std of each window."""
    w = w.labelled()
    feats = np.concatenate([w.x.mean(1), w.x.std(1)], 1)
    test = np.isin(w.subject, test_subjects)
    centroids = np.stack([feats[~test & (w.y == k)].mean(0) for k in range(len(w.label_names))])
    pred = np.argmin(((feats[test][:, None] - centroids[None]) ** 2).sum(-1), 1)
    return float((pred == w.y[test]).mean())


def test_windows_subjects_and_learnable():
    recs = synthetic_dataset(6, "waist", seconds=12, bouts=1)
    assert [r.subject for r in recs] == [1, 2, 3, 4, 5, 6]
    w = synthetic_windows(recs, CHANNELS[:3])
    assert w.x.shape[1:] == (128, 3) and (w.y < 0).any()
    counts = w.class_counts()
    assert set(counts) == set(LABELS) and min(counts.values()) > 5
    # simple per-window features separate the classes across subjects (a model can learn them)
    assert nearest_centroid_accuracy(w, test_subjects=(5, 6)) > 0.6


def test_banglejs_round_trip(tmp_path):
    from edgehar.data import load_recording
    from edgehar.data.banglejs import load_banglejs

    rec = synthetic_recording(4, "wrist", seconds=5, bouts=1)
    path = write_banglejs(rec, tmp_path, exp=3)
    assert path.name == "acc_exp03_user04.txt"
    (back,) = load_banglejs(tmp_path)
    assert back.rate == pytest.approx(50.0) and back.channels == ("acc_x", "acc_y", "acc_z")
    assert np.abs(back.data - rec.data[:, :3]).max() < 1e-5
    assert np.array_equal(back.labels, rec.labels) and back.label_names == LABELS
    assert load_recording(path).n_samples == rec.n_samples  # what `device simulate --replay` reads
    # the file holds the device's own convention (gravity vector): the negated specific force
    first = [float(v) for v in path.read_text().splitlines()[1].rstrip(";").split(",")[1:]]
    assert first == pytest.approx(-rec.data[0, :3], abs=1e-5)


def test_banglejs_face_up_reads_plus_one_g(tmp_path):
    """Bangle.js lying flat face up reads (0, 0, -1) g (Espruino's `accel` event); loaded, it is
    the specific force every other source reports, (0, 0, +1) g."""
    from edgehar.data.banglejs import load_banglejs

    rows = "".join(f"00:00:{i / 50:06.3f},0,0,-1;\n" for i in range(100))
    (tmp_path / "acc_exp01_user01.txt").write_text("time,acc_x,acc_y,acc_z\n" + rows)
    (tmp_path / "classnames.csv").write_text("0 lying\n")
    (tmp_path / "labels.csv").write_text("1 1 0 1 100\n")
    (rec,) = load_banglejs(tmp_path)
    assert np.array_equal(rec.data.mean(0), [0.0, 0.0, 1.0])
