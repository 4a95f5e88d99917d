"""Baselines (plain CNN, Ignatov CNN, TinyHAR and its TFLM variant): shapes, learning, checkpoint round trip."""

import numpy as np
import pytest
import torch

from edgehar.card import ModelCard
from edgehar.checkpoint import save_checkpoint
from edgehar.models import load_model
from edgehar.data.normalise import channel_stats
from edgehar.data.windows import Windows
from edgehar.errors import UserError
from edgehar.models import build
from edgehar.models.baselines import arch_for, window_statistics
from edgehar.train.supervised import fit

FAMILIES = ["cnn", "ignatov", "tinyhar", "tinyhar_tflm"]


def toy_windows(n=96, length=64, channels=6, seed=0) -> Windows:
    """Three classes told apart by the frequency of a noisy sine on every channel."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    t = np.arange(length) / 20.0
    freq = np.array([1.0, 3.0, 6.0])[y]
    phase = rng.uniform(0, 2 * np.pi, (n, 1, channels))
    x = np.sin(2 * np.pi * freq[:, None, None] * t[None, :, None] + phase)
    x = x + 0.3 * rng.standard_normal(x.shape) + np.linspace(0, 1, channels)
    return Windows(x=x.astype(np.float32), y=y.astype(np.int64), subject=np.zeros(n, np.int64),
                   rate=20.0, channels=tuple(f"acc_{a}" for a in "xyz") + tuple(f"gyro_{a}" for a in "xyz"),
                   units=("g",) * 3 + ("rad/s",) * 3, label_names=("slow", "mid", "fast"), hop=length)


def card_for(name, w: Windows) -> ModelCard:
    mean, std = channel_stats(w)
    return ModelCard(labels=list(w.label_names), rate=w.rate, window=w.length, hop=w.hop,
                     channels=list(w.channels), units=list(w.units), norm_mean=mean, norm_std=std,
                     kind="baseline", arch=arch_for(name, len(w.channels), len(w.label_names), w.length))


@pytest.mark.parametrize("name", FAMILIES)
def test_forward_shapes(name):
    torch.manual_seed(0)
    for length in (64, 128):
        m = build(arch_for(name, 6, 5, length)).eval()
        assert m(torch.randn(3, length, 6)).shape == (3, 5)
    m = build(arch_for(name, 3, 4, 128)).eval()  # acc only
    assert m(torch.randn(2, 128, 3)).shape == (2, 4)


def test_default_sizes_at_128_by_6():
    sizes = {n: sum(p.numel() for p in build(arch_for(n, 6, 6, 128)).parameters()) for n in FAMILIES}
    assert 30_000 < sizes["cnn"] < 35_000  # the plain CNN of TOOLCHAIN.md
    assert sizes["ignatov"] < sizes["cnn"] and 20_000 < sizes["tinyhar"] < 60_000


@pytest.mark.slow
@pytest.mark.parametrize("name", FAMILIES)
def test_training_lowers_the_loss(name):
    torch.manual_seed(0)
    w = toy_windows()
    card = card_for(name, w)
    model = build(card.arch)
    losses = fit(model, w, card, steps=24, batch_size=32, lr=5e-3, progress=False)  # 8 passes of 3 batches
    assert len(losses) == 8 and losses[-1] < 0.8 * losses[0]


@pytest.mark.parametrize("name", FAMILIES)
def test_checkpoint_round_trip(name, tmp_path):
    torch.manual_seed(0)
    w = toy_windows(n=8)
    card = card_for(name, w)
    model = build(card.arch).eval()
    save_checkpoint(tmp_path / f"{name}.pt", model, card)
    again, card2 = load_model(tmp_path / f"{name}.pt", kind="baseline")
    x = torch.from_numpy(card.normalise(w.x))
    with torch.no_grad():
        torch.testing.assert_close(again(x), model(x))
    assert card2.arch == card.arch


def test_window_statistics_match_numpy():
    x = torch.randn(4, 50, 6, dtype=torch.float64)
    s = window_statistics(x, groups=2).numpy()
    xn = x.numpy()
    assert s.shape == (4, 20)
    np.testing.assert_allclose(s[:, :6], xn.mean(1))
    np.testing.assert_allclose(s[:, 6:12], xn.std(1), rtol=1e-6)
    np.testing.assert_allclose(s[:, 12:18], np.abs(xn - xn.mean(1, keepdims=True)).mean(1))
    np.testing.assert_allclose(s[:, 18], np.linalg.norm(xn[:, :, :3], axis=-1).mean(1), rtol=1e-6)


def test_bad_configs_are_user_errors():
    with pytest.raises(UserError):
        build({"name": "cnn", "config": {"n_classes": 6}})
    from edgehar.models.baselines import build as build_baseline
    with pytest.raises(UserError):
        build_baseline({"name": "resnet", "config": {}})
