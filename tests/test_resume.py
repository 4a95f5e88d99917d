"""Resumable training: every loop, stopped right after a checkpoint and resumed, ends with the
weights of the run that was never stopped (bit for bit on the CPU); a command killed with
SIGKILL at a random step and run again with --resume does too; a run folder is refused when
it would mix two runs."""

import copy
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import asdict, replace

import pytest
import torch

from edgehar.cli import main
from edgehar.errors import UserError
from edgehar.train import loop
from edgehar.train.pretrain import synthetic_windows


class Stop(Exception):
    """Stands in for a crash right after the n-th checkpoint was written."""


def crash_after(monkeypatch, n: int):
    real, count = loop.Checkpointer.save, [0]

    def save(self, state):
        real(self, state)
        count[0] += 1
        if count[0] == n:
            raise Stop(state.step)

    monkeypatch.setattr(loop.Checkpointer, "save", save)
    return lambda: monkeypatch.setattr(loop.Checkpointer, "save", real)


def weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def assert_same(a: dict, b: dict):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.fixture(scope="module")
def windows():
    from edgehar.data.synthetic import TEST_SUBJECTS
    from edgehar.recipes import split_train_validation

    return split_train_validation(synthetic_windows(), TEST_SUBJECTS, 0)


def _pretrain(w, family="harfm"):
    from edgehar.recipes import TeacherRecipe, pretrain_teacher

    r = TeacherRecipe(family=family, config="tiny", pretrain_steps=14, pretrain_batch_size=16)
    teacher, _, result = pretrain_teacher(r, w, progress=False)
    return weights(teacher), result.loss_curve


def _finetune(w):
    from edgehar.recipes import TeacherRecipe, finetune_teacher, pretrain_teacher

    r = TeacherRecipe(family="harfm", config="tiny", pretrain_steps=2, pretrain_batch_size=16,
                      finetune_steps=8, finetune_batch_size=48)
    with loop.session("cpu"):  # the teacher to fine-tune is made without checkpoints
        teacher, card, _ = pretrain_teacher(r, w, progress=False)
    finetune_teacher(teacher, card, w, None, r, progress=False)
    return weights(teacher), card.provenance["finetune"]["pass_losses"]


def _distill(w):
    from edgehar.recipes import TeacherRecipe, pretrain_teacher
    from edgehar.train.distill import DistillConfig, distill

    r = TeacherRecipe(family="harfm", config="tiny", pretrain_steps=2, pretrain_batch_size=16)
    with loop.session("cpu"):
        teacher, card, _ = pretrain_teacher(r, w, progress=False)
    cfg = DistillConfig(steps=11, batch_size=64, augment=True)
    student, _, history = distill(teacher, card, w, "tiny", cfg, progress=False)
    return weights(student), history


def _fit(w):
    from edgehar.recipes import train_baseline

    model, card = train_baseline("cnn", w, None, steps=6, progress=False)
    return weights(model), card.provenance["pass_losses"]


@pytest.mark.parametrize("make, stop_after", [
    (_pretrain, 2), (lambda w: _pretrain(w, "relcon"), 1), (_finetune, 1), (_distill, 2), (_fit, 1)],
    ids=["pretrain-harfm", "pretrain-relcon", "finetune", "distill", "fit"])
def test_stopped_and_resumed_equals_uninterrupted(make, stop_after, windows, tmp_path, monkeypatch):
    train = windows[0]
    with loop.session("cpu"):
        want, want_log = make(train)
    restore = crash_after(monkeypatch, stop_after)
    with loop.session("cpu", run_dir=tmp_path, checkpoint_every=3), pytest.raises(Stop):
        make(train)
    restore()
    assert list(tmp_path.glob("*.pt"))
    with loop.session("cpu", run_dir=tmp_path, checkpoint_every=3, resume=True):
        got, got_log = make(train)
    assert_same(want, got)
    assert got_log == want_log  # the loss record continues too, not restarts


def test_corpus_loops_resume(tmp_path, monkeypatch):
    import json as _json

    from test_corpus import _own

    from edgehar.data.corpus import build_corpus
    from edgehar.data.wrist_corpus import canonical_classes, load_part, relabel
    from edgehar.recipes import CorpusTeacherRecipe, train_corpus_teacher
    from edgehar.train.finetune import finetune

    folders = [_own(tmp_path / n, range(1, k)) for n, k in (("a", 9), ("b", 6))]
    for f in folders:  # a wrist placement: the corpus teacher trains on wrist windows
        meta = tmp_path / f / "edgehar.json"
        meta.write_text(_json.dumps({**_json.loads(meta.read_text()), "placement": "wrist"}))
    build_corpus(folders, rate=25, window=50, out=tmp_path / "c", shard_windows=7)

    def run():
        t, card, _ = train_corpus_teacher(CorpusTeacherRecipe(steps=8, reconstruction_fraction=3 / 8, batch_size=16),
                                          tmp_path / "c", progress=False)
        part = load_part(tmp_path / "c", "train")
        names, remap = canonical_classes(part)
        w = relabel(part, remap).windows(names, labelled_only=True)
        # the few-label recipe (corpus_transfer): the state of step 2 kept, then 3 more steps
        m = copy.deepcopy(t)
        r = finetune(m, w, replace(card, labels=names), steps=5, schedule="constant", clip_norm=None,
                     augment=False, progress=False, validation=w, keep_best_at=(2,))
        return weights(t), weights(m), asdict(r)

    with loop.session("cpu"):
        want = run()
    for stop_after in (1, 4):  # stopped in the teacher's run (checkpoints 2, 4, 6), then in the transfer's
        runs = tmp_path / f"run{stop_after}"
        restore = crash_after(monkeypatch, stop_after)
        with loop.session("cpu", run_dir=runs, checkpoint_every=2), pytest.raises(Stop):
            run()
        restore()
        with loop.session("cpu", run_dir=runs, checkpoint_every=2, resume=True):
            got = run()
        assert_same(want[0], got[0])
        assert_same(want[1], got[1])  # the best state survives the resume
        assert got[2] == want[2]


def test_a_different_run_is_refused(windows, tmp_path, monkeypatch):
    from edgehar.recipes import TeacherRecipe, pretrain_teacher

    restore = crash_after(monkeypatch, 1)
    r = TeacherRecipe(family="harfm", config="tiny", pretrain_steps=8, pretrain_batch_size=16)
    with loop.session("cpu", run_dir=tmp_path, checkpoint_every=2), pytest.raises(Stop):
        pretrain_teacher(r, windows[0], progress=False)
    restore()
    r.pretrain_steps = 9
    with loop.session("cpu", run_dir=tmp_path, checkpoint_every=2, resume=True), \
            pytest.raises(UserError, match=r"pretrain.pt: was written by a different run \(steps differ\)"):
        pretrain_teacher(r, windows[0], progress=False)


def test_command_refuses_to_overwrite_an_interrupted_run(tmp_path, capsys):
    out = tmp_path / "t.pt"
    (tmp_path / "t.pt.run").mkdir()
    (tmp_path / "t.pt.run" / "pretrain.pt").write_bytes(b"someone's")
    code = main(["pretrain", "--method", "harfm", "--data", "synthetic", "--config", "tiny", "--steps", "2",
                 "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "holds an interrupted run: continue it with --resume" in err
    assert (tmp_path / "t.pt.run" / "pretrain.pt").read_bytes() == b"someone's" and not out.exists()
    code = main(["pretrain", "--method", "harfm", "--data", "synthetic", "--out", str(out),
                 "--resume", str(tmp_path / "missing")])
    assert code == 2 and "no such run folder to resume" in capsys.readouterr().err


def test_a_run_stopped_before_its_first_checkpoint_leaves_no_folder(tmp_path, capsys):
    out = tmp_path / "t.pt"
    code = main(["pretrain", "--method", "harfm", "--data", "synthetic", "--config", "huge", "--out", str(out)])
    assert code == 2 and "unknown harfm config" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


# -- a real kill ------------------------------------------------------------------------------

def edgehar(*argv, **kw):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "edgehar", *argv], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, **kw)


def kill_after_a_checkpoint(argv, state: "os.PathLike", rng: random.Random) -> None:
    """Start the command, wait for its first checkpoint, let it run on for a random moment,
    then SIGKILL it (it must still be running: the test is about a kill mid-run)."""
    proc = edgehar(*argv)
    try:
        deadline = time.monotonic() + 120
        while not os.path.exists(state):
            assert proc.poll() is None, f"ended before its first checkpoint: {proc.stderr.read()}"
            assert time.monotonic() < deadline, "no checkpoint within 120 s"
            time.sleep(0.02)
        time.sleep(rng.uniform(0, 0.3))
        assert proc.poll() is None, "finished before it could be killed: give it more steps"
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_pretrain_and_finetune_killed_then_resumed_equal_uninterrupted(tmp_path):
    rng = random.Random()  # a different kill moment every run; the seed is in the failure message
    seed = rng.randrange(10 ** 6)
    rng.seed(seed)
    print(f"kill moments drawn with seed {seed}")  # shown when the test fails
    common = ["--data", "synthetic", "--threads", "1", "--device", "cpu", "--json"]
    pre = ["pretrain", "--method", "harfm", "--config", "tiny", "--steps", "120", "--batch-size", "8", *common]
    assert main([*pre, "--checkpoint-every", "0", "--out", str(tmp_path / "whole.pt")]) == 0
    kill_after_a_checkpoint([*pre, "--checkpoint-every", "5", "--out", str(tmp_path / "t.pt")],
                            tmp_path / "t.pt.run" / "pretrain.pt", rng)
    saved = torch.load(tmp_path / "t.pt.run" / "pretrain.pt", weights_only=True)
    assert 0 < saved["step"] < 120 and saved["step"] % 5 == 0 and not (tmp_path / "t.pt").exists()
    assert main([*pre, "--checkpoint-every", "5", "--out", str(tmp_path / "t.pt"),
                 "--resume", str(tmp_path / "t.pt.run")]) == 0
    assert not (tmp_path / "t.pt.run").exists()  # the completed run leaves only its result
    whole, resumed = (torch.load(tmp_path / n, weights_only=True) for n in ("whole.pt", "t.pt"))
    assert_same(whole["state_dict"], resumed["state_dict"])
    assert whole["extra"]["loss_curve"] == resumed["extra"]["loss_curve"]

    ft = ["finetune", str(tmp_path / "whole.pt"), "--steps", "132", "--batch-size", "8", *common]
    assert main([*ft, "--checkpoint-every", "0", "--out", str(tmp_path / "ft-whole.pt")]) == 0
    kill_after_a_checkpoint([*ft, "--checkpoint-every", "5", "--out", str(tmp_path / "ft.pt")],
                            tmp_path / "ft.pt.run" / "finetune.pt", rng)
    assert main([*ft, "--checkpoint-every", "5", "--out", str(tmp_path / "ft.pt"),
                 "--resume", str(tmp_path / "ft.pt.run")]) == 0
    whole, resumed = (torch.load(tmp_path / n, weights_only=True) for n in ("ft-whole.pt", "ft.pt"))
    assert_same(whole["state_dict"], resumed["state_dict"])
    assert whole["card"]["provenance"]["finetune"]["pass_losses"] == \
        resumed["card"]["provenance"]["finetune"]["pass_losses"]
