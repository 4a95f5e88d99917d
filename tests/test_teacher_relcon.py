"""RelCon teacher: sparsemax, the learned distance, the relative contrastive loss, both phases,
the shared augmentations, and a bit-exact checkpoint round trip."""

import numpy as np
import pytest
import torch

from edgehar.card import ModelCard
from edgehar.checkpoint import save_checkpoint
from edgehar.models import load_model
from edgehar.models import augment, relcon

CHANNELS = ["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"]


def synthetic(n=24, t=128, classes=3, seed=0):
    """Windows whose classes differ in frequency and amplitude, from 4 subjects."""
    g = np.random.default_rng(seed)
    y = np.arange(n) % classes
    tt = np.arange(t) / 50.0
    freq, amp = np.array([0.5, 2.0, 4.0])[y], np.array([0.3, 1.0, 2.0])[y]
    phase = g.uniform(0, 2 * np.pi, (n, 1, 1)) + np.arange(6)
    x = amp[:, None, None] * np.sin(2 * np.pi * freq[:, None, None] * tt[None, :, None] + phase)
    x = x + 0.1 * g.normal(size=x.shape)
    return (torch.tensor(x, dtype=torch.float32), torch.tensor(y), torch.tensor(np.arange(n) % 4))


def tiny(**over):
    torch.manual_seed(0)
    return relcon.build({"name": "relcon", "config": relcon.default_config(
        "tiny", channels=CHANNELS, rate=50, window=128, **over)})


def train_losses(model, steps=20, lr=3e-3, n=24):
    x, y, s = synthetic(n=n)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(0)
    losses = []
    for step in range(steps):
        loss, _ = model.pretrain_loss({"x": x, "y": y, "subject": s, "step": step,
                                       "total_steps": steps, "generator": gen})
        opt.zero_grad()
        loss.backward()
        opt.step()
        assert torch.isfinite(loss)
        losses.append(loss.item())
    return losses


def test_sparsemax_known_values_and_properties():
    p = relcon.sparsemax(torch.tensor([[0.5, 0.4, 0.0], [1.0, 0.0, -1.0]]))
    torch.testing.assert_close(p, torch.tensor([[0.5 + 1 / 30, 0.4 + 1 / 30, 1 / 30], [1.0, 0.0, 0.0]]))
    z = torch.randn(5, 7, 40) * 3
    p = relcon.sparsemax(z, dim=1)
    torch.testing.assert_close(p.sum(1), torch.ones(5, 40))
    assert (p >= 0).all() and (p == 0).any()  # a probability vector with exact zeros
    assert (p.argmax(1) == z.argmax(1)).all()  # keeps the order of the scores
    torch.testing.assert_close(relcon.sparsemax(z + 10.0, dim=1), p)  # shift invariant


def test_sparsemax_gradient():
    z = torch.randn(3, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(relcon.sparsemax, (z,))


def test_relative_loss_prefers_the_learned_order():
    dist = torch.tensor([[0.1, 0.5, 0.9]])
    valid = torch.ones(1, 3, dtype=torch.bool)
    agree = relcon.relative_contrastive_loss(torch.tensor([[3.0, 1.0, -1.0]]), dist, valid)
    disagree = relcon.relative_contrastive_loss(torch.tensor([[-1.0, 1.0, 3.0]]), dist, valid)
    assert agree < disagree
    # candidate 0 has negatives {1, 2}, candidate 1 has {2}, candidate 2 (farthest) none
    s = torch.tensor([0.0, 0.0, 0.0])
    expected = (np.log(3) + np.log(2)) / 2
    assert relcon.relative_contrastive_loss(s[None], dist, valid).item() == pytest.approx(expected)


def test_distance_is_small_for_itself_after_training():
    model = tiny(distance_fraction=1.0)
    losses = train_losses(model)
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
    x, _, _ = synthetic()
    d = model.distance.matrix(x[:12], x[:12], torch.Generator().manual_seed(1))
    assert d.shape == (12, 12) and torch.isfinite(d).all() and (d >= 0).all()
    off = ~torch.eye(12, dtype=torch.bool)
    assert d.diagonal().mean() < d[off].mean()  # a window rebuilds itself best


def test_encoder_phase_loss_falls():
    losses = train_losses(tiny(distance_fraction=0.0), n=12)
    assert np.mean(losses[-5:]) < np.mean(losses[:5])


def test_phases_train_disjoint_parts():
    model = tiny(distance_fraction=0.5)
    x, y, s = synthetic(n=8)
    for step, trained, frozen in [(0, model.distance, model.encoder), (5, model.encoder, model.distance)]:
        model.zero_grad(set_to_none=True)
        loss, logs = model.pretrain_loss({"x": x, "y": y, "subject": s, "step": step, "total_steps": 10,
                                          "generator": torch.Generator().manual_seed(0)})
        loss.backward()
        assert logs["phase"] == (0.0 if step == 0 else 1.0)
        assert all(p.grad is not None for p in trained.parameters())
        assert all(p.grad is None for p in frozen.parameters())


def test_encoder_phase_candidates_are_the_other_batch_windows(monkeypatch):
    x, y, s = synthetic(n=8)
    seen = {}
    real = relcon.relative_contrastive_loss

    def spy(sim, dist, valid):
        seen.update(sim=sim, dist=dist, valid=valid)
        return real(sim, dist, valid)

    monkeypatch.setattr(relcon, "relative_contrastive_loss", spy)
    for view, width in ((False, 8), (True, 9)):  # `view_candidate` adds the augmented copy
        model = tiny(distance_fraction=0.0, view_candidate=view)
        assert model.windows_per_subject() == 8  # pretrain draws same-subject groups
        model.pretrain_loss({"x": x, "y": y, "subject": s, "step": 0, "total_steps": 1,
                             "generator": torch.Generator().manual_seed(0)})
        assert seen["sim"].shape == seen["dist"].shape == (8, width)
        assert not seen["valid"][:, :8].diagonal().any() and seen["valid"].sum() == 8 * (width - 1)


def test_projection_feeds_the_loss_not_the_features():
    model = tiny(distance_fraction=0.0, projection=12)
    x, y, s = synthetic(n=8)
    assert model.projector[-1].out_features == 12
    before = model.features(x).detach()
    loss, _ = model.pretrain_loss({"x": x, "y": y, "subject": s, "step": 0, "total_steps": 1,
                                   "generator": torch.Generator().manual_seed(0)})
    loss.backward()
    assert all(p.grad is not None for p in model.projector.parameters())
    with torch.no_grad():
        model.projector[0].weight.add_(1.0)
    torch.testing.assert_close(model.features(x).detach(), before)  # features read the encoder only
    frozen = {id(p) for p in model.frozen_in_finetune()}
    assert all(id(p) in frozen for p in model.projector.parameters())  # fine-tuning leaves it alone


def test_features_and_tokens_shape():
    model = tiny().eval()
    x, _, _ = synthetic(n=5)
    assert model.features(x).shape == (5, model.embed_dim) == (5, 16)
    assert model.tokens(x).shape == (5, 64, 16)  # one stride-2 stage: 128 -> 64 steps
    paper = relcon.build({"name": "relcon", "config": {"size": "paper"}})
    assert paper.embed_dim == 256 and len(paper.encoder.blocks) == 3 + 4 + 6


@pytest.mark.parametrize("name", sorted(augment.AUGMENTATIONS))
def test_augmentations_keep_shape(name):
    x, _, _ = synthetic(n=4)
    out = augment.AUGMENTATIONS[name](x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == x.dtype and torch.isfinite(out).all()
    assert not torch.equal(out, x)


def test_random_augment_and_permutation_keep_content():
    x, _, _ = synthetic(n=6)
    gen = torch.Generator().manual_seed(0)
    assert augment.random_augment(x, gen, n=2).shape == x.shape
    # permuting segments or shuffling channels only reorders samples
    for fn in (augment.permute, augment.channel_shuffle, augment.time_flip):
        out = fn(x, gen)
        torch.testing.assert_close(out.flatten(1).sort(1).values, x.flatten(1).sort(1).values)


def test_checkpoint_round_trip_is_bit_exact(tmp_path):
    model = tiny()
    train_losses(model, steps=3)
    model.set_task(3)
    card = ModelCard(labels=["a", "b", "c"], rate=50.0, window=128, hop=64, channels=CHANNELS,
                     units=["g"] * 3 + ["rad/s"] * 3, kind="teacher", arch=model.arch)
    save_checkpoint(tmp_path / "relcon.pt", model, card)
    again, card2 = load_model(tmp_path / "relcon.pt", kind="teacher")
    model.eval()
    assert card2.arch == model.arch
    for (k, a), (k2, b) in zip(model.state_dict().items(), again.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    x, _, _ = synthetic(n=4)
    with torch.no_grad():
        assert torch.equal(model(x), again(x))


def test_sparsemax_topk_fast_path_is_exact():
    z = torch.randn(4, 9, 128) * torch.tensor([0.1, 1.0, 10.0, 100.0])[:, None, None]
    for k in (1, 4, 16, 200):
        torch.testing.assert_close(relcon.sparsemax(z, topk=k), relcon.sparsemax(z))
