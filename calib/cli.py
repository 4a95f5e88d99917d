"""`edgehar calib build`: draw a calibration set of real windows for int8 export."""

from __future__ import annotations

import argparse
import json

from edgehar.cli_types import channel_list, nonneg_int, positive_float, positive_int
from edgehar.data.registry import DATA_HELP, data_arg


def register(sub) -> None:
    p = sub.add_parser("calib", help="build calibration sets for int8 export",
                       description="Calibration sets: real windows that set the int8 ranges at export.")
    csub = p.add_subparsers(dest="calib_command", metavar="ACTION")
    csub.required = True
    b = csub.add_parser(
        "build", help="draw a class- and subject-stratified set of real windows",
        description="Draw N real windows (labelled and unlabelled) balanced over classes and, within "
                    "a class, over subjects, from a data set's training subjects (the HAPT official "
                    "test subjects are left out), windowed as the model expects. Writes an .npz "
                    "(x raw windows, y, subject) with a JSON provenance string.")
    b.add_argument("--data", required=True, type=data_arg, help=DATA_HELP)
    b.add_argument("--root", help="its folder (default: $EDGEHAR_DATA/<dataset folder>)")
    b.add_argument("--n", type=positive_int, default=500, help="number of windows (default 500)")
    b.add_argument("--out", required=True, help="output .npz file")
    b.add_argument("--like", metavar="MODEL.pt", help="take rate, window, channels and units from this "
                                                       "checkpoint's model card")
    b.add_argument("--rate", type=positive_float, default=50.0, help="Hz (default 50; ignored with --like)")
    b.add_argument("--window", type=positive_int, help="samples per window (default 2.56 s)")
    b.add_argument("--channels", type=channel_list, help="comma-separated channel names (default: all of the data set)")
    b.add_argument("--seed", type=nonneg_int, default=0, help="selection seed (default 0)")
    b.add_argument("--include-test-subjects", action="store_true",
                   help="also draw from the official test subjects (not recommended)")
    b.add_argument("--json", action="store_true", help="print the provenance as JSON")
    b.set_defaults(func=run_build)


def is_calibration_set(path) -> bool:
    """Whether `path` holds an edgehar calibration set (what `calib build` may replace)."""
    from edgehar.calib.build import load_calib
    from edgehar.errors import UserError

    try:
        load_calib(path)
    except UserError:
        return False
    return True


def check_out(args: argparse.Namespace) -> None:
    """Before any data is read: --out ends in .npz, is none of the inputs, and replaces only a
    calibration set."""
    from edgehar.errors import UserError
    from edgehar.outputs import claim_file
    from edgehar.train.cli import data_inputs

    if not str(args.out).endswith(".npz"):
        raise UserError(args.out, "calibration file name must end in .npz")
    claim_file(args.out, "calib build", inputs=[args.like, *data_inputs(args.data, args.root)],
               recognise=is_calibration_set, kind="an edgehar calibration set")


def run_build(args: argparse.Namespace) -> int:
    from edgehar.calib.build import build_calibration, save_calib

    check_out(args)
    rate, window, units = args.rate, args.window, None
    channels = args.channels
    if args.like:
        from edgehar.checkpoint import load_checkpoint

        card = load_checkpoint(args.like)["card"]
        rate, window, channels, units = card.rate, card.window, card.channels, card.units
    calib = build_calibration(args.data, args.n, root=args.root, rate=rate, window=window,
                              channels=channels, units=units, seed=args.seed,
                              exclude_subjects=[] if args.include_test_subjects else None)
    save_calib(args.out, calib)
    prov = calib.provenance
    if args.json:
        print(json.dumps({"out": args.out, **prov}, indent=2))
    else:
        counts = ", ".join(f"{k} {v}" for k, v in prov["counts"].items())
        print(f"{args.out}: {prov['n']} windows of {prov['window']} x {len(prov['channels'])} at "
              f"{prov['rate']:g} Hz from {len(prov['subjects'])} subjects ({counts})")
    return 0
