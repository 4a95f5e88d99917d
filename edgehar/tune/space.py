"""What `edgehar tune` searches: the student's encoder, token count and head.

Per trial (Optuna's define-by-run): the convolution kernel; per encoder stage a width and a
stride (the strides set the token count: 128 samples with strides 2, 2, 3 give 11 tokens);
the token width d; the transformer layers (0 to 2) and, with layers, heads, feed-forward width
and the attention (softmax or softmax-free); the pooling (mean or attention). The four head
variants: softmax attention, softmax-free attention, attention pooling, plain mean pooling
(no layers, mean). `SMALLEST` is the cheapest point of the space: measured before any
training, it decides whether a budget can be met at all.
"""

from __future__ import annotations

import json
from pathlib import Path

from edgehar.errors import UserError
from edgehar.models.student import ATTENTIONS, POOLS, CustomSize

KERNELS = (3, 5, 7)
STAGE_WIDTHS = ((8, 12, 16, 24), (12, 16, 24, 32), (16, 24, 32, 48))
STAGE_STRIDES = ((2, 4), (2, 3), (2, 3, 4))
D = (16, 24, 32, 48)
LAYERS = (0, 1, 2)
HEADS = (1, 2, 4)  # every d above divides by each
FF = (32, 64, 96)

SMALLEST = {"kernel": 3, "widths": [w[0] for w in STAGE_WIDTHS],
            "strides": [max(s) for s in STAGE_STRIDES], "d": D[0], "layers": 0, "heads": 1,
            "ff": FF[0], "attention": "softmax", "pool": "mean"}


# Optuna's parameter names and their choices: what `suggest` draws and `params_of` checks
CHOICES = {"kernel": KERNELS, **{f"width{i}": w for i, w in enumerate(STAGE_WIDTHS)},
           **{f"stride{i}": s for i, s in enumerate(STAGE_STRIDES)}, "d": D, "layers": LAYERS, "pool": POOLS,
           "heads": HEADS, "ff": FF, "attention": ATTENTIONS}


def suggest(trial) -> dict:
    """A student size config drawn by an Optuna trial."""
    def pick(key):
        return trial.suggest_categorical(key, CHOICES[key])

    cfg = {"kernel": pick("kernel"),
           "widths": [pick(f"width{i}") for i in range(len(STAGE_WIDTHS))],
           "strides": [pick(f"stride{i}") for i in range(len(STAGE_STRIDES))],
           "d": pick("d"), "layers": pick("layers"), "pool": pick("pool")}
    if cfg["layers"]:
        cfg.update(heads=pick("heads"), ff=pick("ff"), attention=pick("attention"))
    else:  # unused without layers: fixed so equal models have equal configs
        cfg.update(heads=1, ff=FF[0], attention="softmax")
    return cfg


def params_of(cfg: dict) -> dict:
    """The Optuna parameters that `suggest` turns into `cfg` (to enqueue a known configuration);
    ValueError naming the first entry outside the space."""
    params = {"kernel": cfg["kernel"], "d": cfg["d"], "layers": cfg["layers"], "pool": cfg.get("pool", "mean")}
    params.update({f"width{i}": w for i, w in enumerate(cfg["widths"])})
    params.update({f"stride{i}": s for i, s in enumerate(cfg["strides"])})
    if cfg["layers"]:
        params.update(heads=cfg["heads"], ff=cfg["ff"], attention=cfg.get("attention", "softmax"))
    if len(cfg["widths"]) != len(STAGE_WIDTHS) or len(cfg["strides"]) != len(STAGE_STRIDES):
        raise ValueError(f"{len(STAGE_WIDTHS)} widths and {len(STAGE_STRIDES)} strides expected")
    for key, value in params.items():
        if value not in CHOICES[key]:
            raise ValueError(f"{key}={value!r} is not in the search space ({', '.join(map(str, CHOICES[key]))})")
    return params


def load_start(path) -> list[dict]:
    """Start configurations from a JSON file: a list of configurations, or an earlier tune's
    pareto.json (its front's configurations). UserError(path, what) when unreadable or outside
    the space."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(path, f"cannot read start configurations: {e.strerror or e}"
                        if isinstance(e, OSError) else f"not JSON: {e}") from None
    if isinstance(doc, dict) and "trials" in doc and "front" in doc:  # a pareto.json
        by_trial = {r.get("trial"): r for r in doc["trials"] if isinstance(r, dict)}
        doc = [by_trial[t]["config"] for t in doc["front"] if t in by_trial and "config" in by_trial[t]]
    if not isinstance(doc, list) or not doc or not all(isinstance(c, dict) for c in doc):
        raise UserError(path, "expected a JSON list of student configurations or a tune's pareto.json")
    for i, cfg in enumerate(doc):
        try:
            params_of(cfg)
        except (KeyError, TypeError, ValueError) as e:
            what = f"missing {e}" if isinstance(e, KeyError) else str(e)
            raise UserError(path, f"configuration {i + 1}: {what}") from None
    return doc


def head_variant(cfg: dict) -> str:
    """The head variant's name, for reports."""
    mixer = {"softmax": "softmax attention", "linear": "softmax-free attention"}[cfg["attention"]]
    pool = "attention pooling" if cfg["pool"] == "attention" else "mean pooling"
    return f"{cfg['layers']}x {mixer}, {pool}" if cfg["layers"] else pool


def encoder_text(cfg: dict) -> str:
    """A configuration's encoder as reports show it: kernel; widths; strides; d."""
    return f"{cfg['kernel']}; {'/'.join(map(str, cfg['widths']))}; {'/'.join(map(str, cfg['strides']))}; {cfg['d']}"


def size(name: str, cfg: dict) -> CustomSize:
    return CustomSize(name, cfg)
