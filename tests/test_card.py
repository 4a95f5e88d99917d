import json

import numpy as np
import pytest
import torch

from edgehar.card import ModelCard, default_streams
from edgehar.checkpoint import load_checkpoint, save_checkpoint
from edgehar.errors import UserError


def card(**kw):
    base = dict(labels=["walk", "sit"], rate=50.0, window=128, hop=64,
                channels=["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"],
                units=["g"] * 3 + ["rad/s"] * 3, norm_mean=[0.0] * 6, norm_std=[2.0] * 6)
    base.update(kw)
    return ModelCard(**base)


def test_json_round_trip_and_streams():
    c = card(prompts={"walk": "The status or/and activity of the subject is: walk."})
    again = ModelCard.from_json(c.to_json())
    assert again == c
    assert c.streams == {"acc": [0, 1, 2], "gyro": [3, 4, 5]}
    assert default_streams(["x"]) == {"x": [0]}


def test_normalise_and_check_input():
    c = card()
    np.testing.assert_allclose(c.normalise(np.full((1, 128, 6), 4.0)), 2.0)
    c.check_input(50.0, c.channels)
    with pytest.raises(UserError, match="20 Hz does not match the model's 50 Hz"):
        c.check_input(20.0, c.channels, "stream")
    with pytest.raises(UserError, match="3 channels"):
        c.check_input(50.0, ["a", "b", "c"], "stream")


def test_bad_card_json_is_a_user_error():
    with pytest.raises(UserError, match="not valid JSON"):
        ModelCard.from_json("{nope", "x.json")
    with pytest.raises(UserError, match="lacks"):
        ModelCard.from_json(json.dumps({"labels": []}), "x.json")


def test_checkpoint_round_trip_and_bad_files(tmp_path):
    model = torch.nn.Linear(3, 2)
    path = tmp_path / "m.pt"
    save_checkpoint(path, model, card(), extra={"loss": [1.0]})
    ckpt = load_checkpoint(path)
    assert ckpt["card"] == card() and ckpt["extra"] == {"loss": [1.0]}
    assert torch.equal(ckpt["state_dict"]["weight"], model.weight)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="not a torch checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"weight": torch.zeros(1)}, tmp_path / "plain.pt")
    with pytest.raises(UserError, match="not an edgehar checkpoint"):
        load_checkpoint(tmp_path / "plain.pt")
    with pytest.raises(UserError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
