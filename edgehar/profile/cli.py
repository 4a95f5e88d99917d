"""`edgehar profile MODEL`: what a model costs, read from the file itself (any .tflite/.onnx)."""

from __future__ import annotations

import argparse
import json

from edgehar.cli_types import positive_int


def register(sub) -> None:
    from edgehar.mcu.build import CPUS
    from edgehar.profile.mcu_report import parse_measure
    from edgehar.profile.targets import TARGETS

    p = sub.add_parser(
        "profile", help="MACs, params, flash, TFLM arena, latency and MCU estimates of a model",
        description="Profile a .tflite or .onnx file (any converter's): inputs/outputs, ops, "
                    "params and weight bytes, MACs counted from the graph (per layer with "
                    "--per-layer), the tensor arena tflite-micro needs (measured by allocating "
                    "it), host latency on one thread, and microcontroller cost: instructions MEASURED on an emulated Cortex-M with --measure, else a MAC-constant ESTIMATE as a fallback.")
    p.add_argument("model", help="a .tflite or .onnx model file, or a zoo name (edgehar models; a "
                                 "student is profiled as its shipped int8 .tflite)")
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    p.add_argument("--per-layer", action="store_true", help="add a row per layer")
    p.add_argument("--target", nargs="+", metavar="NAME[@MHZ]",
                   help=f"MCUs to estimate for (default: all of {', '.join(TARGETS)}); "
                        "@MHZ overrides the clock, e.g. cortex-m7@216")
    p.add_argument("--runs", type=positive_int, default=50, help="timed host runs after warm-up (default 50)")
    p.add_argument("--no-arena", action="store_true", help="skip the tflite-micro arena search")
    p.add_argument("--no-latency", action="store_true", help="skip host latency")
    p.add_argument("--measure", type=parse_measure, metavar="CPU[@MHZ][,CPU...]",
                   help="count the instructions the model executes on an emulated Cortex-M "
                        f"({', '.join(CPUS)}): TFLM built with arm-none-eabi-gcc (once, cached), "
                        "run in qemu-system-arm under an instruction-counting plugin; reports "
                        "instructions per inference and per op, the arena TFLM used, and latency "
                        "as a range estimated from the measured count. Replaces the MAC-constant "
                        "estimate of --target")
    p.add_argument("--kernels", choices=("cmsis-nn", "reference"), default="cmsis-nn",
                   help="TFLM kernels for --measure: cmsis-nn (Arm's optimised, what firmware "
                        "uses; default) or reference (portable C)")
    p.add_argument("--toolchains", metavar="DIR",
                   help="folder with the TFLM sources and qemu-plugin.h (default: "
                        "$EDGEHAR_TOOLCHAINS)")
    p.set_defaults(func=run_profile)


def run_profile(args: argparse.Namespace) -> int:
    from edgehar import zoo
    from edgehar.profile.report import format_table, profile_model

    model = zoo.resolve(args.model, "tflite")
    warn_if_changed(model)
    report = profile_model(model, per_layer=args.per_layer, targets=args.target,
                           runs=args.runs, arena=not args.no_arena, latency=not args.no_latency,
                           measure=args.measure, kernels=args.kernels, toolchains=args.toolchains)
    print(json.dumps(report, indent=2) if args.json else format_table(report))
    return 0


def warn_if_changed(path) -> None:
    """A one-line warning when an edgehar model no longer matches the content hash its
    embedded card records (a model without a card is profiled without one)."""
    from edgehar.card_io import content_mismatch, read_card
    from edgehar.errors import UserError, warn

    try:
        card = read_card(path)
    except UserError:
        return
    mismatch = content_mismatch(path, card)
    if mismatch:
        warn(path, mismatch)
