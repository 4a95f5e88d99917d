"""The compact student: sizes (counted, not hand-computed), shapes, streams, card, training."""

import numpy as np
import pytest
import torch

from edgehar.card import ModelCard
from edgehar.checkpoint import save_checkpoint
from edgehar.models import load_model
from edgehar.data.windows import Windows
from edgehar.models import build
from edgehar.models.inference import evaluate
from edgehar.models.student import SIZES, count_params, make_student_card, student_config, token_count
from edgehar.models.torch_macs import torch_macs as count_macs
from edgehar.recipes import train_student_supervised

ACC_GYRO = {"acc": [0, 1, 2], "gyro": [3, 4, 5]}
LIMITS = {"tiny": (20_000, 1_000_000), "small": (60_000, 4_000_000)}


def student(size, window=128, channels=6, streams=ACC_GYRO, n_classes=6, **kw):
    return build({"name": "student", "config": student_config(size, window, channels, streams,
                                                              {"activity": n_classes}, **kw)})


@pytest.mark.parametrize("size", list(SIZES))
def test_size_limits_counted_at_50hz_128x6(size):
    model = student(size)
    params, macs = count_params(model), count_macs(model, torch.zeros(1, 128, 6))
    max_params, max_macs = LIMITS[size]
    assert params <= max_params, params
    assert macs <= max_macs, macs
    assert macs > 100_000  # the counter really counted the convs and matmuls


def test_mac_counter_counts_a_known_layer():
    lin = torch.nn.Linear(10, 7)
    assert count_macs(lin, torch.zeros(3, 10)) == 3 * 10 * 7


# tokens per window: tiny halves the length three times; small's last stride is 3
TOKENS = {("tiny", 128): 16, ("tiny", 120): 15, ("small", 128): 11, ("small", 120): 10}


@pytest.mark.parametrize("window,channels,streams", [
    (128, 6, ACC_GYRO),           # HAPT: 50 Hz x 2.56 s
    (120, 6, ACC_GYRO),           # LIMU-BERT input: 20 Hz x 6 s
    (128, 3, {"acc": [0, 1, 2]}),  # wrist accelerometer only
])
@pytest.mark.parametrize("size", list(SIZES))
def test_shapes(size, window, channels, streams):
    tokens = TOKENS[size, window]
    model = student(size, window, channels, streams).eval()
    x = torch.randn(4, window, channels)
    logits, emb = model(x)
    assert logits.shape == (4, 6) and emb.shape == (4, 64)
    assert model.tokens(x).shape == (4, tokens, SIZES[size]["d"])
    assert token_count(model.cfg) == tokens
    assert set(model.task_logits(x)) == {"activity"}


def test_absent_stream_is_zeros_and_stream_dropout_only_in_training():
    torch.manual_seed(0)
    model = student("tiny", stream_dropout=0.5)
    assert model.cfg["absent_stream"] == "zeros"
    x = torch.randn(64, 128, 6)
    model.eval()
    a, b = model(x)[0], model(x)[0]
    assert torch.equal(a, b)  # no dropout at inference
    # inference with the gyro absent = the same window with gyro channels zeroed
    x_no_gyro = x.clone()
    x_no_gyro[:, :, 3:] = 0
    assert not torch.allclose(model(x_no_gyro)[0], a)
    # in training, stream dropout zeroes whole streams: some windows see zero gyro or zero acc
    model.train()
    keep = model.stream_keep(1000, x.device)
    assert keep.shape == (1000, 2)
    assert (keep.sum(1) >= 1).all()  # never drops every stream
    assert 0.2 < (keep == 0).float().mean() < 0.5


def test_checkpoint_round_trip(tmp_path):
    card = make_student_card("tiny", {"labels": list("abc"), "rate": 50.0, "window": 128, "hop": 64,
                                      "channels": ["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"],
                                      "units": ["g"] * 3 + ["rad/s"] * 3})
    assert card.kind == "student" and card.arch["name"] == "student"
    assert card.arch["config"]["streams"] == ACC_GYRO
    assert card.arch["config"]["tasks"] == {"activity": 3}
    model = build(card.arch).eval()
    save_checkpoint(tmp_path / "s.pt", model, card)
    again, card2 = load_model(tmp_path / "s.pt", kind="student")
    x = torch.randn(2, 128, 6)
    assert torch.equal(model(x)[0], again(x)[0])
    assert card2.arch == card.arch


def test_card_from_teacher_card_keeps_input_format_and_prompts():
    teacher = ModelCard(labels=["walk", "sit"], rate=20.0, window=120, hop=60,
                        channels=["acc_x", "acc_y", "acc_z"], units=["m/s^2"] * 3, norm_mean=[0, 0, 9.8],
                        norm_std=[1, 1, 1], prompts={"walk": "a person walking"}, kind="teacher",
                        arch={"name": "limubert"}, text_prototypes=[[0.1] * 384, [0.2] * 384])
    card = make_student_card("small", teacher, embed_dim=72)
    assert card.text_prototypes is None  # the teacher's text space is not the student's embedding
    assert (card.rate, card.window, card.norm_mean, card.prompts) == (20.0, 120, [0, 0, 9.8], teacher.prompts)
    assert card.arch["config"]["embed_dim"] == 72 and card.kind == "student"
    assert build(card.arch)(torch.zeros(1, 120, 3))[1].shape == (1, 72)


def synthetic_windows(n_per_class=60, n_classes=3, subjects=(1, 2, 3), seed=0) -> Windows:
    """Class = frequency of a sinusoid on acc and gyro, plus noise; a few subjects."""
    rng = np.random.default_rng(seed)
    t = np.arange(128) / 50.0
    xs, ys, subs = [], [], []
    for s in subjects:
        for c in range(n_classes):
            f = 1.0 + 1.5 * c
            phase = rng.uniform(0, 2 * np.pi, (n_per_class, 1, 1))
            base = np.sin(2 * np.pi * f * t[None, :, None] + phase)
            x = np.concatenate([base * [1, 0.5, 0.2], base * [0.3, 0.2, 0.1] * (c + 1)], axis=2)
            xs.append(x + rng.normal(0, 0.3, x.shape))
            ys += [c] * n_per_class
            subs += [s] * n_per_class
    return Windows(x=np.concatenate(xs).astype(np.float32), y=np.array(ys), subject=np.array(subs), rate=50.0,
                   channels=("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"),
                   units=("g",) * 3 + ("rad/s",) * 3, label_names=("slow", "mid", "fast"), hop=64)


def test_train_student_supervised_learns_synthetic_classes():
    torch.manual_seed(0)
    w = synthetic_windows()
    model, card = train_student_supervised(w, "tiny", steps=90, progress=False, data={"dataset": "synthetic"})
    assert card.provenance["data"] == {"dataset": "synthetic"}
    assert card.provenance["training"]["method"] == "supervised"
    train = card.provenance["training"]
    assert train["final_loss"] is not None and train["train_windows"] == int((w.y >= 0).sum())
    assert card.provenance["metrics"]["train"]["accuracy"] == evaluate(model, w, card)["accuracy"]
    assert np.allclose(np.asarray(card.norm_mean), w.x.reshape(-1, 6).mean(0), atol=1e-4)
