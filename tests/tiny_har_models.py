"""Tiny real models with a Bangle.js-shaped card (3 acc channels in g, 50 Hz, 4 classes) for the
card, runtime and bridge tests: a torch CNN exported to ONNX, and a Keras CNN converted to float
and int8 TFLite. Small enough to build in seconds on 2 cores."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgehar.card import ModelCard

LABELS = ["running", "walking", "sitting", "lying"]


def bangle_card(**changes) -> ModelCard:
    fields = dict(labels=list(LABELS), rate=50.0, window=128, hop=64,
                  channels=["acc_x", "acc_y", "acc_z"], units=["g", "g", "g"],
                  norm_mean=[0.1, -0.2, 0.3], norm_std=[0.5, 0.6, 0.7], kind="student",
                  arch={"name": "tiny-test-cnn"})
    fields.update(changes)
    return ModelCard(**fields)


def torch_model(seed: int = 0):
    """(N, T, C) -> (N, 4) logits: Conv1d + ReLU + mean pool + Linear."""
    import torch
    from torch import nn

    class TinyCNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv1d(3, 8, 5, padding=2)
            self.head = nn.Linear(8, 4)

        def forward(self, x):
            h = torch.relu(self.conv(x.transpose(1, 2)))
            return self.head(h.mean(dim=2))

    torch.manual_seed(seed)
    model = TinyCNN().eval()
    with torch.no_grad():  # spread the logits so argmax is not a coin toss
        model.head.weight.mul_(4.0)
    return model


def export_onnx(model, card: ModelCard, path: Path, batch: int = 1) -> Path:
    import onnx
    import torch

    from edgehar.card_io import embed_card_onnx

    x = torch.zeros(batch, card.window, len(card.channels))
    tmp = path.with_suffix(".raw.onnx")
    torch.onnx.export(model, (x,), str(tmp), dynamo=True, external_data=False)
    proto = onnx.load(str(tmp))
    tmp.unlink()
    onnx.save(embed_card_onnx(proto, card), str(path))
    return path


def keras_tflite(card: ModelCard, path: Path, int8: bool, seed: int = 0, torch_weights=None,
                 calib: np.ndarray | None = None) -> Path:
    """A tiny Keras CNN converted to TFLite (int8 I/O when `int8`), card embedded.

    `torch_weights`: a `torch_model()` whose weights the Keras mirror takes over;
    `calib`: normalised windows for int8 calibration (default: random normal)."""
    import tensorflow as tf

    from edgehar.card_io import embed_card_tflite

    tf.keras.utils.set_random_seed(seed)
    inp = tf.keras.Input((card.window, len(card.channels)), batch_size=1)
    h = tf.keras.layers.Conv1D(8, 5, padding="same", activation="relu")(inp)
    h = tf.keras.layers.GlobalAveragePooling1D()(h)
    out = tf.keras.layers.Dense(len(card.labels))(h)
    model = tf.keras.Model(inp, out)
    if torch_weights is not None:
        sd = {k: v.detach().numpy() for k, v in torch_weights.state_dict().items()}
        model.layers[1].set_weights([sd["conv.weight"].transpose(2, 1, 0), sd["conv.bias"]])
        model.layers[-1].set_weights([sd["head.weight"].T, sd["head.bias"]])
    else:
        w, b = model.layers[-1].get_weights()
        model.layers[-1].set_weights([w * 4.0, b])
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if int8:
        rng = np.random.default_rng(seed)

        def rep():
            for i in range(32):
                x = calib[i % len(calib)][None] if calib is not None else \
                    rng.standard_normal((1, card.window, len(card.channels)))
                yield [x.astype(np.float32)]

        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = rep
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    flat = conv.convert()
    if int8:
        card.quantization = {"int8": True}
    path.write_bytes(embed_card_tflite(flat, card))
    return path


def train_torch_model(x: np.ndarray, y: np.ndarray, steps: int = 150, seed: int = 0):
    """`torch_model()` trained a little on normalised windows (N, T, C) with labels y."""
    import torch

    torch.manual_seed(seed)
    model = torch_model(seed).train()
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    xt, yt = torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y.astype(np.int64))
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(0, len(xt), (64,), generator=g)
        loss = torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def random_windows(card: ModelCard, n: int, seed: int = 1) -> np.ndarray:
    """Raw windows in the card's units (g), like a wrist accelerometer."""
    rng = np.random.default_rng(seed)
    mean = np.asarray(card.norm_mean, np.float32)
    std = np.asarray(card.norm_std, np.float32)
    return (mean + std * rng.standard_normal((n, card.window, len(card.channels)))).astype(np.float32)


_BUILT: dict[str, Path] = {}
_ROOT: list[Path] = []


class _Lazy(dict):
    """{"onnx", "onnx_batch4", "tflite", "tflite_int8"} -> path, each built on first use."""

    def __missing__(self, key):
        if not _ROOT:
            import atexit
            import shutil
            import tempfile

            _ROOT.append(Path(tempfile.mkdtemp(prefix="edgehar-tiny-")))
            atexit.register(shutil.rmtree, _ROOT[0], True)
        root = _ROOT[0]
        makers = {
            "onnx": lambda: export_onnx(torch_model(), bangle_card(), root / "tiny.onnx"),
            "onnx_batch4": lambda: export_onnx(torch_model(), bangle_card(), root / "tiny_b4.onnx", batch=4),
            "tflite": lambda: keras_tflite(bangle_card(), root / "tiny.tflite", int8=False),
            "tflite_int8": lambda: keras_tflite(bangle_card(), root / "tiny_int8.tflite", int8=True),
        }
        self[key] = makers[key]()
        return self[key]


_MODELS = _Lazy()


def built_models() -> dict[str, Path]:
    """Tiny test models, built once per test process, each only when first asked for."""
    return _MODELS
