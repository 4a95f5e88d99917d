"""The output-path guard (`edgehar.outputs`): no command deletes or replaces a file or folder it
did not create. Every refusal comes before any work, as one `edgehar: error:` line and exit 2,
with every file in the folder byte for byte as it was."""

import hashlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from edgehar.errors import UserError
from edgehar.outputs import (MARKER, claim_file, claim_folder, foreign_entries, mark_folder, refuse_inputs,
                             staged_output_folder)


def snapshot(folder: Path) -> dict:
    """Every path under `folder` (hidden ones too) with its content's SHA-256 (None: a folder)."""
    return {str(p.relative_to(folder)): None if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*"))}


def edgehar(*argv, cwd=None):
    """`python -m edgehar ARGV`: (exit status, stderr lines)."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    r = subprocess.run([sys.executable, "-m", "edgehar", *map(str, argv)], capture_output=True, text=True,
                       cwd=cwd, env=env, timeout=300)
    return r.returncode, r.stderr.strip().splitlines()


def refused(tmp_path, argv, *words, cwd=None):
    """Run ARGV and check the contract: exit 2, one error line holding `words`, nothing changed
    under tmp_path (nothing written, nothing removed, no staging left)."""
    before = snapshot(tmp_path)
    code, err = edgehar(*argv, cwd=cwd)
    assert code == 2, err
    assert len(err) == 1 and err[0].startswith("edgehar: error:"), err
    for w in words:
        assert w in err[0], err
    assert snapshot(tmp_path) == before
    return err[0]


@pytest.fixture()
def user_folder(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "a.txt").write_text("the user's notes\n")
    (mine / "sub").mkdir()
    (mine / "sub" / "b.csv").write_text("t,x\n0,1\n")
    return mine


@pytest.fixture()
def checkpoint(tmp_path):
    path = tmp_path / "s.pt"
    path.write_bytes(b"a checkpoint's bytes: the guard runs before it is read")
    return path


# -- export ---------------------------------------------------------------------------------------
def test_export_into_a_folder_of_user_files(tmp_path, user_folder, checkpoint):
    err = refused(tmp_path, ["export", checkpoint, "--int8", "--out", user_folder], "did not write",
                  "a.txt", "sub", "choose an empty or new folder")
    assert err.startswith(f"edgehar: error: {user_folder}: holds files edgehar export did not write")


def test_export_into_the_folder_holding_the_checkpoint(tmp_path):
    proj = tmp_path / "proj"
    proj.mkdir()
    ckpt = proj / "s.pt"
    ckpt.write_bytes(b"weights")
    refused(tmp_path, ["export", ckpt, "--int8", "--out", proj], "holds", "s.pt", "input")


def test_export_into_the_current_folder(tmp_path, checkpoint):
    work = tmp_path / "work"
    work.mkdir()
    refused(tmp_path, ["export", checkpoint, "--int8", "--out", "."], "current folder", cwd=work)
    refused(tmp_path, ["export", checkpoint, "--int8", "--out", ".."], "above the current", cwd=work)


def test_export_out_is_the_checkpoint(tmp_path, checkpoint):
    refused(tmp_path, ["export", checkpoint, "--out", checkpoint], "input")


def test_a_previous_export_is_recognised(tmp_path):
    from edgehar.export.pipeline import claim_export_folder

    art = tmp_path / "art"
    art.mkdir()
    for name in ("model.onnx", "modelcard.json", "parity.json"):
        (art / name).write_text(name)
    claim_export_folder(art, tmp_path / "s.pt")  # written before markers: its names alone
    mark_folder(art, "export")
    claim_export_folder(art, tmp_path / "s.pt")
    (art / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match=r"did not write \(notes.txt\)"):
        claim_export_folder(art, tmp_path / "s.pt")
    (art / "notes.txt").unlink()
    (art / "model_fp32.tflite").write_text("a name export writes, but not listed by this export")
    with pytest.raises(UserError, match="model_fp32.tflite"):
        claim_export_folder(art, tmp_path / "s.pt")


def test_staged_output_replaces_only_its_own_output(tmp_path):
    out = tmp_path / "art"
    with staged_output_folder(out, "export") as tmp:
        (tmp / "model.onnx").write_text("v1")
    assert sorted(os.listdir(out)) == [MARKER, "model.onnx"] and foreign_entries(out, "export") == []
    with staged_output_folder(out, "export") as tmp:
        (tmp / "model.onnx").write_text("v2")
        (tmp / "parity.json").write_text("{}")
    assert (out / "model.onnx").read_text() == "v2" and foreign_entries(out, "export") == []
    # a file a user drops in while the command runs: the swap is refused, the old folder stays
    with pytest.raises(UserError, match="put there while it ran"):
        with staged_output_folder(out, "export") as tmp:
            (tmp / "model.onnx").write_text("v3")
            (out / "late.txt").write_text("mine")
    assert (out / "model.onnx").read_text() == "v2" and (out / "late.txt").read_text() == "mine"
    assert sorted(os.listdir(tmp_path)) == ["art"]  # no staging left


# -- data download ----------------------------------------------------------------------------
def _archive(tmp_path) -> Path:
    path = tmp_path / "hapt.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("RawData/labels.txt", "1 1 1 1 10\n")
        z.writestr("activity_labels.txt", "1 WALKING\n")
    return path


def test_download_into_a_folder_of_user_files(tmp_path, user_folder):
    url = _archive(tmp_path).as_uri()
    refused(tmp_path, ["data", "download", "hapt", "--url", url, "--sha256", "none", "--dest", user_folder],
            "holds files edgehar data download did not write", "a.txt")
    refused(tmp_path, ["data", "download", "hapt", "--url", url, "--sha256", "none", "--dest", tmp_path],
            "hapt.zip")


def test_download_replaces_a_previous_download_only(tmp_path):
    from edgehar.data.download import download_hapt

    url, dest = _archive(tmp_path).as_uri(), tmp_path / "cache"
    root = download_hapt(dest, url=url, sha256=None, progress=False)
    assert root == dest and foreign_entries(dest, "data download") == []
    assert download_hapt(dest, url=url, sha256=None, progress=False, force=True) == dest
    (dest / "mine.txt").write_text("x")
    with pytest.raises(UserError, match=r"did not write \(mine.txt\)"):
        download_hapt(dest, url=url, sha256=None, progress=False, force=True)
    assert (dest / "mine.txt").read_text() == "x"


# -- live --log -------------------------------------------------------------------------------
@pytest.fixture()
def artifact(tmp_path):
    art = tmp_path / "art"
    art.mkdir()
    (art / "modelcard.json").write_text('{"the": "model card"}\n')
    (art / "model.onnx").write_bytes(b"onnx bytes")
    return art


def test_live_log_onto_the_model_card(tmp_path, artifact):
    refused(tmp_path, ["live", "--port", tmp_path / "tty", "--model", artifact, "--log",
                       artifact / "modelcard.json"], "modelcard.json: is inside")
    refused(tmp_path, ["live", "--port", tmp_path / "tty", "--model", artifact, "--log",
                       artifact / "live.csv"], "inside", "reads")
    refused(tmp_path, ["live", "--port", tmp_path / "tty", "--model", artifact / "model.onnx",
                       "--log", artifact / "live.jsonl"], "inside")


def test_live_log_is_an_input(tmp_path):
    log = tmp_path / "model.json"
    log.write_text("")  # empty: a log would be taken, but this one is the model
    refused(tmp_path, ["live", "--port", tmp_path / "tty", "--model", log, "--log", log], "input")


def test_live_log_replaces_only_a_prediction_log(tmp_path):
    from edgehar.bridge.flags import is_prediction_log

    csv, jsonl, other = tmp_path / "a.csv", tmp_path / "a.jsonl", tmp_path / "b.csv"
    csv.write_text("time,segment,start,label,smoothed,delay_ms,p_walk\n1.0,0,0,walk,walk,1.0,1.0\n")
    jsonl.write_text('{"time": 1, "segment": 0, "start": 0, "label": "a", "smoothed": "a", "probs": {}}\n')
    other.write_text("t,x\n0,1\n")
    assert is_prediction_log(csv) and is_prediction_log(jsonl) and not is_prediction_log(other)
    model = tmp_path / "m.tflite"  # found, never loaded: the log is refused first
    model.write_bytes(b"stand-in")
    refused(tmp_path, ["live", "--port", "p", "--model", model, "--log", other], "not a prediction log")


# -- training checkpoints ---------------------------------------------------------------------
def test_distill_and_finetune_never_write_onto_their_input(tmp_path, checkpoint):
    refused(tmp_path, ["distill", "--teacher", checkpoint, "--out", checkpoint], "input")
    refused(tmp_path, ["finetune", checkpoint, "--out", checkpoint], "input")
    link = tmp_path / "hard.pt"
    os.link(checkpoint, link)  # the same file under another name
    refused(tmp_path, ["finetune", checkpoint, "--out", link], "input")
    own = tmp_path / "own"
    own.mkdir()
    (own / "edgehar.json").write_text('{"rate": 50}')
    refused(tmp_path, ["pretrain", "--method", "relcon", "--data", own, "--out", own], "input")
    refused(tmp_path, ["distill", "--teacher", checkpoint, "--data", own, "--out", tmp_path], "holds")


# -- firmware build -----------------------------------------------------------------------------
def test_firmware_build_never_writes_onto_its_artifacts(tmp_path):
    art = tmp_path / "art"
    art.mkdir()
    for name in ("model_int8.cc", "model_int8.h", "model_int8.tflite", "modelcard.json"):
        (art / name).write_text(name)
    refused(tmp_path, ["firmware", "build", art, "--out", art / "model_int8.cc"], "input")
    refused(tmp_path, ["firmware", "build", art, "--out", art], "input")
    (tmp_path / "elves").mkdir()
    err = refused(tmp_path, ["firmware", "build", art, "--out", tmp_path / "elves"], "is a folder")
    assert err.endswith("elves: is a folder, expected the path of a file (a firmware ELF)"), err
    (tmp_path / "notes.elf").write_text("not an ELF")
    refused(tmp_path, ["firmware", "build", art, "--out", tmp_path / "notes.elf"], "not a firmware ELF")


# -- calibration sets and corpora -------------------------------------------------------------
def test_calib_build_out(tmp_path, checkpoint):
    (tmp_path / "mine.npz").write_bytes(b"the user's own archive")
    refused(tmp_path, ["calib", "build", "--data", "hapt", "--out", tmp_path / "mine.npz"],
            "not an edgehar calibration set")
    like = tmp_path / "like.npz"
    like.write_bytes(b"x")
    refused(tmp_path, ["calib", "build", "--data", "hapt", "--like", like, "--out", like], "input")


def test_corpus_build_out(tmp_path, user_folder):
    refused(tmp_path, ["data", "corpus", "build", "--data", "hapt", "--rate", "50", "--window", "128",
                       "--out", user_folder], "did not write", "a.txt")
    own = tmp_path / "own"
    own.mkdir()
    (own / "edgehar.json").write_text('{"rate": 50}')
    refused(tmp_path, ["data", "corpus", "build", "--data", own, "--rate", "50", "--window", "128",
                       "--out", tmp_path], "holds")


# -- demo -----------------------------------------------------------------------------------
def test_demo_out_with_user_files(tmp_path, user_folder):
    refused(tmp_path, ["demo", "--quick", "--synthetic", "--out", user_folder], "did not write", "a.txt")


# -- the guard itself -------------------------------------------------------------------------
def test_guard_functions(tmp_path):
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "sub" / "x.csv").write_text("x")
    refuse_inputs(tmp_path / "elsewhere.pt", [data])
    with pytest.raises(UserError, match="holds"):
        refuse_inputs(tmp_path, [data / "sub" / "x.csv"])
    with pytest.raises(UserError, match="inside"):
        refuse_inputs(data / "log.csv", sealed=[data])
    link = tmp_path / "link.csv"
    link.symlink_to(data / "sub" / "x.csv")
    with pytest.raises(UserError, match="input"):
        refuse_inputs(link, [data / "sub" / "x.csv"])
    assert claim_folder(tmp_path / "new", "export") == (tmp_path / "new").resolve()
    (tmp_path / "empty").mkdir()
    claim_folder(tmp_path / "empty", "export")
    with pytest.raises(UserError, match="not a folder"):
        claim_folder(data / "sub" / "x.csv", "export")
    with pytest.raises(UserError, match="not mine"):
        claim_file(data / "sub" / "x.csv", "x", recognise=lambda p: False, kind="mine")
    # a staging sibling a killed run left is not the user's: it does not block the folder
    (tmp_path / "empty" / ".model.onnx.tmp-999999-abcdefgh").write_text("")
    claim_folder(tmp_path / "empty", "export")
