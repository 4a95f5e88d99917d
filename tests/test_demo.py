"""`edgehar demo --quick` (the training flow, small) end to end, as a user runs it: one
subprocess, then the folder must hold every artifact of the flow and a live log with predictions.
The deploy flow (the shipped model, no training) is tests/test_demo_deploy.py's and
tests/test_demo_shipped.py's."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.slow


def run_demo(out, env_data=None, extra=()):
    env = {k: v for k, v in os.environ.items() if k != "EDGEHAR_DATA"}
    if env_data:
        env["EDGEHAR_DATA"] = str(env_data)
    cmd = [sys.executable, "-m", "edgehar", "demo", "--quick", "--out", str(out), "--threads", "1",
           "--json", *extra]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


def check_folder(out, summary):
    for name in ("teacher.pt", "student.pt", "export/model_int8.tflite", "export/model_int8.onnx",
                 "export/model_int8.h", "export/model_int8.cc", "export/modelcard.json",
                 "profile_int8_tflite.json", "profile_int8_onnx.json", "live.csv", "demo.json"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert json.loads((out / "demo.json").read_text()) == summary
    profile = json.loads((out / "profile_int8_tflite.json").read_text())
    assert profile["format"] == "tflite" and profile["macs"] > 0 and profile["arena_bytes"] > 0
    card = json.loads((out / "export/modelcard.json").read_text())
    assert card["channels"] == ["acc_x", "acc_y", "acc_z"] and card["quantization"]["dtype"] == "int8"
    with open(out / "live.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) >= 3 and len(rows) == summary["live"]["predictions"]
    assert all(r["label"] in card["labels"] for r in rows)
    assert [int(r["start"]) for r in rows] == [i * card["hop"] for i in range(len(rows))]
    # the summary points at the files it describes
    assert summary["export"]["c_header"].endswith("model_int8.h")
    assert os.path.samefile(summary["teacher"]["path"], out / "teacher.pt")
    return rows, card


def check_live_is_offline_inference(out, rows, card, replay):
    """Every live prediction is the int8 model run offline on the same replayed samples: the
    bridge adds no error of its own (holds by construction, whatever the model learnt)."""
    import numpy as np

    from edgehar.runtime import Predictor

    predictor = Predictor(out / "export" / "model_int8.tflite")
    starts = [int(r["start"]) for r in rows]
    windows = np.stack([replay[s:s + card["window"]] for s in starts])
    probs = predictor.predict_proba(windows)
    logged = np.array([[float(r[f"p_{c}"]) for c in card["labels"]] for r in rows])
    # one int8 output step of the softmax is 1/256; the log keeps 5 decimals
    assert np.abs(probs - logged).max() <= 1 / 256 + 1e-5
    top2 = np.sort(probs, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 2 / 256  # a tie within one step may go either way
    labels = np.array([card["labels"].index(r["label"]) for r in rows])
    assert (labels[clear] == probs.argmax(1)[clear]).all()


def test_demo_quick_synthetic(tmp_path):
    out = tmp_path / "demo"
    r = run_demo(out)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads(r.stdout)
    assert summary["data"]["source"] == "synthetic"
    rows, card = check_folder(out, summary)
    assert (out / "replay").is_dir()  # the Bangle.js-layout recording the device replayed
    # the synthetic data is deterministic: rebuild the very recording the device replayed
    from edgehar.data import load_recording
    from edgehar.demo.config import PLANS, DemoConfig
    from edgehar.demo.data import load_demo_data

    data = load_demo_data(DemoConfig("train", tmp_path / "again", None, dict(PLANS["quick"]), "quick"))
    sent = load_recording(out / "replay" / data.replay.path.name)  # the file the device read
    assert np.array_equal(sent.data, load_recording(data.replay.path).data)
    check_live_is_offline_inference(out, rows, card, sent.data)
    # the reported agreement is the share of logged labels equal to the recording's label at the
    # window's centre, over the windows whose centre is labelled (transitions are not)
    rec = data.replay.recording
    truth = [int(rec.labels[int(r["start"]) + card["window"] // 2]) for r in rows]
    scored = [(r["label"], rec.label_names[t]) for r, t in zip(rows, truth) if t >= 0]
    assert summary["live"]["scored_windows"] == len(scored) > 0
    assert summary["live"]["agreement"] == round(sum(a == b for a, b in scored) / len(scored), 4)


@pytest.mark.data
def test_demo_quick_real_data(data_root, tmp_path):
    """The wrist flow: corpus teacher -> wrist student -> int8, live on Bangle.js user 2's whole
    recording. No bound on the agreement (a short stochastic run): it must be what live.csv
    says against the recording's labels."""
    from edgehar.data.banglejs import load_banglejs

    out = tmp_path / "demo"
    r = run_demo(out, env_data=data_root)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads(r.stdout)
    assert summary["data"]["source"] == "wrist"
    assert (out / "corpus" / "corpus.json").is_file()
    rows, card = check_folder(out, summary)
    assert (card["rate"], card["window"]) == (20.0, 100)
    live = summary["live"]
    assert "Bangle.js" in live["replay"] and "user 2" in live["replay"]
    rec = next(r for r in load_banglejs(data_root / "banglejs_wrist") if int(r.subject) == 2)
    # the whole recording went through the bridge intact, and every window of it was predicted
    # (the causal resampler may hold back the samples of the very last one)
    assert live["replayed_samples"] == live["samples_read"] == len(rec.data) and live["garbled"] == 0
    assert live["expected_windows"] - 1 <= live["windows"] <= live["expected_windows"]
    model_samples = int(len(rec.data) * card["rate"] / rec.rate)
    assert live["expected_windows"] == (model_samples - card["window"]) // card["hop"] + 1
    # the model knows the four Bangle.js classes (the corpus labels them all)
    assert set(rec.label_names) <= set(card["labels"])
    # agreement = share of logged labels equal to the 50 Hz recording's label at the window's
    # centre (start and window count 20 Hz samples), over the labelled centres
    truth = [int(rec.labels[round((int(r["start"]) + card["window"] / 2) * rec.rate / card["rate"])]) for r in rows]
    scored = [(r["label"], rec.label_names[t]) for r, t in zip(rows, truth) if t >= 0]
    assert live["scored_windows"] == len(scored) > 0
    assert live["agreement"] == round(sum(a == b for a, b in scored) / len(scored), 4)
    for name, c in live["per_class"].items():
        mine = [a == b for a, b in scored if b == name]
        assert c["windows"] == len(mine) and c["agreement"] == round(sum(mine) / len(mine), 4)
    assert sum(c["windows"] for c in live["per_class"].values()) == len(scored)


@pytest.mark.data
def test_demo_wrist_root_without_banglejs_is_one_line(data_root, tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    for name in ("wisdm_watch", "dsads", "geotec_watch"):
        (root / name).symlink_to(data_root / name)
    r = run_demo(tmp_path / "demo", extra=("--data", str(root)))
    assert r.returncode == 2
    assert r.stderr.startswith("edgehar: error: ") and r.stderr.count("\n") == 1, r.stderr
    assert "banglejs_wrist/" in r.stderr and not (tmp_path / "demo").exists()


def test_demo_bad_data_folder_is_one_line(tmp_path):
    r = run_demo(tmp_path / "demo", extra=("--data", str(tmp_path)))
    assert r.returncode == 2
    assert r.stderr.startswith("edgehar: error: ") and r.stderr.count("\n") == 1, r.stderr
    assert "hapt" in r.stderr and not (tmp_path / "demo" / "teacher.pt").exists()


def test_demo_quick_on_your_own_data_folder(tmp_path):
    """`--data FOLDER` of your own recordings (here: the synthetic wrist set written in the
    documented folder format) runs the whole flow on it and replays one of its test subjects."""
    from edgehar.data import synthetic
    from edgehar.data.owndata import write_folder

    recs = synthetic.synthetic_dataset(6, "wrist", 20, 1, 0)
    folder = write_folder([r.select(["acc_x", "acc_y", "acc_z"]) for r in recs], tmp_path / "mine")
    out = tmp_path / "demo"
    r = run_demo(out, extra=("--data", str(folder)))
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads(r.stdout)
    assert summary["data"]["source"] == str(folder)
    rows, card = check_folder(out, summary)
    test = summary["data"]["test_subjects"]
    assert test and any(f"test subject {s})" in summary["live"]["replay"] for s in test)
