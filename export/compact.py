"""Shrink a TFLite flatbuffer without changing what it computes, and embed the model card in it.

Besides its weights, the converter's flatbuffer carries a per-file part that does not shrink
with int8: a table per tensor and operator, the TF op path of every tensor as its name
(~100 B each), an empty buffer of its own for every activation, and, in the int8 file,
per-channel scales plus int64 zero points that are stored again for every weight and bias
tensor. On a student of 15-50k parameters that part is as large as the int8 weights.
`compact` rewrites the file, identically for the fp32 and the int8 file so that their size
comparison stays fair:

- tensor names: intermediate tensors are named by their index ("17"); the model's input and
  output tensors keep their names and the signature ("window" -> "output_0") is unchanged.
  Runtimes address tensors by index (signatures, operator inputs); names are debug strings.
- empty buffers: every tensor without constant data points at buffer 0 (the schema's empty
  sentinel) instead of an empty buffer of its own; the unused empty buffers are dropped.
- shared sub-objects: byte-identical vectors (shapes, zero points -- all zeros for symmetric
  int8 weights --, scales, operator input lists), strings, quantisation tables and operator
  option tables are written once and referenced from every table that uses them (a flatbuffer
  is a DAG of offsets, as the C++ builder's CreateSharedString uses too; LiteRT's flatbuffer
  verifier, which rejects corrupt files, accepts these).
- empty quantisation tables (the converter gives every float tensor one) are left out: a
  missing table and an empty one both read as "not quantised".
- the model card is embedded (metadata `edgehar.card`) as compact JSON: no indentation, the
  same numbers, so `ModelCard.from_json` reads back exactly the sidecar `modelcard.json`. The
  export card's text prototypes (float32 embeddings, 17 digits each in JSON) are written with
  `short_float32`, in the sidecar too: the same float32 values in about half the characters.

Kept: every weight byte (each buffer 16-byte aligned: TFLite-Micro reads weights and int32
biases in place), every quantisation parameter, operator, option and signature, the
converter's `min_runtime_version` and `CONVERSION_METADATA` entries and the description.
Nothing numeric changes: every export runs both files before and after on calibration windows
and requires bit-identical outputs (`pipeline.compact_checked`); the tests also compare
TFLite-Micro and tflite-runtime. `breakdown` says where the bytes of a file go.
"""

from __future__ import annotations

import json

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

from edgehar.card import CARD_KEY
from edgehar.card_io import TFLITE_IDENTIFIER, AlignedBuffer, flatbuffer_text


def card_json(card) -> str:
    """The card as compact JSON (what goes into model metadata)."""
    return json.dumps(card.to_dict(), separators=(",", ":"))


def short_float32(values):
    """Nested lists of float32 values (text prototypes) with each float written as the shortest
    decimal that reads back to the same float32 ("0.16349", not "0.16348999738693237"); a
    value that is not exactly a float32, or would not survive the trip, stays as it is."""
    if isinstance(values, list):
        return [short_float32(v) for v in values]
    if not isinstance(values, float) or float(np.float32(values)) != values:
        return values
    short = float(str(np.float32(values)))
    return short if np.float32(short) == np.float32(values) else values


def compact(tflite_bytes: bytes, card=None) -> bytes:
    """`tflite_bytes` rewritten as described in the module docstring, with `card` (a
    `ModelCard`) stored in the `edgehar.card` metadata entry (replacing any card there); with
    no `card` an embedded one is kept as it is. Compacting a compacted file changes nothing."""
    return _pack(_load(tflite_bytes), card)


def breakdown(tflite_bytes: bytes) -> dict:
    """Where the bytes of a (compacted) TFLite file go: {"total", "weights", "quantization",
    "card", "tensor_names", "structure"}. Each part is measured as the bytes the file loses
    without it (vector headers and alignment padding included); "structure" is the rest: the
    tensor, operator, buffer and signature tables, shapes, option tables, operator codes and the
    converter's metadata. `per_channel_scales` counts the float32 scales of per-channel tensors
    (weights and biases), the part of "quantization" no encoding of the same model avoids."""
    total = len(_pack(_load(tflite_bytes)))

    def without(strip) -> int:
        model = _load(tflite_bytes)
        strip(model)
        return total - len(_pack(model))

    def no_weights(model):
        meta = {m.buffer for m in model.metadata or []}
        for i, b in enumerate(model.buffers):
            if i not in meta:
                b.data = None

    def no_quant(model):
        for sub in model.subgraphs or []:
            for t in sub.tensors or []:
                t.quantization = None

    def no_card(model):
        for m in model.metadata or []:
            if flatbuffer_text(m.name) == CARD_KEY:
                model.buffers[m.buffer].data = None
        model.metadata = [m for m in model.metadata or [] if flatbuffer_text(m.name) != CARD_KEY]

    def no_names(model):
        for sub in model.subgraphs or []:
            for t in sub.tensors or []:
                t.name = None

    out = {"total": total, "weights": without(no_weights), "quantization": without(no_quant),
           "card": without(no_card), "tensor_names": without(no_names)}
    out["structure"] = total - sum(v for k, v in out.items() if k != "total")
    model = _load(tflite_bytes)
    out["per_channel_scales"] = 4 * sum(len(t.quantization.scale) for sub in model.subgraphs or []
                                        for t in sub.tensors or []
                                        if t.quantization is not None and t.quantization.scale is not None
                                        and len(t.quantization.scale) > 1)
    return out


def _load(tflite_bytes: bytes):
    data = bytes(tflite_bytes)
    if len(data) < 8 or data[4:8] != TFLITE_IDENTIFIER:
        raise ValueError("not a TFLite flatbuffer (file identifier is not TFL3)")
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(data, 0))
    buffers = model.buffers or []
    if any(getattr(b, "offset", 0) > 1 for b in buffers):
        raise ValueError("TFLite model stores buffers outside the flatbuffer; not rewritten")
    if not buffers or _size(buffers[0]):
        raise ValueError("TFLite model's buffer 0 is not the empty sentinel")
    return model


def _pack(model, card=None) -> bytes:
    buffers = list(model.buffers)
    metadata = list(model.metadata or [])
    if card is not None:
        metadata = [m for m in metadata if flatbuffer_text(m.name) != CARD_KEY]
        entry = schema.MetadataT()
        entry.name = CARD_KEY
        buffers.append(schema.BufferT())
        buffers[-1].data = np.frombuffer(card_json(card).encode("utf-8"), np.uint8)
        entry.buffer = len(buffers) - 1
        metadata.append(entry)

    # buffers: keep buffer 0, every buffer with data, and every one metadata names
    named = {m.buffer for m in metadata}
    keep = [0] + [i for i in range(1, len(buffers)) if _size(buffers[i]) or i in named]
    new_index = {old: new for new, old in enumerate(keep)}
    for sub in model.subgraphs or []:
        io = {int(i) for i in _ints(sub.inputs)} | {int(i) for i in _ints(sub.outputs)}
        for i, t in enumerate(sub.tensors or []):
            t.buffer = new_index.get(t.buffer, 0)
            if i not in io and t.name is not None:
                t.name = str(i)
            if t.shapeSignature is not None and np.array_equal(t.shapeSignature, _ints(t.shape)):
                t.shapeSignature = None  # TFLite reads a missing signature as the shape itself
            if t.quantization is not None and _is_empty(t.quantization):
                t.quantization = None  # a float tensor's empty table: the same as none at all
            if t.quantization is not None:
                t.quantization = _Shared(t.quantization)
        for op in sub.operators or []:
            if op.builtinOptions is not None:
                op.builtinOptions = _Shared(op.builtinOptions)
            if op.builtinOptions2 is not None:
                op.builtinOptions2 = _Shared(op.builtinOptions2)
    for m in metadata:
        m.buffer = new_index[m.buffer]
    model.metadata = metadata
    model.buffers = [AlignedBuffer(buffers[i]) for i in keep]

    builder = _sharing_builder()
    builder.Finish(model.Pack(builder), file_identifier=TFLITE_IDENTIFIER)
    return bytes(builder.Output())


def _pack_plain(model) -> bytes:
    """A loaded model packed back as it is (no compaction)."""
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=TFLITE_IDENTIFIER)
    return bytes(builder.Output())


def _size(buf) -> int:
    return 0 if buf.data is None else len(buf.data)


def _is_empty(q) -> bool:
    return (all(v is None or len(v) == 0 for v in (q.scale, q.zeroPoint, q.min, q.max))
            and q.details is None and not q.quantizedDimension)


def _ints(v) -> np.ndarray:
    return np.asarray([] if v is None else v, dtype=np.int64)


def _key(obj):
    """A hashable content key of a flatbuffer object-API value (numbers, arrays, nested T)."""
    if obj is None or isinstance(obj, (bool, int, float, str, bytes)):
        return obj
    if isinstance(obj, np.ndarray):
        return ("nd", obj.dtype.str, obj.tobytes())
    if isinstance(obj, (list, tuple)):
        return ("list",) + tuple(_key(v) for v in obj)
    if isinstance(obj, _Shared):
        return _key(obj.obj)
    return (type(obj).__name__,) + tuple((k, _key(v)) for k, v in sorted(vars(obj).items()))


def _sharing_builder():
    """A flatbuffers Builder that writes each distinct vector and string once."""
    class SharingBuilder(flatbuffers.Builder):
        def __init__(self):
            super().__init__(1 << 16)
            self.shared = {}  # content key -> offset of what was written for it

        def CreateNumpyVector(self, x):  # noqa: N802 - flatbuffers' API
            key = ("vec", x.dtype.str, x.tobytes())
            if key not in self.shared:
                self.shared[key] = super().CreateNumpyVector(x)
            return self.shared[key]

        def CreateString(self, s, encoding="utf-8", errors="strict"):  # noqa: N802
            key = ("str", s if isinstance(s, bytes) else s.encode(encoding, errors))
            if key not in self.shared:
                self.shared[key] = super().CreateString(s, encoding, errors)
            return self.shared[key]

    return SharingBuilder()


class _Shared:
    """Wraps an object-API table (quantisation parameters, operator options) so that equal
    tables are packed once per builder and referenced by offset from then on."""

    def __init__(self, obj):
        self.obj = obj

    def Pack(self, builder):  # noqa: N802 - flatbuffers' API
        key = ("table", _key(self.obj))
        if key not in builder.shared:
            builder.shared[key] = self.obj.Pack(builder)
        return builder.shared[key]


