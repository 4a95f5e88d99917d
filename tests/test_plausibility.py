"""Stream checks (`edgehar/data/plausibility.py`): units from the magnitude at rest, gravity-free
streams from the 10 s mean, the gravity-vector sign against the card; `data check` records
them in its JSON and warns without changing its exit status. Also: `--labels` needs two labels.

Figures on real data behind the thresholds: benchmarks/bench_plausibility.py."""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

import numpy as np
import pytest
from scipy.signal import butter, sosfiltfilt

from edgehar.data.plausibility import accelerometer_triples, check_stream, gravity_share, rest_magnitude
from edgehar.data.resample import G

RATE = 50.0
ACC = ("acc_x", "acc_y", "acc_z")


def wrist_stream(seconds: float = 60.0, rest: float = 10.0, seed: int = 0) -> np.ndarray:
    """(n, 3) specific force in g: `rest` seconds still, then arm swing (a slowly turning
    gravity direction) with 2 Hz steps and sensor noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    moving = t >= rest
    tilt = np.where(moving, 0.5 * np.sin(2 * np.pi * 0.9 * t), 0.0)
    up = np.stack([0.45 + 0.3 * np.sin(tilt), -0.4 + 0.2 * np.cos(tilt), 0.8 * np.cos(tilt)], axis=1)
    up /= np.linalg.norm(up, axis=1, keepdims=True)
    steps = np.where(moving, 0.3, 0.0)[:, None] * np.sin(2 * np.pi * 2.0 * t)[:, None] * [0.3, 1.0, 0.6]
    return (up + steps + rng.normal(0, 0.005, (len(t), 3))).astype(np.float32)


def card_like(x: np.ndarray, units: str = "g") -> SimpleNamespace:
    """A card's acc fields as `channel_stats` computes them from training data `x` (in g)."""
    scale = G if units == "m/s^2" else 1.0
    return SimpleNamespace(channels=list(ACC), units=[units] * 3,
                           norm_mean=(x.mean(axis=0) * scale).tolist(), norm_std=(x.std(axis=0) * scale).tolist())


def codes(result: dict) -> list[str]:
    return [f["code"] for f in result["findings"]]


def test_a_clean_stream_raises_nothing():
    x = wrist_stream()
    r = check_stream(x, ACC, ["g"] * 3, RATE, card=card_like(x))
    assert r["findings"] == []
    m = r["checked"][0]
    assert m["inferred_units"] == "g" and m["units_from"] == "rest"
    assert abs(m["rest_magnitude"] - 1.0) < 0.02 and m["gravity_share"] > 0.8
    assert m["sign"]["checked"] and m["sign"]["cosine"] > 0.9


def test_m_s2_declared_g_says_what_to_write():
    r = check_stream(wrist_stream() * G, ACC, ["g"] * 3, RATE)
    assert codes(r) == ["units"]
    f = r["findings"][0]
    assert f["measured"]["inferred"] == "m/s^2" and abs(f["measured"]["reading"] - G) < 0.2
    assert '"units": "m/s^2"' in f["message"] and "edgehar.json" in f["message"]


def test_g_declared_m_s2_and_the_advice_for_each_place():
    x = wrist_stream()
    for fix, words in (("manifest", '"units": "g"'), ("record", "--units g"), ("device", "units=g,g,g")):
        r = check_stream(x, ACC, ["m/s^2"] * 3, RATE, fix=fix)
        assert codes(r) == ["units"] and words in r["findings"][0]["message"]


def test_units_of_a_stream_that_never_rests_come_from_its_mean():
    x = wrist_stream(rest=0.0)
    assert check_stream(x, ACC, ["g"] * 3, RATE)["findings"] == []
    r = check_stream(x * G, ACC, ["g"] * 3, RATE)
    assert codes(r) == ["units"] and r["checked"][0]["units_from"] == "mean"


def test_gravity_free_stream_is_flagged_whatever_its_unit():
    x = wrist_stream().astype(np.float64)
    sos = butter(2, 0.3, fs=RATE, output="sos")
    linear = (x - sosfiltfilt(sos, x, axis=0)).astype(np.float32)  # as a linear-acceleration sensor
    for scale, unit in ((1.0, "g"), (G, "m/s^2"), (G, "g")):
        r = check_stream(linear * scale, ACC, [unit] * 3, RATE, card=card_like(x))
        assert codes(r) == ["gravity-free"], (scale, unit)
        assert r["checked"][0]["gravity_share"] < 0.2
        assert "linear-acceleration" in r["findings"][0]["message"]


def test_gravity_free_at_rest_with_a_bias_is_flagged():
    # a still gravity-free sensor: its mean (a bias) holds its magnitude, but it reads ~0
    x = np.random.default_rng(1).normal(0, 0.002, (3000, 3)).astype(np.float32) + [0.01, 0.0, 0.005]
    assert codes(check_stream(x, ACC, ["g"] * 3, RATE)) == ["gravity-free"]


def test_a_negated_stream_is_a_suspected_sign_against_the_card():
    x = wrist_stream()
    card = card_like(wrist_stream(seed=3), units="m/s^2")  # card units do not matter
    r = check_stream(-x, ACC, ["g"] * 3, RATE, card=card)
    assert codes(r) == ["gravity-sign"]
    f = r["findings"][0]
    assert f["certainty"] == "suspected" and f["message"].startswith("suspected")
    assert f["measured"]["cosine"] < -0.9 and "negate" in f["message"]
    assert check_stream(x, ACC, ["g"] * 3, RATE, card=card)["findings"] == []


def test_the_sign_is_not_judged_without_a_direction_to_compare_with():
    x = -wrist_stream()
    no_direction = SimpleNamespace(channels=list(ACC), units=["g"] * 3, norm_mean=[0.0] * 3, norm_std=[1.0] * 3)
    for card in (None, no_direction):
        r = check_stream(x, ACC, ["g"] * 3, RATE, card=card)
        assert r["findings"] == [] and r["checked"][0]["sign"]["checked"] is False
    short = check_stream(x[:int(5 * RATE)], ACC, ["g"] * 3, RATE, card=card_like(-x))
    assert short["checked"][0]["sign"] == {"checked": False, "why": "under 10 s"}


def test_card_channels_map_by_name_or_in_order():
    x = wrist_stream()
    card = card_like(x)
    r = check_stream(-x, ("ax", "ay", "az"), ["g"] * 3, RATE, card=card)  # other names: in order
    assert codes(r) == ["gravity-sign"]
    perm = SimpleNamespace(channels=["acc_z", "acc_x", "acc_y"], units=["g"] * 3,
                           norm_mean=[card.norm_mean[i] for i in (2, 0, 1)],
                           norm_std=[card.norm_std[i] for i in (2, 0, 1)])
    assert check_stream(x, ACC, ["g"] * 3, RATE, card=perm)["findings"] == []


def test_raw_counts_are_a_scale_finding():
    r = check_stream(wrist_stream() * 4096, ACC, ["g"] * 3, RATE)
    assert codes(r) == ["scale"] and "neither 1 g nor 9.81" in r["findings"][0]["message"]


def test_dropouts_short_and_empty_streams():
    x = wrist_stream()
    x[500:1500] = 0  # a run of zeros is a dropout, not rest
    assert check_stream(x, ACC, ["g"] * 3, RATE)["findings"] == []
    short = check_stream(x[:50], ACC, ["g"] * 3, RATE)
    assert short["findings"] == [] and "under 2 s" in short["skipped"]
    zeros = check_stream(np.zeros((3000, 3), np.float32), ACC, ["g"] * 3, RATE)
    assert zeros["findings"] == [] and "skipped" in zeros
    none = check_stream(x, ("a", "b", "c"), ["rad/s"] * 3, RATE)
    assert none["checked"] == [] and "no accelerometer" in none["skipped"]


def test_accelerometer_triples_skip_gyroscopes_declared_in_g():
    channels = ["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"]
    assert accelerometer_triples(channels, ["g"] * 6) == [(0, 1, 2)]
    assert accelerometer_triples(["t_x", "ax", "ay", "az"], ["rad/s", "g", "g", "g"]) == [(1, 2, 3)]
    two = accelerometer_triples(["a_x", "a_y", "a_z", "b_x", "b_y", "b_z"], ["g"] * 3 + ["m/s^2"] * 3)
    assert two == [(0, 1, 2), (3, 4, 5)]
    x = wrist_stream()
    both = np.concatenate([x, x * G, np.zeros_like(x)], axis=1)
    r = check_stream(both, ["a_x", "a_y", "a_z", "b_x", "b_y", "b_z", "gyro_x", "gyro_y", "gyro_z"],
                     ["g"] * 6 + ["rad/s"] * 3, RATE)
    assert codes(r) == ["units"] and r["findings"][0]["message"].startswith("b_x,b_y,b_z")
    assert '["g", "g", "g", "m/s^2", "m/s^2", "m/s^2", "rad/s", "rad/s", "rad/s"]' in r["findings"][0]["message"]


def test_measurements_on_known_signals():
    still = np.tile([0.0, 0.6, 0.8], (500, 1)).astype(np.float32)
    assert rest_magnitude(still, RATE) == pytest.approx((1.0, 0.0), abs=1e-6)
    assert gravity_share(still, RATE) == pytest.approx((1.0, 1.0), abs=1e-6)
    t = np.arange(1000) / RATE
    swing = np.stack([np.sin(2 * np.pi * t), np.cos(2 * np.pi * t), 0 * t], axis=1).astype(np.float32)
    share, magnitude = gravity_share(swing, RATE)
    assert share < 0.01 and magnitude < 0.01  # a vector turning full circles averages out


# -- the command line --------------------------------------------------------------------------
def _folder(tmp_path, scale: float) -> str:
    x = wrist_stream() * scale
    lines = ["acc_x,acc_y,acc_z"] + [",".join(f"{v:.6g}" for v in row) for row in x]
    (tmp_path / "take.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "edgehar.json").write_text(json.dumps({"rate": RATE, "units": "g"}))
    return str(tmp_path)


def test_data_check_json_records_the_check_and_warns(tmp_path, capsys):
    from edgehar.cli import main

    folder = _folder(tmp_path, G)  # written in m/s^2, declared g
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert main(["data", "check", folder, "--json"]) == 0  # a warning, not a problem
    out, err = capsys.readouterr()
    info = json.loads(out)
    check = info["files"][0]["check"]
    assert [f["code"] for f in check["findings"]] == ["units"]
    assert check["checked"][0]["inferred_units"] == "m/s^2"
    assert info["problems"] == [] and len(info["warnings"]) == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgehar: warning: ") and "take.csv" in lines[0]
    assert '"units": "m/s^2"' in lines[0]
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_data_check_of_a_right_folder_warns_nothing(tmp_path, capsys):
    from edgehar.cli import main

    assert main(["data", "check", _folder(tmp_path, 1.0), "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["warnings"] == [] and "warning" not in err


def test_data_check_with_a_model_card_suspects_the_sign(tmp_path, capsys):
    from edgehar.card import ModelCard
    from edgehar.cli import main

    (tmp_path / "data").mkdir()
    folder = _folder(tmp_path / "data", -1.0)  # negated: the gravity-vector convention
    x = wrist_stream(seed=5)
    card = ModelCard(labels=["a", "b"], rate=RATE, window=100, hop=50, channels=list(ACC), units=["g"] * 3,
                     norm_mean=x.mean(axis=0).tolist(), norm_std=x.std(axis=0).tolist())
    (tmp_path / "card.json").write_text(card.to_json())
    assert main(["data", "check", folder, "--model", str(tmp_path / "card.json"), "--json"]) == 0
    check = json.loads(capsys.readouterr().out)["files"][0]["check"]
    assert [f["code"] for f in check["findings"]] == ["gravity-sign"]


@pytest.mark.parametrize("argv", [["eval", "m.tflite", "--labels", "walking"],
                                  ["live", "--port", "x", "--model", "m.tflite", "--labels", " walking , "]])
def test_one_zero_shot_label_is_refused(argv, capsys):
    from edgehar.cli import main

    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "--labels" in err[-1] and "at least two" in err[-1]


# -- edgehar live: the first seconds, once ---------------------------------------------------------
@pytest.fixture()
def live_session():
    from tiny_har_models import built_models

    from edgehar.bridge.live import LiveSession
    from edgehar.bridge.virtual_device import VirtualDevice

    dev = VirtualDevice(np.zeros((10, 3)), 50)  # just a port to open; nothing streamed
    s = LiveSession(dev.path, built_models()["onnx"])
    yield s
    s.reader.close()
    dev.close()


def _feed(session, x, units):
    from edgehar.bridge.stream import Block

    for k in range(0, len(x), 25):  # blocks of half a second, as a device sends them
        session._process(Block(x[k:k + 25], RATE, 0.0, None, 0, ACC, units))


def test_live_warns_once_and_records_the_check(live_session, capsys):
    _feed(live_session, wrist_stream(seconds=40) * G, ("g",) * 3)  # m/s^2 declared g
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"edgehar: warning: {live_session.port}: ")
    assert "units=m/s^2,m/s^2,m/s^2" in err[0]
    check = live_session.counts()["check"]
    assert check["seconds"] == 30.0 and [f["code"] for f in check["findings"]] == ["units"]
    assert live_session.stats.windows > 0  # predictions go on
    assert json.loads(json.dumps(live_session.counts()))["check"] == check  # the --json summary


def test_live_checks_in_the_declared_units(live_session, capsys):
    _feed(live_session, wrist_stream(seconds=31) * G, ("m/s^2",) * 3)  # converted to the card's g
    assert "warning" not in capsys.readouterr().err
    check = live_session.counts()["check"]
    assert check["findings"] == [] and check["checked"][0]["inferred_units"] == "m/s^2"


# -- edgehar record: each take, after it ends -------------------------------------------------------
def test_record_checks_each_take_into_its_manifest_entry(tmp_path):
    import subprocess
    import sys

    from edgehar.data.owndata import load_folder

    x = wrist_stream(seconds=30) * G  # m/s^2, sent by a device that declares g (the default)
    lines = ["time,acc_x,acc_y,acc_z"] + [f"{i / RATE:.3f}," + ",".join(f"{v:.9g}" for v in r)
                                          for i, r in enumerate(x)]
    (tmp_path / "replay.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "takes"
    r = subprocess.run([sys.executable, "-m", "edgehar", "record", "--port",
                        f"sim://{tmp_path / 'replay.csv'}?speed=50", "--label", "walking", "--out", str(out),
                        "--seconds", "20", "--json"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    (take,) = [json.loads(line) for line in r.stdout.splitlines()]
    assert [f["code"] for f in take["check"]["findings"]] == ["units"]
    warnings = [line for line in r.stderr.splitlines() if line.startswith("edgehar: warning: ")]
    assert len(warnings) == 1 and "--units m/s^2" in warnings[0] and take["file"] in warnings[0]
    entry = json.loads((out / "edgehar.json").read_text())["files"][os.path.basename(take["file"])]
    assert entry["check"] == take["check"]
    assert len(load_folder(out)) == 1  # the manifest, check included, still reads
