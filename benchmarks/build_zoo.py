"""Build the model zoo (`edgehar/zoo/`): train every shipped model through `edgehar.recipes`,
score it, and publish it with its card, hashes, recipe key, provenance and figures.

    EDGEHAR_DATA=../shared/data EDGEHAR_TOOLCHAINS=../shared/toolchains python benchmarks/build_zoo.py \
        [--work DIR] [--jobs 2] [--seeds 0,1,2]

Wrist (the pooled WISDM watch + DSADS arms + GeoTec watch corpus, 20 Hz, 5-s windows, acc):
`wrist-teacher` (the corpus HAR-FM, 3000 steps), `wrist-language` (the sensor-language teacher,
3000 steps), `wrist-small` and `wrist-tiny` (accelerometer-only students distilled from the
shipped teacher over the corpus's train windows, 24000 steps; both step counts are the ones
`benchmarks/bench_wrist.py` chose on the same validation split). Every wrist recipe is trained
with each of `--seeds`; the shipped one is the seed with the best validation macro-F1 (corpus
validation subjects), and the report gives every test figure as mean +- std over the seeds. Waist (HAPT, 6 channels, 50 Hz,
2.56-s windows): `hapt-small` and `hapt-tiny` distilled with each of `--seeds` from a HAR-FM
teacher pre-trained and fine-tuned on HAPT's training subjects (one seed), shipped and reported
as the wrist students are.

The students' configurations (`STUDENTS`) come from the tune benchmark's front
(`benchmarks/bench_tune.py`, benchmarks/results/tune.json, every choice made on validation):
`tiny` is its confirmed choice under the smaller budget of each placement, `small` the named tiny
configuration, which validation preferred over the named small at about half its count.

Every checkpoint is kept in --work under a content key (its recipe, the training code and the
data bytes; `edgehar.bench.manifest`): a rerun reuses what is finished, and the report states the
CPU seconds of every checkpoint (those of earlier runs included) and of the whole build. Writes
`edgehar/zoo/` (through `edgehar.zoo.publish` only) and `benchmarks/results/zoo.{json,md}`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"
# masked reconstruction, then multi-task + text; bench_wrist's validation (generic stem): 3000 steps
# 0.7253, 6000 0.6852, 12000 0.7221
WRIST_TEACHER = {"steps": 3000, "reconstruction_fraction": 0.2}
LANGUAGE_STEPS = 3000
WRIST_DISTILL_STEPS = 24000
WRIST_DISTILL = {"batch_size": 128, "lr": 3e-3, "augment": True}
HAPT_TEACHER = {"family": "harfm", "config": "cpu", "pretrain_steps": 1000, "finetune_steps": 1100}
HAPT_DISTILL_STEPS = 2200
# Each student's configuration: ("tune", (search, trial)) is one the tune benchmark confirmed
# (benchmarks/results/tune.json), ("named", size) a named size of `edgehar.models.student`.
STUDENTS = {
    "hapt_tiny": ("tune", ("hapt", 0)),  # best full-recipe validation below Ignatov's M4 count
    "hapt_small": ("tune", ("hapt", 40)),  # best below the plain CNN's: the named tiny configuration
    "wrist_tiny": ("tune", ("wrist", 60)),  # best full-recipe validation within 0.5M M4 instructions
    # bench_wrist's validation: named tiny 0.719 (24000 steps), named small 0.699 (its best, 12000)
    "wrist_small": ("named", "tiny"),
}
CALIB_WINDOWS, HELD_OUT_WINDOWS = 200, 200  # shipped beside each student: its export needs no data
TRAIN_CODE = ["edgehar.train.pretrain", "edgehar.train.finetune", "edgehar.train.distill",
              "edgehar.train.supervised", "edgehar.train.schedule", "edgehar.train.loop", "edgehar.recipes",
              "edgehar.models.corpus_fm", "edgehar.models.harfm", "edgehar.models.student", "edgehar.models.language",
              "edgehar.models.augment", "edgehar.models.teacher", "edgehar.text", "edgehar.data.corpus",
              "edgehar.data.windows", "edgehar.data.wrist_corpus"]


def log(*a) -> None:
    print(*a, file=sys.stderr, flush=True)


# -- training jobs (each in a process of its own; one torch thread) ------------------------------
def train_job(job: dict) -> dict:
    """Train the checkpoint `job` describes into job["path"]; returns its CPU seconds."""
    import torch

    from edgehar.bench.provenance import cpu_seconds

    torch.set_num_threads(1)
    t0 = cpu_seconds()
    kind, path, root = job["kind"], Path(job["path"]), Path(job["root"])
    tmp = path.with_name(path.name + ".partial")
    if kind == "wrist_teacher":
        from edgehar.recipes import CorpusTeacherRecipe, train_corpus_teacher

        recipe = CorpusTeacherRecipe(seed=job["seed"], **job["recipe"])
        model, card, _ = train_corpus_teacher(recipe, job["corpus"], progress=False)
    elif kind == "wrist_language":
        model, card = language_teacher(Path(job["corpus"]), job["steps"], job["seed"])
    elif kind == "wrist_student":
        from edgehar.recipes import distill_corpus_student
        from edgehar.train.distill import DistillConfig

        cfg = DistillConfig(steps=job["steps"], seed=job["seed"], **job["distill"])
        model, card, history = distill_corpus_student(job["teacher"], job["corpus"], student_size(job), cfg,
                                                      progress=False)
    elif kind == "hapt_teacher":
        from edgehar.bench.zoo import hapt_data
        from edgehar.recipes import TeacherRecipe, train_teacher

        _, train, val, _ = hapt_data(root)
        model, card, _ = train_teacher(TeacherRecipe(seed=job["seed"], **job["recipe"]), train, val, progress=False,
                                       data={"dataset": "hapt"})
    elif kind == "hapt_student":
        from edgehar.bench.zoo import hapt_data
        from edgehar.models import load_model
        from edgehar.recipes import distill_student
        from edgehar.train.distill import DistillConfig

        _, train, val, _ = hapt_data(root)
        teacher, tcard = load_model(job["teacher"])
        model, card, history = distill_student(teacher, tcard, train, val, student_size(job),
                                               DistillConfig(steps=job["steps"], seed=job["seed"]),
                                               "hapt-teacher", {"dataset": "hapt"}, progress=False)
    else:
        raise ValueError(kind)
    # a shipped card names the build's files as a report shows them, not by this machine's folders
    card.provenance = shown_paths(card.provenance, [job[k] for k in ("corpus", "teacher") if k in job])
    if kind.endswith("student"):
        from edgehar.checkpoint import save_checkpoint

        save_checkpoint(tmp, model, card, extra={"history": history})
    else:
        from edgehar.models.teacher import save_teacher

        save_teacher(tmp, model, card)
    os.replace(tmp, path)
    return {"cpu_seconds": round(cpu_seconds() - t0, 1)}


def shown_paths(value, paths: list[str]):
    """`value` (a card's provenance) with every string of `paths` in it as a report shows it
    (`edgehar.bench.provenance.shown_path`)."""
    from edgehar.bench.provenance import shown_path

    if isinstance(value, dict):
        return {k: shown_paths(v, paths) for k, v in value.items()}
    if isinstance(value, list):
        return [shown_paths(v, paths) for v in value]
    return shown_path(value, REPO) if isinstance(value, str) and value in paths else value


def student_size(job: dict):
    """The student size of a job: its zoo name with its configuration."""
    from edgehar.models.student import CustomSize

    return CustomSize(job["size"], job["config"])


def student_configs(tune_report: Path = RESULTS / "tune.json") -> dict[str, dict]:
    """{checkpoint prefix: student configuration} of `STUDENTS`, defaults filled in; a tuned one
    must be among the tune benchmark's confirmed configurations, else the build stops with one
    line and exit status 2."""
    from edgehar.models.student import DEFAULTS, SIZES

    confirmed = {(c["search"], c["trial"]): c["config"] for c in json.loads(tune_report.read_text())["confirmed"]}
    out = {}
    for prefix, (source, key) in STUDENTS.items():
        if source == "named":
            out[prefix] = {**DEFAULTS, **SIZES[key]}
        elif key in confirmed:
            out[prefix] = {**DEFAULTS, **confirmed[key]}
        else:
            print(f"build_zoo: error: {tune_report}: no confirmed configuration for {prefix} {key}", file=sys.stderr)
            raise SystemExit(2)
    return out


def language_teacher(corpus: Path, steps: int, seed: int):
    """(teacher, card): the sensor-language teacher pre-trained on the labelled train windows of
    the corpus, each class's text its canonical name's descriptions plus its source sets' own names."""
    from edgehar.data.wrist_corpus import (
        canonical_classes,
        load_part,
        original_names,
        relabel,
    )
    from edgehar.recipes import TeacherRecipe, pretrain_teacher

    train = load_part(corpus, "train")
    texts = original_names(train)  # before relabelling: it reads the corpus's canonical ids
    names, remap = canonical_classes(train)
    train = relabel(train, remap)
    recipe = TeacherRecipe(family="language", config="cpu", pretrain_steps=steps, seed=seed,
                           overrides={"placement": "wrist", "label_texts": texts})
    teacher, card, _ = pretrain_teacher(recipe, train.windows(names, labelled_only=True), progress=False)
    return teacher, card


class Builder:
    """Runs jobs through the content-keyed manifest in --work, `jobs` at a time."""

    def __init__(self, work: Path, root: Path, jobs: int):
        from edgehar.bench.manifest import Manifest

        self.manifest, self.root, self.jobs = Manifest(work), root, jobs
        self.cpu_path = work / "cpu_seconds.json"
        self.cpu = json.loads(self.cpu_path.read_text()) if self.cpu_path.is_file() else {}
        self.reused: list[str] = []

    def run(self, specs: dict[str, tuple[dict, str]]) -> dict[str, Path]:
        """{name: (job, data sha256)} -> {name: checkpoint path}, training what is not reusable."""
        from edgehar.atomic import write_json
        from edgehar.bench.manifest import content_key

        jobs = {}
        for name, (job, data_sha) in specs.items():
            recipe = {k: v for k, v in job.items() if k not in ("path", "root", "corpus", "teacher")}
            jobs[name] = (content_key(recipe, TRAIN_CODE, data_sha), recipe, train_job,
                          ({**job, "path": str(self.manifest.folder / name), "root": str(self.root)},))

        def done(name, result):
            self.cpu[name] = result["cpu_seconds"]
            write_json(self.cpu_path, self.cpu)
            log(f"{name}: trained in {self.cpu[name]} CPU s")

        made = self.manifest.build_many(jobs, self.jobs, done=done)
        for name, (_, reused, _) in made.items():
            if reused:
                self.reused.append(name)
                log(f"{name}: reused (same recipe, code and data)")
        return {name: path for name, (path, _, _) in made.items()}


# -- scoring and publishing ---------------------------------------------------------------------
def student_cells(model, card, artifact: Path | None, measure: bool) -> dict:
    import torch

    from edgehar.models.torch_macs import torch_macs

    out = {"params": int(sum(p.numel() for p in model.parameters())),
           "macs": int(torch_macs(model, torch.zeros(1, card.window, len(card.channels))))}
    if artifact is not None:
        from edgehar.bench.measure import profile

        prof = profile(artifact / "model_int8.tflite", 5)
        out["int8_bytes"], out["arena"] = prof.get("file_bytes"), prof.get("arena_bytes")
        if measure:
            from edgehar.bench.measure import mcu_instructions

            m = mcu_instructions(artifact / "model_int8.tflite")
            out["instructions"] = {"cortex-m4": m.get("m4_instructions"), "cortex-m55": m.get("m55_instructions")}
    return out


def choose(runs: dict[int, dict]) -> int:
    """The seed with the best validation macro-F1 (ties: the lowest seed)."""
    return max(sorted(runs), key=lambda s: runs[s]["validation"]["macro_f1"])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", default=str(RESULTS / "tmp" / "zoo"), help="checkpoints, exports, the corpus")
    p.add_argument("--jobs", type=int, default=2, help="training processes at once (default 2)")
    p.add_argument("--seeds", default="0,1,2", help="seeds of every wrist recipe and HAPT student (default 0,1,2)")
    p.add_argument("--no-publish", action="store_true", help="score and report, but leave edgehar/zoo/ alone")
    p.add_argument("--train-only", action="store_true",
                   help="train (or reuse) every checkpoint into --work and stop: no export, scoring or publishing")
    args = p.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    configs = student_configs()  # before any training: a missing configuration stops the build at once
    if "EDGEHAR_DATA" not in os.environ:
        p.error("set EDGEHAR_DATA (the shared data folder)")

    import torch
    from edgehar.export.pipeline import export_student

    from edgehar.bench import zoo as figures
    from edgehar.bench.manifest import windows_sha256
    from edgehar.bench.provenance import Run, cpu_seconds
    from edgehar.bench.wrist import macro_f1
    from edgehar.data.wrist_corpus import load_part, relabel_to
    from edgehar.digest import file_sha256
    from edgehar.models import load_model

    torch.set_num_threads(1)
    run = Run(__file__, argv, REPO)
    root = Path(os.environ["EDGEHAR_DATA"])
    work = Path(args.work)
    (work / "models").mkdir(parents=True, exist_ok=True)
    corpus = figures.build_wrist_corpus(root, work / "corpus20")
    corpus_sha = folder_sha256(corpus)
    _, h_train, h_val, h_test = figures.hapt_data(root)
    hapt_sha = windows_sha256(h_train, h_val)
    builder = Builder(work / "models", root, args.jobs)
    on_corpus = {"corpus": str(corpus)}

    # -- teachers: every wrist recipe with each seed; the HAPT teacher once ---------------------
    specs = {}
    for s in seeds:
        specs[f"wrist_teacher_s{s}.pt"] = ({"kind": "wrist_teacher", "recipe": WRIST_TEACHER, "seed": s,
                                            **on_corpus}, corpus_sha)
        specs[f"wrist_language_s{s}.pt"] = ({"kind": "wrist_language", "steps": LANGUAGE_STEPS, "seed": s,
                                             **on_corpus}, corpus_sha)
    specs["hapt_teacher.pt"] = ({"kind": "hapt_teacher", "seed": 0, "recipe": HAPT_TEACHER}, hapt_sha)
    paths = builder.run(specs)

    from edgehar.models.teacher import load_teacher

    val_part = load_part(corpus, "validation")

    def wrist_runs(prefix, predict_of, validation_of):
        runs, data = {}, None
        for s in seeds:
            model, card, _ = load_teacher(paths[f"{prefix}_s{s}.pt"])
            data = data or figures.wrist_data(root, corpus, card)
            predict = predict_of(model, card)
            runs[s] = {"validation": validation_of(model, card, predict),
                       "test": figures.wrist_figures(predict, list(card.labels), data)}
            log(prefix, "seed", s, runs[s]["validation"], runs[s]["test"]["pool_mean"])
        return runs

    def corpus_validation(model, card, predict):
        labels = list(card.labels)
        val = relabel_to(val_part, labels).windows(labels, labelled_only=True)
        return figures.rounded({"macro_f1": macro_f1([labels[i] for i in predict(val.x)], val)["macro_f1"]})

    teacher_runs = wrist_runs("wrist_teacher", figures.torch_predict, corpus_validation)
    language_runs = wrist_runs("wrist_language", figures.language_predict, corpus_validation)
    t_seed = choose(teacher_runs)
    tpath = paths[f"wrist_teacher_s{t_seed}.pt"]
    hpath = paths["hapt_teacher.pt"]

    # -- students: distilled from the shipped teachers -------------------------------------------
    specs = {}
    for size in ("small", "tiny"):
        for s in seeds:
            specs[f"wrist_{size}_s{s}.pt"] = ({"kind": "wrist_student", "size": f"wrist-{size}",
                                               "config": configs[f"wrist_{size}"], "steps": WRIST_DISTILL_STEPS, "seed": s,
                                               "distill": WRIST_DISTILL, "teacher": str(tpath),
                                               "teacher_sha256": file_sha256(tpath), **on_corpus}, corpus_sha)
    for size in ("small", "tiny"):
        for s in seeds:
            specs[f"hapt_{size}_s{s}.pt"] = ({"kind": "hapt_student", "size": f"hapt-{size}",
                                              "config": configs[f"hapt_{size}"], "steps": HAPT_DISTILL_STEPS, "seed": s,
                                              "teacher": str(hpath), "teacher_sha256": file_sha256(hpath)}, hapt_sha)
    paths.update(builder.run(specs))
    if args.train_only:
        return 0

    exports = work / "exports"
    exports.mkdir(exist_ok=True)
    windows_files = {}

    def export(name: str, train, test) -> Path:
        """The int8 export of checkpoint `name`, made from the windows shipped beside it (as
        `edgehar export NAME` makes it from them)."""
        from edgehar import zoo

        windows_files[name] = exports / name.replace(".pt", ".windows.npz")
        shipped_windows(windows_files[name], train, test)
        w, held = zoo.load_windows(windows_files[name])
        out = exports / name.removesuffix(".pt")
        shutil.rmtree(out, ignore_errors=True)  # this command's own export folder
        export_student(paths[name], out, windows=w, test_subjects=held, data=zoo.WINDOWS_DATA, progress=False,
                       micro=False)
        return out

    student_runs, artifacts = {}, {}
    wrist_data = None
    for size in ("small", "tiny"):
        runs = {}
        for s in seeds:
            name = f"wrist_{size}_s{s}.pt"
            model, card = load_model(paths[name])
            wrist_data = wrist_data or figures.wrist_data(root, corpus, card)
            labels = list(card.labels)
            artifacts[name] = export(name, *(relabel_to(load_part(corpus, split), labels).windows(labels)
                                             for split in ("train", "test")))
            runs[s] = {"validation": corpus_validation(model, card, figures.torch_predict(model, card)),
                       "test": figures.wrist_figures(figures.int8_predict(artifacts[name]), list(card.labels),
                                                     wrist_data)}
            log(name, runs[s]["validation"], runs[s]["test"]["pool_mean"])
        student_runs[size] = runs
    hapt_runs, val = {}, h_val.labelled()
    for size in ("small", "tiny"):
        runs = {}
        for s in seeds:
            name = f"hapt_{size}_s{s}.pt"
            model, card = load_model(paths[name])
            artifacts[name] = export(name, h_train, h_test)
            labels = list(card.labels)
            runs[s] = {
                "validation": figures.rounded({"macro_f1": macro_f1([labels[i] for i in figures.torch_predict(
                    model, card)(val.x)], val)["macro_f1"]}),
                "test": figures.hapt_figures(figures.int8_predict(artifacts[name]), labels, h_test.labelled())}
            log(name, runs[s])
        hapt_runs[size] = runs

    # -- publish the chosen seed of every recipe ----------------------------------------------------
    measured = {}
    shipped = {
        "wrist-teacher": ("wrist activity", "wrist_teacher", teacher_runs, None),
        "wrist-language": ("wrist activity (zero-shot by text)", "wrist_language", language_runs, None),
        "wrist-small": ("wrist activity", "wrist_small", student_runs["small"], "wrist"),
        "wrist-tiny": ("wrist activity", "wrist_tiny", student_runs["tiny"], "wrist"),
        "hapt-small": ("waist activity", "hapt_small", hapt_runs["small"], "hapt"),
        "hapt-tiny": ("waist activity", "hapt_tiny", hapt_runs["tiny"], "hapt"),
    }
    for zoo_name, (task, prefix, runs, student) in shipped.items():
        seed = choose(runs)
        name = f"{prefix}_s{seed}.pt" if f"{prefix}_s{seed}.pt" in paths else f"{prefix}.pt"
        model, card = load_model(paths[name])
        if zoo_name == "wrist-language":
            model.set_task(len(card.labels), list(card.labels))  # its head = the label texts: the zero-shot path
        artifact = artifacts.get(name)
        cells = student_cells(model, card, artifact, measure=student is not None)
        figs = {**runs[seed], **cells, "seeds": sorted(runs), "shipped_seed": seed,
                "test_seeds": figures.spread([r["test"] for r in runs.values()]),
                "validation_seeds": figures.spread([r["validation"] for r in runs.values()])}
        if student == "wrist":
            figs["live"] = live_figures(artifact, root)
        measured[zoo_name] = {"checkpoint": name, "figures": figs, "runs": runs}
        if not args.no_publish:
            from edgehar import zoo

            zoo.publish(zoo_name, checkpoint=paths[name], artifact=artifact, windows=windows_files.get(name), task=task,
                        recipe_key=builder.manifest.entries[name]["key"],
                        provenance={"commit": run.commit, "command": run.command, "device": "cpu",
                                    "cpu_seconds": builder.cpu.get(name), "seed": seed, "seeds": sorted(runs),
                                    "recipe": builder.manifest.entries[name]["recipe"]},
                        figures=figs)
        log("shipped", zoo_name, "seed", seed)

    result = {"models": measured, "students": {p: {"source": list(STUDENTS[p]), "config": c} for p, c in configs.items()},
              "cpu_seconds": {"checkpoints": builder.cpu,
                                                 "checkpoints_total": round(sum(builder.cpu.get(n, 0) for n in paths), 1)},
              "reused_checkpoints": sorted(builder.reused), "provenance": run.stamp()}
    result["provenance"]["cpu_seconds_with_children"] = round(cpu_seconds() - run.cpu0, 1)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "zoo.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "zoo.md").write_text(markdown(result))
    print(markdown(result))
    return 0


def shipped_windows(path: Path, train, test) -> None:
    """The windows shipped beside a student (`edgehar.zoo.save_windows`): CALIB_WINDOWS of its
    training subjects (calibration) and HELD_OUT_WINDOWS of the test subjects (parity), each
    drawn class- and subject-stratified as `edgehar calib build` draws."""
    import numpy as np
    from edgehar.calib.build import stratified_indices

    from edgehar import zoo
    from edgehar.data.windows import Windows

    calib = train.take(stratified_indices(train.y, train.subject, CALIB_WINDOWS))
    held = test.take(stratified_indices(test.y, test.subject, HELD_OUT_WINDOWS))
    zoo.save_windows(path, Windows.concat([calib, held]), np.unique(held.subject))


def live_figures(artifact: Path, root: Path) -> dict:
    """The demo's live figure on the shipped int8 file (`edgehar demo` prints the same)."""
    from edgehar.demo_wrist import live_figures as measure

    return measure(artifact, root)


def folder_sha256(folder: Path) -> str:
    """Hash of every file of a folder (a corpus: its shards and manifest)."""
    import hashlib

    from edgehar.digest import file_sha256

    h = hashlib.sha256()
    for f in sorted(folder.iterdir()):
        h.update(f.name.encode() + file_sha256(f).encode())
    return h.hexdigest()


def _pm(spread: dict, key: str) -> str:
    v = spread.get(key)
    return "-" if not v else f"{v['mean']:.3f} +- {v['std']:.3f}"


def markdown(result: dict) -> str:
    from edgehar.models.student import DEFAULTS, SIZES
    from edgehar.tune.space import encoder_text, head_variant

    header = ("| model | seeds (shipped) | validation macro-F1 | test: WISDM / DSADS / pool mean (mean +- std over "
              "seeds) | Bangle.js 4 classes | HAPT test | params | MACs | int8 bytes | arena | Cortex-M4 / M55 "
              "instructions (measured) | live agreement, Bangle.js user 2 |")
    lines = [header, "|" + "---|" * 12]
    for name, m in result["models"].items():
        f, sp = m["figures"], m["figures"]["test_seeds"]
        ins = f.get("instructions") or {}
        instr = (f"{ins['cortex-m4']:,} / {ins['cortex-m55']:,}" if ins.get("cortex-m4") else "-")
        live = f.get("live")
        lines.append(
            f"| {name} | {', '.join(map(str, f['seeds']))} ({f['shipped_seed']}) | {f['validation']['macro_f1']:.3f} | "
            + (f"{_pm(sp, 'wisdm_watch')} / {_pm(sp, 'dsads')} / {_pm(sp, 'pool_mean')}" if "pool_mean" in sp else "-")
            + f" | {_pm(sp, 'bangle')} | {_pm(sp, 'hapt')} | {f['params']:,} | {f['macs']:,} | "
            + (f"{f['int8_bytes']:,} | {f['arena']:,}" if f.get("int8_bytes") else "- | -")
            + f" | {instr} | " + (f"{live['agreement']:.4f} ({live['n']} windows)" if live else "-") + " |")
    lines += ["", ("Students' configurations (encoder: kernel; widths; strides; d), each chosen on validation: "
                   "tiny is the tune benchmark's choice under the smaller budget (benchmarks/results/tune.md), "
                   "small the named tiny size, which validation preferred over the named small at about half "
                   "its Cortex-M4 count:"), ""]
    for prefix, s in result["students"].items():
        source, key = s["source"]
        named = [n for n, v in SIZES.items() if {**DEFAULTS, **v} == s["config"]]
        where = (f"the named {key} size" if source == "named" else f"tune benchmark, {key[0]} trial {key[1]}"
                 + (f" (the named {named[0]} size)" if named else ""))
        lines.append(f"- {prefix.replace('_', '-')}: {where}; {encoder_text(s['config'])}; "
                     f"{head_variant(s['config'])}; feed-forward {s['config']['ff']}")
    cpu = result["cpu_seconds"]
    prov = result["provenance"]
    lines += ["", "Shipped: the seed with the best validation macro-F1 (corpus validation subjects; HAPT: its "
                  "validation subjects). Test figures: students through their int8 TFLite file, teachers through "
                  "torch (the corpus HAR-FM's generic stem; the language teacher zero-shot by its labels' "
                  "descriptions). Bangle.js: every recording, 4 classes (a watch no training set came from).", "",
              "CPU seconds per checkpoint: " + ", ".join(f"{k} {v}" for k, v in sorted(cpu["checkpoints"].items()))
              + f"; all the shipped recipes' checkpoints: {cpu['checkpoints_total']} CPU s.",
              "", f"`{prov['command']}` at {prov['commit']}: {prov['cpu_seconds_with_children']} CPU s this run "
                  f"(training processes included), {prov['wall_seconds']} s wall."]
    if result["reused_checkpoints"]:
        lines += ["", "Reused from --work by content hash (trained by an earlier run of this command): "
                      + ", ".join(result["reused_checkpoints"]) + "."]
    return "\n".join(lines) + "\n"

if __name__ == "__main__":
    sys.exit(main())
