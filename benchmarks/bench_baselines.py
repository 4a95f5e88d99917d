"""Train the lightweight baselines on the HAPT default split and report the floor to beat.

    EDGEHAR_DATA=../shared/data python benchmarks/bench_baselines.py [--only cnn,tinyhar] [--steps N]

HAPT, 6 activities, 50 Hz, 128-sample windows, hop 64, acc + gyro, trained on all subjects but
the UCI-HAR official test subjects (2,4,9,10,12,13,18,20,24) and tested on those; per-channel
normalisation from the training windows. Writes `baselines.json` + `baselines.md` and one
edgehar checkpoint per model under `results/models/` (for export and profiling later).
One CPU thread, fixed seed.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch
from edgehar.models.torch_macs import torch_macs

from edgehar.atomic import write_json, write_text
from edgehar.bench.provenance import Run
from edgehar.checkpoint import save_checkpoint
from edgehar.data import hapt
from edgehar.data.datasets import activity_windows
from edgehar.models.inference import evaluate
from edgehar.recipes import split_train_validation, train_baseline

HERE = Path(__file__).resolve().parent
# optimiser steps of 64 windows (a pass over the labelled training windows is 100);
# TinyHAR is ~5x slower per step on CPU
STEPS = {"cnn": 3000, "ignatov": 3000, "tinyhar": 2000}
TITLES = {"cnn": "plain 3-layer 1-D CNN", "ignatov": "Ignatov 2018 CNN (STM32 'ign' size)",
          "tinyhar": "TinyHAR (Zhou et al. ISWC 2022)"}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=os.environ.get("EDGEHAR_DATA"), help="EDGEHAR_DATA folder")
    p.add_argument("--out", default=str(HERE / "results"), help="results folder")
    p.add_argument("--only", default=",".join(STEPS), help="comma-separated families to run")
    p.add_argument("--steps", type=int, default=None, help="optimiser steps for every model (default: per family)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if not args.data:
        sys.exit("bench_baselines: set EDGEHAR_DATA or pass --data")
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in STEPS]
    if unknown:
        sys.exit(f"bench_baselines: unknown baseline {unknown} (known: {', '.join(STEPS)})")
    torch.set_num_threads(1)
    out = Path(args.out)

    run = Run(__file__, argv, HERE.parent)
    w = activity_windows("hapt", Path(args.data) / "hapt", rate=50.0, window=128, hop=64)
    train, val, test = split_train_validation(w, hapt.TEST_SUBJECTS, args.seed)
    split = {"test_subjects": list(hapt.TEST_SUBJECTS), "validation_subjects": sorted(set(val.subject.tolist()))}
    results = []
    for name in names:
        steps = args.steps or STEPS[name]
        model, card = train_baseline(name, train, val, steps, args.seed, data="hapt", split=split)
        metrics = evaluate(model, test, card)  # test subjects: scored once, for the report
        card.provenance["metrics"]["test"] = {k: metrics[k] for k in ("macro_f1", "accuracy", "n")}
        row = {"model": name, "title": TITLES[name], "validation_macro_f1": card.provenance["metrics"]["validation"]["macro_f1"],
               "macro_f1": metrics["macro_f1"], "accuracy": metrics["accuracy"], "per_class_f1": metrics["per_class_f1"],
               "confusion": metrics["confusion"], "test_windows": metrics["n"],
               "params": int(sum(q.numel() for q in model.parameters())),
               "macs_per_window": torch_macs(model, torch.zeros(1, w.length, len(w.channels))),
               "steps": steps, "train_s": card.provenance["train_s"], "final_loss": card.provenance["pass_losses"][-1],
               "checkpoint": str((out / "models" / f"{name}.pt").relative_to(HERE.parent))
               if out.resolve().is_relative_to(HERE.parent) else str(out / "models" / f"{name}.pt")}
        save_checkpoint(out / "models" / f"{name}.pt", model, card)
        results.append(row)
        print(f"{name}: macro-F1 {row['macro_f1']:.4f} accuracy {row['accuracy']:.4f} "
              f"params {row['params']:,} MACs {row['macs_per_window']:,} ({row['train_s']:.0f} s)", file=sys.stderr)

    summary = {"data": "hapt", "rate": w.rate, "window": w.length, "hop": w.hop,
               "channels": list(w.channels), "test_subjects": list(hapt.TEST_SUBJECTS),
               **split, "train_windows": int(len(train.labelled())), "test_windows": int(len(test.labelled())),
               "provenance": run.stamp(), "results": results}
    write_json(out / "baselines.json", summary)
    md = ["# Baselines on HAPT (6 activities, 50 Hz, 128 x 6 windows, hop 64, official test subjects)", "",
          f"Train windows {summary['train_windows']} (validation subjects {summary['validation_subjects']} held "
          f"out), test windows {summary['test_windows']}; 1 CPU thread. Command: `{summary['provenance']['command']}` "
          f"at commit `{summary['provenance']['commit'][:12]}`.", "",
          "| model | validation macro-F1 | macro-F1 | accuracy | params | MACs / window | steps | train s |",
          "|---|---:|---:|---:|---:|---:|---:|---:|"]
    md += [f"| {r['title']} | {r['validation_macro_f1']:.4f} | {r['macro_f1']:.4f} | {r['accuracy']:.4f} | {r['params']:,} | "
           f"{r['macs_per_window']:,} | {r['steps']} | {r['train_s']:.0f} |" for r in results]
    write_text(out / "baselines.md", "\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
