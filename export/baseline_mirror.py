"""Keras mirrors of the baselines (`edgehar.models.baselines`: `cnn`, `ignatov`,
`tinyhar_tflm`), weights copied from the torch state dict, for the same full-int8 converter the
students go through (`edgehar.export.keras_mirror` says why a mirror).

Every BatchNorm folds away: the plain CNN's and the TinyHAR variant's into their convs (conv-BN-
ReLU), Ignatov's statistics BatchNorm into the dense layer that reads the statistics, the TinyHAR
variant's token norms into q/k/v and the feed-forward input. What each mirror holds beyond convs,
dense layers, pools and adds, and why:

- `ignatov`: the per-window statistics as int8 ops: MEAN, SUB, MUL, ABS, SUM, and the square
  roots as u * RSQRT(u) (TFLM has no int8 SQRT; u = variance + 1e-8, as in torch, so the float
  graph is exact). The concatenation of the flattened features with the statistics becomes a sum
  of one dense layer per part (flattened features, mean, std, mean absolute deviation, magnitude),
  so each part keeps its own int8 scale (a concatenation would share one scale between the
  features and statistics of quite different ranges) and the graph has no CONCATENATION.
  torch flattens (filters, time), Keras (time, filters): the dense columns are permuted to match.
- `tinyhar_tflm`: the per-channel convs as CONV_2D with (kernel, 1) kernels on (time, channel)
  images; the channel transformer as Keras MultiHeadAttention over the channel tokens of each
  time step (the time steps are the attention's batch); the LSTM unrolled, one step per time
  step: the input projection of every step in one dense layer, UNPACK, then per step a dense
  layer on h (the same weights each step), SPLIT into the gates, LOGISTIC / TANH, MUL and ADD
  (the TFLM runner has no UNIDIRECTIONAL_SEQUENCE_LSTM, and unrolled each step's cell state gets
  its own int8 scale). The temporal attention: PACK of the steps' h, a tanh-dense score, SOFTMAX
  over time, BATCH_MATMUL; its learned gamma goes into a second copy of the classifier, so the
  logits are classifier(h_last) + (gamma * classifier)(attended), with no MUL by a constant.

TensorFlow is imported inside functions so `import edgehar` stays light.
"""

from __future__ import annotations

import functools

import numpy as np

from edgehar.export.keras_mirror import MatMul, _np, bn_affine
from edgehar.models.baselines import INT8_EXPORTABLE

BN_EPS = 1e-5  # torch's BatchNorm default; no baseline changes it
STAT_EPS = 1e-8  # edgehar.models.baselines.window_statistics adds it under each square root


def build_baseline_mirror(arch: dict, state: dict, batch: int = 1):
    """A baseline (card `arch`, torch `state` dict) as a Keras model: normalised window
    (batch, T, C) -> logits. Only the families in `INT8_EXPORTABLE` have one."""
    name = arch.get("name")
    if name not in INT8_EXPORTABLE:
        raise ValueError(f"no Keras mirror for baseline {name!r} (mirrored: {', '.join(INT8_EXPORTABLE)})")
    import keras

    cfg = arch["config"]
    inp = keras.Input(shape=(int(cfg["window"]), int(cfg["in_channels"])), batch_size=batch, name="window")
    build = {"cnn": _plain_cnn, "ignatov": _ignatov, "tinyhar_tflm": _tinyhar_tflm}[name]
    return keras.Model(inp, build(inp, cfg, state), name=f"edgehar_{name}")


def _f32(a) -> np.ndarray:
    return np.asarray(a, np.float32)


def _dense(x, w: np.ndarray, b: np.ndarray | None, activation=None):
    """Dense layer with torch Linear weights (out, in); no bias when `b` is None."""
    from keras import layers

    layer = layers.Dense(w.shape[0], activation=activation, use_bias=b is not None)
    y = layer(x)
    layer.set_weights([_f32(w.T)] + ([_f32(b)] if b is not None else []))
    return y


def _linear(state: dict, prefix: str, bias: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    return _np(state, f"{prefix}.weight"), (_np(state, f"{prefix}.bias") if bias else None)


def _fold_input_norm(w: np.ndarray, b: np.ndarray | None, norm) -> tuple[np.ndarray, np.ndarray]:
    """(w', b') of a linear layer whose input first goes through the affine `norm` = (a, c)."""
    a, c = norm
    return w * a[None, :], w @ c + (b if b is not None else 0.0)


def _plain_cnn(inp, cfg: dict, state: dict):
    """conv-BN-ReLU (-max-pool 2) x n -> global average pool -> linear."""
    from keras import layers

    x, j, n = inp, 0, len(cfg["channels"])
    for i in range(n):
        a, c = bn_affine(state, f"features.{j + 1}", BN_EPS)
        w = _np(state, f"features.{j}.weight") * a[:, None, None]  # (out, in, k), conv without bias
        x = layers.ZeroPadding1D(w.shape[-1] // 2)(x)  # torch pads k // 2 both sides
        conv = layers.Conv1D(w.shape[0], w.shape[-1], activation="relu")
        x = conv(x)
        conv.set_weights([_f32(w.transpose(2, 1, 0)), _f32(c)])
        j += 3
        if i < n - 1:
            x = layers.MaxPool1D(2)(x)
            j += 1
    return _dense(layers.GlobalAveragePooling1D()(x), *_linear(state, "classifier"))


def _ignatov(inp, cfg: dict, state: dict):
    """conv -> ReLU -> max-pool -> flatten; statistics; one dense per part, summed -> ReLU -> linear."""
    from keras import layers

    w = _np(state, "conv.weight")  # (filters, C, k)
    conv = layers.Conv1D(w.shape[0], w.shape[-1], activation="relu")
    h = layers.MaxPool1D(int(cfg["pool"]))(conv(inp))
    conv.set_weights([_f32(w.transpose(2, 1, 0)), _f32(_np(state, "conv.bias"))])
    length, filters = int(h.shape[1]), int(h.shape[2])
    h = layers.Reshape((length * filters,))(h)

    wh, bh = _linear(state, "hidden")
    flat = length * filters
    # torch's flatten order is (filters, time), Keras's (time, filters)
    w_feat = wh[:, :flat].reshape(-1, filters, length).transpose(0, 2, 1).reshape(-1, flat)
    w_stats, b_hidden = _fold_input_norm(wh[:, flat:], bh, bn_affine(state, "stats_norm", BN_EPS))
    parts = [_dense(h, w_feat, b_hidden)]
    channels, groups = int(cfg["in_channels"]), int(cfg["in_channels"]) // 3
    sizes = [channels] * 3 + ([groups] if groups else [])
    edges = np.cumsum([0] + sizes)
    for stat, lo, hi in zip(WindowStatistics(groups)(inp), edges[:-1], edges[1:]):
        parts.append(_dense(stat, w_stats[:, lo:hi], None))
    hidden = layers.ReLU()(layers.Add()(parts))
    return _dense(hidden, *_linear(state, "classifier"))


def _tinyhar_tflm(inp, cfg: dict, state: dict):
    """Per-channel convs -> channel transformer -> fusion -> unrolled LSTM -> temporal attention -> linear."""
    from keras import layers

    window, channels = int(cfg["window"]), int(cfg["in_channels"])
    x = layers.Reshape((window, channels, 1))(inp)
    for i in range(int(cfg["conv_layers"])):
        stride = 2 if i % 2 == 1 else 1
        a, c = bn_affine(state, f"convs.{i}.1", BN_EPS)
        w = _np(state, f"convs.{i}.0.weight") * a[:, None, None, None]  # (out, in, k, 1)
        conv = layers.Conv2D(w.shape[0], (w.shape[2], 1), strides=(stride, 1), activation="relu")
        x = conv(x)
        conv.set_weights([_f32(w.transpose(2, 3, 1, 0)), _f32(c)])
    length, filters = int(x.shape[1]), int(x.shape[3])

    # channel tokens of each time step: (1, L, C, F) -> (L, C, F), the time steps as the batch
    tokens = BatchReshape((length, channels, filters))(x)
    p = "interaction"
    heads, dh = int(cfg["heads"]), int(cfg["head_dim"])
    inner = heads * dh
    wqkv, bqkv = _fold_input_norm(_np(state, f"{p}.qkv.weight"), None, bn_affine(state, f"{p}.norm1", BN_EPS))
    mha = layers.MultiHeadAttention(num_heads=heads, key_dim=dh, value_dim=dh)
    att = mha(tokens, tokens, tokens)
    for k, dense in enumerate((mha._query_dense, mha._key_dense, mha._value_dense)):
        rows = slice(k * inner, (k + 1) * inner)
        dense.set_weights([_f32(wqkv[rows].T.reshape(filters, heads, dh)), _f32(bqkv[rows].reshape(heads, dh))])
    wo, bo = _linear(state, f"{p}.out")
    mha._output_dense.set_weights([_f32(wo.T.reshape(heads, dh, filters)), _f32(bo)])
    h = layers.Add()([tokens, att])
    w1, b1 = _fold_input_norm(*_linear(state, f"{p}.ff.0"), bn_affine(state, f"{p}.norm2", BN_EPS))
    h = layers.Add()([h, _dense(_dense(h, w1, b1, "relu"), *_linear(state, f"{p}.ff.3"))])
    h = BatchReshape((1, length, channels * filters))(h)
    fused = _dense(h, *_linear(state, "fusion"), "relu")

    hidden = _np(state, "lstm.weight_hh_l0").shape[1]
    steps = Unstack()(_dense(fused, _np(state, "lstm.weight_ih_l0"),
                             _np(state, "lstm.bias_ih_l0") + _np(state, "lstm.bias_hh_l0")))
    recurrent = layers.Dense(4 * hidden, use_bias=False)  # one layer, its weights shared by every step
    hs, c = [], None
    for t, z in enumerate(steps):
        if t:
            z = layers.Add()([z, recurrent(hs[-1])])
        i, f, g, o = SplitGates()(z)
        i, f, o = (layers.Activation("sigmoid")(v) for v in (i, f, o))
        ig = layers.Multiply()([i, layers.Activation("tanh")(g)])
        c = ig if c is None else layers.Add()([layers.Multiply()([f, c]), ig])
        hs.append(layers.Multiply()([o, layers.Activation("tanh")(c)]))
        if t == 1:
            recurrent.set_weights([_f32(_np(state, "lstm.weight_hh_l0").T)])
    if len(hs) == 1:  # built, never called: give it its weights anyway
        recurrent.build((1, hidden))
        recurrent.set_weights([_f32(_np(state, "lstm.weight_hh_l0").T)])

    seq = Stack()(hs)  # (1, L, H)
    score = _dense(_dense(seq, *_linear(state, "aggregate.score.0"), "tanh"),
                   _np(state, "aggregate.score.2.weight"), None)
    weights = layers.Reshape((1, length))(layers.Softmax()(layers.Reshape((length,))(score)))
    attended = layers.Reshape((hidden,))(MatMul()([weights, seq]))
    wc, bc = _linear(state, "classifier")
    gamma = float(_np(state, "aggregate.gamma")[0])
    return layers.Add()([_dense(hs[-1], wc, bc), _dense(attended, gamma * wc, None)])


@functools.lru_cache(maxsize=1)
def _layer_classes():
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable("edgehar")
    class WindowStatistics(keras.layers.Layer):
        """Ignatov's statistics of (N, T, C): [mean, std, mean |x - mean|] per channel and the
        mean magnitude of each of the first `groups` 3-channel sensors (4 outputs, or 3)."""

        def __init__(self, groups, **kw):
            super().__init__(**kw)
            self.groups = int(groups)

        def call(self, x):
            def root(u):  # sqrt(u) as u * rsqrt(u): TFLM has an int8 RSQRT, no int8 SQRT
                u = u + STAT_EPS
                return u * ops.rsqrt(u)

            mean = ops.mean(x, axis=1, keepdims=True)
            centred = x - mean
            out = [ops.squeeze(mean, 1), root(ops.mean(centred * centred, axis=1)),
                   ops.mean(ops.abs(centred), axis=1)]
            if self.groups:
                xyz = ops.reshape(x[:, :, :3 * self.groups], (x.shape[0], x.shape[1], self.groups, 3))
                out.append(ops.mean(root(ops.sum(xyz * xyz, axis=-1)), axis=1))
            return out

        def get_config(self):
            return {**super().get_config(), "groups": self.groups}

    @keras.saving.register_keras_serializable("edgehar")
    class BatchReshape(keras.layers.Layer):
        """Reshape including the batch axis (one RESHAPE): time steps in and out of the batch."""

        def __init__(self, shape, **kw):
            super().__init__(**kw)
            self.shape = tuple(int(s) for s in shape)

        def call(self, x):
            return ops.reshape(x, self.shape)

        def get_config(self):
            return {**super().get_config(), "shape": list(self.shape)}

    @keras.saving.register_keras_serializable("edgehar")
    class Unstack(keras.layers.Layer):
        """(N, L, D) -> L tensors (N, D) (one UNPACK)."""

        def call(self, x):
            return ops.unstack(x, axis=1)

    @keras.saving.register_keras_serializable("edgehar")
    class Stack(keras.layers.Layer):
        """L tensors (N, D) -> (N, L, D) (one PACK)."""

        def call(self, xs):
            return ops.stack(xs, axis=1)

    @keras.saving.register_keras_serializable("edgehar")
    class SplitGates(keras.layers.Layer):
        """An LSTM's pre-activations (N, 4H) -> its gates i, f, g, o (one SPLIT)."""

        def call(self, z):
            return ops.split(z, 4, axis=-1)

    return WindowStatistics, BatchReshape, Unstack, Stack, SplitGates


def WindowStatistics(groups):  # noqa: N802 - layer factories that keep keras out of module import
    return _layer_classes()[0](groups)


def BatchReshape(shape):  # noqa: N802
    return _layer_classes()[1](shape)


def Unstack():  # noqa: N802
    return _layer_classes()[2]()


def Stack():  # noqa: N802
    return _layer_classes()[3]()


def SplitGates():  # noqa: N802
    return _layer_classes()[4]()
