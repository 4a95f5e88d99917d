"""The one way edgehar scores predictions: classes matched through the activity vocabulary, then
macro-F1 over the classes the data holds.

`eval`, `live`'s agreement in the demo, the benchmarks and the tests all score here, so a figure
means the same thing wherever it is printed. Class names are matched by the registry's
vocabulary (`edgehar/data/vocabulary.py` + each data set's label map in
`edgehar/data/registry.py`) and, for an own-data folder, by its manifest's `label_map`.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Sequence

import numpy as np

from edgehar.data.registry import REGISTRY
from edgehar.data.vocabulary import ACTIVITIES
from edgehar.metrics import report

OTHER = "(other)"  # the column of predictions outside the classes the data holds


def _key(name: str) -> str:
    return re.sub(r"[\s_\-]+", " ", name.strip().lower())


@cache
def _known() -> dict[str, str]:
    """Every class name the registry knows (its own and the canonical ones), normalised ->
    canonical name."""
    known = {_key(c): c for c in ACTIVITIES}
    for ds in REGISTRY.values():
        for own, canon in ds.labels.items():
            known.setdefault(_key(own), canon)
    return known


def canonical(name: str, label_map: dict[str, str] | None = None) -> str:
    """`name` on the activity vocabulary: the data's own `label_map` first, then the registry's
    names; a name neither knows stays as it is (normalised)."""
    if label_map and name in label_map:
        return label_map[name]
    return _known().get(_key(name), _key(name))


def class_matches(data_names: Sequence[str], model_names: Sequence[str],
                  data_canonical: Sequence[str] = ()) -> dict[int, int]:
    """data class id -> model class id for the classes both know: the same name, else the same
    canonical name (`data_canonical[k]`: data class k on the vocabulary, as its loader or manifest
    says)."""
    exact = {n: i for i, n in enumerate(model_names)}
    by_canonical: dict[str, int] = {}
    for i, n in enumerate(model_names):
        by_canonical.setdefault(canonical(n), i)
    data_map = dict(zip(data_names, data_canonical))
    matches = {}
    for i, n in enumerate(data_names):
        if n in exact:
            matches[i] = exact[n]
        elif canonical(n, data_map) in by_canonical:
            matches[i] = by_canonical[canonical(n, data_map)]
    return matches


def score(truth: Sequence[str], pred: Sequence[str], order: Sequence[str] | None = None) -> dict:
    """macro-F1, accuracy, per-class F1 and confusion over the classes `truth` holds (in `order`
    when given, else sorted); a prediction of any other class is an error, counted in the
    confusion's last column. Empty `truth`: an empty report (macro-F1 nan)."""
    present = [c for c in order if c in set(truth)] if order is not None else sorted(set(truth))
    index = {c: i for i, c in enumerate(present)}
    other = len(present)
    y = np.array([index[t] for t in truth], dtype=np.int64)
    p = np.array([index.get(q, other) for q in pred], dtype=np.int64)
    r = report(y, p, [*present, OTHER])
    r["confusion"] = r["confusion"][:other]
    r["labels"] = present
    r["per_class_f1"] = {c: r["per_class_f1"][c] for c in present}
    r["macro_f1"] = float(np.mean(list(r["per_class_f1"].values()))) if present else float("nan")
    return r
