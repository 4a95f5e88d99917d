"""Zero-shot labels on the device: the exported int8 graph's second output (the embedding), the
class-text prototypes in the card and the C header (int8), and `--labels` in eval and live."""

import re

import numpy as np
import pytest
import torch

from edgehar.calib.build import calib_from_windows, save_calib
from edgehar.card_io import read_card
from edgehar.checkpoint import save_checkpoint
from edgehar.cli import main
from edgehar.errors import UserError
from edgehar.export import tflite
from edgehar.export.pipeline import FILES, export_student
from edgehar.models.student import build
from edgehar.recipes import train_student_supervised
from edgehar.runtime import Predictor
from edgehar.cli_types import parse_labels
from edgehar.zeroshot import (BASIS_FILE, ZeroShotPredictor, basis_digest, label_text_embeddings,
                              quantize_prototypes, unit)
from test_student import synthetic_windows

pytestmark = pytest.mark.slow
LABELS = ["walking", "sitting", "lying"]


def text_aligned_student(train, basis):
    """A tiny student trained on labels, then given a text space: its embedding head is fitted
    (least squares on the pooled features) to the class-text prototypes of each window's class,
    as distillation from a text-aligned teacher would leave it."""
    model, card = train_student_supervised(train, "tiny", steps=36, progress=False,
                                           data={"dataset": "synthetic", "test_subjects": [4]})
    protos = unit(label_text_embeddings(LABELS) @ basis)
    cfg = dict(card.arch["config"], text_dim=basis.shape[0], text_basis_sha256=basis_digest(basis),
               text_prompt="activity")
    card.arch = {"name": "student", "config": cfg}
    card.text_prototypes = protos.tolist()
    student = build(card.arch)
    student.load_state_dict({**model.state_dict(), "text_basis": torch.from_numpy(basis)})
    student.eval()
    with torch.no_grad():
        pooled = student.tokens(torch.from_numpy(card.normalise(train.x))).mean(1).numpy()
    a = np.concatenate([pooled, np.ones((len(pooled), 1), np.float32)], 1)
    coef = np.linalg.lstsq(a, protos[train.y] * 4.0, rcond=None)[0]
    student.embed.weight.data = torch.from_numpy(coef[:-1].T.copy())
    student.embed.bias.data = torch.from_numpy(coef[-1].copy())
    return student, card, protos


@pytest.fixture(scope="module")
def zs(tmp_path_factory):
    torch.manual_seed(0)
    tmp = tmp_path_factory.mktemp("zeroshot")
    w = synthetic_windows(n_per_class=40, subjects=(1, 2, 3, 4))
    w.label_names = tuple(LABELS)
    train = w.take(w.subject != 4)
    basis = np.linalg.qr(np.random.default_rng(0).normal(size=(384, 64)))[0].astype(np.float32)
    student, card, protos = text_aligned_student(train, basis)
    ckpt = tmp / "student.pt"
    save_checkpoint(ckpt, student, card)
    calib = tmp / "calib.npz"
    save_calib(calib, calib_from_windows(train, 100, dataset="synthetic"))
    export_student(ckpt, tmp / "art", calib=calib, windows=w, test_subjects=[4], progress=False, micro=False)
    return {"dir": tmp / "art", "ckpt": ckpt, "student": student, "card": card, "protos": protos,
            "basis": basis, "test": w.take(w.subject == 4)}


def torch_outputs(zs, x):
    with torch.no_grad():
        logits, emb = zs["student"](torch.from_numpy(zs["card"].normalise(x)))
    return logits.numpy(), emb.numpy()


def test_int8_graph_has_logits_first_and_the_embedding_second(zs):
    it = tflite.interpreter((zs["dir"] / FILES["int8_tflite"]).read_bytes())
    outs = it.get_output_details()
    assert [int(o["shape"][-1]) for o in outs] == [len(LABELS), 64]
    q = read_card(zs["dir"]).quantization
    assert q["embedding_output"] == 1 and q["embedding_dim"] == 64
    assert q["embedding_scale"] == pytest.approx(float(outs[1]["quantization"][0]))


def test_int8_embedding_follows_pytorch(zs):
    x = zs["test"].x
    logits, emb = torch_outputs(zs, x)
    p = Predictor(zs["dir"])
    got = p.predict_embedding(x)
    cos = (unit(got) * unit(emb)).sum(1)
    assert cos.mean() > 0.95, cos.mean()
    assert (p.predict(x) == logits.argmax(1)).mean() > 0.9  # output 0 is still the logits


def test_card_and_header_carry_int8_prototypes(zs):
    card = read_card(zs["dir"])
    q = card.quantization
    back = np.asarray(q["prototypes_int8"], np.float32) * q["prototypes_scale"]
    assert np.abs(back - np.asarray(card.text_prototypes)).max() <= q["prototypes_scale"] / 2 + 1e-7
    header = (zs["dir"] / "model_int8.h").read_text()
    body = header[header.index("_text_prototypes["):]
    rows = re.findall(r"\{([-0-9, ]+)\}", body)
    assert [[int(v) for v in r.split(",")] for r in rows] == q["prototypes_int8"]
    assert f"EMBEDDING_DIM {q['embedding_dim']}" in header and "PROTOTYPES_SCALE" in header


def test_basis_file_matches_the_card(zs):
    basis = np.load(zs["dir"] / BASIS_FILE)
    assert np.array_equal(basis, zs["basis"])
    assert read_card(zs["dir"]).arch["config"]["text_basis_sha256"] == basis_digest(basis)


def test_zero_shot_labels_from_text_alone(zs):
    x, y = zs["test"].x, zs["test"].y
    _, emb = torch_outputs(zs, x)
    want = (unit(emb) @ zs["protos"].T).argmax(1)
    for path in (zs["dir"], zs["ckpt"]):
        zp = ZeroShotPredictor(Predictor(path), LABELS)
        pred = zp.predict(x)
        assert (pred == want).mean() > 0.9
        assert (pred == y).mean() > 0.8  # the head was fitted to the text: it classifies
        # another order of the same names: the same prototypes, permuted
        rev = ZeroShotPredictor(Predictor(path), LABELS[::-1]).predict(x)
        assert np.array_equal(rev, len(LABELS) - 1 - pred)
        assert np.allclose(zp.predict_proba(x).sum(1), 1, atol=1e-5)


def test_new_label_set_replaces_the_cards_classes(zs):
    zp = ZeroShotPredictor(Predictor(zs["dir"]), ["walking", "brushing teeth", "lying"])
    assert zp.card.labels == ["walking", "brushing teeth", "lying"]
    scores = zp.predict_scores(zs["test"].x)
    assert scores.shape == (len(zs["test"]), 3) and np.abs(scores).max() <= 1 + 1e-5


def test_quantize_prototypes_roundtrip():
    p = unit(np.random.default_rng(1).normal(size=(5, 8)))
    q, s = quantize_prototypes(p)
    assert q.dtype == np.int8 and np.abs(q).max() == 127
    assert np.abs(q * s - p).max() <= s / 2 + 1e-7


@pytest.mark.parametrize("text", ["", " , ,", "walking,walking"])
def test_parse_labels_refuses_empty_and_repeated(text):
    with pytest.raises(ValueError):
        parse_labels(text)


@pytest.mark.parametrize("argv", [["eval", "m.tflite", "--labels", ""],
                                  ["live", "--port", "x", "--model", "m.tflite", "--labels", " , "]])
def test_empty_labels_is_a_parse_error(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("edgehar") and "--labels" in err[-1] and "no label" in err[-1]


def test_a_model_without_text_space_refuses_labels(tmp_path):
    w = synthetic_windows(n_per_class=10, subjects=(1,))
    model, card = train_student_supervised(w, "tiny", steps=1, progress=False)
    save_checkpoint(tmp_path / "s.pt", model, card)
    with pytest.raises(UserError, match="no text-aligned embedding"):
        ZeroShotPredictor(Predictor(tmp_path / "s.pt"), ["walking"])
