"""Your own data: a folder of CSV recordings + edgehar.json, through every command's --data."""

import json
import subprocess
import sys

import numpy as np
import pytest

from edgehar.data.datasets import activity_windows, load_dataset
from edgehar.data.owndata import check_folder, load_folder, write_folder
from edgehar.errors import UserError


def _folder(tmp_path, manifest, files):
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "edgehar.json").write_text(json.dumps(manifest))
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "edgehar", *args], capture_output=True, text=True)


def test_headerless_folder_loads_through_the_manifest(tmp_path):
    rows = "\n".join(f"{i * 20},{i},{-i},{2 * i},{'walk' if i < 6 else ''}" for i in range(10))
    folder = _folder(tmp_path / "d", {
        "header": False, "columns": ["t", "ax", "ay", "az", "act"],
        "time": {"column": "t", "unit": "ms"}, "units": "m/s^2",
        "subject": {"folder": 1}, "label": {"column": "act"}, "label_map": {"walk": "walking"},
        "placement": "left wrist", "device": "my board"}, {"alice/take1.csv": rows, "bob/t.csv": rows})
    recs = load_dataset(str(folder))
    assert len(recs) == 2 and {r.meta["subject_name"] for r in recs} == {"alice", "bob"}
    r = recs[0]
    assert r.rate == 50.0 and r.units == ("m/s^2",) * 3
    assert r.channels == ("acc_x", "acc_y", "acc_z") and r.meta["channel_columns"] == ["ax", "ay", "az"]
    np.testing.assert_array_equal(r.data[:, 0], np.arange(10))
    assert r.label_names == ("walk",) and r.canonical_names == ("walking",)
    assert list(r.labels) == [0] * 6 + [-1] * 4
    assert r.placement == "left wrist" and r.device == "my board"


def test_irregular_times_are_interpolated(tmp_path):
    t = [0, 9, 21, 30, 40, 52, 60]
    rows = "time,x,y,z\n" + "\n".join(f"{v / 1000},{v},0,1" for v in t)
    folder = _folder(tmp_path / "d", {"time": {"column": "time"}, "rate": 100, "subject": {"value": 3}},
                     {"a.csv": rows})
    (r,) = load_folder(folder)
    assert r.meta["resampled"] and r.rate == 100.0 and r.subject == 3
    np.testing.assert_allclose(r.data[:, 0], np.arange(0, 61, 10), atol=1e-4)


def test_named_data_set_converted_gives_the_same_windows(data_root, tmp_path):
    recs = load_dataset("banglejs")
    out = write_folder(recs, tmp_path / "bangle")
    named = activity_windows("banglejs", rate=50.0)
    own = activity_windows(str(out), rate=50.0)
    assert own.label_names == named.label_names and own.channels == named.channels
    np.testing.assert_array_equal(own.x, named.x)
    np.testing.assert_array_equal(own.y, named.y)
    np.testing.assert_array_equal(own.subject, named.subject)
    assert load_dataset(str(out))[0].canonical_names == recs[0].canonical_names


def test_wisdm_subset_converted_gives_the_same_windows(data_root, tmp_path):
    recs = [r for r in load_dataset("wisdm_watch") if r.subject in (1600, 1629)]
    out = write_folder(recs, tmp_path / "w")
    from edgehar.data.windows import make_windows
    a, b = make_windows(recs, 40, 20), make_windows(load_folder(out), 40, 20)
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.y, b.y)
    np.testing.assert_array_equal(a.subject, b.subject)


BAD = [
    ({"rate": 50, "channels": ["x", "q"]}, {"a.csv": "x,y\n1,2\n"}, "a.csv: line 1: no channel column 'q'"),
    ({"rate": 50, "label": {"pattern": "^(walk|run)_"}}, {"sit_1.csv": "x,y\n1,2\n"},
     "sit_1.csv: label pattern '^(walk|run)_' matches nothing"),
    ({"time": {"column": "t"}}, {"a.csv": "t,x\n0,1\n0.02,1\n0.01,1\n"}, "a.csv: line 4: time goes backwards"),
    ({"rate": 50}, {}, "no .csv recordings in the folder"),
    ({"rate": 50, "files": {"b.csv": {"rate": 25}}}, {"a.csv": "x\n1\n", "b.csv": "x\n1\n"},
     "b.csv: rate 25 Hz but a.csv has 50 Hz, and there is no \"time\" column"),
]


@pytest.mark.parametrize("manifest,files,message", BAD)
def test_bad_input_is_one_line_naming_the_file(tmp_path, manifest, files, message):
    folder = _folder(tmp_path / "d", manifest, files)
    with pytest.raises(UserError, match=None) as e:
        load_folder(folder)
    assert message in e.value.message
    r = _cli("data", "summary", str(folder))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and message in r.stderr


def test_check_reports_every_file_and_every_problem(tmp_path):
    folder = _folder(tmp_path / "d", {"rate": 50, "label": {"column": "act"}}, {
        "good.csv": "x,y,act\n1,2,walk\n3,4,walk\n5,6,\n",
        "bad.csv": "x,y,act\n1,2,walk\n1,oops,walk\n",
        "worse.csv": "x,y\n1,2\n"})
    info = check_folder(folder)
    good = next(f for f in info["files"] if f["file"].endswith("good.csv"))
    assert good["rows"] == 3 and good["rate_hz"] == 50 and good["labels"] == {"walk": 2}
    assert good["unlabelled"] == 1 and good["channels"] == ["x", "y"]
    assert any("bad.csv: line 3, column 'y': not a number" in p for p in info["problems"])
    assert any("worse.csv" in p and "no label column 'act'" in p for p in info["problems"])
    r = _cli("data", "check", str(folder))
    assert r.returncode == 2 and "good.csv: 3 rows, 50 Hz" in r.stdout
    assert r.stderr.count("edgehar: error:") == 2


def test_commands_accept_a_folder(tmp_path):
    folder = _folder(tmp_path / "d", {"rate": 50}, {"a.csv": "x,y,z\n" + "1,2,3\n" * 300})
    r = _cli("data", "summary", str(folder), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["recordings"] == 1
    for cmd in (["calib", "build", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "c.npz")],
                ["eval", "m.pt", "--data", str(tmp_path / "none")]):
        r = _cli(*cmd)
        assert r.returncode == 2 and "no such folder" in r.stderr
