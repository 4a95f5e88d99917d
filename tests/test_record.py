"""`edgehar record` against `edgehar device simulate` (a pty): the takes hold exactly the samples
the device sent, in both protocols, and a disconnect mid-take keeps what was read."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from edgehar.bridge import frames
from edgehar.bridge.virtual_device import frame_scale
from edgehar.data import load_recording
from edgehar.data.owndata import load_folder

RATE = 50.0


@pytest.fixture()
def replay_file(tmp_path):
    """A 60 s, 3-axis recording with a time column (float32 values written exactly)."""
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(3000, 3)) * [0.3, 0.5, 1.0] + [0, 0, 1]).astype(np.float32)
    lines = ["time,acc_x,acc_y,acc_z"] + [f"{i / RATE:.3f}," + ",".join(f"{v:.9g}" for v in r)
                                          for i, r in enumerate(x)]
    path = tmp_path / "replay.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def _simulate(path, protocol, speed):
    sim = subprocess.Popen([sys.executable, "-m", "edgehar", "device", "simulate", "--replay", str(path),
                            "--protocol", protocol, "--speed", str(speed), "--json"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    port = json.loads(sim.stdout.readline())["port"]
    return sim, port


def _record(port, out, *extra):
    return subprocess.Popen([sys.executable, "-m", "edgehar", "record", "--port", port, "--label",
                             "walking", "--subject", "7", "--out", str(out), "--json", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _sent(path, protocol):
    data = load_recording(path).data
    if protocol == "frame":  # what a frame carries: int16 at the device's scale
        scale = frame_scale(data)
        return frames.quantize(data, scale).astype(np.float32) * np.float32(scale)
    return data


@pytest.mark.parametrize("protocol", ["text", "frame"])
def test_takes_hold_the_replayed_samples(replay_file, tmp_path, protocol):
    sim, port = _simulate(replay_file, protocol, speed=10)
    try:
        rec = _record(port, tmp_path / "takes", "--seconds", "8", "--takes", "2")
        out, err = rec.communicate(timeout=120)
    finally:
        sim.send_signal(signal.SIGTERM)
        device = sim.communicate(timeout=10)[0]  # its summary: bytes it could not deliver
    assert rec.returncode == 0, err
    takes = [json.loads(line) for line in out.splitlines()]
    assert len(takes) == 2 and all(t["samples"] == 400 and t["rate"] == RATE for t in takes)
    assert takes[0]["counters"]["garbled"] == 0
    sent = _sent(replay_file, protocol)
    recs = sorted(load_folder(tmp_path / "takes"), key=lambda r: r.name)
    assert [r.label_names[r.labels[0]] for r in recs] == ["walking", "walking"]
    assert all(r.subject == 7 and r.rate == RATE for r in recs)
    np.testing.assert_array_equal(recs[0].data, sent[:400], err_msg=device + err)  # the stream's start
    # the second take is a later stretch of the same stream, sample for sample
    start = int(np.flatnonzero((sent == recs[1].data[0]).all(1))[0])
    np.testing.assert_array_equal(recs[1].data, sent[start:start + 400], err_msg=device + err)
    assert start >= 400


@pytest.mark.parametrize("protocol", ["text", "frame"])
def test_disconnect_mid_take_keeps_the_take(replay_file, tmp_path, protocol):
    sim, port = _simulate(replay_file, protocol, speed=2)
    rec = _record(port, tmp_path / "takes", "--wait", "0.5")
    assert "take 1 of 'walking' started" in rec.stderr.readline()
    time.sleep(1.5)
    sim.kill()  # the cable goes, mid-take
    sim.wait(timeout=10)
    out, err = rec.communicate(timeout=60)
    assert rec.returncode == 0, err
    (take,) = [json.loads(line) for line in out.splitlines()]
    assert take["ended_by"] == "disconnect" and take["samples"] > 20
    (r,) = load_folder(tmp_path / "takes")
    sent = _sent(replay_file, protocol)
    np.testing.assert_array_equal(r.data, sent[:r.n_samples])
    assert not [p for p in os.listdir(tmp_path / "takes") if p.startswith(".")]  # no temp left


def test_bad_arguments_are_one_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "edgehar", "record", "--port", str(tmp_path / "nope"),
                        "--label", "walking", "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert r.returncode == 2 and "no such serial port" in r.stderr and r.stderr.count("\n") == 1
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "edgehar.json").write_text("{}")
    r = subprocess.run([sys.executable, "-m", "edgehar", "record", "--port", "x", "--label", "a b",
                        "--out", str(tmp_path / "foreign")], capture_output=True, text=True)
    assert r.returncode == 2 and "'a b'" in r.stderr
    r = subprocess.run([sys.executable, "-m", "edgehar", "record", "--port", "x", "--label", "a",
                        "--out", str(tmp_path / "foreign")], capture_output=True, text=True)
    assert r.returncode == 2 and "did not write" in r.stderr
