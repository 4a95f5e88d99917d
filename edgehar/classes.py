"""A model restricted to a subset of its own classes (`--classes A,B,...`).

A watch user wants walking, running, sitting, standing and lying, not "exercising on a cross
trainer": the model keeps its weights and answers among the chosen classes only.

- On the host (`eval`, `live`): `ClassSubset` wraps a `runtime.Predictor` with the same
  interface (as `zeroshot.ZeroShotPredictor` does): its scores are the chosen columns, its
  probabilities the softmax over those logits (= the full probabilities renormalised over the
  chosen classes), its card carries only their labels.
- At export: `slice_classes` cuts the last layer down to the chosen rows, so the int8 graph,
  the card and the C header carry only those outputs; `subset_card` is the card that goes with it.

A name the model does not have, a repeated name or fewer than two classes is a one-line error
(the list syntax at parse time, `cli_types.class_list`; the names once the model is loaded).
"""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np

from edgehar.cli_types import class_list
from edgehar.errors import UserError
from edgehar.runtime import probabilities
from edgehar.scoring import class_matches


# -- the flag ---------------------------------------------------------------------------------
def add_classes_flag(parser, what: str) -> None:
    """`--classes A,B,...` on a sub-command; `what` ends the help ("predictions", ...)."""
    parser.add_argument("--classes", type=class_list, metavar="A,B,...",
                        help="restrict the model to these of its own classes (at least two), "
                             f"e.g. \"walking,running,sitting,standing,lying\": {what}")


def refuse_with_labels(classes, labels) -> None:
    """`--classes` keeps some of the model's own classes; `--labels` scores new ones zero-shot
    from their text: two different things, so not both."""
    if classes and labels:
        raise UserError("--classes", "cannot be combined with --labels (--classes keeps some of the model's "
                                     "own classes; --labels scores classes zero-shot from their text)")


def class_indices(labels, classes, where) -> list[int]:
    """Positions of `classes` among the model's `labels`; an unknown name is a `UserError`
    naming the known ones."""
    labels, classes = list(labels), list(classes)
    if len(classes) < 2 or len(set(classes)) != len(classes):
        raise UserError(where, f"--classes needs at least two different classes, got {', '.join(classes) or 'none'}")
    for name in classes:
        if name not in labels:
            raise UserError(where, f"unknown class {name!r} (the model's classes: {', '.join(labels)})")
    return [labels.index(n) for n in classes]


def has_classes(card, classes) -> bool:
    """Whether the card's classes are exactly `classes` (the same names, in any order)."""
    return len(card.labels) == len(classes) and set(card.labels) == set(classes)


# -- the card ---------------------------------------------------------------------------------
def subset_card(card, classes, where=None):
    """`card` restricted to `classes`: labels, the main task (and the student's head size),
    prompts, per-class text prototypes (float, and int8 in the quantization when present)."""
    idx = class_indices(card.labels, classes, where or "model card")
    classes = list(classes)
    arch = copy.deepcopy(card.arch or {})
    cfg_tasks = (arch.get("config") or {}).get("tasks")
    tasks = dict(card.tasks or {})
    main = next(iter(tasks), None) or next(iter(cfg_tasks or {}), None)
    if main in tasks and list(tasks[main]) == list(card.labels):
        tasks[main] = list(classes)
    if isinstance(cfg_tasks, dict) and main in cfg_tasks:
        cfg_tasks[main] = len(classes)
    protos = card.text_prototypes
    if protos is not None and len(protos) == len(card.labels):
        protos = [protos[i] for i in idx]
    quant = dict(card.quantization or {})
    if len(quant.get("prototypes_int8") or []) == len(card.labels):
        quant["prototypes_int8"] = [quant["prototypes_int8"][i] for i in idx]
    prov = {**(card.provenance or {}), "classes": {"kept": list(classes), "of": list(card.labels)}}
    return replace(card, labels=list(classes), tasks=tasks,
                   prompts={k: v for k, v in (card.prompts or {}).items() if k in classes},
                   text_prototypes=protos, quantization=quant, arch=arch, provenance=prov)


# -- on the host --------------------------------------------------------------------------------
class ClassSubset:
    """A `Predictor` answering among `classes` only: the chosen columns of its scores, the
    softmax over them (the full probabilities renormalised over the chosen classes), the argmax
    among them, and a card carrying only their labels."""

    def __init__(self, predictor, classes: list[str]):
        self.predictor = predictor
        self.index = np.asarray(class_indices(predictor.card.labels, classes,
                                              getattr(predictor, "path", None) or "model"), np.int64)
        self.card = subset_card(predictor.card, classes)
        self.labels = list(self.card.labels)
        self.backend = predictor.backend
        self.n_classes = len(self.labels)
        self.output_kind = getattr(predictor, "output_kind", "logits")

    def predict_scores(self, windows_raw: np.ndarray) -> np.ndarray:
        """The model's scores (N, K) of the chosen classes."""
        return self.predictor.predict_scores(windows_raw)[:, self.index]

    def predict_proba(self, windows_raw: np.ndarray) -> np.ndarray:
        return probabilities(self.predict_scores(windows_raw), self.output_kind)

    def predict(self, windows_raw: np.ndarray) -> np.ndarray:
        return np.argmax(self.predict_scores(windows_raw), axis=-1)

    def describe(self) -> dict:
        return {**self.predictor.describe(), "classes": self.labels}


def restrict(predictor, classes):
    """`predictor` itself when `classes` is empty, else a `ClassSubset` of it."""
    return ClassSubset(predictor, classes) if classes else predictor


# -- at export --------------------------------------------------------------------------------
def slice_classes(model, card, classes, where=None):
    """(model, card) answering among `classes` only: a copy of `model` whose last layer keeps
    the chosen rows. A student (`edgehar.models.student`) slices its main-task head and its
    config; any other model the last `nn.Linear` with one output per class. A model with no
    such layer is a `UserError`."""
    from torch import nn

    where = where or "model"
    idx = class_indices(card.labels, classes, where)
    model = copy.deepcopy(model)
    heads = getattr(model, "heads", None)
    main = getattr(model, "main_task", None)
    if isinstance(heads, nn.ModuleDict) and main in heads:
        parent, name, layer = heads, main, heads[main]
    else:
        found = [(m, n, c) for m in model.modules() for n, c in m.named_children()
                 if isinstance(c, nn.Linear) and c.out_features == len(card.labels)]
        if not found:
            raise UserError(where, f"--classes needs a last linear layer with one output per class "
                                   f"({len(card.labels)}); this {(card.arch or {}).get('name') or 'model'} has none")
        parent, name, layer = found[-1]
    if not isinstance(layer, nn.Linear) or layer.out_features != len(card.labels):
        raise UserError(where, f"--classes: the main head is not a linear layer with {len(card.labels)} outputs")
    setattr(parent, name, _rows(layer, idx))
    cfg = getattr(model, "cfg", None)
    if isinstance(cfg, dict) and isinstance(cfg.get("tasks"), dict) and main in cfg["tasks"]:
        cfg["tasks"] = {**cfg["tasks"], main: len(idx)}
    return model.eval(), subset_card(card, classes, where)


def _rows(layer, idx):
    """A new `nn.Linear` holding the rows `idx` of `layer`."""
    import torch
    from torch import nn

    out = nn.Linear(layer.in_features, len(idx), bias=layer.bias is not None,
                    device=layer.weight.device, dtype=layer.weight.dtype)
    rows = torch.as_tensor(idx, dtype=torch.long, device=layer.weight.device)
    with torch.no_grad():
        out.weight.copy_(layer.weight.index_select(0, rows))
        if layer.bias is not None:
            out.bias.copy_(layer.bias.index_select(0, rows))
    return out


def in_model_classes(windows, labels):
    """`windows` labelled by the model's `labels` (index = class id): each data class matched by
    name or on the activity vocabulary (`scoring.class_matches`, as `edgehar eval` scores); a
    window of a class the model does not know becomes unlabelled (-1). Windows that name no
    classes are taken to be in the model's already."""
    if not windows.label_names:
        return windows
    match = class_matches(windows.label_names, labels, windows.canonical_names)
    y = np.array([match.get(int(v), -1) for v in windows.y], np.int64)
    return replace(windows, y=y, label_names=tuple(labels), canonical_names=())
