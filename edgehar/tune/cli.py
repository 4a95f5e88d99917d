"""`edgehar tune`: search student configurations on MEASURED Cortex-M instructions."""

from __future__ import annotations

import argparse
import json

from edgehar.cli_types import nonneg_int, positive_int, threads


def _targets(text: str) -> list[str]:
    from edgehar.mcu.build import CPUS

    names = [t.strip() for t in text.split(",")]
    bad = [n for n in names if n not in CPUS]
    if bad or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"expected distinct cores among {', '.join(CPUS)}, got {text!r}")
    return names


def _budget(text: str):
    from edgehar.tune.budget import parse_budget

    return parse_budget(text)


def register(sub) -> None:
    from edgehar.data.registry import data_arg

    p = sub.add_parser(
        "tune", help="search students on instructions measured on an emulated Cortex-M",
        description="Search student configurations (encoder widths, kernel and strides, so the token "
                    "count; transformer layers, heads, feed-forward width; softmax or softmax-free "
                    "attention; attention or mean pooling) with Optuna's multi-objective TPE. Each trial "
                    "is distilled from the teacher for --steps, scored on a validation split of the "
                    "training subjects, exported full-int8 and MEASURED on each --target core (TFLM "
                    "with CMSIS-NN under qemu-system-arm). Writes DIR/pareto.json, pareto.md and "
                    "pareto.png (validation macro-F1 against instructions, arena and flash), and exports "
                    "the best validation macro-F1 within --budget to DIR/chosen/. --start configurations "
                    "are tried first. The study lives in DIR/study.db: rerunning the same command resumes it.")
    p.add_argument("--teacher", required=True, help="teacher checkpoint or limu-bert:DIR")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", type=data_arg, help="data set name, own-data folder or corpus folder")
    src.add_argument("--windows", help="windows .npz (calib format) in the teacher's format")
    p.add_argument("--root", help="data folder (default: $EDGEHAR_DATA/<data set folder>)")
    p.add_argument("--target", type=_targets, default=["cortex-m4"], metavar="CPU[,CPU]",
                   help="cores to measure on (default cortex-m4); the first one's count is the objective")
    p.add_argument("--budget", type=_budget, required=True, metavar="KEY=VALUE[,...]",
                   help="limits: instructions (per inference, every target; k/M), arena and flash "
                        "(bytes; KB/MB/KiB/MiB), e.g. instructions=0.5M,arena=32KiB,flash=128KiB")
    p.add_argument("--trials", type=positive_int, default=40, help="completed trials in all (default 40)")
    p.add_argument("--steps", type=positive_int, default=600, help="distillation steps per trial (default 600)")
    p.add_argument("--start", metavar="FILE",
                   help="configurations to try first: a JSON list of student configurations (as in "
                        "pareto.json's trials) or an earlier tune's pareto.json (its front)")
    p.add_argument("--seed", type=nonneg_int, default=0, help="random seed (default 0)")
    p.add_argument("--threads", type=threads, help="torch CPU threads (default 1)")
    p.add_argument("--toolchains", metavar="DIR", help="TFLM sources (default: $EDGEHAR_TOOLCHAINS)")
    p.add_argument("--out", required=True, help="study folder (rerun with the same one to resume)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=run_tune)


def run_tune(args: argparse.Namespace) -> int:
    import torch

    from edgehar.tune.search import tune
    from edgehar.tune.space import load_start

    start = load_start(args.start) if args.start else []
    torch.set_num_threads(args.threads or 1)
    rep = tune(args.teacher, args.out, args.target, args.budget, args.trials, args.steps, data=args.data,
               root=args.root, windows=args.windows, seed=args.seed, toolchains=args.toolchains,
               progress=not args.json, start=start)
    if args.json:
        print(json.dumps(rep, indent=2))
    else:
        from edgehar.tune.pareto import markdown

        print(markdown(rep), end="")
    return 0
