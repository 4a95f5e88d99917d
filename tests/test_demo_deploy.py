"""`edgehar demo`'s deploy flow on a temporary zoo (`EDGEHAR_ZOO`) and a temporary data root
whose banglejs_wrist/ holds a generated wrist recording as user 2: the shipped student's bytes
are what runs, the live figures are the bridge's predictions scored against the recording's
labels, and they are compared with the card's. No real data, no training in the demo."""

import csv
import json
import shutil

import numpy as np
import pytest
from cli_run import one_line_error, run
from wrist_student import wrist_student

from edgehar import zoo
from edgehar.cli import build_parser
from edgehar.demo.config import DEFAULT_MODEL
from edgehar.digest import file_sha256

pytestmark = pytest.mark.slow

NAME = DEFAULT_MODEL
ACC = ("acc_x", "acc_y", "acc_z")
FIGURES = {"test": {"mine": {"macro_f1": 0.5}}, "instructions": {"cortex-m4": 98765}}


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A tiny 20 Hz student trained for a few steps on generated wrist recordings, its int8
    export, and a data root whose banglejs_wrist/ holds a held-out subject as user 2."""
    from edgehar.data import synthetic

    tmp = tmp_path_factory.mktemp("demo-deploy")
    recs = [r.select(list(ACC)) for r in synthetic.synthetic_dataset(5, "wrist", 12, 1, 0)]
    student = wrist_student(tmp, recs[:4])
    root = tmp / "data"
    held = recs[4].with_data(recs[4].data, subject=2)  # a subject no training step saw
    synthetic.write_banglejs(held, root / "banglejs_wrist", exp=2)
    return {**student, "root": root}


def publish(name, made, figures):
    zoo.publish(name, checkpoint=made["ckpt"], artifact=made["art"], task="wrist activity",
                recipe_key="k" * 16, provenance={"commit": "abc", "command": "test", "seed": 0, "seeds": [0],
                                                 "cpu_seconds": 1.0, "device": "cpu"}, figures=figures)


@pytest.fixture(scope="module")
def zoo_dir(made, tmp_path_factory):
    """A zoo holding the student under the demo's default name, with the live figure the zoo build would measure,
    and as other-card, whose card says another agreement."""
    from edgehar.demo_wrist import live_figures

    root = tmp_path_factory.mktemp("zoo")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(zoo.ENV, str(root))
        live = live_figures(made["art"], made["root"])
        publish(NAME, made, {**FIGURES, "live": live})
        publish("other-card", made, {**FIGURES, "live": {**live, "agreement": round(live["agreement"] / 2, 4)}})
        yield root


@pytest.fixture()
def env(made, zoo_dir, monkeypatch):
    monkeypatch.setenv(zoo.ENV, str(zoo_dir))
    monkeypatch.setenv("EDGEHAR_DATA", str(made["root"]))
    return made


def test_deploy_runs_the_shipped_bytes_and_scores_the_live_predictions(env, zoo_dir, tmp_path, capsys):
    from edgehar.export.c_array import parse_c_array

    from edgehar.data import load_recording
    from edgehar.runtime import Predictor

    out = tmp_path / "demo"
    code, stdout, err = run(["demo", "--out", out, "--json"], capsys)
    assert code == 0, err
    s = json.loads(stdout)
    assert s["flow"] == "deploy" and s["model"]["name"] == NAME and s["model"]["zoo"]
    assert "teacher" not in s and not (out / "teacher.pt").exists() and not (out / "corpus").exists()
    assert json.loads((out / "demo.json").read_text()) == s
    # the bytes that ran are the shipped ones, whose sha256 the index holds; the C array carries them
    shipped = zoo_dir / NAME / "int8" / "model_int8.tflite"
    tflite = out / "export" / "model_int8.tflite"
    assert tflite.read_bytes() == shipped.read_bytes()
    assert s["export"]["sha256"] == file_sha256(tflite) == zoo.index()["models"][NAME]["sha256"][
        f"{NAME}/int8/model_int8.tflite"]
    assert parse_c_array((out / "export" / "model_int8.cc").read_text()) == tflite.read_bytes()
    assert s["live"]["model"] == str(tflite)
    # profile: the file's MACs, flash and arena, and the instructions the card records
    p = s["profile"]["int8_tflite"]
    assert p["macs"] > 0 and p["arena_bytes"] > 0 and p["file_bytes"] == tflite.stat().st_size
    assert p["instructions"] == {"cortex-m4": 98765} and "int8_onnx" not in s["profile"]
    # live: the whole recording through the bridge, every window predicted
    lv = s["live"]
    rec = load_recording(env["root"] / "banglejs_wrist" / "acc_exp02_user02.txt")
    assert lv["port"].startswith("sim://") and "speed=0" in lv["port"]
    assert lv["replayed_samples"] == lv["samples_read"] == len(rec.data) and lv["garbled"] == 0
    assert lv["expected_windows"] - 1 <= lv["windows"] <= lv["expected_windows"] and lv["windows"] > 10
    with open(out / "live.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    card = json.loads((out / "export" / "modelcard.json").read_text())
    assert len(rows) == lv["predictions"] == lv["windows"]
    # each logged prediction is the shipped int8 model run offline on the samples sent
    x = rec.data[:, [rec.channels.index(c) for c in card["channels"]]]
    step = rec.rate / card["rate"]
    starts = [int(r["start"]) for r in rows]
    from edgehar.data.resample import resample

    model_rate = resample(rec, card["rate"]).data
    probs = Predictor(tflite).predict_proba(np.stack([model_rate[s0:s0 + card["window"]] for s0 in starts]))
    logged = np.array([[float(r[f"p_{c}"]) for c in card["labels"]] for r in rows])
    assert np.abs(probs - logged).max() <= 2 / 256  # the causal stream resampler vs the offline one
    # the figures: each window's top class against the label at its centre, over the labelled ones
    from edgehar.data.banglejs import load_banglejs

    labelled = load_banglejs(env["root"] / "banglejs_wrist")[0]
    truth = [int(labelled.labels[min(round((s0 + card["window"] / 2) * step), len(x) - 1)]) for s0 in starts]
    scored = [(r["label"], labelled.label_names[t]) for r, t in zip(rows, truth) if t >= 0]
    fig = lv["figures"]
    assert fig["recording"] == "banglejs_wrist user 2" and fig["n"] == len(scored) > 0
    assert fig["agreement"] == round(sum(a == b for a, b in scored) / len(scored), 4)
    for c, v in fig["per_class"].items():
        mine = [a == b for a, b in scored if b == c]
        assert v == round(sum(mine) / len(mine), 4) and lv["per_class"][c]["windows"] == len(mine)
    assert lv["equals_card"] and lv["card_figures"] == fig


def test_deploy_prints_the_figures_and_that_they_equal_the_card(env, tmp_path, capsys):
    code, stdout, err = run(["demo", "--out", tmp_path / "demo"], capsys)
    assert code == 0, err
    s = json.loads((tmp_path / "demo" / "demo.json").read_text())
    fig = s["live"]["figures"]
    assert f"live agreement {fig['agreement']:.4f} over {fig['n']} windows of banglejs_wrist user 2" in stdout
    assert "equal to the card's live figures" in stdout and "DIFFERENT" not in stdout
    assert f"deploy {NAME}, no training" in stdout and "98,765 instructions" in stdout
    # the same folder again: a previous demo's folder is the demo's to replace
    code, again, err = run(["demo", "--out", tmp_path / "demo"], capsys)
    assert code == 0, err and f"live agreement {fig['agreement']:.4f}" in again


def test_a_card_with_other_figures_is_reported_as_different(env, tmp_path, capsys):
    code, stdout, err = run(["demo", "--model", "other-card", "--out", tmp_path / "demo"], capsys)
    assert code == 0, err
    assert "DIFFERENT from the card's live figures" in stdout
    assert not json.loads((tmp_path / "demo" / "demo.json").read_text())["live"]["equals_card"]


def test_an_export_folder_of_your_own_deploys_without_a_card_figure(env, tmp_path, capsys):
    code, stdout, err = run(["demo", "--model", env["art"], "--out", tmp_path / "demo", "--json"], capsys)
    assert code == 0, err
    s = json.loads(stdout)
    assert not s["model"]["zoo"] and "equals_card" not in s["live"] and s["live"]["figures"]["n"] > 0


def test_live_figures_are_the_same_on_every_run(env):
    from edgehar.demo_wrist import live_figures

    first = live_figures(env["art"], env["root"])
    assert set(first) == {"recording", "agreement", "per_class", "n"}
    assert live_figures(env["art"], env["root"]) == first == zoo.index()["models"][NAME]["figures"]["live"]


@pytest.mark.parametrize("argv, fragments", [
    (["--model", "no-such-model"], ("no-such-model", "edgehar models")),
    (["--train", "--model", NAME], ("--model", "trains its own")),
    (["--live-seconds", "5"], ("--live-seconds", "--train")),
])
def test_bad_flags_are_one_line_and_leave_no_folder(env, tmp_path, capsys, argv, fragments):
    code, _, err = run(["demo", "--out", tmp_path / "d", *argv], capsys)
    one_line_error(code, err, *fragments)
    assert not (tmp_path / "d").exists()


def test_a_damaged_shipped_file_is_one_line(env, zoo_dir, tmp_path, capsys, monkeypatch):
    damaged = tmp_path / "zoo"
    shutil.copytree(zoo_dir, damaged)
    f = damaged / NAME / "int8" / "model_int8.tflite"
    data = bytearray(f.read_bytes())
    data[-1] ^= 1
    f.write_bytes(bytes(data))
    monkeypatch.setenv(zoo.ENV, str(damaged))
    code, _, err = run(["demo", "--out", tmp_path / "d"], capsys)
    one_line_error(code, err, "does not match its sha256", "reinstall")
    assert not (tmp_path / "d").exists()


def test_a_waist_model_is_refused_before_anything_runs(env, tmp_path, capsys, monkeypatch):
    """A shipped model that reads other channels than a watch's accelerometer: one line."""
    from edgehar.card_io import read_card

    card = read_card(env["art"] / "model_int8.tflite")
    assert list(card.channels) == list(ACC)  # the fixture's model fits; a 6-channel one would not
    from edgehar.demo import config

    monkeypatch.setattr(config, "ACC", ("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"))
    code, _, err = run(["demo", "--out", tmp_path / "d"], capsys)
    one_line_error(code, err, NAME, "wrist student")


@pytest.mark.parametrize("argv, env_data, flow", [
    ([], True, "deploy"),
    (["--train"], True, "train"),
    (["--quick"], True, "train"),
    (["--synthetic"], True, "train"),
    ([], False, "train"),  # no data: the synthetic training flow, as before
    (["--data", "wisdm_watch"], True, "train"),  # a data set's name trains on it
])
def test_which_flow_runs(tmp_path, monkeypatch, argv, env_data, flow):
    from edgehar.demo.config import choose_flow

    root = tmp_path / "data"
    (root / "banglejs_wrist").mkdir(parents=True)
    if env_data:
        monkeypatch.setenv("EDGEHAR_DATA", str(root))
    else:
        monkeypatch.delenv("EDGEHAR_DATA", raising=False)
    assert choose_flow(build_parser().parse_args(["demo", *argv])) == flow
    (root / "banglejs_wrist").rmdir()  # a root without Bangle.js has nothing to deploy on
    assert choose_flow(build_parser().parse_args(["demo", *argv])) == "train"


def test_a_zoo_without_the_default_student_is_one_line(env, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(zoo.ENV, str(tmp_path / "empty-zoo"))
    code, _, err = run(["demo", "--out", tmp_path / "d"], capsys)
    one_line_error(code, err, NAME, "--train")
    assert not (tmp_path / "d").exists()
