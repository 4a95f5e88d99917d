"""`edgehar demo`: the command over the demo's flows (`edgehar.demo.steps`): flags -> one config
-> the output folder claimed -> the flow's steps -> demo.json and the report."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from edgehar.cli_types import nonneg_int, positive_float, threads
from edgehar.train.flags import add_device_argument

# every name the demo writes into --out (a previous demo's folder holds nothing else)
DEMO_FILES = ("teacher.pt", "student.pt", "export", "corpus", "replay", "profile_*.json", "live.csv", "demo.json")


def register(sub) -> None:
    p = sub.add_parser(
        "demo", help="deploy the shipped wrist student (export -> profile -> live), or train the whole flow",
        description="With a data root holding banglejs_wrist/ ($EDGEHAR_DATA or --data), deploy the shipped "
                    "wrist student (`wrist-small` from the model zoo, no training): copy its int8 TFLite file "
                    "(the bytes whose sha256 the zoo records) and make the C array, profile it (MACs, flash, "
                    "arena, host latency, and the Cortex-M instructions measured for its card), and stream "
                    "Bangle.js user 2's whole 20-minute recording through a simulated device (in process, "
                    "sim://, as fast as live reads) into `live`; then print the live agreement and each "
                    "class's, and whether they equal the card's. --train runs the whole flow from scratch "
                    "instead: teacher -> student -> int8 TFLite/ONNX/C array -> profile -> live. Its data: "
                    "with wisdm_watch/, dsads/, geotec_watch/ and banglejs_wrist/ the pooled wrist corpus "
                    "(20 Hz, 5-s windows, built into --out) trains the corpus HAR-FM teacher and the wrist "
                    "student, deployed on Bangle.js user 2; a root with hapt/ only trains on HAPT's waist "
                    "phone; --data NAME|FOLDER trains on a data set or your own recordings; without data "
                    "(no $EDGEHAR_DATA, or --synthetic) the embedded synthetic set is used, so `edgehar "
                    "demo` without data trains on it as before (the shipped model is deployed on Bangle.js, "
                    "which only $EDGEHAR_DATA holds). The models read the accelerometer only (the wrist "
                    "recordings have no gyroscope).")
    p.add_argument("--train", action="store_true", help="train the whole flow from scratch instead of deploying "
                                                        "the shipped model (the default without data)")
    p.add_argument("--quick", action="store_true", help="train with tiny models and few steps (under 2 "
                                                        "minutes; implies --train)")
    p.add_argument("--model", help="the shipped student to deploy: a zoo name (default wrist-small, the wrist student best on validation; "
                                   "`edgehar models` lists them) or an int8 export folder of your own")
    p.add_argument("--data", help="a data root (default: $EDGEHAR_DATA; without either: the embedded "
                                  "synthetic data): banglejs_wrist/ for the deploy; wisdm_watch/, dsads/, "
                                  "geotec_watch/ and banglejs_wrist/ for the wrist training flow, else hapt/ "
                                  "(and banglejs_wrist/); or a data set name (wisdm_watch, dsads:right_arm, ...) "
                                  "or a folder of your own recordings with an edgehar.json manifest "
                                  "(`edgehar data check` reads it), which trains")
    p.add_argument("--synthetic", action="store_true", help="train on the embedded synthetic data even when "
                                                            "$EDGEHAR_DATA is set (implies --train)")
    p.add_argument("--out", default="edgehar-demo", help="output folder (default ./edgehar-demo)")
    p.add_argument("--threads", type=threads, help="torch CPU threads for training (default: half the cores, "
                                                   "at most 4)")
    add_device_argument(p)
    p.add_argument("--seed", type=nonneg_int, default=0, help="random seed of the training flow (default 0)")
    p.add_argument("--live-seconds", type=positive_float,
                   help="training flow: seconds of the recording streamed into live (default 40 with --quick, "
                        "else 80; the wrist flows stream Bangle.js user 2's whole recording)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run_demo)


def previous_demo(folder: Path) -> list[str] | None:
    """A demo folder written before output markers: its demo.json, and only the demo's names."""
    return list(DEMO_FILES) if (folder / "demo.json").is_file() else None


def run_demo(args: argparse.Namespace) -> int:
    from edgehar.demo.config import make_config
    from edgehar.errors import UserError
    from edgehar.outputs import MARKER, claim_folder, mark_folder

    cfg = make_config(args)
    out = cfg.out
    # new, empty, or a previous demo's folder: the demo never writes over anyone else's files
    root = cfg.root if cfg.root is not None and os.path.exists(str(cfg.root)) else None
    claim_folder(out, "demo", legacy=previous_demo, inputs=[root])
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        mark_folder(out, "demo", DEMO_FILES)
    except OSError as e:
        raise UserError(out, f"cannot create the output folder ({e.strerror or e})") from None
    try:
        return _run(args, cfg)
    finally:
        if created and out.is_dir() and [e.name for e in out.iterdir()] == [MARKER]:
            (out / MARKER).unlink()
            out.rmdir()  # a run that failed before writing anything leaves no empty folder


def _run(args, cfg) -> int:
    from edgehar.atomic import write_json
    from edgehar.demo.report import format_summary, make_summary
    from edgehar.demo.steps import run_flow, say
    from edgehar.errors import UserError

    if not os.access(cfg.out, os.W_OK):
        raise UserError(cfg.out, "folder is not writable")
    if cfg.flow == "train":
        import torch

        from edgehar.train.loop import use_device

        # small models gain little from intra-op threads; half the cores keeps a 2-core machine responsive
        torch.set_num_threads(args.threads or max(1, min(4, (os.cpu_count() or 2) // 2)))
        use_device(cfg.device)  # the teacher, student (and wrist corpus) training steps run there
    what = f"deploy {cfg.model}" if cfg.flow == "deploy" else f"train, {cfg.mode}"
    say(cfg, f"edgehar demo ({what}) -> {cfg.out}")
    done, times = run_flow(cfg)
    summary = make_summary(cfg, done, times)
    write_json(cfg.out / "demo.json", summary)
    print(json.dumps(summary, indent=2) if args.json else format_summary(summary))
    return 0
