"""Model families. Each module offers `build(config: dict) -> torch.nn.Module`; a model card's
`arch = {"name": ..., "config": {...}}` names the family and its config, so a checkpoint can
rebuild its own model."""

from __future__ import annotations

import importlib

from edgehar.errors import UserError

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
}


def build(arch: dict):
    """Rebuild a model from a card's `arch` dict."""
    name = arch.get("name")
    if name not in FAMILIES:
        raise UserError(name, f"unknown model family (known: {', '.join(FAMILIES)})")
    module = importlib.import_module(FAMILIES[name])
    return module.build(arch)
