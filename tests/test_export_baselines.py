"""Baselines exported full-int8 (`edgehar.export.baseline_mirror` through `edgehar export`'s
pipeline): the Keras mirror reproduces torch, the int8 graph is full-integer and holds only ops
the Cortex-M runner registers, it agrees with torch on held-out windows (LiteRT and
TFLite-Micro), and a checkpoint without a mirror is refused in one line.

Generated windows (`test_student.synthetic_windows`): subjects 1-3 train and calibrate, 4 is
held out. The HAPT figures are the benchmarks' (run_all.py, bench_tune.py).
"""

import json
import os
import re

import numpy as np
import pytest
import torch

from edgehar.card import ModelCard
from edgehar.checkpoint import save_checkpoint
from edgehar.cli import main
from edgehar.export import tflite
from edgehar.export.baseline_mirror import build_baseline_mirror
from edgehar.export.pipeline import FILES, export_student
from edgehar.mcu.build import FIRMWARE
from edgehar.models import build
from edgehar.models.baselines import INT8_EXPORTABLE, arch_for
from edgehar.recipes import train_baseline
from test_student import synthetic_windows

pytestmark = pytest.mark.slow


def randomise(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Non-trivial BatchNorm statistics and attention gamma, so folding and layout mistakes show."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.5)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.3)
    if hasattr(model, "aggregate"):
        model.aggregate.gamma.data.fill_(0.7)
    return model.eval()


@pytest.mark.parametrize("name,window,channels", [
    ("cnn", 128, 6), ("ignatov", 128, 6), ("tinyhar_tflm", 128, 6),
    ("cnn", 100, 4), ("ignatov", 100, 4),  # 4 channels: one 3-axis sensor for the magnitude, one left over
    ("tinyhar_tflm", 64, 3),
])
def test_fp32_mirror_matches_pytorch(name, window, channels):
    torch.manual_seed(0)
    arch = arch_for(name, channels, 5, window)
    model = randomise(build(arch))
    x = np.random.default_rng(1).normal(size=(8, window, channels)).astype(np.float32)
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    with tflite.quiet():
        mirror = build_baseline_mirror(arch, model.state_dict())
    got = tflite.run_litert(tflite.convert_fp32(mirror), x)
    assert got.shape == want.shape == (8, 5)
    assert np.abs(got - want).max() <= 1e-4


def test_tinyhar_tflm_is_a_variant_the_original_kept():
    plain, variant = build(arch_for("tinyhar", 6, 6, 128)), build(arch_for("tinyhar_tflm", 6, 6, 128))
    kinds = lambda m: {type(x).__name__ for x in m.modules()}  # noqa: E731
    assert {"LayerNorm", "GELU"} <= kinds(plain) and not {"LayerNorm", "GELU"} & kinds(variant)
    assert "LSTM" in kinds(variant)
    # the same sizes: only the norms' and the convs' biases differ
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert abs(n(plain) - n(variant)) < 200


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Each mirrored baseline trained briefly on generated windows, exported with --int8."""
    tmp = tmp_path_factory.mktemp("baselines")
    w = synthetic_windows(n_per_class=30, subjects=(1, 2, 3, 4))
    train = w.take(w.subject != 4)
    out = {}
    for name in INT8_EXPORTABLE:
        model, card = train_baseline(name, train, None, 24, seed=0, progress=False,
                                     data={"dataset": "synthetic", "test_subjects": [4]})
        save_checkpoint(tmp / f"{name}.pt", model, card)
        res = export_student(tmp / f"{name}.pt", tmp / name, windows=w, test_subjects=[4], n_calib=90,
                             progress=False)
        out[name] = {"dir": tmp / name, "res": res}
    return out


def runner_ops() -> set[str]:
    """The builtin ops the Cortex-M runner registers (its op_resolver.cc, as firmware_build reads it)."""
    text = (FIRMWARE / "tflm_runner" / "op_resolver.cc").read_text()
    return set(re.findall(r"resolver\.Add\w+\(\);\s*//\s*(\w+)", text))


@pytest.mark.parametrize("name", INT8_EXPORTABLE)
def test_int8_graph_is_full_integer_with_runner_ops(exported, name):
    d = exported[name]["dir"]
    data = (d / FILES["int8_tflite"]).read_bytes()
    report = tflite.graph_report(data)
    assert report["float_tensors"] == 0 and set(report["dtypes"]) <= {"int8", "int16", "int32"}
    assert not {"QUANTIZE", "DEQUANTIZE", "CONCATENATION", "GELU", "LAYER_NORM", "SQRT",
                "UNIDIRECTIONAL_SEQUENCE_LSTM"} & set(report["ops"])
    assert set(report["ops"]) <= runner_ops(), set(report["ops"]) - runner_ops()
    card = ModelCard.from_json((d / "modelcard.json").read_text())
    assert card.kind == "baseline" and card.arch["name"] == name and card.quantization["ops"] == report["ops"]
    assert {"model_int8.h", "model_int8.cc", "model.onnx", "model_int8.onnx"} <= set(os.listdir(d))


@pytest.mark.parametrize("name", INT8_EXPORTABLE)
def test_int8_agrees_with_pytorch_on_held_out_windows(exported, name):
    parity = json.loads((exported[name]["dir"] / "parity.json").read_text())
    fig = parity["figures"]
    assert parity["held_out"]["subjects"] == [4] and fig["windows"] == 90
    assert fig["fp32_tflite_max_abs_diff"] <= 1e-4
    assert fig["int8_tflite_top1_agreement"] >= 0.9
    # TFLite-Micro (the kernels the Cortex-M runner builds) computes what LiteRT does
    assert fig["int8_micro_top1_agreement"] >= 0.99 and fig["int8_micro_max_lsb"] <= 4


def test_ignatov_int8_runs_on_a_constant_channel(exported):
    """A channel that never moves (std 0: the square root of 1e-8 in float, RSQRT of 0 in
    int8) gives finite logits in both files and the same class from each."""
    d = exported["ignatov"]["dir"]
    card = ModelCard.from_json((d / "modelcard.json").read_text())
    x = np.random.default_rng(0).normal(size=(4, 128, 6)).astype(np.float32)
    x[:, :, 4] = 0.0
    fp = tflite.run_litert((d / FILES["fp32_tflite"]).read_bytes(), x)
    q = tflite.run_litert((d / FILES["int8_tflite"]).read_bytes(), tflite.quantize(x, {
        "scale": card.quantization["input_scale"], "zero_point": card.quantization["input_zero_point"]}))
    assert np.isfinite(fp).all() and q.dtype == np.int8 and q.shape == fp.shape


def test_a_tinyhar_checkpoint_is_refused_in_one_line(tmp_path, capsys):
    w = synthetic_windows(n_per_class=2, subjects=(1,))
    card = ModelCard(labels=list(w.label_names), rate=w.rate, window=w.length, hop=w.hop, channels=list(w.channels),
                     units=list(w.units), kind="baseline", arch=arch_for("tinyhar", 6, 3, 128))
    save_checkpoint(tmp_path / "tinyhar.pt", build(card.arch), card)
    code = main(["export", str(tmp_path / "tinyhar.pt"), "--int8", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("edgehar: error:") and "\n" not in err and "tinyhar_tflm" in err
    assert sorted(os.listdir(tmp_path)) == ["tinyhar.pt"]


@pytest.mark.skipif(not os.environ.get("EDGEHAR_TOOLCHAINS"), reason="EDGEHAR_TOOLCHAINS is not set")
def test_int8_baselines_are_measured_on_cortex_m(exported):
    from edgehar.mcu.toolchain import find_toolchain
    from edgehar.tune.measure import measure_file

    tc = find_toolchain()
    for name in INT8_EXPORTABLE:
        m = measure_file(tc, exported[name]["dir"] / FILES["int8_tflite"], ["cortex-m4", "cortex-m55"])
        assert all(n > 10_000 for n in m["instructions"].values()), (name, m)
        assert 0 < m["arena"] < 256 * 1024
