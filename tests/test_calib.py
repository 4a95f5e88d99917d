"""Calibration sets: stratified selection, file format with provenance, validation."""

import json

import numpy as np
import pytest

from edgehar.calib.build import (calib_from_windows, check_fits_card, load_calib, save_calib,
                                 stratified_indices)
from edgehar.card import ModelCard
from edgehar.cli import main
from edgehar.data.windows import Windows
from edgehar.errors import UserError


def windows(seed=0) -> Windows:
    """Imbalanced classes over 5 subjects, plus unlabelled windows."""
    rng = np.random.default_rng(seed)
    y = np.concatenate([np.full(400, 0), np.full(60, 1), np.full(30, 2), np.full(100, -1)])
    subject = rng.integers(1, 6, len(y))
    x = rng.normal(size=(len(y), 32, 3)).astype(np.float32)
    return Windows(x=x, y=y, subject=subject, rate=25.0, channels=("acc_x", "acc_y", "acc_z"),
                   units=("g",) * 3, label_names=("a", "b", "c"), hop=16)


def test_stratified_balances_classes_then_subjects():
    w = windows()
    idx = stratified_indices(w.y, w.subject, 120, seed=0)
    assert len(idx) == len(set(idx.tolist())) == 120
    counts = {c: int((w.y[idx] == c).sum()) for c in (-1, 0, 1, 2)}
    assert counts == {-1: 30, 0: 30, 1: 30, 2: 30}  # unlabelled is a class of its own
    # within the big class, subjects are spread evenly (round robin)
    per_subject = np.bincount(w.subject[idx][w.y[idx] == 0], minlength=6)[1:]
    assert per_subject.max() - per_subject.min() <= 1


def test_small_class_leaves_its_share_to_the_others():
    w = windows()
    idx = stratified_indices(w.y, w.subject, 300, seed=1)
    assert int((w.y[idx] == 2).sum()) == 30  # all it has
    assert len(idx) == 300


def test_selection_is_reproducible_and_seeded():
    w = windows()
    a, b = stratified_indices(w.y, w.subject, 50, 3), stratified_indices(w.y, w.subject, 50, 3)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, stratified_indices(w.y, w.subject, 50, 4))


def test_file_round_trip_with_provenance(tmp_path):
    w = windows()
    cal = calib_from_windows(w, 40, seed=2, dataset="synthetic", root="/nowhere")
    path = save_calib(tmp_path / "c.npz", cal)
    with np.load(path, allow_pickle=False) as z:  # plain arrays + a JSON string: no pickle
        assert set(z.files) == {"x", "y", "subject", "provenance"}
        prov = json.loads(str(z["provenance"]))
    for key in ("dataset", "root", "rate", "window", "channels", "units", "seed", "counts", "format"):
        assert key in prov
    assert prov["counts"] == {"unlabelled": 10, "a": 10, "b": 10, "c": 10}
    again = load_calib(path)
    assert np.array_equal(again.x, cal.x) and np.array_equal(again.y, cal.y)
    assert again.provenance == prov


def test_bad_files_are_one_line_errors(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(UserError, match="not a readable"):
        load_calib(tmp_path / "junk.npz")
    np.savez(tmp_path / "nox.npz", y=np.zeros(3))
    with pytest.raises(UserError, match="lacks x"):
        load_calib(tmp_path / "nox.npz")
    np.savez(tmp_path / "flat.npz", x=np.zeros((3, 4)), y=np.zeros(3), subject=np.zeros(3),
             provenance=np.array("{}"))
    with pytest.raises(UserError, match=r"\(N, T, C\)"):
        load_calib(tmp_path / "flat.npz")
    with pytest.raises(UserError, match="no such"):
        load_calib(tmp_path / "missing.npz")
    with pytest.raises(UserError, match=".npz"):
        save_calib(tmp_path / "c.txt", calib_from_windows(windows(), 5))


def test_check_fits_card_names_both_shapes():
    cal = calib_from_windows(windows(), 10)
    card = ModelCard(labels=["a"], rate=25.0, window=64, hop=32, channels=["acc_x", "acc_y", "acc_z"],
                     units=["g"] * 3)
    with pytest.raises(UserError, match="32 samples x 3 channels, the model takes 64 x 3"):
        check_fits_card(cal, card, "c.npz")
    card.window = 32
    check_fits_card(cal, card, "c.npz")
    card.rate = 50.0
    with pytest.raises(UserError, match="25 Hz"):
        check_fits_card(cal, card, "c.npz")


def test_cli_build_on_hapt_leaves_test_subjects_out(data_root, tmp_path, capsys):
    from edgehar.data import hapt

    out = tmp_path / "calib.npz"
    assert main(["calib", "build", "--data", "hapt", "--root", str(data_root / "hapt"), "--n", "140",
                 "--out", str(out), "--json"]) == 0
    prov = json.loads(capsys.readouterr().out)
    cal = load_calib(out)
    assert cal.x.shape == (140, 128, 6) and prov["n"] == 140
    assert not set(cal.subject.tolist()) & set(hapt.TEST_SUBJECTS)
    assert prov["counts"]["unlabelled"] == 20 and len(prov["counts"]) == 7  # 6 activities + unlabelled
    assert len(set(cal.subject.tolist())) >= 15  # spread over the training subjects
    assert prov["dataset"] == "hapt" and prov["units"] == ["g"] * 3 + ["rad/s"] * 3


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["calib", "build", "--data", "hapt", "--root", str(tmp_path), "--out", str(tmp_path / "c.npz")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("edgehar: error:") and "\n" not in err
    assert not (tmp_path / "c.npz").exists()
