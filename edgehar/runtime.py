"""One `Predictor` over every runtime a model may ship in: LiteRT, tflite-runtime, ONNX Runtime
and torch checkpoints.

`Predictor(path).predict_proba(windows)` takes raw windows (N, T, C) in the card's units and
rate, and returns class probabilities (N, K). Everything between is read from the model card:
normalisation (`card.normalise`), int8 input quantisation (the input tensor's scale and zero
point), dequantisation of the output, and the softmax.

Output convention: output 0 (for TFLite, the first output whose last dimension is the number
of classes; TFLite does not keep the exporter's output order) holds the class scores; any
further output is the embedding when the card's student has one (`predict_embedding`, for
zero-shot labels: `edgehar.zeroshot`); otherwise it is ignored. The scores are *logits* and go through a
softmax, unless the card says `quantization["output"] == "probs"` (a model ending in a softmax
layer), in which case they are only clipped and renormalised.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from edgehar.card import ModelCard
from edgehar.card_io import content_mismatch, model_file_in, read_card
from edgehar.errors import UserError, first_line, warn
from edgehar.interpreters import dequantize, litert_interpreter, onnx_session, quantize
from edgehar.metrics import softmax

BACKENDS = ("litert", "tflite-runtime", "onnxruntime", "torch")
_FOR_SUFFIX = {".tflite": ("litert", "tflite-runtime"), ".onnx": ("onnxruntime",),
               ".pt": ("torch",), ".pth": ("torch",)}


_MODULE = {"litert": "ai_edge_litert.interpreter", "tflite-runtime": "tflite_runtime.interpreter",
           "onnxruntime": "onnxruntime", "torch": "torch"}


def importable(backend: str) -> bool:
    """Whether `backend` imports in this environment (importing it: a broken install, e.g. a
    numpy ABI mismatch, counts as absent)."""
    try:
        __import__(_MODULE[backend])
        return True
    except Exception:
        return False


def probabilities(scores: np.ndarray, output_kind: str) -> np.ndarray:
    """Class probabilities of a model's outputs: softmax of logits, or (`output_kind` "probs", a
    model ending in a softmax) its outputs renormalised."""
    if output_kind == "probs":
        p = np.clip(scores, 0.0, None)
        return (p / np.maximum(p.sum(axis=-1, keepdims=True), 1e-12)).astype(np.float32)
    return softmax(scores)


class Predictor:
    """Run a model file (or artifact folder) on raw windows, preprocessing from its card."""

    def __init__(self, path: str | os.PathLike, backend: str | None = None, num_threads: int = 1):
        self.path = Path(path)
        self.card: ModelCard = read_card(path)  # folder -> modelcard.json, file -> embedded card
        self.model_path = model_file_in(path)
        suffix = self.model_path.suffix.lower()
        if suffix not in _FOR_SUFFIX:
            raise UserError(self.model_path, "not a model file (expected .tflite, .onnx or .pt)")
        choices = _FOR_SUFFIX[suffix]
        if backend is None:
            # the first that imports: torch alone takes a second, a .tflite file never needs it
            backend = next((b for b in choices if importable(b)), None)
            if backend is None:
                raise UserError(self.model_path, f"no runtime installed for {suffix} "
                                                 f"(install one of: {', '.join(choices)})")
        elif backend not in BACKENDS:
            raise UserError(backend, f"unknown backend (known: {', '.join(BACKENDS)})")
        elif backend not in choices:
            raise UserError(self.model_path, f"backend {backend} cannot run {suffix} files "
                                             f"(use {' or '.join(choices)})")
        self.backend = backend
        self.num_threads = int(num_threads)
        self.n_classes = len(self.card.labels)
        self.output_kind = str(self.card.quantization.get("output", "logits"))
        if self.output_kind not in ("logits", "probs"):
            raise UserError(self.path, f"card quantization.output is {self.output_kind!r}, "
                                       "expected 'logits' or 'probs'")
        self._engine = {"litert": _TFLiteEngine, "tflite-runtime": _TFLiteEngine,
                        "onnxruntime": _OnnxEngine, "torch": _TorchEngine}[backend](self)
        _check_inputs_fit(self, getattr(self._engine, "input_shapes", None))
        mismatch = content_mismatch(self.model_path, self.card)
        if mismatch:
            warn(self.model_path, mismatch)

    # -- public API -------------------------------------------------------------------------
    def predict_scores(self, windows_raw: np.ndarray) -> np.ndarray:
        """The model's dequantised class scores (N, K) for raw windows (N, T, C)."""
        x = self._check(windows_raw)
        if len(x) == 0:
            return np.zeros((0, self.n_classes), np.float32)
        return self._engine.run(self.card.normalise(x))

    def predict_embedding(self, windows_raw: np.ndarray) -> np.ndarray:
        """The model's dequantised embedding output (N, E) for raw windows (N, T, C)."""
        x = self._check(windows_raw)
        if not hasattr(self._engine, "run_embedding"):
            raise UserError(self.model_path, "the model has no embedding output (export it again with "
                                             "this edgehar from a student with text prototypes)")
        if len(x) == 0:
            return np.zeros((0, int(self.card.arch.get("config", {}).get("embed_dim", 0))), np.float32)
        return self._engine.run_embedding(self.card.normalise(x))

    def predict_proba(self, windows_raw: np.ndarray) -> np.ndarray:
        """Class probabilities (N, K) for raw windows (N, T, C) in the card's units."""
        return probabilities(self.predict_scores(windows_raw), self.output_kind)

    def predict(self, windows_raw: np.ndarray) -> np.ndarray:
        """Class indices (N,)."""
        return np.argmax(self.predict_scores(windows_raw), axis=-1)

    def describe(self) -> dict:
        return {"model": str(self.model_path), "backend": self.backend,
                "threads": self.num_threads, **self._engine.describe()}

    def _check(self, windows_raw) -> np.ndarray:
        x = np.asarray(windows_raw, dtype=np.float32)
        if x.ndim == 2:
            x = x[None]
        want = (self.card.window, len(self.card.channels))
        if x.ndim != 3 or x.shape[1:] != want:
            raise UserError(self.path, f"windows of shape {tuple(x.shape)} do not fit the model's "
                                       f"(N, {want[0]}, {want[1]}) ({', '.join(self.card.channels)})")
        return x


# -- engines: feed normalised float windows (N, T, C), return float scores (N, K) -------------
def _batches(n: int, fixed: int | None, cap: int = 256):
    """Slices covering n items, `fixed` at a time when the model's batch size is fixed."""
    step = fixed if fixed else cap
    for s in range(0, n, step):
        yield s, min(s + step, n)


def _layout(x: np.ndarray, shape) -> np.ndarray:
    """(N, T, C) -> the model's layout: channels-first (N, C, T) when its input is that shape."""
    if len(shape) == 3 and shape[1:] != list(x.shape[1:]) and shape[1:] == [x.shape[2], x.shape[1]]:
        return x.transpose(0, 2, 1)
    return x


class _TFLiteEngine:
    def __init__(self, p: Predictor):
        try:
            self.it = litert_interpreter(p.model_path, p.num_threads, runtime=p.backend)
        except (ValueError, RuntimeError) as e:
            raise UserError(p.model_path, f"TFLite cannot load the model ({first_line(e, 160)})") from None
        self.inputs = self.it.get_input_details()
        self.input_shapes = [list(d["shape"]) for d in self.inputs]
        outs = self.it.get_output_details()
        # TFLite may list outputs in any order: take the first whose last dim is the class count
        fits = [o for o in outs if len(o["shape"]) and o["shape"][-1] == p.n_classes]
        if not fits:
            raise UserError(p.model_path, f"no output has {p.n_classes} classes "
                                          f"(outputs: {[tuple(o['shape']) for o in outs]})")
        self.out = fits[0]
        others = [o for o in outs if o["index"] != self.out["index"]]
        if len(others) == 1 and p.card.arch.get("config", {}).get("embed_dim") == others[0]["shape"][-1]:
            self.embedding = others[0]
            self.run_embedding = lambda x: self.run(x, self.embedding)
        self.streams = _stream_split(p, len(self.inputs))
        self.batch = int(self.inputs[0]["shape"][0])  # TFLite batch is fixed unless resized

    def run(self, x: np.ndarray, out: dict | None = None) -> np.ndarray:
        out = out or self.out
        res = []
        for s, e in _batches(len(x), self.batch):
            chunk = x[s:e]
            pad = self.batch - len(chunk)
            if pad:  # the model's batch is fixed: fill the last chunk with copies
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], pad, 0)])
            for d, part in zip(self.inputs, self.streams(chunk)):
                scale, zero = d["quantization"]
                self.it.set_tensor(d["index"], quantize(_layout(part, list(d["shape"])), d["dtype"], scale, zero))
            self.it.invoke()
            y = self.it.get_tensor(out["index"]).reshape(self.batch, -1)
            res.append(dequantize(y, *out["quantization"])[:e - s])
        return np.concatenate(res)

    def describe(self) -> dict:
        d = self.inputs[0]
        return {"input_dtype": np.dtype(d["dtype"]).name, "input_quant": list(map(float, d["quantization"])),
                "output_dtype": np.dtype(self.out["dtype"]).name, "batch": self.batch}


class _OnnxEngine:
    def __init__(self, p: Predictor):
        try:
            self.sess = onnx_session(p.model_path, p.num_threads)
        except Exception as e:  # onnxruntime raises its own exception types
            raise UserError(p.model_path, f"ONNX Runtime cannot load the model ({first_line(e, 160)})") from None
        self.inputs = self.sess.get_inputs()
        self.input_shapes = [list(d.shape) for d in self.inputs]
        names = [o.name for o in self.sess.get_outputs()]
        self.out_name = names[0]
        if "embedding" in names[1:]:
            self.run_embedding = lambda x: self.run(x, "embedding")
        self.streams = _stream_split(p, len(self.inputs))
        b = self.inputs[0].shape[0]
        self.batch = b if isinstance(b, int) and b > 0 else None

    def run(self, x: np.ndarray, name: str | None = None) -> np.ndarray:
        res = []
        for s, e in _batches(len(x), self.batch):
            chunk = x[s:e]
            pad = (self.batch or len(chunk)) - len(chunk)
            if pad:
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], pad, 0)])
            feed = {}
            for d, part in zip(self.inputs, self.streams(chunk)):
                dtype = np.int8 if "int8" in d.type else np.uint8 if "uint8" in d.type else np.float32
                feed[d.name] = _layout(part, list(d.shape)).astype(dtype)
            y = self.sess.run([name or self.out_name], feed)[0]
            res.append(np.asarray(y, np.float32).reshape(len(chunk), -1)[:e - s])
        return np.concatenate(res)

    def describe(self) -> dict:
        return {"input_dtype": self.inputs[0].type, "batch": self.batch}


class _TorchEngine:
    def __init__(self, p: Predictor):
        import torch

        # imported here so that a failure to load it is the one-line UserError below
        try:
            from edgehar.models import load_model  # deferred: see above
        except ImportError as e:
            raise UserError(p.model_path, f"torch checkpoints need edgehar.checkpoint ({e})") from None
        torch.set_num_threads(p.num_threads)
        self.model, _ = load_model(p.model_path)
        self.model.eval()
        if p.card.kind == "student":
            self.run_embedding = lambda x: self.run(x, 1)

    def run(self, x: np.ndarray, output: int = 0) -> np.ndarray:
        import torch

        res = []
        with torch.inference_mode():
            for s, e in _batches(len(x), None):
                y = self.model(torch.from_numpy(np.ascontiguousarray(x[s:e])))
                if isinstance(y, dict):
                    y = y.get("logits", next(iter(y.values())))
                elif isinstance(y, (tuple, list)):
                    y = y[output]
                res.append(y.detach().float().cpu().numpy().reshape(e - s, -1))
        return np.concatenate(res)

    def describe(self) -> dict:
        return {"input_dtype": "float32", "batch": None}


def _check_inputs_fit(p: Predictor, shapes) -> None:
    """Raise a one-line `UserError` when the graph's inputs cannot take the windows its card
    describes (a card edited to 6 channels for a 3-channel model, another window length);
    a symbolic dimension (ONNX) fits anything."""
    if not shapes:
        return
    parts = [len(p.card.channels)] if len(shapes) == 1 else [len(i) for i in p.card.streams.values()]
    for shape, channels in zip(shapes, parts):
        dims = [int(d) if isinstance(d, (int, np.integer)) and int(d) > 0 else None for d in shape]
        want = (p.card.window, channels)
        fits = len(dims) == 3 and any(all(g is None or g == w for g, w in zip(dims[1:], order))
                                      for order in (want, want[::-1]))
        if not fits:
            shown = ", ".join("?" if d is None else str(d) for d in dims)
            raise UserError(p.path, f"model card does not fit the model: the card says {p.card.window} samples x "
                                    f"{channels} channels ({', '.join(p.card.channels)}), the model's input is "
                                    f"({shown})")


def _stream_split(p: Predictor, n_inputs: int):
    """How to cut (N, T, C) into the model's inputs: whole, or one input per card stream."""
    if n_inputs == 1:
        return lambda x: [x]
    streams = list(p.card.streams.values())
    if len(streams) != n_inputs:
        raise UserError(p.model_path, f"model has {n_inputs} inputs but the card names "
                                      f"{len(streams)} streams ({', '.join(p.card.streams)})")
    return lambda x: [x[:, :, idx] for idx in streams]
