"""LIMU-BERT: its UCI preprocessing rebuilt from HAPT raw, and its published weights loaded."""

import numpy as np
import pytest
import torch

from edgehar.checkpoint import save_checkpoint

from edgehar.models import load_model
from edgehar.data import limu
from edgehar.errors import UserError
from edgehar.metrics import report
from edgehar.models import build
from edgehar.models.limubert import BASE_V1, GRU_V1, LimuBertClassifier, _load_strict, teacher_from_spec


@pytest.fixture(scope="module")
def uci(data_root):
    return limu.limu_uci_windows(data_root / "hapt")


@pytest.fixture(scope="module")
def teacher(data_root):
    return teacher_from_spec(f"limu-bert:{data_root / 'limu_bert'}")


def test_block_average_alternates_two_and_three():
    data = np.arange(20, dtype=np.float64)[:, None]
    out = limu.block_average(data, 0, 20)
    # blocks [0,1] [2,3,4] [5,6] [7,8,9] [10,11] [12,13,14] [15,16]; [17..19] would reach the end
    assert out[:, 0].tolist() == [0.5, 3.0, 5.5, 8.0, 10.5, 13.0, 15.5]
    assert limu.block_average(data, 2, 9, ratio=2.0)[:, 0].tolist() == [2.5, 4.5, 6.5]


def test_uci_windows_equal_the_published_ones(uci, data_root):
    assert uci.x.shape == (2088, 120, 6) and uci.rate == 20.0 and uci.hop == 120
    assert tuple(np.bincount(uci.y)) == limu.CLASS_COUNTS
    assert uci.units[:3] == ("m/s^2",) * 3 and uci.label_names[-1] == "lying"
    y, user = limu.reference_labels(data_root / "limu_bert")
    np.testing.assert_array_equal(uci.y, y)  # same order, window by window
    np.testing.assert_array_equal(uci.subject, user)
    # gravity in m/s^2: lying still, the acc magnitude is about 9.8
    lying = uci.x[uci.y == 5, :, :3]
    assert np.median(np.linalg.norm(lying, axis=-1)) == pytest.approx(9.8, abs=0.5)


def test_model_shapes_without_weights():
    torch.manual_seed(0)
    m = LimuBertClassifier(BASE_V1, GRU_V1).eval()
    x = torch.randn(3, 120, 6)
    assert m(x).shape == (3, 6) and m.features(x).shape == (3, 72)
    assert m.tokens(x).shape == (3, 120, 72) and m.chunk_logits(x).shape == (3, 6, 6)
    with pytest.raises(ValueError):
        m(torch.randn(1, 100, 6))


def test_published_weights_load_strictly(data_root, teacher):
    model, card = teacher
    assert len(model.encoder.state_dict()) == 29 and len(model.head.state_dict()) == 14
    assert card.kind == "teacher" and card.rate == 20 and card.window == 120 and card.hop == 120
    assert card.norm_std == [9.8, 9.8, 9.8, 1.0, 1.0, 1.0]
    partial = dict(model.head.state_dict())
    partial.pop("lin0.bias")
    with pytest.raises(UserError, match="do not fit"):
        _load_strict(LimuBertClassifier().head, partial, "head.pt")


@pytest.mark.slow
def test_published_classifier_on_the_2088_windows(uci, teacher):
    model, card = teacher
    with torch.no_grad():
        pred = torch.cat([model(torch.from_numpy(card.normalise(uci.x[i:i + 512]))).argmax(1)
                          for i in range(0, len(uci), 512)]).numpy()
    r = report(uci.y, pred, card.labels)
    print(f"LIMU-BERT on 2088 UCI windows: accuracy {r['accuracy']:.4f}, macro-F1 {r['macro_f1']:.4f}")
    assert r["accuracy"] >= 0.80


def test_checkpoint_round_trip(teacher, tmp_path, uci):
    model, card = teacher
    save_checkpoint(tmp_path / "limu.pt", model, card)
    again, card2 = load_model(tmp_path / "limu.pt", kind="teacher")
    assert card2.arch == card.arch and card2.labels == card.labels
    x = torch.from_numpy(card.normalise(uci.x[:8]))
    with torch.no_grad():
        torch.testing.assert_close(again(x), model(x))
    assert isinstance(build(card.arch), LimuBertClassifier)


@pytest.mark.parametrize("spec", ["limu-bert:", "limubert:/x", "limu-bert:/no/such/folder"])
def test_bad_teacher_specs_are_user_errors(spec):
    with pytest.raises(UserError):
        teacher_from_spec(spec)
