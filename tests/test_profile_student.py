"""`edgehar profile` on the kit's own student: MACs from its .tflite and .onnx equal the
PyTorch count (torch_macs) within 2%, and its int8 .tflite fits the TFLM arena it reports."""

import numpy as np
import pytest
import torch

from edgehar.profile.report import profile_model
from edgehar.models.torch_macs import torch_macs
from edgehar.models.inference import LogitsOnly
from test_profile import allocates

pytestmark = pytest.mark.slow

from edgehar.export import keras_mirror
from edgehar.export import onnx as export_onnx
from edgehar.export import tflite as export_tflite
from edgehar.models import student


@pytest.fixture(scope="module", params=[("tiny", 128, 6, {"acc": [0, 1, 2], "gyro": [3, 4, 5]}),
                                        ("small", 128, 6, {"acc": [0, 1, 2], "gyro": [3, 4, 5]})],
                ids=["tiny", "small"])
def exported(request, tmp_path_factory):
    size, window, channels, streams = request.param
    torch.manual_seed(0)
    cfg = student.student_config(size, window, channels, streams, {"activity": 6})
    model = student.Student(cfg).eval()
    tmp = tmp_path_factory.mktemp(f"student-{size}")
    with export_tflite.quiet():
        mirror = keras_mirror.build_keras_mirror(model.cfg, model.state_dict())
    (tmp / "fp32.tflite").write_bytes(export_tflite.convert_fp32(mirror))
    calib = np.random.default_rng(0).standard_normal((16, window, channels)).astype(np.float32)
    (tmp / "int8.tflite").write_bytes(export_tflite.convert_int8(mirror, calib))
    export_onnx.export_fp32(model, window, channels, tmp / "fp32.onnx")
    return {"tmp": tmp, "torch_macs": torch_macs(LogitsOnly(model), torch.zeros(1, window, channels))}


@pytest.mark.parametrize("name", ["fp32.tflite", "int8.tflite", "fp32.onnx"])
def test_student_macs_match_pytorch(exported, name):
    r = profile_model(exported["tmp"] / name, arena=False, latency=False)
    want = exported["torch_macs"]
    assert abs(r["macs"] - want) <= 0.02 * want, (name, r["macs"], want)


def test_student_int8_runs_in_tflm(exported):
    r = profile_model(exported["tmp"] / "int8.tflite", latency=False)
    assert r["tflm_supported"] is True, r.get("tflm_error")
    assert r["tflm_unsupported_ops"] == [] and r["arena_bytes"] > 0
    assert allocates(exported["tmp"] / "int8.tflite", int(r["arena_bytes"] * 1.1))
    assert not allocates(exported["tmp"] / "int8.tflite", int(r["arena_bytes"] * 0.9))
