"""LiveSession pieces without a replay: channel order and units from the device's declaration,
the terminal view (ANSI panel on a TTY, one line per prediction otherwise) and the logs."""

import csv
import io
import json

import numpy as np
import pytest

from edgehar.bridge.live import LiveSession, Prediction, PredictionLog, TerminalView
from edgehar.bridge.stream import Block
from edgehar.bridge.virtual_device import VirtualDevice
from edgehar.data.resample import G
from edgehar.errors import UserError
from edgehar.runtime import Predictor
from tiny_har_models import built_models, random_windows


@pytest.fixture()
def session():
    dev = VirtualDevice(np.zeros((10, 3)), 50)  # just a port to open; nothing streamed
    s = LiveSession(dev.path, built_models()["onnx"], smooth="vote:3", keep=True)
    yield s
    s.reader.close()
    dev.close()


def test_declared_channel_order_and_units_are_mapped_to_the_card(session):
    x = random_windows(session.card, 1)[0]  # (128, 3) acc_x, acc_y, acc_z in g
    shuffled = x[:, [2, 0, 1]] * G  # the device sends z, x, y in m/s^2
    preds = session._process(Block(shuffled, 50.0, 0.0, None, 0, ("acc_z", "acc_x", "acc_y"),
                                   ("m/s^2",) * 3))
    assert len(preds) == 1 and preds[0].start == 0
    expected = Predictor(built_models()["onnx"]).predict_proba(x[None])[0]
    np.testing.assert_allclose(preds[0].probs, expected, atol=1e-5)


def test_units_that_cannot_convert_are_a_user_error(session):
    with pytest.raises(UserError, match="units"):
        session._process(Block(np.zeros((5, 3), np.float32), 50.0, 0.0, units=("rad/s",) * 3))


def _pred(label, start=0):
    probs = np.full(4, 0.1, np.float32)
    probs[label] = 0.7
    return Prediction(0, start, label, probs, label, arrival=1.0, done=1.002)


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_terminal_view_tty_panel_and_plain_lines(session):
    tty = _Tty()
    view = TerminalView(session, tty)
    view.prediction(_pred(1))
    view._next_draw = 0
    view.prediction(_pred(2))
    text = tty.getvalue()
    assert "\x1b[2K" in text and "\x1b[" in text and "sitting" in text and "walking" in text
    assert "reconnects 0" in text
    plain = io.StringIO()
    view = TerminalView(session, plain)
    view.prediction(_pred(3, 64))
    (line,) = plain.getvalue().splitlines()
    assert "lying" in line and "\x1b" not in line and "64" in line and "2.00 ms" in line
    js = io.StringIO()
    TerminalView(session, js, json_lines=True).prediction(_pred(0, 128))
    d = json.loads(js.getvalue())
    assert d["label"] == "running" and d["start"] == 128 and abs(sum(d["probs"].values()) - 1.0) < 0.01


def test_csv_and_jsonl_logs(tmp_path):
    labels = ["running", "walking", "sitting", "lying"]
    for name in ("log.csv", "log.jsonl"):
        log = PredictionLog(tmp_path / name, labels)
        log.write(_pred(1, 0))
        log.write(_pred(2, 64))
        log.close()
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert [r["label"] for r in rows] == ["walking", "sitting"] and rows[1]["start"] == "64"
    assert float(rows[0]["p_walking"]) == pytest.approx(0.7)
    lines = [json.loads(x) for x in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [x["smoothed"] for x in lines] == ["walking", "sitting"]
    with pytest.raises(UserError, match="cannot write"):
        PredictionLog(tmp_path / "missing" / "log.csv", labels)


def test_text_rate_is_measured_when_the_device_does_not_declare_it():
    from edgehar.bridge.serial_reader import snap_rate

    assert (snap_rate(49.2), snap_rate(103.0), snap_rate(77.0)) == (50.0, 104.0, 77.0)
    data = np.random.default_rng(0).normal(0, 0.3, (400, 3)).astype(np.float32)
    dev = VirtualDevice(data, 50, protocol="text", speed=1.0, declare=False).start()
    try:
        s = LiveSession(dev.path, built_models()["onnx"], keep=True)
        s.run(duration=3.5)
    finally:
        dev.stop()
    assert s.reader.rate == 50.0 and s.reader.info == {}
    assert [p.start for p in s.predictions][:1] == [0]  # the held samples were released, none lost
