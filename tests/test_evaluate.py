"""`edgehar eval` on real windows agrees with in-process evaluation; class matching by name."""

import json
import subprocess
import sys

import numpy as np
import pytest

from edgehar.checkpoint import save_checkpoint
from edgehar.scoring import canonical, class_matches, score


def test_classes_match_through_the_vocabulary():
    hapt = ["walking", "walking_upstairs", "walking_downstairs", "sitting", "standing", "laying"]
    wrist = ["running", "walking", "sitting", "lying"]
    assert class_matches(wrist, hapt) == {1: 0, 2: 3, 3: 5}
    assert class_matches(["x"], hapt) == {}
    # WISDM's "stairs" is coarser than HAPT's two stair classes: no match is made up
    assert class_matches(["jogging", "stairs"], ["running", "stairs up"]) == {0: 0}


def test_an_own_label_map_is_honoured():
    # an own-data folder whose manifest maps Climb_stairs onto "stairs up"
    data, canon = ["Climb_stairs", "walk"], ["stairs up", "walking"]
    model = ["walking", "stairs up", "stairs down"]
    assert class_matches(data, model, canon) == {0: 1, 1: 0}
    assert class_matches(data, model) == {}  # without the map, neither name is known
    assert canonical("walk", {"walk": "walking"}) == "walking" and canonical("LAYING") == "lying"


def test_score_counts_other_predictions_as_errors():
    r = score(["walking", "walking", "sitting"], ["walking", "cycling", "sitting"])
    assert r["labels"] == ["sitting", "walking"]
    assert r["confusion"] == [[1, 0, 0], [0, 1, 1]]
    assert r["per_class_f1"] == {"sitting": 1.0, "walking": pytest.approx(2 / 3)}
    assert r["macro_f1"] == pytest.approx((1 + 2 / 3) / 2)
    assert score(["b", "a"], ["a", "a"], order=["b", "a"])["labels"] == ["b", "a"]


@pytest.fixture(scope="module")
def acc_student(data_root, tmp_path_factory):
    from edgehar.data import hapt
    from edgehar.data.datasets import activity_windows
    from edgehar.data.splits import split_subjects
    from edgehar.recipes import train_student_supervised

    w = activity_windows("hapt", data_root / "hapt", channels=["acc_x", "acc_y", "acc_z"])
    train, test = split_subjects(w, hapt.TEST_SUBJECTS)
    model, card = train_student_supervised(train, "tiny", steps=60, progress=False)
    path = tmp_path_factory.mktemp("eval") / "student.pt"
    save_checkpoint(path, model, card)
    return path, model, card, test


def edgehar(*args):
    return subprocess.run([sys.executable, "-m", "edgehar", *args], capture_output=True, text=True)


def test_eval_cli_equals_in_process(acc_student):
    from edgehar.models.inference import evaluate

    path, model, card, test = acc_student
    out = edgehar("eval", str(path), "--json")
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    expect = evaluate(model, test, card)
    assert r["windows"] == expect["n"]
    assert r["macro_f1"] == pytest.approx(expect["macro_f1"], abs=1e-9)
    assert np.array(r["confusion"])[:, :6].tolist() == expect["confusion"]


def test_eval_on_wrist_recordings_leaves_out_running(acc_student):
    path = acc_student[0]
    out = edgehar("eval", str(path), "--data", "banglejs", "--json")
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    assert r["classes_left_out"] == ["running"] and r["labels"] == ["walking", "sitting", "laying"]
    assert r["windows"] > 500
    # the reported figure is the one its own confusion matrix gives (wrist labels x model labels)
    c = np.array(r["confusion"], dtype=float)
    k = min(c.shape)
    tp, support, predicted = np.diag(c)[:k], c.sum(1)[:k], c.sum(0)[:k]
    present = support + predicted > 0
    assert r["macro_f1"] == pytest.approx(float((2 * tp / np.maximum(support + predicted, 1))[present].mean()))


def test_eval_errors(acc_student, tmp_path):
    out = edgehar("eval", str(tmp_path / "nope.tflite"))
    assert out.returncode == 2 and "nope.tflite" in out.stderr and out.stderr.count("\n") == 1
    out = edgehar("eval", str(acc_student[0]), "--data", "banglejs", "--split", "test")
    assert out.returncode == 2 and "no official test split" in out.stderr


def test_windows_carry_the_recordings_vocabulary():
    from edgehar.data.recording import Recording
    from edgehar.data.windows import make_windows

    rec = Recording(data=np.zeros((40, 3), np.float32), rate=10.0, channels=("acc_x", "acc_y", "acc_z"),
                    units=("g",) * 3, labels=np.zeros(40, np.int64), label_names=("Climb_stairs",),
                    canonical_names=("stairs up",), subject=1)
    w = make_windows([rec], 10, 10)
    assert w.canonical_names == ("stairs up",) and w.take([0]).canonical_names == ("stairs up",)
