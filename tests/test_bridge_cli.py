"""`edgehar live` and `edgehar device simulate` as a user runs them: one-line errors with exit
status 2 for a wrong port, a busy port, a model that does not fit the stream; and the two
commands talking to each other through a pty, faults included."""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import serial

from edgehar.bridge.virtual_device import VirtualDevice
from edgehar.cli import main
from tiny_har_models import built_models


def _one_line_error(capsys, argv, match):
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("edgehar: error:") and match in err[0], err
    return err[0]


def test_wrong_port(capsys, tmp_path):
    _one_line_error(capsys, ["live", "--port", str(tmp_path / "ttyACM9"), "--model",
                             str(built_models()["onnx"])], "no such serial port")


def test_busy_port(capsys):
    dev = VirtualDevice(np.zeros((10, 3)), 50)
    try:
        with serial.Serial(dev.path, exclusive=True):
            _one_line_error(capsys, ["live", "--port", dev.path, "--model", str(built_models()["onnx"])],
                            "busy")
    finally:
        dev.close()


@pytest.mark.parametrize("protocol", ["text", "frame"])
def test_channel_count_mismatch(capsys, protocol):
    six = np.random.default_rng(0).standard_normal((2000, 6)).astype(np.float32)
    dev = VirtualDevice(six, 50, protocol=protocol, speed=20).start()
    try:
        t = time.perf_counter()
        line = _one_line_error(capsys, ["live", "--port", dev.path, "--model", str(built_models()["onnx"]),
                                        "--duration", "20"], "stream has 6 channels")
        assert "expects 3 (acc_x, acc_y, acc_z)" in line
        assert time.perf_counter() - t < 15  # found at once, not at the end of --duration
    finally:
        dev.stop()


def test_bad_arguments_are_one_line_errors(capsys, tmp_path):
    onnx_path = str(built_models()["onnx"])
    _one_line_error(capsys, ["live", "--port", "/dev/null", "--model", str(tmp_path / "x.onnx")], "no such")
    _one_line_error(capsys, ["live", "--port", "/dev/null", "--model", onnx_path, "--smooth", "ema:7"],
                    "bad smoothing")
    _one_line_error(capsys, ["device", "simulate", "--replay", str(tmp_path / "x.txt")], "no such")
    with pytest.raises(SystemExit) as e:  # flags are checked at parse time: an argparse error
        main(["device", "simulate", "--replay", onnx_path, "--faults", "gremlins=3"])
    assert e.value.code == 2 and "unknown fault" in capsys.readouterr().err.splitlines()[-1]
    dev = VirtualDevice(np.zeros((10, 3)), 50)
    try:
        _one_line_error(capsys, ["live", "--port", dev.path, "--model", onnx_path, "--log",
                                 str(tmp_path / "no" / "such" / "dir" / "log.csv")], "cannot write the log")
    finally:
        dev.close()


@pytest.mark.data
def test_simulate_and_live_commands_with_faults(data_root, tmp_path):
    rec = data_root / "banglejs_wrist" / "acc_exp01_user01.txt"
    link = tmp_path / "edgehar-dev"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    sim = subprocess.Popen([sys.executable, "-m", "edgehar", "device", "simulate", "--replay", str(rec),
                            "--start", "280", "--seconds", "50", "--speed", "25", "--protocol", "frame",
                            "--faults", "garbage=1%,drop=1%,disconnect=25,down=0.3,seed=2",
                            "--link", str(link), "--json"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        info = json.loads(sim.stdout.readline())
        assert info["port"] == str(link) and info["rate"] == 50 and info["samples"] == 2500
        log = tmp_path / "pred.jsonl"
        live = subprocess.run([sys.executable, "-m", "edgehar", "live", "--port", str(link), "--model",
                               str(built_models()["onnx"]), "--duration", "8", "--log", str(log), "--json"],
                              capture_output=True, text=True, env=env, timeout=120)
        assert live.returncode == 0, live.stderr
        lines = [json.loads(x) for x in live.stdout.splitlines()]
        summary = lines[-1]["summary"]
        preds = lines[:-1]
        assert summary["reconnects"] == 1 and summary["garbled"] > 0 and summary["windows"] == len(preds)
        assert summary["windows"] > 20 and summary["delay_ms"]["p99"] is not None
        logged = [json.loads(x) for x in log.read_text().splitlines()]
        assert [p["start"] for p in logged] == [p["start"] for p in preds]
        assert set(logged[0]["probs"]) == {"running", "walking", "sitting", "lying"}
        out, _ = sim.communicate(timeout=30)
        assert sim.returncode == 0
        dev_summary = json.loads(out.splitlines()[-1])["summary"]
        assert dev_summary["disconnects"] == 1 and dev_summary["connections"] == 2
    finally:
        if sim.poll() is None:
            sim.terminate()
            sim.wait(timeout=10)
    assert not link.exists()  # the simulator removes its link when done
