"""Model families. Each module offers `build(config: dict) -> torch.nn.Module`; a model card's
`arch = {"name": ..., "config": {...}}` names the family and its config, so a checkpoint can
rebuild its own model."""

from __future__ import annotations

import importlib
import os

from edgehar.card import ModelCard
from edgehar.checkpoint import load_checkpoint, load_weights
from edgehar.errors import UserError, first_line

FAMILIES = {
    "student": "edgehar.models.student",
    "harfm": "edgehar.models.harfm",
    "relcon": "edgehar.models.relcon",
    "selfpab": "edgehar.models.selfpab",
    "language": "edgehar.models.language",
    "limubert": "edgehar.models.limubert",
    "corpus_fm": "edgehar.models.corpus_fm",
    "cnn": "edgehar.models.baselines",
    "ignatov": "edgehar.models.baselines",
    "tinyhar": "edgehar.models.baselines",
    "tinyhar_tflm": "edgehar.models.baselines",
}


def build(arch: dict):
    """Rebuild a model from a card's `arch` dict."""
    name = arch.get("name")
    if name not in FAMILIES:
        raise UserError(name, f"unknown model family (known: {', '.join(FAMILIES)})")
    module = importlib.import_module(FAMILIES[name])
    return module.build(arch)


def load_model(path: str | os.PathLike, kind: str | None = None):
    """(model in eval mode, card) rebuilt from a checkpoint; `kind` checks card.kind."""
    ckpt = load_checkpoint(path)
    card = ckpt["card"]
    if kind is not None and card.kind != kind:
        raise UserError(path, f"is a {card.kind} checkpoint, expected a {kind}")
    model = build_from_card(card, path)
    load_weights(model, ckpt["state_dict"], path, card.arch.get("name"))
    return model.eval(), card


def build_from_card(card: ModelCard, path):
    """`build(card.arch)`; an architecture the card describes wrongly is a one-line error."""
    if not isinstance(card.arch, dict) or not card.arch.get("name"):
        raise UserError(path, "model card names no architecture (arch.name)")
    try:
        return build(card.arch)
    except UserError:
        raise
    except (KeyError, TypeError, ValueError) as e:
        raise UserError(path, f"model card arch {card.arch.get('name')!r} cannot be built "
                              f"({type(e).__name__}: {first_line(e, 100)})") from None
