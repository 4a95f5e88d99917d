"""The demo as a chain of named steps over one config (`DemoConfig`).

    deploy: export -> profile -> live                         (the shipped student, no training)
    train:  data -> teacher -> student -> export -> profile -> live

Each step is `step(cfg, done) -> result`, where `done` holds the results of the steps before it
by name; `run_flow` runs a flow's steps in order, timing each. The report (`edgehar.demo.report`)
is made from the results afterwards.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

from edgehar.atomic import staged_folder, write_json
from edgehar.bridge.live import PredictionLog, TerminalView
from edgehar.card_io import CARD_FILE, read_card
from edgehar.checkpoint import save_checkpoint
from edgehar.data.windows import Windows
from edgehar.demo.config import ACC, DEPLOY_PROFILE_RUNS, DemoConfig
from edgehar.demo.data import load_demo_data
from edgehar.demo.live import measure
from edgehar.demo.live import scores as live_scores  # edgehar.recipes has a `scores` too
from edgehar.demo.wrist import bangle_replay, export_windows, step_wrist_student, step_wrist_teacher
from edgehar.digest import file_sha256
from edgehar.errors import UserError
from edgehar.export.c_array import write_c_array
from edgehar.export.pipeline import export_student
from edgehar.profile.report import profile_model

MODEL_FILES = {"int8_tflite": "model_int8.tflite", "int8_onnx": "model_int8.onnx"}


def say(cfg: DemoConfig, text: str) -> None:
    if cfg.show:
        print(text, file=sys.stderr, flush=True)


# -- train: data, teacher, student ----------------------------------------------------------------
def step_data(cfg: DemoConfig, done: dict):
    """The training flow's windows and the recording its live step streams."""
    data = load_demo_data(cfg)
    say(cfg, f"  {data.description}; model input: accelerometer only ({', '.join(ACC)}), because the "
             "wrist recordings have no gyroscope")
    return data


def step_teacher(cfg: DemoConfig, done: dict) -> dict:
    """HAR-FM pre-trained and fine-tuned on the training windows (the wrist flow: the corpus
    HAR-FM on the corpus); its test subjects are scored once, for the report."""
    data, plan, out = done["data"], cfg.plan, cfg.out
    if data.source == "wrist":
        w = plan["wrist"]
        say(cfg, f"  corpus HAR-FM, {w['teacher_steps']} steps ({w['stage_a_steps']} masked reconstruction on "
                 "every window + multi-task on the labelled ones) over the corpus train split")
        return step_wrist_teacher(data.extra["corpus"], w, out, cfg.seed)
    from edgehar.models.inference import evaluate
    from edgehar.models.teacher import save_teacher
    from edgehar.recipes import TeacherRecipe, scores, train_teacher

    say(cfg, f"  HAR-FM ({plan['teacher']} config), pre-train {plan['pretrain_steps']} steps + fine-tune "
             f"{plan['finetune_steps']} steps on {len(data.train)} training windows")
    recipe = TeacherRecipe(family="harfm", config=plan["teacher"], pretrain_steps=plan["pretrain_steps"],
                           finetune_steps=plan["finetune_steps"], seed=cfg.seed)
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


def step_student(cfg: DemoConfig, done: dict) -> dict:
    """The student distilled from the teacher, scored once on the test subjects."""
    data, teacher, plan, out = done["data"], done["teacher"], cfg.plan, cfg.out
    if data.source == "wrist":
        w = plan["wrist"]
        say(cfg, f"  distil '{w['student']}' for {w['distill_steps']} steps over the corpus train windows")
        return step_wrist_student(data.extra["corpus"], teacher, w, out, cfg.seed)
    from edgehar.recipes import distill_student
    from edgehar.train.distill import DistillConfig, student_metrics

    say(cfg, f"  distil '{plan['student']}' for {plan['distill_steps']} steps")
    dcfg = DistillConfig(steps=plan["distill_steps"], seed=cfg.seed)
    meta = {"dataset": data.source, "test_subjects": data.test_subjects}
    student, card, history = distill_student(teacher["model"], teacher["card"], data.train, data.validation,
                                             plan["student"], dcfg, "teacher.pt", meta)
    m = student_metrics(student, card, data.test)
    card.provenance["metrics"].update({k: v for k, v in m.items() if k != "confusion"})
    path = out / "student.pt"
    save_checkpoint(path, student, card, extra={"history": history, "confusion": m["confusion"]})
    return {"path": path, "size": plan["student"], "params": m["params"], "macs": m["macs"],
            "macro_f1": m["test"]["macro_f1"], "accuracy": m["test"]["accuracy"]}


# -- export -------------------------------------------------------------------------------------
def step_export(cfg: DemoConfig, done: dict) -> dict:
    """The student to int8 TFLite, ONNX and a C array (calibration: training-subject windows;
    parity: the test subjects)."""
    data, student = done["data"], done["student"]
    say(cfg, "  fp32 + int8 TFLite, ONNX, C array (calibration: training-subject windows)")
    if data.source == "wrist":  # calibration: corpus train windows; parity: its test subjects
        windows, held = export_windows(data.extra["corpus"], student["labels"])
        name = "wrist corpus"
    else:
        windows, held = Windows.concat([data.train, data.validation, data.test]), data.test_subjects
        name = data.source
    res = export_student(student["path"], cfg.out / "export", int8=True, windows=windows, data=name,
                         test_subjects=held, n_calib=cfg.plan["n_calib"], seed=cfg.seed, progress=False)
    fig = res["parity"]["figures"]
    return {"folder": Path(res["out"]), "files": res["files"], "bytes": fig.get("bytes", {}),
            "macro_f1": {k[len("macro_f1_"):]: v for k, v in fig.items() if k.startswith("macro_f1_")},
            "parity_ok": res["parity"]["ok"], "parity_failed": res["parity"].get("failed", []),
            "parity_bounds": len(res["parity"].get("bounds", {}))}


def step_ship(cfg: DemoConfig, done: dict) -> dict:
    """The deploy flow's export: the shipped int8 artifact is the model. Its model_int8.tflite
    (byte for byte: the sha256 the zoo index holds) and card go into the demo folder with what
    export adds for firmware, the C array (model_int8.h/.cc) made from those bytes."""
    source, entry = cfg.artifact, cfg.entry
    tflite = source / MODEL_FILES["int8_tflite"]
    card = read_card(tflite)  # the card embedded in the bytes that run
    say(cfg, f"  {cfg.model}: {tflite} ({tflite.stat().st_size:,} bytes) + the C array for TFLite-Micro")
    folder = cfg.out / "export"
    with staged_folder(folder) as tmp:
        shutil.copyfile(tflite, tmp / MODEL_FILES["int8_tflite"])
        if (source / CARD_FILE).is_file():
            shutil.copyfile(source / CARD_FILE, tmp / CARD_FILE)
        else:
            (tmp / CARD_FILE).write_text(card.to_json() + "\n", encoding="utf-8")
        data = (tmp / MODEL_FILES["int8_tflite"]).read_bytes()
        write_c_array(data, card, tmp / "model_int8.h", tmp / "model_int8.cc")
    sha = file_sha256(folder / MODEL_FILES["int8_tflite"])
    want = entry["sha256"].get(f"{entry['files']['artifact']}/{MODEL_FILES['int8_tflite']}") if entry else None
    if want is not None and sha != want:  # the copy, not the zoo: the zoo's bytes were checked by resolve
        raise UserError(folder / MODEL_FILES["int8_tflite"], "does not match the zoo's sha256 after copying")
    return {"folder": folder, "source": source, "model": cfg.model, "entry": entry, "card": card,
            "files": sorted(p.name for p in folder.iterdir()), "sha256": sha,
            "bytes": {"int8_tflite": len(data)}}


# -- profile, live ------------------------------------------------------------------------------
def step_profile(cfg: DemoConfig, done: dict) -> dict:
    """MACs, params, flash (the int8 file), TFLite-Micro arena and host latency of every int8
    file the export holds; the deploy flow adds the Cortex-M instructions measured for the card."""
    export = done["export"]
    runs = DEPLOY_PROFILE_RUNS if cfg.flow == "deploy" else cfg.plan["profile_runs"]
    say(cfg, "  " + " and ".join(n for n in MODEL_FILES.values() if (export["folder"] / n).is_file())
        + " (MACs, flash, arena, host latency, MCU estimates)")
    result = {}
    for kind, name in MODEL_FILES.items():
        if not (export["folder"] / name).is_file():
            continue
        report = profile_model(export["folder"] / name, runs=runs)
        path = cfg.out / f"profile_{kind}.json"
        write_json(path, report)
        m4 = next((t for t in report["targets"] if t["name"].startswith("cortex-m4f")), None)
        result[kind] = {"path": path, "macs": report["macs"], "params": report["params"],
                        "file_bytes": report["file_bytes"], "arena_bytes": report.get("arena_bytes"),
                        "latency_ms": (report["latency_ms"] or {}).get("median"),
                        "cortex_m4f_ms": m4["estimated_ms"] if m4 else None}
    entry = export.get("entry")
    if entry and "int8_tflite" in result:  # measured when the zoo was built: TFLM + CMSIS-NN under QEMU
        result["int8_tflite"]["instructions"] = (entry.get("figures") or {}).get("instructions") or {}
    return result


def step_live(cfg: DemoConfig, done: dict) -> dict:
    """The int8 TFLite file in `live`, fed by the virtual device in process (sim://, speed 0)
    replaying the flow's recording; every prediction logged to live.csv; the agreement with the
    recording's labels scored."""
    if cfg.flow == "deploy":
        replay = bangle_replay(cfg.root)
    else:
        replay = done["data"].replay
    model = done["export"]["folder"] / MODEL_FILES["int8_tflite"]
    say(cfg, f"  simulated device (in process) replaying {replay.note} as fast as live reads")
    log_path = cfg.out / "live.csv"
    opened: dict = {}

    def on_session(session):
        opened["log"] = PredictionLog(log_path, list(session.card.labels))
        if cfg.show:
            opened["view"] = TerminalView(session, sys.stderr)

    def on_prediction(p):
        opened["log"].write(p)
        if "view" in opened:
            opened["view"].prediction(p)

    t0 = time.perf_counter()
    try:
        run, figures = measure(model, replay, on_prediction, on_session)
    except BaseException:
        if "log" in opened:
            opened["log"].discard()
        raise
    opened["log"].close()
    counts = run.counts
    seen: dict[str, int] = {}
    for p in run.predictions:
        seen[run.labels[p.smoothed]] = seen.get(run.labels[p.smoothed], 0) + 1
    # every window the replayed samples hold at the model's rate (the causal resampler may hold back
    # its last few output samples, so the last window can be missing)
    n = counts["readings"]
    rec = replay.recording
    model_samples = int(n * run.rate / rec.rate)
    expected = max(0, (model_samples - run.window) // run.hop + 1)
    result = {"log": log_path, "port": replay.url(), "protocol": "text", "speed": 0,
              "seconds": round(time.perf_counter() - t0, 1), "replayed_seconds": round(n / rec.rate, 1),
              "replayed_samples": n, "samples_read": counts["readings"], "windows": counts["windows"],
              "expected_windows": expected, "predictions": len(run.predictions), "delay_ms": counts["delay_ms"],
              "garbled": counts.get("garbled", 0), "overruns": counts.get("overruns", 0), "classes_seen": seen,
              "agreement": figures["agreement"], "scored_windows": figures["n"],
              "per_class": {c: {"agreement": figures["per_class"][c], "windows": v["windows"]}
                            for c, v in sorted(live_scores(run, replay)["per_class"].items())},
              "figures": figures, "replay": replay.note, "model": str(model)}
    entry = done["export"].get("entry")
    if entry is not None:
        card = (entry.get("figures") or {}).get("live")
        result["card_figures"] = card
        result["equals_card"] = card is not None and {k: card.get(k) for k in figures} == figures
    return result


STEPS = {"data": step_data, "teacher": step_teacher, "student": step_student, "export": step_export,
         "profile": step_profile, "live": step_live}
FLOWS = {
    "deploy": [("export", step_ship), ("profile", step_profile), ("live", step_live)],
    "train": [(name, STEPS[name]) for name in ("data", "teacher", "student", "export", "profile", "live")],
}


def run_flow(cfg: DemoConfig) -> tuple[dict, dict]:
    """Run the flow's steps in order: (results by step name, seconds by step name and "total").
    A step that fails with anything but a `UserError` is one line naming it."""
    done: dict = {}
    times: dict[str, float] = {}
    steps = FLOWS[cfg.flow]
    t_all = time.perf_counter()
    for i, (name, step) in enumerate(steps, 1):
        say(cfg, f"[{i}/{len(steps)}] {name}")
        t0 = time.perf_counter()
        try:
            done[name] = step(cfg, done)
        except UserError:
            raise
        except Exception as e:  # a failing step is one line naming it, not a traceback
            first = (str(e).strip().splitlines() or [""])[0][:200]
            raise UserError(f"demo {name} step", f"{type(e).__name__}: {first} (finished steps are in "
                                                 f"{cfg.out})") from e
        finally:
            times[name] = round(time.perf_counter() - t0, 1)
    times["total"] = round(time.perf_counter() - t_all, 1)
    return done, times
