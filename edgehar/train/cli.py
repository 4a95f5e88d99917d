"""`edgehar pretrain` and `edgehar finetune`: the teacher steps of the flow."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from edgehar.cli_types import nonneg_int, positive_float, positive_int

METHODS = ("harfm", "relcon", "selfpab", "language")


def register(sub) -> None:
    p = sub.add_parser(
        "pretrain", help="self-supervised pre-training of a teacher",
        description="Pre-train a teacher foundation model without labels on every window of a data "
                    "set (unlabelled ones included) and save a checkpoint with its model card. "
                    "Runs unchanged under `torchrun --nproc_per_node N` (data-parallel; rank 0 "
                    "writes the checkpoint).")
    p.add_argument("--method", required=True, choices=METHODS, help="teacher family")
    p.add_argument("--data", default="hapt", help="data set (hapt, banglejs, axivity; default hapt)")
    p.add_argument("--root", help="data folder (default: $EDGEHAR_DATA/<data set folder>)")
    p.add_argument("--config", default="cpu",
                   help="model size: cpu (small, trains on a laptop) or paper (the published size)")
    p.add_argument("--steps", type=positive_int, default=2000, help="optimiser steps (default 2000)")
    p.add_argument("--batch-size", type=positive_int, default=64, help="windows per step and rank (default 64)")
    p.add_argument("--lr", type=positive_float, default=1e-3, help="peak learning rate (default 1e-3)")
    p.add_argument("--holdout-test", action="store_true",
                   help="leave the data set's test subjects out of pre-training")
    p.add_argument("--out", help="checkpoint path (default teacher-<method>.pt)")
    p.add_argument("--seed", type=nonneg_int, default=0, help="random seed (default 0)")
    p.add_argument("--threads", type=positive_int, help="torch CPU threads per process")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.set_defaults(func=run_pretrain)

    f = sub.add_parser(
        "finetune", help="supervised stage of a teacher (task head, HAR-FM stage B)",
        description="Fine-tune a pre-trained teacher on the labelled windows of the subject-disjoint "
                    "training split (HAPT: all but the official test subjects), then report "
                    "macro-F1 on the test subjects. HAR-FM runs its multi-task stage B.")
    f.add_argument("teacher", help="teacher checkpoint from `edgehar pretrain`")
    f.add_argument("--data", default="hapt", help="data set (default hapt)")
    f.add_argument("--root", help="data folder (default: $EDGEHAR_DATA/<data set folder>)")
    f.add_argument("--epochs", type=positive_int, default=10, help="passes over the training windows (default 10)")
    f.add_argument("--batch-size", type=positive_int, default=64, help="windows per step (default 64)")
    f.add_argument("--lr", type=positive_float, help="peak learning rate (default 1e-3, probe 1e-2)")
    f.add_argument("--linear-probe", action="store_true",
                   help="freeze the backbone and train only the task head")
    f.add_argument("--no-augment", action="store_true", help="no jitter/scale augmentation")
    f.add_argument("--out", help="checkpoint path (default <teacher>-finetuned.pt / -probe.pt)")
    f.add_argument("--seed", type=nonneg_int, default=0, help="random seed (default 0)")
    f.add_argument("--threads", type=positive_int, help="torch CPU threads")
    f.add_argument("--json", action="store_true", help="print the metrics as JSON")
    f.set_defaults(func=run_finetune)


def _check_data(name: str) -> None:
    from edgehar.data.datasets import DATASETS
    from edgehar.errors import UserError
    from edgehar.train.pretrain import SYNTHETIC

    if name not in DATASETS and name != SYNTHETIC:
        raise UserError(name, f"unknown data set (known: {', '.join(DATASETS)})")


def _check_out(path: str) -> None:
    """Fail before training, not after, when the checkpoint cannot be written."""
    from edgehar.checkpoint import check_checkpoint_out

    check_checkpoint_out(path)


def family_config(method: str, size: str, windows) -> dict:
    """The family's named config with the input format (and class names, which text-aligned
    families pre-train on) of `windows` filled in."""
    import importlib

    from edgehar.card import default_streams
    from edgehar.errors import UserError
    from edgehar.models import FAMILIES

    try:
        module = importlib.import_module(FAMILIES[method])
    except ModuleNotFoundError as e:
        if e.name != FAMILIES[method]:
            raise
        raise UserError(method, "this teacher family is not available in this build") from None
    configs = getattr(module, "CONFIGS", {})
    if size not in configs:
        raise UserError(size, f"unknown {method} config (known: {', '.join(configs)})")
    return {**configs[size], "channels": list(windows.channels), "window": int(windows.length),
            "rate": float(windows.rate), "streams": default_streams(windows.channels),
            "labels": list(windows.label_names)}


def run_pretrain(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from edgehar.data.splits import split_subjects
    from edgehar.errors import UserError
    from edgehar.models import build
    from edgehar.models.teacher import make_teacher_card, save_teacher
    from edgehar.train import ddp
    from edgehar.train.pretrain import load_windows, pretrain

    _check_data(args.data)
    if args.steps < 1 or args.batch_size < 1:
        raise UserError("--steps/--batch-size", "must be at least 1")
    out = args.out or f"teacher-{args.method}.pt"
    _check_out(out)
    if args.threads:
        torch.set_num_threads(args.threads)
    ctx = ddp.setup()
    try:
        windows, test_subjects = load_windows(args.data, args.root)
        if args.holdout_test and test_subjects:
            windows, _ = split_subjects(windows, test_subjects)
        torch.manual_seed(args.seed)  # same initial weights on every rank
        teacher = build({"name": args.method, "config": family_config(args.method, args.config, windows)})
        mean, std = teacher.normalisation(windows)  # the family's choice (language: rotation-safe)
        x = ((windows.x - np.float32(mean)) / np.float32(std)).astype(np.float32)
        result = pretrain(teacher, x, windows.y, windows.subject, args.steps, args.batch_size,
                          args.lr, seed=args.seed, ctx=ctx)
        # first/final loss of the last stage (RelCon: the encoder's relative contrastive loss)
        phases = {name: [c[0][1], c[-1][1]] for name, c in result.phase_curves().items() if c}
        last = list(phases.values())[-1]
        summary = {"method": args.method, "config": args.config, "data": args.data,
                   "windows": len(windows), "subjects": sorted(set(windows.subject.tolist())),
                   "steps": args.steps, "batch_size": args.batch_size, "world_size": ctx.world,
                   "seed": args.seed, "seconds": round(result.seconds, 1),
                   "first_loss": last[0], "final_loss": last[1], "phases": phases, "out": out}
        if ctx.main:
            card = make_teacher_card(teacher, windows, mean, std, stage="pretrain",
                                     pretrain={k: v for k, v in summary.items() if k != "out"})
            save_teacher(out, teacher, card, extra={"loss_curve": result.loss_curve,
                                                    "last_logs": result.last_logs})
            if args.json:
                print(json.dumps(summary, indent=2))
            else:
                losses = ", ".join(f"{name} {a:.3f} -> {b:.3f}" for name, (a, b) in phases.items())
                print(f"{args.method}: loss {losses} in {args.steps} steps ({result.seconds:.0f} s) -> {out}")
        ddp.barrier(ctx)
    finally:
        ddp.teardown(ctx)
    return 0


def run_finetune(args: argparse.Namespace) -> int:
    import torch

    from edgehar.data.splits import split_subjects, validation_subjects
    from edgehar.errors import UserError
    from edgehar.models.teacher import load_teacher, save_teacher
    from edgehar.text import activity_prompt, embed_texts
    from edgehar.train.finetune import finetune
    from edgehar.train.pretrain import load_windows
    from edgehar.train.supervised import evaluate

    _check_data(args.data)
    if args.epochs < 1 or args.batch_size < 1:
        raise UserError("--epochs/--batch-size", "must be at least 1")
    stem = str(Path(args.teacher).with_suffix(""))
    out = args.out or f"{stem}-{'probe' if args.linear_probe else 'finetuned'}.pt"
    _check_out(out)
    teacher, card, extra = load_teacher(args.teacher)
    if args.threads:
        torch.set_num_threads(args.threads)
    windows, test_subjects = load_windows(args.data, args.root, card)
    card.check_input(windows.rate, windows.channels, where=args.data)
    if not test_subjects:
        test_subjects = validation_subjects(windows.subject, 0.2, args.seed)
    train, test = split_subjects(windows, test_subjects)
    if len(train.labelled()) == 0 or len(test.labelled()) == 0:
        raise UserError(args.data, "needs labelled windows on both sides of the subject split")
    card.labels = list(windows.label_names)
    card.tasks = {"activity": card.labels}
    card.prompts = {n: activity_prompt(n) for n in card.labels}
    t0 = time.perf_counter()
    history = finetune(teacher, train, card, args.epochs, args.batch_size, args.lr,
                       linear_probe=args.linear_probe, augment=not args.no_augment, seed=args.seed)
    metrics = evaluate(teacher, test, card)
    if teacher.text_dim:
        card.text_prototypes = embed_texts([card.prompts[n] for n in card.labels]).tolist()
    card.provenance["stage"] = "probe" if args.linear_probe else "finetune"
    card.provenance["finetune"] = {
        "data": args.data, "epochs": args.epochs, "batch_size": args.batch_size,
        "linear_probe": args.linear_probe, "seed": args.seed, "from": str(args.teacher),
        "train_subjects": sorted(set(train.subject.tolist())), "test_subjects": sorted(test_subjects),
        "epoch_losses": history, "seconds": round(time.perf_counter() - t0, 1)}
    card.provenance["metrics"] = {k: metrics[k] for k in ("macro_f1", "accuracy", "n", "per_class_f1")}
    save_teacher(out, teacher, card, extra={**extra, "confusion": metrics["confusion"]})
    summary = {"teacher": str(args.teacher), "out": out, **card.provenance["metrics"]}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"{card.arch['name']} {'linear probe' if args.linear_probe else 'fine-tuned'}: "
              f"macro-F1 {metrics['macro_f1']:.4f}, accuracy {metrics['accuracy']:.4f} "
              f"on {metrics['n']} test windows -> {out}", file=sys.stdout)
    return 0
