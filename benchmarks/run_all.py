"""Every model side by side on the HAPT default split, in one run.

    EDGEHAR_DATA=../shared/data python benchmarks/run_all.py [--quick] [--out benchmarks/results] [--update-readme]

HAPT, 6 activities, 50 Hz, 128-sample windows (hop 64), acc + gyro; trained on every subject
but the UCI-HAR official test subjects (2,4,9,10,12,13,18,20,24), scored on those with
`edgehar.evaluate.evaluate_file` (the same code as `edgehar eval`). Rows:

- every teacher family (harfm, relcon, selfpab, language): self-supervised pre-training on the
  training subjects, then fine-tuning; plus the published LIMU-BERT weights when present;
- students `tiny` and `small` distilled from the best teacher, each as fp32 and int8 TFLite and
  ONNX (the `edgehar export` artifacts);
- the baselines (plain 3-layer CNN, Ignatov CNN, TinyHAR) trained from scratch, as fp32 and
  int8 ONNX.

Columns: macro-F1, accuracy, params, MACs per window (one counter for every model: torch's
FLOP counter / 2), flash (file bytes), TFLite-Micro arena (measured by allocating it; TFLite
files only), host latency (median, 1 thread), ESTIMATED Cortex-M4F latency, and the wrist
transfer score (macro-F1 on the Bangle.js recordings, classes matched by name; models with a
gyro input run there only when they accept an absent gyro stream, i.e. the students).

Checkpoints go to <out>/models/ and are reused when present and fresh (same split, same plan,
newer than the model's code), so a second run only re-measures. Writes summary.json,
summary.md (the table + a targets section), f1_vs_macs.png, confusion_int8_small.png.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

FAMILIES = ("harfm", "relcon", "selfpab", "language")
BASELINES = ("cnn", "ignatov", "tinyhar")
TITLES = {"cnn": "plain 3-layer 1-D CNN", "ignatov": "Ignatov CNN (STM32 zoo 'ign')",
          "tinyhar": "TinyHAR", "limubert": "LIMU-BERT (published)"}
PLANS = {
    "quick": {"teacher_config": "tiny", "pretrain_steps": 30, "finetune_epochs": 1, "distill_epochs": 2,
              "baseline_epochs": {"cnn": 2, "ignatov": 2, "tinyhar": 1}, "max_train": 1200,
              "profile_runs": 10, "n_calib": 100},
    "full": {"teacher_config": "cpu", "pretrain_steps": 1000, "finetune_epochs": 10, "distill_epochs": 20,
             "baseline_epochs": {"cnn": 30, "ignatov": 30, "tinyhar": 20}, "max_train": None,
             "profile_runs": 50, "n_calib": 500},
}
TARGET_F1 = 0.94
# HAR-FM at its published size (d=96, 10+24 layers, ~32M MACs per window) is trained once as an
# extra teacher in the full plan: the student's MACs target (<= 2% of the teacher) is about it.
# `edgehar pretrain --method harfm --config paper --steps 2000 --holdout-test` then
# `edgehar finetune --epochs 20 --lr 5e-4` make the same checkpoint (models/harfm_paper_finetuned.pt).
PAPER_HARFM = {"teacher_config": "paper", "pretrain_steps": 2000, "finetune_epochs": 20, "finetune_lr": 5e-4}


REUSED: list[str] = []  # checkpoints this run did not retrain


def log(msg: str) -> None:
    if ": reusing " in msg:
        REUSED.append(msg.split(": reusing ", 1)[1].split(" ")[0])
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- data -----------------------------------------------------------------------------------------
def load_split(root: Path, plan: dict, seed: int):
    from edgehar.data import hapt
    from edgehar.data.datasets import activity_windows
    from edgehar.data.splits import split_subjects

    w = activity_windows("hapt", root / "hapt", rate=50.0, window=128, hop=64)
    train, test = split_subjects(w, hapt.TEST_SUBJECTS)
    if plan["max_train"] and len(train) > plan["max_train"]:
        keep = np.random.default_rng(seed).choice(len(train), plan["max_train"], replace=False)
        train = train.take(np.sort(keep))
    return w, train, test, list(hapt.TEST_SUBJECTS)


# -- checkpoint reuse -------------------------------------------------------------------------------
def reusable(path: Path, sources: list[Path], stamp: dict | None, test_subjects: list[int]) -> bool:
    """A checkpoint can be reused when it was made for this split (and plan, when `stamp` is
    given), after its code last changed."""
    from edgehar.checkpoint import load_checkpoint
    from edgehar.errors import UserError

    from edgehar.checkpoint import load_model

    if not path.is_file():
        return False
    # our own checkpoints must be newer than their code; another benchmark's must at least load
    # strictly under the current code (it is reported with its own provenance)
    if stamp is not None and any(s.stat().st_mtime > path.stat().st_mtime for s in sources if s.exists()):
        return False
    try:
        card = load_checkpoint(path)["card"]
        if stamp is None:
            load_model(path)
    except (UserError, RuntimeError):
        return False
    prov = card.provenance or {}
    split = ((prov.get("split") or {}).get("test_subjects") or (prov.get("data") or {}).get("test_subjects")
             or (prov.get("finetune") or {}).get("test_subjects"))
    if list(card.channels) != ["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"] or card.window != 128 \
            or float(card.rate) != 50.0 or sorted(split or []) != sorted(test_subjects):
        return False
    if stamp is None:  # another benchmark's checkpoint: the split is all that must match
        seen = set((prov.get("pretrain") or {}).get("subjects") or [])
        return not seen & set(test_subjects)
    if prov.get("bench") == stamp:
        return True
    # checkpoints of benchmarks/bench_baselines.py: the same recipe, stamped by its epochs
    return "epochs" in stamp and prov.get("epochs") == stamp["epochs"] and not stamp.get("quick")


def module_file(family: str) -> Path:
    from edgehar.models import FAMILIES as REGISTRY

    return REPO / (REGISTRY[family].replace("edgehar.", "edgehar/").replace(".", "/") + ".py")


# -- training -----------------------------------------------------------------------------------------
def train_teacher(family: str, train, root: Path, plan: dict, stamp: dict, test_subjects, path: Path, seed: int):
    """Pre-train on the training subjects' windows (unlabelled included), fine-tune on their labels."""
    from edgehar.models import build
    from edgehar.models.teacher import make_teacher_card, save_teacher
    from edgehar.text import activity_prompt, embed_texts
    from edgehar.train.cli import family_config
    from edgehar.train.finetune import finetune
    from edgehar.train.pretrain import pretrain

    torch.manual_seed(seed)
    config = family_config(family, plan["teacher_config"], train)
    if family == "language":  # it pre-trains on the class texts of the labelled windows
        config["labels"] = list(train.label_names)
    teacher = build({"name": family, "config": config})
    mean, std = teacher.normalisation(train)  # the family's choice (language: one scale per sensor)
    x = ((train.x - np.float32(mean)) / np.float32(std)).astype(np.float32)
    t0 = time.perf_counter()
    pre = pretrain(teacher, x, train.y, train.subject, plan["pretrain_steps"], 64, 1e-3, seed=seed)
    card = make_teacher_card(teacher, train, mean, std, stage="finetune", bench=stamp,
                             data={"dataset": "hapt", "root": str(root / "hapt"), "test_subjects": test_subjects})
    card.labels = list(train.label_names)
    history = finetune(teacher, train, card, plan["finetune_epochs"], 64, lr=plan.get("finetune_lr"), seed=seed)
    if teacher.text_dim:
        card.text_prototypes = embed_texts([card.prompts.get(n, activity_prompt(n)) for n in card.labels]).tolist()
    card.provenance["train_s"] = round(time.perf_counter() - t0, 1)
    card.provenance["pretrain"] = {"steps": plan["pretrain_steps"], "final_loss": pre.loss_curve[-1][1]}
    card.provenance["finetune"] = {"epochs": plan["finetune_epochs"], "epoch_losses": history}
    save_teacher(path, teacher, card)


def train_baseline(name: str, train, plan: dict, stamp: dict, test_subjects, path: Path, seed: int):
    from edgehar.card import ModelCard, provenance
    from edgehar.checkpoint import save_checkpoint
    from edgehar.data.normalise import channel_stats
    from edgehar.models import build
    from edgehar.models.baselines import arch_for
    from edgehar.train.supervised import fit

    torch.manual_seed(seed)
    mean, std = channel_stats(train.labelled())
    arch = arch_for(name, len(train.channels), len(train.label_names), train.length)
    card = ModelCard(labels=list(train.label_names), rate=train.rate, window=train.length, hop=train.hop,
                     channels=list(train.channels), units=list(train.units), norm_mean=mean, norm_std=std,
                     kind="baseline", arch=arch)
    model = build(arch)
    t0 = time.perf_counter()
    fit(model, train, card, epochs=stamp["epochs"], seed=seed, desc=name)
    card.provenance = provenance(data="hapt", split={"test_subjects": test_subjects}, epochs=stamp["epochs"],
                                 seed=seed, bench=stamp, method=TITLES[name],
                                 train_s=round(time.perf_counter() - t0, 1))
    save_checkpoint(path, model, card)


def distil_student(size: str, teacher_path: Path, train, root: Path, plan: dict, stamp: dict,
                   test_subjects, path: Path, seed: int):
    from edgehar.checkpoint import save_checkpoint
    from edgehar.train.distill import DistillConfig, distill, load_teacher_spec

    teacher, tcard = load_teacher_spec(str(teacher_path))
    data = {"dataset": "hapt", "root": str(root / "hapt"), "test_subjects": test_subjects,
            "split": "HAPT official test subjects"}
    t0 = time.perf_counter()
    student, card, history = distill(teacher, tcard, train, size, DistillConfig(epochs=plan["distill_epochs"],
                                                                                 seed=seed), str(teacher_path), data)
    card.provenance["bench"] = stamp
    card.provenance["train_s"] = round(time.perf_counter() - t0, 1)
    save_checkpoint(path, student, card, extra={"history": history})


# -- measuring --------------------------------------------------------------------------------------
def torch_macs(model, card) -> int:
    """MACs of one window (edgehar.profile.torch_macs: the counter every benchmark uses)."""
    from edgehar.profile.torch_macs import torch_macs as count

    return count(model, torch.zeros(1, card.window, len(card.channels)))


def export_onnx(model, card, fp32: Path, int8: Path | None, calib_x: np.ndarray | None) -> None:
    """ONNX files (float, and QDQ int8 when `int8`) of any window classifier, card embedded."""
    from edgehar.export import onnx as onnx_export

    fp32.parent.mkdir(parents=True, exist_ok=True)
    onnx_export.export_fp32(model.eval(), card.window, len(card.channels), fp32)
    onnx_export.embed_card(fp32, card)
    if int8 is not None:
        onnx_export.quantize_int8(fp32, int8, calib_x)
        onnx_export.embed_card(int8, card)


def export_tflite_fp32(model, card, path: Path) -> str | None:
    """A float TFLite file of any torch window classifier via litert-torch (card embedded), or
    the reason there is none."""
    try:
        import litert_torch
    except ImportError:
        return "litert-torch is not installed"
    from edgehar.atomic import write_bytes
    from edgehar.card_io import embed_card_tflite
    from edgehar.export.tflite import quiet

    tmp = path.with_suffix(".tmp.tflite")
    try:
        with quiet():
            litert_torch.convert(model.eval(), (torch.zeros(1, card.window, len(card.channels)),)).export(str(tmp))
        write_bytes(path, embed_card_tflite(tmp.read_bytes(), card))
    except Exception as e:  # noqa: BLE001 - a converter refusing a model is a finding
        return f"{type(e).__name__}: {str(e).strip().splitlines()[0][:120]}"
    finally:
        tmp.unlink(missing_ok=True)
    return None


def profile(path: Path, runs: int) -> dict:
    from edgehar.profile.report import profile_model

    r = profile_model(path, runs=runs)
    m4 = next((t for t in r["targets"] if t["name"].startswith("cortex-m4f")), None)
    return {"file_bytes": r["file_bytes"], "arena_bytes": r.get("arena_bytes"),
            "tflm_supported": r.get("tflm_supported"), "tflm_unsupported_ops": r.get("tflm_unsupported_ops"),
            "graph_macs": r["macs"],
            "latency_ms": (r["latency_ms"] or {}).get("median"),
            "latency_runtime": (r["latency_ms"] or {}).get("runtime"),
            "m4f_ms": m4["estimated_ms"] if m4 else None, "latency_error": r.get("latency_error")}


def float_m4f_ms(macs: int) -> float:
    from edgehar.profile.targets import TARGETS, estimate

    return estimate(TARGETS["cortex-m4f"], {"float32": macs})["estimated_ms"]


def torch_latency_ms(model, card, runs: int) -> float:
    x = torch.zeros(1, card.window, len(card.channels))
    with torch.inference_mode():
        for _ in range(3):
            model(x)
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1e3)


def wrist_score(model_path: Path, root: Path) -> tuple[float | None, str]:
    """macro-F1 on the Bangle.js wrist recordings (all windows, classes matched by name).

    A model whose card names a gyro stream runs only if it accepts an absent stream (the
    students: `absent_stream = "zeros"`): the gyro channels are fed as the normalisation mean,
    i.e. exactly zero after normalisation, as on a watch without gyroscope."""
    from edgehar.data.datasets import activity_windows
    from edgehar.evaluate import evaluate_file, label_map
    from edgehar.metrics import report
    from edgehar.runtime import Predictor

    bangle = root / "banglejs_wrist"
    if not bangle.is_dir():
        return None, "n/a (no banglejs_wrist/)"
    predictor = Predictor(model_path)
    card = predictor.card
    acc = [c for c in card.channels if c.startswith("acc")]
    if len(acc) == len(card.channels):
        return evaluate_file(model_path, "banglejs", bangle, split="all")["macro_f1"], "acc"
    if (card.arch or {}).get("config", {}).get("absent_stream") != "zeros":
        return None, "n/a (needs gyro)"
    w = activity_windows("banglejs", bangle, rate=card.rate, window=card.window, hop=card.window // 2,
                         channels=acc, units=[card.units[card.channels.index(c)] for c in acc]).labelled()
    x = np.repeat(np.asarray(card.norm_mean, np.float32)[None, None], len(w), 0).repeat(card.window, 1)
    for i, c in enumerate(acc):
        x[..., card.channels.index(c)] = w.x[..., i]
    mapping = label_map(w.label_names, card.labels)
    known = np.isin(w.y, list(mapping))
    y = np.array([mapping[int(c)] for c in w.y[known]])
    pred = predictor.predict(x[known])
    present = sorted(set(mapping.values()))
    index = {c: i for i, c in enumerate(present)}
    r = report(np.array([index[c] for c in y]), np.array([index.get(int(p), len(present)) for p in pred]),
               [card.labels[c] for c in present] + ["(other)"])
    f1 = float(np.mean([r["per_class_f1"][card.labels[c]] for c in present]))
    return f1, "acc, gyro absent"


# -- the run ----------------------------------------------------------------------------------------
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny configs and few steps (a smoke run)")
    p.add_argument("--data", default=os.environ.get("EDGEHAR_DATA"), help="EDGEHAR_DATA folder")
    p.add_argument("--out", help="results folder (default benchmarks/results, or benchmarks/results/quick)")
    p.add_argument("--only", default=",".join(FAMILIES), help="teacher families to run (comma separated)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--update-readme", action="store_true", help="rewrite README.md's benchmark section")
    args = p.parse_args(argv)
    if not args.data:
        sys.exit("run_all: set EDGEHAR_DATA or pass --data")
    families = [f.strip() for f in args.only.split(",") if f.strip()]
    if unknown := [f for f in families if f not in FAMILIES]:
        sys.exit(f"run_all: unknown teacher family {unknown} (known: {', '.join(FAMILIES)})")
    torch.set_num_threads(1)
    plan_name = "quick" if args.quick else "full"
    plan = PLANS[plan_name]
    root = Path(args.data)
    out = Path(args.out) if args.out else HERE / "results" / ("quick" if args.quick else "")
    models = out / "models"
    models.mkdir(parents=True, exist_ok=True)
    command = "EDGEHAR_DATA=../shared/data python benchmarks/run_all.py" + (" --quick" if args.quick else "") + \
        (f" --out {args.out}" if args.out else "") + (f" --only {args.only}" if args.only != ",".join(FAMILIES) else "") + \
        (" --update-readme" if args.update_readme else "")
    t_start = time.perf_counter()

    from edgehar.checkpoint import load_model
    from edgehar.evaluate import evaluate_file

    w, train, test, test_subjects = load_split(root, plan, args.seed)
    log(f"HAPT: {len(train)} training windows ({int((train.y >= 0).sum())} labelled), "
        f"{int((test.y >= 0).sum())} labelled test windows")
    rows: list[dict] = []
    notes: list[str] = []
    evals: dict[str, dict] = {}

    def add_row(name, kind, fmt, path, model=None, card=None, macs=None, params=None, onnx_for_profile=None,
                note="", train_s=None):
        r = evaluate_file(path, "hapt", root / "hapt")
        evals[name] = r
        prof = profile(onnx_for_profile or path, plan["profile_runs"]) if (onnx_for_profile or
                                                                           Path(path).suffix != ".pt") else {}
        if not prof and model is not None:
            prof = {"file_bytes": None, "arena_bytes": None, "latency_ms": torch_latency_ms(model, card, 20),
                    "latency_runtime": "torch", "m4f_ms": None}
        if prof.get("m4f_ms") is None and macs:
            prof["m4f_ms"] = float_m4f_ms(macs)
        wrist, wrist_how = wrist_score(Path(path), root)
        row = {"name": name, "kind": kind, "format": fmt, "path": str(path), "macro_f1": r["macro_f1"],
               "accuracy": r["accuracy"], "params": params, "macs": macs, "flash_bytes": prof.get("file_bytes"),
               "arena_bytes": prof.get("arena_bytes"), "tflm_unsupported_ops": prof.get("tflm_unsupported_ops"),
               "latency_ms": prof.get("latency_ms"),
               "latency_runtime": prof.get("latency_runtime"), "m4f_ms": prof.get("m4f_ms"),
               "graph_macs": prof.get("graph_macs"), "wrist_f1": wrist, "wrist_input": wrist_how,
               "backend": r["backend"], "train_s": train_s, "note": note}
        rows.append(row)
        log(f"  {name:<22} {fmt:<12} macro-F1 {r['macro_f1']:.4f}  MACs {macs or 0:>10,}  "
            f"bytes {row['flash_bytes'] or 0:>9,}  wrist {('-' if wrist is None else f'{wrist:.3f}')}")
        return row

    # -- teachers --------------------------------------------------------------------------------
    teacher_rows = {}
    specs = [(f, f, plan) for f in families]
    if not args.quick and "harfm" in families:
        specs.insert(1, ("harfm_paper", "harfm", {**plan, **PAPER_HARFM}))
    for key, family, recipe in specs:
        path = models / f"teacher_{key}.pt"
        stamp = {"plan": plan_name, "config": recipe["teacher_config"], "pretrain_steps": recipe["pretrain_steps"],
                 "finetune_epochs": recipe["finetune_epochs"], "seed": args.seed, "max_train": plan["max_train"]}
        sources = [module_file(family), REPO / "edgehar/models/teacher.py"]
        other = models / f"{key}_finetuned.pt"  # from benchmarks/bench_teachers.py or the edgehar CLI
        origin = ""
        if not args.quick and reusable(other, sources, None, test_subjects):
            log(f"teacher {key}: reusing {other}")
            path = other
            prov = load_model(path)[1].provenance
            origin = (f"{(prov.get('pretrain') or {}).get('config', recipe['teacher_config'])} config, made "
                      f"{prov.get('created', '?')}: pre-trained {(prov.get('pretrain') or {}).get('steps', '?')} "
                      f"steps on the training subjects, fine-tuned {(prov.get('finetune') or {}).get('epochs', '?')} epochs")
        elif reusable(path, sources, stamp, test_subjects):
            log(f"teacher {key}: reusing {path}")
        else:
            log(f"teacher {key}: pre-train {recipe['pretrain_steps']} steps + fine-tune "
                f"{recipe['finetune_epochs']} epochs ({recipe['teacher_config']} config)")
            try:
                train_teacher(family, train, root, recipe, stamp, test_subjects, path, args.seed)
            except Exception as e:  # noqa: BLE001 - one family failing must not sink the table
                notes.append(f"teacher {key} failed: {type(e).__name__}: {str(e).splitlines()[0][:160]}")
                log(notes[-1])
                continue
        model, card = load_model(path)
        macs = torch_macs(model, card)
        onnx_path = models / f"teacher_{key}.onnx"
        try:
            if not onnx_path.is_file() or onnx_path.stat().st_mtime < path.stat().st_mtime:
                export_onnx(model, card, onnx_path, None, None)
        except Exception as e:  # noqa: BLE001
            notes.append(f"teacher {family}: no ONNX export ({type(e).__name__}); latency from torch, "
                         "flash = fp32 weights")
            onnx_path = None
        title = f"{family} teacher" + (f" ({recipe['teacher_config']} size)" if family == "harfm" and not args.quick else "")
        row = add_row(title, "teacher", "fp32", path, model, card, macs,
                      sum(q.numel() for q in model.parameters()), onnx_path, note=origin,
                      train_s=card.provenance.get("train_s"))
        if row["flash_bytes"] is None:
            row["flash_bytes"] = 4 * row["params"]
        teacher_rows[key] = (row, path)

    limu = root / "limu_bert"
    if limu.is_dir():
        try:
            rows.append(limubert_row(limu, root, test_subjects, plan))
            log(f"  LIMU-BERT (published)  macro-F1 {rows[-1]['macro_f1']:.4f}")
        except Exception as e:  # noqa: BLE001
            notes.append(f"LIMU-BERT row left out: {type(e).__name__}: {str(e).splitlines()[0][:160]}")

    if not teacher_rows:
        sys.exit("run_all: no teacher could be trained: " + "; ".join(notes))
    best_family = max(teacher_rows, key=lambda f: teacher_rows[f][0]["macro_f1"])
    best_row, best_path = teacher_rows[best_family]
    log(f"best teacher: {best_family} (macro-F1 {best_row['macro_f1']:.4f})")

    # -- students --------------------------------------------------------------------------------
    from edgehar.export.pipeline import export_student

    student_rows = {}
    for size in ("tiny", "small"):
        path = models / f"distilled_{size}.pt"  # (student_<size>.pt belongs to bench_export.py)
        stamp = {"plan": plan_name, "teacher": best_family, "teacher_mtime": int(best_path.stat().st_mtime),
                 "distill_epochs": plan["distill_epochs"], "seed": args.seed, "max_train": plan["max_train"]}
        sources = [REPO / "edgehar/models/student.py", REPO / "edgehar/train/distill.py", best_path]
        if reusable(path, sources, stamp, test_subjects):
            log(f"student {size}: reusing {path}")
        else:
            log(f"student {size}: distil from {best_family} for {plan['distill_epochs']} epochs")
            distil_student(size, best_path, train, root, plan, stamp, test_subjects, path, args.seed)
        folder = models / f"distilled_{size}_export"
        if not (folder / "model_int8.tflite").is_file() or folder.stat().st_mtime < path.stat().st_mtime:
            log(f"student {size}: export")
            export_student(path, folder, int8=True, windows=w, data="hapt", test_subjects=test_subjects,
                           n_calib=plan["n_calib"], seed=args.seed)
        model, card = load_model(path)
        macs, params = torch_macs(model, card), sum(q.numel() for q in model.parameters())
        for fmt, name in (("fp32 TFLite", "model_fp32.tflite"), ("int8 TFLite", "model_int8.tflite"),
                          ("fp32 ONNX", "model.onnx"), ("int8 ONNX", "model_int8.onnx")):
            row = add_row(f"student {size}", "student", fmt, folder / name, model, card, macs, params,
                          train_s=card.provenance.get("train_s"))
            student_rows[(size, fmt)] = row

    # -- baselines -------------------------------------------------------------------------------
    from edgehar.calib.build import calib_from_windows

    calib = calib_from_windows(train.labelled(), plan["n_calib"], args.seed)
    for name in BASELINES:
        path = models / f"{name}.pt"
        epochs = plan["baseline_epochs"][name]
        stamp = {"plan": plan_name, "epochs": epochs, "seed": args.seed, "max_train": plan["max_train"],
                 "quick": args.quick}
        if reusable(path, [module_file(name)], stamp, test_subjects):
            log(f"baseline {name}: reusing {path}")
        else:
            log(f"baseline {name}: train {epochs} epochs")
            train_baseline(name, train, plan, stamp, test_subjects, path, args.seed)
        model, card = load_model(path)
        macs, params = torch_macs(model, card), sum(q.numel() for q in model.parameters())
        fp32, int8 = models / f"{name}.onnx", models / f"{name}_int8.onnx"
        if not int8.is_file() or int8.stat().st_mtime < path.stat().st_mtime:
            export_onnx(model, card, fp32, int8, card.normalise(calib.x))
        add_row(TITLES[name], "baseline", "fp32 ONNX", fp32, model, card, macs, params,
                train_s=card.provenance.get("train_s"))
        add_row(TITLES[name], "baseline", "int8 ONNX", int8, model, card, macs, params,
                train_s=card.provenance.get("train_s"))
        tfl = models / f"{name}_fp32.tflite"  # for the TFLite-Micro arena (float: no int8 path here)
        why = None
        if not tfl.is_file() or tfl.stat().st_mtime < path.stat().st_mtime:
            why = export_tflite_fp32(model, card, tfl)
        if why is None:
            add_row(TITLES[name], "baseline", "fp32 TFLite", tfl, model, card, macs, params,
                    train_s=card.provenance.get("train_s"))
        else:
            notes.append(f"{TITLES[name]}: no TFLite file ({why}), so no arena figure")

    # -- outputs ---------------------------------------------------------------------------------
    import plots
    from edgehar.atomic import write_json, write_text

    targets = check_targets(rows, student_rows, best_row)
    small_int8 = student_rows[("small", "int8 TFLite")]
    conf = evaluate_file(small_int8["path"], "hapt", root / "hapt")
    summary = {"command": command, "plan": plan_name, "plan_settings": plan, "data": {
        "dataset": "hapt", "rate": 50.0, "window": 128, "hop": 64, "channels": list(w.channels),
        "test_subjects": test_subjects, "train_windows": len(train),
        "train_labelled": int((train.y >= 0).sum()), "test_windows": int((test.y >= 0).sum())},
        "best_teacher": best_family, "threads": 1, "torch": torch.__version__,
        "seconds": round(time.perf_counter() - t_start, 1), "reused_checkpoints": list(REUSED), "rows": rows, "targets": targets,
        "notes": notes, "confusion_int8_small": {"labels": conf["labels"], "matrix": conf["confusion"]},
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    plots.f1_vs_macs(rows, out / "f1_vs_macs.png",
                     f"HAPT 6 activities, official test subjects ({plan_name} run)")
    plots.confusion(conf["confusion"], conf["labels"], out / "confusion_int8_small.png",
                    f"int8 student 'small' (TFLite), macro-F1 {conf['macro_f1']:.3f}")
    write_json(out / "summary.json", summary)
    md = markdown(summary)
    write_text(out / "summary.md", md)
    print(md)
    if args.update_readme:
        update_readme(REPO / "README.md", md, out)
    log(f"done in {summary['seconds']:.0f} s -> {out}")
    return 0


def limubert_row(limu: Path, root: Path, test_subjects, plan) -> dict:
    """The published LIMU-BERT classifier on its own input (20 Hz, 120 samples) of the test subjects."""
    from edgehar.data.datasets import windows_for_card
    from edgehar.metrics import report
    from edgehar.models.limubert import teacher_from_spec
    from edgehar.models.inference import predict_logits

    model, card = teacher_from_spec(f"limu-bert:{limu}")
    w = windows_for_card(card, "hapt", root / "hapt").labelled()
    test = w.take(np.isin(w.subject, test_subjects))
    pred = predict_logits(model, card.normalise(test.x), 256).argmax(1)
    r = report(test.y, pred, card.labels)
    macs = torch_macs(model, card)
    params = sum(q.numel() for q in model.parameters())
    return {"name": "LIMU-BERT (published)", "kind": "teacher", "format": "fp32 torch", "path": str(limu),
            "macro_f1": r["macro_f1"], "accuracy": r["accuracy"], "params": params, "macs": macs,
            "flash_bytes": 4 * params, "arena_bytes": None, "latency_ms": torch_latency_ms(model, card, 20),
            "latency_runtime": "torch", "m4f_ms": float_m4f_ms(macs), "graph_macs": None,
            "wrist_f1": None, "wrist_input": "n/a (needs gyro)", "backend": "torch", "train_s": None,
            "note": "published weights, own input (20 Hz, 120 samples); its head was trained on UCI windows "
                    "that include test subjects: not a held-out figure, not a distillation candidate"}


def paper_harfm_macs() -> int:
    """MACs per window of HAR-FM's published size on this input (an untrained model: a count only)."""
    from edgehar.card import ModelCard
    from edgehar.models import build
    from edgehar.models.harfm import CONFIGS, DEFAULT_INPUT

    model = build({"name": "harfm", "config": {**CONFIGS["paper"], **DEFAULT_INPUT}})
    model.set_task(6)
    card = ModelCard(labels=[str(i) for i in range(6)], rate=50.0, window=128, hop=64,
                     channels=DEFAULT_INPUT["channels"], units=["g"] * 3 + ["rad/s"] * 3)
    return torch_macs(model, card)


def check_targets(rows, student_rows, best_row) -> list[dict]:
    small = student_rows[("small", "int8 TFLite")]
    out = [{"target": f"int8 small student macro-F1 >= {TARGET_F1}", "measured": round(small["macro_f1"], 4),
            "met": small["macro_f1"] >= TARGET_F1},
           {"target": f"within 1 point of the best teacher ({best_row['name']}, {best_row['macro_f1']:.4f})",
            "measured": round(100 * (best_row["macro_f1"] - small["macro_f1"]), 2),
            "unit": "points (teacher minus student)", "met": best_row["macro_f1"] - small["macro_f1"] <= 0.01},
           {"target": "<= 2% of the best teacher's MACs",
            "measured": round(100 * small["macs"] / best_row["macs"], 2) if best_row["macs"] else None,
            "unit": "% of teacher MACs", "met": bool(best_row["macs"]) and small["macs"] <= 0.02 * best_row["macs"]}]
    paper = None if any("paper size" in r["name"] for r in rows) else paper_harfm_macs()
    if paper:  # no trained paper-size teacher in this run (quick plan): its MAC count for reference
        out.append({"target": "(reference only) <= 2% of the MACs of HAR-FM at its published size (d=96, "
                              f"10+24 layers: {paper:,} MACs; MACs counted, not trained here)",
                    "measured": round(100 * small["macs"] / paper, 2), "unit": "% of its MACs",
                    "met": small["macs"] <= 0.02 * paper})
    for r in rows:
        if r["kind"] != "baseline" or r["format"] != "fp32 ONNX":
            continue
        fewer = small["macs"] <= r["macs"]
        met = small["macro_f1"] >= r["macro_f1"] and fewer
        measured = f"{small['macro_f1']:.4f} at {small['macs']:,} MACs"
        if not met:  # does another int8 student cover this baseline?
            alt = [v for (size, fmt), v in student_rows.items() if fmt == "int8 TFLite" and size != "small"
                   and v["macro_f1"] >= r["macro_f1"] and v["macs"] <= r["macs"]]
            if alt:
                measured += (f"; the int8 {alt[0]['name']} meets it: {alt[0]['macro_f1']:.4f} at "
                             f"{alt[0]['macs']:,} MACs")
        out.append({"target": f"int8 small student at or above {r['name']} (fp32 macro-F1 {r['macro_f1']:.4f}, "
                              f"{r['macs']:,} MACs) at equal or fewer MACs", "measured": measured, "met": met})
    return out


def _n(v, fmt="{:,}"):
    return "-" if v is None else fmt.format(v)


def arena(r: dict) -> str:
    if r.get("arena_bytes"):
        return f"{r['arena_bytes']:,}"
    if r.get("tflm_unsupported_ops"):
        return f"n/a (TFLM lacks {', '.join(r['tflm_unsupported_ops'])})"
    return "n/a"


def markdown(s: dict) -> str:
    d = s["data"]
    lines = [f"## Benchmark: HAPT, 6 activities ({s['plan']} run)", "",
             f"Command: `{s['command']}` ({s['seconds']:.0f} s, 1 CPU thread, torch {s['torch']}, {s['created']}"
             + (f"; {len(s.get('reused_checkpoints', []))} checkpoints reused from an earlier run in "
                "`models/` beside summary.json; delete them to retrain" if s.get("reused_checkpoints") else "") + ").",
             f"HAPT raw recordings, 50 Hz, 128-sample windows (hop 64), {', '.join(d['channels'])}; "
             f"trained on {d['train_windows']} windows of the training subjects ({d['train_labelled']} labelled), "
             f"scored on {d['test_windows']} windows of the official test subjects "
             f"({', '.join(map(str, d['test_subjects']))}) with `edgehar eval`'s code. "
             f"Students distilled from the best teacher ({s['best_teacher']}).", "",
             "| model | format | macro-F1 | accuracy | params | MACs | flash (bytes) | TFLM arena (bytes) | "
             "host ms (median) | Cortex-M4F ms (est.) | wrist macro-F1 |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in s["rows"]:
        wrist = "-" if r["wrist_f1"] is None else f"{r['wrist_f1']:.3f}"
        if r["wrist_f1"] is None and r.get("wrist_input", "").startswith("n/a"):
            wrist = r["wrist_input"]
        elif r.get("wrist_input") == "acc, gyro absent":
            wrist += " (gyro absent)"
        lines.append(f"| {r['name']} | {r['format']} | {r['macro_f1']:.4f} | {r['accuracy']:.4f} | "
                     f"{_n(r['params'])} | {_n(r['macs'])} | {_n(r['flash_bytes'])} | "
                     f"{arena(r)} | "
                     f"{_n(r['latency_ms'], '{:.3f}')} | {_n(r['m4f_ms'], '{:.1f}')} | {wrist} |")
    lines += ["", "MACs: torch FLOP counter / 2 for every model (conv, linear, matmul). Flash: file bytes "
              "(teachers without an ONNX export: fp32 weight bytes). Arena: measured by allocating the "
              "model in tflite-micro (TFLite files only). Cortex-M4F: an ESTIMATE (MACs x cycles/MAC at "
              "64 MHz, edgehar/profile/targets.py), not a measurement. Wrist: macro-F1 on the Bangle.js "
              "recordings over the classes both know (walking, sitting, lying); gyro models run there only "
              "with the gyro stream absent (students).", "", "### Targets", ""]
    for t in s["targets"]:
        unit = f" {t['unit']}" if t.get("unit") else ""
        lines.append(f"- {'met' if t['met'] else '**missed**'}: {t['target']}: measured {t['measured']}{unit}")
    if s["notes"]:
        lines += ["", "### Notes", ""] + [f"- {n}" for n in s["notes"]]
    for r in s["rows"]:
        if r.get("note"):
            lines.append(f"- {r['name']}: {r['note']}")
    return "\n".join(lines) + "\n"


README_START, README_END = "<!-- benchmark:start -->", "<!-- benchmark:end -->"


def update_readme(readme: Path, md: str, out: Path) -> None:
    """Replace (or append) the benchmark section of README.md, between markers."""
    from edgehar.atomic import write_text

    rel = os.path.relpath(out, readme.parent)
    body = (f"{README_START}\n# Results\n\n{md}\n![macro-F1 vs MACs]({rel}/f1_vs_macs.png)\n\n"
            f"![confusion of the int8 small student]({rel}/confusion_int8_small.png)\n{README_END}\n")
    text = readme.read_text() if readme.exists() else ""
    if README_START in text and README_END in text:
        head, rest = text.split(README_START, 1)
        tail = rest.split(README_END, 1)[1].lstrip("\n")
        text = head + body + tail
    else:
        text = text.rstrip("\n") + "\n\n" + body
    write_text(readme, text)


if __name__ == "__main__":
    sys.exit(main())
