"""Real HAPT recordings (EDGEHAR_DATA) and the `edgehar data summary` command."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from edgehar.data import hapt
from edgehar.data.datasets import activity_windows
from edgehar.data.splits import split_subjects


def edgehar(*args, **kw):
    return subprocess.run([sys.executable, "-m", "edgehar", *args], capture_output=True, text=True, **kw)


def test_hapt_recordings(data_root):
    recs = hapt.load_hapt(data_root / "hapt")
    assert len(recs) == 61 and len({r.subject for r in recs}) == 30
    r = recs[0]
    assert r.rate == 50.0 and r.data.shape[1] == 6 and r.units == hapt.UNITS
    assert r.label_names[0] == "walking" and len(r.label_names) == 12
    # exp01 user01 starts with STANDING (id 5) at row 250 (1-based)
    assert r.labels[248] == -1 and r.labels[249] == 4
    # gravity: at rest the acc magnitude is about 1 g
    still = r.data[r.labels == 5, :3]  # laying
    assert np.median(np.linalg.norm(still, axis=1)) == pytest.approx(1.0, abs=0.05)


def test_default_split_windows(data_root):
    w = activity_windows("hapt", data_root / "hapt")
    assert w.x.shape[1:] == (128, 6) and w.label_names[-1] == "laying" and len(w.label_names) == 6
    train, test = split_subjects(w, hapt.TEST_SUBJECTS)
    assert set(np.unique(test.subject)) == set(hapt.TEST_SUBJECTS)
    assert len(w.unlabelled()) > 1000  # transitions and gaps, kept for self-supervised use
    counts = test.labelled().class_counts()
    assert min(counts.values()) > 300


def test_summary_cli_json(data_root):
    out = edgehar("data", "summary", "hapt", "--root", str(data_root / "hapt"), "--json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["subjects"] == 30 and info["recordings"] == 61
    assert info["rate_hz"] == [50.0] and 5.5 < info["hours"] < 7
    assert info["windows_per_class"]["walking"] > 1000


def test_summary_table(data_root):
    out = edgehar("data", "summary", "hapt", "--root", str(data_root / "hapt"))
    assert out.returncode == 0 and "subjects    30" in out.stdout


def test_bad_hapt_input_one_line_errors(data_root, tmp_path):
    out = edgehar("data", "summary", "hapt", "--root", str(tmp_path / "nope"))
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert out.stderr.startswith("edgehar: error: ") and "nope" in out.stderr
    # a copy of two experiments with a non-numeric cell in the acc file
    root = tmp_path / "hapt"
    (root / "RawData").mkdir(parents=True)
    shutil.copy(data_root / "hapt" / "activity_labels.txt", root)
    shutil.copy(data_root / "hapt" / "RawData" / "labels.txt", root / "RawData")
    for kind in ("acc", "gyro"):
        shutil.copy(data_root / "hapt" / "RawData" / f"{kind}_exp01_user01.txt", root / "RawData")
    acc = root / "RawData" / "acc_exp01_user01.txt"
    lines = acc.read_text().splitlines()
    lines[9] = "0.1 abc 0.3"
    acc.write_text("\n".join(lines) + "\n")
    out = edgehar("data", "summary", "hapt", "--root", str(root))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "acc_exp01_user01.txt: line 10, column 2: not a number: 'abc'" in out.stderr
    # wrong format: a folder without RawData
    (tmp_path / "other").mkdir()
    out = edgehar("data", "summary", "hapt", "--root", str(tmp_path / "other"))
    assert out.returncode == 2 and "not the UCI HAPT layout" in out.stderr
