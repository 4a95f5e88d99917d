"""Checkpoints: a torch file holding the weights *and* the model card that rebuilds them.

`{"format": FORMAT, "card": card.to_dict(), "state_dict": ..., "extra": {...}}`, loaded with
`weights_only=True` (no pickled code runs on load).
"""

from __future__ import annotations

import os

from edgehar.atomic import staged_file
from edgehar.card import ModelCard
from edgehar.errors import UserError, require_file

FORMAT = "edgehar-checkpoint/1"


def save_checkpoint(path: str | os.PathLike, model, card: ModelCard, extra: dict | None = None) -> None:
    """Write model weights + card atomically."""
    import torch

    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    with staged_file(path) as tmp:
        torch.save({"format": FORMAT, "card": card.to_dict(), "state_dict": state,
                    "extra": extra or {}}, tmp)


def load_checkpoint(path: str | os.PathLike) -> dict:
    """The checkpoint dict, with its card as a `ModelCard` under "card"."""
    import pickle
    import zipfile

    import torch

    path = require_file(path, "checkpoint")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile, EOFError, ValueError,
            KeyError, IndexError, TypeError) as e:
        raise UserError(path, f"not a torch checkpoint ({str(e).splitlines()[0][:120]})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise UserError(path, "not an edgehar checkpoint (no card; make it with pretrain, "
                              "finetune or distill)")
    ckpt["card"] = ModelCard.from_dict(ckpt["card"], where=path)
    return ckpt


def load_model(path: str | os.PathLike, kind: str | None = None):
    """(model in eval mode, card) rebuilt from a checkpoint; `kind` checks card.kind."""
    from edgehar.models import build

    ckpt = load_checkpoint(path)
    card = ckpt["card"]
    if kind is not None and card.kind != kind:
        raise UserError(path, f"is a {card.kind} checkpoint, expected a {kind}")
    model = build(card.arch)
    missing, unexpected = model.load_state_dict(ckpt["state_dict"], strict=False)
    if missing or unexpected:
        raise UserError(path, f"weights do not fit {card.arch.get('name')}: missing {list(missing)[:3]}, "
                              f"unexpected {list(unexpected)[:3]}")
    return model.eval(), card
