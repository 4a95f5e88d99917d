"""Why SOFTMAX costs hundreds of Cortex-M4 instructions per element: a per-op measured run.

    EDGEHAR_TOOLCHAINS=../shared/toolchains python benchmarks/softmax_cost.py [--window 128]
        [--channels 6] [--out benchmarks/results]

Exports the small student (untrained: these integer kernels' instruction counts do not depend
on the weights) and the same student with softmax-free attention to full-int8 TFLite, runs
`edgehar profile MODEL --measure cortex-m4,cortex-m55 --per-layer --json` on each, and writes
softmax.json + softmax.md: per SOFTMAX op its shape, elements (heads x tokens x tokens), rows,
instructions and instructions per element, beside what CMSIS-NN's s8 kernel does per element.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from edgehar.atomic import write_json, write_text

HERE = Path(__file__).resolve().parent
CPUS = "cortex-m4,cortex-m55"

KERNEL_NOTE = """\
## What CMSIS-NN's s8 softmax does per element

`arm_softmax_s8` (third_party/cmsis_nn/Source/SoftmaxFunctions/arm_softmax_s8.c) has an MVE
(Helium) path for the Cortex-M55 and, on every core without MVE (the M4, the M33), calls the
scalar `arm_nn_softmax_common_s8` (arm_nn_softmax_common_s8.c). Per row it takes the maximum,
then makes **two passes over the row, each computing exp(x - max) again** in fixed point:

- pass 1 (the sum): `MUL_SAT(diff * mask, mult)` (the input rescale), `EXP_ON_NEG(...)`,
  `DIV_POW2(..., 12)`;
- pass 2 (the output): the same rescale and `EXP_ON_NEG` again, `MUL_SAT(shifted_scale, ...)`
  (times 1/sum), `DIV_POW2(..., bits_over_unit)`, add -128, clamp, store.

`EXP_ON_NEG` (`arm_nn_exp_on_negative_values`, arm_nnsupportfunctions.h) is gemmlowp's
exp on [-1/4, 0) by a 4th-order polynomial (5 `MUL_SAT`) followed by **7 unconditional
`MUL_SAT`s**, one per bit of the integer part (each multiplied in and then kept or dropped by a
mask, so the cost is the same for every input). So each element costs 2 x (1 + 5 + 7) + 1 = **27
`MUL_SAT`s**, plus 2 `DIV_POW2` and the masks. `MUL_SAT` is `arm_nn_doubling_high_mult`: a
sign test, a 64-bit `SMLAL` with a rounding term, a 64-bit signed division by 2^31 (shifts and
a correction for negative values) and a saturation test: about a dozen Thumb-2 instructions,
none of which the M4's DSP extension does in one. 27 x ~15 + ~100 for the rest is the order of
the measured count below. The row length (tokens) does not amortise it: the cost is per element,
and the elements grow as heads x tokens^2 per layer.

On the M55 the MVE path (`arm_exp_on_negative_values_mve_32x4`, 4 elements per vector
instruction) would cut this, but it is compiled out here: CMSIS-NN defines `ARM_GCC_12_2_ICE`
for GCC 12.0-12.2 (Include/Internal/arm_nn_compiler.h, a workaround for an internal compiler
error) and Debian's arm-none-eabi-gcc is 12.2.1, so `arm_softmax_s8` takes the scalar path on
the M55 as well: the table shows the same ~520-560 instructions per element on both cores, and
SOFTMAX is a larger share on the M55 because its matmuls and convolutions do use MVE. A newer
Arm GNU toolchain (12.3+) would enable it; the counts here are what this toolchain builds.
The issue's 534 per element (the wrist student, rows of 9) against ~521 here (rows of 11) is
the per-row part (max pass, 1/sum) spread over fewer elements.

Softmax-free attention (`attention: "linear"` in the student config: ReLU(q) (ReLU(k)^T v) / L,
two BATCH_MATMULs and no SOFTMAX) removes the op; the second table measures that swap on the
same student.
"""


def export(cfg_changes: dict, window: int, channels: int, folder: Path, name: str) -> Path:
    import torch

    from edgehar.export import keras_mirror, tflite
    from edgehar.models import student

    torch.manual_seed(0)
    streams = {"acc": [0, 1, 2], "gyro": [3, 4, 5]} if channels == 6 else {"acc": list(range(channels))}
    cfg = student.student_config("small", window, channels, streams, {"activity": 6}, **cfg_changes)
    model = student.Student(cfg).eval()
    calib = np.random.default_rng(0).standard_normal((32, window, channels)).astype(np.float32)
    with tflite.quiet():
        mirror = keras_mirror.build_keras_mirror(cfg, model.state_dict())
        data = tflite.convert_int8(mirror, calib)
    path = folder / f"{name}.tflite"
    path.write_bytes(data)
    return path


def profile(path: Path) -> dict:
    out = subprocess.run([sys.executable, "-m", "edgehar", "profile", str(path), "--measure", CPUS,
                          "--per-layer", "--json", "--no-latency"], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def softmax_rows(rep: dict) -> list[dict]:
    """Per measured SOFTMAX op: shape, elements, rows, instructions per element, per CPU."""
    layers = rep["layers"]
    rows = []
    for m in rep["mcu_measured"]:
        for op in (o for o in m["per_op"] if o["op"] == "SOFTMAX"):
            layer = layers[op["index"]] if op["index"] < len(layers) and layers[op["index"]]["op"] == "SOFTMAX" else None
            shape = layer["output_shape"] if layer else None
            elements = int(np.prod(shape)) if shape else None
            rows.append({"cpu": m["cpu"], "index": op["index"], "shape": shape, "elements": elements,
                         "rows": elements // shape[-1] if shape else None, "row_size": shape[-1] if shape else None,
                         "instructions": op["instructions"], "share": op["share"],
                         "instructions_per_element": round(op["instructions"] / elements, 1) if elements else None})
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--window", type=int, default=128)
    p.add_argument("--channels", type=int, default=6, choices=(3, 6))
    p.add_argument("--out", type=Path, default=HERE / "results")
    args = p.parse_args(argv)
    start, cpu0 = time.monotonic(), time.process_time()
    with tempfile.TemporaryDirectory() as tmp:
        models = {"small (softmax attention)": {},
                  "small, softmax-free attention": {"attention": "linear"}}
        reports = {name: profile(export(changes, args.window, args.channels, Path(tmp), f"m{i}"))
                   for i, (name, changes) in enumerate(models.items())}
    result = {"command": " ".join(["python", "benchmarks/softmax_cost.py", *(argv or sys.argv[1:])]),
              "window": args.window, "channels": args.channels,
              "softmax": softmax_rows(reports["small (softmax attention)"]),
              "totals": {name: {m["cpu"]: {"instructions": m["instructions"],
                                           "softmax_instructions": m["by_op"].get("SOFTMAX", {}).get("instructions", 0),
                                           "batch_matmul_instructions": m["by_op"].get("BATCH_MATMUL", {}).get("instructions", 0),
                                           "arena_used_bytes": m["arena_used_bytes"]}
                                    for m in rep["mcu_measured"]} for name, rep in reports.items()},
              "wall_s": round(time.monotonic() - start, 1), "cpu_s_this_process": round(time.process_time() - cpu0, 1)}
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "softmax.json", result)
    write_text(args.out / "softmax.md", markdown(result))
    print(markdown(result))
    return 0


def markdown(r: dict) -> str:
    lines = ["# SOFTMAX on Cortex-M: measured per op (TFLM + CMSIS-NN under qemu-system-arm)", "",
             f"The small student at {r['window']} samples x {r['channels']} channels, int8, untrained weights "
             f"(counts do not depend on them). Command: `{r['command']}` ({r['wall_s']} s wall).", "",
             "| CPU | op index | output shape | elements (rows x row size) | instructions | share of inference | instructions / element |",
             "|---|---:|---|---:|---:|---:|---:|"]
    for s in r["softmax"]:
        lines.append(f"| {s['cpu']} | {s['index']} | {s['shape']} | {s['elements']:,} ({s['rows']} x {s['row_size']}) | "
                     f"{s['instructions']:,} | {s['share']:.1%} | {s['instructions_per_element']} |")
    lines += ["", "## The same student without SOFTMAX (softmax-free attention), measured", "",
              "| model | CPU | instructions / inference | SOFTMAX | BATCH_MATMUL | arena B |", "|---|---|---:|---:|---:|---:|"]
    for name, per_cpu in r["totals"].items():
        for cpu, t in per_cpu.items():
            lines.append(f"| {name} | {cpu} | {t['instructions']:,} | {t['softmax_instructions']:,} | "
                         f"{t['batch_matmul_instructions']:,} | {t['arena_used_bytes']:,} |")
    return "\n".join(lines) + "\n\n" + KERNEL_NOTE


if __name__ == "__main__":
    sys.exit(main())
