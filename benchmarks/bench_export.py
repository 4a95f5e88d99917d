"""Train tiny and small students supervised on HAPT, export them with --int8, report the figures.

    EDGEHAR_DATA=../shared/data python benchmarks/bench_export.py [--only tiny,small] [--steps N]

HAPT default split (6 activities, 50 Hz, 128 x 6 windows, hop 64, UCI-HAR official test
subjects held out), plain cross-entropy (no teacher: the distillation benchmark adds that),
a 500-window calibration set from the training subjects, then `export --int8`. Reports macro-F1
of PyTorch / fp32 TFLite / int8 TFLite / int8 ONNX on the test subjects, parity figures, file
sizes, params and MACs. Writes `export.json` + `export.md`; checkpoints and artifact folders go
to `results/models/` (not committed). Set EDGEHAR_TFLITE_RUNTIME_PYTHON to include
tflite-runtime in the parity run. One CPU thread, fixed seed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

from edgehar.atomic import write_json, write_text
from edgehar.calib.build import calib_from_windows, save_calib
from edgehar.checkpoint import save_checkpoint
from edgehar.data import hapt
from edgehar.data.datasets import activity_windows
from edgehar.data.splits import split_subjects
from edgehar.export.pipeline import export_student
from edgehar.models.student import count_params
from edgehar.models.torch_macs import torch_macs as count_macs
from edgehar.recipes import train_student_supervised
from edgehar.models.inference import evaluate

HERE = Path(__file__).resolve().parent
# optimiser steps of 64 windows: 30 passes over the 7594 labelled training windows (119 steps each)
STEPS = {"tiny": 3570, "small": 3570}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=os.environ.get("EDGEHAR_DATA"), help="EDGEHAR_DATA folder")
    p.add_argument("--out", default=str(HERE / "results"), help="results folder")
    p.add_argument("--only", default=",".join(STEPS), help="comma-separated sizes to run")
    p.add_argument("--steps", type=int, default=None, help="optimiser steps for every size (default: 3570)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if not args.data:
        sys.exit("bench_export: set EDGEHAR_DATA or pass --data")
    sizes = [s.strip() for s in args.only.split(",") if s.strip()]
    if set(sizes) - set(STEPS):
        sys.exit(f"bench_export: unknown size in {sizes} (known: {', '.join(STEPS)})")
    torch.set_num_threads(1)
    out = Path(args.out)
    root = Path(args.data) / "hapt"
    w = activity_windows("hapt", root)
    train, test = split_subjects(w, hapt.TEST_SUBJECTS)
    calib = calib_from_windows(train, 500, args.seed, dataset="hapt", root=str(root),
                               excluded_subjects=list(hapt.TEST_SUBJECTS))
    save_calib(out / "models" / "calib_hapt_500.npz", calib)
    rows = []
    for size in sizes:
        torch.manual_seed(args.seed)
        steps = args.steps or STEPS[size]
        t0 = time.perf_counter()
        model, card = train_student_supervised(
            train, size, steps=steps, seed=args.seed,
            data={"dataset": "hapt", "root": str(root), "test_subjects": list(hapt.TEST_SUBJECTS)})
        train_s = time.perf_counter() - t0
        card.provenance.setdefault("metrics", {})["test"] = {
            k: v for k, v in evaluate(model, test, card).items() if k in ("macro_f1", "accuracy")}
        ckpt = out / "models" / f"student_{size}.pt"
        save_checkpoint(ckpt, model, card)
        t0 = time.perf_counter()
        res = export_student(ckpt, out / "models" / f"student_{size}_export", calib=calib, windows=w,
                             data="hapt", test_subjects=list(hapt.TEST_SUBJECTS))
        export_s = time.perf_counter() - t0
        fig, q = res["parity"]["figures"], res["quantization"]
        row = {"size": size, "params": count_params(model), "macs_per_window": count_macs(model, torch.zeros(1, 128, 6)),
               "steps": steps, "train_s": round(train_s, 1), "export_s": round(export_s, 1),
               "macro_f1": {k[len("macro_f1_"):]: v for k, v in fig.items() if k.startswith("macro_f1_")},
               "bytes": fig["bytes"], "weight_bytes": fig.get("weight_bytes"),
               "bytes_breakdown": fig.get("tflite_bytes_breakdown"),
               "parity": {k: v for k, v in fig.items()
                          if not k.startswith("macro_f1_")
                          and k not in ("bytes", "weight_bytes", "tflite_bytes_breakdown")},
               "notes": res["parity"].get("notes", {}),
               "bounds": res["parity"]["bounds"], "failed": res["parity"]["failed"],
               "int8_io": {k: q[k] for k in ("input_scale", "input_zero_point", "output_scale", "output_zero_point")},
               "ops": q["ops"]}
        rows.append(row)
        f1 = row["macro_f1"]
        print(f"student {size}: macro-F1 pytorch {f1['pytorch']:.4f} int8 tflite {f1['int8_tflite']:.4f} "
              f"int8 onnx {f1['int8_onnx']:.4f}; int8 {fig['bytes']['int8_tflite']:,} B; failed {row['failed']}",
              file=sys.stderr)

    summary = {"data": "hapt", "rate": w.rate, "window": w.length, "hop": w.hop, "channels": list(w.channels),
               "test_subjects": list(hapt.TEST_SUBJECTS), "calibration": {"n": len(calib), "seed": args.seed},
               "threads": 1, "torch": torch.__version__, "results": rows}
    write_json(out / "export.json", summary)
    md = ["# Student export on HAPT (supervised, 6 activities, 128 x 6 @ 50 Hz, official test subjects)", "",
          "macro-F1 on the test subjects; agreement = top-1 agreement with PyTorch; micro = TFLite-Micro "
          "reference kernels vs ai-edge-litert (max int8 LSB difference).", "",
          "| student | params | MACs | macro-F1 torch | fp32 tflite | int8 tflite | int8 onnx | "
          "agree tflite | agree onnx | fp32 max diff | micro LSB | fp32 .tflite B | int8 .tflite B | "
          "int8/fp32 file | int8/fp32 floor | int8/fp32 weights | int8 .onnx B |",
          "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        f1, pa, b = r["macro_f1"], r["parity"], r["bytes"]
        md.append(f"| {r['size']} | {r['params']:,} | {r['macs_per_window']:,} | {f1['pytorch']:.4f} | "
                  f"{f1['fp32_tflite']:.4f} | {f1['int8_tflite']:.4f} | {f1['int8_onnx']:.4f} | "
                  f"{pa['int8_tflite_top1_agreement']:.4f} | {pa['int8_onnx_top1_agreement']:.4f} | "
                  f"{max(pa['fp32_tflite_max_abs_diff'], pa['fp32_onnx_max_abs_diff']):.1e} | "
                  f"{pa.get('int8_micro_max_lsb', '-')} | {b['fp32_tflite']:,} | {b['int8_tflite']:,} | "
                  f"{pa['int8_tflite_file_ratio']:.3f} | {pa['int8_tflite_ratio_floor']:.3f} | "
                  f"{pa['int8_tflite_weights_ratio']:.3f} | {b['int8_onnx']:,} |")
    md += ["", "Both .tflite files are compacted the same lossless way (`edgehar.export.compact`: index "
           "tensor names, activations on the shared empty buffer, identical vectors and quantisation / "
           "option tables stored once, compact card JSON; outputs checked bit-identical). "
           "floor = (int8 weights + int32 biases + float32 per-channel scales) / fp32 weights: the lowest "
           "file ratio any flatbuffer of the same int8 graph can reach, before tables, names or card.", "",
           "Where the bytes go (each part = bytes the file loses without it, headers and 16-byte "
           "alignment padding included):", "",
           "| student | file | total B | weights | quantisation | of which per-channel scales | card | "
           "tensor names | structure (tensor/op/buffer tables, shapes, options, signature) |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        for key, parts in r["bytes_breakdown"].items():
            md.append(f"| {r['size']} | {key} | {parts['total']:,} | {parts['weights']:,} | "
                      f"{parts['quantization']:,} | "
                      f"{parts['per_channel_scales']:,} | {parts['card']:,} | {parts['tensor_names']:,} | "
                      f"{parts['structure']:,} |")
    md += ["", "Failed bounds: " + "; ".join(f"{r['size']}: {', '.join(r['failed']) or 'none'}" for r in rows)]
    md += ["", "int8/fp32 .tflite file ratio (bound <= 0.30): " + "; ".join(
        f"{r['size']} {r['parity']['int8_tflite_file_ratio']:.3f} (floor {r['parity']['int8_tflite_ratio_floor']:.3f})"
        for r in rows) + ". A floor above 0.30 means no encoding of that int8 graph meets the bound: "
        "int32 biases and a float32 scale per output channel of every weight and bias tensor weigh "
        "too much next to so few weights."]
    write_text(out / "export.md", "\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
