"""Hostile and careless input against models, cards, checkpoints, flags and exports (issue 16):
every case is one line and exit 2 (or the right behaviour), never a traceback, never residue.

One tiny student is trained on generated data and exported once for the module."""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from edgehar import cli_types
from edgehar.atomic import remove_stale_staging, staged_folder
from edgehar.calib.build import calib_from_windows, load_calib, save_calib
from edgehar.card import KNOWN_CHANNELS, ModelCard
from edgehar.card_io import CARD_FILE, content_digest, read_card
from edgehar.checkpoint import save_checkpoint
from edgehar.cli import build_parser, main
from edgehar.errors import UserError, first_line
from edgehar.runtime import Predictor
from test_student import synthetic_windows

REPO = Path(__file__).resolve().parents[1]


def run(argv, capsys):
    """(exit status, stderr) of `edgehar argv` run in-process."""
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def one_line_error(code, err, *needles):
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, err
    assert "Traceback" not in err
    assert lines[-1].startswith("edgehar: error: "), err
    for needle in needles:
        assert needle in lines[-1], lines[-1]


# -- one exported tiny student --------------------------------------------------------------
@pytest.fixture(scope="module")
def art(tmp_path_factory):
    from edgehar.export.pipeline import export_student
    from edgehar.recipes import train_student_supervised

    torch.manual_seed(0)
    tmp = tmp_path_factory.mktemp("hostile")
    w = synthetic_windows(n_per_class=20, subjects=(1, 2, 3))
    train = w.take(w.subject != 3)
    model, card = train_student_supervised(train, "tiny", steps=2, progress=False,
                                           data={"dataset": "synthetic", "test_subjects": [3]})
    ckpt = tmp / "student.pt"
    save_checkpoint(ckpt, model, card)
    calib = tmp / "calib.npz"
    save_calib(calib, calib_from_windows(train, 40, dataset="synthetic"))
    export_student(ckpt, tmp / "art", calib=calib, windows=w, test_subjects=[3], progress=False, micro=False)
    return {"tmp": tmp, "ckpt": ckpt, "calib": calib, "dir": tmp / "art", "model": model, "card": card}


# -- checkpoints: one reader, one line --------------------------------------------------------
def hostile_checkpoints(art, tmp: Path) -> dict[str, tuple[Path, str]]:
    raw = art["ckpt"].read_bytes()
    half = tmp / "half.pt"
    half.write_bytes(raw[: len(raw) // 2])
    empty = tmp / "empty.pt"
    empty.write_bytes(b"")
    ckpt = torch.load(art["ckpt"], weights_only=True)
    v99 = tmp / "v99.pt"
    torch.save({**ckpt, "format": "edgehar-checkpoint/99"}, v99)
    sd = dict(ckpt["state_dict"])
    name = next(k for k, v in sd.items() if v.ndim >= 2)
    sd[name] = torch.zeros(*sd[name].shape[:-1], sd[name].shape[-1] + 2)
    shape = tmp / "shape.pt"
    torch.save({**ckpt, "state_dict": sd}, shape)
    nan = tmp / "nan.pt"
    torch.save({**ckpt, "state_dict": {k: v * float("nan") if v.is_floating_point() else v
                                       for k, v in ckpt["state_dict"].items()}}, nan)
    return {"truncated": (half, "truncated"), "empty": (empty, "empty file"),
            "v99": (v99, "edgehar-checkpoint/99 is not supported"),
            "shape": (shape, f"{name} has shape"), "nan": (nan, "NaN")}


@pytest.mark.parametrize("case", ["truncated", "empty", "v99", "shape", "nan"])
def test_every_command_reading_a_checkpoint_gives_one_line(art, tmp_path, capsys, case):
    path, needle = hostile_checkpoints(art, tmp_path)[case]
    out = tmp_path / "o"
    for argv in (["eval", path], ["export", path, "--out", out],
                 ["calib", "build", "--data", "hapt", "--like", path, "--out", tmp_path / "c.npz"],
                 ["finetune", path, "--out", tmp_path / "f.pt"],
                 ["distill", "--teacher", path, "--out", tmp_path / "s.pt"]):
        if case == "shape" and argv[0] == "calib":
            continue  # --like reads only the card, which is sound here
        code, err = run(argv, capsys)
        if case == "shape" and argv[0] in ("finetune", "distill"):
            needle_here = "is a student checkpoint, expected a teacher"  # refused before the weights
        else:
            needle_here = needle
        one_line_error(code, err, needle_here)
    with pytest.raises(UserError, match=needle):
        Predictor(path)  # what `live --model` loads
    assert not out.exists() and not (tmp_path / "f.pt").exists() and not (tmp_path / "s.pt").exists()


def test_non_finite_weights_are_never_written(art, tmp_path):
    model = art["model"]
    bad = {k: v.clone() for k, v in model.state_dict().items()}
    first = next(k for k, v in bad.items() if v.is_floating_point())
    bad[first][...] = float("inf")
    broken = type(model)(model.cfg)
    broken.load_state_dict(bad)
    with pytest.raises(UserError, match="NaN or infinite"):
        save_checkpoint(tmp_path / "x.pt", broken, art["card"])
    assert list(tmp_path.iterdir()) == []


def test_messages_are_cut_at_a_word():
    text = "torch.load from this file failed because " + "the archive is damaged " * 20
    line = first_line(text, 50)
    assert line.endswith(" ...") and len(line) <= 54
    assert text.startswith(line[:-4]) and text[len(line) - 4] == " "  # cut before a space
    assert first_line(ValueError()) == "ValueError"  # an empty message names the error
    assert first_line(OSError("\n\nsecond line")) == "second line"


# -- model cards ---------------------------------------------------------------------------------
def edited_folder(art, tmp_path, **changes) -> Path:
    folder = tmp_path / "edited"
    shutil.copytree(art["dir"], folder)
    card = json.loads((folder / CARD_FILE).read_text())
    card.update(changes)
    (folder / CARD_FILE).write_text(json.dumps(card))
    return folder


@pytest.mark.parametrize("changes,needle", [
    ({"rate": 0}, "rate"), ({"rate": "fast"}, "rate"), ({"rate": float("nan")}, "rate"),
    ({"window": -128}, "window"), ({"hop": 1.5}, "hop"), ({"labels": []}, "labels"),
    ({"channels": ["bogus", "acc_y", "acc_z"]}, "channels"), ({"channels": []}, "channels"),
    ({"norm_std": [0.0] + [1.0] * 5}, "norm_std"), ({"norm_mean": [0.0] * 3}, "norm_mean"),
    # the tiny student reads 6 channels (acc + gyro): a card cut to 3, or another window
    ({"channels": list(KNOWN_CHANNELS[:3]), "units": ["g"] * 3, "norm_mean": [0.0] * 3,
      "norm_std": [1.0] * 3, "streams": {"acc": [0, 1, 2]}}, "the card says 128 samples x 3 channels"),
    ({"window": 64}, "the card says 64 samples x 6 channels"),
])
def test_an_edited_card_is_one_line(art, tmp_path, capsys, changes, needle):
    folder = edited_folder(art, tmp_path, **changes)
    code, err = run(["eval", folder], capsys)
    one_line_error(code, err, needle)
    onnx = folder / "model.onnx"
    (folder / "model_fp32.tflite").unlink()
    (folder / "model_int8.tflite").unlink()
    for f in (folder / "model_int8.onnx",):
        f.unlink()
    assert onnx.exists()
    with pytest.raises(UserError, match=needle):
        Predictor(folder)  # the ONNX path checks the same


# -- content hash ----------------------------------------------------------------------------------
def test_every_model_file_carries_its_content_hash(art):
    card = read_card(art["dir"])
    names = {"model_fp32.tflite", "model_int8.tflite", "model.onnx", "model_int8.onnx"}
    assert set(card.content_sha256) == names
    for name in names:
        path = art["dir"] / name
        assert read_card(path).content_sha256 == card.content_sha256  # embedded == sidecar
        assert content_digest(path.read_bytes(), path.suffix) == card.content_sha256[name]
    from edgehar.export.c_array import parse_c_array

    # the C array holds the final bytes, hash stamped in
    assert parse_c_array((art["dir"] / "model_int8.cc").read_text()) == (art["dir"] / "model_int8.tflite").read_bytes()


def _flip_weights(data: bytes, n: int = 128) -> bytes:
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(data, 0)
    biggest = max((model.Buffers(i).DataAsNumpy() for i in range(model.BuffersLength())
                   if model.Buffers(i).DataLength() >= n
                   and not model.Buffers(i).DataAsNumpy().tobytes().startswith(b"{")), key=len)
    weights = biggest.tobytes()
    at = data.find(weights)
    assert at > 0 and not weights.startswith(b"{")  # a weight buffer, not the card
    out = bytearray(data)
    for i in range(at, at + n):
        out[i] ^= 0x5A
    return bytes(out)


@pytest.mark.parametrize("damage", ["flipped", "appended"])
def test_a_model_changed_after_export_warns(art, tmp_path, capsys, damage):
    src = art["dir"] / "model_int8.tflite"
    bad = tmp_path / "model_int8.tflite"
    data = src.read_bytes()
    bad.write_bytes(_flip_weights(data) if damage == "flipped" else data + b"\0" * (50 << 20))
    Predictor(src)
    assert "warning" not in capsys.readouterr().err  # the untouched file matches
    Predictor(bad)  # eval and live load models through Predictor
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("edgehar: warning: ") and "do not match the content hash" in err
    code = main(["profile", str(bad), "--no-arena", "--no-latency", "--json"])
    err = capsys.readouterr().err
    assert code == 0 and err.startswith("edgehar: warning: ") and "content hash" in err


# -- numeric flags at parse time ------------------------------------------------------------------
@pytest.mark.parametrize("argv,flag", [
    (["distill", "--teacher", "t.pt", "--label-fraction", "0"], "--label-fraction"),
    (["pretrain", "--method", "harfm", "--steps", "1e3"], "--steps"),
    (["calib", "build", "--data", "hapt", "--out", "c.npz", "--n", "0"], "--n"),
    (["profile", "m.tflite", "--runs", "0"], "--runs"),
    (["demo", "--live-seconds", "inf"], "--live-seconds"),
])
def test_bad_numbers_fail_at_parse_time(argv, flag, capsys):
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and f"argument {flag}:" in err.splitlines()[-1]


def test_a_demo_failing_before_any_file_leaves_no_empty_folder(tmp_path, capsys, monkeypatch):
    import edgehar.demo.config as demo

    def no_data(args):
        raise UserError("--data", "no hapt/ folder here")
    monkeypatch.setattr(demo, "resolve_data_root", no_data)
    code, err = run(["demo", "--quick", "--out", tmp_path / "d"], capsys)
    one_line_error(code, err, "no hapt/")
    assert not (tmp_path / "d").exists()


# -- --out checked before training ------------------------------------------------------------
@pytest.mark.parametrize("where", ["under_file", "non_edgehar_file", "folder"])
def test_out_is_checked_before_training(art, tmp_path, capsys, monkeypatch, where):
    import edgehar.train.distill as distill
    import edgehar.train.pretrain as pretrain

    def no_training(*a, **k):
        raise AssertionError("started loading/training before checking --out")
    monkeypatch.setattr(pretrain, "load_windows", no_training)
    monkeypatch.setattr(distill, "load_teacher_spec", no_training)
    monkeypatch.setattr("edgehar.models.teacher.load_teacher", no_training)
    note = tmp_path / "note.txt"
    note.write_text("keep me")
    out = {"under_file": note / "x.pt", "non_edgehar_file": note, "folder": tmp_path}[where]
    for argv in (["pretrain", "--method", "harfm", "--out", out],
                 ["finetune", art["ckpt"], "--out", out],
                 ["distill", "--teacher", art["ckpt"], "--out", out]):
        code, err = run(argv, capsys)
        one_line_error(code, err)
    assert note.read_text() == "keep me"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_out_in_a_read_only_folder(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    code, err = run(["pretrain", "--method", "harfm", "--out", ro / "t.pt"], capsys)
    one_line_error(code, err, "not writable")


# -- export: calibration, staging, signals ----------------------------------------------------------
def test_a_truncated_calibration_set_is_one_line(art, tmp_path, capsys):
    raw = art["calib"].read_bytes()
    for n in (10, len(raw) // 2, len(raw) - 30):
        cut = tmp_path / f"cut{n}.npz"
        cut.write_bytes(raw[:n])
        with pytest.raises(UserError, match="calibration set"):
            load_calib(cut)
    code, err = run(["export", art["ckpt"], "--calib", cut, "--out", tmp_path / "o"], capsys)
    one_line_error(code, err, "calibration set")
    assert not (tmp_path / "o").exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_stale_staging_of_a_dead_process_goes_and_a_live_ones_stays(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".out.new-{dead.pid}-abcd1234"
    stale.mkdir()
    (stale / "model.tflite").write_bytes(b"x")
    stale_file = tmp_path / f".out.tmp-{dead.pid}-abcd1234"
    stale_file.write_bytes(b"x")
    live = tmp_path / f".out.new-{os.getppid()}-abcd1234"
    live.mkdir()
    mine = tmp_path / "mine"  # a user's folder is never touched
    mine.mkdir()
    with staged_folder(tmp_path / "out") as tmp:
        (tmp / "a").write_text("a")
    assert not stale.exists() and not stale_file.exists() and live.exists() and mine.exists()
    assert (tmp_path / "out" / "a").read_text() == "a"
    assert remove_stale_staging(tmp_path / "out") == []


def a_model_file(folder):
    """A file where the command expects a model: it gets past resolving the name to the
    monkeypatched step."""
    path = folder / "m.tflite"
    path.write_bytes(b"a model file")
    return path


SLOW_COMMAND = textwrap.dedent("""
    import sys, time
    import edgehar.evaluate as e
    from edgehar.atomic import staged_folder
    from edgehar.cli import main
    from tqdm import tqdm

    def slow(*a, **k):
        bar = tqdm(total=100, desc="work", leave=False)
        bar.update(3)
        with staged_folder(sys.argv[1]) as tmp:
            (tmp / "f").write_text("x")
            print("ready", flush=True)
            time.sleep(60)
    e.evaluate_file = slow
    sys.exit(main(["eval", sys.argv[2]]))
""")


@pytest.mark.parametrize("sig,code,word", [(signal.SIGTERM, 143, "terminated"),
                                           (signal.SIGINT, 130, "interrupted")])
def test_signals_stop_a_command_cleanly(tmp_path, sig, code, word):
    """SIGTERM and Ctrl-C (even when inherited ignored, as in a shell's background job) end
    the command with one line on its own line and no staging left."""
    out = tmp_path / "work" / "out"
    out.parent.mkdir()
    model = tmp_path / "model.tflite"
    model.write_bytes(b"a model file")  # a path: the command gets past resolving it
    proc = subprocess.Popen([sys.executable, "-c", SLOW_COMMAND, str(out), str(model)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=out.parent,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert err.splitlines()[-1] == f"edgehar: {word}" and "Traceback" not in err
    assert list(out.parent.iterdir()) == []


def test_ctrl_c_inside_an_import_is_interrupted_not_a_traceback(capsys, monkeypatch, tmp_path):
    import edgehar.evaluate as e

    def importing(*a, **k):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise ImportError("Traceback (most recent call last): ... Failed to load TensorFlow")
    monkeypatch.setattr(e, "evaluate_file", importing)
    code, err = run(["eval", str(a_model_file(tmp_path))], capsys)
    assert code == 130 and err == "edgehar: interrupted\n"


def test_an_error_under_a_progress_bar_starts_its_own_line(capsys, monkeypatch, tmp_path):
    import edgehar.evaluate as e
    from tqdm import tqdm

    def fails(*a, **k):
        bar = tqdm(total=10, desc="export", leave=False)
        bar.update(4)
        raise UserError("x.npz", "damaged")
    monkeypatch.setattr(e, "evaluate_file", fails)
    code, err = run(["eval", str(a_model_file(tmp_path))], capsys)
    assert code == 2 and "\nedgehar: error: x.npz: damaged\n" in err


# -- properties ---------------------------------------------------------------------------------
JSONISH = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                       lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=5), kids, max_size=4),
                       max_leaves=8)
VALID = {"labels": ["walk", "sit"], "rate": 50.0, "window": 128, "hop": 64,
         "channels": ["acc_x", "acc_y", "acc_z"], "units": ["g"] * 3, "norm_mean": [0.0] * 3,
         "norm_std": [1.0] * 3}


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(ModelCard.__dataclass_fields__)), JSONISH, max_size=6),
       st.booleans())
def test_any_card_is_valid_or_one_user_error(fields, on_top_of_valid):
    d = {**VALID, **fields} if on_top_of_valid else fields
    try:
        card = ModelCard.from_dict(d, "card.json")
    except UserError as e:
        assert "\n" not in e.message
        return
    assert math.isfinite(card.rate) and card.rate > 0 and card.window >= 1 and card.hop >= 1
    assert card.labels and card.channels and set(card.channels) <= set(KNOWN_CHANNELS)
    assert len(card.units) == len(card.channels)
    card.normalise(np.zeros((1, card.window, len(card.channels)), np.float32))
    ModelCard.from_json(card.to_json())  # what was accepted round-trips


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=12), st.floats().map(repr), st.integers().map(str)),
       st.sampled_from(["finite_float", "positive_float", "nonneg_float", "probability", "fraction",
                        "integer", "positive_int", "nonneg_int", "channel_list"]))
def test_flag_types_accept_or_refuse(text, name):
    fn = getattr(cli_types, name)
    try:
        value = fn(text)
    except argparse.ArgumentTypeError:
        return
    if name == "channel_list":
        assert value and set(value) <= set(KNOWN_CHANNELS)
        return
    assert math.isfinite(value)
    low = {"positive_float": 0, "positive_int": 1, "nonneg_int": 0, "nonneg_float": 0, "probability": 0,
           "fraction": 0}.get(name)
    if low is not None:
        assert value >= low and (value > 0 if name in ("positive_float", "fraction") else True)
    if name in ("probability", "fraction"):
        assert value <= 1
    if "int" in name or name == "integer":
        assert isinstance(value, int)
