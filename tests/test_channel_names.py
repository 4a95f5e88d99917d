"""Own data's channel names: the manifest's mapping onto sensor axes, inference from units and
names, and the refusal that says what to write when a model's axes are missing."""

import json
import subprocess
import sys

import numpy as np
import pytest

from edgehar.card import ModelCard
from edgehar.data.channel_names import infer
from edgehar.data.datasets import windows_for_card
from edgehar.data.owndata import check_folder, load_folder
from edgehar.errors import UserError

ACC = ["acc_x", "acc_y", "acc_z"]


def _folder(path, manifest, header, n=200):
    """One CSV of `n` rows: column k holds k + 1 + row / 1000, the last column a label."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "edgehar.json").write_text(json.dumps({"rate": 50, "label": {"column": "act"}, **manifest}))
    width = len(header.split(",")) - 1
    rows = "".join(",".join(f"{k + 1 + i / 1000:.3f}" for k in range(width)) + ",walk\n" for i in range(n))
    (path / "a.csv").write_text(header + "\n" + rows)
    return path


def _card(channels, units="g"):
    return ModelCard(labels=["walk"], rate=50.0, window=50, hop=25, channels=list(channels),
                     units=[units] * len(channels))


def test_the_mapping_names_each_columns_axis_in_its_order(tmp_path):
    folder = _folder(tmp_path / "d", {"channels": {"c3": "acc_z", "c1": "acc_x", "c2": "acc_y"},
                                      "units": ["g", "g", "m/s^2"]}, "c1,c2,c3,c4,act")
    (rec,) = load_folder(folder)
    assert rec.channels == ("acc_z", "acc_x", "acc_y") and rec.units == ("g", "g", "m/s^2")
    np.testing.assert_allclose(rec.data[0], [3, 1, 2])  # c4 is no channel
    assert rec.meta["channel_columns"] == ["c3", "c1", "c2"]
    entry = check_folder(folder)["files"][0]
    assert entry["channels"] == ["acc_z", "acc_x", "acc_y"] and entry["channel_columns"] == ["c3", "c1", "c2"]
    out = subprocess.run([sys.executable, "-m", "edgehar", "data", "check", str(folder)],
                         capture_output=True, text=True)
    assert out.returncode == 0 and "acc_z [g] (column c3), acc_x [g] (column c1)" in out.stdout
    w = windows_for_card(_card(ACC), str(folder))  # an acc model reads it, c2 converted to g
    assert w.channels == tuple(ACC) and np.allclose(w.x[0, 0], [1, 2 / 9.80665, 3], atol=1e-6)


@pytest.mark.parametrize("columns, units, axes", [
    (["ax", "ay", "az"], ["g"] * 3, ACC),
    (["az", "ax", "ay"], ["m/s^2"] * 3, ["acc_z", "acc_x", "acc_y"]),
    (["accX", "accY", "accZ", "gyrX", "gyrY", "gyrZ"], ["g"] * 3 + ["deg/s"] * 3,
     ACC + ["gyro_x", "gyro_y", "gyro_z"]),
    (["x", "y", "z", "gx", "gy", "gz"], ["g"] * 6, None),  # six in g: acc or not, unsaid
    (["x", "y", "x2"], ["g"] * 3, None),  # no z
    (["ax", "ay"], ["g"] * 2, None),  # two axes are no sensor
    (["acc_x", "ay", "az"], ["g"] * 3, None),  # an axis already named
    (["ax", "ay", "az", "acc_x"], ["g"] * 3 + ["rad/s"], None),  # acc_x taken by another column
])
def test_axes_are_inferred_only_when_unambiguous(columns, units, axes):
    got = infer(columns, units)
    assert [got.get(c, c) for c in columns] == (axes or columns)


def test_the_readme_example_needs_no_mapping(tmp_path):
    folder = _folder(tmp_path / "d", {"units": "g"}, "ax,ay,az,act")
    (rec,) = load_folder(folder)
    assert rec.channels == tuple(ACC) and rec.meta["channel_columns"] == ["ax", "ay", "az"]
    assert windows_for_card(_card(ACC), str(folder)).channels == tuple(ACC)


def test_missing_axes_are_refused_with_what_to_write_and_that_works(tmp_path):
    folder = _folder(tmp_path / "d", {}, "ch1,ch2,ch3,act")
    with pytest.raises(UserError) as e:
        windows_for_card(_card(ACC), str(folder))
    want = '"channels": {"ch1": "acc_x", "ch2": "acc_y", "ch3": "acc_z"}'
    assert e.value.message == (f"{folder / 'edgehar.json'}: data has 3 channels (ch1, ch2, ch3) but "
                               f"the model expects 3 (acc_x, acc_y, acc_z): write in edgehar.json "
                               f"{want} (paired in column order: check it)")
    spec = json.loads((folder / "edgehar.json").read_text())
    spec.update(json.loads("{" + want + "}"))
    (folder / "edgehar.json").write_text(json.dumps(spec))  # doing what it says is enough
    assert windows_for_card(_card(ACC), str(folder)).channels == tuple(ACC)


def test_a_forgotten_gyro_unit_is_named_with_the_mapping(tmp_path):
    folder = _folder(tmp_path / "d", {}, "ax,ay,az,gx,gy,gz,act")  # all in the default g
    gyro = ["gyro_x", "gyro_y", "gyro_z"]
    with pytest.raises(UserError) as e:
        windows_for_card(_card(ACC + gyro), str(folder))
    assert ('write in edgehar.json "channels": {"ax": "acc_x", "ay": "acc_y", "az": "acc_z", '
            '"gx": "gyro_x", "gy": "gyro_y", "gz": "gyro_z"}, and in "units" (one per channel, in '
            'that order) give gx, gy, gz rad/s or deg/s') in e.value.message
    # an acc model on gyro data gets no advice to call a gyroscope an accelerometer
    folder2 = _folder(tmp_path / "g", {"units": "rad/s"}, "gx,gy,gz,act")
    with pytest.raises(UserError, match=r"no column is left for acc_x, acc_y, acc_z \(the model "
                                        r"needs an accelerometer\)"):
        windows_for_card(_card(ACC), str(folder2))


@pytest.mark.parametrize("channels, what", [
    ({"ax": "accel_x"}, "channels.ax: expected a sensor axis (acc_x, acc_y, acc_z, gyro_x"),
    ({"ax": 5}, "channels.ax: expected a sensor axis"),
    ({"ax": "acc_x", "ay": "acc_x"}, ("channels: columns 'ax' and 'ay' are both 'acc_x': give "
                                      "each axis one column")),
    ({}, "channels: an empty object: name each channel column's sensor axis"),
    ({"": "acc_x"}, 'channels[""]: expected a column name, got an empty string'),
    (5, 'channels: expected a list of channel names, e.g. ["ax", "ay", "az"], or an object'),
])
def test_bad_mappings_are_refused_before_any_file_is_read(tmp_path, monkeypatch, channels, what):
    from edgehar.data import owndata

    def no_reading(*args, **kwargs):
        raise AssertionError("a file was read before the manifest was checked")

    monkeypatch.setattr(owndata, "read_table", no_reading)
    folder = _folder(tmp_path / "d", {"channels": channels}, "ax,ay,az,act")
    with pytest.raises(UserError) as e:
        load_folder(folder)
    assert e.value.message == f"{folder / 'edgehar.json'}: {what}" or \
        e.value.message.startswith(f"{folder / 'edgehar.json'}: {what}")
    per_file = _folder(tmp_path / "f", {"files": {"a.csv": {"channels": channels}}}, "ax,ay,az,act")
    with pytest.raises(UserError, match=r'files\["a.csv"\]\.channels'):
        load_folder(per_file)


def test_a_mapping_naming_a_missing_column_names_the_file(tmp_path):
    folder = _folder(tmp_path / "d", {"channels": {"ax": "acc_x", "q": "acc_y"}}, "ax,ay,az,act")
    with pytest.raises(UserError, match=r"a.csv: line 1: no channel column 'q' \(columns: ax, ay, az, act\)"):
        load_folder(folder)
