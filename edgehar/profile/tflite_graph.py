"""Read a .tflite flatbuffer into a `Graph` without TensorFlow.

Parses with the schema bindings that ship in `ai_edge_litert` (`schema_py_generated`) and the
`flatbuffers` package. Any model a converter wrote works, not only edgehar's. Shapes come from
the file; when some are dynamic (-1 in `shape_signature`) they are resolved by allocating the
model once in the LiteRT interpreter with every dynamic input dim set to 1.
"""

from __future__ import annotations

import os
import struct

import flatbuffers
from ai_edge_litert import schema_py_generated as schema

from edgehar.errors import UserError
from edgehar.interpreters import litert_interpreter
from edgehar.profile.graph import Graph, Layer, Tensor

TFLITE_IDENTIFIER = b"TFL3"

# Bytes per element of each TFLite TensorType, by name; INT4 / UINT4 are packed two per byte.
_ITEMSIZE = {"FLOAT32": 4, "FLOAT16": 2, "BFLOAT16": 2, "FLOAT64": 8, "INT64": 8, "UINT64": 8,
             "INT32": 4, "UINT32": 4, "INT16": 2, "UINT16": 2, "INT8": 1, "UINT8": 1, "BOOL": 1,
             "COMPLEX64": 8, "COMPLEX128": 16, "INT4": 0.5, "UINT4": 0.5, "INT2": 0.25}


def _enum_names(cls) -> dict[int, str]:
    return {v: k for k, v in vars(cls).items() if not k.startswith("_") and isinstance(v, int)}


def _text(value) -> str:
    if value is None:
        return ""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def looks_like_tflite(head: bytes) -> bool:
    """True when the first bytes carry the TFLite flatbuffer identifier."""
    return len(head) >= 8 and head[4:8] == TFLITE_IDENTIFIER


def read_tflite(path: str | os.PathLike) -> Graph:
    """Parse `path` into a `Graph` (main subgraph). Raises `UserError` for anything that is
    not a complete TFLite flatbuffer."""
    path = os.fspath(path)
    data = open(path, "rb").read()
    if not looks_like_tflite(data):
        raise UserError(path, "not a TFLite flatbuffer (file identifier is not TFL3)")
    try:
        model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(data, 0))
        sub = model.subgraphs[0]
        buffers = model.buffers or []
        opcodes = model.operatorCodes or []
        type_names = _enum_names(schema.TensorType)
        op_names = _enum_names(schema.BuiltinOperator)
        tensors = [_tensor(t, buffers, type_names, len(data)) for t in (sub.tensors or [])]
        layers = []
        for i, op in enumerate(sub.operators or []):
            code = opcodes[op.opcodeIndex]
            builtin = max(code.builtinCode, code.deprecatedBuiltinCode)  # schema's documented rule
            name = op_names.get(builtin, f"BUILTIN_{builtin}")
            if name == "CUSTOM":
                name = f"CUSTOM:{_text(code.customCode)}"
            ins = [None if j < 0 else tensors[j] for j in _ints(op.inputs)]
            outs = [tensors[j] for j in _ints(op.outputs)]
            out_name = outs[0].name if outs else f"op{i}"
            layers.append(Layer(i, name, out_name, ins, outs, _options(op.builtinOptions)))
        inputs = [tensors[j] for j in _ints(sub.inputs)]
        outputs = [tensors[j] for j in _ints(sub.outputs)]
    except UserError:
        raise
    except (struct.error, IndexError, ValueError, TypeError, AttributeError, UnicodeDecodeError,
            KeyError) as e:
        raise UserError(path, f"truncated or corrupt TFLite flatbuffer ({type(e).__name__}: {e})")
    if not layers:
        raise UserError(path, "TFLite model has no operators")
    graph = Graph("tflite", path, len(data), inputs, outputs, layers,
                  producer=_text(model.description), notes=[])
    if len(model.subgraphs) > 1:
        graph.notes.append(f"{len(model.subgraphs) - 1} further subgraph(s) (control flow or "
                           "decompositions) are not counted")
    if any(t.shape is None for t in tensors) or any(t.dynamic_dims for t in tensors):
        _resolve_dynamic_shapes(path, data, tensors, graph)
    return graph


def _ints(values) -> list[int]:
    return [] if values is None else [int(v) for v in values]


def _tensor(t, buffers, type_names, file_size) -> Tensor:
    dtype_name = type_names.get(t.type, f"TYPE_{t.type}")
    shape = tuple(_ints(t.shape))
    signature = _ints(t.shapeSignature)
    dynamic = tuple(i for i, d in enumerate(signature) if d < 0)
    if not shape and dynamic:
        shape = None  # rank known but no concrete dims stored
    nbytes = 0
    key = ""
    if 0 < t.buffer < len(buffers):
        buf = buffers[t.buffer]
        if buf.offset > 1:  # >2 GB models keep data after the flatbuffer at an absolute offset
            if buf.offset + buf.size > file_size:
                raise ValueError(f"buffer {t.buffer} runs past the end of the file")
            nbytes = int(buf.size)
        elif buf.data is not None:
            nbytes = int(len(buf.data))
        key = f"buffer:{t.buffer}" if nbytes else ""
    elif t.buffer >= len(buffers) and t.buffer != 0:
        raise IndexError(f"tensor {_text(t.name)!r} names buffer {t.buffer} of {len(buffers)}")
    if getattr(t, "externalBuffer", 0):  # weights kept in a side file: constant, size unknown
        key = f"external:{t.externalBuffer}"
    return Tensor(name=_text(t.name), shape=shape, dtype=dtype_name.lower(), const=bool(key),
                  nbytes=nbytes, quantization=_quant(t.quantization), dynamic_dims=dynamic,
                  key=key)


def _quant(q) -> dict | None:
    if q is None or q.scale is None or len(q.scale) == 0:
        return None
    return {"scale": [float(s) for s in q.scale],
            "zero_point": [int(z) for z in (q.zeroPoint if q.zeroPoint is not None else [])],
            "axis": int(q.quantizedDimension)}


def _options(opts) -> dict:
    """The operator's builtin options as a plain dict (adjX, strideH, ...)."""
    if opts is None:
        return {}
    return {k: v for k, v in vars(opts).items() if isinstance(v, (int, float, bool))}


def _resolve_dynamic_shapes(path: str, data: bytes, tensors: list[Tensor], graph: Graph) -> None:
    """Fill concrete shapes by allocating in LiteRT with dynamic input dims set to 1."""
    try:
        interp = litert_interpreter(data, 1, dynamic_dims_to_one=True)
        by_index = {d["index"]: d for d in interp.get_tensor_details()}
    except Exception as e:  # noqa: BLE001 - shapes stay as declared; say so
        graph.notes.append(f"dynamic shapes not resolved ({type(e).__name__}: {e})")
        return
    for i, t in enumerate(tensors):
        if i in by_index and (t.shape is None or t.dynamic_dims):
            t.shape = tuple(int(x) for x in by_index[i]["shape"])
    graph.notes.append("dynamic dims set to 1 for counting")


def single_op_models(path: str | os.PathLike):
    """Yield (op name, .tflite bytes) of one-operator copies of the model, one per distinct
    operator of its main subgraph: the operator's non-constant inputs become model inputs.
    Used to ask a runtime about every operator separately (tflite-micro stops at the first)."""
    data = open(path, "rb").read()
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(data, 0))
    op_names = _enum_names(schema.BuiltinOperator)
    sub = model.subgraphs[0]
    operators, buffers = list(sub.operators or []), model.buffers or []
    model.signatureDefs = None  # they name the full model's inputs/outputs

    def is_const(j: int) -> bool:
        b = sub.tensors[j].buffer
        return 0 < b < len(buffers) and (buffers[b].data is not None or buffers[b].offset > 1)

    seen = set()
    for op in operators:
        code = model.operatorCodes[op.opcodeIndex]
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        name = op_names.get(builtin, f"BUILTIN_{builtin}")
        if name == "CUSTOM":
            name = f"CUSTOM:{_text(code.customCode)}"
        if name in seen:
            continue
        seen.add(name)
        sub.operators = [op]
        sub.inputs = [j for j in _ints(op.inputs) if j >= 0 and not is_const(j)]
        sub.outputs = _ints(op.outputs)
        builder = flatbuffers.Builder(len(data) + 4096)
        builder.Finish(model.Pack(builder), file_identifier=TFLITE_IDENTIFIER)
        yield name, bytes(builder.Output())
