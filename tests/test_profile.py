"""`edgehar profile`: MACs from the graph vs PyTorch, TFLM arena, unsupported ops, bad files.

Models are built here with three toolchains, once per session (tmp_path_factory):
- PyTorch -> ONNX (torch.onnx dynamo) and PyTorch -> TFLite (litert-torch);
- Keras -> TFLite with TensorFlow's converter: float32, float16 weights, full int8;
- ONNX written node by node with onnx.helper (ConvTranspose, Gemm, a dynamic batch).
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from edgehar.cli import main
from edgehar.profile.report import profile_model
from edgehar.models.torch_macs import torch_macs

pytestmark = pytest.mark.slow

T = 32  # samples per window: tiny models, fast conversions


class ConvAttention(nn.Module):
    """Conv1d + depthwise + multi-head self-attention + LayerNorm + Linear: a student's ops."""

    def __init__(self, act=torch.relu, c=3, d=16, heads=2, classes=4):
        super().__init__()
        self.act = act
        self.conv = nn.Conv1d(c, d, 5, padding=2)
        self.dw = nn.Conv1d(d, d, 3, padding=1, groups=d)
        self.att = nn.MultiheadAttention(d, heads, batch_first=True)
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, classes)

    def forward(self, x):  # (N, T, C) -> (N, classes)
        h = torch.relu(self.conv(x.transpose(1, 2)))
        h = self.act(self.dw(h)).transpose(1, 2)
        a, _ = self.att(h, h, h, need_weights=False)
        return self.head(self.norm(h + a).mean(1))


def conv_attention_macs(c=3, d=16, classes=4, t=T) -> int:
    """The same count by hand: conv, depthwise, q/k/v + out projections, QK^T and AV, head."""
    return t * d * 5 * c + t * d * 3 + 4 * t * d * d + 2 * t * t * d + d * classes


def keras_model():
    """Conv1D + BN + depthwise + Conv1DTranspose + MultiHeadAttention + Dense (Keras)."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(0)
    inp = tf.keras.Input((T, 3), batch_size=1)
    h = tf.keras.layers.Conv1D(16, 5, padding="same")(inp)
    h = tf.keras.layers.ReLU()(tf.keras.layers.BatchNormalization()(h))
    h = tf.keras.layers.DepthwiseConv1D(3, padding="same", activation="relu")(h)
    h = tf.keras.layers.Conv1DTranspose(8, 3, strides=2, padding="same")(h)
    h = tf.keras.layers.Add()([h, tf.keras.layers.MultiHeadAttention(num_heads=2, key_dim=8)(h, h)])
    out = tf.keras.layers.Dense(4)(tf.keras.layers.GlobalAveragePooling1D()(h))
    return tf.keras.Model(inp, out)


def keras_macs(t=T) -> int:
    t2 = 2 * t  # after the stride-2 transpose conv
    return (t * 16 * 5 * 3 + t * 16 * 3 + t * 16 * 3 * 8  # conv, depthwise, transpose conv
            + 3 * t2 * 8 * 16 + 2 * t2 * t2 * 16 + t2 * 16 * 8 + 8 * 4)  # attention, head


def keras_tflite(model, mode: str) -> bytes:
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if mode == "fp16":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.target_spec.supported_types = [tf.float16]
    elif mode == "int8":
        rng = np.random.default_rng(0)
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([rng.standard_normal((1, T, 3)).astype(np.float32)]
                                               for _ in range(16))
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    return bytes(conv.convert())


def helper_onnx(path):
    """ONNX built node by node (no exporter): Conv -> ConvTranspose -> Flatten -> Gemm ->
    MatMul, batch dim symbolic."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    init = lambda name, *shape: numpy_helper.from_array(  # noqa: E731
        rng.standard_normal(shape).astype(np.float32), name)
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1], kernel_shape=[3]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("ConvTranspose", ["r1", "w2"], ["c2"], strides=[2], kernel_shape=[2]),
        helper.make_node("Flatten", ["c2"], ["f"]),
        helper.make_node("Gemm", ["f", "w3", "b3"], ["g"], transB=1),
        helper.make_node("MatMul", ["g", "w4"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "handmade", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5])],
        [init("w1", 8, 3, 3), init("b1", 8), init("w2", 8, 4, 2), init("w3", 10, 4 * 32),
         init("b3", 10), init("w4", 10, 5)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    macs = 16 * 8 * 3 * 3 + 16 * 8 * 4 * 2 + 10 * 4 * 32 + 10 * 5
    return path, macs


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    """Every test model, converted once: {key: path} plus reference MAC counts."""
    tmp = tmp_path_factory.mktemp("profile")
    torch.manual_seed(0)
    relu_net, gelu_net = ConvAttention().eval(), ConvAttention(act=nn.functional.gelu).eval()
    x = torch.randn(1, T, 3)
    out = {"torch_macs": torch_macs(relu_net, x), "relu_net": relu_net, "example": x}

    torch.onnx.export(relu_net, (x,), str(tmp / "torch.onnx"), dynamo=True, external_data=False)
    out["torch.onnx"] = tmp / "torch.onnx"
    try:
        import litert_torch
    except ImportError:
        litert_torch = None
    if litert_torch is not None:
        litert_torch.convert(relu_net, (x,)).export(str(tmp / "litert.tflite"))
        litert_torch.convert(gelu_net, (x,)).export(str(tmp / "gelu.tflite"))
        out["litert.tflite"], out["gelu.tflite"] = tmp / "litert.tflite", tmp / "gelu.tflite"

    keras = keras_model()
    for mode in ("fp32", "fp16", "int8"):
        (tmp / f"keras_{mode}.tflite").write_bytes(keras_tflite(keras, mode))
        out[f"keras_{mode}"] = tmp / f"keras_{mode}.tflite"
    out["helper.onnx"], out["helper_macs"] = helper_onnx(tmp / "helper.onnx")
    out["tmp"] = tmp
    return out


def needs(models, key):
    if key not in models:
        pytest.skip(f"{key}: litert-torch is not installed (pip install -e .[dev])")
    return models[key]


def quick(path, **kw):
    return profile_model(path, runs=3, warmup=1, **kw)


# -- MACs -------------------------------------------------------------------------------------
def test_torch_macs_counts_fused_attention(models):
    # nn.MultiheadAttention in eval/no_grad takes a fused kernel FlopCounterMode cannot see
    assert models["torch_macs"] == conv_attention_macs()
    net, x = models["relu_net"], models["example"]
    assert torch_macs(net, x, training=True) == conv_attention_macs()


@pytest.mark.parametrize("key", ["torch.onnx", "litert.tflite"])
def test_graph_macs_match_pytorch_within_2_percent(models, key):
    report = quick(needs(models, key), per_layer=True, arena=False)
    want = models["torch_macs"]
    assert abs(report["macs"] - want) <= 0.02 * want, (report["macs"], want)
    assert sum(l["macs"] or 0 for l in report["layers"]) == report["macs"]
    assert set(report["macs_by_op"]) & {"Conv", "MatMul", "Gemm", "CONV_2D", "FULLY_CONNECTED",
                                        "BATCH_MATMUL", "DEPTHWISE_CONV_2D"}


@pytest.mark.parametrize("mode", ["fp32", "fp16", "int8"])
def test_keras_tflite_macs_equal_hand_count(models, mode):
    report = quick(models[f"keras_{mode}"], arena=False, latency=False)
    assert report["macs"] == keras_macs()
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "FULLY_CONNECTED",
            "BATCH_MATMUL"} <= set(report["macs_by_op"])
    assert report["other_ops"]["by_op"]["SOFTMAX"] == 2 * (2 * T) ** 2


def test_handmade_onnx_with_dynamic_batch(models):
    report = quick(models["helper.onnx"])
    assert report["macs"] == models["helper_macs"]
    assert report["inputs"][0]["shape"] == [1, 3, 16]
    assert report["inputs"][0]["dynamic_dims"] == [0]
    assert any("dynamic" in n for n in report["notes"])
    assert report["params"] == 8 * 3 * 3 + 8 + 8 * 4 * 2 + 10 * 128 + 10 + 50
    assert report["tflm_supported"] is None and report["arena_bytes"] is None
    assert report["latency_ms"]["runtime"].startswith("onnxruntime")


# -- formats and what TFLM can run ------------------------------------------------------------
def test_int8_report(models):
    r = quick(models["keras_int8"])
    assert r["inputs"][0]["dtype"] == "int8" and r["outputs"][0]["dtype"] == "int8"
    q = r["inputs"][0]["quantization"]
    assert len(q["scale"]) == 1 and q["scale"][0] > 0
    assert r["weight_dtypes"]["int8"] > 0 and "float32" not in r["weight_dtypes"]
    assert r["tflm_supported"] is True and r["arena_bytes"] > 0
    assert all(t["macs"] == {"int8": keras_macs()} for t in r["targets"])
    f = quick(models["keras_fp32"], latency=False)
    assert r["weights_bytes"] < f["weights_bytes"] / 2  # int8 weights (+ int32 biases)


def test_float16_weights_model(models):
    r = quick(models["keras_fp16"])
    assert r["weight_dtypes"].get("float16", 0) > 0
    assert r["ops"]["DEQUANTIZE"] >= 1
    # TFLM's DEQUANTIZE takes int8/int16/uint8 only: reported, not raised
    assert r["tflm_supported"] is False and r["arena_bytes"] is None
    assert "DEQUANTIZE" in r["tflm_unsupported_ops"]
    assert r["latency_ms"]["median"] > 0  # LiteRT runs it


def test_gelu_model_reports_unsupported_ops(models):
    r = quick(needs(models, "gelu.tflite"))
    assert r["tflm_supported"] is False
    assert r["tflm_unsupported_ops"] == ["GELU"]
    assert "GELU" in r["tflm_error"]
    assert r["latency_ms"]["median"] > 0
    assert r["other_ops"]["by_op"]["GELU"] > 0


ARENA_PROBE = """
import sys
from tflite_micro.python.tflite_micro import runtime
try:
    runtime.Interpreter.from_file(sys.argv[1], arena_size=int(sys.argv[2]))
    print("ok")
except RuntimeError:
    print("fail")
"""


def allocates(path, size: int) -> bool:
    """Whether tflite-micro allocates `path` in `size` bytes (own process: TFLM may crash)."""
    run = subprocess.run([sys.executable, "-c", ARENA_PROBE, str(path), str(size)],
                         capture_output=True, text=True, timeout=120)
    return run.stdout.strip() == "ok"


@pytest.mark.parametrize("key", ["keras_fp32", "keras_int8", "litert.tflite"])
def test_arena_bytes_within_10_percent(models, key):
    r = quick(needs(models, key), latency=False)
    assert r["tflm_supported"] is True
    arena = r["arena_bytes"]
    assert allocates(models[key], int(arena * 1.1))
    assert not allocates(models[key], int(arena * 0.9))


# -- CLI --------------------------------------------------------------------------------------
def test_cli_json_contract(models, capsys):
    code = main(["profile", str(models["keras_int8"]), "--json", "--per-layer", "--runs", "4",
                 "--target", "cortex-m4f", "esp32-s3@160"])
    assert code == 0
    r = json.loads(capsys.readouterr().out)
    for key in ("format", "inputs", "outputs", "ops", "params", "weights_bytes", "file_bytes",
                "macs", "layers", "other_ops", "arena_bytes", "tflm_supported",
                "tflm_unsupported_ops", "latency_ms", "targets"):
        assert key in r, key
    assert r["format"] == "tflite" and r["file_bytes"] == os.path.getsize(models["keras_int8"])
    lat = r["latency_ms"]
    assert lat["runs"] == 4 and lat["threads"] == 1 and 0 < lat["median"] <= lat["p90"]
    assert [t["name"] for t in r["targets"]] == ["cortex-m4f@64MHz", "esp32-s3@160MHz"]
    assert all(t["estimate"] is True for t in r["targets"])
    m4, s3 = r["targets"]
    assert m4["estimated_ms"] == pytest.approx(keras_macs() * 2.55 / 64e3)
    assert s3["estimated_ms"] == pytest.approx(keras_macs() * 2.0 / 160e3)


def test_cli_table(models, capsys):
    assert main(["profile", str(models["torch.onnx"]), "--runs", "2", "--per-layer"]) == 0
    text = capsys.readouterr().out
    assert "MACs" in text and "ESTIMATES" in text and "Conv" in text


def bad_files(tmp):
    text = tmp / "notes.tflite"
    text.write_text("not a model at all\n")
    other = tmp / "notes.txt"
    other.write_text("hello\n")
    empty = tmp / "empty.onnx"
    empty.write_bytes(b"")
    return {"text": text, "text-other-suffix": other, "empty": empty,
            "missing": tmp / "nope.tflite", "folder": tmp}


@pytest.mark.parametrize("case", ["text", "text-other-suffix", "empty", "missing", "folder",
                                  "tflite-half", "tflite-90", "onnx-half"])
def test_bad_model_files_exit_2(models, tmp_path, capsys, case):
    files = bad_files(tmp_path)
    for name, src, frac in (("tflite-half", "keras_fp32", 0.5), ("tflite-90", "keras_fp32", 0.9),
                            ("onnx-half", "torch.onnx", 0.5)):
        data = models[src].read_bytes()
        files[name] = tmp_path / f"cut-{name}{models[src].suffix}"
        files[name].write_bytes(data[:int(len(data) * frac)])
    assert main(["profile", str(files[case]), "--runs", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("edgehar: error: ") and len(err.splitlines()) == 1, err


def test_bad_file_from_shell_has_no_traceback(models, tmp_path):
    cut = tmp_path / "cut.tflite"
    cut.write_bytes(models["keras_int8"].read_bytes()[:300])
    run = subprocess.run([sys.executable, "-m", "edgehar", "profile", str(cut)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert "Traceback" not in run.stderr and run.stderr.startswith("edgehar: error:")


def test_unknown_target_exit_2(models, capsys):
    assert main(["profile", str(models["helper.onnx"]), "--target", "pentium"]) == 2
    assert "cortex-m4f" in capsys.readouterr().err


def test_arena_worker_survives_tflm_crash(models):
    from edgehar.profile.arena import _Worker

    worker = _Worker()
    try:  # a 64-byte arena makes tflite-micro segfault: counted as "too small", not fatal
        reply = worker.ask(path=str(models["keras_fp32"]), size=64)
        assert reply["ok"] is False and reply.get("crashed")
        assert worker.ask(path=str(models["keras_fp32"]), size=1 << 20)["ok"] is True
    finally:
        worker.close()


def test_onnx_qdq_int8_counts_as_int8(models, tmp_path):
    """onnxruntime's static QDQ quantisation: same MACs, int8 weights, int8 MCU cost."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            rng = np.random.default_rng(0)
            self.items = iter([{"x": rng.standard_normal((1, T, 3)).astype(np.float32)}
                               for _ in range(8)])

        def get_next(self):
            return next(self.items, None)

    pre, qdq = tmp_path / "pre.onnx", tmp_path / "qdq.onnx"
    quant_pre_process(str(models["torch.onnx"]), str(pre))
    quantize_static(str(pre), str(qdq), Reader(), quant_format=QuantFormat.QDQ, per_channel=True)
    r = quick(qdq)
    assert r["ops"].get("DequantizeLinear", 0) > 0
    assert abs(r["macs"] - models["torch_macs"]) <= 0.02 * models["torch_macs"]
    assert r["weight_dtypes"].get("int8", 0) > r["weight_dtypes"].get("float32", 0)
    assert set(r["targets"][0]["macs"]) == {"int8"}
    assert r["latency_ms"]["median"] > 0
