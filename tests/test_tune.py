"""`edgehar tune`: budget syntax, the student's head variants through int8 export, and (with the
Cortex-M toolchain) a 2-trial search on generated windows with a tiny teacher, its resume after
a kill (a start configuration tried first, and once), and an impossible budget refused before
any training; start configurations read and checked."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
import torch

from edgehar.cli import main
from edgehar.tune.budget import Budget, parse_budget


def test_budget_keys_and_units():
    assert parse_budget("instructions=0.5M,arena=32KiB,flash=128KiB") == Budget(500_000, 32_768, 131_072)
    assert parse_budget("arena=40KB") == Budget(arena=40_000)
    assert parse_budget("instructions=750k").within(750_000, 10 ** 9, 10 ** 9)
    assert not parse_budget("instructions=750k").within(750_001, 0, 0)


@pytest.mark.parametrize("budget,why", [
    ("instructions=0.5Q", "bad instructions value '0.5Q'"),
    ("cycles=1M", "bad budget entry 'cycles=1M'"),
    ("arena=32KiB,arena=16KiB", "arena is given twice"),
    ("flash=0", "flash must be at least 1"),
    ("instructions", "bad budget entry 'instructions'"),
])
def test_bad_budget_is_refused_at_parse_time(budget, why, capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        main(["tune", "--teacher", "missing.pt", "--data", "hapt", "--budget", budget, "--out", str(tmp_path / "t")])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("edgehar tune: error: argument --budget: ") and why in err, err
    assert not (tmp_path / "t").exists()


START = {"kernel": 5, "widths": [16, 24, 32], "strides": [4, 2, 2], "d": 32, "layers": 1, "pool": "mean",
         "heads": 2, "ff": 32, "attention": "linear"}


@pytest.mark.parametrize("cfg", [START, {**START, "layers": 0, "heads": 1, "attention": "softmax"}])
def test_a_start_configuration_is_what_the_sampler_would_build_from_its_params(cfg):
    import optuna

    from edgehar.tune import space

    assert space.suggest(optuna.trial.FixedTrial(space.params_of(cfg))) == cfg


@pytest.mark.parametrize("doc,why", [
    ("[", "not JSON"),
    ("{}", "expected a JSON list of student configurations or a tune's pareto.json"),
    (json.dumps([{**START, "kernel": 4}]), "configuration 1: kernel=4 is not in the search space (3, 5, 7)"),
    (json.dumps([START, {"kernel": 5}]), "configuration 2: missing 'd'"),
])
def test_bad_start_file_is_one_line(doc, why, tmp_path, capsys):
    f = tmp_path / "start.json"
    f.write_text(doc)
    assert main(["tune", "--teacher", "missing.pt", "--data", "hapt", "--budget", "flash=1MB", "--start", str(f),
                 "--out", str(tmp_path / "t")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"edgehar: error: {f}: {why}"), err
    assert not (tmp_path / "t").exists()


def test_start_from_an_earlier_front(tmp_path):
    from edgehar.tune.space import load_start

    other = {**START, "d": 16}
    f = tmp_path / "pareto.json"
    f.write_text(json.dumps({"front": [3], "trials": [{"trial": 2, "config": START}, {"trial": 3, "config": other}]}))
    assert load_start(f) == [other]


# -- the head variants, exported full-int8, against torch -------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("variant", [
    {"layers": 1, "heads": 2, "attention": "linear", "pool": "attention"},  # softmax-free + attention pool
    {"layers": 0, "heads": 1, "attention": "softmax", "pool": "mean"},      # plain mean pooling
])
def test_head_variants_export_to_int8_and_match_torch(variant, tmp_path):
    from edgehar.calib.build import calib_from_windows, save_calib
    from edgehar.checkpoint import save_checkpoint
    from edgehar.export import tflite
    from edgehar.export.pipeline import export_student
    from edgehar.models.student import CustomSize, make_student_card
    from edgehar.recipes import train_student_supervised
    from test_student import synthetic_windows

    torch.manual_seed(0)
    w = synthetic_windows(n_per_class=40, subjects=(1, 2, 3, 4))
    train = w.take(w.subject != 4)
    size = CustomSize("variant", {"widths": [12, 16, 24], "d": 24, "ff": 48, "strides": [2, 2, 3], **variant})
    card = make_student_card(size, train, data={"dataset": "synthetic", "test_subjects": [4]})
    model, card = train_student_supervised(train, card=card, steps=60, progress=False)
    if variant["pool"] == "attention":  # trained off zero, so the pooling is not the plain mean
        assert float(model.pool_score.weight.detach().abs().sum()) > 0
    save_checkpoint(tmp_path / "s.pt", model, card)
    save_calib(tmp_path / "calib.npz", calib_from_windows(train, 100, dataset="synthetic"))
    export_student(tmp_path / "s.pt", tmp_path / "art", calib=tmp_path / "calib.npz", windows=w,
                   test_subjects=[4], progress=False)
    graph = tflite.graph_report((tmp_path / "art" / "model_int8.tflite").read_bytes())
    assert graph["float_tensors"] == 0 and not {"QUANTIZE", "DEQUANTIZE"} & set(graph["ops"])
    if variant["attention"] == "linear":
        assert "BATCH_MATMUL" in graph["ops"] and "MUL" not in graph["ops"]
    else:
        assert "SOFTMAX" not in graph["ops"] and "BATCH_MATMUL" not in graph["ops"]
    fig = json.loads((tmp_path / "art" / "parity.json").read_text())["figures"]
    assert fig["fp32_tflite_max_abs_diff"] <= 1e-4 and fig["fp32_onnx_max_abs_diff"] <= 1e-4
    assert fig["int8_tflite_top1_agreement"] >= 0.9
    assert fig["int8_micro_max_lsb"] <= 4


# -- the search, on an emulated Cortex-M4 -----------------------------------------------------
@pytest.fixture(scope="module")
def tune_inputs(tmp_path_factory):
    from test_mcu_profile import _toolchain_or_skip

    _toolchain_or_skip()
    from edgehar.calib.build import calib_from_windows, save_calib
    from edgehar.models.harfm import HarFM
    from edgehar.models.teacher import make_teacher_card, save_teacher
    from test_distill import LABELS, synthetic_windows

    tmp = tmp_path_factory.mktemp("tune")
    torch.manual_seed(0)
    w = synthetic_windows(240)
    t = HarFM({"d": 16, "stack1": [1, 2, 32], "stack2": [1, 2, 32], "groups": 6, "entries": 4,
               "tau_start": 2.0, "tau_end": 0.5, "kappa": 0.1, "diversity_weight": 0.1,
               "index_weight": 1.0, "align_weight": 1.0, "mask_start_prob": 0.2, "mask_span": 3,
               "dropout": 0.0, "dataset": "test"})
    t.set_task(3, list(LABELS))
    save_teacher(tmp / "teacher.pt", t.eval(), make_teacher_card(t, w, [0.0] * 6, [1.0] * 6, labels=list(LABELS)))
    save_calib(tmp / "w.npz", calib_from_windows(w, len(w)))
    return tmp


def tune_args(inputs, out, budget="instructions=5M,arena=64KiB", trials=2):
    return ["tune", "--teacher", str(inputs / "teacher.pt"), "--windows", str(inputs / "w.npz"),
            "--budget", budget, "--trials", str(trials), "--steps", "4", "--out", str(out), "--json"]


def complete_trials(out) -> int:
    try:
        with sqlite3.connect(out / "study.db") as db:
            return db.execute("select count(*) from trials where state = 'COMPLETE'").fetchone()[0]
    except sqlite3.Error:
        return 0


@pytest.mark.slow
def test_two_trials_measure_report_and_export(tune_inputs, tmp_path, capfd):
    from edgehar.mcu.toolchain import find_toolchain
    from edgehar.tune.measure import measure_file

    out = tmp_path / "t"
    assert main(tune_args(tune_inputs, out)) == 0
    printed = capfd.readouterr().out  # in process, Keras's own prints land here too: the report ends it
    rep = json.loads(printed[printed.index("\n{\n") + 1:] if not printed.startswith("{") else printed)
    assert rep == json.loads((out / "pareto.json").read_text()) | {"export": rep["export"]}
    assert len(rep["trials"]) == 2 and set(rep["front"]) <= {0, 1} and rep["front"]
    smallest = rep["smallest_configuration"]["instructions"]["cortex-m4"]
    for row in rep["trials"]:  # the smallest configuration is the floor of the space
        assert row["instructions"]["cortex-m4"] >= smallest and row["arena"] > 0 and row["flash"] > 0
        assert 0 <= row["validation_macro_f1"] <= 1
    chosen = next(r for r in rep["trials"] if r["trial"] == rep["chosen"])
    # counts are exact: the chosen trial's file measures the same again
    again = measure_file(find_toolchain(), out / "trials" / f"{rep['chosen']:04d}" / "model_int8.tflite", ["cortex-m4"])
    assert again["instructions"] == chosen["instructions"]
    assert (out / "chosen" / "model_int8.tflite").is_file() and (out / "chosen" / "parity.json").is_file()
    assert (out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Pareto front" in (out / "pareto.md").read_text()


@pytest.mark.slow
def test_killed_tune_resumes_to_the_same_trial_count(tune_inputs, tmp_path):
    start = tmp_path / "start.json"
    start.write_text(json.dumps([START]))
    out = tmp_path / "t"
    args = tune_args(tune_inputs, out) + ["--start", str(start)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-m", "edgehar", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while complete_trials(out) < 1 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert proc.poll() is None, "tune ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert complete_trials(out) == 1
    assert main(args) == 0  # the same command: resumes
    assert complete_trials(out) == 2  # 2 trials in all, not 1 + 2
    trials = json.loads((out / "pareto.json").read_text())["trials"]
    assert len(trials) == 2
    assert trials[0]["config"] == START and trials[1]["config"] != START  # the start point first, and once


@pytest.mark.slow
@pytest.mark.parametrize("budget,what", [("instructions=1000", "instructions=1,000"), ("arena=1KiB", "arena=1,024")])
def test_impossible_budget_is_one_line_before_any_trial(tune_inputs, tmp_path, capsys, budget, what):
    out = tmp_path / "t"
    assert main(tune_args(tune_inputs, out, budget=budget)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"edgehar: error: --budget: impossible budget: {what} is below "
                                               "the smallest configuration"), err
    assert not out.exists()  # nothing written
