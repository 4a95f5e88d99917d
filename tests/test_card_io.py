"""Model cards embedded in TFLite / ONNX / torch files and artifact folders, and read back."""

import json

import numpy as np
import pytest

from edgehar.card import CARD_KEY
from edgehar.card_io import embed_card_onnx, embed_card_tflite, read_card
from edgehar.errors import UserError
from tiny_har_models import bangle_card, built_models, random_windows


def _run_tflite(data: bytes, x: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=data)
    it.allocate_tensors()
    d = it.get_input_details()[0]
    if d["dtype"] == np.int8:
        s, z = d["quantization"]
        x = np.clip(np.round(x / s + z), -128, 127).astype(np.int8)
    it.set_tensor(d["index"], x)
    it.invoke()
    return it.get_tensor(it.get_output_details()[0]["index"]).copy()


@pytest.mark.parametrize("key", ["tflite", "tflite_int8"])
def test_tflite_card_roundtrip_keeps_outputs(key, tmp_path):
    raw = built_models()[key].read_bytes()
    card = bangle_card(hop=32, prompts={"running": "a person running"})
    once = embed_card_tflite(raw, card)
    twice = embed_card_tflite(once, bangle_card(hop=16))  # replaces, does not add a 2nd entry
    path = tmp_path / "m.tflite"
    path.write_bytes(twice)
    got = read_card(path)
    assert got.hop == 16 and got.labels == card.labels and got.channels == card.channels

    from ai_edge_litert import schema_py_generated as schema
    model = schema.Model.GetRootAs(twice, 0)
    names = [model.Metadata(i).Name() for i in range(model.MetadataLength())]
    assert names.count(CARD_KEY.encode()) == 1
    for i in range(model.BuffersLength()):  # the schema's force_align: 16 is kept
        buf = model.Buffers(i)
        if buf.DataLength():
            assert buf._tab.Vector(buf._tab.Offset(4)) % 16 == 0

    x = random_windows(card, 1)
    np.testing.assert_array_equal(_run_tflite(raw, x), _run_tflite(twice, x))


def test_onnx_card_roundtrip(tmp_path):
    import onnx

    proto = onnx.load(str(built_models()["onnx"]))
    embed_card_onnx(proto, bangle_card(window=100))
    embed_card_onnx(proto, bangle_card(window=64))
    assert sum(p.key == CARD_KEY for p in proto.metadata_props) == 1
    path = tmp_path / "m.onnx"
    onnx.save(proto, str(path))
    assert read_card(path).window == 64


def test_torch_checkpoint_and_folder(tmp_path):
    import torch

    card = bangle_card(rate=25.0)
    torch.save({"card": card.to_dict(), "state_dict": {"w": torch.zeros(2)}}, tmp_path / "m.pt")
    assert read_card(tmp_path / "m.pt").rate == 25.0
    folder = tmp_path / "artifact"
    folder.mkdir()
    (folder / "modelcard.json").write_text(card.to_json())
    assert read_card(folder).to_dict() == card.to_dict()


def test_unreadable_models_are_user_errors(tmp_path):
    import onnx
    import torch

    with pytest.raises(UserError, match="no such"):
        read_card(tmp_path / "missing.tflite")
    (tmp_path / "junk.tflite").write_bytes(b"\x00" * 40)
    with pytest.raises(UserError, match="not a TFLite"):
        read_card(tmp_path / "junk.tflite")
    (tmp_path / "junk.onnx").write_bytes(b"hello world, not protobuf \xff\xfe")
    with pytest.raises(UserError):
        read_card(tmp_path / "junk.onnx")
    (tmp_path / "junk.pt").write_bytes(b"not a zip")
    with pytest.raises(UserError, match="not a torch checkpoint"):
        read_card(tmp_path / "junk.pt")
    torch.save({"state_dict": {}}, tmp_path / "nocard.pt")
    with pytest.raises(UserError, match="no model card"):
        read_card(tmp_path / "nocard.pt")
    proto = onnx.load(str(built_models()["onnx"]))
    del proto.metadata_props[:]
    onnx.save(proto, str(tmp_path / "nocard.onnx"))
    with pytest.raises(UserError, match="no edgehar.card"):
        read_card(tmp_path / "nocard.onnx")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="modelcard.json"):
        read_card(tmp_path / "empty")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "modelcard.json").write_text(json.dumps({"labels": ["a"]}))
    with pytest.raises(UserError, match="lacks"):
        read_card(tmp_path / "bad")
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(UserError, match="not a model"):
        read_card(tmp_path / "notes.txt")


def test_tflite_without_card(tmp_path):
    from ai_edge_litert import schema_py_generated as schema
    import flatbuffers

    data = embed_card_tflite(built_models()["tflite"].read_bytes(), bangle_card())
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(data, 0))
    model.metadata = [m for m in model.metadata if m.name not in (CARD_KEY, CARD_KEY.encode())]
    b = flatbuffers.Builder(0)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    (tmp_path / "nocard.tflite").write_bytes(bytes(b.Output()))
    with pytest.raises(UserError, match="no edgehar.card"):
        read_card(tmp_path / "nocard.tflite")
