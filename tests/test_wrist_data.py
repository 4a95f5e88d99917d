"""Wrist data sets: the registry, the three loaders (on small written files and on the real
data), the vocabulary."""

import numpy as np
import pytest

from edgehar.data import dsads, geotec, wisdm
from edgehar.data.datasets import load_dataset, summary
from edgehar.data.registry import REGISTRY, lookup
from edgehar.data.vocabulary import ACTIVITIES, coarse, prompt
from edgehar.errors import UserError


def test_every_label_map_targets_the_vocabulary():
    for ds in REGISTRY.values():
        assert set(ds.labels.values()) <= set(ACTIVITIES), ds.name
    assert coarse("stairs up") == "stairs" and coarse("walking") == "walking"
    assert "walking up stairs" in prompt("stairs up") and prompt("kicking").endswith("kicking.")


def test_lookup_options():
    assert lookup("dsads:left_arm")[1] == "left_arm"
    with pytest.raises(UserError, match="unknown option"):
        lookup("dsads:nose")
    with pytest.raises(UserError, match="takes none"):
        lookup("hapt:x")


def test_wisdm_both_line_formats_and_runs(tmp_path):
    rows = [(1600, "A", 1.0, 2.0, 3.0)] * 3 + [(1600, "B", 4.0, 5.0, 6.0)] * 2 + [(1600, "A", 7.0, 8.0, 9.0)]
    short = tmp_path / "short" / "data_1600_accel_watch.txt"
    long = tmp_path / "long" / "data_1600_accel_watch.txt"
    for p in (short, long):
        p.parent.mkdir()
    short.write_text("".join(f"{s},{a},{x},{y},{z};\n" for s, a, x, y, z in rows))
    long.write_text("".join(f"{s},{a},{9000 + i},{x},{y},{z};\n" for i, (s, a, x, y, z) in enumerate(rows)))
    for folder in (short.parent, long.parent):
        recs = wisdm.load_wisdm(folder)
        assert [r.n_samples for r in recs] == [3, 2, 1]  # a contiguous run is one recording
        assert [r.label_names[r.labels[0]] for r in recs] == ["walking", "jogging", "walking"]
        np.testing.assert_array_equal(recs[1].data, [[4, 5, 6], [4, 5, 6]])
        assert recs[0].subject == 1600 and recs[0].units == ("m/s^2",) * 3
    short.write_text("1600,A,1,2,3;\n1600,A,1,x,3;\n")
    with pytest.raises(UserError, match="line 2"):
        wisdm.load_wisdm(short.parent)


def _write_dsads(root, width, rng):
    acc = {}
    for a in (1, 2):
        for p in (1, 2):
            folder = root / "data" / f"a{a:02d}" / f"p{p}"
            folder.mkdir(parents=True)
            full = rng.normal(size=(3 * 125, 45)).round(4)
            acc[(a, p)] = full
            keep = full if width == 45 else full[:, [u * 9 + k for u in range(5) for k in range(3)]]
            for s in range(3):
                rows = keep[s * 125:(s + 1) * 125]
                (folder / f"s{s + 1:02d}.txt").write_text(
                    "\n".join(",".join(f"{v:g}" for v in r) for r in rows) + "\n")
    return acc


@pytest.mark.parametrize("width", [45, 15])
def test_dsads_columns_told_apart_and_segments_joined(tmp_path, width):
    acc = _write_dsads(tmp_path, width, np.random.default_rng(0))
    recs = dsads.load_dsads(tmp_path)
    assert len(recs) == 2 * 2 * 5  # (activity, subject) x unit
    left = [r for r in recs if r.meta["unit"] == "left_arm"]
    assert len(left) == 4 and all(r.placement == "left arm" for r in left)
    r = left[0]
    assert r.n_samples == 375 and r.rate == 25.0
    np.testing.assert_allclose(r.data, acc[(1, 1)][:, 18:21], atol=1e-6)  # unit 2 = left arm
    only = dsads.load_dsads(tmp_path, "left_arm")
    assert [x.name for x in only] == [x.name for x in left]


def test_geotec_resamples_on_irregular_times(tmp_path):
    folder = tmp_path / "s03"
    folder.mkdir()
    t = np.array([0, 8, 8, 21, 30, 42, 50, 61, 70, 80, 90, 100], dtype=float)  # ms, repeats
    x = t / 10.0  # a ramp: interpolation on the true times must give exactly the grid
    lines = [",".join(geotec.HEADER)] + [
        f"{v},{-v},1,0,0,0,{1657533977000 + int(tt)},{'SEATED' if tt < 50 else 'WALKING'}"
        for tt, v in zip(t, x)]
    (folder / "s03_02_sw.csv").write_text("\n".join(lines) + "\n")
    (rec,) = geotec.load_geotec(tmp_path)
    assert rec.subject == 3 and rec.rate == 100.0 and rec.n_samples == 11
    np.testing.assert_allclose(rec.data[:, 0], np.arange(11), atol=1e-5)
    assert list(rec.labels) == [0] * 5 + [2] * 6
    lines[5], lines[6] = lines[6], lines[5]
    (folder / "s03_02_sw.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match="line 7: time goes backwards"):
        geotec.load_geotec(tmp_path)


@pytest.mark.parametrize("name,subjects,classes,placements", [
    ("wisdm_watch", 51, 6, 1), ("dsads", 8, 19, 5), ("geotec_watch", 23, 5, 1)])
def test_real_summary(data_root, name, subjects, classes, placements):
    info = summary(name)
    assert info["subjects"] == subjects
    assert info["n_classes"] == classes and len(info["placements"]) == placements
    assert sum(info["windows_per_class"].values()) > 300  # GeoTec segments last 1-3 s


def test_real_recordings_carry_provenance(data_root):
    for name in ("wisdm_watch", "geotec_watch", "hapt"):
        recs = load_dataset(name)
        r = recs[0]
        assert r.dataset == name and r.placement and r.device and r.canonical_names
    recs = load_dataset("wisdm_watch")
    assert sum(r.subject == 1629 for r in recs) == 12  # two sessions of 6 activities
    assert {len(r.label_names) for r in recs} == {6}
