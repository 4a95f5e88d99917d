"""`edgehar export STUDENT.pt --int8` (or BASELINE.pt): the deployable artifact folder."""

from __future__ import annotations

import argparse
import json

from edgehar.cli_types import positive_int
from edgehar.data.registry import data_arg


def register(sub) -> None:
    p = sub.add_parser(
        "export", help="student or baseline checkpoint -> .tflite/.onnx/C array artifact folder",
        description="Export a student checkpoint (or a baseline: cnn, ignatov, tinyhar_tflm) into an "
                    "artifact folder (written atomically): model_fp32.tflite, model.onnx, modelcard.json, "
                    "parity.json and, with --int8, model_int8.tflite (full integer: int8 I/O, activations "
                    "and weights, int32 biases), model_int8.onnx (QDQ, per-channel weights) and "
                    "model_int8.h/.cc (C array for TFLite-Micro). parity.json compares PyTorch with every "
                    "artifact on the held-out test subjects of the card's data set.")
    p.add_argument("checkpoint", help="student checkpoint (.pt from `edgehar distill`), a baseline checkpoint "
                                      "(cnn, ignatov, tinyhar_tflm) or a zoo name (edgehar models)")
    p.add_argument("--int8", action="store_true", help="also write the full-integer int8 artifacts")
    p.add_argument("--out", help="output folder (default: <checkpoint>_export next to it; for a zoo "
                                 "name, NAME_export in the current folder)")
    p.add_argument("--calib", help="calibration set from `edgehar calib build` (default: draw 500 "
                                   "windows from the card's data set, test subjects left out)")
    p.add_argument("--data", type=data_arg,
                   help="data set for calibration and parity (default: the one named in the card)")
    p.add_argument("--root", help="its folder (default: $EDGEHAR_DATA/<dataset folder>)")
    p.add_argument("--n-calib", type=positive_int, default=500, help="windows drawn when no --calib is given")
    p.add_argument("--no-micro", action="store_true", help="skip the TFLite-Micro parity run")
    p.add_argument("--strict", action="store_true", help="exit 1 when a parity bound fails")
    from edgehar.classes import add_classes_flag
    add_classes_flag(p, "the last layer keeps only their rows, so the int8 graph, the card and the "
                        "C header carry only those outputs")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    from edgehar.export.pipeline import export_student

    from edgehar import zoo

    checkpoint = zoo.resolve(args.checkpoint, "checkpoint")
    name = zoo.is_name(args.checkpoint)
    out = args.out or (f"{args.checkpoint}_export" if name else None)
    # a shipped student brings the windows its own export was made from: no data needed, and
    # the same calibration gives the shipped int8 file again
    shipped = zoo.shipped_windows(args.checkpoint) if name and not (args.calib or args.data or args.root) else None
    windows, held = shipped or (None, None)
    res = export_student(checkpoint, out, int8=args.int8, calib=args.calib,
                         data=zoo.WINDOWS_DATA if shipped else args.data, root=args.root, windows=windows,
                         test_subjects=held, n_calib=args.n_calib, micro=not args.no_micro,
                         classes=args.classes)
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        fig = res["parity"]["figures"]
        print(f"{res['out']}: {', '.join(res['files'])}")
        for k, v in fig["bytes"].items():
            print(f"  {k:<14}{v:>10,d} bytes")
        for name, check in res["parity"]["bounds"].items():
            value = check["value"]
            shown = f"{value:.3g}" if isinstance(value, float) else str(value)
            print(f"  {'ok  ' if check['ok'] else 'FAIL'} {name:<38}{shown:>10}  ({check['bound']})")
        f1 = {k[len('macro_f1_'):]: v for k, v in fig.items() if k.startswith("macro_f1_")}
        print("  macro-F1 " + ", ".join(f"{k} {v:.4f}" for k, v in f1.items()))
    return 1 if args.strict and not res["parity"]["ok"] else 0
