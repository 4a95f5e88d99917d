"""Sensor-language teacher: rotations, descriptions, body graph, CLIP pretraining, zero-shot and
a bit-exact checkpoint round trip. Uses the offline MiniLM text encoder (cached embeddings)."""

import numpy as np
import pytest
import torch

from edgehar.card import ModelCard
from edgehar.checkpoint import save_checkpoint
from edgehar.models import load_model
from edgehar.models import augment, language

CHANNELS = ["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"]
LABELS = ["walking", "sitting", "laying"]


def synthetic(n=24, t=128, seed=0, unlabelled=0):
    """Classes differ in frequency and amplitude (rotation-invariant cues)."""
    g = np.random.default_rng(seed)
    y = np.arange(n) % 3
    tt = np.arange(t) / 50.0
    freq, amp = np.array([2.0, 0.3, 5.0])[y], np.array([1.0, 0.2, 2.0])[y]
    phase = g.uniform(0, 2 * np.pi, (n, 1, 1)) + np.arange(6)
    x = amp[:, None, None] * np.sin(2 * np.pi * freq[:, None, None] * tt[None, :, None] + phase)
    y[:unlabelled] = -1
    return torch.tensor(x + 0.05 * g.normal(size=x.shape), dtype=torch.float32), torch.tensor(y)


def tiny(**over):
    torch.manual_seed(0)
    return language.build({"name": "language", "config": language.default_config(
        "tiny", channels=CHANNELS, rate=50, window=128, labels=LABELS, **over)})


def batch(x, y, step=0, seed=0):
    return {"x": x, "y": y, "subject": torch.zeros_like(y), "step": step, "total_steps": 20,
            "generator": torch.Generator().manual_seed(seed)}


def test_rotation_matrices_are_proper_and_uniformish():
    r = augment.random_rotation(2000, torch.Generator().manual_seed(0)).double()
    torch.testing.assert_close(r @ r.transpose(1, 2), torch.eye(3, dtype=torch.float64).expand(2000, 3, 3),
                               atol=1e-6, rtol=0)
    torch.testing.assert_close(torch.linalg.det(r), torch.ones(2000, dtype=torch.float64), atol=1e-6, rtol=0)
    # uniform on SO(3): every matrix entry has mean 0 (and variance 1/3)
    assert r.mean(0).abs().max() < 0.05
    assert (r.var(0) - 1 / 3).abs().max() < 0.05


def test_acc_and_gyro_turn_together_positions_independently():
    x = torch.randn(5, 32, 3)
    both = torch.cat([x, x, x, x], dim=-1)  # wrist acc, wrist gyro, ankle acc, ankle gyro
    names = [f"{p}_{m}_{a}" for p in ("wrist", "ankle") for m in ("acc", "gyro") for a in "xyz"]
    positions = augment.sensor_positions(names)
    assert positions == [[[0, 1, 2], [3, 4, 5]], [[6, 7, 8], [9, 10, 11]]]
    out = augment.rotate(both, torch.Generator().manual_seed(0), positions)
    torch.testing.assert_close(out[..., 0:3], out[..., 3:6])  # same matrix for acc and gyro
    assert not torch.allclose(out[..., 0:3], out[..., 6:9])  # another one for the ankle
    torch.testing.assert_close(out[..., 0:3].norm(dim=-1), x.norm(dim=-1))  # lengths kept


def test_descriptions_and_joints():
    for name in LABELS + ["running", "walking_upstairs"]:
        d = language.class_descriptions(name)
        assert len(d) >= 8 and len(set(d)) == len(d)
    assert language.class_descriptions("Nordic walking")[0] == "a person is nordic walking."
    assert language.class_descriptions("lying") == language.class_descriptions("laying")
    assert language.JOINTS[language.nearest_joint("left wrist")] == "left_wrist"
    assert language.JOINTS[language.nearest_joint("right trouser pocket")] == "right_hip"
    assert language.JOINTS[language.nearest_joint("waist")] == "pelvis"
    with pytest.raises(ValueError):
        language.nearest_joint("on the table")


def test_stgcn_places_one_sensor_at_one_joint():
    model = tiny(encoder="stgcn", widths=[8, 16], strides=[1, 2], kernel=5, placement="left wrist")
    x, y = synthetic(n=4)
    joints = model.encoder.to_joints(x)
    populated = joints.abs().sum(dim=(0, 1, 2)) > 0
    assert populated.nonzero().flatten().tolist() == [language.JOINTS.index("left_wrist")]
    assert model.tokens(x).shape == (4, 64, 16) and model.features(x).shape == (4, 16)
    loss, _ = model.pretrain_loss(batch(x, y))
    assert torch.isfinite(loss)


def test_clip_pretraining_falls_and_zero_shot_works():
    model = tiny()
    x, y = synthetic(n=30)
    with torch.no_grad():
        before = model.pretrain_loss(batch(x, y, seed=99))[0].item()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for step in range(20):
        loss, logs = model.pretrain_loss(batch(x, y, step, seed=step))
        assert torch.isfinite(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        after = model.pretrain_loss(batch(x, y, seed=99))[0].item()
        assert after < 0.8 * before
        texts = [language.class_descriptions(n) for n in LABELS]
        logits = model.zero_shot_logits(x, texts)
        assert logits.shape == (30, 3)
        protos = model.class_prototypes(texts)
        torch.testing.assert_close(model.zero_shot_logits(x, prototypes=protos), logits)
        card_protos = language.text_prototypes(LABELS)  # what a card stores
        torch.testing.assert_close(model.zero_shot_logits(x, prototypes=card_protos), logits)


def test_unlabelled_windows_are_skipped():
    model = tiny()
    x, y = synthetic(n=12, unlabelled=12)
    loss, logs = model.pretrain_loss(batch(x, y))
    assert loss.item() == 0.0 and logs["labelled"] == 0
    loss.backward()  # still a graph
    x, y = synthetic(n=12, unlabelled=6)
    keep = y >= 0
    mixed = model.pretrain_loss(batch(x, y))[0]
    only = model.pretrain_loss(batch(x[keep], y[keep]))[0]
    torch.testing.assert_close(mixed, only)


def test_checkpoint_round_trip_is_bit_exact(tmp_path):
    model = tiny()
    model.set_task(3, LABELS)  # prototypes start at the class-text embeddings
    assert model.head.prototypes.abs().sum() > 0
    card = ModelCard(labels=LABELS, rate=50.0, window=128, hop=64, channels=CHANNELS,
                     units=["g"] * 3 + ["rad/s"] * 3, kind="teacher", arch=model.arch)
    save_checkpoint(tmp_path / "language.pt", model, card)
    again, _ = load_model(tmp_path / "language.pt", kind="teacher")
    model.eval()
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    x, _ = synthetic(n=4)
    with torch.no_grad():
        assert torch.equal(model(x), again(x))
        assert model.text_projection(x).shape == (4, model.text_dim) == (4, 384)


def test_pretraining_normalisation_keeps_rotations_physical():
    from edgehar.train.pretrain import synthetic_windows

    w = synthetic_windows(n=64)
    model = tiny()
    mean, std = model.normalisation(w)
    assert mean == [0.0] * 6  # no offset: a shift would not rotate with the vector
    assert len(set(std[:3])) == 1 and len(set(std[3:])) == 1 and std[0] != std[3]  # one scale per stream
    x = torch.from_numpy(w.x)
    scale = torch.tensor(std, dtype=torch.float32)
    r1 = augment.rotate(x, torch.Generator().manual_seed(2), model.positions) / scale
    r2 = augment.rotate(x / scale, torch.Generator().manual_seed(2), model.positions)
    torch.testing.assert_close(r1, r2)  # rotating normalised windows = normalising rotated ones
    # the magnitude of every sensor vector survives the rotation of normalised windows
    torch.testing.assert_close(r2[..., :3].norm(dim=-1), (x / scale)[..., :3].norm(dim=-1))


def test_shared_config_rules_for_every_family():
    from edgehar.models import relcon, selfpab

    for module in (language, relcon, selfpab):
        cfg = module.full_config({})
        assert cfg["size"] == "cpu" and cfg["in_channels"] == 6 and cfg["window"] == 128
        assert module.full_config({"in_channels": 3})["channels"] is None  # unnamed channels
        with pytest.raises(ValueError, match=f"unknown {module.__name__.rsplit('.', 1)[1]} size"):
            module.full_config({"size": "huge"})
        with pytest.raises(ValueError, match="channel names"):
            module.full_config({"channels": ["a", "b"], "in_channels": 3})
