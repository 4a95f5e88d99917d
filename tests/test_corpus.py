"""The pooled corpus: shards read back equal to the windows, provenance, subject-disjoint
splits, disjoint ranks, hashes, and its refusals."""

import json
import subprocess
import sys

import numpy as np
import pytest

from edgehar.data.corpus import build_corpus, read_manifest, shards_for, stream
from edgehar.data.datasets import load_dataset
from edgehar.data.windows import make_windows
from edgehar.errors import UserError


def _own(folder, subjects, channels=("acc_x", "acc_y", "acc_z"), units="m/s^2", rate=25):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(len(subjects))
    (folder / "edgehar.json").write_text(json.dumps({
        "rate": rate, "units": units, "subject": {"pattern": r"^s(\d+)_"}, "label": {"column": "act"},
        "label_map": {"walk": "walking"}, "placement": "left wrist", "device": "test board"}))
    for s in subjects:
        x = rng.normal(size=(400, len(channels))).astype(np.float32)
        acts = ["walk"] * 200 + ["wave"] * 200
        (folder / f"s{s}_a.csv").write_text(",".join(channels) + ",act\n" + "\n".join(
            ",".join(f"{v:.9g}" for v in row) + f",{a}" for row, a in zip(x, acts)) + "\n")
    return str(folder)


def test_corpus_of_two_folders(tmp_path):
    a = _own(tmp_path / "a", range(1, 11))
    b = _own(tmp_path / "b", range(1, 5), channels=("acc_x", "acc_y", "acc_z", "gyro_x"),
             units=["g", "g", "g", "rad/s"])
    m = build_corpus([a, b], rate=25, window=50, out=tmp_path / "c", shard_windows=7)
    assert m["channels"] == ["acc_x", "acc_y", "acc_z", "gyro_x"] and m["units"][0] == "g"
    assert read_manifest(tmp_path / "c", verify=True)["windows"] == m["windows"]
    # every window comes back, in g, equal to windowing the recordings directly
    recs = load_dataset(a)
    direct = make_windows(recs, 50, 25)
    xs, metas = zip(*stream(tmp_path / "c", split=None, rank=0, world=1, batch=5))
    x, meta = np.concatenate(xs), np.concatenate(metas)
    mine = meta["dataset"] == 0
    order = np.lexsort((meta["start"][mine], meta["recording"][mine]))
    np.testing.assert_allclose(x[mine][order][..., :3], direct.x / 9.80665, rtol=1e-6)
    assert not x[mine][..., 3].any() and not meta["present"][mine][:, 3].any()
    assert meta["present"][~mine].all()
    canon = [m["canonical"][k] for k in np.unique(meta["canonical"][meta["canonical"] >= 0])]
    assert sorted(canon) == ["walking", "wave"]
    assert m["placements"] == ["left wrist"] and m["devices"] == ["test board"]
    # subject-disjoint splits per data set
    for name, sp in m["splits"].items():
        assert not set(sp["train"]) & set(sp["test"]) and not set(sp["validation"]) & set(sp["test"])
    # ranks read disjoint shards that together cover the split
    seen = [sum(len(xb) for xb, _ in stream(tmp_path / "c", "train", r, 3)) for r in range(3)]
    assert sum(seen) == sum(s["windows"] for s in m["shards"] if s["split"] == "train")
    names = [{s["x"] for s in shards_for(m, "train", r, 3)} for r in range(3)]
    assert not (names[0] & names[1]) and not (names[1] & names[2])


def test_refusals(tmp_path, monkeypatch):
    a = _own(tmp_path / "a", [1, 2])
    odd = _own(tmp_path / "odd", [1, 2], channels=("ax", "ay"))
    with pytest.raises(UserError, match="shares no channel"):
        build_corpus([a, odd], 25, 50, tmp_path / "c")
    assert not (tmp_path / "c").exists()
    monkeypatch.setenv("EDGEHAR_DATA", str(tmp_path))
    with pytest.raises(UserError, match="unseen-device test"):
        build_corpus(["banglejs", a], 25, 50, tmp_path / "c")
    r = subprocess.run([sys.executable, "-m", "edgehar", "data", "corpus", "build", "--data", f"{a},{odd}",
                        "--rate", "25", "--window", "50", "--out", str(tmp_path / "c")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "shares no channel" in r.stderr


def test_real_corpus_keeps_hapt_test_subjects(data_root, tmp_path, monkeypatch):
    monkeypatch.delenv("EDGEHAR_DATA")  # `root` alone says where the data set folders are
    m = build_corpus(["hapt", "geotec_watch"], rate=50, window=128, out=tmp_path / "c", root=data_root)
    assert m["splits"]["hapt"]["test"] == [2, 4, 9, 10, 12, 13, 18, 20, 24]
    assert len(m["splits"]["geotec_watch"]["test"]) >= 4
    assert "(unlabelled)" in m["counts"]["hapt"]["per_class"]  # postural transitions etc.
    assert set(m["counts"]["hapt"]["per_class"]) - {"(unlabelled)"} == {
        "walking", "walking_upstairs", "walking_downstairs", "sitting", "standing", "laying"}
