"""The export acceptance figures on real data: a tiny student trained briefly on HAPT, a
calibration set from the training subjects, `edgehar export --int8`, parity on the official
HAPT test subjects."""

import json
import os

import numpy as np
import pytest
import torch

from edgehar.checkpoint import save_checkpoint
from edgehar.cli import main
from edgehar.data import hapt
from edgehar.data.datasets import activity_windows
from edgehar.data.splits import split_subjects
from edgehar.export.pipeline import TFLITE_RUNTIME_ENV
from edgehar.recipes import train_student_supervised

pytestmark = [pytest.mark.slow, pytest.mark.data]


@pytest.fixture(scope="module")
def hapt_export(data_root, tmp_path_factory):
    torch.manual_seed(0)
    tmp = tmp_path_factory.mktemp("hapt_export")
    root = str(data_root / "hapt")
    train, _ = split_subjects(activity_windows("hapt", root), hapt.TEST_SUBJECTS)
    model, card = train_student_supervised(train, "tiny", steps=952, progress=False,
                                           data={"dataset": "hapt", "root": root,
                                                 "test_subjects": list(hapt.TEST_SUBJECTS)})
    save_checkpoint(tmp / "tiny.pt", model, card)
    assert main(["calib", "build", "--data", "hapt", "--root", root, "--n", "500",
                 "--out", str(tmp / "calib.npz"), "--like", str(tmp / "tiny.pt")]) == 0
    assert main(["export", str(tmp / "tiny.pt"), "--int8", "--calib", str(tmp / "calib.npz"),
                 "--out", str(tmp / "art")]) == 0
    return tmp / "art"


def test_parity_bounds_on_hapt_test_subjects(hapt_export):
    p = json.loads((hapt_export / "parity.json").read_text())
    fig = p["figures"]
    assert p["held_out"]["subjects"] == sorted(hapt.TEST_SUBJECTS)
    assert fig["labelled_windows"] > 3000
    assert fig["macro_f1_pytorch"] > 0.85  # a real model, not noise
    assert fig["fp32_tflite_max_abs_diff"] <= 1e-4
    assert fig["fp32_onnx_max_abs_diff"] <= 1e-4
    for fmt in ("tflite", "onnx"):
        assert fig[f"int8_{fmt}_top1_agreement"] >= 0.98
        assert fig[f"int8_{fmt}_macro_f1_drop_points"] <= 1.0
    # ai-edge-litert vs TFLite-Micro reference kernels: a few LSB of rounding at most
    assert fig["int8_micro_max_lsb"] <= 4
    assert fig["int8_micro_top1_agreement"] >= 0.995
    if os.environ.get(TFLITE_RUNTIME_ENV):
        assert fig["int8_tflite_runtime_max_lsb"] <= 4
        assert fig["int8_tflite_runtime_top1_agreement"] >= 0.995
    # int8 weights are <= 30% of the float weights. The whole-file ratio of a ~17k-parameter
    # student cannot reach 30% even after compacting both files: its floor (int8 weights + int32
    # biases + a float32 scale per output channel, over the fp32 weights) is ~0.37 already; the
    # tables and card common to both files lift it to ~0.5. It is reported, not hidden.
    assert fig["int8_tflite_weights_ratio"] <= 0.30
    assert fig["int8_tflite_ratio_floor"] <= fig["int8_tflite_file_ratio"] < 0.55
    assert set(p["failed"]) <= {"int8_tflite_file_ratio"}


def test_calibration_left_test_subjects_out(hapt_export):
    card = json.loads((hapt_export / "modelcard.json").read_text())
    cal = card["provenance"]["export"]["calibration"]
    assert cal["n"] == 500 and not set(cal["subjects"]) & set(hapt.TEST_SUBJECTS)
    assert "unlabelled" in cal["counts"]


def test_int8_tflite_has_no_float_op(hapt_export):
    from edgehar.export.tflite import graph_report

    g = graph_report((hapt_export / "model_int8.tflite").read_bytes())
    assert g["float_tensors"] == 0 and set(g["dtypes"]) == {"int8", "int32"}
    assert not {"DEQUANTIZE", "QUANTIZE"} & set(g["ops"])


def test_predictor_on_the_artifact_matches_parity(hapt_export, data_root):
    from edgehar.runtime import Predictor

    w = activity_windows("hapt", str(data_root / "hapt"))
    te = w.take(np.isin(w.subject, [2]) & (w.y >= 0))
    pred = Predictor(hapt_export)
    acc = float((pred.predict(te.x) == te.y).mean())
    assert acc > 0.8
