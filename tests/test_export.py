"""`export`: Keras mirror fidelity, full-int8 graph, artifacts, C array, runtimes, bad input.

Fast tests on generated data; the HAPT acceptance figures are in test_export_hapt.py.
"""

import json
import os
import shutil
import subprocess

import numpy as np
import pytest
import torch

from edgehar.calib.build import calib_from_windows, save_calib
from edgehar.card import ModelCard
from edgehar.card_io import read_card
from edgehar.checkpoint import save_checkpoint
from edgehar.cli import main
from edgehar.errors import UserError
from edgehar.export import tflite
from edgehar.export.c_array import parse_c_array
from edgehar.export.keras_mirror import build_keras_mirror
from edgehar.export.pipeline import FILES, TFLITE_RUNTIME_ENV, export_student
from edgehar.models import build
from edgehar.models.student import student_config
from edgehar.recipes import train_student_supervised
from test_student import synthetic_windows

pytestmark = pytest.mark.slow


def randomise_norms(model: torch.nn.Module, seed: int = 0) -> None:
    """Give every BatchNorm non-trivial statistics so folding mistakes show."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.5)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.3)


@pytest.mark.parametrize("size,window,channels,streams", [
    ("small", 128, 6, {"acc": [0, 2, 4], "gyro": [1, 3, 5]}),  # interleaved streams: GATHER
    ("tiny", 120, 3, {"acc": [0, 1, 2]}),                       # one stream, LIMU-like length
])
def test_fp32_tflite_matches_pytorch(size, window, channels, streams):
    torch.manual_seed(1)
    model = build({"name": "student", "config": student_config(size, window, channels, streams,
                                                               {"activity": 5, "aux": 2})})
    randomise_norms(model)
    model.eval()
    x = np.random.default_rng(0).normal(size=(16, window, channels)).astype(np.float32)
    with torch.no_grad():
        want = model(torch.from_numpy(x))[0].numpy()
    with tflite.quiet():
        mirror = build_keras_mirror(model.cfg, model.state_dict())
    got = tflite.run_litert(tflite.convert_fp32(mirror), x)
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= 1e-4


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny student trained on generated data, exported with --int8 once for the module."""
    torch.manual_seed(0)
    tmp = tmp_path_factory.mktemp("export")
    w = synthetic_windows(n_per_class=40, subjects=(1, 2, 3, 4))
    train = w.take(w.subject != 4)
    model, card = train_student_supervised(train, "tiny", steps=36, progress=False,
                                           data={"dataset": "synthetic", "test_subjects": [4]})
    ckpt = tmp / "student.pt"
    save_checkpoint(ckpt, model, card)
    calib = tmp / "calib.npz"
    save_calib(calib, calib_from_windows(train, 100, dataset="synthetic"))
    res = export_student(ckpt, tmp / "art", calib=calib, windows=w, test_subjects=[4], progress=False)
    return {"dir": tmp / "art", "res": res, "ckpt": ckpt, "windows": w, "calib": calib, "model": model,
            "card": card, "tmp": tmp}


def test_artifact_folder_holds_every_file(exported):
    names = set(os.listdir(exported["dir"]))
    assert names == {"model_fp32.tflite", "model_int8.tflite", "model.onnx", "model_int8.onnx",
                     "model_int8.h", "model_int8.cc", "modelcard.json", "parity.json",
                     ".edgehar-output.json"}  # the marker naming what export wrote
    marker = json.loads((exported["dir"] / ".edgehar-output.json").read_text())
    assert set(marker["files"]) == names - {".edgehar-output.json"}


def test_int8_graph_is_full_integer(exported):
    data = (exported["dir"] / FILES["int8_tflite"]).read_bytes()
    report = tflite.graph_report(data)
    assert report["float_tensors"] == 0, report["first_float_tensors"]
    assert set(report["dtypes"]) == {"int8", "int32"}
    assert not {"DEQUANTIZE", "QUANTIZE", "GELU", "LAYER_NORM"} & set(report["ops"])
    it = tflite.interpreter(data)
    assert it.get_input_details()[0]["dtype"] == np.int8 and it.get_output_details()[0]["dtype"] == np.int8
    # every weight int8, every bias int32
    dtype = {t["index"]: np.dtype(t["dtype"]).name for t in it.get_tensor_details()}
    layers = [op for op in it._get_ops_details()
              if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")]
    assert len(layers) >= 10
    for op in layers:
        assert dtype[op["inputs"][1]] == "int8" and dtype[op["inputs"][2]] == "int32", op


def test_card_is_embedded_everywhere_with_int8_constants(exported):
    d = exported["dir"]
    card = ModelCard.from_json((d / "modelcard.json").read_text())
    q = card.quantization
    io = tflite.io_quantization((d / FILES["int8_tflite"]).read_bytes())
    assert (q["input_scale"], q["input_zero_point"]) == (io["input"]["scale"], io["input"]["zero_point"])
    assert (q["output_scale"], q["output_zero_point"]) == (io["output"]["scale"], io["output"]["zero_point"])
    assert q["output"] == "logits" and q["dtype"] == "int8"
    for name in FILES.values():
        assert read_card(d / name).to_dict() == card.to_dict(), name
    assert card.provenance["export"]["calibration"]["n"] == 100
    assert card.labels == ["slow", "mid", "fast"] and card.kind == "student"


def test_int8_onnx_is_qdq_with_per_channel_weights(exported):
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(exported["dir"] / FILES["int8_onnx"]))
    ops = [n.op_type for n in m.graph.node]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    conv_weights = [n.input[1] for n in m.graph.node if n.op_type == "Conv"]
    producers = {o: n for n in m.graph.node for o in n.output}
    per_channel = 0
    for w in conv_weights:
        dq = producers[w]
        assert dq.op_type == "DequantizeLinear"  # weights are stored int8
        assert inits[dq.input[0]].dtype == np.int8
        per_channel += inits[dq.input[1]].size > 1
    assert per_channel == len(conv_weights) > 0
    # activations are quantised statically: every conv / matmul input comes out of a
    # DequantizeLinear fed by a QuantizeLinear with a constant (calibrated) scale
    compute = [n for n in m.graph.node if n.op_type in ("Conv", "MatMul", "Gemm")]
    assert len(compute) >= 10
    for node in compute:
        act = producers[node.input[0]]
        assert act.op_type == "DequantizeLinear", node.name
        q = producers.get(act.input[0])
        assert q is not None and q.op_type == "QuantizeLinear" and q.input[1] in inits, node.name


def test_c_array_bytes_equal_the_tflite_file_and_compile(exported, tmp_path):
    d = exported["dir"]
    cc = (d / "model_int8.cc").read_text()
    assert parse_c_array(cc) == (d / FILES["int8_tflite"]).read_bytes()
    assert "alignas(16)" in cc
    header = (d / "model_int8.h").read_text()
    assert '"slow", "mid", "fast"' in header and "INPUT_ZERO_POINT" in header
    if shutil.which("gcc") is None:
        pytest.skip("no host gcc")
    shutil.copy(d / "model_int8.h", tmp_path)
    shutil.copy(d / "model_int8.cc", tmp_path)
    (tmp_path / "use.c").write_text(  # every constant the header offers, used from C
        '#include "model_int8.h"\n'
        "float use(int8_t q, int c) {\n"
        "  float x = G_EDGEHAR_MODEL_RATE_HZ * G_EDGEHAR_MODEL_WINDOW * G_EDGEHAR_MODEL_CHANNELS;\n"
        "  x += (g_edgehar_model_norm_mean[c] - g_edgehar_model_norm_std[c]) * G_EDGEHAR_MODEL_INPUT_SCALE;\n"
        "  x += G_EDGEHAR_MODEL_INPUT_ZERO_POINT + (q - G_EDGEHAR_MODEL_OUTPUT_ZERO_POINT) * G_EDGEHAR_MODEL_OUTPUT_SCALE;\n"
        "  return x + g_edgehar_model_labels[c % G_EDGEHAR_MODEL_CLASSES][0] + g_edgehar_model[0] + g_edgehar_model_len;\n"
        "}\n")
    for src in ("model_int8.cc", "use.c"):
        proc = subprocess.run(["gcc", "-c", "-Wall", "-Wextra", "-Werror", src, "-o", src + ".o"],
                              cwd=tmp_path, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
    syms = subprocess.run(["nm", str(tmp_path / "model_int8.cc.o")], capture_output=True, text=True).stdout
    assert "g_edgehar_model" in syms


@pytest.fixture(scope="module")
def raw_tflite():
    """A tiny student's fp32 and int8 files straight from the converter (not compacted), with
    windows to run them on (float for fp32, int8 for int8)."""
    torch.manual_seed(2)
    model = build({"name": "student", "config": student_config("tiny", 128, 6, {"acc": [0, 1, 2], "gyro": [3, 4, 5]},
                                                               {"activity": 4})})
    randomise_norms(model)
    model.eval()
    x = np.random.default_rng(3).normal(size=(40, 128, 6)).astype(np.float32)
    with tflite.quiet():
        mirror = build_keras_mirror(model.cfg, model.state_dict())
    fp32, i8 = tflite.convert_fp32(mirror), tflite.convert_int8(mirror, x)
    xq = tflite.quantize(x, tflite.io_quantization(i8)["input"])
    return {"fp32": (fp32, x), "int8": (i8, xq)}


def test_compact_tflite_computes_bit_identically_and_is_smaller(raw_tflite, exported):
    from edgehar.export.compact import breakdown, card_json, compact

    card = exported["card"]
    sizes = {}
    for kind, (raw, x) in raw_tflite.items():
        small = compact(raw, card)
        assert compact(small) == small  # idempotent: a compacted file is already compact
        assert len(small) < len(raw)
        assert np.array_equal(tflite.run_litert(raw, x), tflite.run_litert(small, x))
        if kind == "int8":
            assert np.array_equal(tflite.run_micro(raw, x), tflite.run_micro(small, x))
            assert tflite.io_quantization(raw) == tflite.io_quantization(small)
        parts = breakdown(small)
        assert parts["total"] == len(small)
        assert sum(parts[k] for k in ("weights", "quantization", "card", "tensor_names", "structure")) == len(small)
        assert parts["card"] >= len(card_json(card)) and parts["weights"] > 10_000
        sizes[kind] = len(small)
    # the card is the only thing compact adds; the int8 file stays under the converter's ratio
    assert sizes["int8"] / sizes["fp32"] < len(raw_tflite["int8"][0]) / len(raw_tflite["fp32"][0])


def test_exported_tflite_files_are_compact_aligned_and_keep_their_signature(exported):
    from ai_edge_litert import schema_py_generated as schema

    from edgehar.card import CARD_KEY
    from edgehar.export.compact import compact

    d = exported["dir"]
    sidecar = ModelCard.from_json((d / "modelcard.json").read_text())
    for name in (FILES["fp32_tflite"], FILES["int8_tflite"]):
        data = (d / name).read_bytes()
        assert compact(data) == data
        m = schema.Model.GetRootAs(data, 0)
        sub = m.Subgraphs(0)
        io = {sub.Inputs(0), sub.Outputs(0)}
        names = [sub.Tensors(i).Name().decode() for i in range(sub.TensorsLength())]
        assert all(names[i] == str(i) for i in range(len(names)) if i not in io)
        assert names[sub.Inputs(0)] == "serving_default_window:0"
        sig = m.SignatureDefs(0)
        assert (sig.Inputs(0).Name(), sig.Outputs(0).Name()) == (b"window", b"output_0")
        meta = {m.Metadata(i).Name().decode(): m.Metadata(i).Buffer() for i in range(m.MetadataLength())}
        assert {"min_runtime_version", "CONVERSION_METADATA", CARD_KEY} <= set(meta)
        text = m.Buffers(meta[CARD_KEY]).DataAsNumpy().tobytes()
        assert b"\n" not in text and ModelCard.from_json(text) == sidecar  # compact, and the same card
        for i in range(1, m.BuffersLength()):  # weights are read in place: 16-byte aligned
            buf = m.Buffers(i)
            if buf.DataLength():
                start = buf._tab.Vector(buf._tab.Offset(4))
                assert start % 16 == 0, (name, i, start)
        empty = [i for i in range(1, m.BuffersLength()) if not m.Buffers(i).DataLength()]
        assert empty == []  # activations share the empty buffer 0


def test_parity_json_compares_every_artifact(exported):
    p = json.loads((exported["dir"] / "parity.json").read_text())
    fig = p["figures"]
    assert fig["windows"] == int((exported["windows"].subject == 4).sum())
    assert fig["fp32_tflite_max_abs_diff"] <= 1e-4 and fig["fp32_onnx_max_abs_diff"] <= 1e-4
    for key in ("int8_tflite_top1_agreement", "int8_onnx_top1_agreement", "int8_micro_max_lsb",
                "int8_micro_top1_agreement", "macro_f1_int8_tflite", "macro_f1_int8_onnx", "bytes"):
        assert key in fig
    assert fig["int8_micro_max_lsb"] <= 4
    assert p["held_out"]["subjects"] == [4]
    assert set(p["bounds"]) >= {"fp32_tflite_max_abs_diff", "int8_tflite_top1_agreement", "int8_tflite_file_ratio"}
    parts = fig["tflite_bytes_breakdown"]
    for key in ("fp32_tflite", "int8_tflite"):
        assert parts[key]["total"] == fig["bytes"][key]
    assert parts["int8_tflite"]["card"] == parts["fp32_tflite"]["card"]
    assert fig["int8_tflite_weights_ratio"] < fig["int8_tflite_ratio_floor"] <= fig["int8_tflite_file_ratio"]


def test_runtime_predictor_reads_the_folder(exported):
    from edgehar.runtime import Predictor

    w = exported["windows"]
    x = w.x[w.subject == 4][:20]
    pred = Predictor(exported["dir"])  # the int8 TFLite file, preprocessing from its card
    want = exported["model"](torch.from_numpy(exported["card"].normalise(x)))[0].argmax(1).numpy()
    assert (pred.predict(x) == want).mean() >= 0.9


def test_int8_runs_in_tflite_runtime(exported, tflite_runtime_python):
    python = tflite_runtime_python  # $EDGEHAR_TFLITE_RUNTIME_PYTHON, or a numpy<2 venv made once
    d = exported["dir"]
    card = read_card(d)
    w = exported["windows"]
    x = tflite.quantize(card.normalise(w.x[w.subject == 4]),
                        {"scale": card.quantization["input_scale"], "zero_point": card.quantization["input_zero_point"]})
    other = tflite.run_tflite_runtime(python, str(d / FILES["int8_tflite"]), x)
    ref = tflite.run_litert(d / FILES["int8_tflite"], x)
    micro = tflite.run_micro(d / FILES["int8_tflite"], x)
    for out in (other, micro):
        assert np.abs(out.astype(int) - ref.astype(int)).max() <= 4
        assert (out.argmax(1) == ref.argmax(1)).mean() >= 0.995


# -- bad input: one line, exit 2, nothing written ---------------------------------------------
def run_cli(argv, capsys):
    code = main(argv)
    err = capsys.readouterr().err.strip()
    return code, err


def test_not_a_checkpoint(tmp_path, capsys):
    (tmp_path / "x.pt").write_bytes(b"garbage")
    code, err = run_cli(["export", str(tmp_path / "x.pt"), "--int8", "--out", str(tmp_path / "out")], capsys)
    assert code == 2 and err.startswith("edgehar: error:") and "\n" not in err and "checkpoint" in err
    assert os.listdir(tmp_path) == ["x.pt"]


def test_a_teacher_is_refused(tmp_path, capsys):
    card = ModelCard(labels=["a", "b"], rate=50.0, window=128, hop=64, channels=["acc_x", "acc_y", "acc_z"],
                     units=["g"] * 3, kind="teacher", arch={"name": "cnn", "config": {}})
    save_checkpoint(tmp_path / "t.pt", torch.nn.Linear(2, 2), card)
    code, err = run_cli(["export", str(tmp_path / "t.pt"), "--int8", "--out", str(tmp_path / "out")], capsys)
    assert code == 2 and "is a teacher checkpoint" in err and "distill" in err
    assert sorted(os.listdir(tmp_path)) == ["t.pt"]


def test_calibration_of_the_wrong_shape(exported, tmp_path, capsys):
    w = synthetic_windows(n_per_class=5)
    short = w.take(np.arange(len(w)))
    short.x = short.x[:, :64, :3]
    bad = save_calib(tmp_path / "bad.npz", calib_from_windows(short, 10))
    code, err = run_cli(["export", str(exported["ckpt"]), "--int8", "--calib", str(bad),
                         "--out", str(tmp_path / "out")], capsys)
    assert code == 2 and "64 samples x 3 channels" in err and "128 x 6" in err
    assert not (tmp_path / "out").exists()


def test_unwritable_output_folder(exported, tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    code, err = run_cli(["export", str(exported["ckpt"]), "--int8", "--calib", str(exported["calib"]),
                         "--out", str(tmp_path / "afile" / "art")], capsys)
    assert code == 2 and "cannot create folder" in err and "\n" not in err
    with pytest.raises(UserError, match="not a folder"):
        export_student(exported["ckpt"], tmp_path / "afile", calib=exported["calib"],
                       windows=exported["windows"], test_subjects=[4], progress=False)


def test_failure_midway_leaves_old_export_untouched(exported, tmp_path, monkeypatch):
    from edgehar.outputs import MARKER, mark_folder

    out = tmp_path / "art"
    out.mkdir()
    (out / "old.txt").write_text("previous export")
    mark_folder(out, "export")  # a previous export's folder (the guard refuses anyone else's)
    import edgehar.export.parity as parity

    def boom(*a, **k):
        raise RuntimeError("simulated failure after the models were written")

    monkeypatch.setattr(parity, "parity_report", boom)
    with pytest.raises(RuntimeError, match="simulated"):
        export_student(exported["ckpt"], out, calib=exported["calib"], windows=exported["windows"],
                       test_subjects=[4], progress=False, micro=False)
    assert sorted(os.listdir(out)) == [MARKER, "old.txt"]
    assert sorted(os.listdir(tmp_path)) == ["art"]  # no staging folder left behind


def test_without_calib_a_set_is_drawn_from_training_subjects_only():
    from edgehar.export.pipeline import resolve_calibration
    from edgehar.models.student import make_student_card

    w = synthetic_windows(n_per_class=10, subjects=(1, 2, 3))
    card = make_student_card("tiny", w)
    cal = resolve_calibration(card, None, w, "synthetic", held=[3], n=40, seed=0)
    assert len(cal) == 40 and set(cal.subject.tolist()) == {1, 2}
    assert cal.provenance["excluded_subjects"] == [3] and cal.provenance["dataset"] == "synthetic"


def test_a_card_without_data_asks_for_data():
    from edgehar.export.pipeline import card_windows
    from edgehar.models.student import make_student_card

    card = make_student_card("tiny", synthetic_windows(n_per_class=2))
    with pytest.raises(UserError, match="pass --data"):
        card_windows(card)


def test_c_float_literals_are_valid():
    from edgehar.export.c_array import _cfloat

    assert _cfloat(50) == "50.0f" and _cfloat(0) == "0.0f" and _cfloat(0.25) == "0.25f"
    assert _cfloat(1e-12) == "1e-12f"


def test_short_float32_keeps_every_float32_and_halves_the_json():
    from edgehar.export.compact import short_float32

    protos = np.random.default_rng(0).normal(size=(6, 64)).astype(np.float32)
    protos[0, :4] = [0.0, -0.0, 1e-38, 3.4e38]  # zero, signed zero, a subnormal-ish and a huge one
    full = protos.astype(np.float64).tolist()
    short = short_float32(full)
    assert np.array_equal(np.asarray(short, np.float32), protos)
    assert len(json.dumps(short)) < 0.7 * len(json.dumps(full))
    assert short_float32([0.1, 2, None, "x"]) == [0.1, 2, None, "x"]  # 0.1 is no float32: kept


def test_full_int8_conversion_converts_again_while_part_of_the_graph_is_float(raw_tflite, monkeypatch):
    # TensorFlow's converter sometimes leaves part of an unrolled LSTM in float: a float graph
    # is converted again, up to INT8_ATTEMPTS times, then it is an error
    fp32, i8 = raw_tflite["fp32"][0], raw_tflite["int8"][0]
    calls = []
    monkeypatch.setattr(tflite, "convert_int8", lambda m, x: calls.append(1) or (fp32 if len(calls) < 3 else i8))
    data, graph = tflite.convert_full_int8(None, None)
    assert len(calls) == 3 and graph["float_tensors"] == 0 and data == tflite.outputs_in_signature_order(i8)
    calls.clear()
    monkeypatch.setattr(tflite, "convert_int8", lambda m, x: calls.append(1) or fp32)
    with pytest.raises(RuntimeError, match="not full-integer"):
        tflite.convert_full_int8(None, None)
    assert len(calls) == tflite.INT8_ATTEMPTS
