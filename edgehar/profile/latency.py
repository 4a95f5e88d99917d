"""Host latency of one inference: median and p90 after warm-up, one thread.

.tflite runs in LiteRT (`ai_edge_litert`, its default XNNPACK CPU delegate included, as an app
would run it), .onnx in ONNX Runtime's CPU provider; both pinned to one intra-op thread so the
figure is comparable across machines with different core counts. Inputs are random in the
input's dtype range; latency of these models does not depend on the values.
"""

from __future__ import annotations

import time
from importlib.metadata import version

import numpy as np

from edgehar.interpreters import c_stderr_silenced, litert_interpreter, onnx_session
from edgehar.profile.graph import Graph


def random_input(shape, dtype: str, rng: np.random.Generator) -> np.ndarray:
    dt = np.dtype(dtype)
    if dt.kind == "f":
        return rng.standard_normal(shape).astype(dt)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        return rng.integers(max(info.min, -128), min(info.max, 127) + 1, size=shape, dtype=dt)
    if dt.kind == "b":
        return rng.integers(0, 2, size=shape).astype(bool)
    raise ValueError(f"cannot make a random input of dtype {dtype}")


def measure_latency(graph: Graph, runs: int = 50, warmup: int = 5) -> dict:
    """{"median", "p90", "min", "runs", "warmup", "threads", "runtime"} in milliseconds."""
    if runs < 1:
        raise ValueError("runs must be >= 1")
    rng = np.random.default_rng(0)
    with c_stderr_silenced():  # LiteRT logs "Created TensorFlow Lite XNNPACK delegate" there
        if graph.format == "tflite":
            run, runtime = _litert_runner(graph, rng)
        else:
            run, runtime = _onnxruntime_runner(graph, rng)
        for _ in range(warmup):
            run()
    times = np.empty(runs)
    for i in range(runs):
        t0 = time.perf_counter()
        run()
        times[i] = (time.perf_counter() - t0) * 1e3
    return {"median": float(np.median(times)), "p90": float(np.percentile(times, 90)),
            "min": float(times.min()), "runs": runs, "warmup": warmup, "threads": 1,
            "runtime": runtime}


def _litert_runner(graph: Graph, rng):
    interp = litert_interpreter(graph.path, 1, dynamic_dims_to_one=True)
    feeds = [(d["index"], random_input(d["shape"], np.dtype(d["dtype"]).name, rng))
             for d in interp.get_input_details()]

    def run():
        for index, value in feeds:
            interp.set_tensor(index, value)
        interp.invoke()

    return run, f"ai-edge-litert {version('ai-edge-litert')} (LiteRT interpreter, CPU)"


def _onnxruntime_runner(graph: Graph, rng):
    import onnxruntime as ort

    session = onnx_session(graph.path, 1)
    # the graph's inputs already carry numpy dtypes and concrete shapes (dynamic dims -> 1)
    feeds = {t.name: random_input(t.shape, t.dtype, rng) for t in graph.inputs}

    def run():
        session.run(None, feeds)

    return run, f"onnxruntime {ort.__version__} (CPUExecutionProvider)"

