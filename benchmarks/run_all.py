"""Every model side by side on the HAPT default split, in one run: the README's table.

    EDGEHAR_DATA=../shared/data python benchmarks/run_all.py [--fast] [--update-readme]

HAPT, 6 activities, 50 Hz, 128-sample windows (hop 64), acc + gyro. The training subjects are
split once more: a validation share (`edgehar.recipes.split_train_validation`) on which every
choice is made (the best teacher, whom the students learn from); the UCI-HAR official test
subjects (2,4,9,10,12,13,18,20,24) are scored once, for the table, with `edgehar eval`'s code.
Rows: every teacher family (pre-trained on the training subjects' windows, unlabelled ones
included, then fine-tuned; plus HAR-FM at its published size in the full plan and the published
LIMU-BERT weights), students `tiny` and `small` distilled from the best teacher (fp32 and int8
TFLite and ONNX, the `edgehar export` artifacts), and baselines trained from scratch (Ignatov,
the plain CNN and the TinyHAR variant built from TFLite-Micro's ops exported by `edgehar export`
too, so their int8 TFLite rows are measured on emulated Cortex-M4 / M55 like the students';
TinyHAR itself as ONNX and, where litert-torch converts it, fp32 TFLite).

Every model is made by `edgehar.recipes` (the code `edgehar pretrain/finetune/distill/export`
runs) and reused only through `edgehar.bench.manifest` (a content hash of the recipe, the code
and the windows). The run rewrites summary.json, summary.md and the plots whole, and states its
command, commit, CPU time and machine.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

FAMILIES = ("harfm", "relcon", "selfpab", "language")
BASELINES = {"cnn": "plain 3-layer 1-D CNN", "ignatov": "Ignatov CNN (STM32 zoo 'ign')", "tinyhar": "TinyHAR",
             "tinyhar_tflm": "TinyHAR (TFLM variant)"}
# the files of an `edgehar export --int8` folder, one table row each
ARTIFACTS = (("fp32 TFLite", "model_fp32.tflite"), ("int8 TFLite", "model_int8.tflite"),
             ("fp32 ONNX", "model.onnx"), ("int8 ONNX", "model_int8.onnx"))
# Optimiser steps of 64 windows. A pass over HAPT's training split is 100 steps of its labelled
# windows (fine-tuning, baselines) or 165 of all of them (distillation, whose soft labels need
# none); 12 and 19 in the fast plan's 1200 windows.
# micro_parity: each int8 file also runs in TFLite-Micro's Python interpreter on every held-out
# window (parity.json); the fast plan, a code-path check, leaves out that third of its time.
PLANS = {
    "fast": {"teacher_config": "tiny", "pretrain_steps": 30, "finetune_steps": 12, "distill_steps": 38,
             "baseline_steps": {"cnn": 24, "ignatov": 24, "tinyhar": 12, "tinyhar_tflm": 12}, "max_train": 1200,
             "profile_runs": 10, "n_calib": 100, "paper_teacher": False, "micro_parity": False},
    "full": {"teacher_config": "cpu", "pretrain_steps": 1000, "finetune_steps": 1000, "distill_steps": 3300,
             "baseline_steps": {"cnn": 3000, "ignatov": 3000, "tinyhar": 2000, "tinyhar_tflm": 2000},
             "max_train": None,
             "profile_runs": 50, "n_calib": 500, "paper_teacher": True, "micro_parity": True},
}
# HAR-FM at its published size (d=96, 10+24 layers, ~32M MACs per window): the teacher the
# student's MAC target (<= 2% of the teacher) is about. Same recipe as
# `edgehar pretrain --method harfm --config paper --steps 2000 --holdout-test` + `edgehar finetune --steps 2000 --lr 5e-4`.
PAPER_HARFM = {"config": "paper", "pretrain_steps": 2000, "finetune_steps": 2000, "finetune_lr": 5e-4}
TEACHER_CODE = ["edgehar.recipes", "edgehar.models.teacher", "edgehar.train.pretrain", "edgehar.train.finetune",
                "edgehar.train.supervised", "edgehar.models.augment", "edgehar.models.inference"]
STUDENT_CODE = ["edgehar.recipes", "edgehar.models.student", "edgehar.train.distill", "edgehar.train.supervised",
                "edgehar.models.augment"]
BASELINE_CODE = ["edgehar.recipes", "edgehar.models.baselines", "edgehar.train.supervised"]


def log(msg: str) -> None:
    import time

    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def load_split(root: Path, plan: dict, seed: int):
    """(all windows, train, validation, test, test subjects) of HAPT."""
    from edgehar.data import hapt
    from edgehar.data.datasets import activity_windows
    from edgehar.recipes import split_train_validation

    w = activity_windows("hapt", root / "hapt", rate=50.0, window=128, hop=64)
    train, val, test = split_train_validation(w, hapt.TEST_SUBJECTS, seed)
    if plan["max_train"] and len(train) > plan["max_train"]:
        keep = np.random.default_rng(seed).choice(len(train), plan["max_train"], replace=False)
        train = train.take(np.sort(keep))
    return w, train, val, test, list(hapt.TEST_SUBJECTS)


def training_seconds(path: Path) -> float:
    """Seconds a checkpoint's training took, as its card records them (pre-training and
    fine-tuning, or a baseline's training; 0 where none is recorded)."""
    from edgehar.checkpoint import load_checkpoint

    prov = load_checkpoint(path)["card"].provenance or {}
    return float(sum((prov.get(k) or {}).get("seconds") or 0 for k in ("pretrain", "finetune"))
                 + (prov.get("train_s") or 0))


def make_teacher(recipe, train, val, split: dict, path: Path, device: str = "cpu") -> Path:
    """Train and save one teacher on `device` (a process of its own under --jobs)."""
    from edgehar.models.teacher import save_teacher
    from edgehar.recipes import train_teacher
    from edgehar.train.loop import use_device

    torch.set_num_threads(1)
    use_device(device)
    teacher, card, pre = train_teacher(recipe, train, val, progress=False, data={"dataset": "hapt", **split})
    save_teacher(path, teacher, card, extra={"loss_curve": pre.loss_curve})
    return path


def train_teachers(specs, manifest, data_sha: str, train, val, split: dict, jobs: int, reused: list,
                   failures: list, device: str = "cpu") -> dict:
    """{key: checkpoint} of every teacher in `specs`, reused through the manifest or trained,
    `jobs` at a time; a family that fails is reported, not fatal."""
    from edgehar.bench.manifest import content_key
    from edgehar.models import FAMILIES as FAMILY_MODULES

    names = {f"teacher_{key}.pt": key for key, _ in specs}
    jobs_of = {f"teacher_{key}.pt": (content_key(asdict(recipe), TEACHER_CODE + [FAMILY_MODULES[recipe.family]], data_sha),
                                     asdict(recipe), make_teacher,
                                     (recipe, train, val, split, manifest.folder / f"teacher_{key}.pt", device))
               for key, recipe in specs}

    def failed(name, e):  # one family failing must not sink the table
        failures.append(f"teacher {names[name]}: {type(e).__name__}: {str(e).splitlines()[0][:160]}")
        log(failures[-1])

    made = manifest.build_many(jobs_of, max(1, jobs), done=lambda name, _: log(f"{name}: made"), failed=failed)
    for name, (_, was, _) in made.items():
        if was:
            reused.append(name)
            log(f"{name}: reused (same recipe, code and data)")
    return {names[name]: path for name, (path, _, _) in made.items()}


def main(argv=None) -> int:
    from edgehar.train.flags import add_device_argument
    from edgehar.train.loop import use_device

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fast", action="store_true", help="tiny configs and few steps (fits CI; not the README's figures)")
    p.add_argument("--data", default=os.environ.get("EDGEHAR_DATA"), help="EDGEHAR_DATA folder")
    p.add_argument("--out", help="results folder (default benchmarks/results, or benchmarks/results/fast)")
    p.add_argument("--only", default=",".join(FAMILIES), help="teacher families to run (comma separated)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=1, help="teachers trained at once, one process and thread each")
    p.add_argument("--update-readme", action="store_true", help="rewrite README.md's benchmark section")
    add_device_argument(p)
    args = p.parse_args(argv)
    if not args.data:
        p.error("set EDGEHAR_DATA or pass --data")
    families = [f.strip() for f in args.only.split(",") if f.strip()]
    if unknown := [f for f in families if f not in FAMILIES]:
        p.error(f"unknown teacher family {unknown} (known: {', '.join(FAMILIES)})")

    from edgehar.bench import measure
    from edgehar.bench.manifest import Manifest, content_key, windows_sha256
    from edgehar.digest import file_sha256
    from edgehar.bench.provenance import Run
    from edgehar.checkpoint import save_checkpoint
    from edgehar.models import load_model
    from edgehar.recipes import TeacherRecipe, distill_student, export_artifact, train_baseline
    from edgehar.train.distill import DistillConfig

    run = Run(__file__, argv, REPO)
    torch.set_num_threads(1)
    use_device(args.device)  # the baselines and students here; each teacher process gets --device too
    plan_name = "fast" if args.fast else "full"
    plan = PLANS[plan_name]
    root = Path(args.data)
    out = Path(args.out) if args.out else HERE / "results" / ("fast" if args.fast else "")
    manifest = Manifest(out / "models")
    manifest.folder.mkdir(parents=True, exist_ok=True)
    w, train, val, test, test_subjects = load_split(root, plan, args.seed)
    data_sha = windows_sha256(train, val)
    split = {"test_subjects": test_subjects, "validation_subjects": sorted(set(val.subject.tolist()))}
    log(f"HAPT: {len(train)} training windows ({int((train.y >= 0).sum())} labelled), {len(val.labelled())} "
        f"validation windows (subjects {split['validation_subjects']}), {len(test.labelled())} test windows")
    rows, failures, reused = [], [], []

    def build(name, recipe, modules, make):
        path, was = manifest.build(name, content_key(recipe, modules, data_sha), recipe, make)
        if was:
            reused.append(name)
        log(f"{name}: {'reused (same recipe, code and data)' if was else 'made'}")
        return path

    # -- teachers: chosen on validation ----------------------------------------------------------
    specs = [(f, TeacherRecipe(family=f, config=plan["teacher_config"], pretrain_steps=plan["pretrain_steps"],
                               finetune_steps=plan["finetune_steps"], seed=args.seed)) for f in families]
    if plan["paper_teacher"] and "harfm" in families:
        specs.insert(1, ("harfm_paper", TeacherRecipe(family="harfm", seed=args.seed, **PAPER_HARFM)))
    teachers = {}
    made = train_teachers(specs, manifest, data_sha, train, val, split, args.jobs, reused, failures, args.device)
    for key, recipe in specs:
        if key not in made:
            continue
        path = made[key]
        model, card = load_model(path)
        macs, params = measure.torch_macs(model, card), sum(q.numel() for q in model.parameters())
        onnx_path = out / "models" / f"teacher_{key}.onnx"
        try:
            measure.export_onnx(model, card, onnx_path, None, None)
        except Exception as e:  # noqa: BLE001 - no ONNX: latency from torch, flash = fp32 weights
            failures.append(f"teacher {key}: no ONNX export ({type(e).__name__})")
            onnx_path = None
        val_f1 = card.provenance["metrics"]["validation"]["macro_f1"]
        title = f"{recipe.family} teacher" + (f" ({recipe.config} size)" if recipe.family == "harfm" and not args.fast else "")
        origin = (f"{recipe.config} config: pre-trained {recipe.pretrain_steps} steps on the training subjects, "
                  f"fine-tuned {recipe.finetune_steps} steps; validation macro-F1 {val_f1:.4f}")
        rows.append(measure.measure_row(title, "teacher", "fp32", path, root, plan["profile_runs"], model, card,
                                        macs, params, onnx_path, origin))
        teachers[key] = (rows[-1], path, val_f1)
    if not teachers:
        sys.exit("run_all: no teacher could be trained: " + "; ".join(failures))
    best = max(teachers, key=lambda k: teachers[k][2])
    best_row, best_path, _ = teachers[best]
    selection = {"best_teacher": best, "chosen_on": "validation macro-F1",
                 "validation_macro_f1": {k: round(v[2], 4) for k, v in teachers.items()}}
    log(f"best teacher on validation: {best} ({teachers[best][2]:.4f})")

    limu = root / "limu_bert"
    if limu.is_dir():
        rows.append(measure.limubert_row(limu, root, test_subjects))

    # -- students --------------------------------------------------------------------------------
    students = {}
    for size in ("tiny", "small"):
        recipe = {"size": size, "distill": asdict(DistillConfig(steps=plan["distill_steps"], seed=args.seed)),
                  "teacher_sha256": file_sha256(best_path)}

        def make(path, size=size):
            teacher, tcard = load_model(best_path)
            student, card, history = distill_student(
                teacher, tcard, train, val, size, DistillConfig(steps=plan["distill_steps"], seed=args.seed),
                str(best_path.name), {"dataset": "hapt", **split})
            save_checkpoint(path, student, card, extra={"history": history})
        path = build(f"student_{size}.pt", recipe, STUDENT_CODE, make)
        folder = out / "models" / f"student_{size}_export"
        log(f"student {size}: export")
        export_artifact(path, folder, int8=True, windows=w, data="hapt", test_subjects=test_subjects,
                        n_calib=plan["n_calib"], seed=args.seed, micro=plan["micro_parity"])
        model, card = load_model(path)
        macs, params = measure.torch_macs(model, card), sum(q.numel() for q in model.parameters())
        for fmt, name in ARTIFACTS:
            rows.append(measure.measure_row(f"student {size}", "student", fmt, folder / name, root,
                                            plan["profile_runs"], model, card, macs, params))
            students[(size, fmt)] = rows[-1]

    # -- baselines -------------------------------------------------------------------------------
    from edgehar.calib.build import calib_from_windows
    from edgehar.models.baselines import INT8_EXPORTABLE

    calib = calib_from_windows(train.labelled(), plan["n_calib"], args.seed)
    for name, title in BASELINES.items():
        steps = plan["baseline_steps"][name]

        def make(path, name=name, steps=steps):
            model, card = train_baseline(name, train, val, steps, args.seed, data={"dataset": "hapt", **split})
            save_checkpoint(path, model, card)
        path = build(f"{name}.pt", {"baseline": name, "steps": steps, "seed": args.seed}, BASELINE_CODE, make)
        model, card = load_model(path)
        macs, params = measure.torch_macs(model, card), sum(q.numel() for q in model.parameters())
        if name in INT8_EXPORTABLE:  # the students' export: full-int8 TFLite measured on M4 / M55
            folder = out / "models" / f"{name}_export"
            log(f"{name}: export")
            export_artifact(path, folder, int8=True, windows=w, data="hapt", test_subjects=test_subjects,
                            n_calib=plan["n_calib"], seed=args.seed, micro=plan["micro_parity"])
            for fmt, file in ARTIFACTS:
                rows.append(measure.measure_row(title, "baseline", fmt, folder / file, root, plan["profile_runs"],
                                                model, card, macs, params))
            continue
        fp32, int8 = out / "models" / f"{name}.onnx", out / "models" / f"{name}_int8.onnx"
        measure.export_onnx(model, card, fp32, int8, card.normalise(calib.x))
        for fmt, file in (("fp32 ONNX", fp32), ("int8 ONNX", int8)):
            rows.append(measure.measure_row(title, "baseline", fmt, file, root, plan["profile_runs"], model, card,
                                            macs, params))
        tfl = out / "models" / f"{name}_fp32.tflite"  # for the TFLite-Micro arena
        why = measure.export_tflite_fp32(model, card, tfl)
        if why is None:
            rows.append(measure.measure_row(title, "baseline", "fp32 TFLite", tfl, root, plan["profile_runs"],
                                            model, card, macs, params))
        else:
            failures.append(f"{title}: no TFLite file ({why}), so no arena figure")

    reused = {name: round(training_seconds(manifest.folder / name), 1) for name in reused}
    write_outputs(args, out, plan_name, plan, run, rows, students, best_row, selection, failures, reused,
                  {"dataset": "hapt", "rate": 50.0, "window": 128, "hop": 64, "channels": list(w.channels),
                   **split, "train_windows": len(train), "train_labelled": int((train.y >= 0).sum()),
                   "validation_windows": len(val.labelled()), "test_windows": len(test.labelled())})
    return 0


def write_outputs(args, out, plan_name, plan, run, rows, students, best_row, selection, failures, reused, data):
    import plots

    from edgehar.atomic import write_json, write_text
    from edgehar.bench import table
    from edgehar.bench.measure import paper_harfm_macs

    small = students[("small", "int8 TFLite")]
    others = [v for (size, fmt), v in students.items() if fmt == "int8 TFLite" and size != "small"]
    reference = None if any("paper size" in r["name"] for r in rows) else paper_harfm_macs()
    targets = table.check_targets(rows, best_row, small, others, reference)
    plots.f1_vs_macs(rows, out / "f1_vs_macs.png", f"HAPT 6 activities, official test subjects ({plan_name} run)")
    plots.confusion(small["confusion"], small["labels"], out / "confusion_int8_small.png",
                    f"int8 student 'small' (TFLite), macro-F1 {small['macro_f1']:.3f}")
    summary = {"provenance": run.stamp(), "plan": plan_name, "plan_settings": plan, "data": data,
               "selection": selection, "reused_models": reused, "failures": failures,
               "rows": [{k: v for k, v in r.items() if k not in ("confusion", "labels")} for r in rows],
               "targets": targets, "confusion_int8_small": {"labels": small["labels"], "matrix": small["confusion"]}}
    write_json(out / "summary.json", summary)
    md = markdown(summary)
    write_text(out / "summary.md", md)
    print(md)
    if args.update_readme:
        table.update_readme(REPO / "README.md", md, [("macro-F1 vs MACs", out / "f1_vs_macs.png"),
                                                     ("confusion of the int8 small student",
                                                      out / "confusion_int8_small.png")])
    log(f"done: {summary['provenance']['cpu_seconds']:.0f} CPU s -> {out}")


def markdown(s: dict) -> str:
    from edgehar.bench import table

    d, prov, sel = s["data"], s["provenance"], s["selection"]
    lines = [f"## Benchmark: HAPT, 6 activities ({s['plan']} run)", "",
             f"Command: `{prov['command']}` at commit `{prov['commit'][:12]}`: {prov['cpu_seconds'] / 60:.1f} CPU "
             f"minutes ({prov['wall_seconds'] / 60:.0f} min wall, {prov['torch_threads']} torch thread, "
             f"{prov['hardware']['cpu']}, torch {prov['torch']}, {prov['finished']}"
             + ")" + (f"; models reused by content hash (same recipe, code and windows), whose training took "
                      f"{sum(s['reused_models'].values()) / 60:.0f} more minutes on 1 thread (their cards): "
                      + ", ".join(f"{k} {v / 60:.1f}" for k, v in s["reused_models"].items()) if s["reused_models"] else "")
             + ".",
             f"HAPT raw recordings, 50 Hz, 128-sample windows (hop 64), {', '.join(d['channels'])}; trained on "
             f"{d['train_windows']} windows of the training subjects ({d['train_labelled']} labelled); choices made on "
             f"{d['validation_windows']} windows of validation subjects {', '.join(map(str, d['validation_subjects']))} "
             f"(drawn from the training subjects); scored once on {d['test_windows']} windows of the official test "
             f"subjects ({', '.join(map(str, d['test_subjects']))}) with `edgehar eval`'s code.",
             f"Best teacher, chosen on {sel['chosen_on']}: **{sel['best_teacher']}** ("
             + ", ".join(f"{k} {v:.4f}" for k, v in sel["validation_macro_f1"].items())
             + "); the students are distilled from it.", ""]
    lines += table.table(s["rows"])
    lines += ["", "MACs: torch FLOP counter / 2 for every model (conv, linear, matmul). Flash: file bytes "
              "(teachers without an ONNX export: fp32 weight bytes). Arena: measured by allocating the model in "
              "tflite-micro (TFLite files only). Cortex-M4 / M55: instructions per inference MEASURED with "
              "TFLM + CMSIS-NN on emulated cores (`edgehar profile --measure`, TFLite files, when "
              "EDGEHAR_TOOLCHAINS is set; benchmarks/results/mcu.md has per-op counts and latency ranges); "
              "other rows: an ESTIMATE (MACs x cycles/MAC at 64 MHz, edgehar/profile/targets.py). Wrist: macro-F1 on the Bangle.js recordings over "
              "the classes both know (walking, sitting, lying); gyro models run there only with the gyro stream "
              "absent (students).", "", "### Targets", ""]
    lines += table.target_lines(s["targets"])
    lines += [f"- {r['name']}: {r['origin']}" for r in s["rows"] if r.get("origin")]
    if s["failures"]:
        lines += ["", "### Failures", ""] + [f"- {f}" for f in s["failures"]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
