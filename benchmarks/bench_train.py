"""Training throughput: one HAR-FM pre-training recipe on the CPU with 1 and 2 threads, as 2
gloo ranks under torchrun, and on a GPU when there is one.

    EDGEHAR_DATA=../shared/data python benchmarks/bench_train.py [--steps 120] [--config cpu]

Each configuration runs the commands a user runs: `edgehar pretrain --data hapt --holdout-test`
(HAPT's official test subjects left out) for `--steps` steps of `--batch-size` windows in all
(2 ranks: half each, the same global batch), then `edgehar finetune --linear-probe` on the
labelled training windows, whose validation macro-F1 (validation subjects drawn from the
training subjects) is the validation figure. Reported per configuration: windows per second
of the pre-training loop (steps x global batch / the loop's seconds), the time to the
validation figure (wall time of both commands, start-up and data loading included), the
figure itself and the loss curve (overlaid in train.png). Writes benchmarks/results/train.json,
train.md and train.png; checkpoints go to a temporary folder that is removed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
NO_GPU = "not measured: no GPU available"


def configurations(cuda: bool) -> list[dict]:
    return [{"name": "CPU, 1 thread", "device": "cpu", "ranks": 1, "threads": 1},
            {"name": "CPU, 2 threads", "device": "cpu", "ranks": 1, "threads": 2},
            {"name": "CPU, 2 gloo ranks x 1 thread", "device": "cpu", "ranks": 2, "threads": 1},
            {"name": "GPU", "device": "cuda", "ranks": 1, "threads": 1, "skip": None if cuda else NO_GPU}]


def edgehar(argv: list[str], ranks: int, threads: int) -> tuple[dict, float]:
    """(JSON summary, wall seconds) of one edgehar command, under torchrun when ranks > 1."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    if ranks > 1:
        torchrun = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
        cmd = [torchrun, "--standalone", "--nproc_per_node", str(ranks), "-m", "edgehar", *argv]
    else:
        cmd = [sys.executable, "-m", "edgehar", *argv]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:6])} ... failed ({r.returncode}): {r.stderr.strip()[-600:]}")
    return json.loads(r.stdout), wall


def run_one(c: dict, args, work: Path) -> dict:
    import torch

    row = {k: c[k] for k in ("name", "device", "ranks", "threads")}
    if c.get("skip"):
        return {**row, "skipped": c["skip"]}
    load_before = os.getloadavg()[0]  # how busy the machine was: other work shares its cores
    ckpt = work / f"{c['device']}-{c['ranks']}x{c['threads']}.pt"
    common = ["--data", args.data, "--threads", str(c["threads"]), "--device", c["device"], "--json"]
    summary, pre_wall = edgehar(["pretrain", "--method", "harfm", "--config", args.config, "--holdout-test",
                                 "--steps", str(args.steps), "--batch-size", str(args.batch_size // c["ranks"]),
                                 "--seed", str(args.seed), "--out", str(ckpt), *common], c["ranks"], c["threads"])
    probe, probe_wall = edgehar(["finetune", str(ckpt), "--linear-probe", "--steps", str(args.probe_steps),
                                 "--seed", str(args.seed), "--out", str(work / "probe.pt"), *common], 1, c["threads"])
    curve = torch.load(ckpt, weights_only=True)["extra"]["loss_curve"]
    windows = args.steps * (args.batch_size // c["ranks"]) * c["ranks"]
    return {**row, "windows_per_second": round(windows / summary["seconds"], 1),
            "pretrain_loop_seconds": summary["seconds"], "pretrain_command_seconds": round(pre_wall, 1),
            "probe_command_seconds": round(probe_wall, 1),
            "seconds_to_validation_figure": round(pre_wall + probe_wall, 1),
            "validation_macro_f1": round(probe["validation"]["macro_f1"], 4),
            "first_loss": round(summary["first_loss"], 4), "final_loss": round(summary["final_loss"], 4),
            "world_size": summary["world_size"], "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            "loss_curve": curve}


def markdown(result: dict) -> str:
    p, meta = result["recipe"], result["provenance"]
    lines = [
        "# Training throughput", "",
        f"HAR-FM `{p['config']}` pre-trained on {p['data']} (official test subjects held out) for {p['steps']} "
        f"steps of {p['batch_size']} windows in all, then a {p['probe_steps']}-step linear probe; "
        "validation macro-F1 of the probe (validation subjects drawn from the training subjects). "
        "Windows/s: pre-training loop only; time to the validation figure: both commands' wall time, "
        "start-up and data loading included. Loss curves: train.png.", "",
        "| configuration | windows/s | pre-training loop (s) | time to validation figure (s) | "
        "validation macro-F1 | loss first -> last | load average before, after |",
        "|---|---:|---:|---:|---:|---|---|"]
    for r in result["rows"]:
        if r.get("skipped"):
            lines.append(f"| {r['name']} | {r['skipped']} | | | | | |")
            continue
        lines.append(f"| {r['name']} | {r['windows_per_second']:.0f} | {r['pretrain_loop_seconds']:.1f} | "
                     f"{r['seconds_to_validation_figure']:.1f} | {r['validation_macro_f1']:.4f} | "
                     f"{r['first_loss']:.3f} -> {r['final_loss']:.3f} | "
                     f"{r['load_average'][0]:.1f}, {r['load_average'][1]:.1f} |")
    hw = meta.get("hardware", {})
    busiest = max(r["load_average"][0] for r in result["rows"] if r.get("load_average"))
    lines += ["", f"Machine: {hw.get('cpu')}, {hw.get('cores')} cores. The 1-minute load average before and "
              f"after each configuration is in the table (it counts this benchmark's previous configuration "
              f"too; highest before one: {busiest:.1f}). Near the core count, other work shares the cores and "
              "a second thread or rank competes with it: the figures are then indicative.",
              f"Run: `{meta['command']}` at {meta['commit']}, {meta['wall_seconds']} s wall, "
              f"{meta['cpu_seconds']} CPU s (all configurations, child processes included)."]
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from edgehar.atomic import staged_file

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for r in rows:
        if r.get("loss_curve"):
            ax.plot([p[0] for p in r["loss_curve"]], [p[1] for p in r["loss_curve"]], label=r["name"], lw=1.2)
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("pre-training loss (mean over ranks)")
    ax.set_title("HAR-FM pre-training: the same recipe per configuration", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend()
    with staged_file(path) as tmp:
        fig.savefig(tmp, dpi=130, bbox_inches="tight", format="png")
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="hapt", help="data set (default hapt; needs EDGEHAR_DATA)")
    p.add_argument("--config", default="cpu", help="HAR-FM size (default cpu)")
    p.add_argument("--steps", type=int, default=120, help="pre-training steps (default 120)")
    p.add_argument("--batch-size", type=int, default=64, help="windows per step in all (default 64)")
    p.add_argument("--probe-steps", type=int, default=200,
                   help="linear-probe optimiser steps (default 200: 2 passes over HAPT's labelled training windows)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(HERE / "results"), help="results folder")
    args = p.parse_args(argv)

    from edgehar.atomic import write_json, write_text
    from edgehar.bench.provenance import Run
    from edgehar.train.loop import cuda_available

    run = Run(__file__, argv, REPO)
    out = Path(args.out)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-train-") as work:
        for c in configurations(cuda_available()):
            print(f"bench_train: {c['name']} ...", file=sys.stderr, flush=True)
            rows.append(run_one(c, args, Path(work)))
    result = {"recipe": {"family": "harfm", "config": args.config, "data": args.data, "steps": args.steps,
                         "batch_size": args.batch_size, "probe_steps": args.probe_steps, "seed": args.seed},
              "rows": rows,
              "provenance": run.stamp()}
    write_json(out / "train.json", result)
    write_text(out / "train.md", markdown(result))
    plot(rows, out / "train.png")
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
