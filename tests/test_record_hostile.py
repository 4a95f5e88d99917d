"""`edgehar record` under careless and hostile use: concurrent recorders into one folder lose no
take, a take killed outright keeps what was read (marked partial), and label/subject names that
would hide a take or not fit the file system are refused at parse time."""

import json
import os
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import numpy as np
import pytest

from edgehar.cli import main

from edgehar.bridge.record import PARTIAL, Take, end_take, recover_killed_takes, start_take
from edgehar.data.owndata import load_folder

RATE = 50.0


@pytest.fixture()
def replay_file(tmp_path):
    """A 60 s, 3-axis recording (float32 values written exactly)."""
    rng = np.random.default_rng(1)
    x = (rng.normal(size=(3000, 3)) * 0.3 + [0, 0, 1]).astype(np.float32)
    lines = ["time,acc_x,acc_y,acc_z"] + [f"{i / RATE:.3f}," + ",".join(f"{v:.9g}" for v in r)
                                          for i, r in enumerate(x)]
    path = tmp_path / "replay.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def record(port, out, *extra, label="walking"):
    return subprocess.Popen([sys.executable, "-m", "edgehar", "record", "--port", port, "--label", label,
                             "--subject", "3", "--out", str(out), "--json", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def manifest(folder):
    return json.loads((folder / "edgehar.json").read_text())


@pytest.mark.parametrize("name", ["..", ".", ".walk", "a/b", "x" * 220, "é" * 60])
def test_hidden_or_too_long_names_are_refused_at_parse_time(tmp_path, name, capsys):
    for flag in ("--label", "--subject"):
        argv = ["--label", "walking", "--subject", "3"]
        argv[argv.index(flag) + 1] = name
        with pytest.raises(SystemExit) as e:  # argparse: before the port or the folder is touched
            main(["record", "--port", "p", *argv, "--out", str(tmp_path / "rec")])
        err = capsys.readouterr().err
        assert e.value.code == 2 and "Traceback" not in err
        assert f"argument {flag}" in err.strip().splitlines()[-1]
        assert not (tmp_path / "rec").exists()


def test_the_longest_names_allowed_fit_the_file_system(tmp_path):
    """80-byte label and subject: the take, its partial name and a rewrite's staging name fit."""
    out = tmp_path / "rec"
    take = Take(0, {}, SimpleNamespace(rate=RATE, channels=("a", "b", "c"), units=(), values=np.zeros((1, 3))))
    start_take(out, take, "l" * 80, "s" * 80, None)
    take.add(SimpleNamespace(values=np.ones((5, 3), np.float32), index=7))
    take.add(SimpleNamespace(values=np.ones((2, 3), np.float32), index=3))  # a late frame: rewritten
    info = end_take(out, take, {}, "stopped")
    assert info["samples"] == 7 and os.path.basename(info["file"]) in manifest(out)["files"]
    assert sorted(os.listdir(out)) == ["edgehar.json", os.path.basename(info["file"])]
    times = [float(line.split(",")[0]) for line in open(info["file"]).read().splitlines()[1:]]
    assert times == sorted(times) and len(times) == 7  # device order after the rewrite


def test_two_recorders_into_one_folder_lose_no_take(tmp_path, replay_file):
    out = tmp_path / "rec"
    port = f"sim://{replay_file}?speed=10"  # the same label and subject: the same names are due
    procs = [record(port, out, "--seconds", "1", "--takes", "3") for _ in range(2)]
    results = [p.communicate(timeout=240) for p in procs]
    for p, (stdout, stderr) in zip(procs, results):
        assert p.returncode == 0, stderr
    reported = [json.loads(line) for stdout, _ in results for line in stdout.splitlines()]
    assert len(reported) == 6, results
    files = manifest(out)["files"]
    names = [os.path.basename(t["file"]) for t in reported]
    assert len(set(names)) == 6 and set(names) == set(files)
    assert sorted(p for p in os.listdir(out) if p.endswith(".csv")) == sorted(names)
    assert all(files[n]["samples"] == 50 and "partial" not in files[n] for n in names)
    recs = load_folder(out)
    assert len(recs) == 6 and all(r.n_samples == 50 for r in recs)


def test_a_killed_take_keeps_its_samples_marked_partial(tmp_path, replay_file):
    out = tmp_path / "rec"
    proc = record(f"sim://{replay_file}?speed=2", out)  # open-ended: until stopped
    try:
        assert "take 1 of 'walking' started" in proc.stderr.readline()
        partial, streamed = None, 0
        for _ in range(300):
            time.sleep(0.1)
            found = [p for p in os.listdir(out) if p.endswith(PARTIAL)]
            streamed = open(out / found[0]).read().count("\n") if found else 0
            if streamed > 40:
                partial = out / found[0]
                break
        assert partial is not None, "the take was not streamed to disk"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    entry = manifest(out)["files"][partial.name]
    assert entry["partial"] is True and entry["label"] == {"value": "walking"}
    rows = partial.read_text().splitlines()
    # the kill may land before another row: what was on disk when we looked stays there
    assert rows[0] == "time,acc_x,acc_y,acc_z" and len(rows) >= streamed
    sent = np.loadtxt(replay_file, delimiter=",", skiprows=1, dtype=np.float32)[:, 1:]
    kept = np.array([[float(v) for v in r.split(",")[1:]] for r in rows[1:] if r.count(",") == 3], np.float32)
    np.testing.assert_array_equal(kept, sent[:len(kept)])  # exactly what the device sent, in order
    # the next record into the folder counts the killed take's samples; it stays partial
    with open(partial, "a") as f:
        f.write("9.99,0.1")  # as if the last write had been cut
    assert recover_killed_takes(out) == [partial.name]
    entry = manifest(out)["files"][partial.name]
    assert entry["partial"] is True and entry["ended_by"] == "killed" and entry["samples"] == len(kept)
    assert partial.read_text().endswith("\n")
    (rec,) = load_folder(out)  # the loader reads it like any take
    assert rec.n_samples == len(kept) and rec.label_names[rec.labels[0]] == "walking"


def test_a_live_take_is_not_taken_for_a_killed_one(tmp_path):
    out = tmp_path / "rec"
    take = Take(0, {}, SimpleNamespace(rate=RATE, channels=(), units=(), values=np.zeros((1, 2))))
    start_take(out, take, "sit", "1", "g")
    take.add(SimpleNamespace(values=np.ones((3, 2), np.float32), index=None))
    assert recover_killed_takes(out) == []  # its recorder holds the take's lock
    info = end_take(out, take, {"bytes": 1}, "seconds")
    assert info["samples"] == 3 and info["ended_by"] == "seconds" and not info["file"].endswith(PARTIAL)
