"""TFLite conversion of the Keras mirror: a float file and a FULL-integer int8 file.

int8 path (chosen on evidence, ../shared/TOOLCHAIN.md): tf.lite.TFLiteConverter with
`optimizations=[DEFAULT]`, a representative dataset of real normalised windows,
`supported_ops=[TFLITE_BUILTINS_INT8]` and int8 input/output. With BatchNorm (folded) instead of
LayerNorm and ReLU instead of GELU this leaves no float tensor: int8 activations and weights
(per-channel), int32 biases, int8 I/O. `graph_report` checks that on every export; a float
tensor or a (DE)QUANTIZE op left in the graph is an error, not a warning.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import re
import subprocess
import sys
import tempfile
import warnings

import numpy as np

from edgehar import interpreters
from edgehar.export.compact import _load, _pack_plain
from edgehar.interpreters import c_output_to, litert_interpreter, micro_interpreter, run_each


@contextlib.contextmanager
def quiet():
    """Keep TensorFlow's conversion chatter (C++ logs, printed tensor specs, warnings) off the
    terminal; it is replayed on stderr if the conversion fails."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with tempfile.TemporaryFile() as log, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with c_output_to(log):
                yield
        except BaseException:
            log.seek(0)
            sys.stderr.write(log.read().decode("utf-8", "replace")[-4000:])
            raise


def convert_fp32(keras_model) -> bytes:
    """Float32 TFLite flatbuffer of a Keras model."""
    with quiet():
        import tensorflow as tf

        return bytes(tf.lite.TFLiteConverter.from_keras_model(keras_model).convert())


def convert_int8(keras_model, calib_x: np.ndarray) -> bytes:
    """Full-integer int8 TFLite flatbuffer; `calib_x` are normalised windows (N, T, C)."""
    with quiet():
        import tensorflow as tf

        calib_x = np.asarray(calib_x, np.float32)
        conv = tf.lite.TFLiteConverter.from_keras_model(keras_model)
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([calib_x[i:i + 1]] for i in range(len(calib_x)))
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
        return bytes(conv.convert())


# TensorFlow's int8 converter is not deterministic on the unrolled LSTM of the TinyHAR variant:
# about one conversion in four leaves one time step's UNPACK/SPLIT outputs in float (same model,
# same calibration, same process). Every full-integer result is the same bytes, so converting
# again is safe; a graph still not full-integer after this many tries is an error.
INT8_ATTEMPTS = 6


def convert_full_int8(keras_model, calib_x: np.ndarray) -> tuple[bytes, dict]:
    """(`convert_int8`'s flatbuffer with its outputs in signature order, its `graph_report`),
    converted again while TensorFlow leaves part of the graph in float."""
    for _ in range(INT8_ATTEMPTS):
        data = outputs_in_signature_order(convert_int8(keras_model, calib_x))
        graph = graph_report(data)
        if not (graph["float_tensors"] or {"DEQUANTIZE", "QUANTIZE"} & set(graph["ops"])):
            return data, graph
    raise RuntimeError(f"int8 graph is not full-integer after {INT8_ATTEMPTS} conversions: {graph}")


def outputs_in_signature_order(model: bytes) -> bytes:
    """The flatbuffer with its subgraph outputs listed in the signature's order (output_0,
    output_1, ...: the Keras model's output order). The converter lists a two-output model's
    outputs the other way round, and every runtime (and `run_each`, and firmware reading
    output 0) addresses outputs by that list's position: this puts the logits first again.
    Only the order of the output list changes; tensors, operators and signature stay."""
    m = _load(model)
    sigs = m.signatureDefs or []
    if len(sigs) != 1 or len(m.subgraphs) != 1:
        return model
    key = lambda t: [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", t.name.decode()  # noqa: E731
                                                                      if isinstance(t.name, bytes) else t.name)]
    order = [int(t.tensorIndex) for t in sorted(sigs[0].outputs, key=key)]
    if sorted(order) != sorted(int(i) for i in m.subgraphs[0].outputs):
        return model
    m.subgraphs[0].outputs = order
    return _pack_plain(m)


def interpreter(model: bytes | str):
    """An ai-edge-litert interpreter with tensors allocated (built-in kernels, no XNNPACK, so
    int8 results do not depend on the delegate)."""
    return litert_interpreter(model, num_threads=None, xnnpack=False)


def graph_report(model: bytes) -> dict:
    """Ops, tensor dtypes and float-tensor count of a TFLite flatbuffer."""
    it = interpreter(model)
    ops = sorted({o["op_name"] for o in it._get_ops_details()})
    tensors = it.get_tensor_details()
    dtypes = sorted({np.dtype(t["dtype"]).name for t in tensors})
    floats = [t["name"] for t in tensors if np.dtype(t["dtype"]).kind == "f"]
    return {"ops": ops, "dtypes": dtypes, "float_tensors": len(floats), "first_float_tensors": floats[:5],
            "tensors": len(tensors), "operators": len(it._get_ops_details())}


def io_quantization(model: bytes) -> dict:
    """The int8 input/output scale and zero-point of a TFLite file, as a model card stores them."""
    it = interpreter(model)
    out = {}
    for key, det in (("input", it.get_input_details()[0]), ("output", it.get_output_details()[0])):
        scale, zero = det["quantization"]
        out[key] = {"dtype": np.dtype(det["dtype"]).name, "scale": float(scale), "zero_point": int(zero),
                    "shape": [int(s) for s in det["shape"]]}
    return out


def quantize(x: np.ndarray, q: dict) -> np.ndarray:
    """Float -> int8 with a card's {"scale", "zero_point"}."""
    return interpreters.quantize(x, np.int8, q["scale"], q["zero_point"])


def dequantize(x: np.ndarray, q: dict) -> np.ndarray:
    """int8 -> float32 with a card's {"scale", "zero_point"}."""
    return interpreters.dequantize(x, q["scale"], q["zero_point"])


def run_litert(model: bytes | str, x: np.ndarray, output: int = 0) -> np.ndarray:
    """Raw outputs (output `output`) of a batch-1 TFLite model for each window of x (already in
    its input dtype)."""
    return run_each(interpreter(model), x, output)


def run_micro(model: bytes | str, x: np.ndarray, arena_size: int = 1 << 20, output: int = 0) -> np.ndarray:
    """Raw outputs from the TFLite-Micro Python interpreter (reference kernels)."""
    return run_each(micro_interpreter(model, arena_size), x, output)


def tflite_runtime_script() -> str:
    """A script for the tflite-runtime venv (numpy<2, no edgehar): `run_each`'s own source."""
    return ("import sys\nimport numpy as np\nfrom tflite_runtime.interpreter import Interpreter\n"
            + inspect.getsource(run_each)
            + "model, src, dst = sys.argv[1:4]\nit = Interpreter(model_path=model)\nit.allocate_tensors()\n"
              "np.save(dst, run_each(it, np.load(src)))\n")


def run_tflite_runtime(python: str, model_path: str, x: np.ndarray) -> np.ndarray:
    """Raw outputs from `tflite-runtime` run by another Python (it needs numpy < 2)."""
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = os.path.join(tmp, "x.npy"), os.path.join(tmp, "y.npy")
        np.save(src, x)
        proc = subprocess.run([python, "-c", tflite_runtime_script(), str(model_path), src, dst],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"tflite-runtime ({python}) failed: {proc.stderr.strip().splitlines()[-1:]}")
        return np.load(dst)
