"""`Predictor`: the same probabilities from every runtime, preprocessing taken from the card."""

import shutil
import subprocess
import sys

import numpy as np
import pytest

from edgehar import runtime, zoo
from edgehar.errors import UserError
from edgehar.metrics import softmax
from edgehar.runtime import Predictor, importable
from tiny_har_models import bangle_card, built_models, random_windows, torch_model


def _torch_reference(x_raw):
    import torch

    card = bangle_card()
    with torch.no_grad():
        logits = torch_model()(torch.from_numpy(card.normalise(x_raw))).numpy()
    return softmax(logits)


def test_onnx_matches_torch_and_pads_fixed_batches():
    x = random_windows(bangle_card(), 10)
    ref = _torch_reference(x)
    p1 = Predictor(built_models()["onnx"])
    assert p1.backend == "onnxruntime" and p1.card.labels[0] == "running"
    np.testing.assert_allclose(p1.predict_proba(x), ref, atol=1e-5)
    p4 = Predictor(built_models()["onnx_batch4"])  # batch fixed at 4, 10 windows -> 3 runs
    np.testing.assert_allclose(p4.predict_proba(x), ref, atol=1e-5)
    assert np.array_equal(p4.predict(x), ref.argmax(1))
    assert p1.predict_proba(x[:0]).shape == (0, 4)
    np.testing.assert_allclose(p1.predict_proba(x[0]), ref[:1], atol=1e-5)  # one (T, C) window


def test_tflite_float_and_int8_agree():
    from ai_edge_litert.interpreter import Interpreter

    card = bangle_card()
    x = random_windows(card, 40)
    pf = Predictor(built_models()["tflite"])
    p8 = Predictor(built_models()["tflite_int8"])
    assert pf.backend == p8.backend == "litert"
    assert p8.describe()["input_dtype"] == "int8"
    # float model by hand: normalise, run, softmax
    it = Interpreter(model_path=str(built_models()["tflite"]))
    it.allocate_tensors()
    ref = []
    for w in card.normalise(x):
        it.set_tensor(it.get_input_details()[0]["index"], w[None])
        it.invoke()
        ref.append(it.get_tensor(it.get_output_details()[0]["index"])[0])
    prob_f = pf.predict_proba(x)
    np.testing.assert_allclose(prob_f, softmax(np.array(ref)), atol=1e-6)
    # int8 is the same Keras model quantised: close probabilities, same decisions mostly
    prob_8 = p8.predict_proba(x)
    np.testing.assert_allclose(prob_8.sum(1), 1, atol=1e-5)
    assert np.abs(prob_8 - prob_f).max() < 0.15
    assert (prob_8.argmax(1) == prob_f.argmax(1)).mean() >= 0.9


def test_torch_checkpoint_backend(tmp_path, monkeypatch):
    import torch

    from edgehar import checkpoint, models
    card = bangle_card()
    torch.save({"format": checkpoint.FORMAT, "card": card.to_dict(),
                "state_dict": torch_model().state_dict(), "extra": {}}, tmp_path / "m.pt")
    # the tiny test net is no registered family: hand load_model the module it would rebuild
    monkeypatch.setattr(models, "load_model", lambda path, kind=None: (torch_model(), card))
    p = Predictor(tmp_path / "m.pt")
    assert p.backend == "torch"
    x = random_windows(card, 5)
    np.testing.assert_allclose(p.predict_proba(x), _torch_reference(x), atol=1e-6)


def test_artifact_folder_and_probs_output(tmp_path):
    folder = tmp_path / "artifact"
    folder.mkdir()
    shutil.copy(built_models()["onnx"], folder / "model.onnx")
    card = bangle_card(quantization={"output": "probs"})
    (folder / "modelcard.json").write_text(card.to_json())
    p = Predictor(folder)
    x = random_windows(card, 3)
    scores = p.predict_scores(x)
    # "probs" models are not soft-maxed again: only clipped at 0 and renormalised
    expected = np.clip(scores, 0, None) / np.clip(scores, 0, None).sum(1, keepdims=True)
    np.testing.assert_allclose(p.predict_proba(x), expected, atol=1e-6)


def test_user_errors(tmp_path):
    onnx_path = built_models()["onnx"]
    p = Predictor(onnx_path)
    with pytest.raises(UserError, match="do not fit"):
        p.predict_proba(np.zeros((2, 128, 6), np.float32))
    with pytest.raises(UserError, match="cannot run"):
        Predictor(onnx_path, backend="litert")
    with pytest.raises(UserError, match="unknown backend"):
        Predictor(onnx_path, backend="tensorrt")
    with pytest.raises(UserError, match="no such"):
        Predictor(tmp_path / "nope.onnx")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "modelcard.json").write_text(bangle_card(quantization={"output": "odds"}).to_json())
    shutil.copy(onnx_path, tmp_path / "bad" / "m.onnx")
    with pytest.raises(UserError, match="expected 'logits' or 'probs'"):
        Predictor(tmp_path / "bad")


def test_importable_names_the_backends_that_import(monkeypatch):
    assert all(importable(b) for b in ("litert", "onnxruntime", "torch"))
    monkeypatch.setitem(runtime._MODULE, "torch", "edgehar_no_such_module")
    assert not importable("torch")


def test_a_tflite_file_runs_without_importing_torch():
    """The backend is the first of the file's own that imports: eval and live on a .tflite do not
    pay torch's second of start-up."""
    code = ("import sys; from edgehar.runtime import Predictor; p = Predictor(sys.argv[1]); "
            "print(p.backend, 'torch' in sys.modules, 'onnxruntime' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code, str(zoo.resolve("wrist-tiny", "tflite"))],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["litert", "False", "False"]


def test_no_importable_runtime_is_one_error(monkeypatch):
    monkeypatch.setattr(runtime, "importable", lambda backend: False)
    with pytest.raises(UserError,
                       match=r"no runtime installed for \.tflite \(install one of: litert, tflite-runtime\)"):
        Predictor(built_models()["tflite"])
