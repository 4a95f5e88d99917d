"""Foundation models on the wrist: the corpus teacher, accelerometer-only wrist students and
the baselines, scored on each data set's held-out test subjects and on Bangle.js; leave one
data set out, label efficiency and zero-shot on classes no training label named.

    EDGEHAR_DATA=../shared/data EDGEHAR_TOOLCHAINS=../shared/toolchains python benchmarks/bench_wrist.py [--update-readme]
        [--teacher-steps 3000,6000,12000] [--distill-steps 4000,12000,24000] [--baseline-steps 5110] [--work DIR]
        [--families relcon,selfpab,language] [--family-steps 1000,3000] [--family-finetune-steps 1000,3000]

One command: builds the pooled corpus (WISDM watch + DSADS + GeoTec watch, 20 Hz, 5-s windows;
accelerometer, in g; DSADS contributes its arm units), trains the HAR-FM corpus teacher
(`edgehar pretrain --method harfm --data CORPUS`'s code) at each candidate step count and keeps
the one with the best macro-F1 on the corpus's validation subjects, distils the tiny and small
students over the corpus's train windows (unlabelled ones included), keeps the step count with the
best validation macro-F1 and exports it full-int8,
trains the plain pooled CNN floor (exported full-int8 as the students are: its int8 row scored
through the int8 file, bytes, arena and Cortex-M4 / M55 instructions measured), the student
architecture from scratch on the corpus labels and today's HAPT student, and scores every row
once on the test subjects and on Bangle.js (4 classes; with and without user 1's sitting
segment, which is not sitting: ../shared/data/README.md). Each other teacher family
(--families) gets a row too: pre-trained on the corpus's train windows, fine-tuned on its
labels, both step counts chosen on validation.
Then, per data set X of WISDM and DSADS: the teacher recipe
trained without X, scored on X's test subjects (leave one out) and zero-shot on all of X's
classes by their text (X's own classes are unseen); on X, pre-trained vs random initialisation
fine-tuned with 1% and 10% of X's labels (3 seeds; steps chosen on X's validation subjects).
A checkpoint in --work is reused only through its content-hash manifest (the same recipe, the
same training code and the same corpus bytes; `edgehar.bench.manifest`). Writes
benchmarks/results/wrist.{json,md,png}; --update-readme rewrites the README's wrist section.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

from edgehar.bench.provenance import shown_path
from edgehar.bench.wrist import (TARGET, BANGLE_CLASSES, STUDENT_DISTILL, bangle_windows, macro_f1, markdown,
                                 score_row)

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
DATASETS = ["wisdm_watch", "dsads", "geotec_watch"]
LANGUAGE_STEPS = 3000
LODO_SETS = ["wisdm_watch", "dsads"]  # GeoTec holds 11 labelled windows: too few to score
ACC = ("acc_x", "acc_y", "acc_z")
INT8_CELLS = ("int8_bytes", "arena_bytes", "m4_instructions", "m55_instructions")  # measured on the int8 file


def torch_predict(model, card):
    from edgehar.models.inference import predict_logits
    return lambda x: predict_logits(model, card.normalise(x)).argmax(1)


def size_cells(model, card, export_dir: Path | None) -> dict:
    from edgehar.models.torch_macs import torch_macs

    out = {"params": int(sum(p.numel() for p in model.parameters())),
           "macs": int(torch_macs(model, torch.zeros(1, card.window, len(card.channels))))}
    if export_dir is not None:
        from edgehar.bench.measure import profile
        prof = profile(export_dir / "model_int8.tflite", 5)
        out["int8_bytes"], out["arena_bytes"] = prof.get("file_bytes"), prof.get("arena_bytes")
        # instructions per window on emulated Cortex-M4 / M55 with CMSIS-NN (absent without the toolchain)
        out.update({k: prof[k] for k in ("m4_instructions", "m55_instructions") if k in prof})
    return out


def floor_rows(name: str, checkpoint: Path, model, card, fp32_row: dict, train, export_dir: Path, int8_predict,
               scoring: tuple) -> list[dict]:
    """The CNN floor's fp32 row and its int8 row: exported full-int8 as the students are
    (`edgehar export`'s code, calibrated on the corpus train windows), scored through the int8
    file (`int8_predict(folder)` gives the predict function) and measured (int8 bytes, arena,
    Cortex-M4 / M55 instructions)."""
    from edgehar.export.pipeline import export_student

    shutil.rmtree(export_dir, ignore_errors=True)  # this script's own export, maybe of another checkpoint
    export_student(checkpoint, export_dir, windows=train, data="corpus train", progress=False, micro=False)
    sizes = size_cells(model, card, export_dir)
    int8 = score_row(f"{name} int8", int8_predict(export_dir), *scoring)
    return [{**fp32_row, **sizes, "kind": "baseline", **dict.fromkeys(INT8_CELLS)},  # fp32: no int8 figures
            {**int8, **sizes, "kind": "baseline int8"}]


def teacher_recipes(steps: list[int]):
    from edgehar.recipes import CorpusTeacherRecipe
    return {n: CorpusTeacherRecipe(steps=n) for n in steps}


# the code that trains every checkpoint here: editing any of it retrains them all
TRAIN_CODE = ["edgehar.train.pretrain", "edgehar.train.distill", "edgehar.train.supervised", "edgehar.train.schedule",
              "edgehar.recipes", "edgehar.models.corpus_fm", "edgehar.models.student", "edgehar.models.baselines",
              "edgehar.models.language", "edgehar.models.augment", "edgehar.models.teacher", "edgehar.text",
              "edgehar.data.corpus", "edgehar.data.windows"]
REUSED: list[str] = []  # checkpoints this run reused from --work (the report names them)
CHECKPOINTS = None  # (Manifest of --work, sha256 of the corpus), set by main


def corpus_sha256(corpus: Path) -> str:
    """Hash of every file of the corpus folder (its shards and manifest)."""
    import hashlib

    from edgehar.digest import file_sha256

    h = hashlib.sha256()
    for f in sorted(corpus.iterdir()):
        h.update(f.name.encode() + file_sha256(f).encode())
    return h.hexdigest()


def cached(name: str, recipe: dict, make, save) -> Path:
    """--work/`name`: `make()` saved by `save`, unless the manifest holds it under the same key
    (recipe, TRAIN_CODE and corpus)."""
    from edgehar.bench.manifest import content_key

    manifest, data_sha = CHECKPOINTS
    path, reused = manifest.build(name, content_key(recipe, TRAIN_CODE, data_sha), recipe,
                                  lambda p: save(p, *make()))
    if reused:
        REUSED.append(name)
    return path


def hapt_student(root: Path, steps: int) -> dict:
    """Today's deployed HAPT student (the demo's: accelerometer only, 50 Hz, 128-sample
    windows, waist phone), trained on HAPT's training subjects and scored on Bangle.js only:
    the pool's 20-Hz 5-s windows are not its input."""
    from edgehar.checkpoint import save_checkpoint
    from edgehar.models import load_model
    from edgehar.data import hapt
    from edgehar.data.datasets import activity_windows
    from edgehar.recipes import split_train_validation, train_student_supervised

    from edgehar.bench.manifest import windows_sha256

    w = activity_windows("hapt", root / "hapt", rate=50.0, window=128, hop=64, channels=list(ACC))
    train, _, _ = split_train_validation(w, hapt.TEST_SUBJECTS, 0)
    path = cached("hapt_small.pt", {"student": "small", "steps": steps, "hapt_windows": windows_sha256(train)},
                  lambda: train_student_supervised(train.labelled(), "small", steps=steps, progress=False,
                                                   data={"dataset": "hapt"}), save_checkpoint)
    model, card = load_model(path)
    bangle, clean = bangle_windows(root, card)
    row = score_row("HAPT-trained student small (today's demo model)", torch_predict(model, card),
                    list(card.labels), {}, bangle, clean)
    return {**row, **size_cells(model, card, None), "kind": "baseline",
            **{ds: None for ds in DATASETS}, "pool_mean": None}


def language_recipe(datasets=None) -> dict:
    return {"family": "language", "config": "cpu", "steps": LANGUAGE_STEPS, "datasets": datasets}


def language_teacher(corpus: Path, datasets=None):
    """(teacher, card): the sensor-language teacher (CLIP-style; random SO(3) rotations; each
    class's text = its canonical name's descriptions plus its source data sets' own names for it)
    pre-trained on the labelled train windows of the corpus (of `datasets`). Not tuned: 3000
    steps, the family's cpu config."""
    from edgehar.recipes import TeacherRecipe, pretrain_teacher
    from edgehar.data.wrist_corpus import canonical_classes, load_part, original_names, relabel

    train = load_part(corpus, "train", datasets=datasets)
    texts = original_names(train)  # before relabelling: it reads the corpus's canonical ids
    names, remap = canonical_classes(train)
    train = relabel(train, remap)
    recipe = TeacherRecipe(family="language", config="cpu", pretrain_steps=LANGUAGE_STEPS,
                           overrides={"placement": "wrist", "label_texts": texts})
    teacher, card, _ = pretrain_teacher(recipe, train.windows(names, labelled_only=True), progress=False)
    return teacher, card


FAMILIES = {"relcon": "RelCon", "selfpab": "SelfPAB", "language": "language"}  # besides HAR-FM's row


def family_list(text: str) -> list[str]:
    """--families: comma-separated teacher families of FAMILIES ("" for none), no repeats."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in FAMILIES]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown family {unknown[0]!r} (known: {', '.join(FAMILIES)})")
    if len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"a family named twice in {text!r}")
    return names


def step_list(text: str) -> list[int]:
    """Comma-separated candidate step counts, each >= 1, no repeats, sorted."""
    from edgehar.cli_types import positive_int

    steps = [positive_int(s) for s in text.split(",")]
    if len(set(steps)) != len(steps):
        raise argparse.ArgumentTypeError(f"a step count named twice in {text!r}")
    return sorted(steps)


def family_code(family: str) -> str:
    """Hash of the code a family's checkpoints depend on beyond TRAIN_CODE (its model, the
    fine-tuning loop): part of their keys without retraining every other checkpoint."""
    from edgehar.bench.manifest import code_sha256
    from edgehar.models import FAMILIES as MODULES

    return code_sha256([MODULES[family], "edgehar.train.finetune", "edgehar.models.inference"])


def family_teacher(family: str, corpus: Path, train, validation, pretrain_steps: list[int],
                   finetune_steps: list[int], log) -> tuple[Path, dict]:
    """(checkpoint, choice): `family` pre-trained on every train window of the corpus (unlabelled
    ones included, `edgehar pretrain --method FAMILY --data CORPUS`'s recipe; the language
    teacher with its zero-shot twin's wrist placement and class texts) at each of
    `pretrain_steps`, each fine-tuned (`recipes.finetune_teacher`) on the train labels for each
    of `finetune_steps`; the pair with the best validation macro-F1 wins (the fewer steps on a tie)."""
    from edgehar.data.wrist_corpus import load_part, original_names
    from edgehar.digest import file_sha256
    from edgehar.models.teacher import load_teacher, save_teacher
    from edgehar.recipes import TeacherRecipe, finetune_teacher, pretrain_teacher

    overrides = {}
    if family == "language":  # the corpus's own names for each class: more text to align with
        overrides = {"placement": "wrist", "label_texts": original_names(load_part(corpus, "train"))}
    code = family_code(family)
    scored = {}  # (pre-training, fine-tuning steps) -> (checkpoint, validation macro-F1)
    for n in pretrain_steps:
        recipe = TeacherRecipe(family=family, config="cpu", pretrain_steps=n, overrides=overrides)
        # the label texts derive from the corpus, whose bytes are in the key
        key = {**asdict(recipe), "overrides": sorted(overrides), "code": code}
        ppath = cached(f"{family}_{n}.pt", key, lambda r=recipe: pretrain_teacher(r, train, progress=False)[:2],
                       save_teacher)
        for m in finetune_steps:
            ft = replace(recipe, finetune_steps=m)

            def make(ppath=ppath, ft=ft):
                teacher, card, _ = load_teacher(ppath)
                finetune_teacher(teacher, card, train, validation, ft, progress=False)
                return teacher, card

            fpath = cached(f"{family}_{n}_finetuned_{m}.pt", {**key, "finetune_steps": m, "finetune": asdict(ft),
                                                             "pretrained_sha256": file_sha256(ppath)},
                           make, save_teacher)
            f1 = load_teacher(fpath)[1].provenance["metrics"]["validation"]["macro_f1"]
            scored[n, m] = (fpath, f1)
            log(family, n, "pre-training +", m, "fine-tuning steps: validation macro-F1", f1)
    best = max(scored, key=lambda nm: scored[nm][1])  # the first (fewest steps) on a tie
    choice = {"candidates": {f"{n}+{m}": v for (n, m), (_, v) in scored.items()},
              "pretrain_candidates": pretrain_steps, "finetune_candidates": finetune_steps,
              "chosen": {"pretrain_steps": best[0], "finetune_steps": best[1]}}
    return scored[best][0], choice


def family_rows(families: list[str], corpus: Path, train, validation, labels, tests, bangle, clean,
                args, log) -> tuple[list[dict], dict]:
    """(rows, choices): a fine-tuned teacher row per family of `families`, its steps chosen on validation."""
    from edgehar.models.teacher import load_teacher

    rows, choices = [], {}
    for family in families:
        path, choice = family_teacher(family, corpus, train, validation, args.family_steps,
                                      args.family_finetune_steps, log)
        teacher, card, _ = load_teacher(path)
        n, m = choice["chosen"]["pretrain_steps"], choice["chosen"]["finetune_steps"]
        name = (f"corpus {FAMILIES[family]} teacher, fine-tuned (steps chosen on validation: pre-training {n} of "
                f"{'/'.join(map(str, args.family_steps))}, fine-tuning {m} of "
                f"{'/'.join(map(str, args.family_finetune_steps))})")
        row = score_row(name, torch_predict(teacher, card), labels, tests, bangle, clean)
        rows.append({**row, **size_cells(teacher, card, None), "kind": "teacher", "family": family,
                     "validation": card.provenance["metrics"]["validation"]})
        choices[family] = choice
    return rows, choices


def leave_one_out(corpus: Path, recipe, full_teacher, full_card, args, log) -> dict:
    """Per held-out data set X: the corpus teacher trained without X, scored on X's test
    subjects (classes it shares) and zero-shot on all of X's classes by their text; on
    `args.label_sets`, 1% / 10% of X's labels fine-tune it against random initialisation."""
    from edgehar.metrics import chance, report
    from edgehar.models.teacher import load_teacher, save_teacher
    from edgehar.data.wrist_corpus import load_part
    from edgehar.models.inference import predict_logits
    from edgehar.recipes import train_corpus_teacher
    from edgehar.train.corpus_transfer import few_label_score, zero_shot_predict

    out = {}
    for held in LODO_SETS:
        others = [d for d in DATASETS if d != held]
        path = cached(f"teacher_without_{held}.pt", {**asdict(recipe), "datasets": others},
                      lambda: train_corpus_teacher(recipe, corpus, datasets=others, progress=False)[:2], save_teacher)
        teacher, card, _ = load_teacher(path)
        parts = {s: load_part(corpus, s, datasets=[held]) for s in ("train", "validation", "test")}
        names = [parts["train"].manifest["canonical"][c] for c in sorted(set(parts["train"].canonical[
            parts["train"].canonical >= 0].tolist()))]
        wins = {s: relabel_names(p, names) for s, p in parts.items()}
        test = wins["test"]
        seen = [n for n in names if n in card.labels]
        unseen = [n for n in names if n not in card.labels]
        r = {"classes": names, "seen_by_teacher": seen, "unseen": unseen, "test_windows": int(len(test))}
        # supervised transfer: the canonical head on the windows of the classes the teacher trained
        # without X knows, both teachers choosing among those classes only (a like-for-like pair)
        known = np.isin(test.y, [names.index(n) for n in seen])
        for key, (m, c) in {"without": (teacher, card), "with": (full_teacher, full_card)}.items():
            cols = [list(c.labels).index(n) for n in seen]
            logits = predict_logits(m, c.normalise(test.x[known]))[:, cols]
            r[f"macro_f1_{key}"] = macro_f1([seen[i] for i in logits.argmax(1)], test.take(known), None)["macro_f1"]
        r["seen_windows"] = int(known.sum())
        # zero-shot over every class of X, by text alone: HAR-FM's text head and the language teacher
        ch = chance(test.y, len(names))
        lang, lcard, _ = load_teacher(cached(f"language_without_{held}.pt", language_recipe(others),
                                             lambda: language_teacher(corpus, others), save_teacher))
        for key, (m, c, prompt) in {"zero_shot": (teacher, card, "activity"),
                                    "zero_shot_language": (lang, lcard, "descriptions")}.items():
            rep = report(test.y, zero_shot_predict(m, c, test.x, names, prompt), names)
            miss = [n for n in names if n not in c.labels]
            r[key] = {"macro_f1": rep["macro_f1"], "chance_macro_f1": ch["macro_f1"], "unseen": miss,
                      "per_class_f1": rep["per_class_f1"], "chance_per_class_f1": dict(zip(names, ch["per_class_f1"])),
                      "unseen_mean_f1": float(np.mean([rep["per_class_f1"][n] for n in miss])) if miss else None,
                      "unseen_chance_f1": float(np.mean([ch["per_class_f1"][names.index(n)] for n in miss]))
                      if miss else None}
        log("leave out", held, r["macro_f1_without"], "zero-shot", r["zero_shot"]["macro_f1"],
            r["zero_shot_language"]["macro_f1"])
        if held in args.label_sets:
            runs = {}
            for frac in args.fractions:
                for init_name, init in (("pretrained", teacher), ("random", None)):
                    scores = [few_label_score(init, teacher.arch, card, wins["train"], wins["validation"], test,
                                              names, frac, seed) for seed in args.seeds]
                    f1 = [s["test_macro_f1"] for s in scores]
                    runs[f"{frac:g}/{init_name}"] = {"mean": float(np.mean(f1)), "std": float(np.std(f1)),
                                                     "runs": scores}
                    log("labels", held, frac, init_name, runs[f"{frac:g}/{init_name}"]["mean"])
            r["label_efficiency"] = runs
        out[held] = r
    return out


def relabel_names(part, names: list[str]):
    from edgehar.data.wrist_corpus import relabel_to
    return relabel_to(part, names).windows(names, labelled_only=True)


def main(argv=None) -> int:
    global CHECKPOINTS, LANGUAGE_STEPS
    from edgehar.cli_types import positive_int

    from edgehar.train.flags import add_device_argument

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", help="corpus folder (default: built into --work)")
    p.add_argument("--work", default=str(RESULTS / "tmp" / "wrist"), help="checkpoints and exports")
    p.add_argument("--teacher-steps", default="3000,6000,12000",
                   help="candidate teacher step counts (a fifth stage A), chosen on validation")
    p.add_argument("--distill-steps", default="4000,12000,24000",
                   help="candidate distillation step counts per student, chosen on validation")
    p.add_argument("--language-steps", type=positive_int, default=3000,
                   help="pre-training steps of the language teachers (not tuned)")
    p.add_argument("--baseline-steps", type=positive_int, default=5110,
                   help="optimiser steps of the CNN floor and the scratch student (default 5110: 10 passes "
                        "over the corpus's labelled train windows)")
    p.add_argument("--hapt-steps", type=positive_int, default=1000,
                   help="optimiser steps of the HAPT student (default 1000: 10 passes over HAPT's labelled "
                        "training windows)")
    p.add_argument("--families", type=family_list, default=",".join(FAMILIES),
                   help="teacher families with a fine-tuned row besides HAR-FM's (default all: "
                        f"{','.join(FAMILIES)}; \"\" for none)")
    p.add_argument("--family-steps", type=step_list, default="1000,3000",
                   help="candidate pre-training step counts of those families, chosen on validation")
    p.add_argument("--family-finetune-steps", type=step_list, default="1000,3000",
                   help="candidate fine-tuning step counts of those families (each pre-training candidate is "
                        "fine-tuned with each), chosen on validation")
    p.add_argument("--fractions", default="0.01,0.1", help="label fractions of the label-efficiency runs")
    p.add_argument("--seeds", default="0,1,2", help="seeds of the label-efficiency runs")
    p.add_argument("--update-readme", action="store_true", help="rewrite the README's wrist section")
    p.add_argument("--label-sets", default="wisdm_watch,dsads", help="held-out data sets fine-tuned with few labels")
    add_device_argument(p)
    args = p.parse_args(argv)
    args.fractions = [float(f) for f in args.fractions.split(",")]
    args.seeds = [int(s) for s in args.seeds.split(",")]
    args.label_sets = args.label_sets.split(",")
    steps = [int(s) for s in args.teacher_steps.split(",")]
    args.distill_steps = [int(s) for s in args.distill_steps.split(",")]
    LANGUAGE_STEPS = args.language_steps

    from edgehar.bench.manifest import Manifest
    from edgehar.digest import file_sha256
    from edgehar.bench.provenance import Run
    from edgehar.checkpoint import save_checkpoint
    from edgehar.models import load_model
    from edgehar.data.corpus import build_corpus
    from edgehar.export.pipeline import export_student
    from edgehar.models.teacher import load_teacher, save_teacher
    from edgehar.recipes import (distill_corpus_student, train_baseline, train_corpus_teacher,
                                 train_student_supervised)
    from edgehar.runtime import Predictor
    from edgehar.data.wrist_corpus import load_part, relabel_to
    from edgehar.train.distill import DistillConfig
    from edgehar.train.loop import use_device

    torch.set_num_threads(1)
    use_device(args.device)
    run = Run(__file__, repo=HERE.parent)
    root = Path(os.environ.get("EDGEHAR_DATA", HERE.parent.parent / "shared" / "data"))
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    corpus = Path(args.corpus or work / "corpus20")
    if not (corpus / "corpus.json").is_file():
        build_corpus(DATASETS, 20.0, 100, corpus, root=root)
    CHECKPOINTS = (Manifest(work), corpus_sha256(corpus))
    log = lambda *a: print(*a, file=sys.stderr, flush=True)  # noqa: E731

    # the teacher recipe: step counts compared on the corpus validation split (generic stem)
    recipes = teacher_recipes(steps)
    candidates = {}
    for n, recipe in recipes.items():
        path = cached(f"teacher_harfm_{n}.pt", asdict(recipe),
                      lambda: train_corpus_teacher(recipe, corpus, progress=False)[:2], save_teacher)
        candidates[n] = (path, load_teacher(path)[1].provenance["metrics"]["validation"]["generic"]["macro_f1"])
        log("teacher", n, "steps: validation macro-F1", candidates[n][1])
    chosen = max(candidates, key=lambda n: candidates[n][1])
    tpath = candidates[chosen][0]
    teacher, tcard, _ = load_teacher(tpath)
    labels = list(tcard.labels)

    test = relabel_to(load_part(corpus, "test"), labels)
    tests = {ds: test.take(test.dataset == i).windows(labels, labelled_only=True)
             for i, ds in enumerate(test.manifest["datasets"])}
    bangle, clean = bangle_windows(root, tcard)

    rows = []
    row = score_row(f"corpus HAR-FM teacher ({chosen} steps, generic stem)", torch_predict(teacher, tcard),
                    labels, tests, bangle, clean)
    row.update(size_cells(teacher, tcard, None), kind="teacher", validation=tcard.provenance["metrics"]["validation"])
    rows.append(row)

    train = relabel_to(load_part(corpus, "train"), labels).windows(labels)
    val_l = relabel_to(load_part(corpus, "validation"), labels).windows(labels, labelled_only=True)
    student_choice = {}
    for size in ("tiny", "small"):
        scored, models = {}, {}  # distillation steps -> (checkpoint, validation macro-F1), (model, card)
        for n in args.distill_steps:
            config = DistillConfig(steps=n, **STUDENT_DISTILL)
            spath = cached(f"wrist_{size}_{n}.pt", {"student": size, "teacher_sha256": file_sha256(tpath),
                                                     **asdict(config)},
                           lambda: distill_corpus_student(str(tpath), corpus, size, config, progress=False),
                           lambda path, m, c, h: save_checkpoint(path, m, c, extra={"history": h}))
            model, card = models[n] = load_model(spath)
            scored[n] = (spath, macro_f1([labels[i] for i in torch_predict(model, card)(val_l.x)], val_l)["macro_f1"])
            log("student", size, n, "distillation steps: validation macro-F1", scored[n][1])
        steps_chosen = max(scored, key=lambda n: scored[n][1])
        student_choice[size] = {"candidates": {str(n): v for n, (_, v) in scored.items()}, "chosen": steps_chosen}
        spath, (model, card), edir = scored[steps_chosen][0], models[steps_chosen], work / f"wrist_{size}_export"
        shutil.rmtree(edir, ignore_errors=True)  # this script's own export, maybe of another checkpoint
        export_student(spath, edir, windows=train, data="corpus train", progress=False, micro=False)
        sizes = size_cells(model, card, edir)
        r = score_row(f"wrist student {size} fp32", torch_predict(model, card), labels, tests, bangle, clean)
        rows.append({**r, **sizes, "kind": "student", **dict.fromkeys(INT8_CELLS)})  # fp32: no int8 figures
        pred = Predictor(edir)
        r = score_row(f"wrist student {size} int8", pred.predict, labels, tests, bangle, clean)
        rows.append({**r, **sizes, "kind": "student int8"})
        if size == "small":  # zero-shot through the int8 embedding output, the label names as text
            from edgehar.zeroshot import ZeroShotPredictor
            zs = ZeroShotPredictor(pred, BANGLE_CLASSES)
            zrow = score_row("wrist student small int8, zero-shot (4 label names)", zs.predict,
                             BANGLE_CLASSES, tests, bangle, clean)
            rows.append({**zrow, **sizes, "kind": "zero-shot"})

    train_l = train.labelled()
    for name, path, make in (
            ("plain pooled CNN floor", "cnn_floor.pt",
             lambda: train_baseline("cnn", train_l, val_l, args.baseline_steps, progress=False)),
            ("student small from scratch (corpus labels)", "scratch_small.pt",
             lambda: train_student_supervised(train_l, "small", steps=args.baseline_steps, progress=False))):
        bpath = cached(path, {"model": path, "steps": args.baseline_steps}, make, save_checkpoint)
        model, card = load_model(bpath)
        r = score_row(name, torch_predict(model, card), labels, tests, bangle, clean)
        if card.kind != "baseline":  # the scratch student: a control for the distillation, fp32 only
            rows.append({**r, **size_cells(model, card, None), "kind": "baseline"})
            continue
        rows.extend(floor_rows(name, bpath, model, card, r, train, work / "cnn_floor_export",
                               lambda x: Predictor(x).predict, (labels, tests, bangle, clean)))
    rows.append(hapt_student(root, args.hapt_steps))
    from edgehar.train.corpus_transfer import zero_shot_predict
    lang, lcard, _ = load_teacher(cached("language.pt", language_recipe(), lambda: language_teacher(corpus), save_teacher))
    r = score_row(f"corpus language teacher, zero-shot by text ({len(lcard.labels)} label names)",
                  lambda x: zero_shot_predict(lang, lcard, x, list(lcard.labels), "descriptions"),
                  list(lcard.labels), tests, bangle, clean)
    lang.set_task(len(lcard.labels), list(lcard.labels))  # its head = the label texts: MACs of the zero-shot path
    rows.append({**r, **size_cells(lang, lcard, None), "kind": "zero-shot"})
    frows, family_choice = family_rows(args.families, corpus, train, val_l, labels, tests, bangle, clean, args, log)
    rows += frows

    lodo = leave_one_out(corpus, recipes[chosen], teacher, tcard, args, log)
    result = {"rows": rows, "labels": labels, "corpus": shown_path(corpus),
              "teacher_choice": {"candidates": {str(n): v for n, (_, v) in candidates.items()}, "chosen": chosen,
                                 "on": "corpus validation split, macro-F1 of the generic stem"},
              "student_choice": {"sizes": student_choice,
                                 "on": "corpus validation split, macro-F1 of the fp32 student"},
              "family_choice": {"families": family_choice,
                                "on": "corpus validation split, macro-F1 of the fine-tuned teacher"},
              "leave_one_out": lodo, "reused_checkpoints": sorted(set(REUSED)), "provenance": run.stamp()}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "wrist.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "wrist.md").write_text(markdown(result))
    plot(rows, RESULTS / "wrist.png")
    if args.update_readme:
        from edgehar.bench.table import update_readme
        update_readme(HERE.parent / "README.md", markdown(result), [("wrist macro-F1", RESULTS / "wrist.png")],
                      section="wrist", title="## Wrist: foundation model on the pooled corpus -> Bangle.js")
    print(markdown(result))
    return 0


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["name"] for r in rows]
    y = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(rows) + 1.5))
    ax.barh(y - 0.2, [r.get("bangle_clean") or 0 for r in rows], 0.4, label="Bangle.js w/o user 1 sitting")
    ax.barh(y + 0.2, [r.get("pool_mean") or 0 for r in rows], 0.4, label="pool test mean")
    ax.axvline(TARGET, color="k", ls="--", lw=1, label=f"target {TARGET}")
    ax.set_yticks(y, names, fontsize=8)
    ax.set_xlabel("macro-F1")
    ax.set_xlim(0, 1)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    sys.exit(main())
