"""Read an .onnx file into a `Graph` with shapes from ONNX shape inference.

Dynamic input dims (a symbolic batch, say) are fixed to 1 before inference so that every
intermediate shape is concrete; the report names the axes that were dynamic.
"""

from __future__ import annotations

import os

from google.protobuf.message import DecodeError

from edgehar.errors import UserError, first_line
from edgehar.profile.graph import Graph, Layer, Tensor


def load_onnx(path: str):
    """`onnx.ModelProto` from `path`, checked; `UserError` if it is not a usable ONNX model."""
    import onnx

    try:
        proto = onnx.load(path)
    except (DecodeError, RuntimeError, ValueError, OSError, UnicodeDecodeError) as e:
        raise UserError(path, f"not a readable ONNX model ({type(e).__name__}: {str(e)[:120]})")
    # protobuf parses almost any bytes into *something*: demand a real graph
    if proto.ir_version <= 0 or not proto.graph.node or not proto.graph.output:
        raise UserError(path, "not an ONNX model (no graph nodes or outputs; truncated?)")
    try:
        onnx.checker.check_model(proto)
    except Exception as e:  # noqa: BLE001 - onnx raises several checker error types
        raise UserError(path, f"invalid ONNX model: {first_line(e, 160)}")
    return proto


def read_onnx(path: str | os.PathLike) -> Graph:
    """Parse `path` into a `Graph` (main graph; nested If/Loop bodies are not counted)."""
    import onnx
    from onnx import helper, numpy_helper, shape_inference

    path = os.fspath(path)
    proto = load_onnx(path)
    notes: list[str] = []
    initializers = {t.name for t in proto.graph.initializer}
    real_inputs = [i for i in proto.graph.input if i.name not in initializers]
    dynamic: dict[str, tuple[int, ...]] = {}
    for vi in real_inputs:  # fix symbolic/unknown dims to 1 so inference yields concrete shapes
        dims = vi.type.tensor_type.shape.dim
        axes = tuple(i for i, d in enumerate(dims) if not d.HasField("dim_value") or d.dim_value <= 0)
        for i in axes:
            dims[i].Clear()
            dims[i].dim_value = 1
        if axes:
            dynamic[vi.name] = axes
    if dynamic:
        notes.append("dynamic input dims set to 1 for counting: " +
                     ", ".join(f"{k}{list(v)}" for k, v in dynamic.items()))
    try:
        inferred = shape_inference.infer_shapes(proto, strict_mode=False, data_prop=True)
    except Exception as e:  # noqa: BLE001 - fall back to the shapes the file declares
        notes.append(f"shape inference failed ({type(e).__name__}); using declared shapes")
        inferred = proto

    def dtype_name(elem_type: int) -> str:
        try:
            return helper.tensor_dtype_to_np_dtype(elem_type).name
        except Exception:  # noqa: BLE001 - e.g. float8 / string
            return onnx.TensorProto.DataType.Name(elem_type).lower()

    tensors: dict[str, Tensor] = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        tt = vi.type.tensor_type
        shape = None
        if tt.HasField("shape"):
            dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tt.shape.dim]
            shape = None if any(d < 0 for d in dims) else tuple(dims)
        tensors[vi.name] = Tensor(vi.name, shape, dtype_name(tt.elem_type),
                                  dynamic_dims=dynamic.get(vi.name, ()))
    for init in proto.graph.initializer:
        tensors[init.name] = _const(init, dtype_name, numpy_helper)
    for node in proto.graph.node:  # Constant nodes are weights too
        if node.op_type == "Constant" and node.output:
            value = next((a.t for a in node.attribute if a.name == "value"), None)
            if value is not None:
                tensors[node.output[0]] = _const(value, dtype_name, numpy_helper,
                                                 name=node.output[0])

    def get(name: str) -> Tensor | None:
        if not name:
            return None
        if name not in tensors:
            tensors[name] = Tensor(name, None, "unknown")
        return tensors[name]

    layers = []
    for i, node in enumerate(proto.graph.node):
        if node.op_type == "Constant":
            continue
        op = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}:{node.op_type}"
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute
                 if a.type in (onnx.AttributeProto.INT, onnx.AttributeProto.FLOAT,
                               onnx.AttributeProto.INTS, onnx.AttributeProto.STRING)}
        layers.append(Layer(len(layers), op, node.name or (node.output[0] if node.output else op),
                            [get(n) for n in node.input], [get(n) for n in node.output], attrs))
    if any(l.op in ("If", "Loop", "Scan") for l in layers):
        notes.append("control-flow subgraphs (If/Loop/Scan) are not counted")
    inputs = [tensors[vi.name] for vi in real_inputs]
    outputs = [get(o.name) for o in proto.graph.output]
    producer = " ".join(x for x in (proto.producer_name, proto.producer_version) if x)
    return Graph("onnx", path, os.path.getsize(path), inputs, outputs, layers,
                 producer=producer, notes=notes)


def _const(t, dtype_name, numpy_helper, name: str | None = None) -> Tensor:
    arr = numpy_helper.to_array(t)  # also resolves external data (already loaded by onnx.load)
    return Tensor(name or t.name, tuple(int(d) for d in t.dims), dtype_name(t.data_type),
                  const=True, nbytes=int(arr.nbytes), key=f"init:{name or t.name}")
