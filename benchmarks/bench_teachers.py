"""Pre-train and fine-tune every teacher family on HAPT and report macro-F1 against the same
architecture with random weights.

    EDGEHAR_DATA=../shared/data python benchmarks/bench_teachers.py [--only harfm,relcon] \
        [--steps N] [--epochs E] [--probe-steps P]

Per family (those whose module exists: harfm, relcon, selfpab, language), "cpu" config:
1. self-supervised pre-training for `--steps` steps (batch 64) on every HAPT window of the
   TRAINING subjects, labelled or not (the test subjects' raw data is never seen);
2. linear probe on frozen `features()` (logistic regression, full batch) of the pre-trained
   and of a randomly initialised copy;
   (`--transductive`: every subject's windows, as `edgehar pretrain --data hapt` does; the
   test subjects' signals are seen, never their labels; rows `<family>_transductive`);
3. full fine-tuning (`edgehar.train.finetune`, HAR-FM: multi-task stage B) for `--epochs`
   epochs of the pre-trained and of the random copy;
macro-F1 on the UCI-HAR official test subjects (2,4,9,10,12,13,18,20,24). One CPU thread,
seed 0. Writes `teachers.json` + `teachers.md` (entries of families not run are kept) and the
teachers to `results/models/<family>_pretrained.pt` / `<family>_finetuned.pt`.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from edgehar.atomic import write_json, write_text
from edgehar.data import hapt
from edgehar.data.datasets import activity_windows
from edgehar.data.splits import split_subjects
from edgehar.metrics import report
from edgehar.models import FAMILIES, build
from edgehar.models.teacher import make_teacher_card, save_teacher
from edgehar.recipes import family_config
from edgehar.train.finetune import finetune
from edgehar.train.pretrain import pretrain
from edgehar.models.inference import evaluate

HERE = Path(__file__).resolve().parent
ALL = ("harfm", "relcon", "selfpab", "language")


@torch.no_grad()
def embed(teacher, x: np.ndarray, batch: int = 512) -> np.ndarray:
    teacher.eval()
    return np.concatenate([teacher.probe_features(torch.from_numpy(x[i:i + batch])).numpy()
                           for i in range(0, len(x), batch)])


def linear_probe(teacher, train, test, card, steps: int = 300) -> dict:
    """Logistic regression (full-batch Adam, standardised features) on frozen `probe_features()`
    (SelfPAB: the weighted sum of every layer's output its downstream head reads; HAR-FM: the
    contrastive context of stack 1)."""
    f_tr, f_te = embed(teacher, card.normalise(train.x)), embed(teacher, card.normalise(test.x))
    mu, sd = f_tr.mean(0), f_tr.std(0) + 1e-6
    xt, xe = torch.from_numpy((f_tr - mu) / sd), torch.from_numpy((f_te - mu) / sd)
    yt = torch.from_numpy(train.y)
    torch.manual_seed(0)
    head = torch.nn.Linear(xt.shape[1], len(card.labels))
    opt = torch.optim.Adam(head.parameters(), lr=0.05, weight_decay=1e-4)
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(head(xt), yt)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        pred = head(xe).argmax(1).numpy()
    return report(test.y, pred, card.labels)


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


def run_family(name, windows, train, test, args, models: Path, previous: dict) -> dict:
    # every training-subject window, unlabelled ones included; --transductive: every window of
    # every subject (the test subjects' signals, never their labels, as `edgehar pretrain` does)
    pre_windows = windows if args.transductive else train
    tag = name + ("" if args.config == "cpu" else f"_{args.config}") + ("_transductive" if args.transductive else "")
    config = family_config(name, args.config, windows)
    if args.reuse and (models / f"{tag}_finetuned.pt").is_file():
        return reused_family(name, tag, windows, train, test, config, args, models, previous.get(tag, {}))
    torch.manual_seed(args.seed)
    teacher = build({"name": name, "config": config})
    torch.manual_seed(args.seed + 1)
    random_teacher = build({"name": name, "config": config})
    mean, std = teacher.normalisation(pre_windows)  # the family's (language: rotation-safe)
    x = ((pre_windows.x - np.float32(mean)) / np.float32(std)).astype(np.float32)
    # the control keeps the same input pipeline (SelfPAB: per-cell spectrogram statistics;
    # `pretrain` fits the teacher's): only the weights stay random
    random_teacher.fit_statistics(torch.from_numpy(x))
    params = sum(p.numel() for p in teacher.parameters())
    card = make_teacher_card(teacher, windows, mean, std)
    labelled_train, labelled_test = train.labelled(), test.labelled()

    t0 = time.perf_counter()
    result = pretrain(teacher, x, pre_windows.y, pre_windows.subject, args.steps, 64, args.lr, seed=args.seed)
    pre_s = time.perf_counter() - t0
    # first/last loss of every stage (RelCon: distance, then the encoder's relative loss)
    phases = {n: [c[0][1], c[-1][1]] for n, c in result.phase_curves().items() if c}
    first, last = list(phases.values())[-1]
    card = make_teacher_card(teacher, windows, mean, std, stage="pretrain", pretrain={
        "method": name, "config": args.config, "data": "hapt", "steps": args.steps, "batch_size": 64,
        "subjects": sorted(set(pre_windows.subject.tolist())), "seconds": round(pre_s, 1),
        "first_loss": first, "final_loss": last, "phases": phases})
    save_teacher(models / f"{tag}_pretrained.pt", teacher, card, extra={"loss_curve": result.loss_curve})

    t0 = time.perf_counter()
    probe = linear_probe(teacher, labelled_train, labelled_test, card)
    probe_random = linear_probe(random_teacher, labelled_train, labelled_test, card)
    probe_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    finetune(teacher, train, card, epochs=args.epochs, seed=args.seed)
    ft_s = time.perf_counter() - t0
    fine = evaluate(teacher, test, card)
    card.provenance["stage"] = "finetune"
    card.provenance["metrics"] = {k: fine[k] for k in ("macro_f1", "accuracy", "n", "per_class_f1")}
    card.provenance["finetune"] = {"data": "hapt", "epochs": args.epochs, "test_subjects": list(hapt.TEST_SUBJECTS)}
    save_teacher(models / f"{tag}_finetuned.pt", teacher, card, extra={"confusion": fine["confusion"]})

    fine_random = None
    if not args.no_random_finetune:
        finetune(random_teacher, train, card, epochs=args.epochs, seed=args.seed)
        fine_random = evaluate(random_teacher, test, card)
    curve = result.loss_curve
    return {
        "family": tag, "pretrain_subjects": "all" if args.transductive else "train",
        "params": params, "config": config, "pretrain_steps": args.steps,
        "pretrain_seconds": round(pre_s, 1), "finetune_epochs": args.epochs,
        "finetune_seconds": round(ft_s, 1), "probe_seconds": round(probe_s, 1),
        "loss_first": first, "loss_last": last, "loss_phases": phases, "loss_curve": curve,
        "phase_starts": result.phases, "normalisation": {"mean": mean, "std": std},
        "finetuned_macro_f1": fine["macro_f1"], "finetuned_accuracy": fine["accuracy"],
        "random_finetuned_macro_f1": fine_random["macro_f1"] if fine_random else None,
        "probe_macro_f1": probe["macro_f1"], "random_probe_macro_f1": probe_random["macro_f1"],
        "per_class_f1": fine["per_class_f1"],
    }


def reused_family(name, tag, windows, train, test, config, args, models: Path, previous: dict) -> dict:
    """A row from checkpoints made earlier by `edgehar pretrain` + `edgehar finetune` (the same
    recipe, e.g. the paper-size HAR-FM that takes ~40 CPU minutes): the fine-tuned model is scored
    again and the probes are run; pre-training figures come from the checkpoint's provenance."""
    from edgehar.models.teacher import load_teacher

    teacher, pcard, _ = load_teacher(models / f"{tag}_pretrained.pt")
    pre = pcard.provenance.get("pretrain") or {}
    if set(pre.get("subjects") or []) & set(hapt.TEST_SUBJECTS) and not args.transductive:
        raise SystemExit(f"bench_teachers: {tag}_pretrained.pt saw test subjects; use --transductive")
    torch.manual_seed(args.seed + 1)
    random_teacher = build({"name": name, "config": config})
    mean, std = pcard.norm_mean, pcard.norm_std
    random_teacher.fit_statistics(torch.from_numpy(
        ((train.x - np.float32(mean)) / np.float32(std)).astype(np.float32)))
    card = make_teacher_card(teacher, windows, mean, std)
    t0 = time.perf_counter()
    probe = linear_probe(teacher, train.labelled(), test.labelled(), card)
    probe_random = linear_probe(random_teacher, train.labelled(), test.labelled(), card)
    probe_s = time.perf_counter() - t0
    fine_teacher, fcard, _ = load_teacher(models / f"{tag}_finetuned.pt")
    fine = evaluate(fine_teacher, test, fcard)
    ft = fcard.provenance.get("finetune") or {}
    phases = pre.get("phases") or {"pretrain": [pre.get("first_loss"), pre.get("final_loss")]}
    first, last = list(phases.values())[-1]
    return {
        "family": tag, "pretrain_subjects": "all" if args.transductive else "train",
        "params": sum(p.numel() for p in fine_teacher.parameters()), "config": config,
        "pretrain_steps": pre.get("steps"), "pretrain_seconds": pre.get("seconds", previous.get("pretrain_seconds")),
        "finetune_epochs": ft.get("epochs"), "finetune_seconds": ft.get("seconds", previous.get("finetune_seconds")),
        "probe_seconds": round(probe_s, 1), "loss_first": first, "loss_last": last, "loss_phases": phases,
        "normalisation": {"mean": mean, "std": std}, "reused": [f"{tag}_pretrained.pt", f"{tag}_finetuned.pt"],
        "finetuned_macro_f1": fine["macro_f1"], "finetuned_accuracy": fine["accuracy"],
        "random_finetuned_macro_f1": previous.get("random_finetuned_macro_f1"),  # from the run that trained it
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
        f"training windows; test: {meta['test_labelled']} windows. Plain CNN reference "
        f"(benchmarks/results/baselines.json): {f(meta.get('cnn_macro_f1'))}.", "",
        "| teacher | params | pretrain steps | loss first -> last | fine-tuned F1 | random-init fine-tuned F1 "
        "| linear probe F1 | random-init probe F1 | pretrain s | finetune s (epochs) |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in results.values():
        # a family with stages: the last stage's loss, the earlier ones in brackets
        stages = "".join(f" ({n} {a:.3f} -> {b:.3f})" for n, (a, b) in list(r.get("loss_phases", {}).items())[:-1])
        lines.append(f"| {r['family']} | {r['params']:,} | {r['pretrain_steps']} | {r['loss_first']:.3f} -> "
                     f"{r['loss_last']:.3f}{stages} | {f(r['finetuned_macro_f1'])} | {f(r['random_finetuned_macro_f1'])} | "
                     f"{f(r['probe_macro_f1'])} | {f(r['random_probe_macro_f1'])} | {secs(r['pretrain_seconds'])} | "
                     f"{secs(r['finetune_seconds'])} ({r['finetune_epochs']}) |")
    lines += [""] + [f"- {n}" for n in meta.get("notes", [])]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=os.environ.get("EDGEHAR_DATA"), help="EDGEHAR_DATA folder")
    p.add_argument("--out", default=str(HERE / "results"), help="results folder")
    p.add_argument("--only", default=",".join(ALL), help="comma-separated families")
    p.add_argument("--steps", type=int, default=3000, help="pre-training steps (default 3000)")
    p.add_argument("--epochs", type=int, default=30, help="fine-tuning epochs (default 30)")
    p.add_argument("--lr", type=float, default=1e-3, help="pre-training peak learning rate")
    p.add_argument("--no-random-finetune", action="store_true", help="skip fine-tuning the random copy")
    p.add_argument("--transductive", action="store_true",
                   help="pre-train on every subject's windows (test subjects' signals, not labels); "
                        "results go under '<family>_transductive'")
    p.add_argument("--config", default="cpu", choices=["cpu", "paper"], help="model size: cpu (default) or paper")
    p.add_argument("--reuse", action="store_true",
                   help="score <family>[_<config>]_{pretrained,finetuned}.pt already in models/ instead of "
                        "training (e.g. made by `edgehar pretrain --holdout-test` + `edgehar finetune`)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if not args.data:
        sys.exit("bench_teachers: set EDGEHAR_DATA or pass --data")
    torch.set_num_threads(1)
    out, models = Path(args.out), Path(args.out) / "models"
    models.mkdir(parents=True, exist_ok=True)
    windows = activity_windows("hapt", Path(args.data) / "hapt")
    train, test = split_subjects(windows, hapt.TEST_SUBJECTS)
    json_path = out / "teachers.json"
    previous = json.loads(json_path.read_text()) if json_path.exists() else {}
    results = previous.get("results", {})
    cnn = None
    if (out / "baselines.json").exists():
        try:
            base = json.loads((out / "baselines.json").read_text())
            cnn = next((r["macro_f1"] for r in base.get("results", base) if isinstance(r, dict)
                        and r.get("name", r.get("model")) == "cnn"), None)
        except (ValueError, AttributeError, TypeError):
            cnn = None
    meta = {"pretrain_windows": len(train), "train_labelled": len(train.labelled()),
            "test_labelled": len(test.labelled()), "threads": 1, "seed": args.seed,
            "test_subjects": list(hapt.TEST_SUBJECTS), "cnn_macro_f1": cnn,
            "notes": previous.get("meta", {}).get("notes", [])}
    for name in available([n.strip() for n in args.only.split(",") if n.strip()]):
        print(f"== {name}", file=sys.stderr)
        r = run_family(name, windows, train, test, args, models, results)
        results[r["family"]] = r
        print(f"{r['family']}: fine-tuned {r['finetuned_macro_f1']:.4f} (random {r['random_finetuned_macro_f1']}), "
              f"probe {r['probe_macro_f1']:.4f} (random {r['random_probe_macro_f1']:.4f})")
        # merge with whatever another run wrote meanwhile (runs per family may overlap)
        latest = json.loads(json_path.read_text()).get("results", {}) if json_path.exists() else {}
        results = {**latest, r["family"]: r}
        write_json(json_path, {"meta": meta, "results": results})
        write_text(out / "teachers.md", markdown(results, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
