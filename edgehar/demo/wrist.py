"""The demo's wrist flows: the pooled wrist corpus, its teacher and accelerometer-only student
(training flow), and Bangle.js user 2, the watch no training step saw, whose whole recording every
wrist flow streams into `live` (the deploy flow's and the training flow's figure alike).

The corpus is `benchmarks/bench_wrist.py`'s (WISDM watch + DSADS arm units + GeoTec watch at
20 Hz, 100-sample windows); the recipe is `edgehar.recipes`' (`train_corpus_teacher`,
`distill_corpus_student`): this module only sizes it from the demo's plan and scores it once on
the corpus's test subjects.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgehar.checkpoint import save_checkpoint
from edgehar.data.banglejs import load_banglejs
from edgehar.data.corpus import build_corpus, read_manifest
from edgehar.data.windows import Windows
from edgehar.data.wrist_corpus import load_part, relabel_to
from edgehar.demo.live import Replay
from edgehar.errors import UserError
from edgehar.metrics import report
from edgehar.models.torch_macs import torch_macs

WRIST_SETS = ("wisdm_watch", "dsads", "geotec_watch")  # bench_wrist's corpus
BANGLE = "banglejs_wrist"
RATE, WINDOW = 20.0, 100  # 5-s windows at 20 Hz (WISDM's own rate)
RECORDING = "banglejs_wrist user 2"  # how the live figures name it
REPLAY_USER = 2  # user 1's "sitting" segment is not sitting ($EDGEHAR_DATA/README.md)


def wrist_root_missing(root: Path) -> list[str]:
    """The folders of the wrist flow that `root` lacks ([] when it can run there)."""
    return [d for d in (*WRIST_SETS, BANGLE) if not (root / d).is_dir()]


def build_or_reuse_corpus(root: Path, out: Path, hop: int | None, log=None) -> tuple[Path, dict]:
    """The pooled corpus in `out/corpus`, built unless a previous demo left the same one there."""
    folder = out / "corpus"
    hop = hop or WINDOW // 2
    if (folder / "corpus.json").is_file():
        m = read_manifest(folder)
        if (m["datasets"], m["rate"], m["window"], m["hop"]) == (list(WRIST_SETS), RATE, WINDOW, hop):
            return folder, m
        raise UserError(folder, f"holds another corpus ({', '.join(m['datasets'])}, {m['rate']:g} Hz, window "
                                f"{m['window']}, hop {m['hop']}): use another --out")
    if folder.exists():
        raise UserError(folder, "exists and is not a corpus: use another --out")
    return folder, build_corpus(list(WRIST_SETS), RATE, WINDOW, folder, hop=hop, root=root, log=log)


def bangle_replay(root: Path):
    """Bangle.js user 2's whole recording (acc in g at 50 Hz, labelled) as the live step's
    `Replay`: the recording every wrist flow streams and scores."""
    folder = root / BANGLE
    if not folder.is_dir():
        raise UserError(root, f"has no {BANGLE}/ folder (the demo streams Bangle.js user {REPLAY_USER}'s "
                              "recording from it)")
    recs = [r for r in load_banglejs(folder) if int(r.subject) == REPLAY_USER]
    if not recs:
        raise UserError(folder, f"no recording of user {REPLAY_USER} (the demo replays it: user 1's "
                                "sitting segment is not sitting)")
    rec = recs[0]
    return Replay(Path(rec.source), rec, name=RECORDING, note=f"{rec.source}: real Bangle.js, left wrist, user {REPLAY_USER}, "
                  f"whole recording ({len(rec.data) / rec.rate / 60:.0f} min: running, walking, sitting, lying)")


def corpus_windows(corpus: Path, split: str, labels: list[str], labelled_only: bool = False):
    return relabel_to(load_part(corpus, split), labels).windows(labels, labelled_only=labelled_only)


def score(model, card, w) -> dict:
    """macro-F1 / accuracy / n of a model on labelled windows, overall and per data set."""
    from edgehar.models.inference import predict_logits

    pred = predict_logits(model, card.normalise(w.x)).argmax(1)
    out = {k: report(w.y, pred, list(card.labels))[k] for k in ("macro_f1", "accuracy", "n")}
    dataset = w.subject // 100_000  # CorpusPart.windows: subject = data set index * 100000 + subject
    out["per_dataset"] = {name: {k: report(w.y[dataset == i], pred[dataset == i], list(card.labels))[k]
                                 for k in ("macro_f1", "n")}
                          for i, name in enumerate(WRIST_SETS) if (dataset == i).any()}
    out["n"] = int(np.sum(w.y >= 0))
    return out


def step_wrist_teacher(corpus: Path, plan: dict, out: Path, seed: int) -> dict:
    """The corpus HAR-FM teacher; its test subjects are scored once, for the report."""
    from edgehar.models.teacher import save_teacher
    from edgehar.recipes import CorpusTeacherRecipe, train_corpus_teacher

    steps, stage_a = plan["teacher_steps"], plan["stage_a_steps"]
    recipe = CorpusTeacherRecipe(steps=steps, reconstruction_fraction=stage_a / steps, seed=seed)
    teacher, card, summary = train_corpus_teacher(recipe, corpus, progress=False)
    labels = list(card.labels)
    test = corpus_windows(corpus, "test", labels, labelled_only=True)
    metrics = score(teacher, card, test)
    card.provenance.setdefault("metrics", {})["test"] = {k: metrics[k] for k in ("macro_f1", "accuracy", "n")}
    path = out / "teacher.pt"
    save_teacher(path, teacher, card, extra={"pretrain": summary})
    return {"path": path, "model": teacher, "card": card, "config": f"corpus HAR-FM, {steps} steps "
            f"({stage_a} masked reconstruction + {steps - stage_a} multi-task)",
            "params": sum(p.numel() for p in teacher.parameters()), "labels": labels,
            "macro_f1": metrics["macro_f1"], "accuracy": metrics["accuracy"], "test_windows": metrics["n"],
            "per_dataset": metrics["per_dataset"], "validation": summary["validation"],
            "validation_macro_f1": (summary["validation"].get("generic") or {}).get("macro_f1"),
            "train_windows": summary["windows"], "labelled_windows": summary["labelled"]}


def step_wrist_student(corpus: Path, teacher: dict, plan: dict, out: Path, seed: int) -> dict:
    """The accelerometer-only student distilled over the corpus's train windows (bench_wrist's
    distillation settings), scored once on the test subjects."""
    import torch

    from edgehar.models.student import count_params
    from edgehar.recipes import distill_corpus_student
    from edgehar.train.distill import DistillConfig

    cfg = DistillConfig(steps=plan["distill_steps"], batch_size=128, lr=3e-3, augment=True,
                        seed=seed)
    student, card, history = distill_corpus_student(str(teacher["path"]), corpus, plan["student"], cfg,
                                                    progress=False)
    test = corpus_windows(corpus, "test", list(card.labels), labelled_only=True)
    metrics = score(student, card, test)
    card.provenance.setdefault("metrics", {})["test"] = {k: metrics[k] for k in ("macro_f1", "accuracy", "n")}
    path = out / "student.pt"
    save_checkpoint(path, student, card, extra={"history": history})
    macs = int(torch_macs(student, torch.zeros(1, card.window, len(card.channels))))
    return {"path": path, "size": plan["student"], "params": count_params(student), "macs": macs,
            "labels": list(card.labels),
            "macro_f1": metrics["macro_f1"], "accuracy": metrics["accuracy"],
            "per_dataset": metrics["per_dataset"], "distill_steps": plan["distill_steps"]}


def export_windows(corpus: Path, labels: list[str]):
    """(windows, test subjects) for `export_student`: calibration draws from the corpus's train
    windows, parity runs on its test subjects."""
    train = corpus_windows(corpus, "train", labels)
    test = corpus_windows(corpus, "test", labels)
    return Windows.concat([train, test]), sorted(int(s) for s in np.unique(test.subject))
