"""`edgehar distill`: teacher checkpoint (or `limu-bert:DIR`) -> student checkpoint."""

from __future__ import annotations

import argparse
import json

from edgehar.cli_types import fraction, nonneg_float, nonneg_int, positive_float, positive_int, threads
from edgehar.data.registry import data_arg
from edgehar.train.flags import add_device_argument, add_resume_arguments


def register(sub) -> None:
    p = sub.add_parser(
        "distill", help="distil a teacher into a compact student",
        description="Distil a foundation-model teacher into a compact student (a small CNN encoder "
                    "per sensor stream + a shared transformer head + task and embedding heads) "
                    "with soft labels, embedding distillation, token hints and the label loss. "
                    "The student takes the teacher's input format (on a corpus: the corpus's, acc "
                    "only; LIMU-BERT then reads each window converted to its own spec). Trains on the subject-disjoint "
                    "training split (HAPT: all but the official test subjects, unlabelled windows "
                    "included) and reports test macro-F1, also with the gyroscope absent.")
    p.add_argument("--teacher", required=True,
                   help="teacher checkpoint (from pretrain/finetune), a zoo name (edgehar models) or "
                        "limu-bert:DIR (published weights)")
    p.add_argument("--student", default="small", choices=["tiny", "small"], help="student size (default small)")
    p.add_argument("--data", default="hapt", type=data_arg,
                   help="data set name or own-data folder (default hapt)")
    p.add_argument("--root", help="data folder (default: $EDGEHAR_DATA/<data set folder>)")
    p.add_argument("--no-verify", action="store_true",
                   help="read a corpus (--data CORPUS) without checking its shards' SHA-256")
    p.add_argument("--windows", help="train on this windows .npz (calib format) instead of --data")
    p.add_argument("--steps", type=positive_int, default=3000, help="optimiser steps (default 3000)")
    p.add_argument("--batch-size", type=positive_int, default=64, help="windows per step (default 64)")
    p.add_argument("--lr", type=positive_float, default=3e-3, help="peak learning rate (default 3e-3)")
    p.add_argument("--temperature", type=positive_float, default=4.0, help="soft-label temperature (default 4)")
    p.add_argument("--w-kd", type=nonneg_float, default=1.0, help="weight of the soft-label loss (default 1)")
    p.add_argument("--w-embed", type=nonneg_float, default=1.0, help="weight of the embedding loss (default 1)")
    p.add_argument("--w-hint", type=nonneg_float, default=0.5, help="weight of the token-hint loss (default 0.5)")
    p.add_argument("--w-label", type=nonneg_float, default=1.0, help="weight of the label loss (default 1)")
    p.add_argument("--augment", action="store_true",
                   help="jitter and scale the student's input windows (the teacher sees them clean)")
    p.add_argument("--label-fraction", type=fraction, default=1.0,
                   help="keep labels on only this class-stratified fraction of training windows")
    p.add_argument("--seed", type=nonneg_int, default=0, help="random seed (default 0)")
    p.add_argument("--threads", type=threads, help="torch CPU threads")
    add_device_argument(p)
    add_resume_arguments(p)
    p.add_argument("--out", help="student checkpoint path (default student-<size>.pt)")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.set_defaults(func=run_distill)


def load_training_windows(args, card):
    """(train, validation, test) windows in the teacher's format (validation: subjects drawn
    from the training subjects); validation and test are None without a test split."""
    from edgehar.data import hapt
    from edgehar.recipes import split_train_validation
    from edgehar.data.windows import Windows
    from edgehar.data.datasets import windows_for_card
    from edgehar.train.distill import check_windows_fit

    if args.windows:
        from edgehar.calib.build import load_calib
        c = load_calib(args.windows)
        p = c.provenance
        w = Windows(x=c.x, y=c.y, subject=c.subject, rate=float(p.get("rate", 0)),
                    channels=tuple(p.get("channels", ())), units=tuple(p.get("units", ())),
                    label_names=tuple(p.get("label_names", card.labels)), hop=int(p.get("hop", 0)))
        check_windows_fit(w, card, args.windows)
        return w, None, None
    w = windows_for_card(card, args.data, args.root)
    if args.data != "hapt":
        return w, None, None
    return split_train_validation(w, hapt.TEST_SUBJECTS, args.seed)


def distill_config(args):
    from edgehar.train.distill import DistillConfig

    return DistillConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                         temperature=args.temperature, label_fraction=args.label_fraction,
                         seed=args.seed, w_kd=args.w_kd, w_embed=args.w_embed,
                         w_hint=args.w_hint, w_label=args.w_label, augment=args.augment)


def run_corpus_distill(args: argparse.Namespace, out: str) -> int:
    """Distil over a corpus folder: every wrist acc window of its train split."""
    from edgehar.checkpoint import save_checkpoint
    from edgehar.train import loop
    from edgehar.data.corpus import check_corpus
    from edgehar.recipes import distill_corpus_student

    check_corpus(args.data, verify=not args.no_verify)  # shard hashes, before any work

    with loop.run_folder(out, args.device, args.checkpoint_every, args.resume):
        student, card, history = distill_corpus_student(args.teacher, args.data, args.student,
                                                        distill_config(args), progress=not args.json)
        save_checkpoint(out, student, card, extra={"history": history})
    val = card.provenance.get("metrics", {}).get("validation")
    summary = {"out": out, "student": args.student, "teacher": args.teacher, "loss": history, "validation": val}
    print(json.dumps(summary, indent=2) if args.json else f"student {args.student} -> {out}")
    if val and not args.json:
        print(f"  corpus validation macro-F1 {val['macro_f1']:.4f}  accuracy {val['accuracy']:.4f}"
              f"  ({', '.join(card.labels)})")
    return 0


def run_distill(args: argparse.Namespace) -> int:
    import torch

    from edgehar.checkpoint import check_checkpoint_out, save_checkpoint
    from edgehar.outputs import refuse_inputs
    from edgehar.recipes import distill_student
    from edgehar.train.cli import data_inputs
    from edgehar.train import loop
    from edgehar.train.distill import load_teacher_spec, student_metrics, teacher_metrics

    if args.threads:
        torch.set_num_threads(args.threads)
    out = args.out or f"student-{args.student}.pt"
    if not args.teacher.startswith("limu-bert:"):
        from edgehar import zoo

        args.teacher = str(zoo.resolve(args.teacher, "checkpoint"))
    teacher_path = args.teacher.split(":", 1)[1] if args.teacher.startswith("limu-bert:") else args.teacher
    refuse_inputs(out, [teacher_path, args.windows, *data_inputs(args.data, args.root)])
    check_checkpoint_out(out)  # before the teacher loads and training starts, not after
    loop.check_run_folder(out, args.checkpoint_every, args.resume)
    from edgehar.data.corpus import is_corpus

    if is_corpus(args.data):
        return run_corpus_distill(args, out)
    teacher, tcard = load_teacher_spec(args.teacher)
    train, val, test = load_training_windows(args, tcard)
    cfg = distill_config(args)
    data = {"dataset": args.data if not args.windows else args.windows, "root": args.root,
            "split": "HAPT official test subjects" if test is not None else "none"}
    if test is not None:
        from edgehar.data import hapt
        data["test_subjects"] = list(hapt.TEST_SUBJECTS)
    with loop.run_folder(out, args.device, args.checkpoint_every, args.resume):
        student, card, history = distill_student(teacher, tcard, train, val, args.student, cfg, args.teacher, data)
        metrics = {}
        if test is not None:  # test subjects: scored once, for the report
            metrics = student_metrics(student, card, test)
            metrics["teacher_test"] = teacher_metrics(teacher, tcard, test)
            metrics["validation"] = card.provenance["metrics"]["validation"]
        card.provenance.setdefault("metrics", {}).update({k: v for k, v in metrics.items() if k != "confusion"})
        save_checkpoint(out, student, card, extra={"history": history, "confusion": metrics.get("confusion")})
    summary = {"out": out, "student": args.student, "teacher": args.teacher, "loss": history, **metrics}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"student {args.student} -> {out}")
        if metrics:
            t = metrics.get("teacher_test") or {}
            print(f"  test macro-F1 {metrics['test']['macro_f1']:.4f}  accuracy {metrics['test']['accuracy']:.4f}"
                  + (f"   (teacher {t['macro_f1']:.4f})" if t else ""))
            for k, v in metrics.items():
                if k.startswith("test_without_") or k == "zero_shot":
                    print(f"  {k.replace('_', ' ')}: macro-F1 {v['macro_f1']:.4f}")
            print(f"  params {metrics['params']}  MACs {metrics['macs']}")
    return 0
