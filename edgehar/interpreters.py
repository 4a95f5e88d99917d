"""Loading a model file into a runtime, done one way for the whole package.

LiteRT (`ai_edge_litert`, or the older `tflite_runtime`), TFLite-Micro and ONNX Runtime, each
with tensors ready to run, pinned to the thread count asked, and with the runtimes' C-level
start-up chatter kept off the terminal; plus the int8 (de)quantisation of a TFLite tensor.
Callers decide what a load failure means to them (a `UserError`, a note in a report, ...):
the runtimes' own exceptions pass through unchanged.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys

import numpy as np

_LITERT_MODULES = {"litert": "ai_edge_litert.interpreter", "tflite-runtime": "tflite_runtime.interpreter"}


def litert_interpreter(model: bytes | str | os.PathLike, num_threads: int | None = 1, *,
                       runtime: str = "litert", xnnpack: bool = True,
                       dynamic_dims_to_one: bool = False):
    """A LiteRT interpreter over a .tflite path or flatbuffer bytes, tensors allocated.

    runtime: "litert" (ai_edge_litert) or "tflite-runtime". num_threads=None lets the runtime
    choose. xnnpack=False uses the built-in kernels only (no default XNNPACK delegate), so int8
    results do not depend on the delegate. dynamic_dims_to_one: input dims unknown in the file
    (-1) are set to 1 before allocating, as the MAC count does.
    """
    module = importlib.import_module(_LITERT_MODULES[runtime])
    kw = {"model_content": bytes(model)} if isinstance(model, (bytes, bytearray)) else {"model_path": os.fspath(model)}
    if not xnnpack:
        kw["experimental_op_resolver_type"] = module.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    with c_stderr_silenced():  # LiteRT's "INFO: Created TensorFlow Lite XNNPACK delegate" banner
        it = module.Interpreter(**kw, num_threads=num_threads)
        if dynamic_dims_to_one:
            for d in it.get_input_details():
                sig = d.get("shape_signature")
                if sig is not None and len(sig) and (np.asarray(sig) < 0).any():
                    it.resize_tensor_input(d["index"], np.where(np.asarray(sig) < 0, 1, sig))
        it.allocate_tensors()
    return it


def micro_interpreter(model: bytes | str | os.PathLike, arena_size: int):
    """A TFLite-Micro (reference kernels) interpreter; raises RuntimeError when the arena is too
    small or an operator has no kernel."""
    from tflite_micro.python.tflite_micro import runtime

    if isinstance(model, (bytes, bytearray)):
        return runtime.Interpreter.from_bytes(bytes(model), arena_size=arena_size)
    return runtime.Interpreter.from_file(os.fspath(model), arena_size=arena_size)


def onnx_session(path: str | os.PathLike, num_threads: int = 1):
    """An ONNX Runtime CPU session with `num_threads` intra-op threads, warnings off."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = num_threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(os.fspath(path), opts, providers=["CPUExecutionProvider"])


def run_each(interp, x: np.ndarray, output: int = 0) -> np.ndarray:
    """Output `output` (the first: the logits) of a batch-1 TFLite interpreter (LiteRT,
    tflite-runtime or TFLite-Micro) for each window of x, raw (x already in the input's dtype).

    Self-contained (numpy only) on purpose: the tflite-runtime check runs this very function's
    source in a venv of its own, so every TFLite runtime is driven by one loop."""
    micro = hasattr(interp, "set_input")  # TFLite-Micro's Python API differs from LiteRT's
    if not micro:
        inp, out = interp.get_input_details()[0]["index"], interp.get_output_details()[output]["index"]
    outs = []
    for i in range(len(x)):
        if micro:
            interp.set_input(x[i:i + 1], 0)
            interp.invoke()
            y = np.array(interp.get_output(output))
        else:
            interp.set_tensor(inp, x[i:i + 1])
            interp.invoke()
            y = interp.get_tensor(out)
        outs.append(y[0].copy())
    return np.stack(outs)


# -- int8 tensors: a TFLite tensor's "quantization" is (scale, zero_point) ---------------------
def quantize(x: np.ndarray, dtype, scale: float, zero: int) -> np.ndarray:
    """Float -> the tensor's dtype; integer dtypes are rounded and clipped to their range."""
    if not np.issubdtype(dtype, np.integer):
        return x.astype(dtype)
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale + zero), info.min, info.max).astype(dtype)


def dequantize(y: np.ndarray, scale: float, zero: int) -> np.ndarray:
    """The tensor's values as float32 (integer tensors through scale and zero point)."""
    if np.issubdtype(y.dtype, np.integer):
        return ((y.astype(np.float32) - zero) * scale).astype(np.float32)
    return y.astype(np.float32)


# -- C-level output -----------------------------------------------------------------------------
@contextlib.contextmanager
def c_stderr_silenced():
    """Send file descriptor 2 (C/C++ logging) to /dev/null for the block; Python exceptions
    still propagate."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (e.g. embedded): nothing to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


@contextlib.contextmanager
def c_output_to(log):
    """Send file descriptors 1 and 2 (C/C++ stdout and stderr, Python's own too) into the open
    file `log` for the block: the only way to read what the runtimes print from C."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])
