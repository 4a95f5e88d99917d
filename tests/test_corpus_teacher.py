"""The corpus teacher on the one training path: routes travel with the windows (never a model
attribute), its stages pick their phase and their pool of windows from the step inside
`edgehar.train.pretrain.pretrain`, `recipes.train_corpus_teacher` / `distill_corpus_student`
train and distil it, and every teacher family pre-trains on a corpus and on an own-data folder."""

import json

import numpy as np
import pytest
import torch

from edgehar.cli import main
from edgehar.models.corpus_fm import CorpusFM
from edgehar.models.teacher import load_teacher

CFG = {"in_channels": 3, "sources": ["a", "b"], "source_classes": [3, 2], "n_canonical": 4, "window": 100}


def tiny_teacher(**config):
    torch.manual_seed(0)
    m = CorpusFM({**CFG, **config})
    m.set_task(4)
    return m


def own_folder(folder, subjects, placement="wrist"):
    """An own-data folder at 25 Hz, worn on the wrist: per subject, walking then waving."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(len(subjects))
    (folder / "edgehar.json").write_text(json.dumps({
        "rate": 25, "units": "g", "subject": {"pattern": r"^s(\d+)_"}, "label": {"column": "act"},
        "label_map": {"walk": "walking"}, "placement": placement}))
    for s in subjects:
        x = rng.normal(size=(400, 3)).astype(np.float32) * 0.3
        x[:200, 2] += 1.0  # a learnable difference between the two activities
        acts = ["walk"] * 200 + ["wave"] * 200
        (folder / f"s{s}_a.csv").write_text("acc_x,acc_y,acc_z,act\n" + "\n".join(
            ",".join(f"{v:.6g}" for v in row) + f",{a}" for row, a in zip(x, acts)) + "\n")
    return folder


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from edgehar.data.corpus import build_corpus

    tmp = tmp_path_factory.mktemp("corpus")
    folders = [str(own_folder(tmp / n, range(1, k))) for n, k in (("a", 9), ("b", 6))]
    build_corpus(folders, rate=25, window=50, out=tmp / "c", shard_windows=16)
    return tmp / "c"


@pytest.fixture(scope="module")
def own(tmp_path_factory):
    return own_folder(tmp_path_factory.mktemp("own") / "own", range(1, 7))


def test_routes_are_arguments_not_state():
    m = tiny_teacher().eval()
    assert not hasattr(m, "route")
    x = torch.randn(4, 100, 3)
    generic = m.tokens(x)
    route = torch.tensor([0, 1, m.generic_stem, 0])
    routed = m.tokens(x, route=route)
    assert torch.allclose(routed[2], generic[2], atol=1e-6)
    assert not torch.allclose(routed[0], generic[0])
    assert torch.allclose(m.tokens(x[:1], route=route[:1]), routed[:1], atol=1e-6)
    assert torch.allclose(m(x, route=route), m.head(routed.mean(1)), atol=1e-6)
    assert torch.allclose(m.text_projection(x, route=route), m.text(routed.mean(1)), atol=1e-6)


def test_route_for_maps_source_names_to_stems():
    m = tiny_teacher()
    # a corpus whose sources come in another order, one the teacher never saw
    route = m.route_for(["b", "unseen", "a"], np.array([0, 1, 2, 0]))
    assert route.tolist() == [1, m.generic_stem, 0, 1]


def test_both_losses_learn():
    m = tiny_teacher()
    x = torch.randn(64, 100, 3)
    canon = torch.randint(0, 4, (64,))
    x = x + canon[:, None, None].float()  # a learnable class signal
    local, src = canon.clamp(max=1), torch.randint(0, 2, (64,))
    opt = torch.optim.Adam(m.parameters(), 3e-3)
    first = {}
    for step in range(30):
        la = m.reconstruction_loss(x, torch.Generator().manual_seed(1), route=src)
        lb, _ = m.multitask_loss(x, canon, local, src, route=src)
        first.setdefault("a", float(la.detach())), first.setdefault("b", float(lb.detach()))
        opt.zero_grad()
        (la + lb).backward()
        opt.step()
    assert float(la) < first["a"] and float(lb) < 0.5 * first["b"]


def test_each_stage_draws_from_its_pool_with_its_extras(monkeypatch):
    """Stage A (the first quarter of the steps here) reads every window, stage B only the
    labelled ones; each batch carries the source of exactly its windows."""
    from edgehar.train.pretrain import pretrain

    m = tiny_teacher(reconstruction_fraction=0.25)
    n = 40
    subject = np.arange(n, dtype=np.int64)
    y = np.where(subject % 4 == 0, -1, subject % 4).astype(np.int64)  # a quarter unlabelled
    source = (subject % 2).astype(np.int64)
    seen = []
    real = CorpusFM.pretrain_loss

    def spy(self, batch):
        seen.append((batch["step"], batch["y"].clone(), batch["subject"].clone(), batch["source"].clone()))
        return real(self, batch)

    monkeypatch.setattr(CorpusFM, "pretrain_loss", spy)
    x = np.random.default_rng(0).normal(size=(n, 100, 3)).astype(np.float32)
    result = pretrain(m, x, y, subject, 8, batch_size=16, lr=2e-3, weight_decay=1e-4, progress=False,
                      extras={"source": source, "source_label": np.minimum(y, 1)}, schedule="one-cycle",
                      clip_norm=None)
    assert [p[1] for p in result.phases] == list(CorpusFM.phases) and result.phases[1][0] == 2
    for step, yb, sb, src in seen:
        assert torch.equal(src, sb % 2)  # the extras are the batch's own windows'
        if step >= 2:
            assert (yb >= 0).all()
    assert any((yb < 0).any() for step, yb, _, _ in seen if step < 2)


def test_corpus_teacher_trains_distils_and_its_teacher_pass_routes(corpus, tmp_path):
    from edgehar.data.wrist_corpus import train_part
    from edgehar.models.teacher import save_teacher
    from edgehar.recipes import CorpusTeacherRecipe, distill_corpus_student, train_corpus_teacher
    from edgehar.train.distill import DistillConfig, prepare_targets

    teacher, card, summary = train_corpus_teacher(CorpusTeacherRecipe(steps=6, batch_size=16), corpus,
                                                  progress=False)
    assert summary["steps"] == {"a": 1, "b": 5} and summary["classes"] == ["walking", "wave"]
    assert set(summary["validation"]) == {"generic", "own"}
    assert 0 <= summary["validation"]["generic"]["macro_f1"] <= 1
    assert card.provenance["metrics"]["validation"] == summary["validation"]
    assert card.arch["name"] == "corpus_fm" and len(card.text_prototypes) == 2
    save_teacher(tmp_path / "t.pt", teacher, card)
    loaded, lcard, _ = load_teacher(tmp_path / "t.pt")
    x = torch.from_numpy(card.normalise(train_part(corpus).x[:8]))
    assert torch.equal(loaded(x), teacher.eval()(x))

    # the teacher pass: each window through its own source's stem, in any batch composition
    part = train_part(corpus)
    route = teacher.route_for(part.sources, part.source)
    xn = card.normalise(part.x)
    targets = prepare_targets(teacher, card, xn, progress=False, route=route)
    for s in np.unique(part.source):
        rows = np.flatnonzero(part.source == s)[:5]
        with torch.no_grad():
            own = teacher.tokens(torch.from_numpy(xn[rows]), route=torch.full((len(rows),), int(s)))
        np.testing.assert_allclose(targets.tokens[rows], own.numpy(), rtol=1e-4, atol=1e-5)
    generic = prepare_targets(teacher, card, xn, progress=False)
    assert not np.allclose(generic.tokens, targets.tokens)

    for spec in ((teacher, card), str(tmp_path / "t.pt")):
        student, scard, history = distill_corpus_student(spec, corpus, "tiny", DistillConfig(steps=2, batch_size=16),
                                                         progress=False)
        assert scard.provenance["training"]["steps"] == 2 and len(history) >= 1
        assert scard.labels == card.labels and scard.provenance["training"]["train_windows"] == len(part.x)


@pytest.mark.parametrize("method", ["harfm", "relcon", "selfpab", "language"])
@pytest.mark.parametrize("data", ["corpus", "own"])
def test_every_family_pretrains_on_a_corpus_and_an_own_folder(method, data, corpus, own, tmp_path, capsys):
    folder = corpus if data == "corpus" else own
    out = tmp_path / "t.pt"
    code = main(["pretrain", "--method", method, "--data", str(folder), "--steps", "5", "--batch-size", "16",
                 "--checkpoint-every", "0", "--out", str(out), "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    teacher, card, _ = load_teacher(out)
    # harfm on a corpus is the corpus teacher: a stem per source data set
    assert card.arch["name"] == ("corpus_fm" if (method, data) == ("harfm", "corpus") else method)
    assert list(card.channels) == ["acc_x", "acc_y", "acc_z"]
    if data == "corpus":  # the corpus's windows, of its train split, unlabelled ones included
        from edgehar.data.wrist_corpus import train_part

        assert (card.rate, card.window) == (25.0, 50) and card.provenance["pretrain"]["windows"] == len(train_part(corpus).x)


def test_a_teacher_pretrained_on_a_corpus_finetunes_on_it(corpus, tmp_path, capsys):
    t = tmp_path / "t.pt"
    assert main(["pretrain", "--method", "selfpab", "--data", str(corpus), "--steps", "3", "--batch-size", "16",
                 "--checkpoint-every", "0", "--out", str(t)]) == 0
    assert main(["finetune", str(t), "--data", str(corpus), "--steps", "3", "--checkpoint-every", "0",
                 "--out", str(tmp_path / "ft.pt"), "--json"]) == 0, capsys.readouterr().err
    teacher, card, _ = load_teacher(tmp_path / "ft.pt")
    assert card.labels == ["walking", "wave"] and teacher.n_classes == 2


@pytest.mark.parametrize("step", [0, 9])  # stage A, stage B
def test_its_loss_makes_its_tensors_on_the_models_device(step):
    """As every family's (test_train_device.py): on the meta device, the noise, masks and routes
    the loss makes land beside the model, so the only failure is meta's lack of data-dependent
    operations, never a device mismatch, inside `device_scope` or not."""
    from edgehar.train import loop

    m = tiny_teacher()
    meta = torch.device("meta")
    m.to(meta)
    n = 8
    batch = loop.to_device({"x": torch.randn(n, 100, 3), "y": torch.arange(n) % 4, "subject": torch.arange(n),
                            "source": torch.arange(n) % 2, "source_label": torch.arange(n) % 2,
                            "step": step, "total_steps": 10, "generator": None}, meta)
    for scope in (loop.device_scope(meta), loop.device_scope(torch.device("cpu"))):
        with pytest.raises((RuntimeError, NotImplementedError)) as e, scope:
            m.pretrain_loss(batch)
        assert "meta" in str(e.value).lower() and "expected device" not in str(e.value)
