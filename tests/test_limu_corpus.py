"""LIMU-BERT as a teacher on the wrist corpus: the corpus's windows (acc in g, 100 samples)
converted to its input spec (acc m/s^2 + gyro rad/s, 120 samples, 20 Hz) in one place, a
few-step distillation through `edgehar distill --data CORPUS` whose student keeps the corpus's
format, and one line when the corpus is not at the teacher's rate. A LIMU-BERT folder of the
published layout with small random weights stands in where the published weights are not at
hand; the real weights run the same path when EDGEHAR_DATA is set."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from edgehar.checkpoint import load_checkpoint
from edgehar.cli import main
from edgehar.data import limu
from edgehar.data.resample import G
from edgehar.data.windows import Windows
from edgehar.errors import UserError
from edgehar.models import limubert

RATE = 20.0


def acc_windows(x, rate=RATE, units="g"):
    n = len(x)
    return Windows(x=np.asarray(x, np.float32), y=np.zeros(n, np.int64), subject=np.arange(n), rate=rate,
                   channels=limu.ACC, units=(units,) * 3, label_names=("walking",), hop=50)


def test_converted_windows_have_the_teachers_spec_exactly():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 100, 3)).astype(np.float32) + np.float32([0, 0, 1])
    out = limu.to_limu_spec(acc_windows(x), "corpus")
    assert out.x.shape == (4, limu.WINDOW, 6) and out.x.dtype == np.float32
    assert out.rate == RATE == limu.RATE
    assert out.channels == limubert.CHANNELS and out.units == limubert.UNITS
    assert out.length == limubert.BASE_V1["seq_len"]
    np.testing.assert_allclose(out.x[:, :100, :3], x * np.float32(G), rtol=1e-6)  # g -> m/s^2
    # the 20 padded samples mirror the last ones (reflection about sample 99)
    np.testing.assert_array_equal(out.x[:, 100:, :3], out.x[:, 98:78:-1, :3])
    assert np.array_equal(out.y, np.zeros(4)) and np.array_equal(out.subject, np.arange(4))
    # already in m/s^2: unchanged; 120 samples: no padding
    same = limu.to_limu_spec(acc_windows(x[:, :, :] * G, units="m/s^2"), "corpus")
    np.testing.assert_allclose(same.x[:, :, :3], out.x[:, :, :3], rtol=1e-6)
    full = limu.to_limu_spec(acc_windows(np.concatenate([x, x[:, :20]], 1)), "corpus")
    np.testing.assert_allclose(full.x[:, 100:, :3], x[:, :20] * np.float32(G), rtol=1e-6)


def test_pseudo_gyro_reads_a_known_rotation_and_nothing_at_rest():
    t = np.arange(100) / RATE
    w = 1.5  # rad/s about the sensor's z axis, perpendicular to gravity
    # a sensor turning at +w about z sees the fixed gravity turn at -w in its own frame
    turning = np.stack([np.cos(-w * t), np.sin(-w * t), np.zeros_like(t)], -1)
    resting = np.tile([0.1, -0.2, 0.97], (100, 1))
    gyro = limu.to_limu_spec(acc_windows([turning, resting]), "corpus").x[:, :, 3:]
    inner = slice(10, 90)  # away from the filter's and the padding's edges
    np.testing.assert_allclose(gyro[0, inner, 2], w, rtol=0.02)
    np.testing.assert_allclose(gyro[0, inner, :2], 0, atol=1e-3)
    np.testing.assert_allclose(gyro[1], 0, atol=1e-6)


@pytest.mark.parametrize("windows, expected", [
    (acc_windows(np.zeros((2, 100, 3)), rate=25.0),
     "windows are at 25 Hz but LIMU-BERT takes 20 Hz (its published weights): build the corpus at --rate 20"),
    (acc_windows(np.zeros((2, 130, 3))), "windows are 130 samples; LIMU-BERT takes at most 120"),
    (acc_windows(np.zeros((2, 50, 3))), "LIMU-BERT needs more than 60 to pad to 120"),
    (acc_windows(np.zeros((2, 100, 3)), units="mg"), "acceleration in mg, mg, mg; expected g or m/s^2"),
])
def test_windows_it_cannot_convert_are_one_line(windows, expected):
    with pytest.raises(UserError) as e:
        limu.to_limu_spec(windows, "corpus")
    assert expected in e.value.message and "\n" not in e.value.message


# -- a small LIMU-BERT folder and a small corpus -------------------------------------------------

SMALL = {"feature_num": 6, "hidden": 8, "hidden_ff": 16, "n_layers": 2, "n_heads": 2, "seq_len": 120}


@pytest.fixture(scope="module")
def small_limu(tmp_path_factory):
    """A folder of LIMU-BERT's published layout (configs, data_config.json, saved/) with a
    small model of random weights and the UCI set's six classes."""
    root = tmp_path_factory.mktemp("limu")
    (root / "config").mkdir()
    (root / "config" / "limu_bert.json").write_text(json.dumps({"base_v1": SMALL}))
    (root / "config" / "classifier.json").write_text(json.dumps({"gru_v1": {
        "seq_len": 20, "num_layers": [1, 1], "rnn_io": [[8, 6], [6, 4]], "activ": False, "dropout": False}}))
    (root / "data_config.json").write_text(json.dumps({"uci_20_120": {
        "sr": 20, "seq_len": 120, "dimension": 6, "activity_label_size": 6,
        "activity_label": ["walking", "upstairs", "downstairs", "sitting", "standing", "lying"]}}))
    enc, head, _ = limubert.configs(root)
    torch.manual_seed(0)
    model = limubert.LimuBertClassifier(enc, head)
    for part, name in ((model.encoder, "pretrain_base_uci_20_120"), (model.head, "classifier_base_gru_uci_20_120")):
        (root / "saved" / name).mkdir(parents=True)
        torch.save(part.state_dict(), root / "saved" / name / "uci.pt")
    return root


def own_folder(folder, rate):
    """Six subjects worn on the wrist, each walking, sitting and waving (a class LIMU-BERT's
    UCI head does not know) for 30 s."""
    folder.mkdir(parents=True)
    (folder / "edgehar.json").write_text(json.dumps({
        "rate": rate, "units": "g", "subject": {"pattern": r"^s(\d+)_"}, "label": {"column": "act"},
        "label_map": {"walk": "walking", "sit": "sitting"}, "placement": "wrist"}))
    rng = np.random.default_rng(0)
    n = int(30 * rate)
    for s in range(1, 7):
        rows = []
        for k, act in enumerate(("walk", "sit", "wave")):
            x = rng.normal(size=(n, 3)) * (0.3 if act != "sit" else 0.02) + [0, 0, 1.0 - 0.5 * k]
            rows += [",".join(f"{v:.5f}" for v in r) + f",{act}" for r in x]
        (folder / f"s{s}_a.csv").write_text("acc_x,acc_y,acc_z,act\n" + "\n".join(rows) + "\n")
    return folder


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from edgehar.data.corpus import build_corpus

    tmp = tmp_path_factory.mktemp("corpus")
    build_corpus([str(own_folder(tmp / "own", RATE))], rate=RATE, window=100, out=tmp / "c", shard_windows=64)
    return tmp / "c"


def distill_args(teacher_dir, corpus, out, steps=3):
    return ["distill", "--teacher", f"limu-bert:{teacher_dir}", "--data", str(corpus), "--student", "tiny",
            "--steps", str(steps), "--batch-size", "16", "--out", str(out), "--json"]


def check_student(out):
    card = load_checkpoint(out)["card"]
    assert card.kind == "student"
    assert (card.rate, card.window) == (RATE, 100)
    assert card.channels == ["acc_x", "acc_y", "acc_z"] and card.units == ["g", "g", "g"]
    assert card.labels == ["walking", "sitting"]  # the corpus classes the teacher shares, its order
    teacher = card.provenance["teacher"]
    assert teacher["arch"] == "limubert"
    assert teacher["input"]["spec"] == {"rate": 20.0, "window": 120, "channels": list(limubert.CHANNELS),
                                        "units": list(limubert.UNITS)}
    assert teacher["classes"]["student"] == card.labels
    training = card.provenance["training"]
    # waving (a third of the labelled windows) has no soft label; the rest do
    assert training["soft_labels"] and 0 < training["soft_label_windows"] < training["train_windows"]
    assert training["soft_label_windows"] >= training["labelled_windows"]  # + the unlabelled windows
    assert set(card.provenance["metrics"]["validation"]) >= {"macro_f1", "accuracy"}
    return card


def test_a_few_steps_from_limubert_on_a_corpus_write_an_acc_only_student(small_limu, corpus, tmp_path, capsys):
    out = tmp_path / "student.pt"
    assert main(distill_args(small_limu, corpus, out)) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["loss"] and np.isfinite(summary["loss"]).all()
    card = check_student(out)
    assert card.provenance["training"]["steps"] == 3


def test_soft_labels_are_the_teachers_logits_of_the_shared_classes_where_it_can_name_the_class(small_limu, corpus):
    from edgehar.data.wrist_corpus import canonical_classes, relabel_to, train_part
    from edgehar.train.distill import targets_on_teacher_spec

    teacher, tcard = limubert.teacher_from_spec(f"limu-bert:{small_limu}")
    part = train_part(corpus)
    head = ["walking", "sitting"]
    assert set(head) < set(canonical_classes(part)[0])
    train = relabel_to(part, head).windows(head)
    soft = train.y >= 0  # waving: -1, no soft label
    converted = limu.to_limu_spec(train, corpus)
    targets = targets_on_teacher_spec(teacher, tcard, converted, [0, 3], soft, progress=False)
    with torch.no_grad():
        full = teacher(torch.from_numpy(tcard.normalise(converted.x))).numpy()
    np.testing.assert_allclose(targets.logits[soft], full[soft][:, [0, 3]], rtol=1e-5, atol=1e-6)
    assert np.isnan(targets.logits[~soft]).all() and len(targets.embed) == len(train)
    # a row of NaN is skipped by the soft-label loss, never a NaN loss
    from edgehar.train.distill import DistillConfig, distill_loss

    class Student(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(3, 4)
            self.heads, self.main_task = {"a": torch.nn.Linear(4, 2)}, "a"
            self.embed = torch.nn.Linear(4, targets.embed.shape[1])

        def tokens(self, x):
            return self.lin(x)

        def pool(self, tok):
            return tok.mean(1)

    idx = np.concatenate([np.flatnonzero(soft)[:2], np.flatnonzero(~soft)[:2]])
    args = [torch.from_numpy(a[idx]) for a in (train.x, np.maximum(train.y, -1), targets.logits,
                                               targets.embed, targets.tokens)]
    loss, parts = distill_loss(Student(), torch.nn.Linear(4, targets.tokens.shape[-1]), *args,
                               DistillConfig(w_label=0))
    assert torch.isfinite(loss) and parts["kd"] > 0


def test_a_corpus_at_another_rate_is_one_line(small_limu, tmp_path, capsys):
    from edgehar.data.corpus import build_corpus

    c25 = tmp_path / "c25"
    build_corpus([str(own_folder(tmp_path / "own", 25))], rate=25, window=100, out=c25)
    out = tmp_path / "student.pt"
    assert main(distill_args(small_limu, c25, out)) == 2
    err = capsys.readouterr().err
    assert err == (f"edgehar: error: {c25}: windows are at 25 Hz but LIMU-BERT takes 20 Hz (its published "
                   "weights): build the corpus at --rate 20\n")
    assert not out.exists()


def test_the_published_weights_distil_on_a_corpus(data_root, corpus, tmp_path, capsys):
    out = tmp_path / "student.pt"
    assert main(distill_args(data_root / "limu_bert", corpus, out, steps=2)) == 0
    capsys.readouterr()
    card = check_student(out)
    assert card.provenance["teacher"]["classes"]["teacher"] == list(limu.LABEL_NAMES)
