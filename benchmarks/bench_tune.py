"""`edgehar tune` on HAPT and on the wrist corpus, beside the current students, all int8 and
MEASURED on emulated Cortex-M4 and M55 (TFLM + CMSIS-NN under qemu-system-arm).

    EDGEHAR_TOOLCHAINS=../shared/toolchains EDGEHAR_DATA=../shared/data python benchmarks/bench_tune.py \
        [--hapt-teacher T.pt] [--wrist-teacher T.pt --wrist-corpus DIR] [--trials 40] [--steps 600] \
        [--budget instructions=0.5M,arena=32KiB,flash=128KiB] [--work DIR] [--out benchmarks/results]

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
    (--wrist-teacher, --wrist-corpus), each into --work/<name> (rerunning resumes), its front
    and chosen model summarised. Writes tune.json and tune.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from edgehar.atomic import write_json, write_text

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
        data = tflite.convert_int8(build_baseline_mirror(arch, model.state_dict()), calib)
    graph = tflite.graph_report(data)
    if graph["float_tensors"] or {"DEQUANTIZE", "QUANTIZE"} & set(graph["ops"]):
        raise RuntimeError(f"{name}: int8 graph is not full-integer: {graph}")
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


def search(name: str, teacher: str, data: str, budget, args) -> dict:
    from edgehar.tune.search import tune

    start = time.process_time()
    rep = tune(teacher, args.work / name, CPUS, budget, args.trials, args.steps, data=data, seed=0)
    chosen = next((r for r in rep["trials"] if r["trial"] == rep["chosen"]), None)
    return {"name": name, "teacher": teacher, "data": data, "trials": len(rep["trials"]), "front": rep["front"],
            "chosen": chosen, "smallest": rep["smallest_configuration"], "folder": str(args.work / name),
            "cpu_s": round(time.process_time() - start, 1)}


def markdown(result: dict) -> str:
    lines = ["# edgehar tune: students searched on measured Cortex-M instructions", "",
             f"Command: `{result['command']}`; budget {result['budget']}.", "",
             "| model | MACs | M4 instructions | M55 instructions | arena B | flash B |", "|---|---:|---:|---:|---:|---:|"]
    for r in result["students"] + result.get("baselines", []):
        lines.append(f"| {r['model']} (int8) | {r['macs']:,} | {r['instructions']['cortex-m4']:,} | "
                     f"{r['instructions']['cortex-m55']:,} | {r['arena']:,} | {r['flash']:,} |")
    for s in result["searches"]:
        c = s["chosen"]
        lines += ["", f"## {s['name']}: {s['trials']} trials, {len(s['front'])} on the front ({s['cpu_s']} CPU s)", ""]
        if c is None:
            lines.append("No trial within the budget.")
        else:
            lines.append(f"Chosen: trial {c['trial']}, validation macro-F1 {c['validation_macro_f1']:.4f}, "
                         f"M4 {c['instructions']['cortex-m4']:,}, M55 {c['instructions']['cortex-m55']:,} "
                         f"instructions, arena {c['arena']:,} B, flash {c['flash']:,} B ({c['head']}); "
                         f"front and plot: {s['folder']}/pareto.md, pareto.png. Test scores: export "
                         f"{s['folder']}/chosen and run `edgehar eval` on the test split.")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    from edgehar.mcu.toolchain import find_toolchain
    from edgehar.tune.budget import parse_budget

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--hapt-teacher")
    p.add_argument("--wrist-teacher")
    p.add_argument("--wrist-corpus")
    p.add_argument("--budget", default="instructions=0.5M,arena=32KiB,flash=128KiB")
    p.add_argument("--trials", type=int, default=40)
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--work", type=Path, default=Path("tune-work"))
    p.add_argument("--out", type=Path, default=HERE / "results")
    args = p.parse_args(argv)
    budget = parse_budget(args.budget)
    tc = find_toolchain()
    start = time.monotonic()
    result = {"command": " ".join(["python", "benchmarks/bench_tune.py", *(argv or sys.argv[1:])]),
              "budget": budget.describe(), "students": measure_students(tc),
              "baselines": measure_baselines(tc), "searches": []}
    if args.hapt_teacher:
        result["searches"].append(search("hapt", args.hapt_teacher, "hapt", budget, args))
    if args.wrist_teacher and args.wrist_corpus:
        result["searches"].append(search("wrist", args.wrist_teacher, args.wrist_corpus, budget, args))
    result["wall_s"] = round(time.monotonic() - start, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "tune.json", result)
    write_text(args.out / "tune.md", markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
