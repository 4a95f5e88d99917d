"""The HAR-FM corpus teacher (a stem per source over one backbone) and distillation on a corpus:
a teacher and corpus that disagree get one line (routes and training: test_corpus_teacher.py)."""

import json

import pytest
import torch

from edgehar.card import ModelCard
from edgehar.cli import main
from edgehar.data.corpus import FORMAT
from edgehar.models.corpus_fm import CorpusFM
from edgehar.models.teacher import save_teacher
from edgehar.data.wrist_corpus import check_teacher_fits_corpus
from edgehar.errors import UserError

CFG = {"in_channels": 3, "sources": ["a", "b"], "source_classes": [3, 2], "n_canonical": 4, "window": 100}


def tiny_teacher():
    torch.manual_seed(0)
    m = CorpusFM(CFG)
    m.set_task(4)
    return m


def card(rate=20.0, channels=("acc_x", "acc_y", "acc_z")):
    return ModelCard(labels=["walking", "sitting", "lying", "running"], rate=rate, window=100, hop=50,
                     channels=list(channels), units=["g"] * len(channels))


@pytest.mark.parametrize("manifest,what", [
    ({"rate": 25.0, "window": 100, "channels": ["acc_x", "acc_y", "acc_z"]}, "25 Hz"),
    ({"rate": 20.0, "window": 128, "channels": ["acc_x", "acc_y", "acc_z"]}, "128 samples"),
    ({"rate": 20.0, "window": 100, "channels": ["gyro_x", "gyro_y", "gyro_z"]}, "no acc_x"),
])
def test_teacher_and_corpus_must_agree(manifest, what):
    with pytest.raises(UserError, match=what):
        check_teacher_fits_corpus(card(), manifest, "teacher.pt")


def test_distill_on_a_corpus_of_another_rate_is_one_line(tmp_path, capsys):
    teacher = tiny_teacher()
    save_teacher(tmp_path / "t.pt", teacher, card())
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "corpus.json").write_text(json.dumps({"format": FORMAT, "rate": 25.0, "window": 100, "hop": 50,
                                                    "channels": ["acc_x", "acc_y", "acc_z"], "shards": [],
                                                    "units": ["g"] * 3, **dict.fromkeys(
                                                        ("datasets", "placements", "devices", "canonical",
                                                         "labels"), [])}))
    code = main(["distill", "--teacher", str(tmp_path / "t.pt"), "--data", str(corpus),
                 "--out", str(tmp_path / "s.pt")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("edgehar: error:") and "\n" not in err and "25 Hz" in err
    assert not (tmp_path / "s.pt").exists()


def test_distill_on_a_corpus_without_wrist_windows_is_one_line(tmp_path, capsys):
    """Own data whose manifest names no placement builds a corpus of 'unknown' placement: the
    wrist student has no window to learn from, which is said before any work."""
    import numpy as np

    from edgehar.data.corpus import build_corpus

    own = tmp_path / "own"
    own.mkdir()
    (own / "edgehar.json").write_text(json.dumps({"rate": 20, "label": {"value": "walking"},
                                                  "subject": {"pattern": r"^s(\d+)_"}}))
    rng = np.random.default_rng(0)
    for s in (1, 2, 3):
        (own / f"s{s}_a.csv").write_text("acc_x,acc_y,acc_z\n" + "".join(
            f"{a:.4f},{b:.4f},{c:.4f}\n" for a, b, c in rng.normal(size=(600, 3))))
    build_corpus([str(own)], rate=20, window=100, out=tmp_path / "corpus")
    save_teacher(tmp_path / "t.pt", tiny_teacher(), card())
    code = main(["distill", "--teacher", str(tmp_path / "t.pt"), "--data", str(tmp_path / "corpus"),
                 "--steps", "1", "--out", str(tmp_path / "s.pt")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert "no accelerometer windows from a wrist placement" in err and "its placements: unknown" in err
    assert not (tmp_path / "s.pt").exists()


def test_a_corpus_student_exports_calibrated_on_its_corpus(tmp_path, capsys):
    """A student distilled on a corpus names the corpus in its card: export draws calibration
    from the corpus's train split and holds its test split out for parity, with no --data.
    The own data is worn on the left wrist, a wrist placement."""
    import numpy as np

    from edgehar.data.corpus import build_corpus

    own = tmp_path / "own"
    own.mkdir()
    (own / "edgehar.json").write_text(json.dumps({
        "rate": 20, "placement": "left wrist", "subject": {"pattern": r"^s(\d+)_"},
        "label": {"pattern": r"_(\w+)\.csv$"}}))
    rng = np.random.default_rng(0)
    for s in range(1, 8):
        for label, g in (("walking", 1.0), ("sitting", -1.0)):
            x = rng.normal(size=(400, 3)) * 0.3
            x[:, 2] += g
            (own / f"s{s}_{label}.csv").write_text("acc_x,acc_y,acc_z\n" + "".join(
                f"{a:.4f},{b:.4f},{c:.4f}\n" for a, b, c in x))
    build_corpus([str(own)], rate=20, window=100, out=tmp_path / "corpus")
    save_teacher(tmp_path / "t.pt", tiny_teacher(), card())
    assert main(["distill", "--teacher", str(tmp_path / "t.pt"), "--data", str(tmp_path / "corpus"),
                 "--student", "tiny", "--steps", "2", "--out", str(tmp_path / "s.pt")]) == 0
    assert main(["export", str(tmp_path / "s.pt"), "--int8", "--no-micro", "--out", str(tmp_path / "art"),
                 "--json"]) == 0, capsys.readouterr().err
    parity = json.loads((tmp_path / "art" / "parity.json").read_text())
    held = parity["held_out"]
    assert held["dataset"] == "corpus" and held["held_out"] and held["subjects"] == held["test_subjects"]
