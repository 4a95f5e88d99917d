"""A Keras mirror of the student (`edgehar.models.student`), built from the card's arch config
with the weights copied from the torch state dict.

Why a mirror and not a direct torch -> TFLite conversion: TensorFlow's TFLiteConverter on a
Keras graph with a representative dataset is the one path on this toolchain that gives a FULL
int8 graph (no DEQUANTIZE/QUANTIZE left, int8 I/O) for conv + attention models whose norm is
BatchNorm; litert-torch's PT2E path leaves LayerNorm/GELU/batch-matmul in float and is not
installed (see ../shared/TOOLCHAIN.md).

Every BatchNorm is folded on the way: conv BNs into their conv, the transformer's pre-norm BNs
into the q/k/v and feed-forward inputs, the final BN into the heads. So the mirror holds only
convs, depthwise convs, dense layers, attention, adds and a mean, and the deployed graph has no
normalisation op. The softmax-free attention (`attention: "linear"`) is dense layers, reshapes,
transposes and two batch matmuls, its 1/L folded into the value projection; attention pooling
(`pool: "attention"`) is a one-unit dense score, a softmax over the tokens and a batch matmul.
Layouts: torch Conv1d (out, in/groups, k) -> Keras Conv1D (k, in, out) and
DepthwiseConv1D (k, in, 1); torch Linear (out, in) -> Keras Dense (in, out); q/k/v (d, d) ->
MultiHeadAttention (d, heads, dh) and out (d, d) -> (heads, dh, d). Padding is explicit
(ZeroPadding1D + "valid") because Keras "same" pads stride-2 convs unlike torch.

TensorFlow is imported inside functions so `import edgehar` stays light.
"""

from __future__ import annotations

import functools

import numpy as np


def _np(state: dict, key: str) -> np.ndarray:
    v = state[key]
    return v.detach().cpu().numpy().astype(np.float64) if hasattr(v, "detach") else np.asarray(v, np.float64)


def bn_affine(state: dict, prefix: str, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """BatchNorm in eval mode as y = a * x + b (per channel)."""
    a = _np(state, f"{prefix}.weight") / np.sqrt(_np(state, f"{prefix}.running_var") + eps)
    return a, _np(state, f"{prefix}.bias") - _np(state, f"{prefix}.running_mean") * a


def folded_conv(state: dict, prefix: str, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """(weight (out, in/groups, k), bias) of a ConvBN with its BatchNorm folded in."""
    a, b = bn_affine(state, f"{prefix}.bn", eps)
    return _np(state, f"{prefix}.conv.weight") * a[:, None, None], b


def folded_linear(state: dict, prefix: str, norm: tuple[np.ndarray, np.ndarray] | None):
    """(weight (out, in), bias) of a Linear whose input first goes through `norm` = (a, b)."""
    w, bias = _np(state, f"{prefix}.weight"), _np(state, f"{prefix}.bias")
    if norm is not None:
        a, b = norm
        w, bias = w * a[None, :], w @ b + bias
    return w, bias


def build_keras_mirror(cfg: dict, state: dict, batch: int = 1, embedding: bool = False):
    """The student as a Keras model (normalised window (batch, T, C) -> main-task logits, and
    with `embedding` a second output: the embedding head, for zero-shot labels on the device)."""
    import keras
    from keras import layers

    f32 = lambda a: np.asarray(a, np.float32)  # noqa: E731
    eps, k = cfg["bn_eps"], cfg["kernel"]

    def conv_bn(x, prefix, stride, groups, act):
        w, b = folded_conv(state, prefix, eps)
        if w.shape[-1] > 1:
            x = layers.ZeroPadding1D(w.shape[-1] // 2)(x)
        if groups > 1:
            layer = layers.DepthwiseConv1D(w.shape[-1], strides=stride, activation="relu6" if act else None)
            x = layer(x)
            layer.set_weights([f32(w.transpose(2, 0, 1)), f32(b)])  # (C,1,k) -> (k,C,1)
        else:
            layer = layers.Conv1D(w.shape[0], w.shape[-1], strides=stride, activation="relu6" if act else None)
            x = layer(x)
            layer.set_weights([f32(w.transpose(2, 1, 0)), f32(b)])  # (out,in,k) -> (k,in,out)
        return x

    def dense(x, w, b, activation=None):
        layer = layers.Dense(w.shape[0], activation=activation)
        x = layer(x)
        layer.set_weights([f32(w.T), f32(b)])
        return x

    def linear_attention(h, qkv, heads, dh):
        """Per head ReLU(q) (ReLU(k)^T v) / L, the 1/L folded into v's weights."""
        length = h.shape[1]
        (wq, bq), (wk, bk), (wv, bv) = qkv
        split = lambda t: layers.Reshape((length, heads, dh))(t)  # noqa: E731
        q = layers.Permute((2, 1, 3))(split(dense(h, wq, bq, "relu")))    # (heads, L, dh)
        k = layers.Permute((2, 3, 1))(split(dense(h, wk, bk, "relu")))    # (heads, dh, L)
        v = layers.Permute((2, 1, 3))(split(dense(h, wv / length, bv / length)))
        out = MatMul()([q, MatMul()([k, v])])                              # (heads, L, dh)
        return layers.Reshape((length, heads * dh))(layers.Permute((2, 1, 3))(out))

    inp = keras.Input(shape=(cfg["window"], cfg["in_channels"]), batch_size=batch, name="window")
    clipped = ClipValues(cfg["input_clip"])(inp) if cfg.get("input_clip") else inp
    streams = []
    for name, idx in cfg["streams"].items():
        x = TakeChannels(idx)(clipped) if list(idx) != list(range(cfg["in_channels"])) else clipped
        p = f"encoders.{name}"
        x = conv_bn(x, f"{p}.stem", cfg["strides"][0], 1, True)
        for i, s in enumerate(cfg["strides"][1:]):
            width = cfg["widths"][i]
            x = conv_bn(x, f"{p}.blocks.{2 * i}", s, width, True)
            x = conv_bn(x, f"{p}.blocks.{2 * i + 1}", 1, 1, True)
        streams.append(conv_bn(x, f"{p}.proj", 1, 1, False))
    h = layers.Add()(streams) if len(streams) > 1 else streams[0]
    h = AddConstant(f32(_np(state, "pos")))(h)

    d, heads = cfg["d"], cfg["heads"]
    dh = d // heads
    for i in range(cfg["layers"]):
        p = f"blocks.{i}"
        norm1 = bn_affine(state, f"{p}.norm1", eps)
        qkv = [folded_linear(state, f"{p}.attn.{n}", norm1) for n in ("q", "k", "v")]
        wo, bo = folded_linear(state, f"{p}.attn.out", None)
        if cfg.get("attention", "softmax") == "linear":
            a = dense(linear_attention(h, qkv, heads, dh), wo, bo)
        else:
            mha = layers.MultiHeadAttention(num_heads=heads, key_dim=dh, value_dim=dh)
            a = mha(h, h, h)
            for dense_layer, (w, b) in zip((mha._query_dense, mha._key_dense, mha._value_dense), qkv):
                dense_layer.set_weights([f32(w.T.reshape(d, heads, dh)), f32(b.reshape(heads, dh))])
            mha._output_dense.set_weights([f32(wo.T.reshape(heads, dh, d)), f32(bo)])
        h = layers.Add()([h, a])
        w1, b1 = folded_linear(state, f"{p}.ff1", bn_affine(state, f"{p}.norm2", eps))
        ff = dense(h, w1, b1, "relu")
        w2, b2 = folded_linear(state, f"{p}.ff2", None)
        h = layers.Add()([h, dense(ff, w2, b2)])
    if cfg.get("pool", "mean") == "attention":
        # the final norm folds into the score (and, the weights summing to 1, into the heads)
        ws, bs = folded_linear(state, "pool_score", bn_affine(state, "norm", eps))
        scores = layers.Reshape((h.shape[1],))(dense(h, ws, bs))
        weights = layers.Reshape((1, h.shape[1]))(layers.Softmax()(scores))
        pooled = layers.Reshape((d,))(MatMul()([weights, h]))
    else:
        pooled = layers.GlobalAveragePooling1D()(h)
    main = next(iter(cfg["tasks"]))
    w, b = folded_linear(state, f"heads.{main}", bn_affine(state, "norm", eps))
    logits = dense(pooled, w, b)
    if not embedding:
        return keras.Model(inp, logits, name="edgehar_student")
    w, b = folded_linear(state, "embed", bn_affine(state, "norm", eps))
    return keras.Model(inp, [logits, dense(pooled, w, b)], name="edgehar_student")


@functools.lru_cache(maxsize=1)
def _layer_classes():
    import keras

    @keras.saving.register_keras_serializable("edgehar")
    class TakeChannels(keras.layers.Layer):
        """Select one stream's channels (a slice when contiguous: STRIDED_SLICE, else GATHER)."""

        def __init__(self, idx, **kw):
            super().__init__(**kw)
            self.idx = [int(i) for i in idx]

        def call(self, x):
            lo = self.idx[0]
            if self.idx == list(range(lo, lo + len(self.idx))):
                return x[:, :, lo:lo + len(self.idx)]
            return keras.ops.take(x, self.idx, axis=2)

        def get_config(self):
            return {**super().get_config(), "idx": self.idx}

    @keras.saving.register_keras_serializable("edgehar")
    class AddConstant(keras.layers.Layer):
        """x + a fixed tensor (the positional embedding): one ADD with a constant operand."""

        def __init__(self, value, **kw):
            super().__init__(**kw)
            self.value = np.asarray(value, np.float32)

        def build(self, input_shape):
            self.const = self.add_weight(shape=self.value.shape, initializer="zeros", trainable=False,
                                         name="value")
            self.const.assign(self.value)

        def call(self, x):
            return x + self.const

    @keras.saving.register_keras_serializable("edgehar")
    class ClipValues(keras.layers.Layer):
        """Clip to [-c, c] (MINIMUM + MAXIMUM): the student's input clip."""

        def __init__(self, c, **kw):
            super().__init__(**kw)
            self.c = float(c)

        def call(self, x):
            return keras.ops.clip(x, -self.c, self.c)

        def get_config(self):
            return {**super().get_config(), "c": self.c}

    @keras.saving.register_keras_serializable("edgehar")
    class MatMul(keras.layers.Layer):
        """a @ b over the last two axes (one BATCH_MATMUL)."""

        def call(self, inputs):
            return keras.ops.matmul(inputs[0], inputs[1])

    return TakeChannels, AddConstant, ClipValues, MatMul


def TakeChannels(idx):  # noqa: N802 - a layer factory that keeps keras out of module import
    return _layer_classes()[0](idx)


def AddConstant(value):  # noqa: N802
    return _layer_classes()[1](value)


def ClipValues(c):  # noqa: N802
    return _layer_classes()[2](c)


def MatMul():  # noqa: N802
    return _layer_classes()[3]()
