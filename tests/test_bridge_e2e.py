"""End to end: the virtual device replays a real Bangle.js recording through a pty, `live`
reads it, and its windows and predictions must match offline inference on the same samples;
with faults it must reconnect, count them, and still form every window it could."""

import time

import numpy as np
import pytest

from edgehar.bridge.live import LiveSession
from edgehar.bridge.virtual_device import Faults, VirtualDevice
from edgehar.data.windows import window_starts
from edgehar.runtime import Predictor
from tiny_har_models import bangle_card, export_onnx, keras_tflite, train_torch_model

pytestmark = pytest.mark.data

START_S, SECONDS, SPEED = 270, 80, 25  # crosses the lying -> running boundary at 300 s


@pytest.fixture(scope="module")
def bangle(data_root):
    from edgehar.data.banglejs import load_banglejs

    recs = load_banglejs(data_root / "banglejs_wrist")
    assert [r.subject for r in recs] == [1, 2] and recs[0].rate == 50
    return recs


@pytest.fixture(scope="module")
def models(bangle, tmp_path_factory):
    """A tiny CNN trained briefly on user 2, as ONNX (float) and TFLite (int8)."""
    from edgehar.data.windows import make_windows

    train = make_windows([bangle[1]], 128, 64).labelled()
    mean = train.x.reshape(-1, 3).mean(0).tolist()
    std = train.x.reshape(-1, 3).std(0).tolist()
    card = bangle_card(norm_mean=mean, norm_std=std, labels=list(bangle[1].label_names))
    x = card.normalise(train.x)
    net = train_torch_model(x, train.y)
    root = tmp_path_factory.mktemp("bridge-models")
    return {"onnx": export_onnx(net, card, root / "har.onnx"),
            "tflite_int8": keras_tflite(card, root / "har_int8.tflite", int8=True, torch_weights=net, calib=x)}


def replay(data, model, protocol, tmp_path, faults=None, speed=SPEED, rate=50.0):
    """Run the device and a live session side by side until the replay ends."""
    dev = VirtualDevice(data, rate, ("acc_x", "acc_y", "acc_z"), ("g", "g", "g"), protocol, speed,
                        Faults.parse(faults), link=str(tmp_path / "dev"))
    session = LiveSession(dev.path, model, smooth="none", keep=True)
    dev.start()
    state = {"done": None}

    def idle():
        if dev.finished and state["done"] is None:
            state["done"] = time.perf_counter()
        if state["done"] is not None and time.perf_counter() - state["done"] > 0.5:
            session.stop()

    try:
        session.run(duration=120, on_idle=idle)
    finally:
        dev.stop()
    return dev, session


@pytest.mark.parametrize("protocol,model", [("text", "onnx"), ("frame", "tflite_int8")])
def test_live_matches_offline(bangle, models, protocol, model, tmp_path):
    rec = bangle[0]
    data = rec.data[START_S * 50:(START_S + SECONDS) * 50]
    dev, session = replay(data, models[model], protocol, tmp_path)
    assert len(dev.sent) == 1 and len(dev.sent[0]) == len(data)  # nothing lost on the way

    # offline: window the same recording samples with the card, predict
    card = session.card
    predictor = Predictor(models[model])
    starts = window_starts(len(data), card.window, card.hop)
    offline = predictor.predict_proba(np.stack([data[s:s + card.window] for s in starts]))

    live = {p.start: p for p in session.predictions}
    assert sorted(live) == starts.tolist()  # the same windows, by sample index
    assert {p.segment for p in session.predictions} == {0}
    live_probs = np.stack([live[s].probs for s in starts])
    agree = (live_probs.argmax(1) == offline.argmax(1)).mean()
    assert agree >= 0.99, f"{protocol}: live agrees with offline on {agree:.1%} of windows"
    assert len(set(offline.argmax(1))) >= 2  # the replay spans two activities
    tol = 1e-5 if protocol == "text" else 0.05  # frame mode sends int16: quantisation noise only
    assert np.abs(live_probs - offline).max() <= tol
    c = session.counts()
    assert c["garbled"] == c["dropped"] == c["reconnects"] == c["overruns"] == 0
    assert c["delay_ms"]["p99"] is not None


@pytest.mark.parametrize("device_rate", [100.0, 25.0])
def test_live_resamples_like_offline(bangle, models, device_rate, tmp_path):
    """A device at another rate: live resamples to the card's 50 Hz as the offline path does."""
    from edgehar.data.resample import resample_array

    data = resample_array(bangle[0].data[START_S * 50:(START_S + 60) * 50], 50.0, device_rate)
    dev, session = replay(data, models["onnx"], "frame", tmp_path, rate=device_rate)
    assert len(dev.sent[0]) == len(data)
    card = session.card
    at_card_rate = resample_array(data, device_rate, card.rate)  # the offline path
    starts = window_starts(len(at_card_rate), card.window, card.hop)
    offline = Predictor(models["onnx"]).predict_proba(np.stack([at_card_rate[s:s + card.window] for s in starts]))
    live = {p.start: p.probs for p in session.predictions}
    # the stream's last ~0.2 s wait for samples that never come (filter delay): at most one window
    assert set(live) <= set(starts.tolist()) and len(live) >= len(starts) - 1
    matched = [i for i, s in enumerate(starts) if s in live]
    live_probs = np.stack([live[starts[i]] for i in matched])
    assert (live_probs.argmax(1) == offline[matched].argmax(1)).mean() >= 0.99
    # away from the stream's start (edge padding differs) the probabilities are the offline ones
    assert np.abs(live_probs[1:] - offline[matched][1:]).max() < 0.02


def _expected_windows(dev, protocol, window=128, hop=64, max_gap=12.5):
    """Windows a perfect bridge forms from what the device delivered intact."""
    if protocol == "text":  # no timestamps: each connection is one segment of its lines
        lengths = [len(c) for c in dev.sent if c]
    else:  # timestamps: gaps up to max_gap are bridged, longer ones split segments
        idx = np.concatenate([np.asarray(c) for c in dev.sent if c])
        cuts = np.flatnonzero(np.diff(idx) - 1 > max_gap) + 1
        lengths = [int(seg[-1] - seg[0] + 1) for seg in np.split(idx, cuts)]
    return sum(len(window_starts(n, window, hop)) for n in lengths)


@pytest.mark.parametrize("protocol", ["text", "frame"])
def test_live_survives_faults(bangle, models, protocol, tmp_path):
    data = bangle[0].data[:90 * 50]
    faults = "garbage=1%,drop=1%,err=0.5%,burst=0.5%,disconnect=40,down=0.3,seed=3"
    dev, session = replay(data, models["onnx"], protocol, tmp_path, faults, speed=30)
    c = session.counts()
    assert dev.counts["disconnects"] == 1 and len(dev.sent) == 2
    assert c["reconnects"] == 1
    assert c["garbled"] >= dev.counts["garbage"] > 0
    assert c["device_errors"] == dev.counts["errors"] > 0
    assert c["truncated"] >= 1  # the line/frame cut by the unplug
    if protocol == "frame":
        assert c["dropped"] >= 1 and c["filled"] > 0
    assert c["windows"] == _expected_windows(dev, protocol) > 0
    assert c["segments"] >= 2
