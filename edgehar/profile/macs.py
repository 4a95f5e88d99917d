"""Multiply-accumulates, other work and parameters, counted from a `Graph`.

One MAC is one multiply plus one add of the layer's inner product, the convention of
`torch.utils.flop_counter` (flops / 2), so counts compare 1:1 with `torch_macs`:
  conv          out_elements * kernel_elements * in_channels_per_group
  depthwise     out_elements * kernel_elements
  transpose     in_elements  * kernel_elements * out_channels_per_group
  fc / matmul   out_elements * K (the contracted dim)
Element-wise, normalisation, pooling and reduction work is `other_ops`: one element operation
per output element (per input element for reductions and pooling). Pure data movement
(reshape, transpose, slicing, concatenation, gathers) is neither.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

from edgehar.profile.graph import Graph, Layer, Tensor

# TFLite builtin name / ONNX op_type -> MAC rule
MAC_OPS = {
    "CONV_2D": "conv_nhwc", "CONV_3D": "conv_3d", "DEPTHWISE_CONV_2D": "depthwise",
    "TRANSPOSE_CONV": "transpose_nhwc", "FULLY_CONNECTED": "fc", "BATCH_MATMUL": "batch_matmul",
    "Conv": "conv_nchw", "ConvInteger": "conv_nchw", "QLinearConv": "qlinear_conv",
    "ConvTranspose": "transpose_nchw", "Gemm": "gemm", "MatMul": "matmul",
    "MatMulInteger": "matmul", "QLinearMatMul": "matmul", "Attention": "attention",
    "com.microsoft:FusedMatMul": "matmul", "com.microsoft:QGemm": "gemm",
}

# Ops that only move or reinterpret data: no arithmetic to count.
DATA_MOVEMENT = {
    "RESHAPE", "TRANSPOSE", "SQUEEZE", "EXPAND_DIMS", "CONCATENATION", "SLICE", "STRIDED_SLICE",
    "GATHER", "GATHER_ND", "PACK", "UNPACK", "SPLIT", "SPLIT_V", "PAD", "PADV2", "MIRROR_PAD",
    "SHAPE", "BROADCAST_TO", "TILE", "REVERSE_V2", "SPACE_TO_DEPTH", "DEPTH_TO_SPACE",
    "BATCH_TO_SPACE_ND", "SPACE_TO_BATCH_ND", "ZEROS_LIKE", "FILL", "RANGE", "BITCAST",
    "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Concat", "Slice", "Gather", "GatherND",
    "GatherElements", "Split", "Pad", "Shape", "Expand", "Tile", "Flatten", "Identity",
    "ConstantOfShape", "Range", "Size", "DepthToSpace", "SpaceToDepth", "ScatterND",
}

# Work proportional to the *input* size: reductions and pooling read more than they write.
REDUCING = {
    "MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD", "AVERAGE_POOL_2D", "MAX_POOL_2D",
    "L2_POOL_2D", "ARG_MAX", "ARG_MIN",
    "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL2",
    "ReduceSumSquare", "AveragePool", "MaxPool", "GlobalAveragePool", "GlobalMaxPool",
    "ArgMax", "ArgMin",
}

# Recurrent ops: real MAC work that these rules do not count yet; the report lists them.
UNCOUNTED = {"UNIDIRECTIONAL_SEQUENCE_LSTM", "BIDIRECTIONAL_SEQUENCE_LSTM", "LSTM", "SVDF",
             "UNIDIRECTIONAL_SEQUENCE_RNN", "RNN", "GRU", "Einsum", "While", "WHILE", "IF", "If",
             "Loop", "Scan"}

# Positions of bias operands (int32 in quantised models: weights, not shape vectors).
_BIAS_SLOTS = {"CONV_2D": {2}, "DEPTHWISE_CONV_2D": {2}, "FULLY_CONNECTED": {2}, "CONV_3D": {2},
               "TRANSPOSE_CONV": {3}, "Conv": {2}, "ConvTranspose": {2}, "Gemm": {2},
               "QLinearConv": {8}, "DequantizeLinear": {0}, "DEQUANTIZE": {0}}
# Scale / zero-point operands of ONNX quantisation ops: quantisation metadata, not weights.
_QPARAM_SLOTS = {"QuantizeLinear": {1, 2}, "DequantizeLinear": {1, 2},
                 "QLinearConv": {1, 2, 4, 5, 6, 7}, "QLinearMatMul": {1, 2, 4, 5, 6, 7},
                 "MatMulInteger": {2, 3}, "ConvInteger": {2, 3}}
_INTEGER_INDEX_TYPES = {"int32", "int64", "uint32", "uint64"}


@dataclass
class LayerCount:
    layer: Layer
    macs: int | None  # None: a MAC op whose shapes the file does not give
    elements: int  # other_ops element operations
    params: int
    compute_dtype: str  # dtype of the activation feeding the MACs (picks the MCU cost table)


def _dims(t: Tensor | None) -> tuple[int, ...] | None:
    return None if t is None or t.shape is None else t.shape


def layer_macs(layer: Layer) -> int | None:
    """MACs of one layer (0 for non-MAC ops, None when a MAC op's shapes are unknown)."""
    rule = MAC_OPS.get(layer.op)
    if rule is None:
        return 0
    ins = layer.inputs
    out = _dims(layer.outputs[0]) if layer.outputs else None
    w = _dims(ins[1]) if len(ins) > 1 else None
    try:
        if rule == "conv_nhwc":  # weights [O, kh, kw, I/groups]
            return prod(out) * prod(w[1:])
        if rule == "conv_3d":  # weights [kd, kh, kw, I, O]
            return prod(out) * prod(w[:4])
        if rule == "depthwise":  # weights [1, kh, kw, O]
            return prod(out) * prod(w[1:3])
        if rule == "transpose_nhwc":  # (output_shape, weights [O, kh, kw, I], input)
            return prod(_dims(ins[2])) * prod(_dims(ins[1])[:3])
        if rule == "fc":  # weights [O, I]
            return prod(out) * w[-1]
        if rule == "batch_matmul":
            a = _dims(ins[0])
            k = a[-2] if layer.attrs.get("adjX") else a[-1]
            return prod(out) * k
        if rule == "conv_nchw":  # weights [M, C/group, k...]
            return prod(out) * prod(w[1:])
        if rule == "qlinear_conv":  # (x, x_scale, x_zp, w, ...)
            return prod(out) * prod(_dims(ins[3])[1:])
        if rule == "transpose_nchw":  # weights [C, M/group, k...], MACs scale with the input
            return prod(_dims(ins[0])) * prod(w[1:])
        if rule == "gemm":
            a = _dims(ins[0])
            k = a[0] if layer.attrs.get("transA") else a[-1]
            return prod(out) * k
        if rule == "matmul":
            a = _dims(ins[0])
            return prod(out) * a[-1]
        if rule == "attention":  # ONNX Attention: softmax(Q K^T) V per head
            q, k, v = (_dims(ins[i]) for i in range(3))
            if len(q) == 4:  # [B, H, S, D]
                return q[0] * q[1] * q[2] * k[2] * (q[3] + v[3])
            # 3-D [B, S, hidden]: heads cancel out of the product
            heads_q = layer.attrs.get("q_num_heads", 1)
            heads_kv = layer.attrs.get("kv_num_heads", heads_q)
            return q[0] * q[1] * k[1] * (q[2] + v[2] * heads_q // max(heads_kv, 1))
    except (TypeError, IndexError):
        return None
    return 0


def layer_elements(layer: Layer) -> int:
    """Element operations of a non-MAC layer (0 for MAC ops and data movement)."""
    if layer.op in MAC_OPS or layer.op in DATA_MOVEMENT or layer.op in UNCOUNTED:
        return 0
    side = layer.inputs if layer.op in REDUCING else layer.outputs
    sizes = [t.elements for t in side if t is not None and not t.const and t.elements]
    return int(max(sizes, default=0))


def is_weight(layer: Layer, slot: int, t: Tensor) -> bool:
    """Whether constant operand `slot` of `layer` is a learned weight (vs a shape vector or a
    quantisation scale/zero point)."""
    if slot in _QPARAM_SLOTS.get(layer.op, ()):
        return False
    if t.dtype in _INTEGER_INDEX_TYPES:
        return slot in _BIAS_SLOTS.get(layer.op, ())
    return t.dtype not in ("bool", "string")


def count_layers(graph: Graph) -> list[LayerCount]:
    """Per-layer MACs, element work and parameters (a weight tensor used twice counts once)."""
    seen: set[int] = set()
    producer = {id(t): layer for layer in graph.layers for t in layer.outputs if t is not None}
    rows = []
    for layer in graph.layers:
        params = 0
        for slot, t in enumerate(layer.inputs):
            if t is None or not t.const or id(t) in seen or not is_weight(layer, slot, t):
                continue
            seen.add(id(t))
            params += t.elements or 0
        act = next((t for t in layer.inputs if t is not None and not t.const), None)
        rows.append(LayerCount(layer, layer_macs(layer), layer_elements(layer), params,
                               _compute_dtype(act, producer)))
    return rows


def _compute_dtype(act: Tensor | None, producer: dict[int, Layer]) -> str:
    """The activation dtype a MAC layer really computes in. In ONNX QDQ graphs the activation
    arrives through DequantizeLinear, which runtimes fuse into an integer kernel."""
    if act is None:
        return "float32"
    source = producer.get(id(act))
    if source is not None and source.op == "DequantizeLinear" and source.inputs[0] is not None:
        return source.inputs[0].dtype
    return act.dtype


def weight_totals(graph: Graph) -> tuple[int, int, dict[str, int]]:
    """(weight elements, weight bytes, elements per dtype). Elements count every weight tensor
    once; bytes count every stored buffer once, as converters share identical constants."""
    tensors: dict[int, Tensor] = {}
    for layer in graph.layers:
        for slot, t in enumerate(layer.inputs):
            if t is not None and t.const and is_weight(layer, slot, t):
                tensors[id(t)] = t
    by_dtype: dict[str, int] = {}
    for t in tensors.values():
        by_dtype[t.dtype] = by_dtype.get(t.dtype, 0) + (t.elements or 0)
    stored = {t.key: t.nbytes for t in tensors.values()}
    return (sum(t.elements or 0 for t in tensors.values()), sum(stored.values()),
            dict(sorted(by_dtype.items())))
