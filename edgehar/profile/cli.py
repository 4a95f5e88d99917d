"""`edgehar profile MODEL`: what a model costs, read from the file itself (any .tflite/.onnx)."""

from __future__ import annotations

import argparse
import json

from edgehar.cli_types import positive_int


def register(sub) -> None:
    from edgehar.profile.targets import TARGETS

    p = sub.add_parser(
        "profile", help="MACs, params, flash, TFLM arena, latency and MCU estimates of a model",
        description="Profile a .tflite or .onnx file (any converter's): inputs/outputs, ops, "
                    "params and weight bytes, MACs counted from the graph (per layer with "
                    "--per-layer), the tensor arena tflite-micro needs (measured by allocating "
                    "it), host latency on one thread, and ESTIMATED latency on microcontrollers.")
    p.add_argument("model", help=".tflite or .onnx file")
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    p.add_argument("--per-layer", action="store_true", help="add a row per layer")
    p.add_argument("--target", nargs="+", metavar="NAME[@MHZ]",
                   help=f"MCUs to estimate for (default: all of {', '.join(TARGETS)}); "
                        "@MHZ overrides the clock, e.g. cortex-m7@216")
    p.add_argument("--runs", type=positive_int, default=50, help="timed host runs after warm-up (default 50)")
    p.add_argument("--no-arena", action="store_true", help="skip the tflite-micro arena search")
    p.add_argument("--no-latency", action="store_true", help="skip host latency")
    p.set_defaults(func=run_profile)


def run_profile(args: argparse.Namespace) -> int:
    from edgehar.profile.report import format_table, profile_model

    warn_if_changed(args.model)
    report = profile_model(args.model, per_layer=args.per_layer, targets=args.target,
                           runs=args.runs, arena=not args.no_arena, latency=not args.no_latency)
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
