"""ONNX export of the student: a float file and a QDQ int8 file.

Float: `torch.onnx.export` (dynamo exporter, onnxscript) of the student's main-task logits,
batch axis dynamic. int8: onnxruntime's `quant_pre_process` (shape inference + graph
optimisation, which folds BatchNorm into the convs) then `quantize_static` in QDQ format with
per-channel int8 weights and static int8 activations calibrated on real normalised windows
(MinMax). The QDQ form keeps float I/O (the runtime quantises the input itself) and is what
int8 execution providers consume.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import numpy as np

from edgehar.card_io import embed_card_onnx
from edgehar.export.tflite import quiet
from edgehar.interpreters import onnx_session

INPUT, OUTPUT = "window", "logits"


def export_fp32(model, window: int, channels: int, path: str | os.PathLike, embedding: bool = False) -> None:
    """Write the float ONNX model (input "window" (N, T, C) normalised, output "logits", and
    with `embedding` a second output "embedding": the student's embedding head)."""
    import onnx
    import torch

    from edgehar.models.inference import LogitsOnly

    wrapped = model.eval() if embedding else LogitsOnly(model).eval()
    x = torch.zeros(2, window, channels)
    batch = torch.export.Dim("batch", min=1, max=4096)
    with quiet():  # the exporter prints progress lines and warnings
        program = torch.onnx.export(wrapped, (x,), dynamo=True, input_names=[INPUT], output_names=[OUTPUT, "embedding"] if embedding else [OUTPUT],
                                   
                                    dynamic_shapes=({0: batch},), optimize=True, verbose=False)
    proto = program.model_proto
    for node in proto.graph.node:  # drop the exporter's per-node stack traces (2/3 of the file)
        del node.metadata_props[:]
        node.doc_string = ""
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))


class _Reader:
    """onnxruntime CalibrationDataReader over normalised windows, one window per call."""

    def __init__(self, x: np.ndarray):
        self.x, self.i = np.asarray(x, np.float32), 0

    def get_next(self):
        if self.i >= len(self.x):
            return None
        self.i += 1
        return {INPUT: self.x[self.i - 1:self.i]}

    def rewind(self):
        self.i = 0


def quantize_int8(fp32_path: str | os.PathLike, out_path: str | os.PathLike, calib_x: np.ndarray) -> None:
    """QDQ int8 ONNX (per-channel weights, static activations) calibrated on `calib_x`."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    reader = type("Reader", (_Reader, CalibrationDataReader), {})(calib_x)
    logging.getLogger("root").setLevel(logging.ERROR)  # onnxruntime.quantization logs via root
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        with quiet():
            quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=False)
            quantize_static(str(pre), str(out_path), reader, quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True})


def run_onnx(path: str | os.PathLike, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Logits of an ONNX model for normalised windows x (N, T, C)."""
    sess = onnx_session(path)
    outs = [sess.run([OUTPUT], {INPUT: np.asarray(x[i:i + batch_size], np.float32)})[0]
            for i in range(0, len(x), batch_size)]
    return np.concatenate(outs)


def embed_card(path: str | os.PathLike, card) -> None:
    """Rewrite an ONNX file with the model card in its metadata_props."""
    import onnx

    model = onnx.load(str(path))
    onnx.save(embed_card_onnx(model, card), str(path))
