"""The figures a shipped model's zoo entry holds, computed one way for the zoo build
(`benchmarks/build_zoo.py`) and for the test that re-scores the shipped bytes
(`tests/test_zoo_shipped.py`).

Wrist models are scored on the test subjects of the pooled corpus (WISDM watch, DSADS arm
units, GeoTec watch; `CORPUS`) and on every Bangle.js recording (a watch no training set
came from); waist models on HAPT's official test subjects. Students are scored through their
int8 TFLite file (`edgehar.runtime.Predictor`), teachers through torch. Every figure is rounded
to `DIGITS` decimals, so that the same bytes on the same data give the same figures on any
machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgehar.bench.wrist import bangle_windows, macro_f1, score_row
from edgehar.data import hapt
from edgehar.data.corpus import build_corpus
from edgehar.data.datasets import activity_windows
from edgehar.data.wrist_corpus import load_part, relabel_to
from edgehar.runtime import Predictor

DIGITS = 4
WRIST_DATASETS = ("wisdm_watch", "dsads", "geotec_watch")
CORPUS = {"datasets": list(WRIST_DATASETS), "rate": 20.0, "window": 100}  # `edgehar data corpus build`
HAPT = {"rate": 50.0, "window": 128, "hop": 64}


def rounded(value):
    """`value` with every float rounded to DIGITS decimals (nested dicts and lists too)."""
    if isinstance(value, float):
        return round(value, DIGITS)
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v) for v in value]
    return value


def build_wrist_corpus(root: Path, out: Path) -> Path:
    """The wrist corpus the zoo's wrist models train and are scored on (built once into `out`)."""
    if not (out / "corpus.json").is_file():
        build_corpus(CORPUS["datasets"], CORPUS["rate"], CORPUS["window"], out, root=root)
    return out


@dataclass
class WristData:
    """The labelled test windows of each corpus data set and of Bangle.js, in a model's classes."""
    tests: dict
    bangle: object
    bangle_clean: object


def wrist_data(root: Path, corpus: Path, card) -> WristData:
    labels = list(card.labels)
    test = relabel_to(load_part(corpus, "test"), labels)
    tests = {ds: test.take(test.dataset == i).windows(labels, labelled_only=True)
             for i, ds in enumerate(test.manifest["datasets"])}
    bangle, clean = bangle_windows(root, card)
    return WristData(tests, bangle, clean)


def wrist_figures(predict, labels: list[str], data: WristData) -> dict:
    """Test macro-F1 per corpus data set, their pool mean, Bangle.js (4 classes) with and
    without user 1's sitting segment; `predict(x) -> class indices into labels`."""
    row = score_row("", predict, labels, data.tests, data.bangle, data.bangle_clean)
    out = {ds: row.get(ds) for ds in data.tests}
    out.update(pool_mean=row["pool_mean"], bangle=row["bangle"], bangle_clean=row["bangle_clean"],
               n={k: row.get(f"{k}_n") for k in (*data.tests, "bangle", "bangle_clean")})
    return rounded(out)


def hapt_data(root: Path, seed: int = 0):
    """(all windows, train, validation, test) of HAPT, 6 channels at 50 Hz, 2.56-s windows."""
    from edgehar.recipes import split_train_validation

    w = activity_windows("hapt", root / "hapt", rate=HAPT["rate"], window=HAPT["window"], hop=HAPT["hop"])
    return (w, *split_train_validation(w, hapt.TEST_SUBJECTS, seed))


def hapt_figures(predict, labels: list[str], test) -> dict:
    r = macro_f1([labels[i] for i in predict(test.x)], test)
    return rounded({"hapt": r["macro_f1"], "n": {"hapt": r["n"]}})


def int8_predict(artifact: Path):
    return Predictor(artifact).predict


def torch_predict(model, card):
    """Class indices of a torch model on raw windows (a corpus teacher through its generic stem)."""
    import torch

    from edgehar.models.inference import logits_of

    @torch.no_grad()
    def predict(x: np.ndarray) -> np.ndarray:
        model.eval()
        xn = card.normalise(x)
        out = [logits_of(model(torch.from_numpy(np.ascontiguousarray(xn[lo:lo + 1024])))).argmax(1).numpy()
               for lo in range(0, len(xn), 1024)]
        return np.concatenate(out) if out else np.zeros(0, np.int64)
    return predict


def language_predict(model, card):
    """Class indices of the language teacher, zero-shot by its labels' descriptions."""
    from edgehar.train.corpus_transfer import zero_shot_predict

    return lambda x: zero_shot_predict(model, card, x, list(card.labels), "descriptions")


def spread(runs: list[dict]) -> dict:
    """{figure: {"mean", "std", "runs"}} over seeds' figure dicts (numeric top-level keys)."""
    keys = [k for k, v in runs[0].items() if isinstance(v, (int, float)) and v is not None]
    return rounded({k: {"mean": float(np.mean([r[k] for r in runs])), "std": float(np.std([r[k] for r in runs])),
                        "runs": [r[k] for r in runs]} for k in keys})
