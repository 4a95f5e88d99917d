"""Hostile and careless input to the live bridge and the recording loaders (issue 16): every
error a user can cause is one line with exit 2, no user file is overwritten or deleted, and a
noisy or mislabelled stream still yields the windows it can form."""

import argparse
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgehar.bridge import flags, frames
from edgehar.cli_types import MAX_INT, finite_float, nonneg_float, positive_float, positive_int
from edgehar.bridge.live import PredictionLog
from edgehar.bridge.ring import Ring
from edgehar.bridge.serial_reader import SILENT_BYTES, SerialReader
from edgehar.bridge.virtual_device import VirtualDevice, format_line
from edgehar.cli import main
from edgehar.errors import UserError
from tiny_har_models import LABELS, built_models


def _one_line_error(capsys, argv, *match):
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert len(err) == 1 and err[0].startswith("edgehar: error:") and "Traceback" not in err[0], err
    for m in match:
        assert m in err[0], err
    return err[0]


def _argparse_error(capsys, argv, *match):
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and "Traceback" not in "\n".join(err)
    for m in match:
        assert m in err[-1], err
    return err[-1]


# -- numeric flags, at parse time -----------------------------------------------------------
@pytest.mark.parametrize("argv, flag", [
    (["device", "simulate", "--replay", "x.csv", "--speed", "inf"], "--speed"),
    (["device", "simulate", "--replay", "x.csv", "--faults", "drop=150%"], "--faults"),
    (["device", "simulate", "--replay", "x.csv", "--faults", "down=nan"], "--faults"),
    (["device", "simulate", "--replay", "x.csv", "--faults", "disconnect=-1"], "--faults"),
    (["device", "simulate", "--replay", "x.csv", "--frame-samples", "0"], "--frame-samples"),
    (["live", "--port", "p", "--model", "m", "--threads", "0"], "--threads"),
])
def test_bad_flags_are_argparse_errors(capsys, argv, flag):
    _argparse_error(capsys, argv, f"argument {flag}")


_VALIDATORS = [(finite_float, lambda v: math.isfinite(v)),
               (positive_float, lambda v: math.isfinite(v) and v > 0),
               (nonneg_float, lambda v: math.isfinite(v) and v >= 0),
               (flags.rate_hz, lambda v: flags.MIN_RATE_HZ <= v <= flags.MAX_RATE_HZ)]


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr), st.text(max_size=12)))
def test_numeric_flag_validators_accept_exactly_their_range(text):
    """Any text: a validator returns a value in its range or raises ArgumentTypeError."""
    for check, ok in _VALIDATORS:
        try:
            value = check(text)
        except argparse.ArgumentTypeError:
            try:
                v = float(text)
            except ValueError:
                continue
            assert not ok(v), (check.__name__, text)
        else:
            assert ok(value) and value == float(text), (check.__name__, text)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.integers(-10**20, 10**20).map(str), st.text(max_size=8)))
def test_integer_flag_validators(text):
    for check, lo, hi in [(positive_int, 1, MAX_INT), (flags.frame_samples, 1, 255)]:
        try:
            value = check(text)
        except argparse.ArgumentTypeError:
            try:
                assert not lo <= int(text) <= hi
            except ValueError:
                pass
        else:
            assert isinstance(value, int) and lo <= value <= hi


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["garbage", "drop", "burst", "err", "down", "seed", "disconnect"]),
       st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr), st.integers().map(str),
                 st.text(max_size=6)))
def test_fault_spec_values_are_checked(key, value):
    try:
        f = flags.faults(f"{key}={value}")
    except argparse.ArgumentTypeError:
        return
    for p in (f.garbage, f.drop, f.burst, f.err):
        assert 0.0 <= p <= 1.0
    assert 0.0 <= f.down <= 3600 and f.seed >= 0 and all(0 <= t < math.inf for t in f.disconnect)
    np.random.default_rng(f.seed)  # a seed numpy takes


# -- the prediction log ---------------------------------------------------------------------
def test_log_survives_a_port_that_cannot_be_opened(capsys, tmp_path):
    keep = tmp_path / "keep.csv"
    previous = "time,segment,start,label,smoothed,delay_ms,p_walking\n1.0,0,0,walking,walking,1.0,1.0\n"
    keep.write_text(previous)  # an earlier run's log (any other file is never replaced)
    _one_line_error(capsys, ["live", "--port", str(tmp_path / "ttyACM9"), "--model",
                             str(built_models()["onnx"]), "--log", str(keep)], "no such serial port")
    assert keep.read_text() == previous
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.csv"]  # no staging left


def test_log_refuses_non_regular_files(capsys, tmp_path):
    fifo, folder = tmp_path / "pipe.csv", tmp_path / "dir.jsonl"
    os.mkfifo(fifo)
    folder.mkdir()
    for target in (fifo, folder):
        _argparse_error(capsys, ["live", "--port", "p", "--model", "m", "--log", str(target)],
                        "not a regular file")
        with pytest.raises(UserError, match="not a regular file"):
            PredictionLog(target, LABELS)
    assert fifo.exists() and folder.is_dir()


def test_log_is_staged_and_moved_into_place(tmp_path):
    keep = tmp_path / "keep.jsonl"
    keep.write_text("old\n")
    stale = tmp_path / ".keep.jsonl.999999999.part"  # a killed run's staging (no such pid)
    stale.write_text("x")
    log = PredictionLog(keep, LABELS)
    assert not stale.exists() and keep.read_text() == "old\n"
    log.discard()
    assert keep.read_text() == "old\n" and sorted(os.listdir(tmp_path)) == ["keep.jsonl"]
    log = PredictionLog(keep, LABELS)
    log.close()
    assert keep.read_text() == "" and sorted(os.listdir(tmp_path)) == ["keep.jsonl"]


# -- the simulator's link -------------------------------------------------------------------
def test_link_never_replaces_a_file_or_folder(capsys, tmp_path):
    p = tmp_path / "p.txt"
    p.write_text("keep me")
    other = tmp_path / "to-user-file"
    other.symlink_to(p)
    rec = str(tmp_path / "x.csv")
    for link, what in [(p, "existing file"), (other, "symlink to"), (tmp_path, "is a folder"),
                       (tmp_path / "no" / "dv", "no such folder")]:
        _argparse_error(capsys, ["device", "simulate", "--replay", rec, "--link", str(link)], what)
        with pytest.raises(UserError):
            VirtualDevice(np.zeros((10, 3)), 50, link=str(link))
    assert p.read_text() == "keep me" and os.readlink(other) == str(p)


def test_dangling_pty_link_is_replaced_and_named_by_live(capsys, tmp_path):
    link = tmp_path / "dv"
    link.symlink_to("/dev/pts/987654")  # what a simulator killed with SIGKILL leaves
    _one_line_error(capsys, ["live", "--port", str(link), "--model", str(built_models()["onnx"])],
                    "is a link to /dev/pts/987654, which is gone")
    dev = VirtualDevice(np.zeros((10, 3)), 50, link=str(link))
    try:
        assert os.readlink(link) != "/dev/pts/987654" and os.path.exists(link)
    finally:
        dev.close()
    assert not os.path.lexists(link)


def _simulator(args, **kw):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "edgehar", "device", "simulate", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, **kw)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signals_end_the_simulator_cleanly(tmp_path, sig):
    rec = tmp_path / "rec.csv"
    rec.write_text("t,acc_x,acc_y,acc_z\n" + "".join(f"{i / 50},0,0,1\n" for i in range(500)))
    link = tmp_path / "dv"
    sim = _simulator(["--replay", str(rec), "--link", str(link)])
    assert sim.stdout.readline().strip() == str(link)
    assert os.path.islink(link)
    sim.send_signal(sig)
    out, err = sim.communicate(timeout=30)
    assert sim.returncode == 0 and "Traceback" not in err, err
    assert not os.path.lexists(link)


def test_ctrl_c_ends_live_cleanly(tmp_path):
    dev = VirtualDevice(np.zeros((100_000, 3), np.float32), 50, channels=("acc_x", "acc_y", "acc_z"),
                        speed=1).start()
    log = tmp_path / "log.csv"
    try:
        live = subprocess.Popen([sys.executable, "-m", "edgehar", "live", "--port", dev.path, "--model",
                                 str(built_models()["onnx"]), "--log", str(log), "--json"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.time() + 60
        while not dev.sent and time.time() < deadline:  # until live has opened the port
            time.sleep(0.1)
        live.send_signal(signal.SIGINT)
        out, err = live.communicate(timeout=60)
    finally:
        dev.stop()
    assert live.returncode == 0 and "Traceback" not in err, err
    assert '"summary"' in out.splitlines()[-1]
    assert log.read_text().startswith("time,segment,start")  # the log was moved into place
    assert [p.name for p in tmp_path.iterdir()] == ["log.csv"]


# -- what a device declares -----------------------------------------------------------------
class DeclaringDevice(VirtualDevice):
    """A device whose `# edgehar` line says whatever the test wants."""

    def __init__(self, *a, declaration: str, **kw):
        self.declaration = declaration
        super().__init__(*a, **kw)

    def _preamble(self) -> bytes:
        return b"\r\n" + self.declaration.encode() + b"\r\n"


@pytest.mark.parametrize("rate", ["0", "nan", "-50", "1e9", "fast"])
def test_a_bad_declared_rate_is_one_line(capsys, rate):
    data = np.zeros((2000, 3), np.float32)
    dev = DeclaringDevice(data, 50, speed=20, declaration=f"# edgehar rate={rate} channels=acc_x,acc_y,acc_z")
    dev.start()
    try:
        line = _one_line_error(capsys, ["live", "--port", dev.path, "--model", str(built_models()["onnx"]),
                                        "--duration", "20"], dev.path, f"declared rate={rate}")
        assert "Hz" in line or "not a number" in line
    finally:
        dev.stop()


def test_a_gyroscope_stream_does_not_feed_an_accelerometer_model(capsys):
    data = np.zeros((2000, 3), np.float32)
    dev = VirtualDevice(data, 50, channels=("gyro_x", "gyro_y", "gyro_z"), speed=20).start()
    try:
        _one_line_error(capsys, ["live", "--port", dev.path, "--model", str(built_models()["onnx"]),
                                 "--duration", "20"], "gyro_x,gyro_y,gyro_z", "another sensor")
    finally:
        dev.stop()


# -- protocol detection, byte for byte ------------------------------------------------------
def _reader(protocol):
    dev = VirtualDevice(np.zeros((10, 3)), 50)  # only a port to open
    reader = SerialReader(dev.path, Ring(capacity=100_000), protocol=protocol)
    reader.close()
    dev.close()
    return reader


def _feed(reader, stream: bytes, chunk: int = 37):
    for i in range(0, len(stream), chunk):
        reader._feed(stream[i:i + chunk], i / 1000)
    return np.concatenate([b.values for b in reader.ring.get_all(timeout=0)] or [np.zeros((0, 3))])


def _noisy_text(n=400, seed=5):
    """A declared text stream whose garbage holds 0x00 bytes from its first line on."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3)).astype(np.float32)
    out = [b"\r\n# edgehar rate=50 channels=acc_x,acc_y,acc_z\r\n"]
    for i, row in enumerate(x):
        line = format_line(row)
        if i % 2 == 0:  # half the lines garbled; the junk can never parse as numbers
            line = line[:2] + b"\x00?" + line[2:]
        out.append(line)
    return b"".join(out), x[1::2]


def test_auto_recovers_from_a_zero_byte_in_a_noisy_text_stream(capsys):
    stream, clean = _noisy_text()
    auto = _reader("auto")
    got = _feed(auto, stream)
    text = _feed(_reader("text"), stream)
    assert auto.protocol == "text" and "switching to --protocol text" in capsys.readouterr().err
    np.testing.assert_array_equal(got, text)  # every reading text mode reads, no window lost
    np.testing.assert_array_equal(got, clean)


def _frame_stream(n_frames=200):
    x = np.random.default_rng(1).integers(-2000, 2000, (n_frames * 5, 3)).astype(np.int16)
    return b"".join(frames.encode_frame(i, i * 100_000, 20_000, 1 / 1024, x[i * 5:(i + 1) * 5])
                    for i in range(n_frames)), x.astype(np.float32) / 1024


def test_auto_switches_to_frames_after_a_text_looking_start(capsys):
    stream, x = _frame_stream()
    auto = _reader("auto")
    got = _feed(auto, b"hello from the bootloader, version one point two, ready\r\n" * 2 + stream)
    assert auto.protocol == "frame" and "switching to --protocol frame" in capsys.readouterr().err
    np.testing.assert_array_equal(got, x[5:])  # the first frame is cut by resync


def test_a_wrong_protocol_says_so(capsys):
    stream, _ = _frame_stream()
    assert len(stream) > SILENT_BYTES
    reader = _reader("text")
    assert len(_feed(reader, stream)) == 0
    assert "no text lines decoded in 4096 bytes: is the device sending frames? try --protocol frame" \
        in capsys.readouterr().err
    text, _ = _noisy_text(2000)
    reader = _reader("frame")
    assert len(_feed(reader, text.replace(b"\x00", b"?"))) == 0
    assert "no frames decoded in 4096 bytes: is the device sending text lines? try --protocol text" \
        in capsys.readouterr().err


# -- replayed and loaded files --------------------------------------------------------------
def _csv(tmp_path, body: str, name="rec.csv"):
    path = tmp_path / name
    path.write_text("time,acc_x,acc_y,acc_z\n" + body)
    return path


_GOOD = "".join(f"{i / 50:.2f},0.1,0.2,1.0\n" for i in range(100))


@pytest.mark.parametrize("body, match", [
    ("".join(f"{i / 50},nan,nan,nan\n" for i in range(50)), "line 2, column 'acc_x': nan is not a finite"),
    (_GOOD + "2.00,1e308,0,0\n", "line 102, column 'acc_x': 1e+308 is beyond the float32 range"),
    (_GOOD + "2.00,0," + "1" * 200_000 + ",0\n", "line 102, column 'acc_y': a cell of 200000 characters"),
    (_GOOD + "2.00,0,\x001,0\n", "line 102: a NUL byte"),
    (_GOOD + "1.5,0,0,0\n", "line 102, column 'time': time goes back"),
    ("".join(f"{i * 1e-6:.6f},0,0,1\n" for i in range(100)), "1e+06 Hz, above the 10000 Hz"),
    (_GOOD + "inf,0,0,0\n", "line 102, column 'time'"),
], ids=["all-nan", "1e308", "200k-cell", "nul", "time-back", "1MHz", "inf-time"])
def test_hostile_replay_csvs_are_one_line(capsys, tmp_path, body, match):
    path = _csv(tmp_path, body)
    _one_line_error(capsys, ["device", "simulate", "--replay", str(path)], str(path), match)


def test_a_session_jump_back_is_not_an_error(tmp_path):
    from edgehar.data.csvfile import load_csv

    # a log stitched from two sessions (as the published Bangle.js files are) jumps back hours
    rec = load_csv(_csv(tmp_path, _GOOD + "".join(f"{i / 50 - 3600:.2f},0,0,1\n" for i in range(50))))
    assert rec.rate == 50 and rec.n_samples == 150 and rec.meta["time_jumps"] == 1


def _hapt(root: Path, labels: str, acc_extra: str = "") -> Path:
    raw = root / "RawData"
    raw.mkdir(parents=True)
    (root / "activity_labels.txt").write_text("".join(f"{i} ACT{i}\n" for i in range(1, 13)))
    rows = "".join(f"{0.01 * i:.3f} 0.1 0.9\n" for i in range(300))
    (raw / "acc_exp01_user01.txt").write_text(rows + acc_extra)
    (raw / "gyro_exp01_user01.txt").write_text(rows + ("0 0 0\n" if acc_extra else ""))
    (raw / "labels.txt").write_text(labels)
    return root


@pytest.mark.parametrize("labels, match", [
    ("1 1 5 1 100\n1 1 13 101 200\n", "labels.txt: line 2: activity 13"),
    ("1 1 0 1 100\n", "labels.txt: line 1: activity 0"),
    ("1 1 5 -5000 100\n", "labels.txt: line 1: segment -5000-100"),
    ("1 1 5 1 100\n1 1 5 301 400\n", "labels.txt: line 2: segment 301-400"),
    ("1 1 5 1 nan\n", "labels.txt: line 1, column 5: nan is not a finite"),
])
def test_hapt_bad_label_rows(capsys, tmp_path, labels, match):
    root = _hapt(tmp_path / "hapt", labels)
    _one_line_error(capsys, ["data", "summary", "hapt", "--root", str(root)], match)


def test_hapt_nan_sample(capsys, tmp_path):
    root = _hapt(tmp_path / "hapt", "1 1 5 1 100\n", acc_extra="nan 0 1\n")
    _one_line_error(capsys, ["data", "summary", "hapt", "--root", str(root)],
                    "acc_exp01_user01.txt: line 301, column 1: nan is not a finite")


def _bangle(folder: Path, labels: str, extra: str = "") -> Path:
    folder.mkdir(parents=True)
    rows = "".join(f"00:00:{i / 50:06.3f},0.1,0.2,0.9;\n" for i in range(1000))
    (folder / "acc_exp01_user01.txt").write_text("time,acc_x,acc_y,acc_z\n" + rows + extra)
    (folder / "classnames.csv").write_text("0 running\n1 walking\n2 sitting\n3 lying\n")
    (folder / "labels.csv").write_text(labels)
    return folder


@pytest.mark.parametrize("labels, match", [
    ("1 1 1 1 500\n1 1 7 501 1000\n", "labels.csv: line 2: class 7"),
    ("1 1 1 -5000 500\n", "labels.csv: line 1: segment -5000-500"),
    ("1 1 1 1 500\n1 1 2 2000 3000\n", "labels.csv: line 2: segment 2000-3000"),
])
def test_banglejs_bad_label_rows(capsys, tmp_path, labels, match):
    root = _bangle(tmp_path / "b", labels)
    _one_line_error(capsys, ["data", "summary", "banglejs", "--root", str(root)], match)
    _one_line_error(capsys, ["device", "simulate", "--replay", str(root / "acc_exp01_user01.txt")], match)


def test_banglejs_overshoot_by_one_row_is_still_accepted(tmp_path):
    from edgehar.data.banglejs import load_banglejs

    rec = load_banglejs(_bangle(tmp_path / "b", "1 1 1 1 500\n1 1 2 501 1001\n"))[0]
    assert (rec.labels == 2).sum() == 500


def test_banglejs_inf_sample(capsys, tmp_path):
    root = _bangle(tmp_path / "b", "1 1 1 1 500\n", extra="00:00:20.000,inf,0,1;\n")
    _one_line_error(capsys, ["data", "summary", "banglejs", "--root", str(root)],
                    "line 1002, column 'acc_x': inf is not a finite")


def test_calibration_never_writes_nan_windows(tmp_path):
    from edgehar.calib.build import CalibSet, save_calib

    x = np.zeros((4, 128, 3), np.float32)
    x[2, 5, 1] = np.nan
    calib = CalibSet(x, np.zeros(4, np.int64), np.zeros(4, np.int64), {})
    with pytest.raises(UserError, match="NaN"):
        save_calib(tmp_path / "c.npz", calib)
    assert list(tmp_path.iterdir()) == []
