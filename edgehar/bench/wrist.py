"""The wrist benchmark's scoring and table (`benchmarks/bench_wrist.py`): macro-F1 by class
name on each data set's test subjects and on Bangle.js, the pool mean, and the markdown report
with its targets."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgehar.data.datasets import activity_windows
from edgehar.scoring import canonical, score

BANGLE_CLASSES = ["walking", "running", "sitting", "lying"]
MIN_POOL_WINDOWS = 50  # a data set enters the pool mean with at least this many labelled test windows
TARGET = 0.85  # issue #13: int8 small on Bangle.js w/o user 1 sitting, and the pool mean
# How the wrist students distil (DistillConfig fields beside the step count, which is chosen on
# validation): batches of 128 corpus windows, augmented
STUDENT_DISTILL = {"batch_size": 128, "lr": 3e-3, "augment": True}


def macro_f1(pred_labels: list[str], w, classes=None) -> dict:
    """macro-F1 over the classes the windows hold (or `classes`); predicting any other class
    is an error, as `edgehar eval` scores (`edgehar.scoring`)."""
    names = [w.label_names[c] for c in w.y]
    keep = [classes is None or n in classes for n in names]
    data_map = dict(zip(w.label_names, w.canonical_names))
    truth = [canonical(n, data_map) for n, k in zip(names, keep) if k]
    pred = [canonical(p) for p, k in zip(pred_labels, keep) if k]
    return {"macro_f1": score(truth, pred)["macro_f1"], "n": len(truth)}


def bangle_windows(root: Path, card):
    """Bangle.js windows in the wrist format; `clean` drops user 1's sitting segment (exp 1 is
    recording 0: files load sorted)."""
    w = activity_windows("banglejs", root / "banglejs_wrist", rate=card.rate, window=card.window,
                         hop=card.window // 2, channels=list(card.channels), units=list(card.units)).labelled()
    sitting = w.label_names.index("sitting")
    return w, w.take(~((w.recording == 0) & (w.y == sitting)))


def score_row(name: str, predict, labels, tests: dict, bangle, clean) -> dict:
    row = {"name": name}
    pool = []
    for ds, w in tests.items():
        if len(w) == 0:
            row[ds] = None
            continue
        r = macro_f1([labels[i] for i in predict(w.x)], w)
        row[ds], row[f"{ds}_n"] = r["macro_f1"], r["n"]
        if r["n"] >= MIN_POOL_WINDOWS:  # GeoTec's test split holds a handful of labelled windows
            pool.append(r["macro_f1"])
    row["pool_mean"] = float(np.mean(pool)) if pool else None
    for key, w in (("bangle", bangle), ("bangle_clean", clean)):
        r = macro_f1([labels[i] for i in predict(w.x)], w, BANGLE_CLASSES)
        row[key], row[f"{key}_n"] = r["macro_f1"], r["n"]
    return row


def _f(v, fmt="{:.3f}"):
    return "-" if v is None else fmt.format(v)


def markdown(result: dict) -> str:
    cols = ["wisdm_watch", "dsads", "geotec_watch", "pool_mean", "bangle", "bangle_clean"]
    n = {c: result["rows"][0].get(f"{c}_n") for c in cols[:3]}
    lines = [f"| model | WISDM test (n={n['wisdm_watch']}) | DSADS arms test (n={n['dsads']}) | GeoTec test "
             f"(n={n['geotec_watch']}, not in the mean) | pool mean | Bangle.js 4 | Bangle.js 4 w/o user 1 sitting "
             "| params | MACs | int8 bytes | arena | Cortex-M4 / M55 instructions (measured) |", "|" + "---|" * 12]
    for r in result["rows"]:
        instr = (f"{r['m4_instructions']:,} / {r['m55_instructions']:,}" if r.get("m4_instructions") else "-")
        lines.append(f"| {r['name']} | " + " | ".join(_f(r.get(c)) for c in cols) + " | "
                     + " | ".join(_f(r.get(k), "{:,}") for k in ("params", "macs", "int8_bytes", "arena_bytes"))
                     + f" | {instr} |")
    small = next(r for r in result["rows"] if r["name"] == "wrist student small int8")
    lines += ["", f"Targets (int8 small): Bangle.js w/o user 1 sitting >= {TARGET}: {_f(small['bangle_clean'])} "
                  f"({_miss(small['bangle_clean'], TARGET)}); pool mean >= {TARGET}: {_f(small['pool_mean'])} "
                  f"({_miss(small['pool_mean'], TARGET)}). Floors (issue #13): 0.76 / about 0.75. Tried: the "
                  "teacher and distillation step counts below (each chosen on validation); the same architecture "
                  "trained from scratch on the labels and the CNN floor are rows above."]
    tc = result["teacher_choice"]
    lines += ["", "Teacher recipe chosen on " + tc["on"] + ": " + ", ".join(
        f"{k} steps {v:.4f}" for k, v in tc["candidates"].items()) + f" -> {tc['chosen']} steps."]
    if sc := result.get("student_choice"):
        lines += ["", "Distillation steps chosen on " + sc["on"] + ": " + "; ".join(
            f"{size}: " + ", ".join(f"{k} steps {v:.4f}" for k, v in c["candidates"].items())
            + f" -> {c['chosen']} steps" for size, c in sc["sizes"].items()) + "."]
    lines += ["", "### Leave one data set out", "",
              "Each held-out set X: the teacher recipe trained without X, scored on X's test subjects over the "
              "classes it knows (the teacher trained with X chooses among the same classes), and zero-shot on "
              "all of X's classes by their text alone; an unseen class is one no training label named "
              "(chance: uniform guessing over X's classes, measured).", "",
              "| held out | test windows (known classes) | teacher with X | teacher without X | zero-shot, "
              "HAR-FM text head | zero-shot, language teacher | chance | unseen classes | unseen F1: HAR-FM / "
              "language (chance) |", "|" + "---|" * 9]
    for held, r in result["leave_one_out"].items():
        z, zl = r["zero_shot"], r["zero_shot_language"]
        unseen = sorted(set(z["unseen"]) | set(zl["unseen"]))
        lines.append(f"| {held} | {r['seen_windows']} | {_f(r['macro_f1_with'])} | {_f(r['macro_f1_without'])} | "
                     f"{_f(z['macro_f1'])} | {_f(zl['macro_f1'])} | {_f(z['chance_macro_f1'])} | "
                     f"{', '.join(unseen) or '-'} | {_f(z['unseen_mean_f1'])} / {_f(zl['unseen_mean_f1'])} "
                     f"({_f(z['unseen_chance_f1'])}) |")
    for held, r in result["leave_one_out"].items():
        for key, who in (("zero_shot", "HAR-FM text head"), ("zero_shot_language", "language teacher")):
            z = r[key]
            if z["unseen"]:
                lines.append(f"- {held}, {who}, unseen classes' zero-shot F1 (chance): " + ", ".join(
                    f"{n} {z['per_class_f1'][n]:.3f} ({z['chance_per_class_f1'][n]:.3f})" for n in z["unseen"]))
    eff = {h: r["label_efficiency"] for h, r in result["leave_one_out"].items() if "label_efficiency" in r}
    if eff:
        lines += ["", "### Label efficiency (fine-tuned on a data set left out of pre-training; test macro-F1, "
                      "mean +- std over seeds; steps chosen on its validation subjects)", "",
                  "| held out | labels | pre-trained | random init | gain (points) |", "|---|---|---|---|---|"]
        for held, runs in eff.items():
            for frac in sorted({k.split("/")[0] for k in runs}, key=float):
                a, b = runs[f"{frac}/pretrained"], runs[f"{frac}/random"]
                lines.append(f"| {held} | {float(frac):.0%} | {a['mean']:.3f} +- {a['std']:.3f} | "
                             f"{b['mean']:.3f} +- {b['std']:.3f} | {100 * (a['mean'] - b['mean']):+.1f} |")
        for held, runs in eff.items():
            gain = runs["0.1/pretrained"]["mean"] - runs["0.1/random"]["mean"] if "0.1/random" in runs else None
            if gain is not None:
                lines.append(f"- {held}: pre-training beats random initialisation by >= 3 points at 10% labels: "
                             f"{100 * gain:+.1f} ({'met' if gain >= 0.03 else 'missed'})")
    lines += ["", "No choice was made on a test subject or on Bangle.js: the teacher's and the students' steps on "
                  "the corpus validation split, fine-tuning steps on the held-out set's validation subjects; the rest is "
                  "fixed in bench_wrist.py."]
    if result.get("reused_checkpoints"):
        lines += ["", "Checkpoints reused from --work by content hash (same recipe, training code and corpus bytes; "
                      "trained by an earlier run of this command): "
                      + ", ".join(result["reused_checkpoints"]) + "."]
    prov = result["provenance"]
    lines += ["", f"`{prov['command']}` at {prov['commit']}: {prov['cpu_seconds']} CPU s, "
                  f"{prov['wall_seconds']} s wall, {prov['torch_threads']} torch thread(s)."]
    return "\n".join(lines) + "\n"


def _miss(value, target) -> str:
    return "met" if value is not None and value >= target else f"missed by {target - (value or 0):.3f}"
