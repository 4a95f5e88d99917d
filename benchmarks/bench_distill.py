"""Distil HAR-FM and LIMU-BERT teachers into `tiny`/`small` students on HAPT: issue #6's targets.

    EDGEHAR_DATA=../shared/data python benchmarks/bench_distill.py --teacher FINETUNED.pt \
        --pretrained PRETRAINED.pt [--parts full,few,limu] [--steps 5820] [--seeds 0,1,2] --threads 1

HAPT default split (6 activities, UCI-HAR official test subjects held out; training windows of
the other subjects, unlabelled ones included). Parts (the run rewrites distill.json whole with the
parts it ran):
- `full`: `small` and `tiny` distilled from `--teacher` with every training label: fp32 test
  macro-F1 against the teacher's, MACs (edgehar.models.torch_macs for both), the plain-CNN
  floor (results/baselines.json), the score with the gyroscope absent.
- `few`: `--fraction` (10%) of the training labels, per seed: the self-supervised `--pretrained`
  teacher fine-tuned on those labels only, a student distilled from it (every training window
  takes part through the teacher), and the same student trained on those labels alone with the
  same number of optimiser steps.
- `limu`: a student distilled from the published LIMU-BERT + GRU weights (`limu-bert:`, 20 Hz,
  120 x 6), trained on HAPT resampled to 20 Hz (training subjects) and scored on LIMU-BERT's own
  2088-window preprocessing restricted to the test subjects (where the teacher is measured).
Teacher outputs (logits, embeddings, tokens) are cached per teacher file and window set under
`results/models/distill_cache/`, as are the 10%-label teachers, so reruns only train students.
Writes `distill.json` + `distill.md`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from edgehar.atomic import staged_file, write_json, write_text
from edgehar.bench.provenance import Run
from edgehar.checkpoint import save_checkpoint
from edgehar.cli_types import positive_int
from edgehar.data import hapt
from edgehar.data.datasets import windows_for_card
from edgehar.digest import file_sha256
from edgehar.data.splits import keep_label_fraction, split_subjects
from edgehar.metrics import report
from edgehar.models.student import make_student_card
from edgehar.recipes import train_student_supervised
from edgehar.models.torch_macs import torch_macs
from edgehar.train.distill import (DistillConfig, distill, load_teacher_spec,
                                   student_metrics, targets_from_outputs, teacher_outputs,
                                   without_stream)

HERE = Path(__file__).resolve().parent
PARTS = ("full", "few", "limu")
TARGETS = {"small_points": 1.0, "small_macs_ratio": 50.0, "tiny_points": 2.0, "limu_points": 2.0}


def log(msg: str) -> None:
    print(f"[bench_distill {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- caching ------------------------------------------------------------------------------

def teacher_id(spec: str) -> str:
    """A digest of the teacher's weights (LIMU-BERT: its two published weight files)."""
    if spec.startswith("limu-bert:"):
        root = Path(spec[len("limu-bert:"):])
        return file_sha256(root / "saved/pretrain_base_uci_20_120/uci.pt",
                           root / "saved/classifier_base_gru_uci_20_120/uci.pt")
    return file_sha256(spec)


def cached_outputs(teacher, tid: str, x: np.ndarray, cache: Path, what: str):
    """`teacher_outputs` on normalised windows x, cached by (teacher digest, digest of x).
    Tokens are kept as float16 (they are layer-normalised before the hint loss); every run,
    cached or not, uses the float16-rounded tokens so a rerun reproduces the first."""
    key = hashlib.sha256((tid + hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest()).encode())
    path = cache / f"{what}-{key.hexdigest()[:20]}.npz"
    if path.exists():
        z = np.load(path)
        log(f"teacher outputs for {what}: cached ({path.name})")
        return (z["logits"] if z["has_logits"] else None), z["embed"], z["tokens"].astype(np.float32)
    log(f"teacher outputs for {what}: {len(x)} windows")
    t0 = time.perf_counter()
    logits, embed, tokens = teacher_outputs(teacher, x)
    log(f"  {time.perf_counter() - t0:.0f} s")
    cache.mkdir(parents=True, exist_ok=True)
    with staged_file(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, logits=logits if logits is not None else np.zeros(0, np.float32),
                     has_logits=logits is not None, embed=embed, tokens=tokens.astype(np.float16))
    return logits, embed, tokens.astype(np.float16).astype(np.float32)


def scores(y: np.ndarray, logits: np.ndarray, labels) -> dict:
    r = report(y, logits.argmax(1), labels)
    return {k: r[k] for k in ("macro_f1", "accuracy", "n")}


def teacher_test(teacher, tid, card, test, cache: Path, what: str) -> dict:
    """Teacher test macro-F1, with every stream and with the gyroscope absent (cached logits)."""
    test = test.labelled()
    out = {"test": scores(test.y, cached_outputs(teacher, tid, card.normalise(test.x), cache, what)[0],
                          card.labels)}
    if "gyro" in card.streams:
        x = card.normalise(without_stream(test, card, "gyro").x)
        out["test_without_gyro"] = scores(test.y, cached_outputs(teacher, tid, x, cache, what + "-nogyro")[0],
                                          card.labels)
    return out


def macs_of(model, card) -> int:
    return int(torch_macs(model, torch.zeros(1, card.window, len(card.channels))))


def distill_config(args, seed: int) -> DistillConfig:
    return DistillConfig(steps=args.steps, temperature=args.temperature, w_kd=args.w_kd,
                         w_embed=args.w_embed, w_hint=args.w_hint, w_label=args.w_label, lr=args.lr,
                         augment=args.augment, kd_on_labelled=not args.kd_unlabelled_only, seed=seed)


def student_row(student, card, test, history, seconds, extra_tests=None) -> dict:
    m = student_metrics(student, card, test)
    row = {"params": m["params"], "macs": m["macs"], "test": m["test"],
           "test_without_gyro": m.get("test_without_gyro"), "zero_shot": m.get("zero_shot"),
           "train_s": round(seconds, 1), "final_loss": history[-1] if history else None}
    for name, w in (extra_tests or {}).items():
        m = student_metrics(student, card, w)
        row[name], row[name + "_without_gyro"] = m["test"], m.get("test_without_gyro")
    return row


# -- the parts ----------------------------------------------------------------------------

def part_full(args, root: Path, models: Path, cache: Path, cnn: dict) -> dict:
    teacher, tcard = load_teacher_spec(args.teacher)
    tid = teacher_id(args.teacher)
    w = windows_for_card(tcard, "hapt", root)
    train, test = split_subjects(w, hapt.TEST_SUBJECTS)
    targets = targets_from_outputs(teacher, tcard, *cached_outputs(teacher, tid, tcard.normalise(train.x),
                                                                   cache, "train"))
    t = teacher_test(teacher, tid, tcard, test, cache, "test")
    t_macs = macs_of(teacher, tcard)
    out = {"teacher": {"path": args.teacher, "sha256": tid, "arch": tcard.arch.get("name"),
                       "config": {k: v for k, v in tcard.arch.get("config", {}).items()
                                  if k in ("d", "stack1", "stack2")},
                       "params": sum(p.numel() for p in teacher.parameters()), "macs": t_macs, **t},
           "train_windows": len(train), "train_labelled": len(train.labelled()),
           "test_labelled": len(test.labelled()), "students": {}}
    log(f"teacher test macro-F1 {t['test']['macro_f1']:.4f}, {t_macs:,} MACs")
    data = {"dataset": "hapt", "root": str(root), "test_subjects": list(hapt.TEST_SUBJECTS)}
    for size in args.sizes:
        log(f"full labels: distil {size} ({args.steps} steps)")
        t0 = time.perf_counter()
        student, card, history = distill(teacher, tcard, train, size, distill_config(args, args.seeds[0]),
                                         args.teacher, data, targets=targets)
        row = student_row(student, card, test, history, time.perf_counter() - t0)
        save_checkpoint(models / f"bench_distill_{size}{'_' + args.tag if args.tag else ''}.pt", student, card)
        row["macs_ratio"] = t_macs / row["macs"]
        row["points_below_teacher"] = 100 * (t["test"]["macro_f1"] - row["test"]["macro_f1"])
        allowed = TARGETS[f"{size}_points"]
        row["checks"] = {
            f"within_{allowed:g}_points_of_teacher": row["points_below_teacher"] <= allowed,
            "above_cnn_floor": cnn.get("macro_f1") is not None and row["test"]["macro_f1"] > cnn["macro_f1"],
            "fewer_macs_than_cnn": cnn.get("macs") is not None and row["macs"] < cnn["macs"]}
        if size == "small":
            row["checks"]["macs_ratio_at_least_50"] = row["macs_ratio"] >= TARGETS["small_macs_ratio"]
        out["students"][size] = row
        log(f"  {size}: test macro-F1 {row['test']['macro_f1']:.4f} (teacher {t['test']['macro_f1']:.4f}), "
            f"without gyro {row['test_without_gyro']['macro_f1']:.4f}, MACs x{row['macs_ratio']:.1f} fewer")
    return out


def few_label_teacher(args, train10, seed: int, cache: Path):
    """The pre-trained teacher fine-tuned on the labelled windows of train10 (cached checkpoint)."""
    from edgehar.models.teacher import load_teacher, save_teacher
    from edgehar.recipes import TeacherRecipe, finetune_teacher

    pid = teacher_id(args.pretrained)
    key = hashlib.sha256(f"{pid}-{args.fraction}-{seed}-{args.teacher_steps}-{args.teacher_lr}".encode()
                         ).hexdigest()[:20]
    path = cache / f"teacher-few-{key}.pt"
    if path.exists():
        log(f"seed {seed}: fine-tuned 10% teacher cached ({path.name})")
        teacher, card, _ = load_teacher(path)
        return teacher, card, str(path), 0.0
    teacher, card, _ = load_teacher(args.pretrained)
    log(f"seed {seed}: fine-tune the pre-trained teacher on {int((train10.y >= 0).sum())} labels "
        f"({args.teacher_steps} steps)")
    recipe = TeacherRecipe(family=card.arch["name"], finetune_steps=args.teacher_steps,
                           finetune_lr=args.teacher_lr, seed=seed)
    # the teacher recipe trains on the labelled windows only: the masked labels (-1) never reach it
    finetune_teacher(teacher, card, train10, None, recipe, progress=False)
    seconds = card.provenance["finetune"]["seconds"]
    card.provenance["finetune"].update({"data": "hapt", "label_fraction": args.fraction,
                                        "pretrained": args.pretrained})
    cache.mkdir(parents=True, exist_ok=True)
    save_teacher(path, teacher, card)
    return teacher, card, str(path), seconds


def reusable_labels_only(args, seed: int, size: str) -> dict | None:
    """The labels-only row of the stored 'few' run for (seed, size) if it was trained the same way."""
    if not args.reuse_labels_only:
        return None
    path = Path(args.out) / "distill.json"
    few = json.loads(path.read_text()).get("results", {}).get("few") if path.exists() else None
    if not few or few.get("fraction") != args.fraction:
        return None
    c = few.get("config", {})
    if (c.get("steps"), c.get("lr"), bool(c.get("augment"))) != (args.steps, args.lr, args.augment):
        return None
    return few.get("seeds", {}).get(str(seed), {}).get(size, {}).get("labels_only")


def part_few(args, root: Path, models: Path, cache: Path) -> dict:
    from edgehar.models.teacher import load_teacher

    _, pcard, _ = load_teacher(args.pretrained)
    w = windows_for_card(pcard, "hapt", root)
    train, test = split_subjects(w, hapt.TEST_SUBJECTS)
    data = {"dataset": "hapt", "root": str(root), "test_subjects": list(hapt.TEST_SUBJECTS)}
    out = {"pretrained": args.pretrained, "fraction": args.fraction, "teacher_steps": args.teacher_steps,
           "teacher_lr": args.teacher_lr,
           "sizes": args.few_sizes, "seeds": {}}
    for seed in args.seeds:
        train10 = replace(train, y=keep_label_fraction(train.y, args.fraction, seed))
        n_lab = int((train10.y >= 0).sum())
        teacher, tcard, tpath, ft_s = few_label_teacher(args, train10, seed, cache)
        tid = teacher_id(tpath)
        targets = targets_from_outputs(teacher, tcard, *cached_outputs(
            teacher, tid, tcard.normalise(train10.x), cache, "train"))
        t = teacher_test(teacher, tid, tcard, test, cache, "test")
        row = {"labelled_windows": n_lab, "teacher": {**t, "finetune_s": round(ft_s, 1)}}
        log(f"seed {seed}: 10% teacher test macro-F1 {t['test']['macro_f1']:.4f}")
        for size in args.few_sizes:
            cfg = distill_config(args, seed)
            log(f"seed {seed}: distil {size} from the 10% teacher (labels on {n_lab} windows)")
            t0 = time.perf_counter()
            # train10 already holds only the kept labels: label_fraction stays 1
            student, card, history = distill(teacher, tcard, train10, size, cfg, tpath, data, targets=targets)
            dist = student_row(student, card, test, history, time.perf_counter() - t0)
            # the same student (same card: normalisation, architecture) on the labels alone, with
            # as many optimiser steps as the distilled one took
            log(f"seed {seed}: {size} on the {n_lab} labels alone ({cfg.steps} steps)")
            scard = make_student_card(size, tcard, embed_dim=card.arch["config"]["embed_dim"], data=data)
            aug = None
            if args.augment:
                from edgehar.models.augment import jitter, scale
                aug = lambda x, g: scale(jitter(x, g), g)  # noqa: E731
            prev = reusable_labels_only(args, seed, size)
            if prev is not None:
                log(f"seed {seed}: {size} labels-only student reused from the stored 'few' run")
                row[size] = {"distilled": dist, "labels_only": prev,
                             "gain_points": 100 * (dist["test"]["macro_f1"] - prev["test"]["macro_f1"])}
                continue
            t0 = time.perf_counter()
            sup, scard = train_student_supervised(train10, size, card=scard, steps=cfg.steps, seed=seed,
                                                  lr=cfg.lr, augment=aug)
            hist = scard.provenance["training"].get("final_loss")
            supervised = student_row(sup, scard, test, [hist] if hist is not None else [],
                                     time.perf_counter() - t0)
            supervised["steps"] = cfg.steps
            row[size] = {"distilled": dist, "labels_only": supervised,
                         "gain_points": 100 * (dist["test"]["macro_f1"] - supervised["test"]["macro_f1"])}
            log(f"seed {seed} {size}: distilled {dist['test']['macro_f1']:.4f} vs labels only "
                f"{supervised['test']['macro_f1']:.4f}")
        out["seeds"][str(seed)] = row
    summary = {}
    for size in args.few_sizes:
        def stat(get):
            v = np.array([get(r) for r in out["seeds"].values()])
            return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
                    "values": v.tolist()}
        summary[size] = {
            "teacher": stat(lambda r: r["teacher"]["test"]["macro_f1"]),
            "distilled": stat(lambda r: r[size]["distilled"]["test"]["macro_f1"]),
            "labels_only": stat(lambda r: r[size]["labels_only"]["test"]["macro_f1"]),
            "distilled_without_gyro": stat(lambda r: r[size]["distilled"]["test_without_gyro"]["macro_f1"]),
            "labels_only_without_gyro": stat(lambda r: r[size]["labels_only"]["test_without_gyro"]["macro_f1"])}
        s = summary[size]
        s["distillation_helps"] = s["distilled"]["mean"] > s["labels_only"]["mean"]
    out["summary"] = summary
    return out


def part_limu(args, root: Path, models: Path, cache: Path) -> dict:
    from edgehar.data.limu import limu_uci_windows

    spec = f"limu-bert:{Path(args.data) / 'limu_bert'}"
    teacher, tcard = load_teacher_spec(spec)
    tid = teacher_id(spec)
    w = windows_for_card(tcard, "hapt", root)  # HAPT resampled to 20 Hz, 120-sample windows
    train, test_rs = split_subjects(w, hapt.TEST_SUBJECTS)
    limu = limu_uci_windows(root)
    _, test_limu = split_subjects(limu, hapt.TEST_SUBJECTS)
    targets = targets_from_outputs(teacher, tcard, *cached_outputs(teacher, tid, tcard.normalise(train.x),
                                                                   cache, "limu-train"))
    t_limu = teacher_test(teacher, tid, tcard, test_limu, cache, "limu-test")
    t_rs = teacher_test(teacher, tid, tcard, test_rs, cache, "limu-test-resampled")
    t_macs = macs_of(teacher, tcard)
    out = {"teacher": {"spec": "limu-bert:$EDGEHAR_DATA/limu_bert", "sha256": tid, "macs": t_macs,
                       "params": sum(p.numel() for p in teacher.parameters()),
                       "test": t_limu["test"], "test_without_gyro": t_limu.get("test_without_gyro"),
                       "test_resampled": t_rs["test"]},
           "train_windows": len(train), "train_labelled": len(train.labelled()),
           "test_windows": len(test_limu), "test_resampled_windows": len(test_rs.labelled()), "students": {}}
    log(f"LIMU-BERT teacher: test subjects (LIMU windows) {t_limu['test']['macro_f1']:.4f}, "
        f"resampled {t_rs['test']['macro_f1']:.4f}")
    data = {"dataset": "hapt", "root": str(root), "test_subjects": list(hapt.TEST_SUBJECTS)}
    for size in args.limu_sizes:
        log(f"LIMU-BERT: distil {size}")
        t0 = time.perf_counter()
        student, card, history = distill(teacher, tcard, train, size, distill_config(args, args.seeds[0]),
                                         spec, data, targets=targets)
        row = student_row(student, card, test_limu, history, time.perf_counter() - t0,
                          extra_tests={"test_resampled": test_rs})
        save_checkpoint(models / f"bench_distill_limu_{size}{'_' + args.tag if args.tag else ''}.pt", student, card)
        row["macs_ratio"] = t_macs / row["macs"]
        row["points_below_teacher"] = 100 * (t_limu["test"]["macro_f1"] - row["test"]["macro_f1"])
        row["checks"] = {"within_2_points_of_teacher": row["points_below_teacher"] <= TARGETS["limu_points"]}
        out["students"][size] = row
        log(f"  {size}: {row['test']['macro_f1']:.4f} (teacher {t_limu['test']['macro_f1']:.4f})")
    return out


# -- report -------------------------------------------------------------------------------

def f4(v) -> str:
    return "-" if v is None else f"{v:.4f}"


def config_line(r: dict) -> str:
    c = r.get("config", {})
    return (f"Config: {c.get('steps')} steps, T={c.get('temperature')}, weights kd {c.get('w_kd')} / "
            f"embed {c.get('w_embed')} / hint {c.get('w_hint')} / label {c.get('w_label')}, lr {c.get('lr')}, "
            f"augmentation {'on' if c.get('augment') else 'off'}, soft labels on "
            f"{'unlabelled windows only' if c.get('kd_unlabelled_only') else 'every window'}; "
            f"{r.get('seconds', 0):.0f} s.")


def markdown(res: dict, meta: dict) -> str:
    lines = ["# Distillation on HAPT (6 activities, official test subjects, 1 CPU thread)", "",
             "Students: per-stream depthwise-separable CNN encoders + shared transformer head "
             "(edgehar/models/student.py), trained on every training window (unlabelled included) with "
             "soft labels (KL at temperature T), embedding cosine, token hints and the label loss. "
             "MACs per window: edgehar.models.torch_macs (torch's FLOP counter / 2) for teachers and "
             f"students alike. Plain-CNN floor (baselines.json): {f4(meta['cnn'].get('macro_f1'))} at "
             f"{meta['cnn'].get('macs') or 0:,} MACs. Gyro absent: the gyroscope channels read as absent "
             "(zeros after normalisation, `edgehar.train.distill.without_stream`).", ""]
    for key in sorted(k for k in res if k.startswith("full")):
        full = res[key]
        t = full["teacher"]
        variant = f" (variant `{key[5:]}`)" if key != "full" else ""
        lines += [f"## From the HAR-FM teacher, every training label{variant}", "",
                  f"Teacher `{Path(t['path']).name}` ({t['arch']} {t.get('config')}): {t['params']:,} params, "
                  f"{t['macs']:,} MACs, test macro-F1 **{t['test']['macro_f1']:.4f}** "
                  f"(gyro absent {f4((t.get('test_without_gyro') or {}).get('macro_f1'))}). "
                  f"Train {full['train_windows']} windows ({full['train_labelled']} labelled), "
                  f"test {full['test_labelled']}. {config_line(full)}", "",
                  "| student | params | MACs | teacher/student MACs | macro-F1 | vs teacher (points) | "
                  "gyro absent F1 | zero-shot F1 | target | met |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---|---|"]
        for size, r in full["students"].items():
            target = (f"F1 >= teacher - {TARGETS[size + '_points']:g}" + (", >= 50x fewer MACs" if size == "small" else "")
                      + ", > CNN floor at fewer MACs")
            met = all(r["checks"].values())
            missed = [k for k, v in r["checks"].items() if not v]
            lines.append(f"| {size} | {r['params']:,} | {r['macs']:,} | {r['macs_ratio']:.1f}x | "
                         f"{r['test']['macro_f1']:.4f} | {-r['points_below_teacher']:+.2f} | "
                         f"{f4((r.get('test_without_gyro') or {}).get('macro_f1'))} | "
                         f"{f4((r.get('zero_shot') or {}).get('macro_f1'))} | {target} | "
                         f"{'**met**' if met else '**missed**: ' + ', '.join(missed)} |")
        lines.append("")
    for key in sorted(k for k in res if k.startswith("few")):
        few = res[key]
        variant = f" (variant `{key[4:]}`)" if key != "few" else ""
        lines += [f"## {few['fraction']:.0%} of the training labels (mean ± std over seeds){variant}", "",
                  f"Per seed: a class-stratified {few['fraction']:.0%} of the training labels; the "
                  f"pre-trained teacher `{Path(few['pretrained']).name}` fine-tuned on those labels only "
                  f"({few['teacher_steps']} steps, peak lr {few.get('teacher_lr') or 1e-3:g}); the student distilled from it (all training windows "
                  "through the teacher, the same labels) vs the same student (same card, architecture, "
                  f"optimiser steps) trained on those labels alone. {config_line(few)}", "",
                  "| student | seed | labels | 10% teacher F1 | distilled F1 | labels-only F1 | gain (points) | "
                  "distilled, gyro absent | labels-only, gyro absent |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
        for size in few["sizes"]:
            for seed, r in few["seeds"].items():
                if size not in r:
                    continue
                d, s = r[size]["distilled"], r[size]["labels_only"]
                lines.append(f"| {size} | {seed} | {r['labelled_windows']} | {r['teacher']['test']['macro_f1']:.4f} | "
                             f"{d['test']['macro_f1']:.4f} | {s['test']['macro_f1']:.4f} | {r[size]['gain_points']:+.2f} | "
                             f"{f4(d['test_without_gyro']['macro_f1'])} | {f4(s['test_without_gyro']['macro_f1'])} |")
            m = few["summary"].get(size)
            if m:
                ms = lambda k: f"{m[k]['mean']:.4f} ± {m[k]['std']:.4f}"  # noqa: E731
                lines.append(f"| **{size}** | **mean** | | {ms('teacher')} | **{ms('distilled')}** | "
                             f"**{ms('labels_only')}** | {100 * (m['distilled']['mean'] - m['labels_only']['mean']):+.2f} | "
                             f"{ms('distilled_without_gyro')} | {ms('labels_only_without_gyro')} |")
        for size, m in few.get("summary", {}).items():
            lines.append("")
            lines.append(f"Target (distilled beats labels-only, mean of {len(m['distilled']['values'])} seeds), "
                         f"{size}: **{'met' if m['distillation_helps'] else 'missed'}**.")
        lines.append("")
    for key in sorted(k for k in res if k.startswith("limu")):
        limu = res[key]
        t = limu["teacher"]
        variant = f" (variant `{key[5:]}`)" if key != "limu" else ""
        lines += [f"## From the published LIMU-BERT + GRU weights (20 Hz, 120 x 6){variant}", "",
                  f"Teacher: {t['params']:,} params, {t['macs']:,} MACs. Students train on HAPT resampled to "
                  f"20 Hz ({limu['train_windows']} training-subject windows, {limu['train_labelled']} labelled, "
                  f"teacher outputs on all); scored on LIMU-BERT's own preprocessing of the test subjects "
                  f"({limu['test_windows']} windows; the teacher's GRU head was trained on a random part of all "
                  f"2088 windows, test subjects possibly included, so its figure is optimistic) and on the "
                  f"resampled test windows ({limu['test_resampled_windows']}). {config_line(limu)}", "",
                  "| model | params | MACs | test-subject F1 (LIMU windows) | vs teacher (points) | gyro absent | "
                  "resampled test F1 | target | met |",
                  "|---|---:|---:|---:|---:|---:|---:|---|---|"]
        lines.append(f"| LIMU-BERT + GRU | {t['params']:,} | {t['macs']:,} | {t['test']['macro_f1']:.4f} | | "
                     f"{f4((t.get('test_without_gyro') or {}).get('macro_f1'))} | {t['test_resampled']['macro_f1']:.4f} | | |")
        for size, r in limu["students"].items():
            lines.append(f"| {size} student | {r['params']:,} | {r['macs']:,} | {r['test']['macro_f1']:.4f} | "
                         f"{-r['points_below_teacher']:+.2f} | {f4((r.get('test_without_gyro') or {}).get('macro_f1'))} | "
                         f"{r['test_resampled']['macro_f1']:.4f} | within 2 points | "
                         f"{'**met**' if all(r['checks'].values()) else '**missed**'} |")
        lines.append("")
    if meta.get("provenance"):
        prov = meta["provenance"]
        lines += [f"Command: `{prov['command']}` at commit `{prov['commit'][:12]}`, {prov['cpu_seconds'] / 60:.1f} "
                  f"CPU minutes on {prov['hardware']['cpu']} ({prov['finished']})."]
    return "\n".join(lines) + "\n"


def cnn_floor(out: Path) -> dict:
    try:
        base = json.loads((out / "baselines.json").read_text())
    except (OSError, ValueError):
        return {}
    rows = base.get("results", base) if isinstance(base, dict) else base
    for r in rows if isinstance(rows, list) else rows.values():
        if isinstance(r, dict) and r.get("name", r.get("model")) == "cnn":
            return {"macro_f1": r.get("macro_f1"), "macs": r.get("macs_per_window", r.get("macs"))}
    return {}


def main(argv=None) -> int:
    from edgehar.train.flags import add_device_argument
    from edgehar.train.loop import use_device

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=os.environ.get("EDGEHAR_DATA"), help="EDGEHAR_DATA folder")
    p.add_argument("--out", default=str(HERE / "results"), help="results folder")
    p.add_argument("--teacher", default=str(HERE / "results/models/harfm_finetuned.pt"),
                   help="fine-tuned HAR-FM teacher checkpoint (part full)")
    p.add_argument("--pretrained", default=str(HERE / "results/models/harfm_pretrained.pt"),
                   help="self-supervised pre-trained HAR-FM checkpoint (part few)")
    p.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated parts ({', '.join(PARTS)})")
    p.add_argument("--sizes", default="small,tiny", help="student sizes of part full")
    p.add_argument("--few-sizes", default="small", help="student sizes of part few")
    p.add_argument("--limu-sizes", default="small", help="student sizes of part limu")
    p.add_argument("--steps", type=positive_int, default=5820,
                   help="distillation optimiser steps of 64 windows (default 5820: 30 passes over HAPT's "
                        "12400 training windows)")
    p.add_argument("--teacher-steps", type=positive_int, default=360,
                   help="fine-tuning optimiser steps of the few-label teacher (default 360: 30 passes over "
                        "the 759 kept labels)")
    p.add_argument("--teacher-lr", type=float, default=None,
                   help="fine-tuning peak lr of the few-label teacher (default: finetune's, 1e-3)")
    p.add_argument("--fraction", type=float, default=0.1, help="label fraction of part few (default 0.1)")
    p.add_argument("--seeds", default="0,1,2", help="seeds (part few; the first one for the others)")
    p.add_argument("--temperature", type=float, default=4.0)
    p.add_argument("--w-kd", type=float, default=1.0)
    p.add_argument("--w-embed", type=float, default=1.0)
    p.add_argument("--w-hint", type=float, default=0.5)
    p.add_argument("--w-label", type=float, default=1.0)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--augment", action="store_true", help="jitter + scale the students' inputs")
    p.add_argument("--kd-unlabelled-only", action="store_true",
                   help="soft labels only on windows without a label (labelled ones: the label loss)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    add_device_argument(p)
    p.add_argument("--tag", help="store the parts' results under '<part>_<tag>' (a tuning variant)")
    p.add_argument("--reuse-labels-only", action="store_true",
                   help="part few: take the labels-only students from the stored 'few' run when their "
                        "config (seed, steps, lr, augmentation, fraction) is the same")
    args = p.parse_args(argv)
    if not args.data:
        sys.exit("bench_distill: set EDGEHAR_DATA or pass --data")
    use_device(args.device)
    parts = [s.strip() for s in args.parts.split(",") if s.strip()]
    if set(parts) - set(PARTS):
        sys.exit(f"bench_distill: unknown part in {parts} (known: {', '.join(PARTS)})")
    args.sizes, args.few_sizes, args.limu_sizes = ([s for s in v.split(",") if s]
                                                   for v in (args.sizes, args.few_sizes, args.limu_sizes))
    args.seeds = [int(s) for s in args.seeds.split(",") if s]
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    models, cache = out / "models", out / "models" / "distill_cache"
    models.mkdir(parents=True, exist_ok=True)
    root = Path(args.data) / "hapt"
    cnn = cnn_floor(out)
    json_path = out / "distill.json"
    run = Run(__file__, argv, HERE.parent)
    results = {}  # this run's parts only: the files are rewritten whole, never merged
    meta = {"steps": args.steps, "temperature": args.temperature, "w_kd": args.w_kd, "w_embed": args.w_embed,
            "w_hint": args.w_hint, "w_label": args.w_label, "lr": args.lr, "augment": args.augment,
            "kd_unlabelled_only": args.kd_unlabelled_only,
            "threads": args.threads, "torch": torch.__version__, "test_subjects": list(hapt.TEST_SUBJECTS),
            "cnn": cnn}
    for part in parts:
        log(f"== part {part}")
        t0 = time.perf_counter()
        fn = {"full": lambda: part_full(args, root, models, cache, cnn),
              "few": lambda: part_few(args, root, models, cache),
              "limu": lambda: part_limu(args, root, models, cache)}[part]
        key = part + (f"_{args.tag}" if args.tag else "")
        results[key] = {**fn(), "seconds": round(time.perf_counter() - t0, 1), "config": {
            k: meta[k] for k in ("steps", "temperature", "w_kd", "w_embed", "w_hint", "w_label", "lr", "augment",
                                 "kd_unlabelled_only")}}
        meta["provenance"] = run.stamp()
        write_json(json_path, {"meta": meta, "results": results})
        write_text(out / "distill.md", markdown(results, meta))
        log(f"part {key}: {results[key]['seconds']:.0f} s")
    print((out / "distill.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
