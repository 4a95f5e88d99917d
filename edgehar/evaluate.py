"""`edgehar eval`: macro-F1, accuracy and confusion of any model file on real windows.

Works for a `.pt` checkpoint, a `.tflite` (float or int8) or an `.onnx` file, or an artifact
folder: everything about the input comes from the model's own card. When the data's classes are
named differently from the model's (a wrist set scored with a HAPT model), classes are matched
through the activity vocabulary (`edgehar.scoring`: `laying` = `lying`, an own-data folder's
`label_map`, ...); data classes the model does not know are left out and reported.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from edgehar import zoo
from edgehar.classes import add_classes_flag, refuse_with_labels, restrict
from edgehar.cli_types import label_list
from edgehar.data import hapt
from edgehar.data.datasets import windows_for_card
from edgehar.data.registry import DATA_HELP, data_arg
from edgehar.errors import UserError
from edgehar.runtime import Predictor
from edgehar.scoring import class_matches, score
from edgehar.zeroshot import ZeroShotPredictor


def evaluate_file(model_path, data: str = "hapt", root=None, split: str = "test",
                  backend: str | None = None, labels: list[str] | None = None,
                  classes: list[str] | None = None) -> dict:
    """Scores of a model file on data set `data` (HAPT: the official test subjects by default).
    `labels`: score these classes zero-shot (cosine of the embedding to their text) instead of
    the model's own head. `classes`: restrict the model to these of its own classes
    (`edgehar.classes`); the data's other classes are left out."""
    refuse_with_labels(classes, labels)
    predictor = restrict(Predictor(model_path, backend=backend), classes)
    if labels:
        predictor = ZeroShotPredictor(predictor, labels)
    card = predictor.card
    w = windows_for_card(card, data, root, hop=card.window // 2)
    if split == "test":
        if data != "hapt":
            raise UserError(data, "has no official test split: use --split all")
        w = w.take(np.isin(w.subject, hapt.TEST_SUBJECTS))
    w = w.labelled()
    mapping = class_matches(w.label_names, card.labels, w.canonical_names)
    if not mapping:
        raise UserError(data, f"no class in common with the model ({', '.join(card.labels)})")
    known = np.isin(w.y, list(mapping))
    left_out = sorted({w.label_names[c] for c in np.unique(w.y[~known])})
    w = w.take(known)
    truth = [card.labels[mapping[int(c)]] for c in w.y]
    pred = [card.labels[int(p)] for p in predictor.predict_proba(w.x).argmax(1)]
    r = score(truth, pred, order=card.labels)
    return {"model": str(model_path), "backend": predictor.backend, "data": data, "split": split,
            "zero_shot": bool(labels), "classes": list(classes) if classes else None,
            "windows": len(truth), "classes_left_out": left_out, **r}


def register(sub) -> None:
    p = sub.add_parser("eval", help="macro-F1, accuracy and confusion of a model on real windows",
                       description="Score a model (.pt checkpoint, .tflite, .onnx or an export folder) "
                                   "on real windows prepared exactly as its model card says. HAPT: "
                                   "the official test subjects unless --split all.")
    p.add_argument("model", help="a model file/folder or a zoo name (edgehar models; a student is "
                                 "scored as its shipped int8 model)")
    p.add_argument("--data", default="hapt", type=data_arg, help=DATA_HELP + " (default hapt)")
    p.add_argument("--root", help="data folder (default: $EDGEHAR_DATA/<data set folder>)")
    p.add_argument("--split", default=None, choices=["test", "all"],
                   help="windows to score (default: test for hapt, all otherwise)")
    p.add_argument("--backend", help="runtime: litert, tflite-runtime, onnxruntime, torch")
    p.add_argument("--labels", type=label_list, metavar="A,B,...",
                   help="score these classes zero-shot, by cosine of the model's embedding to each "
                        "label's text (a student distilled from a text-aligned teacher), e.g. "
                        "\"walking,running,sitting,lying\"")
    add_classes_flag(p, "probabilities renormalised over them, the argmax among them, the data's "
                        "other classes left out")
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    p.set_defaults(func=run_eval)


def run_eval(args: argparse.Namespace) -> int:
    refuse_with_labels(args.classes, args.labels)  # a flag conflict before any file is looked at
    split = args.split or ("test" if args.data == "hapt" else "all")
    r = evaluate_file(zoo.resolve(args.model, "model"), args.data, args.root, split, args.backend, args.labels, args.classes)
    if args.json:
        print(json.dumps(r, indent=2))
        return 0
    print(f"{r['model']} [{r['backend']}] on {r['data']} ({r['split']}, {r['windows']} windows)")
    print(f"  macro-F1 {r['macro_f1']:.4f}   accuracy {r['accuracy']:.4f}")
    if r["classes_left_out"]:
        print(f"  left out (unknown to the model): {', '.join(r['classes_left_out'])}")
    width = max(len(n) for n in r["labels"])
    print("  confusion (rows: true class, columns: predicted; the last column: any other class)")
    for name, row in zip(r["labels"], r["confusion"]):
        print(f"  {name:>{width}} " + " ".join(f"{v:6d}" for v in row))
    return 0
