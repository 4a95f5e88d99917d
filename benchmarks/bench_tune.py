"""`edgehar tune` on HAPT and on the wrist corpus, beside the current students, all int8 and
MEASURED on emulated Cortex-M4 and M55 (TFLM + CMSIS-NN under qemu-system-arm).

    EDGEHAR_TOOLCHAINS=../shared/toolchains EDGEHAR_DATA=../shared/data python benchmarks/bench_tune.py \
        [--hapt-teacher T.pt] [--wrist-teacher T.pt --wrist-corpus DIR] [--trials 40] [--steps 600] \
        [--wrist-steps 2000] [--hapt-budget B] [--wrist-budget instructions=0.5M,arena=32KiB,flash=128KiB] \
        [--seeds 0,1,2] [--refine 2] [--jobs 1] [--work DIR] [--out benchmarks/results]

(a) The current tiny and small students and the int8 baselines (Ignatov/IGN, the plain CNN, the
    TinyHAR variant `tinyhar_tflm`: `edgehar export`'s Keras mirrors), all at HAPT shape (128 x 6,
    6 classes) and untrained, exported full-int8 and measured on both cores. Untrained, because
    the counts hardly depend on the weights: CMSIS-NN's conv, fully-connected and pooling kernels
    run the same instructions whatever the values (the plain CNN: identical counts untrained, with
    random BatchNorm statistics, and trained 150 steps); the kernels that branch on values moved a
    trained model's count a little: Ignatov +0.14% M4 / +0.28% M55 (broadcast SUB, MEAN, RSQRT),
    TinyHAR +0.19% / +0.76% (SOFTMAX skips the exp of entries far below the row's maximum, +140k;
    TANH and LOGISTIC saturate early, -105k); another random initialisation moved TinyHAR's M55
    count by 1.8%.
(b) With a teacher: the search on HAPT (--hapt-teacher) and on the wrist corpus
    (--wrist-teacher, --wrist-corpus), each into --work/<name> (rerunning resumes), its start
    configurations (`start_points`) tried first, its front and chosen model summarised.
(c) Shortlists taken to the full recipe, chosen on validation only. One choice per HAPT int8
    baseline of the README's table (trials measured below its M4 count) and one on the wrist
    (trials within --wrist-budget); each choice shortlists its --refine trials with the best
    short-run validation macro-F1 plus its start configurations, distils them at the full
    recipe (HAPT: run_all's 3300 steps, 3 seeds; wrist: bench_wrist's student recipe, 24000
    steps, 1 seed; --jobs at once) and keeps the best full-recipe validation macro-F1.
(d) The chosen configurations confirmed on the test split: distilled once per seed (the
    shortlist's runs reused), exported full-int8, scored through the int8 file on the test
    subjects (HAPT's official test subjects; the wrist pool mean of bench_wrist and Bangle.js)
    and measured.
    Writes tune.json and tune.md.
"""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
import time
from pathlib import Path

from edgehar.atomic import write_bytes, write_json, write_text

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
CPUS = ["cortex-m4", "cortex-m55"]


def measure_students(tc) -> list[dict]:
    from bench_profile import export_students

    from edgehar.tune.measure import measure_file

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        files, macs = export_students(Path(tmp))
        for f in (f for f in files if f.name.endswith("int8.tflite")):
            m = measure_file(tc, f, CPUS)
            size = f.name.split("-")[1]
            rows.append({"model": f"student {size}", "macs": macs[size], "instructions": m["instructions"],
                         "arena": m["arena"], "flash": m["flash"]})
            print(f"student {size}: {m['instructions']}", file=sys.stderr)
    return rows


BASELINES = {"ignatov": "Ignatov (IGN)", "cnn": "plain CNN", "tinyhar_tflm": "TinyHAR (TFLM variant)"}


def baseline_int8(name: str, seed: int = 0) -> tuple[bytes, int]:
    """(full-int8 TFLite bytes, PyTorch MACs) of an untrained baseline at HAPT shape, through
    the Keras mirror and converter `edgehar export` uses; calibrated on N(0, 1) windows, as the
    students here are."""
    import numpy as np
    import torch

    from edgehar.export import tflite
    from edgehar.export.baseline_mirror import build_baseline_mirror
    from edgehar.models import build
    from edgehar.models.baselines import arch_for
    from edgehar.models.torch_macs import torch_macs

    torch.manual_seed(seed)
    arch = arch_for(name, 6, 6, 128)
    model = build(arch).eval()
    calib = np.random.default_rng(seed).standard_normal((32, 128, 6)).astype(np.float32)
    with tflite.quiet():
        data, _ = tflite.convert_full_int8(build_baseline_mirror(arch, model.state_dict()), calib)
    return data, torch_macs(model, torch.zeros(1, 128, 6))


def measure_baselines(tc) -> list[dict]:
    from edgehar.tune.measure import measure_file

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, title in BASELINES.items():
            data, macs = baseline_int8(name)
            f = Path(tmp) / f"{name}-int8.tflite"
            f.write_bytes(data)
            m = measure_file(tc, f, CPUS)
            rows.append({"model": title, "family": name, "macs": macs, "instructions": m["instructions"],
                         "arena": m["arena"], "flash": m["flash"]})
            print(f"{title}: {m['instructions']}", file=sys.stderr)
    return rows


def search(name: str, teacher: str, data: str, budget, trials: int, steps: int, args) -> dict:
    from edgehar.tune.search import tune

    start = time.process_time()
    rep = tune(teacher, args.work / name, CPUS, budget, trials, steps, data=data, seed=0, start=start_points(name))
    chosen = next((r for r in rep["trials"] if r["trial"] == rep["chosen"]), None)
    return {"name": name, "teacher": teacher, "data": data, "steps": steps, "budget": budget.describe(),
            "limits": budget.to_dict(), "trials": len(rep["trials"]), "front": rep["front"], "chosen": chosen, "all": rep["trials"],
            "smallest": rep["smallest_configuration"], "folder": str(args.work / name),
            "cpu_s": round(time.process_time() - start, 1)}


def named(size: str, **change) -> dict:
    """A named student size (`edgehar.models.student.SIZES`, defaults filled in) as a
    configuration of the search space, with `change` applied."""
    from edgehar.models.student import DEFAULTS, SIZES
    from edgehar.tune.space import SMALLEST

    cfg = {**DEFAULTS, **SIZES[size], **change}
    return {k: cfg[k] for k in SMALLEST}  # the keys of every configuration of the space


def start_points(name: str) -> list[dict]:
    """Each search's start configurations (tried first, and always taken to the full recipe):
    on HAPT the named tiny and small students; on the wrist the tiny student cut to the
    0.5M budget: 7 tokens instead of 13 (strides 4, 2, 2), a feed-forward width of 32, and
    softmax-free (kernel 5 or 7) or softmax attention. Where they came from: measured untrained (the tiny student is 1.02M M4
    instructions at wrist shape; these 0.47-0.49M) and checked on corpus validation only."""
    if name == "hapt":
        return [named("tiny"), named("small")]
    cut = {"strides": [4, 2, 2], "ff": 32}
    return [named("tiny", **cut, attention="linear"), named("tiny", **cut, attention="linear", kernel=7),
            named("tiny", **cut)]


REFINE_SEEDS = {"hapt": 3, "wrist": 1}  # full-recipe runs per shortlisted trial: ~1 CPU min on HAPT, ~6 on the wrist
WRIST_FINAL_STEPS = 24000  # the step count bench_wrist's validation chose for the tiny student
WRIST_TARGET = {"pool_mean": 0.827, "instructions": 500_000}  # today's small student on the pool; the budget


def hapt_baselines() -> list[dict]:
    """The int8 TFLite baselines of the README's HAPT table (benchmarks/results/summary.json):
    their test macro-F1 and measured M4 / M55 instructions."""
    import json

    rows = json.loads((HERE / "results" / "summary.json").read_text())["rows"]
    return [{"model": r["name"], "test_macro_f1": r["macro_f1"], "m4": r["m4_instructions"],
             "m55": r.get("m55_instructions")}
            for r in rows if r["kind"] == "baseline" and r["format"] == "int8 TFLite" and r.get("m4_instructions")]


def shortlist(result: dict, baselines: list[dict], k: int, start: list[dict]) -> list[dict]:
    """The configurations taken to the full recipe, per choice: on HAPT one choice per baseline
    (trials measured below its M4 count, within the search's arena and flash budget), on the
    wrist one (trials within the budget). Each choice's shortlist: its `k` trials with the best
    validation macro-F1 at the search's short step count, plus its start configurations (the
    short count ranks near sizes poorly: on the wrist, 2,000-step trials from 100k to 550k
    instructions all land at 0.60-0.67). A configuration sampled twice counts once.
    [{"why", "trials": [trial row, ...]}]"""
    from edgehar.tune.budget import Budget
    from edgehar.tune.pareto import within

    starts = [r for r in result["all"] if r["config"] in start]
    if result["name"] == "wrist":
        budget = Budget(**result["limits"])
        choices = [(f"within {result['budget']}", [r for r in result["all"] if within(r, budget)])]
    else:
        memory = Budget(**{**result["limits"], "instructions": None})  # each baseline sets the instructions
        fits = [r for r in result["all"] if within(r, memory)]
        choices = [(f"below {b['model']}'s {b['m4']:,} M4 instructions",
                     [r for r in fits if r["instructions"]["cortex-m4"] < b["m4"]]) for b in baselines]
    out = []
    for why, rows in choices:
        ranked = sorted(rows, key=lambda r: (-r["validation_macro_f1"], r["instructions"]["cortex-m4"]))
        best = [r for i, r in enumerate(ranked) if r["config"] not in [o["config"] for o in ranked[:i]]][:k]
        picked = best + [r for r in starts if r in rows and r not in best]
        if picked:
            out.append({"why": why, "trials": picked})
    return out


def shortlisted(groups: list[dict]) -> list[dict]:
    """Every trial row of the shortlists, once (a trial may be on several)."""
    return list({r["trial"]: r for g in groups for r in g["trials"]}.values())


def choose_refined(groups: list[dict], refined: dict) -> list[dict]:
    """Per shortlist, the trial with the best mean validation macro-F1 at the full recipe (ties:
    fewer M4 instructions); a trial chosen for several baselines is confirmed once."""
    out = {}
    for g in groups:
        best = max(g["trials"], key=lambda r: (refined[r["trial"]], -r["instructions"]["cortex-m4"]))
        out.setdefault(best["trial"], {"trial": best, "why": []})["why"].append(
            f"best full-recipe validation macro-F1 {g['why']}")
    return [{"trial": c["trial"], "why": "; ".join(c["why"])} for c in out.values()]


def test_sets(name: str, tdata, root: Path) -> tuple[list[str], dict, tuple]:
    """(labels, {data set: labelled test windows}, (bangle, clean) or ()) in the teacher's format."""
    import numpy as np

    from edgehar.bench.wrist import bangle_windows
    from edgehar.data import hapt
    from edgehar.data.datasets import windows_for_card
    from edgehar.data.wrist_corpus import load_part, relabel_to

    card = tdata.teacher_card
    labels = list(card.labels)
    if name == "hapt":
        w = windows_for_card(card, "hapt")  # as the search read it (EDGEHAR_DATA)
        return labels, {"hapt": w.take(np.isin(w.subject, hapt.TEST_SUBJECTS)).labelled()}, ()
    test = relabel_to(load_part(tdata.data["root"], "test"), labels)
    tests = {ds: test.take(test.dataset == i).windows(labels, labelled_only=True)
             for i, ds in enumerate(test.manifest["datasets"])}
    return labels, tests, bangle_windows(root, card)


@functools.lru_cache(maxsize=2)
def tune_data(teacher: str, data: str):
    """The search's teacher, windows and targets (once per process)."""
    from edgehar.tune.trial import load_tune_data

    return load_tune_data(teacher, data, seed=0, progress=False)


def make_student(teacher: str, data: str, name: str, config: dict, recipe: dict, seed: int, path: Path) -> float:
    """Distil one configuration at `recipe` with `seed` into `path` (one process and thread
    each under --jobs); its CPU seconds. The validation scores travel in the card."""
    import torch

    from edgehar.checkpoint import save_checkpoint
    from edgehar.recipes import distill_student
    from edgehar.train.distill import DistillConfig
    from edgehar.tune import space

    torch.set_num_threads(1)
    tdata = tune_data(teacher, data)
    start = time.process_time()
    student, card, history = distill_student(
        tdata.teacher, tdata.teacher_card, tdata.train, tdata.validation, space.size(name, config),
        DistillConfig(**recipe, seed=seed), tdata.teacher_spec, tdata.data, progress=False, targets=tdata.targets)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(path, student, card, extra={"history": history})
    return round(time.process_time() - start, 1)


MADE: dict = {}  # (search, trial, seed) -> students()'s entry: a shortlist run confirmed later keeps its figures


def students(result: dict, trials: list[dict], recipe: dict, seeds: list[int], work: Path, jobs: int) -> dict:
    """{(trial, seed): (checkpoint, reused, CPU s)}: each trial's configuration distilled at the
    full `recipe` once per seed into `work`/<search>-confirm, `jobs` at a time. A student an
    earlier run distilled from the same configuration, recipe, seed, teacher, windows and
    training code is reused (`edgehar.bench.manifest`), so a rerun retrains only what changed;
    `reused` is true only for those (a student this run made keeps its own CPU seconds)."""
    from run_all import STUDENT_CODE

    from edgehar.bench.manifest import Manifest, content_key, windows_sha256
    from edgehar.digest import file_sha256

    name = result["name"]
    tdata = tune_data(result["teacher"], result["data"])
    manifest = Manifest(work / f"{name}-confirm")
    made_from = file_sha256(result["teacher"]) + windows_sha256(tdata.train, tdata.validation)
    out, jobs_of, which = {}, {}, {}
    for t in trials:
        for seed in seeds:
            if (name, t["trial"], seed) in MADE:
                out[t["trial"], seed] = MADE[name, t["trial"], seed]
                continue
            how = {"config": t["config"], "recipe": recipe, "seed": seed}
            file = f"{t['trial']:04d}-seed{seed}/student.pt"
            which[file] = (t["trial"], seed)
            jobs_of[file] = (content_key(how, STUDENT_CODE, made_from), how, make_student,
                             (result["teacher"], result["data"], f"tuned-{name}-{t['trial']}", t["config"], recipe,
                              seed, manifest.folder / file))

    def done(file, cpu):
        print(f"{name} trial {which[file][0]} seed {which[file][1]}: distilled ({cpu} CPU s)", file=sys.stderr, flush=True)

    for file, (path, reused, cpu) in manifest.build_many(jobs_of, jobs, done=done).items():
        out[which[file]] = MADE[(name, *which[file])] = (path, reused, 0.0 if reused else cpu)
    return out


def refine(result: dict, groups: list[dict], recipe: dict, seeds: list[int], work: Path, jobs: int) -> dict:
    """{trial: [{seed, validation_macro_f1, cpu_s, reused_checkpoint}, ...]}: every shortlisted
    trial at the full recipe, once per seed (validation only: no test figure is read here)."""
    from edgehar.card_io import read_card

    trials = shortlisted(groups)
    made = students(result, trials, recipe, seeds, work, jobs)
    return {t["trial"]: [{"seed": s, "validation_macro_f1":
                          read_card(made[t["trial"], s][0]).provenance["metrics"]["validation"]["macro_f1"],
                          "cpu_s": made[t["trial"], s][2], "reused_checkpoint": made[t["trial"], s][1]}
                         for s in seeds] for t in trials}


def confirm(result: dict, chosen: list[dict], recipe: dict, seeds: list[int], root: Path, tc,
            work: Path, jobs: int = 1) -> list[dict]:
    """Each chosen configuration distilled at the full `recipe` once per seed (`students`),
    exported full-int8, scored through the int8 file on the test subjects and measured."""
    import numpy as np

    from edgehar.bench.wrist import macro_f1, score_row
    from edgehar.card_io import read_card
    from edgehar.export.pipeline import export_student
    from edgehar.runtime import Predictor
    from edgehar.tune import space
    from edgehar.tune.measure import measure_file

    name = result["name"]
    tdata = tune_data(result["teacher"], result["data"])
    labels, tests, bangle = test_sets(name, tdata, root)
    made = students(result, [c["trial"] for c in chosen], recipe, seeds, work, jobs)
    rows = []
    for c in chosen:
        t = c["trial"]
        size = space.size(f"tuned-{name}-{t['trial']}", t["config"])
        runs = []
        for seed in seeds:
            checkpoint, reused, cpu = made[t["trial"], seed]
            folder, card = checkpoint.parent, read_card(checkpoint)
            export_student(checkpoint, folder / "export", windows=tdata.train, data=f"{name} train",
                           micro=False, progress=False, seed=seed)
            predict = Predictor(folder / "export").predict
            if name == "hapt":
                run = {"test_macro_f1": macro_f1([labels[i] for i in predict(tests["hapt"].x)], tests["hapt"])["macro_f1"]}
            else:
                r = score_row(size, predict, labels, tests, *bangle)
                run = {"test_macro_f1": r["pool_mean"], "bangle": r["bangle"], "bangle_clean": r["bangle_clean"],
                       **{ds: r[ds] for ds in tests}}
            m = measure_file(tc, folder / "export" / "model_int8.tflite", CPUS)
            run.update(seed=seed, validation_macro_f1=card.provenance["metrics"]["validation"]["macro_f1"],
                       instructions=m["instructions"], arena=m["arena"], flash=m["flash"],
                       cpu_s=cpu, reused_checkpoint=reused)
            runs.append(run)
            print(f"{name} trial {t['trial']} seed {seed}: test {run['test_macro_f1']:.4f}, "
                  f"M4 {m['instructions']['cortex-m4']:,}", file=sys.stderr, flush=True)
        f1 = [r["test_macro_f1"] for r in runs]
        rows.append({"search": name, "trial": t["trial"], "why": c["why"], "config": t["config"], "head": t["head"],
                     "tune_validation_macro_f1": t["validation_macro_f1"],
                     "refined_validation_macro_f1": c.get("refined"), "recipe": recipe,
                     "test_macro_f1_mean": float(np.mean(f1)), "test_macro_f1_std": float(np.std(f1)),
                     "m4": max(r["instructions"]["cortex-m4"] for r in runs),
                     "m55": max(r["instructions"]["cortex-m55"] for r in runs),
                     "arena": max(r["arena"] for r in runs), "flash": max(r["flash"] for r in runs), "runs": runs})
    return rows


def markdown(result: dict) -> str:
    from edgehar.tune.space import encoder_text

    lines = ["# edgehar tune: students searched on measured Cortex-M instructions", "",
             (f"Command: `{result['command']}` at {result['provenance']['commit']}, "
             f"{result['provenance']['cpu_seconds'] / 60:.1f} CPU min in this run "
             f"({result['provenance']['wall_seconds'] / 60:.1f} min wall; trials and checkpoints an earlier run "
             "of the same command left in --work are reused, not recounted)."), "",
             "| model (untrained, HAPT shape) | MACs | M4 instructions | M55 instructions | arena B | flash B |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in result["students"] + result.get("baselines", []):
        lines.append(f"| {r['model']} (int8) | {r['macs']:,} | {r['instructions']['cortex-m4']:,} | "
                     f"{r['instructions']['cortex-m55']:,} | {r['arena']:,} | {r['flash']:,} |")
    for s in result["searches"]:
        c = s["chosen"]
        lines += ["", (f"## {s['name']}: {s['trials']} trials of {s['steps']} distillation steps, "
                      f"{len(s['front'])} on the front; budget {s['budget']} ({s['cpu_s']} CPU s in this run)"), ""]
        if c is None:
            lines.append("No trial within the budget.")
        else:
            lines.append(f"Chosen: trial {c['trial']}, validation macro-F1 {c['validation_macro_f1']:.4f}, "
                         f"M4 {c['instructions']['cortex-m4']:,}, M55 {c['instructions']['cortex-m55']:,} "
                         f"instructions, arena {c['arena']:,} B, flash {c['flash']:,} B ({c['head']}); "
                         f"front and plot: `{s['folder']}/pareto.md`, `pareto.png`.")
    refined = result.get("refined", [])
    if refined:
        seeds = ", ".join(f"{n} seed{'s' if n > 1 else ''} on {k}" for k, n in result["refine"]["seeds"].items())
        lines += ["", (f"## Shortlists at the full recipe (validation only; per choice the {result['refine']['k']} "
                       f"best short-run trials and the start configurations; mean over the first {seeds})"), "",
                  ("| search | trial | start | head | encoder (kernel; widths; strides; d) | M4 instructions | "
                   "short-run validation | full-recipe validation | chosen |"),
                  "|---|---:|---|---|---|---:|---:|---:|---|"]
        for r in refined:
            lines.append(f"| {r['search']} | {r['trial']} | {'yes' if r['start'] else ''} | {r['head']} | "
                         f"{encoder_text(r['config'])} | {r['m4']:,} | {r['tune_validation_macro_f1']:.4f} | {r['refined_validation_macro_f1']:.4f} | "
                         f"{'yes' if r['chosen'] else ''} |")
    confirmed = result.get("confirmed", [])
    if confirmed:
        lines += ["", (f"## Confirmed on the test split: full recipe, seeds {', '.join(map(str, result['seeds']))}, "
                      "scored through the int8 file"), "",
                  ("Each configuration was chosen on validation (the shortlists above); its test figures were "
                  "read once, here. Test macro-F1: mean +- std over the seeds (HAPT: the official test "
                  "subjects; wrist: bench_wrist's pool mean of WISDM and DSADS test subjects)."), "",
                  ("| search | trial | chosen because | head | encoder (kernel; widths; strides; d) | test macro-F1 | "
                  "M4 / M55 instructions | arena B | flash B | beats |"), "|---|---:|---|---|---|---:|---:|---:|---:|---|"]
        for r in confirmed:
            lines.append(f"| {r['search']} | {r['trial']} | {r['why']} | {r['head']} | {encoder_text(r['config'])} | "
                         f"{r['test_macro_f1_mean']:.4f} +- {r['test_macro_f1_std']:.4f} | {r['m4']:,} / {r['m55']:,} | "
                         f"{r['arena']:,} | {r['flash']:,} | {'; '.join(r['beats']) or '-'} |")
        lines += ["", "Targets: " + "; ".join(result["targets"])]
    return "\n".join(lines) + "\n"


def beats(row: dict, baselines: list[dict]) -> list[str]:
    """What a confirmed configuration beats: a HAPT baseline's test macro-F1 at fewer measured M4
    instructions; the wrist target (pool mean and instructions)."""
    if row["search"] == "wrist":
        ok = row["test_macro_f1_mean"] >= WRIST_TARGET["pool_mean"] and row["m4"] <= WRIST_TARGET["instructions"]
        return [f"wrist target (pool >= {WRIST_TARGET['pool_mean']}, <= {WRIST_TARGET['instructions']:,} M4)"] if ok else []
    return [f"{b['model']} ({b['test_macro_f1']:.4f} at {b['m4']:,})" for b in baselines
            if row["test_macro_f1_mean"] > b["test_macro_f1"] and row["m4"] < b["m4"]]


def targets_met(result: dict, baselines: list[dict]) -> list[str]:
    rows = result.get("confirmed", [])
    out = []
    for b in baselines:
        who = [r for r in rows if r["search"] == "hapt" and b["model"] in "; ".join(r["beats"])]
        out.append(f"HAPT, beat {b['model']} ({b['test_macro_f1']:.4f} at {b['m4']:,} M4): "
                   + (f"met by trial {who[0]['trial']}" if who else "not met"))
    if any(s["name"] == "wrist" for s in result["searches"]):
        who = [r for r in rows if r["search"] == "wrist" and r["beats"]]
        out.append(f"wrist, pool mean >= {WRIST_TARGET['pool_mean']} at <= {WRIST_TARGET['instructions']:,} M4: "
                   + (f"met by trial {who[0]['trial']}" if who else "not met"))
    return out


def main(argv=None) -> int:
    import os

    import numpy as np

    from run_all import PLANS

    from edgehar.bench.provenance import Run, shown_path
    from edgehar.bench.wrist import STUDENT_DISTILL
    from edgehar.mcu.toolchain import find_toolchain
    from edgehar.tune.budget import parse_budget

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--hapt-teacher")
    p.add_argument("--wrist-teacher")
    p.add_argument("--wrist-corpus")
    p.add_argument("--hapt-budget", type=parse_budget, default="instructions=3.2M,arena=64KiB,flash=256KiB",
                   help="the HAPT search's budget (the plain CNN baseline's count, rounded down)")
    p.add_argument("--wrist-budget", type=parse_budget, default="instructions=0.5M,arena=32KiB,flash=128KiB")
    p.add_argument("--trials", type=int, default=40, help="trials of the HAPT search")
    p.add_argument("--wrist-trials", type=int, default=30, help="trials of the wrist search")
    p.add_argument("--steps", type=int, default=600, help="distillation steps of a HAPT trial")
    p.add_argument("--wrist-steps", type=int, default=2000, help="distillation steps of a wrist trial")
    p.add_argument("--hapt-final-steps", type=int, default=PLANS["full"]["distill_steps"],
                   help="distillation steps of a HAPT confirmation run (default: run_all's students)")
    p.add_argument("--wrist-final-steps", type=int, default=WRIST_FINAL_STEPS,
                   help="distillation steps of a wrist confirmation run")
    p.add_argument("--seeds", default="0,1,2", help="seeds of the confirmation runs ('' skips them)")
    p.add_argument("--refine", type=int, default=2,
                   help="per choice, the trials with the best short-run validation taken to the full recipe "
                        "(beside the start configurations)")
    p.add_argument("--jobs", type=int, default=1, help="full-recipe students distilled at once (one process each)")
    p.add_argument("--work", type=Path, default=Path("tune-work"))
    p.add_argument("--out", type=Path, default=HERE / "results")
    p.add_argument("--update-readme", action="store_true", help="rewrite the README's tune section")
    args = p.parse_args(argv)
    seeds = [int(x) for x in args.seeds.split(",") if x.strip()]
    recipes = {"hapt": {"steps": args.hapt_final_steps},  # run_all's student recipe
               "wrist": {"steps": args.wrist_final_steps, **STUDENT_DISTILL}}  # bench_wrist's
    run = Run(__file__, argv, HERE.parent)
    root = Path(os.environ.get("EDGEHAR_DATA", HERE.parent.parent / "shared" / "data"))
    tc = find_toolchain()
    baselines = hapt_baselines()
    result = {"command": run.command,
              "students": measure_students(tc), "baselines": measure_baselines(tc), "hapt_baselines": baselines,
              "searches": [], "seeds": seeds, "refine": {"k": args.refine, "seeds": {k: len(seeds[:n]) for k, n in REFINE_SEEDS.items()}},
              "refined": [], "confirmed": []}
    plan = []
    if args.hapt_teacher:
        plan.append(("hapt", args.hapt_teacher, "hapt", args.hapt_budget, args.trials, args.steps))
    if args.wrist_teacher and args.wrist_corpus:
        plan.append(("wrist", args.wrist_teacher, args.wrist_corpus, args.wrist_budget, args.wrist_trials,
                     args.wrist_steps))
    for name, teacher, data, budget, trials, steps in plan:  # each search confirmed before the next starts
        s = search(name, teacher, data, budget, trials, steps, args)
        result["searches"].append(s)
        if seeds:
            starts = start_points(name)
            groups = shortlist(s, baselines, args.refine, starts)
            runs = refine(s, groups, recipes[name], seeds[:REFINE_SEEDS[name]], args.work, args.jobs)
            refined = {t: float(np.mean([r["validation_macro_f1"] for r in rs])) for t, rs in runs.items()}
            chosen = choose_refined(groups, refined)
            for c in chosen:
                c["refined"] = refined[c["trial"]["trial"]]
            picked = {c["trial"]["trial"] for c in chosen}
            result["refined"] += [
                {"search": name, "trial": r["trial"], "config": r["config"], "head": r["head"],
                 "m4": r["instructions"]["cortex-m4"], "tune_validation_macro_f1": r["validation_macro_f1"],
                 "refined_validation_macro_f1": refined[r["trial"]], "start": r["config"] in starts,
                 "chosen": r["trial"] in picked, "runs": runs[r["trial"]]}
                for r in sorted(shortlisted(groups), key=lambda r: r["instructions"]["cortex-m4"])]
            result["confirmed"] += confirm(s, chosen, recipes[name], seeds, root, tc, args.work, args.jobs)
    for r in result["confirmed"]:
        r["beats"] = beats(r, baselines)
    result["targets"] = targets_met(result, baselines)
    args.out.mkdir(parents=True, exist_ok=True)
    plots = []
    for s in result["searches"]:  # each search's front, beside the tables
        png = args.out / f"tune_{s['name']}.png"
        write_bytes(png, (Path(s["folder"]) / "pareto.png").read_bytes())
        plots.append((f"{s['name']}: validation macro-F1 against measured M4 instructions", png))
    for s in result["searches"]:  # paths as a report shows them, never this machine's folders
        s.update({k: shown_path(s[k], HERE.parent) for k in ("teacher", "data", "folder") if os.sep in str(s[k])})
    result["provenance"] = run.stamp()
    write_json(args.out / "tune.json", result)
    write_text(args.out / "tune.md", markdown(result))
    if args.update_readme:
        from edgehar.bench.table import update_readme
        update_readme(HERE.parent / "README.md", markdown(result).split("\n", 2)[2], plots, section="tune",
                      title="## Students searched on measured Cortex-M instructions (`edgehar tune`)")
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
