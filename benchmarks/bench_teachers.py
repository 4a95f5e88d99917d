"""Pre-train and fine-tune every teacher family on HAPT and report macro-F1 against the same
architecture with random weights.

    EDGEHAR_DATA=../shared/data python benchmarks/bench_teachers.py [--only harfm,relcon] \
        [--steps N] [--finetune-steps F]

Per family (those whose module exists: harfm, relcon, selfpab, language), "cpu" config:
1. self-supervised pre-training for `--steps` steps (batch 64) on every HAPT window of the
   TRAINING subjects, labelled or not (the test subjects' raw data is never seen);
2. linear probe (`finetune(..., linear_probe=True)`: a fresh head on the frozen backbone, 300 steps) of the pre-trained
   and of a randomly initialised copy;
   (`--transductive`: every subject's windows, as `edgehar pretrain --data hapt` does; the
   test subjects' signals are seen, never their labels; rows `<family>_transductive`);
3. full fine-tuning (`edgehar.train.finetune`, HAR-FM: multi-task stage B) for
   `--finetune-steps` optimiser steps of the pre-trained and of the random copy;
Pre-training and fine-tuning are `edgehar.recipes`' teacher recipe (what `edgehar pretrain` and
`edgehar finetune` run); the fine-tuning validation split (subjects drawn from the training
subjects) is reported beside the macro-F1 on the UCI-HAR official test subjects
(2,4,9,10,12,13,18,20,24). One CPU thread, seed 0. Rewrites `teachers.json` + `teachers.md`
whole (the families of this run) and writes the teachers to
`results/models/<family>_pretrained.pt` / `<family>_finetuned.pt`.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import os
import sys
import time
from pathlib import Path

import torch

from edgehar.atomic import write_json, write_text
from edgehar.data import hapt
from edgehar.data.datasets import activity_windows
from edgehar.bench.provenance import Run
from edgehar.models import FAMILIES, build
from edgehar.models.inference import evaluate
from edgehar.models.teacher import save_teacher
from edgehar.recipes import split_train_validation

HERE = Path(__file__).resolve().parent
ALL = ("harfm", "relcon", "selfpab", "language")


def linear_probe(teacher, train, test, card, steps: int = 300) -> dict:
    """Test scores of a linear probe: a fresh task head trained for `steps` on the frozen
    backbone (`finetune(..., linear_probe=True)`, the kit's one fine-tuning loop) of a copy of
    `teacher`, so the teacher itself goes on to fine-tuning untouched."""
    from edgehar.train.finetune import finetune

    probe = copy.deepcopy(teacher)
    finetune(probe, train, card, steps=steps, linear_probe=True, augment=False, progress=False)
    return evaluate(probe, test, card)


def available(only) -> list[str]:
    out = []
    for name in only:
        try:
            module = importlib.import_module(FAMILIES[name])
        except ModuleNotFoundError:
            print(f"bench_teachers: {name}: module missing, skipped", file=sys.stderr)
            continue
        if "cpu" in getattr(module, "CONFIGS", {}):
            out.append(name)
    return out


def run_family(name, windows, train, val, test, args, models: Path) -> dict:
    from edgehar.recipes import TeacherRecipe, finetune_teacher, pretrain_teacher

    # every training-subject window, unlabelled ones included; --transductive: every window of
    # every subject (the test subjects' signals, never their labels, as `edgehar pretrain` does)
    pre_windows = windows if args.transductive else train
    tag = name + ("" if args.config == "cpu" else f"_{args.config}") + ("_transductive" if args.transductive else "")
    recipe = TeacherRecipe(family=name, config=args.config, pretrain_steps=args.steps, pretrain_lr=args.lr,
                           finetune_steps=args.finetune_steps, seed=args.seed)
    teacher, card, result = pretrain_teacher(recipe, pre_windows)
    save_teacher(models / f"{tag}_pretrained.pt", teacher, card, extra={"loss_curve": result.loss_curve})
    torch.manual_seed(args.seed + 1)
    random_teacher = build(teacher.arch)
    # the control keeps the same input pipeline (SelfPAB: per-cell spectrogram statistics;
    # `pretrain` fits the teacher's): only the weights stay random
    random_teacher.fit_statistics(torch.from_numpy(card.normalise(pre_windows.x)))
    params = sum(p.numel() for p in teacher.parameters())

    t0 = time.perf_counter()
    probe = linear_probe(teacher, train.labelled(), test.labelled(), card)
    probe_random = linear_probe(random_teacher, train.labelled(), test.labelled(), card)
    probe_s = time.perf_counter() - t0

    random_card = copy.deepcopy(card)
    val_f1 = finetune_teacher(teacher, card, train, val, recipe, progress=False)["macro_f1"]
    fine = evaluate(teacher, test, card)  # test subjects: scored once, for the report
    card.provenance["metrics"]["test"] = {k: fine[k] for k in ("macro_f1", "accuracy", "n")}
    save_teacher(models / f"{tag}_finetuned.pt", teacher, card, extra={"confusion": fine["confusion"]})
    fine_random = None
    if not args.no_random_finetune:
        finetune_teacher(random_teacher, random_card, train, val, recipe, progress=False)
        fine_random = evaluate(random_teacher, test, random_card)
    pre = card.provenance["pretrain"]
    phases = pre["phases"]
    first, last = list(phases.values())[-1]
    return {
        "family": tag, "pretrain_subjects": "all" if args.transductive else "train",
        "params": params, "config": teacher.arch["config"], "pretrain_steps": args.steps,
        "pretrain_seconds": pre["seconds"], "finetune_steps": args.finetune_steps,
        "finetune_seconds": card.provenance["finetune"]["seconds"], "probe_seconds": round(probe_s, 1),
        "loss_first": first, "loss_last": last, "loss_phases": phases, "loss_curve": result.loss_curve,
        "phase_starts": result.phases, "normalisation": {"mean": card.norm_mean, "std": card.norm_std},
        "validation_macro_f1": val_f1,
        "finetuned_macro_f1": fine["macro_f1"], "finetuned_accuracy": fine["accuracy"],
        "random_finetuned_macro_f1": fine_random["macro_f1"] if fine_random else None,
        "probe_macro_f1": probe["macro_f1"], "random_probe_macro_f1": probe_random["macro_f1"],
        "per_class_f1": fine["per_class_f1"],
    }


def markdown(results: dict, meta: dict) -> str:
    f = lambda v: "-" if v is None else f"{v:.4f}"
    secs = lambda v: "-" if v is None else f"{v:.0f}"
    lines = [
        "# Teachers on HAPT (6 activities, official test subjects, 1 CPU thread)", "",
        f"Pre-training: every training-subject window ({meta['pretrain_windows']}, unlabelled "
        f"included; test subjects never seen, except in `*_transductive` rows: every subject's "
        f"signals, never the test labels), batch 64. Fine-tuning: {meta['train_labelled']} labelled "
        f"training windows, less validation subjects {meta['validation_subjects']}; test: "
        f"{meta['test_labelled']} windows.", "",
        "| teacher | params | pretrain steps | loss first -> last | validation F1 | fine-tuned F1 | "
        "random-init fine-tuned F1 | linear probe F1 | random-init probe F1 | pretrain s | finetune s (steps) |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results.values():
        # a family with stages: the last stage's loss, the earlier ones in brackets
        stages = "".join(f" ({n} {a:.3f} -> {b:.3f})" for n, (a, b) in list(r.get("loss_phases", {}).items())[:-1])
        lines.append(f"| {r['family']} | {r['params']:,} | {r['pretrain_steps']} | {r['loss_first']:.3f} -> "
                     f"{r['loss_last']:.3f}{stages} | {f(r['validation_macro_f1'])} | {f(r['finetuned_macro_f1'])} | {f(r['random_finetuned_macro_f1'])} | "
                     f"{f(r['probe_macro_f1'])} | {f(r['random_probe_macro_f1'])} | {secs(r['pretrain_seconds'])} | "
                     f"{secs(r['finetune_seconds'])} ({r['finetune_steps']}) |")
    prov = meta["provenance"]
    lines += ["", f"Command: `{prov['command']}` at commit `{prov['commit'][:12]}`, {prov['cpu_seconds'] / 60:.1f} "
              f"CPU minutes on {prov['hardware']['cpu']} ({prov['finished']})."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    from edgehar.train.flags import add_device_argument
    from edgehar.train.loop import use_device

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=os.environ.get("EDGEHAR_DATA"), help="EDGEHAR_DATA folder")
    p.add_argument("--out", default=str(HERE / "results"), help="results folder")
    p.add_argument("--only", default=",".join(ALL), help="comma-separated families")
    p.add_argument("--steps", type=int, default=3000, help="pre-training steps (default 3000)")
    p.add_argument("--finetune-steps", type=int, default=3000,
                   help="fine-tuning optimiser steps (default 3000: 30 passes over the 6385 labelled training windows)")
    p.add_argument("--lr", type=float, default=1e-3, help="pre-training peak learning rate")
    p.add_argument("--no-random-finetune", action="store_true", help="skip fine-tuning the random copy")
    p.add_argument("--transductive", action="store_true",
                   help="pre-train on every subject's windows (test subjects' signals, not labels); "
                        "results go under '<family>_transductive'")
    p.add_argument("--config", default="cpu", choices=["cpu", "paper"], help="model size: cpu (default) or paper")
    p.add_argument("--seed", type=int, default=0)
    add_device_argument(p)
    args = p.parse_args(argv)
    if not args.data:
        p.error("set EDGEHAR_DATA or pass --data")
    run = Run(__file__, argv, HERE.parent)
    torch.set_num_threads(1)
    use_device(args.device)
    out, models = Path(args.out), Path(args.out) / "models"
    models.mkdir(parents=True, exist_ok=True)
    windows = activity_windows("hapt", Path(args.data) / "hapt")
    train, val, test = split_train_validation(windows, hapt.TEST_SUBJECTS, args.seed)
    results = {}
    for name in available([n.strip() for n in args.only.split(",") if n.strip()]):
        print(f"== {name}", file=sys.stderr)
        r = run_family(name, windows, train, val, test, args, models)
        results[r["family"]] = r
        print(f"{r['family']}: validation {r['validation_macro_f1']:.4f}, fine-tuned {r['finetuned_macro_f1']:.4f} "
              f"(random {r['random_finetuned_macro_f1']}), probe {r['probe_macro_f1']:.4f} "
              f"(random {r['random_probe_macro_f1']:.4f})")
    meta = {"pretrain_windows": len(windows if args.transductive else train), "train_labelled": len(train.labelled()),
            "validation_subjects": sorted(set(val.subject.tolist())), "test_labelled": len(test.labelled()),
            "seed": args.seed, "test_subjects": list(hapt.TEST_SUBJECTS), "provenance": run.stamp()}
    write_json(out / "teachers.json", {"meta": meta, "results": results})
    write_text(out / "teachers.md", markdown(results, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
