"""`edgehar pretrain` and `edgehar finetune`: the teacher steps of the flow."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edgehar.cli_types import nonneg_int, positive_float, positive_int, threads
from edgehar.train.flags import add_device_argument, add_resume_arguments

METHODS = ("harfm", "relcon", "selfpab", "language")


def register(sub) -> None:
    p = sub.add_parser(
        "pretrain", help="self-supervised pre-training of a teacher",
        description="Pre-train a teacher foundation model without labels on every window of a data "
                    "set (unlabelled ones included) and save a checkpoint with its model card. "
                    "Runs unchanged under `torchrun --nproc_per_node N` (data-parallel; rank 0 "
                    "writes the checkpoint).")
    p.add_argument("--method", required=True, choices=METHODS, help="teacher family")
    p.add_argument("--data", default="hapt", help="data set name, own-data folder, or a corpus folder (`edgehar data corpus "
                        "build`: its train split's wrist acc windows; harfm trains the corpus teacher, a stem per "
                        "source) (default hapt; see `edgehar data summary -h`)")
    p.add_argument("--root", help="data folder (default: $EDGEHAR_DATA/<data set folder>)")
    p.add_argument("--no-verify", action="store_true",
                   help="read a corpus (--data CORPUS) without checking its shards' SHA-256")
    p.add_argument("--config", default="cpu",
                   help="model size: cpu (small, trains on a laptop) or paper (the published size)")
    p.add_argument("--steps", type=positive_int, default=2000, help="optimiser steps (default 2000)")
    p.add_argument("--batch-size", type=positive_int, default=64, help="windows per step and rank (default 64)")
    p.add_argument("--lr", type=positive_float, default=1e-3, help="peak learning rate (default 1e-3)")
    p.add_argument("--holdout-test", action="store_true",
                   help="leave the data set's test subjects out of pre-training")
    p.add_argument("--out", help="checkpoint path (default teacher-<method>.pt)")
    p.add_argument("--seed", type=nonneg_int, default=0, help="random seed (default 0)")
    p.add_argument("--threads", type=threads, help="torch CPU threads per process")
    add_device_argument(p)
    add_resume_arguments(p)
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.set_defaults(func=run_pretrain)

    f = sub.add_parser(
        "finetune", help="supervised stage of a teacher (task head, HAR-FM stage B)",
        description="Fine-tune a pre-trained teacher on the labelled windows of the subject-disjoint "
                    "training split (HAPT: all but the official test subjects), then report "
                    "macro-F1 on the test subjects. HAR-FM runs its multi-task stage B.")
    f.add_argument("teacher", help="teacher checkpoint from `edgehar pretrain`, or a zoo name (edgehar models)")
    f.add_argument("--data", default="hapt", help="data set name or own-data folder (default hapt)")
    f.add_argument("--root", help="data folder (default: $EDGEHAR_DATA/<data set folder>)")
    f.add_argument("--steps", type=positive_int, default=1000, help="optimiser steps (default 1000)")
    f.add_argument("--batch-size", type=positive_int, default=64, help="windows per step (default 64)")
    f.add_argument("--lr", type=positive_float, help="peak learning rate (default 1e-3, probe 1e-2)")
    f.add_argument("--linear-probe", action="store_true",
                   help="freeze the backbone and train only the task head")
    f.add_argument("--no-augment", action="store_true", help="no jitter/scale augmentation")
    f.add_argument("--out", help="checkpoint path (default <teacher>-finetuned.pt / -probe.pt; for a zoo "
                                 "name, NAME-finetuned.pt in the current folder)")
    f.add_argument("--seed", type=nonneg_int, default=0, help="random seed (default 0)")
    f.add_argument("--threads", type=threads, help="torch CPU threads")
    add_device_argument(f)
    add_resume_arguments(f)
    f.add_argument("--json", action="store_true", help="print the metrics as JSON")
    f.set_defaults(func=run_finetune)


def _check_data(name: str) -> None:
    from edgehar.data.registry import check_data
    from edgehar.train.pretrain import SYNTHETIC

    if name != SYNTHETIC:
        check_data(name)


def data_inputs(data: str | None, root: str | None) -> list[str]:
    """The paths a --data/--root pair reads (a named data set's folder is under --root)."""
    from edgehar.data.registry import is_folder_arg

    return [p for p in (root, data if data and is_folder_arg(data) else None) if p]


def _check_out(path: str, inputs=()) -> None:
    """Fail before training, not after, when the checkpoint cannot be written: an input of the
    command (or a folder holding one), a folder, or a file that is not an edgehar checkpoint."""
    from edgehar.checkpoint import check_checkpoint_out
    from edgehar.outputs import refuse_inputs

    refuse_inputs(path, inputs)
    check_checkpoint_out(path)


def run_corpus_pretrain(args: argparse.Namespace) -> int:
    """HAR-FM on a pooled corpus folder: the corpus teacher (`recipes.train_corpus_teacher`: a
    stem per source data set over one backbone; masked reconstruction for a fifth of --steps,
    then multi-task + text alignment)."""
    import torch

    from edgehar.models.teacher import save_teacher
    from edgehar.recipes import CorpusTeacherRecipe, train_corpus_teacher
    from edgehar.train import loop

    out = args.out or "teacher-corpus-harfm.pt"
    _check_out(out, data_inputs(args.data, args.root))
    loop.check_run_folder(out, args.checkpoint_every, args.resume)
    _check_corpus(args)
    torch.set_num_threads(args.threads or 1)
    recipe = CorpusTeacherRecipe(steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed)
    with loop.run_folder(out, args.device, args.checkpoint_every, args.resume):
        teacher, card, summary = train_corpus_teacher(recipe, args.data, progress=not args.json)
        save_teacher(out, teacher, card)
    summary["out"] = out
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        v = summary["validation"].get("generic", {})
        print(f"corpus HAR-FM -> {out}: {summary['windows']} windows, validation macro-F1 "
              f"{v.get('macro_f1', float('nan')):.4f} (generic stem)")
    return 0


def _check_corpus(args: argparse.Namespace) -> None:
    """A corpus's shard hashes, before any work (--no-verify: not)."""
    from edgehar.data.corpus import check_corpus

    check_corpus(args.data, verify=not args.no_verify)


def run_pretrain(args: argparse.Namespace) -> int:
    import torch

    from edgehar.data.splits import split_subjects
    from edgehar.models.teacher import save_teacher
    from edgehar.recipes import TeacherRecipe, pretrain_teacher
    from edgehar.train import ddp, loop
    from edgehar.train.pretrain import load_windows

    from edgehar.data.corpus import is_corpus

    corpus = is_corpus(args.data)
    if corpus and args.method == "harfm":  # HAR-FM on a corpus: a stem per source data set
        return run_corpus_pretrain(args)
    if corpus:  # every other family: the train split's wrist windows, unlabelled included
        _check_corpus(args)
    else:
        _check_data(args.data)
    out = args.out or f"teacher-{args.method}.pt"
    _check_out(out, data_inputs(args.data, args.root))
    if args.threads:
        torch.set_num_threads(args.threads)
    recipe = TeacherRecipe(family=args.method, config=args.config, pretrain_steps=args.steps,
                           pretrain_batch_size=args.batch_size, pretrain_lr=args.lr, seed=args.seed)
    loop.check_run_folder(out, args.checkpoint_every, args.resume)  # every rank, before rank 0 makes it
    ctx = ddp.setup(args.device)
    try:
        with loop.run_folder(out, ctx.device, args.checkpoint_every, args.resume, main=ctx.main):
            windows, test_subjects = load_windows(args.data, args.root)
            if args.holdout_test and test_subjects:
                windows, _ = split_subjects(windows, test_subjects)
            teacher, card, result = pretrain_teacher(recipe, windows, ctx=ctx)
            summary = {"method": args.method, "config": args.config, "data": args.data,
                       **{k: v for k, v in card.provenance["pretrain"].items() if k not in ("family", "config")},
                       "first_loss": None, "final_loss": None, "out": out}
            # first/final loss of the last stage (RelCon: the encoder's relative contrastive loss)
            phases = summary["phases"]
            summary["first_loss"], summary["final_loss"] = list(phases.values())[-1]
            if ctx.main:
                card.provenance["pretrain"]["data"] = args.data
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

    from edgehar.data.splits import validation_subjects
    from edgehar.errors import UserError
    from edgehar.models.inference import evaluate
    from edgehar.models.teacher import load_teacher, save_teacher
    from edgehar.recipes import TeacherRecipe, finetune_teacher, scores, split_train_validation
    from edgehar.train import loop
    from edgehar.train.pretrain import load_windows

    from edgehar import zoo

    _check_data(args.data)
    named = zoo.is_name(args.teacher)
    stem = args.teacher if named else str(Path(args.teacher).with_suffix(""))
    args.teacher = str(zoo.resolve(args.teacher, "checkpoint"))
    out = args.out or f"{stem}-{'probe' if args.linear_probe else 'finetuned'}.pt"
    _check_out(out, [args.teacher, *data_inputs(args.data, args.root)])
    loop.check_run_folder(out, args.checkpoint_every, args.resume)
    teacher, card, extra = load_teacher(args.teacher)
    if args.threads:
        torch.set_num_threads(args.threads)
    windows, test_subjects = load_windows(args.data, args.root, card)
    card.check_input(windows.rate, windows.channels, where=args.data)
    if not test_subjects:
        test_subjects = validation_subjects(windows.subject, 0.2, args.seed)
    train, val, test = split_train_validation(windows, test_subjects, args.seed)
    if len(train.labelled()) == 0 or len(test.labelled()) == 0:
        raise UserError(args.data, "needs labelled windows on both sides of the subject split")
    recipe = TeacherRecipe(family=card.arch.get("name", ""), finetune_steps=args.steps,
                           finetune_batch_size=args.batch_size, finetune_lr=args.lr, seed=args.seed)
    with loop.run_folder(out, args.device, args.checkpoint_every, args.resume):
        finetune_teacher(teacher, card, train, val, recipe, linear_probe=args.linear_probe,
                         augment=not args.no_augment)
        metrics = evaluate(teacher, test, card)  # test subjects: scored once, for the report
        card.provenance["finetune"].update({"data": args.data, "from": str(args.teacher),
                                            "test_subjects": sorted(test_subjects)})
        card.provenance["metrics"]["test"] = scores(metrics)
        card.provenance["metrics"].update({k: metrics[k] for k in ("macro_f1", "accuracy", "n", "per_class_f1")})
        save_teacher(out, teacher, card, extra={**extra, "confusion": metrics["confusion"]})
    val = card.provenance["metrics"]["validation"]
    summary = {"teacher": str(args.teacher), "out": out, "validation": val,
               **{k: metrics[k] for k in ("macro_f1", "accuracy", "n", "per_class_f1")}}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        vtxt = f"validation macro-F1 {val['macro_f1']:.4f}, " if val else ""
        print(f"{card.arch['name']} {'linear probe' if args.linear_probe else 'fine-tuned'}: {vtxt}"
              f"test macro-F1 {metrics['macro_f1']:.4f}, accuracy {metrics['accuracy']:.4f} "
              f"on {metrics['n']} test windows -> {out}", file=sys.stdout)
    return 0
