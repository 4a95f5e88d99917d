"""Instructions the kit's int8 students execute on emulated Cortex-M4, M33 and M55 (TFLM, QEMU).

    EDGEHAR_TOOLCHAINS=../shared/toolchains EDGEHAR_DATA=../shared/data \
        python benchmarks/bench_mcu.py [--demo ARTIFACT_DIR] [--cpus cortex-m4,cortex-m33,cortex-m55] \
        [--no-reference] [--out benchmarks/results]

1. The tiny and small students (HAPT shape, exported to int8 TFLite like bench_profile.py;
   untrained: the instruction count of these integer kernels does not depend on the weights'
   values) measured with `edgehar profile --measure` on each CPU with CMSIS-NN kernels, and on
   the Cortex-M4 also with TFLM's reference kernels, per op (CMSIS-NN vs reference).
2. With --demo (an `edgehar demo` export folder, e.g. from `edgehar demo --quick --out DIR`) and
   EDGEHAR_DATA: that int8 student's outputs on the emulated M4 against LiteRT on the real HAPT
   test windows, for both kernel sets: top-1 agreement and the largest difference in LSB.
Writes mcu.json and mcu.md. The first run builds TFLM per (CPU, kernel set): minutes each,
cached under the user cache dir.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from edgehar.atomic import write_json, write_text

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def measure_students(tc, cpus: list[str], reference: bool) -> list[dict]:
    from bench_profile import export_students

    from edgehar.profile.macs import count_layers
    from edgehar.profile.mcu_report import measure_entry
    from edgehar.profile.tflite_graph import read_tflite

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        files, _ = export_students(Path(tmp))
        for f in (f for f in files if f.name.endswith("int8.tflite")):
            layers = count_layers(read_tflite(f))
            runs = [(cpu, "cmsis-nn") for cpu in cpus]
            if reference:
                runs.append(("cortex-m4", "reference"))
            for cpu, kernels in runs:
                start = time.monotonic()
                entry = measure_entry(tc, str(f), layers, cpu, None, kernels)
                entry.update(model=f.name.removesuffix(".tflite"), file_bytes=f.stat().st_size,
                             seconds=round(time.monotonic() - start, 1))
                rows.append(entry)
                print(f"{entry['model']:<22} {cpu:<11} {kernels:<9} {entry['instructions']:>11,} "
                      f"instructions  ({entry['instructions_per_mac']} /MAC)", file=sys.stderr)
    return rows


def check_outputs(tc, demo: Path, kernels_list: list[str]) -> list[dict]:
    """The demo student's int8 outputs on the emulated M4 vs LiteRT, on HAPT test windows."""
    from edgehar.card import ModelCard
    from edgehar.data import hapt
    from edgehar.data.datasets import windows_for_card
    from edgehar.data.splits import split_subjects
    from edgehar.interpreters import litert_interpreter, quantize
    from edgehar.mcu.run import outputs_array, run_on_mcu

    model = demo / "model_int8.tflite"
    card = ModelCard.from_json((demo / "modelcard.json").read_text())
    root = Path(os.environ["EDGEHAR_DATA"]) / "hapt"
    _, test = split_subjects(windows_for_card(card, "hapt", root, hop=card.hop), hapt.TEST_SUBJECTS)
    test = test.x[test.y >= 0]  # the labelled test windows, as `edgehar eval` scores
    it = litert_interpreter(model, xnnpack=False)
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    x = quantize(card.normalise(test), np.int8, *inp["quantization"])
    host = []
    for w in x:
        it.set_tensor(inp["index"], w[None])
        it.invoke()
        host.append(it.get_tensor(out["index"])[0].copy())
    host = np.stack(host).astype(int)
    results = []
    for kernels in kernels_list:
        start = time.monotonic()
        run = run_on_mcu(tc, str(model), x.tobytes(), cpu="cortex-m4", kernels=kernels)
        mcu = outputs_array(str(model), run).reshape(len(x), -1).astype(int)
        diff = np.abs(mcu - host)
        results.append({
            "model": f"{demo.name}/{model.name}", "cpu": "cortex-m4", "kernels": kernels, "windows": len(x),
            "top1_agreement": float((mcu.argmax(1) == host.argmax(1)).mean()),
            "max_abs_diff_lsb": int(diff.max()), "identical_outputs": float((diff == 0).all(1).mean()),
            "windows_with_diff_over_2_lsb": int((diff > 2).any(1).sum()),
            "instructions_median": int(np.median([i.instructions for i in run.inferences])),
            "instructions_min_max": [min(i.instructions for i in run.inferences),
                                     max(i.instructions for i in run.inferences)],
            "seconds": round(time.monotonic() - start, 1)})
        print(f"outputs {kernels}: top-1 agreement {results[-1]['top1_agreement']:.4f}, "
              f"max diff {results[-1]['max_abs_diff_lsb']} LSB over {len(x)} windows", file=sys.stderr)
    return results


def cmsis_vs_reference(rows: list[dict], ops=("CONV_2D", "FULLY_CONNECTED")) -> list[dict]:
    """The issue's check: CMSIS-NN runs CONV_2D and FULLY_CONNECTED in fewer instructions."""
    by = {(r["model"], r["cpu"], r["kernels"]): r for r in rows}
    out = []
    for (model, cpu, kernels), ref in by.items():
        cm = by.get((model, cpu, "cmsis-nn"))
        if kernels != "reference" or not cm:
            continue
        for op in ops:
            if op in cm["by_op"] and op in ref["by_op"]:
                a, b = cm["by_op"][op]["instructions"], ref["by_op"][op]["instructions"]
                out.append({"model": model, "cpu": cpu, "op": op, "cmsis_nn": a, "reference": b,
                            "cmsis_nn_fewer_instructions": a < b})
    return out


def markdown(rows: list[dict], outputs: list[dict]) -> str:
    lines = ["# Cortex-M instructions, measured (TFLM under qemu-system-arm, instruction-counting "
             "plugin)", "",
             "| model | CPU | kernels | MACs | instructions / inference | instr/MAC | arena B | "
             "latency ms (estimate from the measured count) |",
             "|---|---|---|---:|---:|---:|---:|---|"]
    for r in rows:
        lo, hi = r["latency_ms"]
        lines.append(f"| {r['model']} | {r['cpu']} | {r['kernels']} | {r['macs']:,} | "
                     f"{r['instructions']:,} | {r['instructions_per_mac']} | {r['arena_used_bytes']:,} | "
                     f"{lo:.2f}-{hi:.2f} at {r['mhz']:g} MHz |")
    lines += ["", "Latency: instructions x a cycles-per-instruction band / clock; the band and its "
              "sources are in edgehar/profile/mcu_report.py (CPI).", ""]
    by = {(r["model"], r["cpu"], r["kernels"]): r for r in rows}
    for model in dict.fromkeys(r["model"] for r in rows):
        cm, ref = by.get((model, "cortex-m4", "cmsis-nn")), by.get((model, "cortex-m4", "reference"))
        if not (cm and ref):
            continue
        lines += [f"## {model} per op, Cortex-M4: CMSIS-NN vs reference kernels", "",
                  "| op | count | MACs | CMSIS-NN instr | instr/MAC | reference instr | instr/MAC | speed-up |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for op, a in cm["by_op"].items():
            b = ref["by_op"].get(op)
            if not b:
                continue
            lines.append(f"| {op} | {a['count']} | {a['macs']:,} | {a['instructions']:,} | "
                         f"{a['instructions_per_mac'] or '-'} | {b['instructions']:,} | "
                         f"{b['instructions_per_mac'] or '-'} | {b['instructions'] / a['instructions']:.2f}x |")
        lines.append(f"| (whole inference) | | {cm['macs']:,} | {cm['instructions']:,} | "
                     f"{cm['instructions_per_mac']} | {ref['instructions']:,} | "
                     f"{ref['instructions_per_mac']} | {ref['instructions'] / cm['instructions']:.2f}x |")
        lines.append("")
    if outputs:
        lines += ["## Runner outputs vs LiteRT (int8, real HAPT test windows)", "",
                  "| model | kernels | windows | top-1 agreement | max diff (LSB) | windows >2 LSB apart | identical |",
                  "|---|---|---:|---:|---:|---:|---:|"]
        for o in outputs:
            lines.append(f"| {o['model']} | {o['kernels']} | {o['windows']} | {o['top1_agreement']:.4f} | "
                         f"{o['max_abs_diff_lsb']} | {o['windows_with_diff_over_2_lsb']} | "
                         f"{o['identical_outputs']:.3f} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    from edgehar.mcu.toolchain import find_toolchain

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cpus", default="cortex-m4,cortex-m33,cortex-m55")
    p.add_argument("--no-reference", action="store_true", help="skip the reference-kernel runs")
    p.add_argument("--demo", type=Path, help="export folder of an int8 student (outputs check)")
    p.add_argument("--out", type=Path, default=HERE / "results")
    args = p.parse_args()
    tc = find_toolchain()
    start = time.monotonic()
    rows = measure_students(tc, args.cpus.split(","), not args.no_reference)
    outputs = []
    if args.demo and os.environ.get("EDGEHAR_DATA"):
        outputs = check_outputs(tc, args.demo, ["cmsis-nn"] + ([] if args.no_reference else ["reference"]))
    checks = cmsis_vs_reference(rows)
    result = {"students": rows, "cmsis_nn_beats_reference": checks, "outputs_vs_litert": outputs,
              "seconds": round(time.monotonic() - start, 1)}
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "mcu.json", result)
    write_text(args.out / "mcu.md", markdown(rows, outputs))
    print(markdown(rows, outputs))
    failed = [c for c in checks if not c["cmsis_nn_fewer_instructions"]]
    failed += [o for o in outputs if o["top1_agreement"] < 0.995]
    for f in failed:
        print(f"CHECK FAILED: {f}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
