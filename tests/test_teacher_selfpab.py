"""SelfPAB teacher: spectrogram tokens, TERA-style alteration, masked reconstruction, the
layer-mixing head and a bit-exact checkpoint round trip."""

import numpy as np
import torch

from edgehar.card import ModelCard
from edgehar.checkpoint import save_checkpoint
from edgehar.models import load_model
from edgehar.models import selfpab

CHANNELS = ["acc_x", "acc_y", "acc_z"]


def synthetic(n=16, t=128, seed=0):
    """3-channel windows: class-dependent frequency and amplitude plus noise."""
    g = np.random.default_rng(seed)
    y = np.arange(n) % 3
    tt = np.arange(t) / 50.0
    freq, amp = np.array([1.0, 3.0, 7.0])[y], np.array([0.5, 1.0, 2.0])[y]
    phase = g.uniform(0, 2 * np.pi, (n, 1, 1)) + np.arange(3)
    x = amp[:, None, None] * np.sin(2 * np.pi * freq[:, None, None] * tt[None, :, None] + phase)
    return torch.tensor(x + 0.05 * g.normal(size=x.shape), dtype=torch.float32), torch.tensor(y)


def tiny(**over):
    torch.manual_seed(0)
    return selfpab.build({"name": "selfpab", "config": selfpab.default_config(
        "tiny", channels=CHANNELS, rate=50, window=128, **over)})


def test_spectrogram_tokens_find_the_frequency():
    spec = selfpab.Spectrogram(rate=50.0, frame_seconds=1.0, hop_seconds=0.5)
    assert (spec.n_fft, spec.hop, spec.bins) == (50, 25, 26)  # 1 Hz per bin
    t = torch.arange(500) / 50.0
    x = torch.stack([torch.sin(2 * np.pi * 5 * t), torch.sin(2 * np.pi * 12 * t)], dim=-1)[None]
    s = spec(x)
    assert s.shape == (1, 500 // 25 + 1, 2 * 26)
    middle = s[0, 10].view(2, 26)  # a frame away from the padded edges, per channel
    assert middle[0].argmax() == 5 and middle[1].argmax() == 12


def test_alteration_touches_only_marked_cells():
    spec = torch.rand(8, 6, 3 * 26) + 0.5
    altered, cells = selfpab.alter(spec, torch.Generator().manual_seed(0), time_fraction=0.15,
                                   time_span=1, freq_fraction=0.2, freq_width=3, bins=26, channels=3)
    assert torch.equal(altered[~cells], spec[~cells])
    assert cells.any(dim=(1, 2)).all()  # every window has something to rebuild
    assert (altered[cells] == 0).float().mean() > 0.5  # mostly zeroed (80% of spans + bands)
    # a frequency band hits the same bins of every channel
    band = cells.all(dim=1).view(8, 3, 26)
    assert torch.equal(band[:, 0], band[:, 1]) and torch.equal(band[:, 0], band[:, 2])


def test_pretraining_loss_finite_and_falling():
    model = tiny()
    x, y = synthetic(n=32)

    def loss_at(step, seed):
        batch = {"x": x, "y": y, "subject": torch.zeros_like(y), "step": step, "total_steps": 20,
                 "generator": torch.Generator().manual_seed(seed)}
        return model.pretrain_loss(batch)

    with torch.no_grad():
        before = np.mean([loss_at(0, 1000 + i)[0].item() for i in range(4)])  # fixed alterations
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for step in range(20):
        loss, logs = loss_at(step, step)
        assert torch.isfinite(loss) and 0 < logs["altered_fraction"] < 1
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = np.mean([loss_at(20, 1000 + i)[0].item() for i in range(4)])
    assert after < 0.9 * before


def test_features_tokens_and_layer_mix_head():
    model = tiny()
    x, y = synthetic(n=4)
    assert model.tokens(x).shape == (4, 128 // 25 + 1, 32)
    assert model.features(x).shape == (4, model.embed_dim)
    model.set_task(3)
    with torch.no_grad():  # before a task: the layer sum with the head's initial equal weights
        torch.testing.assert_close(model.head.pool(model.states(x)), model.states(x).mean(0).mean(1))
    assert isinstance(model.head, selfpab.LayerMixHead)
    loss, _ = model.finetune_loss(x, y)
    loss.backward()
    weights = model.head.layer_weights
    assert weights.shape == (3,) and weights.grad is not None and weights.grad.abs().sum() > 0
    assert model.features(x).shape == (4, model.embed_dim)  # now the head's layer mix
    paper = selfpab.build({"name": "selfpab", "config": {"size": "paper", "channels": CHANNELS}})
    assert paper.embed_dim == 1500 and len(paper.layers) == 4


def test_spectrogram_statistics_are_fitted_preprocessing():
    model = tiny()
    x, _ = synthetic(n=32)
    before = {k: v.clone() for k, v in model.named_parameters()}
    model.fit_statistics(x)
    cells = model.spectrogram(x).flatten(0, 1)
    torch.testing.assert_close(cells.mean(0), torch.zeros(cells.shape[1]), atol=1e-4, rtol=0)
    varying = model.spec_std > 1e-5
    torch.testing.assert_close(cells.std(0, unbiased=False)[varying], torch.ones(int(varying.sum())),
                               atol=1e-3, rtol=0)
    assert all(torch.equal(before[k], v) for k, v in model.named_parameters())  # no weights touched
    assert {"spec_mean", "spec_std"} <= set(model.state_dict())  # travel with the checkpoint


def test_checkpoint_round_trip_is_bit_exact(tmp_path):
    model = tiny()
    model.fit_statistics(synthetic(n=8)[0])
    model.set_task(3)
    with torch.no_grad():
        model.head.layer_weights.copy_(torch.tensor([0.3, -1.0, 2.0]))
    card = ModelCard(labels=["a", "b", "c"], rate=50.0, window=128, hop=64, channels=CHANNELS,
                     units=["g"] * 3, kind="teacher", arch=model.arch)
    save_checkpoint(tmp_path / "selfpab.pt", model, card)
    again, _ = load_model(tmp_path / "selfpab.pt", kind="teacher")
    model.eval()
    assert model.state_dict().keys() == again.state_dict().keys()
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    x, _ = synthetic(n=4)
    with torch.no_grad():
        assert torch.equal(model(x), again(x))
