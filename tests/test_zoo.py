"""The model zoo's machinery on a temporary zoo (`EDGEHAR_ZOO`): a tiny student trained for a
few steps on generated wrist recordings is published, then every command takes it by name.

The shipped zoo itself (hashes, the six names, figures re-scored on the data) is checked by
tests/test_zoo_shipped.py.
"""

import json
import os
import re
import shutil
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest
from cli_run import one_line_error, run
from wrist_student import wrist_student

from edgehar import zoo
from edgehar.cli import main
from edgehar.digest import file_sha256

pytestmark = pytest.mark.slow

NAME = "test-tiny"
ACC = ("acc_x", "acc_y", "acc_z")
FIGURES = {"validation": {"macro_f1": 0.5}, "test": {"mine": 0.25, "n": {"mine": 10}},
           "test_seeds": {"mine": {"mean": 0.25, "std": 0.0, "runs": [0.25]}},
           "params": 1234, "macs": 56789, "int8_bytes": 4321, "instructions": {"cortex-m4": 98765}}


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A student trained on an own-data folder of synthetic wrist recordings, its int8 export,
    and a replay file of the held-out subject (no zoo yet)."""
    from edgehar.data import synthetic

    tmp = tmp_path_factory.mktemp("zoo-model")
    recs = [r.select(list(ACC)) for r in synthetic.synthetic_dataset(4, "wrist", 12, 1, 0)]
    student = wrist_student(tmp, recs)
    rec = recs[3]
    replay = tmp / "replay.csv"
    rows = [f"{i / rec.rate:.3f}," + ",".join(f"{v:.6f}" for v in r) for i, r in enumerate(rec.data)]
    replay.write_text("time,acc_x,acc_y,acc_z\n" + "\n".join(rows) + "\n")
    return {**student, "tmp": tmp, "replay": replay}


@pytest.fixture(scope="module")
def zoo_dir(made, tmp_path_factory):
    """A temporary zoo holding the student as NAME; EDGEHAR_ZOO points at it for the module."""
    root = tmp_path_factory.mktemp("zoo")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(zoo.ENV, str(root))
        zoo.publish(NAME, checkpoint=made["ckpt"], artifact=made["art"], task="wrist activity",
                    recipe_key="k" * 16, provenance={"commit": "abc", "command": "test", "seed": 0,
                                                     "seeds": [0], "cpu_seconds": 1.0, "device": "cpu"},
                    figures=FIGURES)
        yield root


@pytest.fixture()
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


# -- publish and the index ------------------------------------------------------------------------
def test_publish_writes_the_files_their_hashes_and_the_card_fields(zoo_dir, made):
    e = zoo.index()["models"][NAME]
    assert zoo.names() == [NAME] and zoo.zoo_dir() == zoo_dir == zoo.ZOO_DIR
    assert e["kind"] == "student" and e["files"] == {"checkpoint": f"{NAME}/model.pt", "artifact": f"{NAME}/int8"}
    assert sorted(os.listdir(zoo_dir / NAME / "int8")) == ["model_int8.tflite", "modelcard.json"]
    assert e["sha256"] == {rel: file_sha256(zoo_dir / rel) for rel in (
        f"{NAME}/model.pt", f"{NAME}/int8/model_int8.tflite", f"{NAME}/int8/modelcard.json")}
    assert e["sha256"][f"{NAME}/int8/model_int8.tflite"] == file_sha256(made["art"] / "model_int8.tflite")
    card = made["card"]
    assert e["input"] == {"rate": 20.0, "window": 40, "channels": list(ACC)}
    assert e["classes"] == list(card.labels) and e["figures"] == FIGURES and e["recipe_key"] == "k" * 16


def test_publish_refuses_what_the_index_cannot_hold(zoo_dir, made):
    with pytest.raises(ValueError, match="lower-case"):
        zoo.publish("Bad/Name", checkpoint=made["ckpt"], artifact=made["art"], task="t", recipe_key="k",
                    provenance={}, figures={})
    with pytest.raises(ValueError, match="not plain JSON"):
        zoo.publish("x", checkpoint=made["ckpt"], artifact=made["art"], task="t", recipe_key="k",
                    provenance={}, figures={"macro_f1": float("nan")})
    with pytest.raises(ValueError, match="int8 export"):
        zoo.publish("x", checkpoint=made["ckpt"], task="t", recipe_key="k", provenance={}, figures={})
    assert zoo.names() == [NAME]  # nothing half-published


def test_resolve_paths_win_names_resolve_and_unknowns_keep_the_usual_error(zoo_dir, made, in_tmp):
    assert zoo.resolve(NAME, "checkpoint") == zoo_dir / NAME / "model.pt"
    assert zoo.resolve(NAME, "artifact") == zoo_dir / NAME / "int8"
    assert zoo.resolve(NAME, "tflite") == zoo_dir / NAME / "int8" / "model_int8.tflite"
    assert zoo.resolve(NAME, "model") == zoo_dir / NAME / "int8"
    (in_tmp / NAME).write_bytes(b"a user's own file of that name")
    assert zoo.resolve(NAME, "checkpoint") == Path(NAME) and not zoo.is_name(NAME)
    with pytest.raises(zoo.UserError, match=r"no such checkpoint \(or a model name: edgehar models\)"):
        zoo.resolve("nothing-here", "checkpoint")


# -- edgehar models ---------------------------------------------------------------------------------
def test_models_lists_the_zoo_as_a_table_and_as_json(zoo_dir, capsys):
    code, out, err = run(["models"], capsys)
    assert code == 0, err
    header, line = out.splitlines()[:2]
    assert header.split()[:4] == ["name", "task", "input", "classes"]
    cells = line.split()
    assert cells[0] == NAME and "20 Hz x 40 acc" in line and "1,234" in line and "56,789" in line
    assert "4,321" in line and "98,765" in line and "0.250 +- 0.000 (1)" in line
    code, out, _ = run(["models", "--json"], capsys)
    assert code == 0 and json.loads(out) == zoo.index()["models"]


def test_models_show_gives_the_entry_and_the_deployed_card(zoo_dir, made, capsys):
    code, out, err = run(["models", "show", NAME, "--json"], capsys)
    assert code == 0, err
    shown = json.loads(out)
    assert shown["entry"] == zoo.index()["models"][NAME]
    on_disk = json.loads((made["art"] / "modelcard.json").read_text())
    assert shown["card"]["labels"] == on_disk["labels"] and shown["card"]["quantization"] == on_disk["quantization"]
    code, out, _ = run(["models", "show", NAME], capsys)
    assert code == 0 and out.startswith(f"{NAME}: wrist activity student, input 20 Hz x 40 acc")
    assert "figures:" in out and "int8_bytes: 4,321" in out


def test_unknown_model_name_is_one_line_naming_the_known_ones(zoo_dir, capsys):
    code, _, err = run(["models", "show", "wrist-huge"], capsys)
    one_line_error(code, err, "wrist-huge: no such model in the zoo", f"known: {NAME}")


def test_an_empty_zoo_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(zoo.ENV, str(tmp_path))
    code, out, _ = run(["models"], capsys)
    assert code == 0 and out.startswith("the model zoo is empty")
    code, _, err = run(["models", "show", "x"], capsys)
    one_line_error(code, err, "the zoo is empty")
    code, _, err = run(["export", "wrist-small", "--int8"], capsys)
    one_line_error(code, err, "wrist-small: no such checkpoint (or a model name: edgehar models)")


# -- names everywhere -------------------------------------------------------------------------------
def test_export_by_name_writes_to_the_given_folder(zoo_dir, made, in_tmp, capsys):
    code, out, err = run(["export", NAME, "--int8", "--out", "x", "--data", made["folder"], "--no-micro",
                          "--n-calib", "100", "--json"], capsys)
    assert code == 0, err
    card = json.loads((in_tmp / "x" / "modelcard.json").read_text())
    assert (in_tmp / "x" / "model_int8.tflite").is_file() and card["labels"] == list(made["card"].labels)
    assert sorted(os.listdir(zoo_dir / NAME / "int8")) == ["model_int8.tflite", "modelcard.json"]


def test_export_of_a_name_defaults_to_the_current_folder(zoo_dir, made, in_tmp, monkeypatch, capsys):
    from edgehar.export import pipeline

    seen = {}
    monkeypatch.setattr(pipeline, "export_student", lambda ckpt, out, **kw: seen.update(ckpt=ckpt, out=out)
                        or {"out": out, "files": [], "parity": {"figures": {"bytes": {}}, "bounds": {}, "ok": True}})
    assert run(["export", NAME, "--int8"], capsys)[0] == 0
    assert seen == {"ckpt": zoo_dir / NAME / "model.pt", "out": f"{NAME}_export"}


def test_profile_by_name_is_the_shipped_int8_file(zoo_dir, capsys):
    code, out, err = run(["profile", NAME, "--json", "--no-latency", "--no-arena"], capsys)
    assert code == 0, err
    r = json.loads(out)
    assert r["model"] == str(zoo_dir / NAME / "int8" / "model_int8.tflite")
    assert r["inputs"][0]["dtype"] == "int8" and r["params"] > 0


def test_eval_by_name_scores_the_shipped_int8_model(zoo_dir, made, capsys):
    code, out, err = run(["eval", NAME, "--data", made["folder"], "--json"], capsys)
    assert code == 0, err
    by_name = json.loads(out)
    code, out, err = run(["eval", zoo_dir / NAME / "int8", "--data", made["folder"], "--json"], capsys)
    by_path = json.loads(out)
    assert by_name["backend"] == "litert" and by_name["windows"] > 0
    assert {k: by_name[k] for k in ("macro_f1", "accuracy", "confusion")} == \
           {k: by_path[k] for k in ("macro_f1", "accuracy", "confusion")}


def test_live_by_name_predicts_as_the_shipped_folder(zoo_dir, made, capsys):
    """The same windows get the same probabilities by name as by the shipped folder's path (the
    virtual device replays as fast as live reads; --duration ends each run)."""
    url = f"sim://{quote(str(made['replay']))}?speed=0"
    results = []
    for model in (NAME, zoo_dir / NAME / "int8"):
        code, out, err = run(["live", "--port", url, "--model", model, "--smooth", "none",
                              "--duration", "4", "--json"], capsys)
        assert code == 0, err
        lines = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
        results.append({p["start"]: (p["label"], p["probs"]) for p in lines if "summary" not in p})
    common = sorted(set(results[0]) & set(results[1]))
    assert len(common) >= 10, [len(r) for r in results]
    assert [results[0][s] for s in common] == [results[1][s] for s in common]
    assert {results[0][s][0] for s in common} <= set(made["card"].labels)


def test_data_check_takes_a_model_name(zoo_dir, made, capsys):
    code, out, err = run(["data", "check", made["folder"], "--model", NAME, "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["files"]


def test_firmware_build_by_name(zoo_dir, in_tmp, capsys):
    if not os.environ.get("EDGEHAR_TOOLCHAINS"):
        pytest.skip("EDGEHAR_TOOLCHAINS is unset: the Cortex-M toolchain test (CI sets it)")
    from edgehar.mcu.toolchain import find_toolchain

    try:
        find_toolchain(None, need_qemu=False)
    except zoo.UserError as e:
        pytest.skip(f"no Cortex-M toolchain: {e}")
    code, out, err = run(["firmware", "build", NAME, "--board", "mps2-an386", "--json"], capsys)
    assert code == 0, err
    report = json.loads(out)
    elf = in_tmp / f"{NAME}-firmware-mps2-an386.elf"
    assert report["elf"] == str(Path(f"{NAME}-firmware-mps2-an386.elf")) and elf.read_bytes()[:4] == b"\x7fELF"
    assert report["flash"]["model"] == report["model_file_bytes"] == (
        zoo_dir / NAME / "int8" / "model_int8.tflite").stat().st_size
    assert sorted(os.listdir(zoo_dir / NAME / "int8")) == ["model_int8.tflite", "modelcard.json"]


def test_firmware_of_a_name_makes_the_c_array_of_the_shipped_bytes(zoo_dir, made):
    from edgehar.export.c_array import parse_c_array

    from edgehar.mcu.firmware_build import artifact_files, export_folder

    with export_folder(NAME) as folder:
        source, tflite, card = artifact_files(folder)  # the export folder checks pass
        assert parse_c_array(source.read_text()) == (zoo_dir / NAME / "int8" / "model_int8.tflite").read_bytes()
        assert (folder / "model_int8.h").read_text() == (made["art"] / "model_int8.h").read_text()
    assert not folder.exists()
    with export_folder(made["art"]) as folder:  # a user's folder is used as it is
        assert folder == made["art"]


# -- bad input ---------------------------------------------------------------------------------------
@pytest.fixture()
def damaged_zoo(zoo_dir, tmp_path, monkeypatch):
    """A copy of the zoo whose int8 file has one byte changed."""
    copy = tmp_path / "zoo"
    shutil.copytree(zoo_dir, copy)
    f = copy / NAME / "int8" / "model_int8.tflite"
    data = bytearray(f.read_bytes())
    data[-1] ^= 1
    f.write_bytes(bytes(data))
    monkeypatch.setenv(zoo.ENV, str(copy))
    return copy


@pytest.mark.parametrize("argv", [["profile", NAME], ["eval", NAME, "--data", "hapt"],
                                  ["live", "--port", "loop://", "--model", NAME],
                                  ["firmware", "build", NAME]])
def test_a_changed_shipped_file_is_one_line_naming_it(damaged_zoo, argv, capsys):
    code, _, err = run(argv, capsys)
    one_line_error(code, err, f"{NAME}: shipped file {NAME}/int8/model_int8.tflite does not match its "
                              "sha256 (reinstall edgehar)")


def test_the_checkpoint_is_checked_too(damaged_zoo, capsys):
    (damaged_zoo / NAME / "model.pt").write_bytes(b"not the shipped checkpoint")
    code, _, err = run(["export", NAME, "--int8", "--out", damaged_zoo.parent / "x"], capsys)
    one_line_error(code, err, f"shipped file {NAME}/model.pt does not match its sha256")


@pytest.mark.parametrize("argv,missing", [
    (["export", "wrist-hgue", "--int8"], "no such checkpoint"),
    (["profile", "wrist-hgue"], "no such model file"),
    (["eval", "wrist-hgue"], "no such model file or folder"),
    (["finetune", "wrist-hgue", "--data", "synthetic"], "no such checkpoint"),
    (["distill", "--teacher", "wrist-hgue"], "no such checkpoint"),
    (["firmware", "build", "wrist-hgue"], "no such export folder"),
    (["device", "emulate", "--model", "wrist-hgue", "--replay", "x.csv"], "no such export folder"),
    (["live", "--port", "loop://", "--model", "wrist-hgue"], "no such model file or folder"),
])
def test_an_unknown_name_keeps_each_commands_error_and_points_at_the_names(zoo_dir, argv, missing, in_tmp, capsys):
    code, _, err = run(argv, capsys)
    one_line_error(code, err, f"wrist-hgue: {missing} (or a model name: edgehar models)")


def test_a_teacher_name_has_no_int8_export(zoo_dir, made, tmp_path, monkeypatch, capsys):
    """A teacher ships its checkpoint only: commands that need an int8 model say so."""
    e = zoo.index()["models"][NAME]
    index = {"models": {"t": {**e, "kind": "teacher", "files": {"checkpoint": e["files"]["checkpoint"]}}}}
    copy = tmp_path / "zoo"
    shutil.copytree(zoo_dir, copy)
    (copy / "index.json").write_text(json.dumps(index))
    monkeypatch.setenv(zoo.ENV, str(copy))
    assert zoo.resolve("t", "model") == copy / NAME / "model.pt"
    code, _, err = run(["profile", "t"], capsys)
    one_line_error(code, err, "t: is a teacher: it ships a checkpoint, no int8 export")


def test_a_damaged_index_is_one_line(tmp_path, monkeypatch, capsys):
    (tmp_path / "index.json").write_text("{not json")
    monkeypatch.setenv(zoo.ENV, str(tmp_path))
    code, _, err = run(["models"], capsys)
    one_line_error(code, err, "index.json: the model zoo's index is unreadable")


def test_help_of_every_model_argument_names_the_zoo(capsys):
    for argv in (["export"], ["profile"], ["eval"], ["live"], ["finetune"], ["distill"],
                 ["firmware", "build"], ["device", "emulate"], ["data", "check"]):
        with pytest.raises(SystemExit):
            main([*argv, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "zoo name (edgehar models" in text, argv


def test_a_shipped_student_exports_from_its_own_windows_without_data(made, tmp_path, monkeypatch, capsys):
    """A student ships the windows its int8 export was made from: `export NAME` needs no data,
    gives the shipped int8 model again, and `--classes` slices it."""
    from edgehar.export.pipeline import export_student

    from edgehar.data.datasets import activity_windows

    w = activity_windows(str(made["folder"]), None, rate=20.0, window=40, channels=ACC, units=("g",) * 3)
    zoo.save_windows(tmp_path / "w.npz", w, [4])
    shipped, held = zoo.load_windows(tmp_path / "w.npz")
    assert held == [4] and shipped.x.shape == w.x.shape and shipped.label_names == w.label_names
    assert np.abs(shipped.x - w.x).max() < 1e-2  # float16 on disk
    art = tmp_path / "art"
    export_student(made["ckpt"], art, windows=shipped, test_subjects=held, data=zoo.WINDOWS_DATA, micro=False,
                   progress=False)
    monkeypatch.setenv(zoo.ENV, str(tmp_path / "zoo"))
    monkeypatch.delenv("EDGEHAR_DATA", raising=False)
    zoo.publish("with-windows", checkpoint=made["ckpt"], artifact=art, windows=tmp_path / "w.npz",
                task="wrist activity", recipe_key="k", provenance={}, figures={})
    assert zoo.entry("with-windows")["files"]["windows"] == "with-windows/windows.npz"
    monkeypatch.chdir(tmp_path)
    code, _, err = run(["export", "with-windows", "--int8", "--out", "again", "--no-micro"], capsys)
    assert code == 0, err
    # the same int8 graph and card: the bytes differ only in the card's creation times
    created = re.compile(rb'"created": ?"[0-9T:-]+Z"')
    again, shipped_int8 = ((d / "model_int8.tflite").read_bytes() for d in (tmp_path / "again", art))
    assert created.sub(b"", again) == created.sub(b"", shipped_int8)
    two = list(made["card"].labels)[:2]
    code, _, err = run(["export", "with-windows", "--int8", "--classes", ",".join(two), "--out", "sliced",
                        "--no-micro"], capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "sliced" / "modelcard.json").read_text())["labels"] == two
    (tmp_path / "zoo" / "with-windows" / "windows.npz").write_bytes(b"changed")
    one_line_error(*run(["export", "with-windows", "--int8", "--out", "third"], capsys)[::2], "windows.npz")
