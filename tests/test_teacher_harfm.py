"""HAR-FM teacher, the Teacher interface, checkpoints and the text-embedding cache (tiny
configs, few steps, generated windows unless marked `data`)."""

import numpy as np
import pytest
import torch

from edgehar.errors import UserError
from edgehar.models import build
from edgehar.models.harfm import CONFIGS, HarFM
from edgehar.models.teacher import Teacher, load_teacher, make_teacher_card, save_teacher
from edgehar.data.vocabulary import activity_prompt
from edgehar.text import TEXT_DIM, embed_texts
from edgehar.recipes import family_config
from edgehar.train.finetune import finetune
from edgehar.train.pretrain import pretrain, synthetic_windows

LABELS = ["slow", "medium", "fast"]


def tiny(windows=None) -> HarFM:
    torch.manual_seed(0)
    w = windows or synthetic_windows(n=64)
    return build({"name": "harfm", "config": family_config("harfm", "tiny", w)})


def batch(n=16, step=0, total=10, seed=0):
    w = synthetic_windows(n=n, seed=seed)
    return {"x": torch.from_numpy(w.x), "y": torch.from_numpy(w.y), "subject": torch.from_numpy(w.subject),
            "step": step, "total_steps": total, "generator": torch.Generator().manual_seed(seed)}


def test_tokens_are_200ms_frames_of_each_stream_summed():
    m = tiny()  # 64 samples at 25 Hz: frame = 5 samples, 13 steps (last one zero-padded)
    assert m.frame == 5 and m.steps == 13
    assert set(m.encoders) == {"hapt_acc", "hapt_gyro"}
    x = torch.randn(4, 64, 6)
    assert m.tokens(x).shape == (4, 13, m.embed_dim)
    assert m.features(x).shape == (4, m.embed_dim)
    # a step's token only depends on its own frame: changing frame 0 leaves frame 1's token
    z = m.frame_tokens(x)
    x2 = x.clone()
    x2[:, :5] += 1
    z2 = m.frame_tokens(x2)
    assert not torch.allclose(z[:, 0], z2[:, 0]) and torch.equal(z[:, 1:], z2[:, 1:])


def test_paper_config_has_the_published_shape():
    c = CONFIGS["paper"]
    assert c["d"] == 96 and c["stack1"] == [10, 8, 256] and c["stack2"] == [24, 4, 128]
    assert c["groups"] == 6 and c["entries"] == 4 and (c["tau_start"], c["tau_end"]) == (2.0, 0.5)


def test_stage_a_loss_trains_encoders_quantizer_and_both_stacks():
    m = tiny()
    m.train()
    loss, logs = m.pretrain_loss(batch())
    assert torch.isfinite(loss) and {"contrastive", "diversity", "index", "tau"} <= set(logs)
    loss.backward()
    for name in ("encoders.hapt_acc.net.0.weight", "encoders.hapt_gyro.net.0.weight", "mask_token",
                 "quantizer.logits.weight", "quantizer.codebook", "stack1.layers.0.linear1.weight",
                 "stack2.layers.0.linear1.weight", "index_head.weight"):
        grad = dict(m.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_probe_reads_the_contrastive_context_of_stack_1():
    m = tiny().eval()
    x = torch.randn(3, 64, 6)
    with torch.no_grad():
        h1, h2 = m.run(m.frame_tokens(x))
        assert torch.equal(m.probe_features(x), h1.mean(1))
        assert torch.equal(m.features(x), h2.mean(1))  # fine-tuning and distillation read stack 2


def test_temperature_anneals_from_2_to_half_and_masks_are_spans():
    m = tiny()
    assert m.tau(0, 100) == pytest.approx(2.0) and m.tau(99, 100) == pytest.approx(0.5)
    assert m.tau(0, 100) > m.tau(50, 100) > m.tau(99, 100)
    mask = m.span_mask(200, torch.Generator().manual_seed(1))
    assert mask.shape == (200, m.steps) and mask.any(1).all() and not mask.all()
    frac = mask.float().mean().item()
    assert 0.2 < frac < 0.8


def test_pretraining_lowers_the_loss():
    w = synthetic_windows(n=256)
    m = tiny(w)
    result = pretrain(m, w.x, w.y, w.subject, steps=60, batch_size=32, lr=3e-3, progress=False)
    curve = [loss for _, loss in result.loss_curve]
    assert len(curve) == 60 and np.mean(curve[-10:]) < np.mean(curve[:5])


def test_finetune_stage_b_keeps_quantizer_frozen_and_probe_trains_only_head():
    w = synthetic_windows(n=128)
    m = tiny(w)
    card = make_teacher_card(m, w, [0.0] * 6, [1.0] * 6)
    q_before = {k: v.clone() for k, v in m.quantizer.state_dict().items()}
    s_before = m.stack2.layers[0].linear1.weight.detach().clone()
    finetune(m, w, card, steps=3, batch_size=32, progress=False)
    assert all(torch.equal(q_before[k], v) for k, v in m.quantizer.state_dict().items())
    assert not torch.equal(s_before, m.stack2.layers[0].linear1.weight)
    assert m.label_text.shape == (6, TEXT_DIM) and m.label_text.norm(dim=1).allclose(torch.ones(6))
    loss, logs = m.finetune_loss(torch.from_numpy(w.labelled().x[:8]), torch.from_numpy(w.labelled().y[:8]))
    assert {"ce", "index", "align"} <= set(logs)

    backbone = {k: v.clone() for k, v in m.state_dict().items() if not k.startswith("head.")}
    finetune(m, w, card, steps=3, batch_size=32, linear_probe=True, progress=False)
    assert all(torch.equal(v, m.state_dict()[k]) for k, v in backbone.items() if k != "label_text")
    assert all(p.requires_grad for p in m.parameters())  # unfrozen again afterwards


def test_checkpoint_reloads_bit_exactly(tmp_path):
    w = synthetic_windows(n=64)
    m = tiny(w)
    m.set_task(3, LABELS)
    with torch.no_grad():  # non-default values everywhere, the head included
        for p in m.parameters():
            p.add_(0.01 * torch.randn_like(p))
    m.eval()
    card = make_teacher_card(m, w, [0.1] * 6, [2.0] * 6, stage="test")
    save_teacher(tmp_path / "t.pt", m, card, extra={"loss_curve": [[1, 2.0]]})
    m2, card2, extra = load_teacher(tmp_path / "t.pt")
    x = torch.randn(5, 64, 6)
    with torch.no_grad():
        for fn in ("forward", "features", "tokens", "text_projection"):
            assert torch.equal(getattr(m, fn)(x), getattr(m2, fn)(x)), fn
    assert card2.kind == "teacher" and card2.arch == m.arch and card2.arch["config"]["n_classes"] == 3
    assert card2.norm_std == [2.0] * 6 and card2.prompts["walking"] == activity_prompt("walking")
    assert extra["loss_curve"] == [[1, 2.0]] and isinstance(m2, Teacher)


def test_forward_without_a_task_head_is_a_user_error():
    with pytest.raises(UserError, match="finetune"):
        tiny()(torch.randn(2, 64, 6))


def test_load_teacher_rejects_other_kinds(tmp_path):
    from edgehar.checkpoint import save_checkpoint

    w = synthetic_windows(n=16)
    m = tiny(w)
    card = make_teacher_card(m, w, [0.0] * 6, [1.0] * 6)
    card.kind = "student"
    save_checkpoint(tmp_path / "s.pt", m, card)
    with pytest.raises(UserError, match="expected a teacher"):
        load_teacher(tmp_path / "s.pt")


def test_text_embeddings_are_unit_norm_and_cached(tmp_path, monkeypatch):
    import edgehar.text as text

    monkeypatch.setenv("EDGEHAR_CACHE", str(tmp_path))
    prompts = [activity_prompt("walking"), activity_prompt("laying")]
    assert prompts[0] == "The status or/and activity of the subject is: walking."
    e = embed_texts(prompts)
    assert e.shape == (2, TEXT_DIM) and e.dtype == np.float32
    assert np.allclose(np.linalg.norm(e, axis=1), 1, atol=1e-5) and e[0] @ e[1] < 0.99
    assert len(list((tmp_path / "text").glob("*.npy"))) == 2

    def no_model():
        raise AssertionError("the model was loaded although every text is cached")

    monkeypatch.setattr(text, "_encoder", no_model)
    assert np.array_equal(embed_texts(prompts[::-1]), e[::-1])


@pytest.mark.data
def test_hapt_windows_give_13_frames_of_200ms(data_root):
    from edgehar.train.pretrain import load_windows

    w, test_subjects = load_windows("hapt", data_root / "hapt")
    m = build({"name": "harfm", "config": family_config("harfm", "tiny", w)})
    assert (m.frame, m.steps) == (10, 13) and w.length == 128
    assert (w.y < 0).any() and set(test_subjects) <= set(w.subject.tolist())
