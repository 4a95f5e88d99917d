"""`--classes A,B,...`: a model restricted to a subset of its own classes, on the host (`eval`,
`live`: `edgehar.classes.ClassSubset`) and at export (the last layer sliced, so the int8 graph,
the card and the C header carry only those outputs); and the refusals."""

import json
import re

import numpy as np
import pytest
import torch

from edgehar.calib.build import calib_from_windows, save_calib
from edgehar.card_io import read_card
from edgehar.checkpoint import save_checkpoint
from edgehar.classes import ClassSubset, in_model_classes, slice_classes, subset_card
from edgehar.cli_types import parse_classes
from edgehar.cli import main
from edgehar.data.windows import Windows
from edgehar.errors import UserError
from edgehar.export import tflite
from edgehar.export.pipeline import FILES, export_student
from edgehar.metrics import softmax
from edgehar.recipes import train_student_supervised
from edgehar.runtime import Predictor
from test_student import synthetic_windows
from tiny_har_models import bangle_card, torch_model

pytestmark = pytest.mark.slow
LABELS = ["still", "slow", "mid", "fast"]
KEEP = ["fast", "still", "mid"]  # another order than the model's: outputs follow this one


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    """A tiny 4-class student trained on generated data, exported once with --classes."""
    torch.manual_seed(0)
    tmp = tmp_path_factory.mktemp("classes")
    w = synthetic_windows(n_per_class=40, n_classes=4, subjects=(1, 2, 3))
    w.label_names = tuple(LABELS)
    train = w.take(w.subject != 3)
    model, card = train_student_supervised(train, "tiny", steps=50, progress=False,
                                           data={"dataset": "synthetic", "test_subjects": [3]})
    ckpt = tmp / "student.pt"
    save_checkpoint(ckpt, model, card)
    calib = tmp / "calib.npz"
    save_calib(calib, calib_from_windows(train, 80, dataset="synthetic"))
    res = export_student(ckpt, tmp / "art", calib=calib, windows=w, test_subjects=[3], progress=False,
                         classes=KEEP)
    x = np.random.default_rng(1).normal(size=(64, card.window, len(card.channels))).astype(np.float32)
    x = x * np.asarray(card.norm_std, np.float32) + np.asarray(card.norm_mean, np.float32)
    return {"ckpt": ckpt, "dir": tmp / "art", "res": res, "model": model, "card": card, "x": x, "tmp": tmp,
            "held_out": w.take(w.subject == 3).x}


def full_logits(student, x):
    with torch.no_grad():
        return student["model"](torch.from_numpy(student["card"].normalise(x)))[0].numpy()


# -- on the host ------------------------------------------------------------------------------
def test_subset_probabilities_are_the_renormalised_softmax(student):
    full = Predictor(student["ckpt"])
    sub = ClassSubset(full, KEEP)
    x = student["x"]
    idx = [LABELS.index(c) for c in KEEP]
    p_full = full.predict_proba(x)
    want = p_full[:, idx] / p_full[:, idx].sum(1, keepdims=True)
    got = sub.predict_proba(x)
    assert got.shape == (len(x), 3)
    assert np.allclose(got, want, atol=1e-6)
    assert np.allclose(got, softmax(full_logits(student, x)[:, idx]), atol=1e-6)
    assert np.array_equal(sub.predict(x), want.argmax(1))
    assert sub.card.labels == KEEP and sub.card.tasks["activity"] == KEEP
    assert full.card.labels == LABELS  # the wrapped model's card is left alone


def test_subset_card_keeps_the_rows_of_per_class_fields():
    card = bangle_card(tasks={"activity": ["running", "walking", "sitting", "lying"], "aux": ["a", "b"]},
                       prompts={"running": "a person running", "lying": "a person lying down",
                                "walking": "walking"},
                       text_prototypes=[[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [-1.0, 0.0]],
                       quantization={"prototypes_int8": [[127, 0], [0, 127], [64, 64], [-127, 0]]})
    sub = subset_card(card, ["lying", "running"])
    assert sub.labels == ["lying", "running"]
    assert sub.tasks == {"activity": ["lying", "running"], "aux": ["a", "b"]}
    assert sub.prompts == {"running": "a person running", "lying": "a person lying down"}
    assert sub.text_prototypes == [[-1.0, 0.0], [1.0, 0.0]]
    assert sub.quantization["prototypes_int8"] == [[-127, 0], [127, 0]]
    assert sub.provenance["classes"] == {"kept": ["lying", "running"], "of": card.labels}


def test_slicing_another_family_cuts_its_last_class_layer():
    model, card = torch_model(), bangle_card()  # a CNN whose head is Linear(8, 4)
    keep = ["lying", "running"]
    sliced, sub = slice_classes(model, card, keep)
    x = torch.randn(5, 128, 3)
    with torch.no_grad():
        assert torch.allclose(sliced(x), model(x)[:, [3, 0]], atol=1e-6)
    assert model.head.out_features == 4 and sub.labels == keep  # the original is untouched
    no_head = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(384, 7))
    with pytest.raises(UserError, match="last linear layer with one output per class"):
        slice_classes(no_head, card, keep, "m.pt")


def test_eval_with_classes_scores_the_restricted_argmax(data_root, tmp_path_factory):
    from edgehar.data.datasets import windows_for_card
    from edgehar.evaluate import evaluate_file
    from edgehar.scoring import score

    w = windows_for_card(bangle_card(), "banglejs", None)  # running, walking, sitting, lying
    torch.manual_seed(0)
    model, card = train_student_supervised(w.labelled(), "tiny", steps=30, progress=False)
    path = tmp_path_factory.mktemp("eval") / "wrist.pt"
    save_checkpoint(path, model, card)
    keep = ["walking", "sitting", "lying"]
    r = evaluate_file(path, "banglejs", split="all", classes=keep)
    # the expectation, by hand: the windows of the kept classes, the argmax over their logits
    w = windows_for_card(card, "banglejs", None, hop=card.window // 2).labelled()
    names = np.array(w.label_names)[w.y]
    mine = np.isin(names, keep)
    with torch.no_grad():
        logits = model(torch.from_numpy(card.normalise(w.x[mine])))[0].numpy()
    idx = [card.labels.index(c) for c in keep]
    want = score(list(names[mine]), [keep[i] for i in logits[:, idx].argmax(1)], order=keep)
    assert r["classes"] == keep and r["classes_left_out"] == ["running"]
    assert r["windows"] == int(mine.sum()) and r["labels"] == keep
    assert r["macro_f1"] == pytest.approx(want["macro_f1"], abs=1e-12)
    assert r["confusion"] == want["confusion"]


# -- at export ---------------------------------------------------------------------------------
def test_export_writes_only_the_chosen_outputs(student):
    d = student["dir"]
    it = tflite.interpreter((d / FILES["int8_tflite"]).read_bytes())
    assert [int(o["shape"][-1]) for o in it.get_output_details()] == [3]
    card = read_card(d)
    assert card.labels == KEEP and card.tasks["activity"] == KEEP
    assert card.arch["config"]["tasks"]["activity"] == 3
    assert card.provenance["classes"] == {"kept": KEEP, "of": LABELS}
    for name in FILES.values():  # the card embedded in every model file says the same
        assert read_card(d / name).labels == KEEP
    header = (d / "model_int8.h").read_text()
    labels = re.search(r"_labels\[\w+\] = \{(.*)\};", header).group(1)
    assert re.findall(r'"([^"]*)"', labels) == KEEP
    assert re.search(r"#define \w+_CLASSES 3\n", header)


def test_export_predictions_are_the_full_models_restricted_argmax(student):
    x = student["x"]
    idx = [LABELS.index(c) for c in KEEP]
    want = full_logits(student, x)[:, idx]
    for name in ("fp32_tflite", "fp32_onnx"):
        got = Predictor(student["dir"] / FILES[name]).predict_scores(x)
        assert got.shape == (len(x), 3)
        assert np.abs(got - want).max() <= 1e-4, name
        assert np.array_equal(got.argmax(1), want.argmax(1)), name
    # the host's subset of the full checkpoint and the sliced export agree
    host = ClassSubset(Predictor(student["ckpt"]), KEEP)
    fp32 = Predictor(student["dir"] / FILES["fp32_tflite"])
    assert np.allclose(host.predict_proba(x), fp32.predict_proba(x), atol=1e-4)
    # int8 against the float argmax on held-out windows of the data, whose classes stand apart
    # (noise windows sit near the class boundaries, where rounding flips a vote on some CPUs)
    held = student["held_out"]
    int8 = Predictor(student["dir"]).predict(held)
    assert (int8 == full_logits(student, held)[:, idx].argmax(1)).mean() >= 0.9


def test_sliced_export_passes_its_parity_checks(student):
    p = json.loads((student["dir"] / "parity.json").read_text())
    # every bound but the file's size ratio, which a model this tiny misses (its card outweighs it)
    failed = {k: b for k, b in p["bounds"].items() if not b["ok"] and k != "int8_tflite_file_ratio"}
    assert not failed
    fig = p["figures"]
    assert fig["windows"] == 4 * 40  # every held-out window counts for agreement
    assert fig["labelled_windows"] == 3 * 40  # only the kept classes' for macro-F1
    assert fig["macro_f1_pytorch"] > 0.8
    assert fig["fp32_tflite_max_abs_diff"] <= 1e-4 and fig["int8_micro_max_lsb"] <= 4


# -- bad input: one line, exit 2 -----------------------------------------------------------------
@pytest.mark.parametrize("text,what", [("walking", "one class"), ("walking,walking", "named twice"),
                                       ("walking,,lying", "empty class name"), ("", "empty class name")])
def test_parse_classes_refuses(text, what):
    with pytest.raises(ValueError, match=what):
        parse_classes(text)


@pytest.mark.parametrize("argv", [
    ["eval", "m.pt", "--classes", "walking"],
    ["live", "--port", "loop://", "--model", "m.pt", "--classes", "a,b,a"],
    ["export", "m.pt", "--classes", "walking,"],
    ["firmware", "build", "art", "--classes", "sitting"]])
def test_bad_lists_fail_at_parse_time(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and "--classes" in err[-1] and err[-1].startswith("edgehar")


def one_line_error(argv, capsys):
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and err.startswith("edgehar: error: "), err
    return err


def test_unknown_class_names_the_known_ones(student, capsys):
    err = one_line_error(["eval", str(student["ckpt"]), "--data", "hapt", "--classes", "fast,swimming"], capsys)
    assert err == (f"edgehar: error: {student['ckpt']}: unknown class 'swimming' "
                   f"(the model's classes: still, slow, mid, fast)")
    out = student["tmp"] / "never"
    err = one_line_error(["export", str(student["ckpt"]), "--int8", "--out", str(out),
                          "--classes", "fast,swimming"], capsys)
    assert "unknown class 'swimming'" in err and not out.exists()


def test_classes_and_labels_together_are_refused(capsys):
    for argv in (["eval", "m.pt", "--classes", "a,b", "--labels", "c,d"],
                 ["live", "--port", "loop://", "--model", "m.pt", "--classes", "a,b", "--labels", "c,d"]):
        err = one_line_error(argv, capsys)
        assert "--classes" in err and "--labels" in err


def test_on_device_and_firmware_take_only_the_exports_classes(student, capsys):
    d = str(student["dir"])
    err = one_line_error(["live", "--port", "loop://", "--model", d, "--on-device",
                          "--classes", "fast,still"], capsys)
    assert "export the model with --classes fast,still" in err
    err = one_line_error(["firmware", "build", d, "--classes", "fast,still"], capsys)
    assert "edgehar export CHECKPOINT --int8 --classes fast,still" in err
    from edgehar.bridge.firmware_cli import check_export_classes
    check_export_classes(student["dir"] / "modelcard.json", ["still", "mid", "fast"])  # the same: no-op


def test_windows_of_other_data_are_scored_on_the_classes_both_know():
    # export's parity with another data set's windows (a wrist student with Bangle.js): data class
    # ids become the model's by name or vocabulary; a class the model lacks is unlabelled
    w = Windows(x=np.zeros((5, 8, 3), np.float32), y=np.array([0, 1, 2, 3, -1]), subject=np.zeros(5, np.int64),
                rate=50.0, channels=("acc_x", "acc_y", "acc_z"), units=("g",) * 3,
                label_names=("lying", "cycling", "walking", "laying"))
    got = in_model_classes(w, ["walking", "sitting", "lying"])
    assert got.y.tolist() == [2, -1, 0, 2, -1] and got.label_names == ("walking", "sitting", "lying")
    unnamed = Windows(x=w.x, y=w.y, subject=w.subject, rate=50.0, channels=w.channels, units=w.units, label_names=())
    assert in_model_classes(unnamed, ["walking", "sitting", "lying"]).y.tolist() == w.y.tolist()
