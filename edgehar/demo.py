"""`edgehar demo`: the whole flow in one command, on real data when given, else on the
embedded synthetic default.

Steps: (1) teacher; (2) a student distilled from it; (3) int8 export (TFLite, ONNX, C array;
calibration windows drawn from the training subjects); (4) profile of the int8 TFLite and ONNX
files; (5) a simulated device replays a wrist recording through a pseudo-terminal and `live`
predicts from it, logging every prediction and its agreement with the recording's labels;
(6) a summary of where every artifact is and what each step measured.

Which flow runs depends on the data root (`--data FOLDER` or $EDGEHAR_DATA):
- wrist (the root holds wisdm_watch/, dsads/, geotec_watch/ and banglejs_wrist/): the pooled
  wrist corpus (WISDM watch + DSADS arm units + GeoTec watch, 20 Hz, 5-s windows) is built
  into the output folder; the corpus HAR-FM teacher and the wrist student are trained on it
  (`edgehar.train.corpus_fm`, bench_wrist's recipe), scored once on its test subjects, and the
  int8 student is deployed against Bangle.js user 2's whole 20-minute recording, replayed at
  ~100x: a watch no training step saw.
- HAPT (the root holds hapt/ only): HAR-FM pre-trained and fine-tuned on HAPT's waist phone;
  the replay is a few seconds of Bangle.js (wrist) when present, else of HAPT.
- `--data NAME|FOLDER` (a data set or your own recordings) and the embedded synthetic default
  (no data): HAR-FM on those windows; the replay is one of their test subjects.

The demo's model reads the 3 accelerometer channels only: the wrist recordings it streams
(Bangle.js) have no gyroscope, and the live bridge feeds a model exactly the channels its card
names. The benchmark (`benchmarks/run_all.py`) covers acc + gyro models.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from edgehar.cli_types import nonneg_int, positive_float, threads
from edgehar.train.flags import add_device_argument

ACC = ("acc_x", "acc_y", "acc_z")
WINDOW, HOP = 128, 64  # 2.56 s at 50 Hz, the UCI-HAR window; live stride 1.28 s

# Sizes of every step: --quick must stay under 2 minutes, the full demo under 10, on 2 cores.
# "wrist": the wrist flow's sizes (corpus_hop None: half a window, as bench_wrist; the replay
# covers min(the recording, live_seconds x speed) seconds of Bangle.js).
PLANS = {
    "quick": {"wrist": {"corpus_hop": 100, "teacher_steps": 150, "stage_a_steps": 30, "student": "tiny",
                        "distill_steps": 150, "live_seconds": 14.0, "speed": 100.0},
              "teacher": "tiny", "pretrain_steps": 100, "finetune_steps": 160, "student": "tiny",
              "distill_steps": 160, "max_train_windows": 1500, "n_calib": 200, "profile_runs": 20,
              "live_seconds": 4.0, "speed": 10.0, "synthetic": {"subjects": 10, "seconds": 20, "bouts": 2}},
    "full": {"wrist": {"corpus_hop": None, "teacher_steps": 1500, "stage_a_steps": 300, "student": "small",
                       "distill_steps": 1500, "live_seconds": 14.0, "speed": 100.0},
             "teacher": "cpu", "pretrain_steps": 500, "finetune_steps": 200, "student": "small",
             "distill_steps": 600, "max_train_windows": None, "n_calib": 500, "profile_runs": 50,
             "live_seconds": 8.0, "speed": 10.0, "synthetic": {"subjects": 12, "seconds": 25, "bouts": 2}},
}


def register(sub) -> None:
    p = sub.add_parser(
        "demo", help="the whole flow on defaults: teacher -> student -> int8 -> profile -> live",
        description="Build a HAR-FM teacher, distil a student, export it to int8 TFLite/ONNX and a C "
                    "array, profile both files, and run the live view against a simulated device "
                    "replaying a wrist recording; then print where every artifact is, what each step "
                    "measured and how often the live predictions agree with the recording's labels. "
                    "With a data root holding wisdm_watch/, dsads/, geotec_watch/ and banglejs_wrist/ "
                    "(--data or $EDGEHAR_DATA) it deploys the wrist model: the pooled wrist corpus "
                    "(20 Hz, 5-s windows) is built into --out, the corpus HAR-FM teacher and the "
                    "wrist student are trained on it and scored on its test subjects, and the int8 "
                    "student is fed Bangle.js user 2's whole 20-minute recording (a watch it never "
                    "saw) at ~100x. A root with hapt/ only trains on HAPT's waist phone instead; "
                    "without data the embedded synthetic set is used. The model reads the "
                    "accelerometer only (the wrist recordings have no gyroscope).")
    p.add_argument("--quick", action="store_true", help="tiny models and few steps (under 2 minutes)")
    p.add_argument("--data", help="a data root (default: $EDGEHAR_DATA; without either: the embedded "
                                  "synthetic data): wisdm_watch/, dsads/, geotec_watch/ and banglejs_wrist/ "
                                  "for the wrist flow, else hapt/ (and banglejs_wrist/); or a data set name "
                                  "(wisdm_watch, dsads:right_arm, ...) or a folder of your own recordings "
                                  "with an edgehar.json manifest (`edgehar data check` reads it)")
    p.add_argument("--synthetic", action="store_true", help="use the embedded synthetic data even when "
                                                            "$EDGEHAR_DATA is set")
    p.add_argument("--out", default="edgehar-demo", help="output folder (default ./edgehar-demo)")
    p.add_argument("--threads", type=threads, help="torch CPU threads (default: half the cores, at most 4)")
    add_device_argument(p)
    p.add_argument("--seed", type=nonneg_int, default=0, help="random seed (default 0)")
    p.add_argument("--live-seconds", type=positive_float,
                   help="seconds of live view (default: the plan's; the wrist flow stops earlier when its "
                        "replay of the whole recording ends)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run_demo)


# -- data ---------------------------------------------------------------------------------------
@dataclass
class DemoData:
    source: str  # "wrist", "hapt", "synthetic", or the --data NAME|FOLDER
    description: str
    train: object  # Windows of the training subjects, less validation
    validation: object  # Windows of subjects drawn from the training subjects: every choice
    test: object  # Windows of the test subjects: scored once, for the report
    test_subjects: list[int]
    replay: object  # Recording (acc only) for the simulated device
    replay_start: int  # first sample replayed
    replay_note: str
    extra: dict = field(default_factory=dict)  # wrist flow: "corpus" folder and its "manifest"


def resolve_data_root(args) -> Path | str | None:
    """Where the demo's data comes from: None (the embedded synthetic data), a data root (the
    EDGEHAR_DATA layout: the wrist sets and banglejs_wrist/, or hapt/), or a data set name / a
    folder of your own recordings with an edgehar.json manifest (given as --data)."""
    from edgehar.data.registry import REGISTRY, check_data
    from edgehar.demo_wrist import WRIST_SETS, wrist_root_missing
    from edgehar.errors import UserError

    if args.synthetic:
        return None
    root = args.data or os.environ.get("EDGEHAR_DATA")
    if not root:
        return None
    if (Path(root) / "hapt").is_dir() or not wrist_root_missing(Path(root)):
        return Path(root)
    if args.data and (str(args.data).split(":")[0] in REGISTRY or (Path(args.data) / "edgehar.json").is_file()):
        return check_data(args.data)
    missing = wrist_root_missing(Path(root))
    if len(missing) <= len(WRIST_SETS):  # a data root with part of the wrist flow's folders
        raise UserError(root, f"has no hapt/ and no {', '.join(m + '/' for m in missing)} (the wrist flow needs "
                              f"{', '.join(d + '/' for d in WRIST_SETS)} and banglejs_wrist/; the HAPT flow hapt/)")
    where = "--data" if args.data else "EDGEHAR_DATA"
    raise UserError(root, f"no hapt/ folder and no edgehar.json here ({where} takes a data root holding "
                          f"{', '.join(d + '/' for d in WRIST_SETS)} and banglejs_wrist/ or hapt/, a data set "
                          "name, or a folder of your own recordings with an edgehar.json manifest; leave it "
                          "unset for the embedded synthetic data)")


def load_named_data(source: str, plan: dict, seed: int) -> DemoData:
    """A named data set or your own folder: its accelerometer at 50 Hz in g; test subjects are
    its official ones or a seeded 20 %; the live step replays a test subject's recording."""
    import numpy as np

    from edgehar.data.datasets import activity_windows, load_dataset, prepare, test_subjects
    from edgehar.data.splits import validation_subjects
    from edgehar.errors import UserError
    from edgehar.recipes import split_train_validation

    recs = load_dataset(source)
    if missing := [c for c in ACC if c not in recs[0].channels]:
        raise UserError(source, f"has no {', '.join(missing)} channel (the demo's model reads {', '.join(ACC)})")
    subjects = sorted({int(r.subject) for r in recs})
    if len(subjects) < 3:
        raise UserError(source, f"needs recordings of at least 3 subjects (train, validation, test), has {len(subjects)}")
    tests = list(test_subjects(source)) or validation_subjects(subjects, 0.2, seed)
    w = activity_windows(source, rate=50.0, window=WINDOW, hop=HOP, channels=ACC, units=("g",) * 3)
    train, val, test = split_train_validation(w, tests, seed)
    if not len(train.labelled()) or not len(val.labelled()) or not len(test.labelled()):
        raise UserError(source, "needs labelled windows in the training, validation and test subjects")
    if plan["max_train_windows"] and len(train) > plan["max_train_windows"]:
        train = train.take(np.sort(np.random.default_rng(seed).choice(len(train), plan["max_train_windows"], replace=False)))
    held = next(r for r in recs if int(r.subject) in tests)
    replay = prepare([held], 50.0, ACC, ("g",) * 3)[0]
    return DemoData(source, f"{source}: accelerometer at 50 Hz in g, test subjects {tests}", train, val, test,
                    tests, replay, 0, f"{held.source} (test subject {held.subject})")


def load_wrist_data(root: Path, plan: dict, out: Path) -> DemoData:
    """The pooled wrist corpus (built into `out/corpus`) and Bangle.js user 2 to replay; the
    windows come with the teacher's classes (train/validation/test are filled in then)."""
    from edgehar.demo_wrist import RATE, WINDOW as CORPUS_WINDOW, WRIST_SETS, build_or_reuse_corpus, load_replay

    corpus, manifest = build_or_reuse_corpus(root, out, plan["wrist"]["corpus_hop"])
    rec, note = load_replay(root)
    tests = {d: manifest["splits"][d]["test"] for d in WRIST_SETS}
    return DemoData("wrist", f"pooled wrist corpus {corpus} ({', '.join(WRIST_SETS)} from {root}; wrist and arm "
                    f"placements, accelerometer in g, {RATE:g} Hz, {CORPUS_WINDOW}-sample windows, hop "
                    f"{manifest['hop']}), each data set's test subjects held out", None, None, None, tests,
                    rec, 0, note, extra={"corpus": corpus, "manifest": manifest, "replay_whole": True})


def load_demo_data(root: Path | str | None, plan: dict, seed: int, out: Path) -> DemoData:
    import numpy as np

    from edgehar.demo_wrist import wrist_root_missing
    from edgehar.recipes import split_train_validation

    if isinstance(root, Path) and not wrist_root_missing(root):
        return load_wrist_data(root, plan, out)
    if isinstance(root, str):
        return load_named_data(root, plan, seed)
    if root is None:
        from edgehar.data import synthetic

        cfg = plan["synthetic"]
        recs = synthetic.synthetic_dataset(cfg["subjects"], "wrist", cfg["seconds"], cfg["bouts"], seed)
        w = synthetic.synthetic_windows(recs, ACC, WINDOW, HOP)
        train, val, test = split_train_validation(w, synthetic.TEST_SUBJECTS, seed)
        held = recs[synthetic.TEST_SUBJECTS[0] - 1]
        path = synthetic.write_banglejs(held, out / "replay")
        return DemoData("synthetic", f"embedded synthetic wrist recordings (edgehar.data.synthetic, seed {seed}): "
                        f"{cfg['subjects']} subjects x 6 activities, acc + gyro at 50 Hz",
                        train, val, test, list(synthetic.TEST_SUBJECTS), held.select(list(ACC)), 0,
                        f"{path} (held-out synthetic subject {held.subject}, Bangle.js layout)")
    from edgehar.data import hapt
    from edgehar.data.datasets import activity_windows

    w = activity_windows("hapt", root / "hapt", rate=50.0, window=WINDOW, hop=HOP, channels=ACC)
    train, val, test = split_train_validation(w, hapt.TEST_SUBJECTS, seed)
    if plan["max_train_windows"] and len(train) > plan["max_train_windows"]:
        keep = np.random.default_rng(seed).choice(len(train), plan["max_train_windows"], replace=False)
        train = train.take(np.sort(keep))
    bangle = root / "banglejs_wrist"
    if bangle.is_dir():
        from edgehar.data.banglejs import load_banglejs

        rec = load_banglejs(bangle)[0]
        start = int(870 * rec.rate)  # 32 s before its sitting -> walking change at 902 s
        note = f"{rec.source} from {start / rec.rate:g} s (real Bangle.js, left wrist: sitting, then walking)"
    else:
        rec = hapt.load_hapt(root / "hapt")[0].select(list(ACC))
        start, note = 0, f"{rec.source} (real HAPT, waist: no banglejs_wrist/ folder found)"
    missing = wrist_root_missing(root)
    why = f" (not the wrist flow: no {', '.join(m + '/' for m in missing)} here)" if len(missing) < 4 else ""
    return DemoData("hapt", f"real HAPT recordings ({root / 'hapt'}), accelerometer channels, "
                    f"official test subjects held out{why}", train, val, test, list(hapt.TEST_SUBJECTS), rec,
                    start, note)


# -- steps --------------------------------------------------------------------------------------
def step_teacher(data: DemoData, plan: dict, out: Path, seed: int) -> dict:
    from edgehar.models.inference import evaluate
    from edgehar.models.teacher import save_teacher
    from edgehar.recipes import TeacherRecipe, scores, train_teacher

    recipe = TeacherRecipe(family="harfm", config=plan["teacher"], pretrain_steps=plan["pretrain_steps"],
                           finetune_steps=plan["finetune_steps"], seed=seed)
    teacher, card, pre = train_teacher(recipe, data.train, data.validation, data={
        "dataset": data.source, "test_subjects": data.test_subjects,
        "validation_subjects": sorted(set(data.validation.subject.tolist()))})
    metrics = evaluate(teacher, data.test, card)  # test subjects: scored once, for the report
    card.provenance["metrics"]["test"] = scores(metrics)
    path = out / "teacher.pt"
    save_teacher(path, teacher, card, extra={"loss_curve": pre.loss_curve, "confusion": metrics["confusion"]})
    return {"path": path, "model": teacher, "card": card, "config": plan["teacher"],
            "params": sum(p.numel() for p in teacher.parameters()),
            "macro_f1": metrics["macro_f1"], "accuracy": metrics["accuracy"], "test_windows": metrics["n"],
            "validation_macro_f1": card.provenance["metrics"]["validation"]["macro_f1"]}


def step_student(data: DemoData, teacher: dict, plan: dict, out: Path, seed: int) -> dict:
    from edgehar.checkpoint import save_checkpoint
    from edgehar.recipes import distill_student
    from edgehar.train.distill import DistillConfig, student_metrics

    cfg = DistillConfig(steps=plan["distill_steps"], seed=seed)
    meta = {"dataset": data.source, "test_subjects": data.test_subjects}
    student, card, history = distill_student(teacher["model"], teacher["card"], data.train, data.validation,
                                             plan["student"], cfg, "teacher.pt", meta)
    m = student_metrics(student, card, data.test)
    card.provenance["metrics"].update({k: v for k, v in m.items() if k != "confusion"})
    path = out / "student.pt"
    save_checkpoint(path, student, card, extra={"history": history, "confusion": m["confusion"]})
    return {"path": path, "size": plan["student"], "params": m["params"], "macs": m["macs"],
            "macro_f1": m["test"]["macro_f1"], "accuracy": m["test"]["accuracy"]}


def step_export(data: DemoData, student: dict, plan: dict, out: Path, seed: int) -> dict:
    from edgehar.data.windows import Windows
    from edgehar.export.pipeline import export_student

    if data.source == "wrist":  # calibration: corpus train windows; parity: its test subjects
        from edgehar.demo_wrist import export_windows

        windows, held = export_windows(data.extra["corpus"], student["labels"])
        name = "wrist corpus"
    else:
        windows, held = Windows.concat([data.train, data.validation, data.test]), data.test_subjects
        name = data.source
    res = export_student(student["path"], out / "export", int8=True, windows=windows, data=name,
                         test_subjects=held, n_calib=plan["n_calib"], seed=seed, progress=False)
    fig = res["parity"]["figures"]
    folder = Path(res["out"])
    return {"folder": folder, "files": res["files"], "bytes": fig.get("bytes", {}),
            "macro_f1": {k[len("macro_f1_"):]: v for k, v in fig.items() if k.startswith("macro_f1_")},
            "parity_ok": res["parity"]["ok"], "parity_failed": res["parity"].get("failed", []),
            "parity_bounds": len(res["parity"].get("bounds", {}))}


def step_profile(export: dict, plan: dict, out: Path) -> dict:
    from edgehar.atomic import write_json
    from edgehar.profile.report import profile_model

    result = {}
    for kind, name in (("int8_tflite", "model_int8.tflite"), ("int8_onnx", "model_int8.onnx")):
        report = profile_model(export["folder"] / name, runs=plan["profile_runs"])
        path = out / f"profile_{kind}.json"
        write_json(path, report)
        m4 = next((t for t in report["targets"] if t["name"].startswith("cortex-m4f")), None)
        result[kind] = {"path": path, "macs": report["macs"], "params": report["params"],
                        "file_bytes": report["file_bytes"], "arena_bytes": report.get("arena_bytes"),
                        "latency_ms": (report["latency_ms"] or {}).get("median"),
                        "cortex_m4f_ms": m4["estimated_ms"] if m4 else None}
    return result


def step_live(data: DemoData, export: dict, plan: dict, out: Path, seconds: float, show: bool) -> dict:
    """Replay the wrist recording through a pty at `speed`x and run `live` on it for `seconds`
    (the live view on stderr when `show`). The wrist flow replays min(the whole recording,
    `seconds` x speed) and stops once the device has sent it all and every line is read."""
    from edgehar.bridge.live import LiveSession, PredictionLog, TerminalView
    from edgehar.bridge.virtual_device import VirtualDevice
    from edgehar.scoring import class_matches

    rec = data.replay
    model = export["folder"] / "model_int8.tflite"
    whole = data.extra.get("replay_whole", False)
    # a timed replay gets 2 s more than the live view, so the device never runs dry before it ends
    n = int(min(len(rec.data) - data.replay_start, (seconds + (0 if whole else 2)) * plan["speed"] * rec.rate))
    samples = rec.data[data.replay_start:data.replay_start + n]
    dev = VirtualDevice(samples, rec.rate, rec.channels, rec.units, "text", plan["speed"])
    session = LiveSession(dev.path, str(model), smooth="ema:0.5", keep=True)
    log_path = out / "live.csv"
    log = PredictionLog(log_path, session.card.labels)
    view = TerminalView(session, sys.stderr) if show else None

    def on_prediction(p):
        log.write(p)
        if view:
            view.prediction(p)

    read = [-1]

    def on_idle():
        if view:
            view.idle()
        if whole and dev.finished:  # the device has sent all (and lingered): stop once nothing more comes
            now = session.reader.stats()["readings"]
            if now == read[0] and not len(session.ring):
                session.stop()
            read[0] = now

    dev.start()
    try:
        # the wrist flow's replay starts when the port opens: allow a few seconds on a loaded machine
        session.run(seconds + (10 if whole else 0), on_prediction, on_idle)
    finally:
        log.close()
        dev.stop()
    counts = session.counts()
    preds = session.predictions
    labels = session.card.labels
    seen = {}
    for p in preds:
        seen[labels[p.smoothed]] = seen.get(labels[p.smoothed], 0) + 1
    # agreement with the recording's own labels at each window's centre, on the classes the model
    # knows; `start` counts model-rate samples from the replay's first one (text mode: one index line)
    card = session.card
    per_class: dict[str, list[int]] = {}
    if rec.labels is not None:
        mapping = class_matches(rec.label_names, labels, rec.canonical_names)
        for p in preds:
            mid = data.replay_start + int(round((p.start + card.window / 2) * rec.rate / card.rate))
            truth = int(rec.labels[min(mid, len(rec.labels) - 1)])
            if truth in mapping:
                per_class.setdefault(labels[mapping[truth]], []).append(int(mapping[truth] == p.label))
    scored = sum(len(v) for v in per_class.values())
    agree = sum(sum(v) for v in per_class.values())
    # every window the replayed samples hold at the model's rate (the causal resampler may hold back
    # its last few output samples, so the last window can be missing)
    model_samples = int(n * card.rate / rec.rate)
    expected = max(0, (model_samples - card.window) // card.hop + 1)
    return {"log": log_path, "port": "pty (virtual device)", "protocol": "text", "speed": plan["speed"],
            "seconds": seconds, "replayed_seconds": round(n / rec.rate, 1), "replayed_samples": n,
            "samples_read": counts["readings"], "windows": counts["windows"], "expected_windows": expected,
            "predictions": len(preds), "delay_ms": counts["delay_ms"], "garbled": counts.get("garbled", 0),
            "overruns": counts.get("overruns", 0), "classes_seen": seen,
            "agreement": (agree / scored) if scored else None, "scored_windows": scored,
            "per_class": {c: {"agreement": sum(v) / len(v), "windows": len(v)} for c, v in sorted(per_class.items())},
            "replay": data.replay_note, "model": str(model)}


# -- the command --------------------------------------------------------------------------------
# every name the demo writes into --out (a previous demo's folder holds nothing else)
DEMO_FILES = ("teacher.pt", "student.pt", "export", "corpus", "replay", "profile_*.json", "live.csv", "demo.json")


def previous_demo(folder: Path) -> list[str] | None:
    """A demo folder written before output markers: its demo.json, and only the demo's names."""
    return list(DEMO_FILES) if (folder / "demo.json").is_file() else None


def run_demo(args: argparse.Namespace) -> int:
    from edgehar.errors import UserError

    from edgehar.demo_wrist import wrist_root_missing

    plan = dict(PLANS["quick" if args.quick else "full"])
    if args.live_seconds is not None and args.live_seconds <= 0:
        raise UserError("--live-seconds", "must be > 0")
    if args.threads is not None and args.threads < 1:
        raise UserError("--threads", "must be at least 1")
    root = resolve_data_root(args)
    if isinstance(root, Path) and not wrist_root_missing(root):
        plan.update(live_seconds=plan["wrist"]["live_seconds"], speed=plan["wrist"]["speed"])
    seconds = args.live_seconds if args.live_seconds is not None else plan["live_seconds"]
    out = Path(args.out)
    from edgehar.outputs import MARKER, claim_folder, mark_folder

    # new, empty, or a previous demo's folder: the demo never writes over anyone else's files
    claim_folder(out, "demo", legacy=previous_demo,
                  inputs=[root if root is not None and os.path.exists(str(root)) else None])
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        mark_folder(out, "demo", DEMO_FILES)
    except OSError as e:
        raise UserError(out, f"cannot create the output folder ({e.strerror or e})") from None
    try:
        return _run_demo(args, plan, seconds, root, out)
    finally:
        if created and out.is_dir() and [e.name for e in out.iterdir()] == [MARKER]:
            (out / MARKER).unlink()
            out.rmdir()  # a run that failed before writing anything leaves no empty folder


def _run_demo(args, plan: dict, seconds: float, root, out: Path) -> int:
    from edgehar.errors import UserError

    if not os.access(out, os.W_OK):
        raise UserError(out, "folder is not writable")

    import torch

    # small models gain little from intra-op threads; half the cores keeps a 2-core machine responsive
    torch.set_num_threads(args.threads or max(1, min(4, (os.cpu_count() or 2) // 2)))
    from edgehar.train.loop import use_device
    use_device(args.device)  # the teacher, student (and wrist corpus) training steps run there
    say = (lambda msg: None) if args.json else (lambda msg: print(msg, file=sys.stderr, flush=True))
    times: dict[str, float] = {}
    t_all = time.perf_counter()

    def timed(name, fn, *a):
        t0 = time.perf_counter()
        try:
            return fn(*a)
        except UserError:
            raise
        except Exception as e:  # a failing step is one line naming it, not a traceback
            first = (str(e).strip().splitlines() or [""])[0][:200]
            raise UserError(f"demo {name} step", f"{type(e).__name__}: {first} (finished steps are in "
                                                 f"{out})") from e
        finally:
            times[name] = round(time.perf_counter() - t0, 1)

    say(f"edgehar demo ({'quick' if args.quick else 'full'}) -> {out}")
    data = timed("data", load_demo_data, root, plan, args.seed, out)
    if data.source == "wrist":
        steps = _wrist_steps(data, plan, args.seed, out, say, timed)
    else:
        steps = _steps(data, plan, args.seed, out, say, timed)
    teacher, student = steps
    say("[3/5] export: fp32 + int8 TFLite, ONNX, C array (calibration: training-subject windows)")
    export = timed("export", step_export, data, student, plan, out, args.seed)
    say("[4/5] profile: int8 TFLite and ONNX (MACs, arena, host latency, MCU estimates)")
    profile = timed("profile", step_profile, export, plan, out)
    say(f"[5/5] live: simulated device replaying {data.replay_note} at {plan['speed']:g}x, "
        f"up to {seconds:g} s")
    live = timed("live", step_live, data, export, plan, out, seconds, not args.json)
    times["total"] = round(time.perf_counter() - t_all, 1)

    summary = make_summary(args, out, data, teacher, student, export, profile, live, times)
    from edgehar.atomic import write_json

    write_json(out / "demo.json", summary)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(format_summary(summary))
    return 0


def _steps(data: DemoData, plan: dict, seed: int, out: Path, say, timed) -> tuple[dict, dict]:
    """Teacher and student of the HAPT, named-data and synthetic flows."""
    say(f"[0/5] data: {data.description}; model input: accelerometer only (3 channels, 50 Hz, "
        f"{WINDOW}-sample windows), because the wrist recordings have no gyroscope")
    say(f"[1/5] teacher: HAR-FM ({plan['teacher']} config), pre-train {plan['pretrain_steps']} steps + "
        f"fine-tune {plan['finetune_steps']} steps on {len(data.train)} training windows")
    teacher = timed("teacher", step_teacher, data, plan, out, seed)
    say(f"[2/5] student: distil '{plan['student']}' for {plan['distill_steps']} steps")
    student = timed("student", step_student, data, teacher, plan, out, seed)
    return teacher, student


def _wrist_steps(data: DemoData, plan: dict, seed: int, out: Path, say, timed) -> tuple[dict, dict]:
    """Teacher and student of the wrist flow (edgehar.train.corpus_fm's recipe)."""
    from edgehar.demo_wrist import step_wrist_student, step_wrist_teacher

    w, corpus = plan["wrist"], data.extra["corpus"]
    say(f"[0/5] data: {data.description}; model input: accelerometer only (3 channels), because the "
        f"Bangle.js watch has no gyroscope")
    say(f"[1/5] teacher: corpus HAR-FM, {w['teacher_steps']} steps ({w['stage_a_steps']} masked reconstruction "
        f"on every window + multi-task on the labelled ones) over the corpus train split")
    teacher = timed("teacher", step_wrist_teacher, corpus, w, out, seed)
    say(f"[2/5] student: distil '{w['student']}' for {w['distill_steps']} steps over the corpus train windows")
    student = timed("student", step_wrist_student, corpus, teacher, w, out, seed)
    return teacher, student


def make_summary(args, out, data, teacher, student, export, profile, live, times) -> dict:
    folder = export["folder"]
    wrist = data.source == "wrist"
    summary = {
        "mode": "quick" if args.quick else "full", "out": str(out), "seconds": times,
        "data": {"source": data.source, "description": data.description, "channels": list(ACC),
                 "why_acc_only": "the wrist recordings streamed in the live step have no gyroscope",
                 "train_windows": teacher["train_windows"] if wrist else len(data.train),
                 "test_windows": teacher["test_windows"] if wrist else int((data.test.y >= 0).sum()),
                 "test_subjects": data.test_subjects},
        "teacher": {"path": str(teacher["path"]), "family": "corpus_fm" if wrist else "harfm",
                    "config": teacher["config"], "params": teacher["params"], "macro_f1": teacher["macro_f1"],
                    "accuracy": teacher["accuracy"]},
        "student": {"path": str(student["path"]), "size": student["size"], "params": student["params"],
                    "macs": student["macs"], "macro_f1": student["macro_f1"], "accuracy": student["accuracy"]},
        "export": {"folder": str(folder), "files": export["files"], "bytes": export["bytes"],
                   "macro_f1": export["macro_f1"], "parity_ok": export["parity_ok"],
                   "parity_failed": export["parity_failed"], "parity_bounds": export["parity_bounds"],
                   "int8_tflite": str(folder / "model_int8.tflite"), "int8_onnx": str(folder / "model_int8.onnx"),
                   "c_header": str(folder / "model_int8.h")},
        "profile": {k: {**v, "path": str(v["path"])} for k, v in profile.items()},
        "live": {**live, "log": str(live["log"])},
    }
    if wrist:  # every recipe choice is made on the validation split; test is scored once, here
        summary["data"].update(corpus=str(data.extra["corpus"]), labelled_train_windows=teacher["labelled_windows"],
                               classes=teacher["labels"])
        summary["teacher"].update(validation=teacher["validation"], test_per_dataset=teacher["per_dataset"])
        summary["student"].update(distill_steps=student["distill_steps"], test_per_dataset=student["per_dataset"])
    return summary


def format_summary(s: dict) -> str:
    def f1(v):
        return "-" if v is None else f"{v:.3f}"

    def ms(v):
        return "-" if v is None else f"{v:.3f} ms"

    def kib(n):
        return "-" if n is None else f"{n / 1024:.1f} KiB"

    t, st, ex, pr, lv = s["teacher"], s["student"], s["export"], s["profile"], s["live"]
    tfl, onx = pr["int8_tflite"], pr["int8_onnx"]
    i8 = ex["macro_f1"].get("int8_tflite")
    rows = [
        ("teacher", t["path"], (f"HAR-FM ({t['config']})" if t["family"] == "harfm" else t["config"])
         + f", {t['params']:,} params, test macro-F1 {f1(t['macro_f1'])}"),
        ("student", st["path"], f"{st['size']}, {st['params']:,} params, {st['macs']:,} MACs/window, "
                                f"test macro-F1 {f1(st['macro_f1'])}"),
        ("int8 TFLite", ex["int8_tflite"], f"{ex['bytes'].get('int8_tflite', tfl['file_bytes']):,} bytes, "
                                           f"held-out macro-F1 {f1(i8)}"),
        ("int8 ONNX", ex["int8_onnx"], f"{onx['file_bytes']:,} bytes, held-out macro-F1 "
                                       f"{f1(ex['macro_f1'].get('int8_onnx'))}"),
        ("C header", ex["c_header"], "model_int8.h/.cc for TFLite-Micro; parity bounds "
                                     f"{ex['parity_bounds'] - len(ex['parity_failed'])}/{ex['parity_bounds']} ok"
                                     + (f" (missed: {', '.join(ex['parity_failed'])})" if ex["parity_failed"] else "")),
        ("profile", tfl["path"], f"{tfl['macs']:,} MACs, arena {kib(tfl['arena_bytes'])}, host "
                                 f"{ms(tfl['latency_ms'])}, Cortex-M4F ~{tfl['cortex_m4f_ms']:.2f} ms (estimate)"
         if tfl["cortex_m4f_ms"] is not None else f"{tfl['macs']:,} MACs"),
        ("profile", onx["path"], f"host {ms(onx['latency_ms'])} (onnxruntime, 1 thread)"),
        ("live log", lv["log"], f"{lv['windows']} windows in {lv['seconds']:g} s at {lv['speed']:g}x, delay "
                                f"median {lv['delay_ms']['median']} ms / p99 {lv['delay_ms']['p99']} ms, "
                                f"agreement with labels {f1(lv['agreement'])} ({lv['scored_windows']} windows)"),
    ]
    width = max(len(r[1]) for r in rows)
    d = s["data"]
    tests = d["test_subjects"]
    tests = ("; ".join(f"{k} {', '.join(map(str, v))}" for k, v in tests.items()) if isinstance(tests, dict)
             else ", ".join(map(str, tests)))
    lines = [f"edgehar demo ({s['mode']}) finished in {s['seconds']['total']:g} s",
             f"data: {d['description']}",
             f"model input: {', '.join(d['channels'])} only ({d['why_acc_only']}); "
             f"{d['train_windows']} training windows, {d['test_windows']} labelled test windows "
             f"(test subjects: {tests})", ""]
    lines += [f"  {name:<12} {path:<{width}}  {what}" for name, path, what in rows]
    lines += ["", "seconds per step: " + ", ".join(f"{k} {v:g}" for k, v in s["seconds"].items()),
              f"summary: {Path(s['out']) / 'demo.json'}",
              f"live predictions seen: {', '.join(f'{k} x{v}' for k, v in lv['classes_seen'].items()) or 'none'}",
              f"replayed: {lv['replay']}"]
    if d["source"] == "wrist":
        val = t.get("validation", {}).get("generic") or {}
        lines.insert(3, f"teacher validation (corpus validation subjects, generic stem): macro-F1 "
                        f"{f1(val.get('macro_f1'))}, accuracy {f1(val.get('accuracy'))}")
        lines.append(f"live: {lv['windows']} of {lv['expected_windows']} windows of the "
                     f"{lv['replayed_seconds']:g} s replay predicted ({lv['garbled']} garbled lines); agreement "
                     f"{f1(lv['agreement'])} over {lv['scored_windows']} windows whose centre label the model "
                     "knows: " + ", ".join(f"{c} {f1(v['agreement'])} ({v['windows']})"
                                            for c, v in lv["per_class"].items()))
    if d["source"] == "hapt":
        lines.append("note: the model learnt from HAPT's waist phone and the replay is a wrist watch, so the "
                     "live agreement measures waist -> wrist transfer (gravity points elsewhere on a wrist)")
    return "\n".join(lines)
