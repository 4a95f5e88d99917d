"""`edgehar pretrain` / `edgehar finetune` end to end on generated windows (tiny HAR-FM), their
one-line errors, and a few steps on real HAPT."""

import json

import pytest

import edgehar.cli
from edgehar.checkpoint import load_checkpoint
from edgehar.models.teacher import load_teacher


@pytest.fixture
def run(monkeypatch, capsys):
    """Run the real `edgehar.cli.main` with only the teacher commands registered."""
    monkeypatch.setattr(edgehar.cli, "COMMAND_MODULES", ["edgehar.train.cli"])

    def call(*argv):
        code = edgehar.cli.main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return call


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    path = tmp_path_factory.mktemp("pre") / "harfm.pt"
    code = edgehar.cli.main(["pretrain", "--method", "harfm", "--data", "synthetic", "--config", "tiny",
                             "--steps", "12", "--batch-size", "16", "--out", str(path)])
    assert code == 0
    return path


def test_pretrain_writes_a_teacher_with_its_loss_curve(pretrained):
    ckpt = load_checkpoint(pretrained)
    card = ckpt["card"]
    assert card.kind == "teacher" and card.arch["name"] == "harfm"
    assert card.window == 64 and card.rate == 25.0 and len(card.norm_mean) == 6
    assert card.provenance["stage"] == "pretrain" and card.provenance["pretrain"]["steps"] == 12
    curve = ckpt["extra"]["loss_curve"]
    assert len(curve) == 12 and all(len(p) == 2 for p in curve)
    teacher, _, _ = load_teacher(pretrained)
    assert teacher.n_classes is None


def test_finetune_reports_macro_f1_and_stores_it(pretrained, tmp_path, run):
    out = tmp_path / "ft.pt"
    code, stdout, _ = run("finetune", pretrained, "--data", "synthetic", "--steps", "6", "--out", out, "--json")
    assert code == 0
    summary = json.loads(stdout)
    teacher, card, _ = load_teacher(out)
    assert card.provenance["metrics"]["macro_f1"] == summary["macro_f1"]
    assert card.provenance["metrics"]["validation"] == summary["validation"]
    ft = card.provenance["finetune"]
    assert ft["test_subjects"] == [2, 5, 9]
    # validation subjects come from the training subjects: three disjoint groups
    assert ft["validation_subjects"] and summary["validation"]["n"] > 0
    groups = [set(ft["train_subjects"]), set(ft["validation_subjects"]), set(ft["test_subjects"])]
    assert sum(map(len, groups)) == len(set().union(*groups))
    assert card.provenance["pretrain"]["steps"] == 12  # pre-training provenance kept
    assert teacher.n_classes == 6 and len(card.text_prototypes) == 6

    code, stdout, _ = run("finetune", pretrained, "--data", "synthetic", "--steps", "3", "--linear-probe",
                          "--out", tmp_path / "probe.pt")
    assert code == 0 and "linear probe: validation macro-F1" in stdout and "test macro-F1" in stdout


@pytest.mark.parametrize("argv, message", [
    (["finetune", "{tmp}/missing.pt", "--data", "synthetic"], "no such checkpoint"),
    (["finetune", "{tmp}/junk.pt", "--data", "synthetic"], "not a torch checkpoint"),
    (["finetune", "{pre}", "--data", "nope"], "unknown data set"),
    (["finetune", "{pre}", "--data", "hapt", "--root", "{tmp}"], "not the UCI HAPT layout"),
    (["pretrain", "--method", "harfm", "--data", "synthetic", "--config", "huge"], "unknown harfm config"),
    # --steps 0 fails at parse time (argparse): tests/test_hostile_models.py
])
def test_bad_input_is_one_line_and_writes_nothing(argv, message, pretrained, tmp_path, run):
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    argv = [a.format(tmp=tmp_path, pre=pretrained) for a in argv] + ["--out", str(tmp_path / "o.pt")]
    code, _, err = run(*argv)
    assert code == 2 and err.startswith("edgehar: error:") and message in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "o.pt").exists()


@pytest.mark.data
def test_pretrain_on_hapt_keeps_unlabelled_windows(data_root, tmp_path, run):
    out = tmp_path / "hapt.pt"
    code, stdout, _ = run("pretrain", "--method", "harfm", "--data", "hapt", "--root", data_root / "hapt",
                          "--config", "tiny", "--steps", "3", "--batch-size", "8", "--out", out, "--json")
    assert code == 0
    summary = json.loads(stdout)
    card = load_checkpoint(out)["card"]
    assert summary["windows"] > 10000 and len(summary["subjects"]) == 30
    assert card.window == 128 and card.rate == 50.0 and card.labels[0] == "walking"
