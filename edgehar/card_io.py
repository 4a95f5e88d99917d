"""Model cards inside artifacts: write them into .tflite / .onnx files, read them back from any.

Where the card lives:
- `.tflite`: a flatbuffer `Metadata` entry named `edgehar.card` whose buffer holds the card JSON
  (UTF-8); interpreters ignore unknown metadata, so the model runs unchanged.
- `.onnx`: `metadata_props["edgehar.card"]` = card JSON.
- `.pt` / `.pth`: a torch checkpoint dict with key `"card"` = `card.to_dict()`.
- a folder: `modelcard.json` in it.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

from edgehar.card import CARD_KEY, ModelCard
from edgehar.checkpoint import read_torch_file
from edgehar.errors import UserError, first_line

CARD_FILE = "modelcard.json"
TFLITE_IDENTIFIER = b"TFL3"


# -- TFLite ---------------------------------------------------------------------------------
def embed_card_tflite(tflite_bytes: bytes, card: ModelCard) -> bytes:
    """`tflite_bytes` with the card stored in (or replacing) the `edgehar.card` metadata entry."""
    tflite_bytes = bytes(tflite_bytes)
    if len(tflite_bytes) < 8 or tflite_bytes[4:8] != TFLITE_IDENTIFIER:
        raise UserError(None, "not a TFLite flatbuffer (file identifier is not TFL3)")
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(tflite_bytes, 0))
    if any(getattr(b, "offset", 0) > 1 for b in model.buffers or []):
        # >2 GB models keep weights after the flatbuffer; repacking would orphan them
        raise UserError(None, "TFLite model stores buffers outside the flatbuffer; cannot embed a card")
    payload = np.frombuffer(card.to_json().encode("utf-8"), dtype=np.uint8).copy()
    model.metadata = list(model.metadata or [])
    entry = next((m for m in model.metadata if flatbuffer_text(m.name) == CARD_KEY), None)
    if entry is not None:  # replace the old card's buffer in place (keeps indices valid)
        model.buffers[entry.buffer].data = payload
    else:
        buf = schema.BufferT()
        buf.data = payload
        model.buffers.append(buf)
        entry = schema.MetadataT()
        entry.name = CARD_KEY
        entry.buffer = len(model.buffers) - 1
        model.metadata.append(entry)
    model.buffers = [AlignedBuffer(b) for b in model.buffers]
    builder = flatbuffers.Builder(len(tflite_bytes) + len(payload) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=TFLITE_IDENTIFIER)
    return bytes(builder.Output())


class AlignedBuffer:
    """Packs a `BufferT` with its data 16-byte aligned, as the TFLite schema asks
    (`force_align: 16`); the generated Python packer aligns to 1, which MCU kernels reading
    int32 biases or float weights in place may not tolerate. An empty buffer gets no vector."""

    ALIGN = 16

    def __init__(self, buf):
        self.buf = buf

    def Pack(self, builder):  # noqa: N802 - flatbuffers' API
        data = self.buf.data
        vec = None
        if data is not None and len(data):
            payload = np.asarray(data, dtype=np.uint8).tobytes()
            builder.StartVector(1, len(payload), self.ALIGN)
            builder.head -= len(payload)
            builder.Bytes[builder.head:builder.head + len(payload)] = payload
            vec = builder.EndVector()  # StartVector recorded the length
        schema.BufferStart(builder)
        if vec is not None:
            schema.BufferAddData(builder, vec)
        schema.BufferAddOffset(builder, self.buf.offset)
        schema.BufferAddSize(builder, self.buf.size)
        return schema.BufferEnd(builder)


def flatbuffer_text(name) -> str:
    """A flatbuffer string field (bytes or str) as text."""
    return name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)


def _card_from_tflite(data: bytes, where: str) -> ModelCard:
    if len(data) < 8 or data[4:8] != TFLITE_IDENTIFIER:
        raise UserError(where, "not a TFLite model (file identifier is not TFL3)")
    try:
        model = schema.Model.GetRootAs(data, 0)
        for i in range(model.MetadataLength()):
            meta = model.Metadata(i)
            if flatbuffer_text(meta.Name()) == CARD_KEY:
                buf = model.Buffers(meta.Buffer())
                return ModelCard.from_json(buf.DataAsNumpy().tobytes(), where)
    except UserError:
        raise
    except Exception as e:  # a corrupt flatbuffer raises anything (struct.error, IndexError...)
        raise UserError(where, f"corrupt TFLite model ({type(e).__name__}: {first_line(e, 120)})") from None
    raise UserError(where, f"TFLite model has no {CARD_KEY} metadata (export it with edgehar export)")


# -- ONNX -----------------------------------------------------------------------------------
def embed_card_onnx(model, card: ModelCard):
    """`model` (onnx.ModelProto, changed in place and returned) with the card in metadata_props."""
    for prop in list(model.metadata_props):
        if prop.key == CARD_KEY:
            model.metadata_props.remove(prop)
    entry = model.metadata_props.add()
    entry.key, entry.value = CARD_KEY, card.to_json()
    return model


def _card_from_onnx(path: str) -> ModelCard:
    import onnx

    try:
        # the card sits in the graph proto header; skip external weight files
        model = onnx.load(path, load_external_data=False)
    except Exception as e:
        raise UserError(path, f"not an ONNX model ({first_line(e, 120)})") from None
    for prop in model.metadata_props:
        if prop.key == CARD_KEY:
            return ModelCard.from_json(prop.value, path)
    raise UserError(path, f"ONNX model has no {CARD_KEY} metadata (export it with edgehar export)")


# -- torch checkpoints ------------------------------------------------------------------------
def _card_from_torch(path: str) -> ModelCard:
    ckpt = read_torch_file(path)
    if not isinstance(ckpt, dict) or "card" not in ckpt:
        raise UserError(path, "torch file holds no model card (make it with pretrain, finetune or distill)")
    card = ckpt["card"]
    return card if isinstance(card, ModelCard) else ModelCard.from_dict(card, path)


# -- any artifact -----------------------------------------------------------------------------
def read_card(path: str | os.PathLike) -> ModelCard:
    """The model card of a .tflite, .onnx, .pt/.pth file or an artifact folder (modelcard.json)."""
    p = Path(path)
    where = str(path)
    if not p.exists():
        raise UserError(where, "no such model file or folder")
    if p.is_dir():
        card_file = p / CARD_FILE
        if not card_file.is_file():
            raise UserError(where, f"folder has no {CARD_FILE}: not an edgehar artifact folder")
        return ModelCard.from_json(card_file.read_bytes(), str(card_file))
    suffix = p.suffix.lower()
    if suffix == ".tflite":
        return _card_from_tflite(p.read_bytes(), where)
    if suffix == ".onnx":
        return _card_from_onnx(where)
    if suffix in (".pt", ".pth"):
        return _card_from_torch(where)
    if suffix == ".json":
        return ModelCard.from_json(p.read_bytes(), where)
    # unknown suffix: sniff the content
    head = p.open("rb").read(8)
    if head[4:8] == TFLITE_IDENTIFIER:
        return _card_from_tflite(p.read_bytes(), where)
    if head[:2] == b"PK":
        return _card_from_torch(where)
    raise UserError(where, "not a model (expected .tflite, .onnx, .pt/.pth or an artifact folder)")


# -- content hash: ties a model file to its card ------------------------------------------------
def embedded_card_payload(data: bytes, suffix: str) -> bytes | None:
    """The card bytes embedded in a .tflite / .onnx file's bytes (None when there is none)."""
    try:
        if suffix == ".tflite":
            model = schema.Model.GetRootAs(data, 0)
            for i in range(model.MetadataLength()):
                meta = model.Metadata(i)
                if flatbuffer_text(meta.Name()) == CARD_KEY:
                    return model.Buffers(meta.Buffer()).DataAsNumpy().tobytes()
        elif suffix == ".onnx":
            import onnx

            for prop in onnx.load_from_string(data).metadata_props:
                if prop.key == CARD_KEY:
                    return prop.value.encode("utf-8")
    except Exception:  # noqa: BLE001 - a damaged file has no readable card; its digest then differs
        return None
    return None


def content_digest(data: bytes, suffix: str) -> str:
    """sha256 of a model file's bytes without its embedded card, so the card can hold the
    digest of the very file it sits in (every other byte counts: weights, graph, anything
    appended)."""
    payload = embedded_card_payload(data, suffix)
    at = data.find(payload) if payload else -1
    h = hashlib.sha256()
    if at < 0:
        h.update(data)
    else:
        h.update(data[:at])
        h.update(data[at + len(payload):])
    return h.hexdigest()


def content_mismatch(model_path: str | os.PathLike, card: ModelCard) -> str | None:
    """Why `model_path` no longer matches the digests its card records (None when it does, or
    when the card records none: a model not exported by edgehar)."""
    recorded = card.content_sha256 or {}
    suffix = Path(model_path).suffix.lower()
    if not recorded or suffix not in (".tflite", ".onnx"):
        return None
    digest = content_digest(Path(model_path).read_bytes(), suffix)
    if digest in recorded.values():
        return None
    return (f"model bytes do not match the content hash in its card (sha256 {digest[:12]}..., card "
            f"records {', '.join(f'{k} {v[:12]}...' for k, v in recorded.items())}): the file was "
            "changed or damaged after export; its predictions cannot be trusted")


def model_file_in(path: str | os.PathLike) -> Path:
    """The model file an artifact folder holds (int8 .tflite first, then .tflite, .onnx, .pt)."""
    p = Path(path)
    if not p.is_dir():
        return p
    for pattern in ("*int8*.tflite", "*.tflite", "*.onnx", "*.pt", "*.pth"):
        found = sorted(p.glob(pattern))
        if found:
            return found[0]
    raise UserError(path, "artifact folder holds no .tflite, .onnx or .pt model")
